//! Entering a running sandbox: `Child::exec` and `Sandbox::join` land in the same namespaces
//! (compared by `/proc/PID/ns/*` inode) and cgroup, see the sandbox's files, and cannot do what
//! the sandbox cannot; joining what has ended, what is no sandbox or what is not ours fails
//! clearly. Run as root and, through `rootless_test!`, as uid 65534.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::Facts;
use ringfence::{Command, ConfigError, Error, Profile, Sandbox, Stdio};

fn can_isolate() -> bool {
    common::is_root() || common::userns_available()
}

/// The sandbox to join: isolated, with rf-inspect and a marker file inside.
fn target() -> Sandbox {
    Sandbox::isolated()
        .bind_ro(common::inspect(), "/rf-inspect")
        .write_file("/etc/marker", "inside\n")
}

fn sleeper(secs: &str) -> Command {
    let mut c = Command::new("/rf-inspect");
    c.args(["sleep", secs]);
    c
}

/// rf-inspect with these arguments, as seen inside the sandbox, output captured.
fn inside(args: &[&str]) -> Command {
    let mut c = Command::new("/rf-inspect");
    c.args(args);
    piped(c)
}

fn ns_link(pid: u32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn output(child: ringfence::Child) -> ringfence::Outcome {
    child.wait_with_output().unwrap()
}

fn piped(mut cmd: Command) -> Command {
    cmd.stdout(Stdio::Piped).stderr(Stdio::Piped);
    cmd
}

fn exec_lands_in_the_sandbox() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    let sandbox = target().spawn(&sleeper("30")).unwrap();
    let out = output(sandbox.exec(&inside(&["facts"])).unwrap());
    assert!(
        out.success(),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let f = Facts::parse(&out);
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "user"] {
        assert_eq!(
            f.get(&format!("ns.{ns}")),
            ns_link(sandbox.id(), ns),
            "the exec'd process is not in the sandbox's {ns} namespace"
        );
    }
    // It is a process of the sandbox's pid namespace, not its pid 1, and its hostname is the
    // sandbox's.
    assert_ne!(f.get("pid"), "1");
    assert_eq!(f.get("hostname"), "sandbox");
    // It sees the sandbox's files.
    let out = output(
        sandbox
            .exec(&piped({
                let mut c = Command::new("cat");
                c.arg("/etc/marker");
                c
            }))
            .unwrap(),
    );
    assert_eq!(
        out.stdout,
        b"inside\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its status is the program's own, through the relay.
    let out = output(
        sandbox
            .exec(&piped({
                let mut c = Command::new("sh");
                c.args(["-c", "exit 7"]);
                c
            }))
            .unwrap(),
    );
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn exec_lands_in_the_sandbox_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    exec_lands_in_the_sandbox();
}

rootless_test! {
    fn exec_lands_in_the_sandbox_rootless() {
        exec_lands_in_the_sandbox();
    }
}

fn exec_is_as_restricted_as_the_sandbox() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    let sandbox = target().spawn(&sleeper("30")).unwrap();
    // Read-only paths stay read-only.
    let out = output(
        sandbox
            .exec(&piped({
                let mut c = Command::new("sh");
                c.args(["-c", "echo x > /usr/ringfence-exec-test"]);
                c
            }))
            .unwrap(),
    );
    assert!(!out.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The default profile refuses new namespaces to the exec'd process too.
    let out = output(
        sandbox
            .exec(&piped({
                let mut c = Command::new("unshare");
                c.args(["--user", "true"]);
                c
            }))
            .unwrap(),
    );
    assert!(!out.success(), "unshare succeeded inside");
    // No capabilities.
    let out = output(sandbox.exec(&inside(&["facts"])).unwrap());
    let f = Facts::parse(&out);
    assert_eq!(f.get("CapEff"), "0000000000000000");
    assert_eq!(f.get("NoNewPrivs"), "1");
    assert_eq!(f.get("Seccomp"), "2");
}

#[test]
fn exec_is_as_restricted_as_the_sandbox_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    exec_is_as_restricted_as_the_sandbox();
}

rootless_test! {
    fn exec_is_as_restricted_as_the_sandbox_rootless() {
        exec_is_as_restricted_as_the_sandbox();
    }
}

#[test]
fn join_applies_stricter_restrictions() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    let sandbox = target().spawn(&sleeper("30")).unwrap();
    let mut mkdir = Command::new("mkdir");
    mkdir.arg("/tmp/made");
    let strict = Sandbox::new().seccomp(Profile::deny_only(&["mkdir", "mkdirat"]));
    let out = strict.join(&sandbox).output(&mkdir).unwrap();
    assert!(
        !out.success(),
        "mkdir worked under a profile that denies it"
    );
    // The sandbox's own restrictions allow it.
    let out = output(sandbox.exec(&piped(mkdir.clone())).unwrap());
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn exec_dies_with_the_sandbox() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    let mut sandbox = target().spawn(&sleeper("30")).unwrap();
    let mut joined = sandbox.exec(&sleeper("30")).unwrap();
    let started = Instant::now();
    sandbox.kill().unwrap();
    sandbox.wait().unwrap();
    let out = joined.wait_timeout(Duration::from_secs(10)).unwrap();
    let out = out.expect("the exec'd process outlived its sandbox");
    assert!(!out.success());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn killing_the_exec_leaves_the_sandbox_running() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    let mut sandbox = target().spawn(&sleeper("30")).unwrap();
    let mut joined = sandbox.exec(&sleeper("30")).unwrap();
    joined.kill().unwrap();
    let out = joined.wait().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert!(
        sandbox.try_wait().unwrap().is_none(),
        "the sandbox ended too"
    );
    // Nothing of the exec'd program is left in the sandbox's pid namespace.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ns = ns_link(sandbox.id(), "pid");
    while common::pids_in_ns(&ns).len() > 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        common::pids_in_ns(&ns).len(),
        2,
        "{:?}",
        common::pids_in_ns(&ns)
    );
}

#[test]
fn exec_joins_the_sandbox_cgroup_root() {
    if !common::is_root() {
        return common::skip("needs root (cgroups)");
    }
    let sandbox = target().pids_limit(64).spawn(&sleeper("30")).unwrap();
    let mut joined = sandbox.exec(&sleeper("30")).unwrap();
    // Seen from the host: the joining process (the relay in front of the program) is in
    // the sandbox's cgroup, in every hierarchy.
    let cgroup_of = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let theirs = cgroup_of(sandbox.id());
    assert!(theirs.contains("ringfence-"), "{theirs}");
    assert_eq!(cgroup_of(joined.id()), theirs);
    joined.kill().unwrap();
    joined.wait().unwrap();
}

#[test]
fn joining_an_ended_sandbox_fails() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    let mut done = target().spawn(&sleeper("0")).unwrap();
    // Not reaped yet: a zombie has no namespaces left to join (its mount namespace link is
    // gone; the pid and user ones stay).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{}/ns/mnt", done.id())).is_ok()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let e = done.exec(&sleeper("1")).unwrap_err();
    assert!(matches!(e, Error::Join { .. }), "{e}");
    assert!(e.to_string().contains("ended"), "{e}");
    done.wait().unwrap();
    let e = done.exec(&sleeper("1")).unwrap_err();
    assert!(e.to_string().contains("ended"), "{e}");
}

#[test]
fn joining_what_is_no_sandbox_fails() {
    let mut plain = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .unwrap();
    let before = common::open_fds();
    let e = Sandbox::new()
        .join_pid(plain.id())
        .spawn(&sleeper("1"))
        .unwrap_err();
    assert!(e.to_string().contains("not a sandbox"), "{e}");
    let e = Sandbox::new().join_pid(0).spawn(&sleeper("1")).unwrap_err();
    assert!(matches!(e, Error::Join { .. }), "{e}");
    let e = Sandbox::new()
        .join_pid(i32::MAX as u32)
        .spawn(&sleeper("1"))
        .unwrap_err();
    assert!(e.to_string().contains("no such process"), "{e}");
    assert_eq!(common::open_fds(), before);
    plain.kill().unwrap();
    plain.wait().unwrap();
}

rootless_test! {
    fn joining_a_sandbox_of_another_user_fails_rootless() {
        // pid 1 belongs to root.
        let e = Sandbox::new().join_pid(1).spawn(&sleeper("1")).unwrap_err();
        assert!(e.to_string().contains("belongs to uid 0"), "{e}");
    }
}

#[test]
fn join_with_options_that_create_namespaces_fails() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    let sandbox = target().spawn(&sleeper("30")).unwrap();
    let e = Sandbox::isolated()
        .join(&sandbox)
        .spawn(&sleeper("1"))
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(ConfigError::Conflict { .. })),
        "{e}"
    );
    let e = Sandbox::new()
        .memory_limit(64 << 20)
        .join(&sandbox)
        .spawn(&sleeper("1"))
        .unwrap_err();
    assert!(e.to_string().contains("cgroup"), "{e}");
}

#[test]
fn exec_keeps_the_sandbox_landlock_rules() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    if ringfence::landlock::abi() == 0 {
        return common::skip("this kernel has no Landlock");
    }
    let base = std::env::temp_dir().join(format!("ringfence-join-landlock-{}", std::process::id()));
    let (rw, other) = (base.join("rw"), base.join("other"));
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    // Best effort: the file rules hold on kernels without the truncate and ioctl parts.
    let sandbox = Sandbox::new()
        .pid_ns()
        .compat(ringfence::Compat::BestEffort)
        .landlock(
            ringfence::Landlock::new()
                .read_only(["/"])
                .read_write([&rw]),
        )
        .spawn(&sleeper_at(&common::inspect()))
        .unwrap();
    let touch = |path: &std::path::Path| {
        let mut c = Command::new("touch");
        c.arg(path);
        output(sandbox.exec(&piped(c)).unwrap())
    };
    let allowed = touch(&rw.join("a"));
    let denied = touch(&other.join("b"));
    let _ = std::fs::remove_dir_all(&base);
    assert!(
        allowed.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    assert!(
        !denied.success(),
        "the exec'd process escaped the sandbox's Landlock rules"
    );
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
}

/// `rf-inspect sleep 30` by its host path (for sandboxes without a filesystem view).
fn sleeper_at(inspect: &std::path::Path) -> Command {
    let mut c = Command::new(inspect);
    c.args(["sleep", "30"]);
    c
}
