//! Spawn latency: start `/bin/true` and wait for it, with `std::process::Command`, with
//! ringfence (no namespaces, then pid+uts+ipc+net+cgroup namespaces) and with peer sandboxing
//! tools given the same isolation. Everything is in one criterion group (`spawn`), so one run
//! gives figures that can be compared; `scripts/bench` runs it and prints the ratios.
//!
//! The `-128m` benchmarks repeat std and ringfence from a parent holding 128 MiB of heap.
//!
//! The namespaced benchmarks need the privilege to create namespaces without a user namespace
//! (root). Peers that are not on `PATH` are skipped with a message. See docs/BENCHMARKS.md.

use std::ffi::OsStr;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use ringfence::{Command, Net, Sandbox};

const TRUE: &str = "/bin/true";

/// Heap the parent holds (touched, so resident) for the `-128m` benchmarks.
const BALLAST_MIB: usize = 128;

/// Pause between two benchmarks, so that work the kernel defers after one (network namespace
/// teardown runs asynchronously in a workqueue) is not billed to the next.
const SETTLE: Duration = Duration::from_secs(2);

/// After a benchmark that ran (not one a command-line filter left out), give the kernel time.
fn settle(ran: bool) {
    if ran {
        std::thread::sleep(SETTLE);
    }
}

/// Where `name` is on `PATH`, if anywhere.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A `std::process::Command` for `program args...`. The standard streams are inherited, as
/// with ringfence's `Command` (nothing is printed: every program here runs `/bin/true`).
fn std_command(program: impl AsRef<OsStr>, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    cmd
}

/// Run `cmd` once and fail loudly if it does not succeed: a peer that cannot create the
/// namespaces here must not be benchmarked as if it did.
fn check(name: &str, cmd: &mut std::process::Command) -> bool {
    // `output` captures stdout and stderr for this run only.
    match cmd.output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            println!(
                "skipping {name}: it failed here ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            println!("skipping {name}: cannot run it: {e}");
            false
        }
    }
}

fn bench_std_command(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut cmd: std::process::Command,
) {
    if !check(name, &mut cmd) {
        return;
    }
    let mut ran = false;
    group.bench_function(name, |b| {
        ran = true;
        b.iter(|| {
            let status = cmd.status().expect("spawn");
            assert!(status.success(), "{name}: {status}");
            black_box(status)
        })
    });
    settle(ran);
}

/// A peer tool on `PATH`, benchmarked as `tool args... /bin/true`; skipped when missing.
fn bench_peer(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, tool: &str, args: &[&str]) {
    let Some(path) = which(tool) else {
        println!("skipping {name}: `{tool}` is not on PATH");
        return;
    };
    let mut full: Vec<&str> = args.to_vec();
    full.push(TRUE);
    bench_std_command(group, name, std_command(path, &full));
}

fn bench_ringfence(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, sandbox: Sandbox) {
    let cmd = Command::new(TRUE);
    match sandbox.spawn(&cmd).and_then(|mut c| c.wait()) {
        Ok(o) if o.success() => {}
        Ok(o) => {
            println!("skipping {name}: /bin/true ended with {}", o.status);
            return;
        }
        Err(e) => {
            println!("skipping {name}: {e}");
            return;
        }
    }
    let mut ran = false;
    group.bench_function(name, |b| {
        ran = true;
        b.iter(|| {
            let outcome = sandbox.spawn(&cmd).expect("spawn").wait().expect("wait");
            assert!(outcome.success(), "{name}: {}", outcome.status);
            black_box(outcome)
        })
    });
    settle(ran);
}

fn spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(50);

    // 1. The baseline: what any Rust program pays to run a process.
    bench_std_command(&mut group, "std", std_command(TRUE, &[]));

    // 2. ringfence's hygiene only: new session, die-with-parent, no_new_privs, capabilities
    //    dropped, descriptors closed, empty environment; no namespace.
    bench_ringfence(&mut group, "ringfence", Sandbox::new());

    // 3. ringfence with new pid, uts, ipc, cgroup and network namespaces (an init runs as
    //    pid 1 in front of the program; `lo` is brought up).
    bench_ringfence(
        &mut group,
        "ringfence-ns",
        Sandbox::new()
            .pid_ns()
            .uts_ns()
            .ipc_ns()
            .cgroup_ns()
            .net(Net::New),
    );

    // 4. bubblewrap with the same namespaces. `--dev-bind / /` because bwrap always makes a
    //    mount namespace and needs a root in it: this keeps the host's view, like ringfence
    //    without a mount namespace. As root and without --unshare-user, bwrap runs as it does
    //    when installed setuid.
    bench_peer(
        &mut group,
        "bwrap",
        "bwrap",
        &[
            "--dev-bind",
            "/",
            "/",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-ipc",
            "--unshare-net",
            "--unshare-cgroup",
            "--die-with-parent",
            "--new-session",
        ],
    );

    // 5. util-linux unshare(1): namespaces only, none of the hygiene.
    bench_peer(
        &mut group,
        "unshare",
        "unshare",
        &["--fork", "--pid", "--uts", "--ipc", "--net", "--cgroup"],
    );

    // 6. nsjail and minijail, when installed (Debian 12 packages neither). nsjail creates
    //    user, mount, pid, ipc, uts, cgroup and net namespaces by default: keep the host's user
    //    and mount namespaces, no /proc mount, no rlimit changes.
    bench_peer(
        &mut group,
        "nsjail",
        "nsjail",
        &[
            "--mode",
            "o",
            "--quiet",
            "--disable_clone_newuser",
            "--disable_clone_newns",
            "--disable_proc",
            "--disable_rlimits",
            "--",
        ],
    );
    // minijail0: -p pid (with minijail as init), --uts, -l ipc, -e net, -N cgroup namespace.
    bench_peer(
        &mut group,
        "minijail",
        "minijail0",
        &["-p", "--uts", "-l", "-e", "-N", "--"],
    );

    // 7. The same from a parent with a larger heap (128 MiB, touched), as a CI runner or a
    //    fuzz harness may have: shows whether a spawn's cost grows with the caller's memory.
    //    std spawns with CLONE_VM|CLONE_VFORK (posix_spawn), which copies no page tables.
    let ballast = vec![1u8; BALLAST_MIB << 20];
    black_box(&ballast);
    group.sample_size(20);
    bench_std_command(&mut group, "std-128m", std_command(TRUE, &[]));
    bench_ringfence(&mut group, "ringfence-128m", Sandbox::new());
    bench_ringfence(
        &mut group,
        "ringfence-ns-128m",
        Sandbox::new()
            .pid_ns()
            .uts_ns()
            .ipc_ns()
            .cgroup_ns()
            .net(Net::New),
    );
    drop(ballast);

    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    spawn(&mut c);
    c.final_summary();
}
