//! Attacks on the state directory and its records (named sandboxes), each tried as root and
//! as uid 65534: a directory or symlink planted by another user, a symlink planted in place of
//! a record, a forged record aimed at an unrelated process, a forged record that would make
//! `exec` run with fewer restrictions than the sandbox has, secrets in records.
//!
//! The tests start processes as uid 65534 and change file owners, so they need root.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{As, Bin, TempDir, code, needs_root, stderr, stdout, text, wait_until};

/// A place for the state of one test run as `who`: a sticky world-writable directory used as
/// TMPDIR (so that an ordinary user's state goes to `TMPDIR/ringfence-UID`, the fallback
/// without XDG_RUNTIME_DIR), or `RINGFENCE_STATE_DIR` for root.
struct Env {
    who: As,
    bin: Bin,
    tmp: TempDir,
}

impl Env {
    fn new(who: As) -> Env {
        let tmp = TempDir::new();
        std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
        Env {
            who,
            bin: Bin::for_user(who),
            tmp,
        }
    }

    fn uid(&self) -> u32 {
        match self.who {
            As::Root => 0,
            As::Nobody => 65534,
        }
    }

    /// The state directory ringfence uses here.
    fn state(&self) -> PathBuf {
        match self.who {
            As::Root => self.tmp.path("state"),
            As::Nobody => self.tmp.path("ringfence-65534"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.bin.command(self.who);
        c.args(args).env("TMPDIR", &self.tmp.0);
        if self.who == As::Root {
            c.env("RINGFENCE_STATE_DIR", self.state());
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        common::output(&mut self.command(args))
    }

    /// Make `path` this user's.
    fn own(&self, path: &Path) {
        chown(path, Some(self.uid()), Some(self.uid())).unwrap();
    }

    /// Start a process of this user that has nothing to do with ringfence.
    fn bystander(&self) -> std::process::Child {
        let mut c = Command::new("sleep");
        c.arg("60");
        if self.who == As::Nobody {
            c.uid(65534).gid(65534);
        }
        c.spawn().unwrap()
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

fn both(test: impl Fn(As)) {
    if needs_root() {
        return;
    }
    test(As::Root);
    test(As::Nobody);
}

#[test]
fn a_state_directory_planted_by_another_user_is_refused_root() {
    both(|who| {
        let env = Env::new(who);
        let state = env.state();
        // Another user's directory (root's for uid 65534, 65534's for root), open to all.
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let other = if who == As::Root { 65534 } else { 0 };
        chown(&state, Some(other), Some(other)).unwrap();
        let o = env.run(&["run", "--name", "job", "--detach", "--", "true"]);
        assert_eq!(code(&o), 125, "{who:?}: {}", text(&o));
        assert!(
            stderr(&o).contains("refusing the state directory"),
            "{who:?}: {}",
            text(&o)
        );
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0, "{who:?}");

        // The user's own directory, but writable by everyone.
        env.own(&state);
        let o = env.run(&["run", "--name", "job", "--detach", "--", "true"]);
        assert_eq!(code(&o), 125, "{who:?}: {}", text(&o));
        assert!(stderr(&o).contains("other users can write"), "{}", text(&o));
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0, "{who:?}");
        std::fs::remove_dir(&state).unwrap();

        // A symlink to a directory of the user's own, planted by someone else.
        let target = env.tmp.path("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
        env.own(&target);
        symlink(&target, &state).unwrap();
        let o = env.run(&["run", "--name", "job", "--detach", "--", "true"]);
        assert_eq!(code(&o), 125, "{who:?}: {}", text(&o));
        assert!(stderr(&o).contains("symlink"), "{who:?}: {}", text(&o));
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "{who:?}");
        let o = env.run(&["ps"]);
        assert_eq!(code(&o), 125, "{who:?}: {}", text(&o));
    });
}

#[test]
fn the_state_directory_is_private_and_records_hold_no_secrets_root() {
    both(|who| {
        let env = Env::new(who);
        let o = env.run(&[
            "run",
            "--isolated",
            "--name",
            "job",
            "--detach",
            "--env",
            "TOKEN=hunter2",
            "--setenv",
            "KEY",
            "hunter3",
            "--",
            "sleep",
            "60",
        ]);
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
        let state = env.state();
        for dir in [state.clone(), state.join("sandboxes")] {
            let m = std::fs::symlink_metadata(&dir).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o700, "{who:?}: {}", dir.display());
            assert_eq!(m.uid(), env.uid(), "{who:?}: {}", dir.display());
        }
        let record = state.join("sandboxes/job.json");
        let m = std::fs::symlink_metadata(&record).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600, "{who:?}");
        let text_of = std::fs::read_to_string(&record).unwrap();
        assert!(!text_of.contains("hunter"), "{who:?}: {text_of}");
        let o = env.run(&["kill", "job"]);
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
    });
}

#[test]
fn a_symlink_planted_as_a_record_is_not_followed_root() {
    both(|who| {
        let env = Env::new(who);
        // The state directory as ringfence makes it.
        let o = env.run(&["run", "--isolated", "--name", "x", "--", "true"]);
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
        let victim = env.tmp.path("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        env.own(&victim);
        let record = env.state().join("sandboxes/job.json");
        symlink(&victim, &record).unwrap();
        let o = env.run(&[
            "run",
            "--isolated",
            "--name",
            "job",
            "--detach",
            "--",
            "true",
        ]);
        assert_eq!(code(&o), 125, "{who:?}: {}", text(&o));
        assert!(stderr(&o).contains("symlink"), "{who:?}: {}", text(&o));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        for args in [&["kill", "job"][..], &["exec", "job", "--", "true"]] {
            let o = env.run(args);
            assert_eq!(code(&o), 125, "{who:?} {args:?}: {}", text(&o));
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    });
}

#[test]
fn a_forged_record_cannot_make_kill_signal_another_process_root() {
    both(|who| {
        let env = Env::new(who);
        let o = env.run(&["run", "--isolated", "--name", "x", "--", "true"]);
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
        let mut bystander = env.bystander();
        let pid = bystander.id();
        // The bystander as the holder and the sandbox, with the right start times: only the
        // check that the holder is a ringfence process (and the sandbox its child) stops it.
        let record = env.state().join("sandboxes/job.json");
        let start = start_time(pid);
        std::fs::write(
            &record,
            format!(
                r#"{{"name":"job","monitor":{pid},"monitor_start":{start},"pid":{pid},"pid_start":{start},"args":["--","true"]}}"#
            ),
        )
        .unwrap();
        std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o600)).unwrap();
        env.own(&record);
        let o = env.run(&["kill", "job"]);
        assert_eq!(code(&o), 125, "{who:?}: {}", text(&o));
        std::thread::sleep(Duration::from_millis(100));
        assert!(alive(pid), "{who:?}: kill signalled an unrelated process");
        let o = env.run(&["exec", &pid.to_string(), "--", "true"]);
        assert_eq!(code(&o), 125, "{who:?}: {}", text(&o));
        let _ = bystander.kill();
        let _ = bystander.wait();
    });
}

#[test]
fn a_forged_record_cannot_weaken_exec_root() {
    both(|who| {
        let env = Env::new(who);
        let o = env.run(&[
            "run",
            "--isolated",
            "--name",
            "job",
            "--detach",
            "--",
            "sleep",
            "60",
        ]);
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
        let record = env.state().join("sandboxes/job.json");
        let original = std::fs::read_to_string(&record).unwrap();
        let probe = [
            "exec",
            "job",
            "--",
            "sh",
            "-c",
            "grep -E '^(Seccomp|CapEff):' /proc/self/status",
        ];
        // The genuine record: exec runs filtered and without capabilities.
        let o = env.run(&probe);
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
        assert!(stdout(&o).contains("Seccomp:\t2"), "{who:?}: {}", text(&o));
        for forged in [
            r#"["--isolated","--seccomp","unconfined","--","true"]"#,
            r#"["--isolated","--cap-add","CAP_SYS_ADMIN","--","true"]"#,
            r#"["--isolated","--uid","1234","--","true"]"#,
        ] {
            let mut rec: serde_json::Value = serde_json::from_str(&original).unwrap();
            rec["args"] = serde_json::from_str(forged).unwrap();
            let tmp = env.state().join("sandboxes/forged");
            std::fs::write(&tmp, rec.to_string()).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
            env.own(&tmp);
            std::fs::rename(&tmp, &record).unwrap();
            let o = env.run(&probe);
            assert_eq!(code(&o), 125, "{who:?} {forged}: {}", text(&o));
            assert!(
                stderr(&o).contains("refusing to exec"),
                "{who:?} {forged}: {}",
                text(&o)
            );
        }
        let o = env.run(&["kill", "job"]);
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
        let o = env.run(&["rm", "job"]);
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
        assert!(wait_until(Duration::from_secs(10), || !env
            .state()
            .join("sandboxes/job.json")
            .exists()));
    });
}
