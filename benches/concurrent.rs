//! 1,000 sandboxes alive at once (`CONCURRENT_SANDBOXES` to change it): `Sandbox::isolated()`
//! sandboxes, each running `/bin/cat` on a pipe from the parent, spawned from 4 threads of one
//! process sharing one `Sandbox`.
//!
//! Reported (one line per figure, `name: value`, for `scripts/bench`):
//! - `total`: from the first spawn until every sandbox has ended (all spawned, then every
//!   stdin closed, every sandbox waited for);
//! - `spawn-p50`, `spawn-p99`, `spawn-max`: latency of `Sandbox::spawn` (until the program
//!   runs: `spawn` returns after the `execve`);
//! - `failures`: spawns or waits that failed, or programs that did not end with status 0;
//! - `parent-kib-per-sandbox`: the parent's resident memory with all of them alive, minus
//!   before the first spawn, divided by their number, in the first round (later rounds reuse memory the first
//!   one left allocated, so their figure is lower; printed too).
//!
//! Not a criterion benchmark (one run of all the sandboxes is the measurement); `ROUNDS` runs are made and
//! the median of each figure printed. Needs root (namespaces without a user namespace).

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use ringfence::{Child, Command, Sandbox, Stdio};

/// How many sandboxes are alive at once: `CONCURRENT_SANDBOXES`, 1,000 by default.
fn sandboxes() -> usize {
    std::env::var("CONCURRENT_SANDBOXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}
const THREADS: usize = 4;
const ROUNDS: usize = 5;

/// The parent's resident set (kB), from /proc/self/status.
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Round {
    total: Duration,
    latencies: Vec<Duration>,
    failures: usize,
    kib_per_sandbox: f64,
}

fn round(sandbox: &Arc<Sandbox>) -> Round {
    let before = rss_kib();
    let started = Instant::now();
    let children: Arc<Mutex<Vec<Child>>> = Arc::new(Mutex::new(Vec::with_capacity(sandboxes())));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(sandboxes())));
    let failures = Arc::new(Mutex::new(0usize));
    let barrier = Arc::new(Barrier::new(THREADS));
    // The spawning threads live until every sandbox has ended: a sandbox dies with the thread
    // that spawned it (`PR_SET_PDEATHSIG` follows the parent thread, not the process).
    let done = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (sandbox, children, latencies, failures, barrier, done) = (
                sandbox.clone(),
                children.clone(),
                latencies.clone(),
                failures.clone(),
                barrier.clone(),
                done.clone(),
            );
            std::thread::spawn(move || {
                let mut cmd = Command::new("/bin/cat");
                cmd.stdin(Stdio::Piped);
                barrier.wait();
                // Thread t spawns sandboxes t, t + THREADS, t + 2 * THREADS, ...
                let n = (t..sandboxes()).step_by(THREADS).count();
                for _ in 0..n {
                    let t0 = Instant::now();
                    match sandbox.spawn(&cmd) {
                        Ok(c) => {
                            latencies.lock().unwrap().push(t0.elapsed());
                            children.lock().unwrap().push(c);
                        }
                        Err(e) => {
                            eprintln!("spawn failed: {e}");
                            *failures.lock().unwrap() += 1;
                        }
                    }
                }
                done.wait();
            })
        })
        .collect();
    // Every sandbox is alive once the spawning threads meet again (cat waits for its stdin).
    while children.lock().unwrap().len() + *failures.lock().unwrap() < sandboxes() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let alive = rss_kib();
    let mut children = std::mem::take(&mut *children.lock().unwrap());
    let live = children.len();
    for c in &mut children {
        // cat sees end of file and exits.
        drop(c.stdin.take());
    }
    let mut failures = *failures.lock().unwrap();
    for mut c in children {
        match c.wait() {
            Ok(o) if o.success() => {}
            Ok(o) => {
                eprintln!("sandbox ended with {}", o.status);
                failures += 1;
            }
            Err(e) => {
                eprintln!("wait failed: {e}");
                failures += 1;
            }
        }
    }
    let total = started.elapsed();
    done.wait();
    for t in threads {
        t.join().expect("spawning thread");
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    Round {
        total,
        latencies,
        failures,
        kib_per_sandbox: alive.saturating_sub(before) as f64 / live.max(1) as f64,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that does not match skips the run.
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with('-'))
        && !"concurrent".contains(filter.as_str())
    {
        return;
    }
    // Each live sandbox holds a few descriptors here (pidfd, stdin, the init's status pipe):
    // more than the usual soft limit of 1,024 in all.
    // SAFETY: getrlimit/setrlimit on a struct on this stack.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    let sandbox = Arc::new(Sandbox::isolated());
    let mut probe = Command::new("/bin/true");
    probe.stdin(Stdio::Null);
    match sandbox.spawn(&probe).and_then(|mut c| c.wait()) {
        Ok(o) if o.success() => {}
        Ok(o) => return println!("skipping concurrent: /bin/true ended with {}", o.status),
        Err(e) => return println!("skipping concurrent: {e}"),
    }
    // The first round pays for the kernel's caches and the process's allocator: its memory
    // figure is the one that counts (later rounds reuse what it left allocated).
    let first = round(&sandbox);
    std::thread::sleep(Duration::from_secs(2));
    let mut rounds = Vec::new();
    for r in 0..ROUNDS {
        let x = round(&sandbox);
        println!(
            "round {r}: total {:.1} ms, spawn p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} failures, {:.1} KiB per sandbox",
            x.total.as_secs_f64() * 1e3,
            percentile(&x.latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&x.latencies, 0.99).as_secs_f64() * 1e3,
            x.latencies
                .last()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
                * 1e3,
            x.failures,
            x.kib_per_sandbox
        );
        rounds.push(x);
        // Let the kernel tear the network namespaces down before the next round.
        std::thread::sleep(Duration::from_secs(2));
    }
    let med = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    println!(
        "concurrent: {} sandboxes, {THREADS} spawning threads, {ROUNDS} rounds (medians):",
        sandboxes()
    );
    println!("total: {:.3} ms", med(&|r| r.total.as_secs_f64() * 1e3));
    println!(
        "spawn-p50: {:.3} ms",
        med(&|r| percentile(&r.latencies, 0.5).as_secs_f64() * 1e3)
    );
    println!(
        "spawn-p99: {:.3} ms",
        med(&|r| percentile(&r.latencies, 0.99).as_secs_f64() * 1e3)
    );
    println!(
        "spawn-max: {:.3} ms",
        med(&|r| r
            .latencies
            .last()
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3)
    );
    println!(
        "failures: {}",
        rounds.iter().map(|r| r.failures).sum::<usize>()
    );
    println!("failures-first-round: {}", first.failures);
    println!("parent-kib-per-sandbox: {:.1}", first.kib_per_sandbox);
    println!(
        "parent-kib-per-sandbox-later-rounds: {:.1}",
        med(&|r| r.kib_per_sandbox)
    );
}
