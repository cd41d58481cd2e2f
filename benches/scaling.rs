//! How spawn time grows: with the number of bind mounts, and with the size of the seccomp
//! profile. Each iteration spawns `/bin/true` from one `Sandbox` built outside the loop and
//! waits for it, so the work a sandbox keeps between spawns (the compiled profile, the mount
//! plan) is done once, as in a program that spawns the same sandbox many times.
//!
//! - `binds-N`: `Sandbox::isolated()` plus N read-only binds of small files (0, 10, 50, 100),
//!   each on its own destination under `/job`.
//! - `rules-N`: `Sandbox::new()` (no namespaces) with `Profile::allow_all()` plus N
//!   conditional rules (10, 100, 1,000), spread over 50 syscalls `/bin/true` does not make
//!   with those arguments; `rules-0` is `Profile::allow_all()` alone (the guard only).
//! - `rules-1000-cold`: the same 1,000-rule profile in a new `Sandbox` per spawn (compiled each
//!   time), for comparison.
//!
//! The namespaced benchmarks need root (namespaces without a user namespace). `scripts/bench`
//! runs this with the other benchmarks and reports the growth; see docs/BENCHMARKS.md.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use ringfence::{Action, Command, Cond, Profile, Sandbox, Syscall};

const TRUE: &str = "/bin/true";

/// Syscalls the rules are spread over: `/bin/true` makes none of them with a first argument
/// in the rules' range (most of them not at all).
const RULED: [&str; 50] = [
    "socket",
    "connect",
    "bind",
    "listen",
    "accept",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "shutdown",
    "getsockname",
    "getpeername",
    "socketpair",
    "setsockopt",
    "getsockopt",
    "kill",
    "tkill",
    "tgkill",
    "setpgid",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "sched_setscheduler",
    "sched_setparam",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semctl",
    "shmget",
    "shmat",
    "shmctl",
    "shmdt",
    "flock",
    "fchmod",
    "fchown",
    "truncate",
    "ftruncate",
    "sync_file_range",
    "tee",
    "splice",
    "vmsplice",
    "inotify_init1",
];

/// `Profile::allow_all()` with `n` rules refusing `syscall(v, ...)` for `v` in 1000.. (32-bit
/// comparisons, as for `int` arguments).
fn profile_with(n: usize) -> Profile {
    let mut p = Profile::allow_all();
    for i in 0..n {
        let name = RULED[i % RULED.len()];
        let Ok(s) = Syscall::named(name) else {
            continue;
        };
        let v = 1000 + (i / RULED.len()) as u64;
        p = p.rule(s, [Cond::arg32(0).eq(v)], Action::EPERM);
    }
    p
}

/// A directory holding `n` small files to bind, removed on drop.
struct Files {
    dir: PathBuf,
    n: usize,
}

impl Files {
    fn new(n: usize) -> Files {
        let dir =
            std::env::temp_dir().join(format!("ringfence-bench-binds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for i in 0..n {
            std::fs::write(dir.join(format!("f{i}")), b"x").expect("temp file");
        }
        Files { dir, n }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_once(sandbox: &Sandbox, cmd: &Command) -> Result<(), String> {
    let o = sandbox
        .spawn(cmd)
        .and_then(|mut c| c.wait())
        .map_err(|e| e.to_string())?;
    if o.success() {
        Ok(())
    } else {
        Err(format!("/bin/true ended with {}", o.status))
    }
}

fn bench(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, sandbox: &Sandbox) {
    let cmd = Command::new(TRUE);
    if let Err(e) = run_once(sandbox, &cmd) {
        println!("skipping {name}: {e}");
        return;
    }
    group.bench_function(name, |b| {
        b.iter(|| {
            let outcome = sandbox.spawn(&cmd).expect("spawn").wait().expect("wait");
            assert!(outcome.success(), "{name}: {}", outcome.status);
            black_box(outcome)
        })
    });
}

fn scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("scaling");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(40);

    let files = Files::new(100);
    for n in [0, 10, 50, 100] {
        let mut sb = Sandbox::isolated();
        for i in 0..n.min(files.n) {
            sb = sb.bind_ro(files.dir.join(format!("f{i}")), format!("/job/f{i}"));
        }
        bench(&mut group, &format!("binds-{n}"), &sb);
        // Network namespaces are torn down by a kernel worker after the benchmark: let it
        // finish before the next one.
        std::thread::sleep(Duration::from_secs(1));
    }

    for n in [0, 10, 100, 1000] {
        let p = profile_with(n);
        let len = p
            .compile()
            .map(|c| c.programs().map(<[_]>::len).sum::<usize>());
        println!(
            "rules-{n}: {} instructions",
            len.map_or("?".into(), |l| l.to_string())
        );
        bench(
            &mut group,
            &format!("rules-{n}"),
            &Sandbox::new().seccomp(p),
        );
    }
    let p = profile_with(1000);
    let cmd = Command::new(TRUE);
    if run_once(&Sandbox::new().seccomp(p.clone()), &cmd).is_ok() {
        group.bench_function("rules-1000-cold", |b| {
            b.iter(|| {
                let sb = Sandbox::new().seccomp(p.clone());
                let outcome = sb.spawn(&cmd).expect("spawn").wait().expect("wait");
                assert!(outcome.success());
                black_box(outcome)
            })
        });
    }
    group.finish();
    drop(files);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    scaling(&mut c);
    c.final_summary();
}
