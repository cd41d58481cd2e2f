//! Prepared sandboxes and the warm mode: many runs through one zygote, with the right outcome
//! for each (exit codes, signals, timeouts, setup failures), no process surviving its run, the
//! tmpfs reset, runs killed from outside, nothing left after the handle is dropped or its owner
//! killed, and clear errors for what a run's request cannot carry. Run as root and, through
//! `rootless_test!`, as uid 65534.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{alive, rf};
use ringfence::{
    Command, ConfigError, Errno, Error, Profile, Rlimit, RunOptions, Sandbox, Stage, Stdio,
    WarmError, WarmOptions,
};

fn sh(script: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(script);
    c
}

fn ns_capable() -> bool {
    common::is_root() || common::userns_available()
}

fn stdout(out: &ringfence::Outcome) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit codes, signals (also self-sent ones, which a pid 1 would not receive), a timeout, a
/// program that cannot be executed, stdin, environment, working directory and a per-run
/// resource limit — each run right, and none disturbing the next.
fn outcomes_are_right(sb: &Sandbox) {
    let mut warm = sb.warm().unwrap();
    let inspect = common::inspect();
    let inspect = inspect.to_str().unwrap();
    for i in 0..40 {
        match i % 4 {
            0 | 1 => {
                let out = warm.output(&sh(&format!("exit {i}"))).unwrap();
                assert_eq!(out.status.code(), Some(i), "{out:?}");
                assert!(!out.timed_out);
            }
            2 => {
                let out = warm.output(&rf(&["kill-self", "15"])).unwrap();
                assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
            }
            _ => {
                let signal = [libc::SIGSEGV, libc::SIGABRT][(i / 4) as usize % 2];
                let out = warm.output(&sh(&format!("kill -{signal} $$"))).unwrap();
                assert_eq!(out.status.signal(), Some(signal), "{out:?}");
            }
        }
    }
    // A timeout kills the run (and what it started), and only that run.
    let opts = RunOptions::new().timeout(Duration::from_millis(200));
    let out = warm
        .run(&sh(&format!("{inspect} tree 30; sleep 30")), &opts)
        .unwrap();
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert!(warm.output(&sh("exit 0")).unwrap().success());

    // Not executable: a setup error, as with Sandbox::spawn; the zygote stays.
    match warm.output(&Command::new("/nonexistent/program")) {
        Err(Error::Setup {
            stage: Stage::Exec,
            errno: Errno::ENOENT,
        }) => {}
        other => panic!("{other:?}"),
    }

    // Stdin from memory (small: a pipe; large: a memfd), environment, working directory.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for data in [&b"hello\n"[..], &big] {
        let out = warm
            .run(&Command::new("/bin/cat"), &RunOptions::new().input(data))
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, data);
    }
    let mut cmd = sh("echo \"$GREETING\"; pwd; echo err >&2");
    cmd.env("GREETING", "hi").current_dir("/");
    let out = warm.output(&cmd).unwrap();
    assert_eq!(stdout(&out), "hi\n/\n");
    assert_eq!(out.stderr, b"err\n");

    // A resource limit for one run only.
    let opts = RunOptions::new().rlimit(Rlimit::Nofile, 33, 33);
    assert_eq!(stdout(&warm.run(&sh("ulimit -n"), &opts).unwrap()), "33\n");
    assert_ne!(stdout(&warm.output(&sh("ulimit -n")).unwrap()), "33\n");

    // Timing comes with every run.
    let out = warm.output(&sh("exit 0")).unwrap();
    assert!(out.usage.wall > Duration::ZERO);
}

#[test]
fn runs_have_the_right_outcomes_as_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    outcomes_are_right(&Sandbox::new());
    outcomes_are_right(&Sandbox::isolated().bind_ro(common::inspect(), common::inspect()));
}

rootless_test! {
    fn runs_have_the_right_outcomes_rootless() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        outcomes_are_right(&Sandbox::new());
        outcomes_are_right(&Sandbox::isolated().bind_ro(common::inspect(), common::inspect()));
    }
}

/// A run never sees a process of an earlier run, even one that left its process group.
fn runs_are_separate(sb: &Sandbox) {
    let mut warm = sb.warm().unwrap();
    let out = warm.output(&rf(&["daemon", "60"])).unwrap();
    let daemon = stdout(&out)
        .trim()
        .strip_prefix("daemon=")
        .unwrap()
        .to_owned();
    // Every process visible in the sandbox's /proc: the zygote (1) and the shell (the glob
    // needs no other process).
    let out = warm
        .output(&sh(&format!(
            "kill -0 {daemon} 2>/dev/null && echo alive; echo /proc/[0-9]*"
        )))
        .unwrap();
    let seen = stdout(&out);
    assert_eq!(
        seen.split_whitespace().count(),
        2,
        "a process of the previous run is visible: {seen}"
    );
    assert!(seen.starts_with("/proc/1 "), "{seen}");
}

#[test]
fn runs_do_not_see_earlier_runs_as_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    runs_are_separate(&Sandbox::isolated().bind_ro(common::inspect(), common::inspect()));
}

rootless_test! {
    fn runs_do_not_see_earlier_runs_rootless() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        runs_are_separate(&Sandbox::isolated().bind_ro(common::inspect(), common::inspect()));
    }
}

fn tmpfs_reset(sb: &Sandbox) {
    let sb = sb
        .clone()
        .mkdir("/tmp/kept")
        .write_file("/tmp/kept/file", "from the sandbox\n");
    let write = sh("echo run > /tmp/junk; echo run > /dev/shm/junk; echo run >> /tmp/kept/file");
    let look = sh("cat /tmp/junk /dev/shm/junk 2>/dev/null; cat /tmp/kept/file");

    // By default the tmpfs mounts live as long as the warm sandbox.
    let mut warm = sb.warm().unwrap();
    assert!(warm.output(&write).unwrap().success());
    assert_eq!(
        stdout(&warm.output(&look).unwrap()),
        "run\nrun\nfrom the sandbox\nrun\n"
    );

    // With the reset, every run starts from what the sandbox put there.
    let mut warm = sb
        .prepare()
        .unwrap()
        .warm_with(WarmOptions::new().reset_tmpfs(true))
        .unwrap();
    for _ in 0..3 {
        assert!(warm.output(&write).unwrap().success());
        assert_eq!(stdout(&warm.output(&look).unwrap()), "from the sandbox\n");
    }
}

#[test]
fn tmpfs_reset_gives_each_run_a_clean_tmp_as_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    tmpfs_reset(&Sandbox::isolated());
}

rootless_test! {
    fn tmpfs_reset_gives_each_run_a_clean_tmp_rootless() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        tmpfs_reset(&Sandbox::isolated());
    }
}

/// The host pid of the zygote's child, once it exists.
fn run_process(zygote: u32) -> i32 {
    for _ in 0..500 {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if status.lines().any(|l| {
                l.split_whitespace()
                    .eq(["PPid:".to_owned(), zygote.to_string()])
            }) {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the run's process did not appear");
}

fn killed_run(sb: &Sandbox) {
    let mut warm = sb.warm().unwrap();
    let zygote = warm.zygote_pid();
    let killer = std::thread::spawn(move || {
        let pid = run_process(zygote);
        // SAFETY: signals a process this test started (the run, a descendant of ours).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let out = warm.output(&rf(&["sleep", "60"])).unwrap();
    killer.join().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    assert!(!out.timed_out);
    for i in 0..5 {
        assert_eq!(
            warm.output(&sh(&format!("exit {i}")))
                .unwrap()
                .status
                .code(),
            Some(i)
        );
    }
}

#[test]
fn a_killed_run_does_not_disturb_the_next_as_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    killed_run(&Sandbox::new());
}

rootless_test! {
    fn a_killed_run_does_not_disturb_the_next_rootless() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        killed_run(&Sandbox::new());
    }
}

fn wait_gone(pid: i32) {
    for _ in 0..250 {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("process {pid} is still alive");
}

#[test]
fn dropping_the_handle_leaves_nothing_as_root() {
    if !common::is_root() {
        return common::skip("needs root (a cgroup of its own)");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let sb = Sandbox::isolated()
        .bind_ro(common::inspect(), common::inspect())
        .pids_limit(64);
    let mut warm = sb.warm().unwrap();
    let zygote = warm.zygote_pid() as i32;
    let cgroups: Vec<String> = std::fs::read_to_string(format!("/proc/{zygote}/cgroup"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(":pids:") || l.starts_with("0::"))
        .map(|l| l.rsplit(':').next().unwrap().to_owned())
        .collect();
    assert!(!cgroups.is_empty());
    // The last run leaves a daemon (killed at the run's end, like everything it started).
    assert!(warm.output(&rf(&["daemon", "60"])).unwrap().success());
    drop(warm);
    wait_gone(zygote);
    assert!(!common::children().contains(&zygote));
    // The sandbox keeps its ended runs' cgroups for its next spawn, until it goes too.
    drop(sb);
    for cg in cgroups {
        let dir = format!("/sys/fs/cgroup/pids{cg}");
        let unified = format!("/sys/fs/cgroup{cg}");
        assert!(
            !std::path::Path::new(&dir).exists() && !std::path::Path::new(&unified).exists()
                || cg == "/",
            "cgroup {cg} is left"
        );
    }
    assert_eq!(
        std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        mounts
    );
}

rootless_test! {
    fn dropping_the_handle_leaves_no_process_rootless() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        let mut warm = Sandbox::new().warm().unwrap();
        let zygote = warm.zygote_pid() as i32;
        assert!(warm.output(&sh("exit 0")).unwrap().success());
        drop(warm);
        wait_gone(zygote);
        assert!(!common::children().contains(&zygote));
    }
}

/// Helper of `the_zygote_dies_with_its_owner`: owns a warm sandbox, prints the zygote's pid,
/// and runs a long program until it is killed.
#[test]
#[ignore = "run by the_zygote_dies_with_its_owner"]
fn warm_owner() {
    if !common::in_child() {
        return;
    }
    let mut warm = Sandbox::new().warm().unwrap();
    println!("zygote={}", warm.zygote_pid());
    let mut cmd = rf(&["sleep", "60"]);
    cmd.stdout(Stdio::null());
    let _ = warm.output(&cmd);
}

#[test]
fn the_zygote_dies_with_its_owner() {
    if !ns_capable() {
        return common::skip("needs root or user namespaces");
    }
    use std::io::BufRead;
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "warm_owner",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(common::CHILD_ENV, "fresh")
        .env(common::INSPECT_ENV, common::inspect())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(owner.stdout.take().unwrap()).lines();
    let zygote: i32 = lines
        .find_map(|l| l.ok()?.split("zygote=").nth(1)?.trim().parse().ok())
        .expect("the owner printed the zygote's pid");
    let run = run_process(zygote as u32);
    owner.kill().unwrap();
    owner.wait().unwrap();
    wait_gone(zygote);
    wait_gone(run);
}

#[test]
fn bad_requests_are_refused_clearly() {
    if !ns_capable() {
        return common::skip("needs root or user namespaces");
    }
    let mut warm = Sandbox::new()
        .prepare()
        .unwrap()
        .warm_with(WarmOptions::new().profile(Profile::deny_only(&["mkdir"])))
        .unwrap();

    let mut huge = Command::new("/bin/true");
    huge.arg("x".repeat(70_000));
    let e = warm.output(&huge).unwrap_err();
    assert!(matches!(e, Error::Warm(WarmError::TooLarge { .. })), "{e}");
    assert!(e.to_string().contains("bytes"), "{e}");
    assert!(e.hint().is_some());

    let mut many = Command::new("/bin/true");
    many.args(std::iter::repeat_n("a", 5000));
    let e = warm.output(&many).unwrap_err();
    assert!(matches!(e, Error::Warm(WarmError::TooMany { .. })), "{e}");

    let opts = RunOptions::new().profile(1);
    let e = warm.run(&sh("exit 0"), &opts).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Warm(WarmError::NoSuchProfile { index: 1, count: 1 })
        ),
        "{e}"
    );

    let opts = RunOptions::new().rlimit(Rlimit::Nofile, 10, 5);
    let e = warm.run(&sh("exit 0"), &opts).unwrap_err();
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidRlimit { .. })),
        "{e}"
    );

    let f = std::fs::File::open("/dev/null").unwrap();
    let mut passing = Command::new("/bin/true");
    passing.pass_fd_as(&f, 10).unwrap();
    let e = warm.output(&passing).unwrap_err();
    assert!(
        matches!(e, Error::Warm(WarmError::Unsupported { .. })),
        "{e}"
    );

    // The per-run profile applies to its run only.
    let mkdir = sh("mkdir /tmp/ringfence-warm-test-$$ && rmdir /tmp/ringfence-warm-test-$$");
    let out = warm.run(&mkdir, &RunOptions::new().profile(0)).unwrap();
    assert!(
        !out.success(),
        "mkdir was allowed under the per-run profile"
    );
    assert!(warm.output(&mkdir).unwrap().success());

    // After all that, runs still work.
    assert!(warm.output(&sh("exit 0")).unwrap().success());

    // What warm mode cannot do is refused when it starts.
    let notify = Profile::allow_all().rule(
        ringfence::Syscall::named("mkdir").unwrap(),
        [],
        ringfence::Action::Notify,
    );
    let e = Sandbox::new().seccomp(notify).warm().unwrap_err();
    assert!(
        matches!(e, Error::Warm(WarmError::Unsupported { .. })),
        "{e}"
    );
    let e = Sandbox::isolated()
        .bind_ro("/usr", "/tmp/usr")
        .prepare()
        .unwrap()
        .warm_with(WarmOptions::new().reset_tmpfs(true))
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(ConfigError::Conflict { .. })),
        "{e}"
    );
}

#[test]
fn prepare_validates_once_and_spawns_many_times() {
    let e = Sandbox::new()
        .hostname("x".repeat(65))
        .prepare()
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidHostname { len: 65 })),
        "{e}"
    );
    let e = Sandbox::new()
        .bind_ro("/nonexistent/ringfence", "/x")
        .prepare()
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(ConfigError::SourceUnavailable { .. })),
        "{e}"
    );
    let prepared = if ns_capable() {
        Sandbox::isolated().prepare().unwrap()
    } else {
        Sandbox::new().prepare().unwrap()
    };
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let p = prepared.clone();
            std::thread::spawn(move || {
                for j in 0..5 {
                    let out = p.output(&sh(&format!("exit {}", i + j))).unwrap();
                    assert_eq!(out.status.code(), Some(i + j));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
