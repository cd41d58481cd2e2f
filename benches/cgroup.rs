//! What a cgroup adds to a spawn+wait of `/bin/true`: ringfence without a cgroup, with a
//! cgroup with three limits (CPU quota, memory, pids) in a `Sandbox` built for that one spawn
//! (cold: the cgroup is created and, when the sandbox is dropped, removed) and in a `Sandbox`
//! reused across spawns (warm: its cgroup directories are reused), side by side with a peer
//! doing the same kernel work by hand around `std::process::Command`: `mkdir` in the same
//! hierarchies, the same limit writes, the child moving itself in (`cgroup.procs`) before it
//! executes the program, the same usage reads, `rmdir` (`raw`); and with the directories made
//! once (`raw-reused`).
//!
//! Criterion times each benchmark (group `cgroup`); then, because this shared machine's speed
//! drifts by more than the effect measured, every variant runs again in interleaved rounds and
//! the added costs and ratios printed at the end are medians over those rounds.
//! Needs the privilege to create cgroups below this process's own (root). See
//! docs/BENCHMARKS.md.

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ringfence::cgroup::{CgroupBackend, cgroup_info};
use ringfence::{Command, Cpu, Sandbox};

const TRUE: &str = "/bin/true";
const MEMORY: u64 = 256 << 20;
const PIDS: u64 = 64;
const QUOTA_US: u64 = 50_000;
const PERIOD_US: u64 = 100_000;

/// The sandbox of every cgroup row: the limits of `benches/spawn.rs`'s `ringfence-cgroup`.
fn limited() -> Sandbox {
    Sandbox::new()
        .cpu_quota(Cpu::percent(50))
        .memory_limit(MEMORY)
        .pids_limit(PIDS)
}

fn run_ringfence(sandbox: &Sandbox, cmd: &Command) {
    let outcome = sandbox.spawn(cmd).expect("spawn").wait().expect("wait");
    assert!(outcome.success(), "{}", outcome.status);
    black_box(outcome);
}

/// One cgroup directory of the peer: the directory and the files it writes and reads there.
#[derive(Clone, Debug)]
struct RawDir {
    dir: PathBuf,
    /// (file, value) limits written after `mkdir`.
    limits: Vec<(&'static str, String)>,
    /// Usage files read after the wait.
    reads: Vec<&'static str>,
}

/// The peer's cgroup: the same hierarchies ringfence uses for these limits (v1: freezer,
/// cpuacct, cpu, memory, pids, where mounted; v2: one directory), named `rf-bench-<pid>-<n>`.
#[derive(Clone, Debug)]
struct RawCgroup {
    dirs: Vec<RawDir>,
}

impl RawCgroup {
    fn plan(n: usize) -> Option<RawCgroup> {
        let info = cgroup_info();
        let name = format!("rf-bench-{}-{n}", std::process::id());
        let mut dirs: Vec<RawDir> = Vec::new();
        match &info.backend {
            CgroupBackend::V2 { .. } => {
                let own = info.own_v2.as_ref()?;
                dirs.push(RawDir {
                    dir: own.join(&name),
                    limits: vec![
                        ("cpu.max", format!("{QUOTA_US} {PERIOD_US}")),
                        ("memory.max", MEMORY.to_string()),
                        ("pids.max", PIDS.to_string()),
                    ],
                    reads: vec!["cpu.stat", "memory.peak", "memory.events", "pids.peak"],
                });
            }
            CgroupBackend::V1 { .. } => {
                for (ctl, limits, reads) in [
                    ("freezer", vec![], vec![]),
                    ("cpuacct", vec![], vec!["cpuacct.usage"]),
                    (
                        "cpu",
                        vec![
                            ("cpu.cfs_period_us", PERIOD_US.to_string()),
                            ("cpu.cfs_quota_us", QUOTA_US.to_string()),
                        ],
                        vec![],
                    ),
                    (
                        "memory",
                        vec![("memory.limit_in_bytes", MEMORY.to_string())],
                        vec!["memory.max_usage_in_bytes", "memory.oom_control"],
                    ),
                    (
                        "pids",
                        vec![("pids.max", PIDS.to_string())],
                        vec!["pids.peak"],
                    ),
                ] {
                    let Some(c) = info.controller(ctl) else {
                        continue;
                    };
                    let dir = c.own.join(&name);
                    match dirs.iter_mut().find(|d| d.dir == dir) {
                        Some(d) => {
                            d.limits.extend(limits);
                            d.reads.extend(reads);
                        }
                        None => dirs.push(RawDir { dir, limits, reads }),
                    }
                }
            }
            _ => return None,
        }
        Some(RawCgroup { dirs })
    }

    fn create(&self) {
        for d in &self.dirs {
            fs::create_dir(&d.dir).expect("mkdir");
            for (file, value) in &d.limits {
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(d.dir.join(file))
                    .expect("open a limit");
                f.write_all(value.as_bytes()).expect("write a limit");
            }
        }
    }

    /// Spawn `/bin/true` with `std`, moving the child into every directory (it writes `0` to
    /// each `cgroup.procs`, opened beforehand) before it executes; wait; read the usage.
    fn run(&self) {
        let procs: Vec<File> = self
            .dirs
            .iter()
            .map(|d| {
                OpenOptions::new()
                    .write(true)
                    .open(d.dir.join("cgroup.procs"))
                    .expect("open cgroup.procs")
            })
            .collect();
        let fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
        let mut cmd = std::process::Command::new(TRUE);
        // SAFETY: the closure only calls write(2) on descriptors opened before the fork.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &fds {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let status = cmd.status().expect("spawn");
        assert!(status.success(), "{status}");
        drop(procs);
        for d in &self.dirs {
            for file in &d.reads {
                black_box(fs::read_to_string(d.dir.join(file)).ok());
            }
        }
    }

    fn remove(&self) {
        for d in self.dirs.iter().rev() {
            // The child was reaped; a just-exited task may keep it busy for a moment.
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Err(e) = fs::remove_dir(&d.dir) {
                if e.kind() == std::io::ErrorKind::NotFound {
                    break;
                }
                assert!(Instant::now() < deadline, "rmdir {}: {e}", d.dir.display());
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}

/// The peer's directories made once (for `raw-reused`), removed on drop.
struct Reused(RawCgroup);

impl Drop for Reused {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// `std` with a no-op `pre_exec`: std then forks instead of using `posix_spawn`, as in the
/// peer rows, so that `raw` − `std-fork` is the cgroup's cost alone.
fn run_std_fork() {
    let mut cmd = std::process::Command::new(TRUE);
    // SAFETY: the closure does nothing.
    unsafe {
        cmd.pre_exec(|| Ok(()));
    }
    let status = cmd.status().expect("spawn");
    assert!(status.success(), "{status}");
}

fn run_std() {
    let status = std::process::Command::new(TRUE).status().expect("spawn");
    assert!(status.success(), "{status}");
}

/// The benchmarks, by name: each runs one spawn+wait.
type Variant<'a> = (&'static str, Box<dyn Fn() + 'a>);

fn variants<'a>(
    cmd: &'a Command,
    plain: &'a Sandbox,
    warm: &'a Sandbox,
    raw: &'a RawCgroup,
    reused: &'a RawCgroup,
) -> Vec<Variant<'a>> {
    vec![
        ("std", Box::new(run_std)),
        ("std-fork", Box::new(run_std_fork)),
        (
            "raw",
            Box::new(move || {
                raw.create();
                raw.run();
                raw.remove();
            }),
        ),
        ("raw-reused", Box::new(move || reused.run())),
        ("ringfence", Box::new(move || run_ringfence(plain, cmd))),
        (
            "ringfence-fresh",
            Box::new(move || run_ringfence(&Sandbox::new(), cmd)),
        ),
        (
            "ringfence-cgroup-cold",
            Box::new(move || run_ringfence(&limited(), cmd)),
        ),
        (
            "ringfence-cgroup-warm",
            Box::new(move || run_ringfence(warm, cmd)),
        ),
    ]
}

/// Rounds of interleaved runs: each round runs every variant `PER_ROUND` times (in an order
/// that rotates from round to round) and records the mean; the result is each variant's
/// median over the rounds, and the median over rounds of each difference in `pairs`.
const ROUNDS: usize = 60;
const PER_ROUND: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn interleaved(vs: &[Variant<'_>]) -> Vec<Vec<f64>> {
    let mut per: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); vs.len()];
    for round in 0..ROUNDS {
        for k in 0..vs.len() {
            let i = (k + round) % vs.len();
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                (vs[i].1)();
            }
            per[i].push(t.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        }
    }
    per
}

fn fmt(ns: f64) -> String {
    if ns.abs() >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.0} µs", ns / 1e3)
    }
}

fn report(names: &[&str], per: &[Vec<f64>]) {
    let idx = |n: &str| names.iter().position(|x| *x == n).expect("variant");
    // Per-round differences, so that drift between rounds cancels out.
    let diff = |a: &str, b: &str| {
        let (a, b) = (&per[idx(a)], &per[idx(b)]);
        median(a.iter().zip(b).map(|(x, y)| x - y).collect())
    };
    println!(
        "\ncgroup: medians over {ROUNDS} interleaved rounds of {PER_ROUND} spawn+wait of {TRUE}"
    );
    println!("| variant | median | vs std |");
    println!("|---|---:|---:|");
    let std = median(per[idx("std")].clone());
    for (n, v) in names.iter().zip(per) {
        let m = median(v.clone());
        println!("| `{n}` | {} | {:.2}× |", fmt(m), m / std);
    }
    let warm = diff("ringfence-cgroup-warm", "ringfence");
    let cold = diff("ringfence-cgroup-cold", "ringfence-fresh");
    let raw = diff("raw", "std-fork");
    let reused = diff("raw-reused", "std-fork");
    println!("\nadded by the cgroup (median of per-round differences):");
    println!("| | added | vs the peer |");
    println!("|---|---:|---:|");
    println!(
        "| ringfence, reused sandbox (`ringfence-cgroup-warm` − `ringfence`) | {} | {:.2}× `raw-reused` |",
        fmt(warm),
        warm / reused
    );
    println!(
        "| ringfence, new sandbox (`ringfence-cgroup-cold` − `ringfence-fresh`) | {} | {:.2}× `raw` |",
        fmt(cold),
        cold / raw
    );
    println!(
        "| peer, directories made per spawn (`raw` − `std-fork`) | {} | |",
        fmt(raw)
    );
    println!(
        "| peer, directories made once (`raw-reused` − `std-fork`) | {} | |",
        fmt(reused)
    );
    println!(
        "\ntarget: a reused sandbox's cgroup adds ≤ 0.3 ms: {} ({})",
        fmt(warm),
        if warm <= 300_000.0 { "met" } else { "not met" }
    );
}

/// Spawns one at a time with a pause before each (as a CLI or a service starting the odd
/// sandbox does), alternating `ringfence` and `ringfence-cgroup-warm`: the median of the
/// per-pair differences. On cgroup v1, moving a process into a cgroup from another process
/// (`cgroup.procs`) waits for an RCU grace period unless another such move happened
/// recently; back-to-back loops never see that wait.
const SPACED_PAIRS: usize = 20;
const SPACED_PAUSE: Duration = Duration::from_millis(100);

fn spaced(plain: &dyn Fn(), warm: &dyn Fn()) -> (f64, f64) {
    let mut diffs = Vec::with_capacity(SPACED_PAIRS);
    let mut base = Vec::with_capacity(SPACED_PAIRS);
    let time = |f: &dyn Fn()| {
        std::thread::sleep(SPACED_PAUSE);
        let t = Instant::now();
        f();
        t.elapsed().as_nanos() as f64
    };
    for _ in 0..SPACED_PAIRS {
        let a = time(plain);
        let b = time(warm);
        diffs.push(b - a);
        base.push(a);
    }
    (median(base), median(diffs))
}

fn bench(c: &mut Criterion) {
    let cmd = Command::new(TRUE);
    let plain = Sandbox::new();
    let warm = limited();
    if let Err(e) = warm.spawn(&cmd).and_then(|mut c| c.wait()) {
        println!("skipping the cgroup benchmarks: {e}");
        return;
    }
    let (Some(raw), Some(reused)) = (RawCgroup::plan(0), RawCgroup::plan(1)) else {
        println!("skipping the cgroup benchmarks: no cgroup hierarchy found");
        return;
    };
    reused.create();
    let reused = Reused(reused);
    let vs = variants(&cmd, &plain, &warm, &raw, &reused.0);

    let mut group = c.benchmark_group("cgroup");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    for (name, f) in &vs {
        group.bench_function(*name, |b| b.iter(f));
    }
    group.finish();

    // Skipped when a filter given on the command line leaves criterion nothing to run here
    // (or when criterion only checks that the benchmarks run, `--test`).
    let full = std::env::args().skip(1).all(|a| a == "--bench");
    if full {
        let per = interleaved(&vs);
        let names: Vec<&str> = vs.iter().map(|(n, _)| *n).collect();
        report(&names, &per);
        let (base, added) = spaced(&|| run_ringfence(&plain, &cmd), &|| {
            run_ringfence(&warm, &cmd)
        });
        println!(
            "\nspaced: {SPACED_PAIRS} pairs, {} ms pause before each spawn: `ringfence` {}, `ringfence-cgroup-warm` adds {}",
            SPACED_PAUSE.as_millis(),
            fmt(base),
            fmt(added)
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
