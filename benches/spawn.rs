//! Spawn latency: start `/bin/true` and wait for it, with `std::process::Command`, with
//! ringfence (no namespaces; pid+uts+ipc+net+cgroup namespaces; `Sandbox::isolated()`'s full
//! filesystem view; a cgroup with limits; without the seccomp profile) and with peer sandboxing
//! tools given the same isolation. Everything is in one criterion group (`spawn`), so one run
//! gives figures that can be compared; `scripts/bench` runs it and prints the ratios.
//!
//! The `-128m` benchmarks repeat std and ringfence from a parent holding 128 MiB of heap.
//!
//! The namespaced and cgroup benchmarks need the privilege to create namespaces without a user
//! namespace and to create cgroups (root). Peers that are not on `PATH` are skipped with a
//! message. See docs/BENCHMARKS.md.

use std::ffi::OsStr;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use ringfence::{Command, Cpu, Net, Profile, Sandbox};

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

/// Which of the host's top-level system directories `Sandbox::isolated()` mirrors as symlinks
/// (merged `/usr`) and which it binds read-only: the same probe as ringfence's, so that the
/// bwrap command gets the same root on any host.
fn host_system_args() -> Vec<String> {
    let mut args = vec!["--ro-bind".into(), "/usr".into(), "/usr".into()];
    for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() => {
                let Ok(target) = std::fs::read_link(dir) else {
                    continue;
                };
                args.extend(["--symlink".into(), target.to_string_lossy().into_owned()]);
                args.push(dir.into());
            }
            Ok(m) if m.is_dir() => args.extend(["--ro-bind-try".into(), dir.into(), dir.into()]),
            _ => {}
        }
    }
    // ringfence's `HOST_ETC`, each bound read-only when present.
    for name in [
        "ld.so.cache",
        "ld.so.conf",
        "ld.so.conf.d",
        "alternatives",
        "passwd",
        "group",
        "nsswitch.conf",
        "localtime",
        "os-release",
        "ssl",
    ] {
        let p = format!("/etc/{name}");
        args.extend(["--ro-bind-try".into(), p.clone(), p]);
    }
    args
}

/// bubblewrap with `Sandbox::isolated()`'s view: `namespaces` (flags), the host system
/// read-only, a private /tmp, its own /proc, a minimal /dev, hostname `sandbox`, the root
/// made read-only once built (as ringfence does).
fn bwrap_isolated_args(namespaces: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = namespaces.iter().map(|s| s.to_string()).collect();
    args.extend(["--new-session", "--die-with-parent"].map(String::from));
    args.extend(host_system_args());
    args.extend(
        [
            "--size",
            "67108864",
            "--tmpfs",
            "/tmp",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--hostname",
            "sandbox",
            "--remount-ro",
            "/",
        ]
        .map(String::from),
    );
    args
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

    // 3b. The cost of the default seccomp profile, installed on every spawn: `ringfence`
    //     without it.
    bench_ringfence(
        &mut group,
        "ringfence-unconfined",
        Sandbox::new().seccomp(Profile::unconfined()),
    );

    // 3c. `ringfence` in a cgroup of its own with three limits (created before the spawn,
    //     the process attached, removed after the wait).
    bench_ringfence(
        &mut group,
        "ringfence-cgroup",
        Sandbox::new()
            .cpu_quota(Cpu::percent(50))
            .memory_limit(256 << 20)
            .pids_limit(64),
    );

    // 3d. The sandbox for untrusted code: every namespace, a new root with the host's system
    //     directories read-only, private /tmp, own /proc, minimal /dev.
    bench_ringfence(&mut group, "ringfence-isolated", Sandbox::isolated());

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

    // 4b. bubblewrap with `Sandbox::isolated()`'s mounts. `--unshare-all` is
    //     `--unshare-user-try --unshare-ipc --unshare-pid --unshare-net --unshare-uts
    //     --unshare-cgroup-try`: even as root, bwrap then creates a user namespace (uid 0 mapped
    //     to 0) wherever the kernel allows one, which ringfence as root does not.
    //     `bwrap-isolated-nouser` lists the namespaces without it: ringfence's set as root.
    let args = bwrap_isolated_args(&["--unshare-all"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bench_peer(&mut group, "bwrap-isolated", "bwrap", &args);
    let args = bwrap_isolated_args(&[
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bench_peer(&mut group, "bwrap-isolated-nouser", "bwrap", &args);

    // 5. util-linux unshare(1): namespaces only, none of the hygiene.
    bench_peer(
        &mut group,
        "unshare",
        "unshare",
        &["--fork", "--pid", "--uts", "--ipc", "--net", "--cgroup"],
    );

    // 5b. unshare(1) as issue-style shorthand: a user namespace with root mapped (-U -r),
    //     fork, pid, ipc, mount, uts and net namespaces.
    bench_peer(&mut group, "unshare-Urfpimun", "unshare", &["-Urfpimun"]);

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
