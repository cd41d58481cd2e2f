//! Bad input gives a clear, typed error and leaves nothing behind: no child process, no open
//! descriptor. Every test here holds one lock for its whole body, so that the descriptors and
//! children of this process can be compared before and after each failed spawn.

mod common;

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;
use ringfence::{Command, ConfigError, Error, IdMap, Net, Rlimit, Sandbox, Stage, UserNs};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawn, expect an error, and check that nothing was left behind. Call with `serial()` held.
fn refused(sb: &Sandbox, cmd: &Command) -> Error {
    let fds = common::open_fds();
    let kids = common::children();
    let err = match sb.spawn(cmd) {
        Ok(mut c) => {
            let out = c.wait();
            panic!("spawn should have failed, it ran: {out:?}");
        }
        Err(e) => e,
    };
    assert_eq!(
        common::open_fds(),
        fds,
        "descriptors leaked by a failed spawn ({err})"
    );
    assert_eq!(
        common::children(),
        kids,
        "a failed spawn left a process ({err})"
    );
    // Every error explains itself.
    assert!(!err.to_string().is_empty());
    eprintln!("BAD INPUT | {err}");
    err
}

#[test]
fn empty_program() {
    let _g = serial();
    let e = refused(&Sandbox::new(), &Command::new(""));
    assert!(matches!(e, Error::Config(ConfigError::EmptyProgram)), "{e}");
}

#[test]
fn program_not_in_path() {
    let _g = serial();
    let mut cmd = Command::new("ringfence-no-such-program");
    cmd.env("PATH", "/usr/bin:/bin");
    let e = refused(&Sandbox::new(), &cmd);
    assert!(matches!(e, Error::ProgramNotFound { .. }), "{e}");
    assert!(e.to_string().contains("ringfence-no-such-program"), "{e}");
    assert!(e.hint().is_some());
}

#[test]
fn missing_binary_fails_at_exec_with_enoent() {
    let _g = serial();
    for sb in [Sandbox::new(), Sandbox::new().pid_ns()] {
        let e = refused(&sb, &Command::new("/nonexistent/program"));
        assert_eq!(e.stage(), Some(Stage::Exec), "{e}");
        assert_eq!(e.errno(), Some(Errno::ENOENT));
        assert!(e.to_string().contains("hint:"), "{e}");
    }
}

#[test]
fn non_executable_file_fails_at_exec_with_eacces() {
    let _g = serial();
    let dir = std::env::temp_dir().join(format!("ringfence-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("not-executable");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    struct Cleanup<'a>(&'a std::path::Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _cleanup = Cleanup(&dir);
    let e = refused(&Sandbox::new().uid(65534), &Command::new(&file));
    let e_dir = refused(&Sandbox::new(), &Command::new(&dir));
    if common::is_root() {
        assert_eq!(e.stage(), Some(Stage::Exec), "{e}");
        assert_eq!(e.errno(), Some(Errno::EACCES), "{e}");
    }
    assert_eq!(e_dir.stage(), Some(Stage::Exec), "{e_dir}");
    assert_eq!(e_dir.errno(), Some(Errno::EACCES), "{e_dir}");
}

#[test]
fn interior_nul_bytes() {
    let _g = serial();
    let mut cmd = Command::new("/bin/true");
    cmd.arg("a\0b");
    let e = refused(&Sandbox::new(), &cmd);
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::InteriorNul { what: "argument" })
        ),
        "{e}"
    );
    let mut cmd = Command::new("/bin/true");
    cmd.env("K", "v\0");
    let e = refused(&Sandbox::new(), &cmd);
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::InteriorNul {
                what: "environment"
            })
        ),
        "{e}"
    );
    let mut cmd = Command::new("/bin/true");
    cmd.env("A=B", "v");
    let e = refused(&Sandbox::new(), &cmd);
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidEnvName { .. })),
        "{e}"
    );
    let e = refused(&Sandbox::new().hostname("a\0b"), &Command::new("/bin/true"));
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::InteriorNul { what: "hostname" })
        ),
        "{e}"
    );
}

#[test]
fn net_join_with_a_closed_or_wrong_descriptor() {
    let _g = serial();
    // A descriptor number that is not open.
    // SAFETY: deliberately wrapping a closed number; it is never closed (forgotten below).
    let closed = unsafe { OwnedFd::from_raw_fd(987_654) };
    let sb = Sandbox::new().net(Net::join(closed));
    let e = refused(&sb, &Command::new("/bin/true"));
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::NotANetNs {
                source: Errno::EBADF
            })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("/proc/PID/ns/net"), "{e}");
    std::mem::forget(sb);

    let not_ns = File::open("/dev/null").unwrap();
    let e = refused(
        &Sandbox::new().net(Net::join(not_ns)),
        &Command::new("/bin/true"),
    );
    assert!(
        matches!(e, Error::Config(ConfigError::NotANetNs { .. })),
        "{e}"
    );

    // A namespace, but not a network one.
    let uts = File::open("/proc/self/ns/uts").unwrap();
    let e = refused(
        &Sandbox::new().net(Net::join(uts)),
        &Command::new("/bin/true"),
    );
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::NotANetNs {
                source: Errno::EINVAL
            })
        ),
        "{e}"
    );
}

#[test]
fn hostname_too_long_or_empty() {
    let _g = serial();
    let e = refused(
        &Sandbox::new().hostname("h".repeat(65)),
        &Command::new("/bin/true"),
    );
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidHostname { len: 65 })),
        "{e}"
    );
    let e = refused(&Sandbox::new().hostname(""), &Command::new("/bin/true"));
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidHostname { len: 0 })),
        "{e}"
    );
}

#[test]
fn impossible_rlimit() {
    let _g = serial();
    let e = refused(
        &Sandbox::new().rlimit(Rlimit::Nofile, 100, 10),
        &Command::new("/bin/true"),
    );
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::InvalidRlimit { resource: "nofile" })
        ),
        "{e}"
    );
}

#[test]
fn missing_working_directory() {
    let _g = serial();
    let mut cmd = Command::new("/bin/true");
    cmd.current_dir("/nonexistent-dir");
    let e = refused(&Sandbox::new(), &cmd);
    assert_eq!(e.stage(), Some(Stage::Chdir), "{e}");
    assert_eq!(e.errno(), Some(Errno::ENOENT));
}

#[test]
fn invalid_id_maps() {
    let _g = serial();
    let overlapping = UserNs::maps(
        [
            IdMap {
                inside: 0,
                outside: 1000,
                count: 10,
            },
            IdMap {
                inside: 5,
                outside: 5000,
                count: 1,
            },
        ],
        [IdMap {
            inside: 0,
            outside: 1000,
            count: 1,
        }],
    );
    let e = refused(
        &Sandbox::new().user_ns(overlapping),
        &Command::new("/bin/true"),
    );
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidIdMap { .. })),
        "{e}"
    );
}

#[test]
fn net_join_with_a_new_user_namespace_as_root() {
    let _g = serial();
    if !common::is_root() {
        return common::skip("the conflict is reported for root callers");
    }
    let ns = File::open("/proc/self/ns/net").unwrap();
    let sb = Sandbox::new().user_ns(UserNs::root()).net(Net::join(ns));
    let e = refused(&sb, &Command::new("/bin/true"));
    assert!(
        matches!(e, Error::Config(ConfigError::Conflict { .. })),
        "{e}"
    );
}

/// Print the message a user sees (collected into docs/HARDENING.md).
fn shown(what: &str, e: &Error) {
    eprintln!("BAD INPUT | {what} | {e}");
}

#[test]
fn impossible_cgroup_limits() {
    let _g = serial();
    let cmd = Command::new("/bin/true");
    for (what, sb, expect) in [
        (
            "memory_limit(4096)",
            Sandbox::new().memory_limit(4096),
            "below the minimum",
        ),
        (
            "cpu_quota(Cpu::percent(0))",
            Sandbox::new().cpu_quota(ringfence::Cpu::percent(0)),
            "quota of zero",
        ),
        (
            "cpu_quota(Cpu::percent(100_000))",
            Sandbox::new().cpu_quota(ringfence::Cpu::percent(100_000)),
            "online",
        ),
        (
            "pids_limit(0)",
            Sandbox::new().pids_limit(0),
            "pids limit of 0",
        ),
        (
            "memory_swap(0) without memory_limit",
            Sandbox::new().memory_swap(0),
            "needs a memory limit",
        ),
        ("cpuset(\"1-0\")", Sandbox::new().cpuset("1-0"), "CPU list"),
        ("cpuset(\"999\")", Sandbox::new().cpuset("999"), "999"),
        (
            "cgroup_parent(\"/proc\")",
            Sandbox::new().cgroup_parent("/proc").pids_limit(8),
            "not a cgroup directory",
        ),
    ] {
        let e = refused(&sb, &cmd);
        shown(what, &e);
        assert!(matches!(e, Error::Cgroup(_)), "{what}: {e:?}");
        assert!(e.to_string().contains(expect), "{what}: {e}");
    }
}

#[test]
fn malformed_seccomp_profiles() {
    let _g = serial();
    let cmd = Command::new("/bin/true");
    let unknown = ringfence::Profile::default_container().deny(["no_such_syscall"]);
    let e = refused(&Sandbox::new().seccomp(unknown), &cmd);
    shown("a profile naming an unknown syscall", &e);
    assert!(matches!(e, Error::Profile(_)), "{e:?}");
    assert!(e.to_string().contains("no_such_syscall"), "{e}");

    for (what, json) in [
        ("OCI JSON that is not JSON", "{\"defaultAction\": "),
        (
            "OCI JSON with an unknown action",
            r#"{"defaultAction": "SCMP_ACT_SOMETIMES", "syscalls": []}"#,
        ),
        (
            "OCI JSON with an argument index above 5",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
        ),
    ] {
        let e = ringfence::Profile::from_oci_json(json).unwrap_err();
        eprintln!("BAD INPUT | {what} | {e}");
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn builder_misuse() {
    let _g = serial();
    // A descriptor passed onto stdio's numbers, or twice onto one number.
    let null = File::open("/dev/null").unwrap();
    let mut cmd = Command::new("/bin/true");
    let e = cmd.pass_fd_as(&null, 1).unwrap_err();
    shown("pass_fd_as(fd, 1)", &e);
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidPassFd { target: 1 })),
        "{e}"
    );
    cmd.pass_fd_as(&null, 5).unwrap();
    let e = cmd.pass_fd_as(&null, 5).unwrap_err();
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidPassFd { target: 5 })),
        "{e}"
    );
    // Landlock rules naming a path that does not exist.
    let sb = Sandbox::new().landlock(ringfence::Landlock::new().read_only(["/nonexistent-ll"]));
    let e = refused(&sb, &Command::new("/bin/true"));
    shown("Landlock::read_only([\"/nonexistent-ll\"])", &e);
    assert!(matches!(e, Error::Landlock(_)), "{e:?}");
    assert!(e.to_string().contains("/nonexistent-ll"), "{e}");
}
