//! Exhaustion attacks, each under the limit that bounds it: a fork bomb under `pids_limit`, a
//! memory hog under `memory_limit`, a disk fill under the size of `/tmp`, a CPU spin under
//! the timeout. Cgroup limits need root on a cgroup v1 host; where the caller may not create
//! cgroups (rootless here), an rlimit bounds the attack instead and the test says so.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use super::{attack, isolated, run, run_in};
use crate::common;
use ringfence::{Error, Layer, Rlimit, Sandbox};

/// `sb` if this caller gets its limits from a cgroup, else `None` (printed): where the
/// caller may not create cgroups, the sandbox holds them through rlimit substitutes (or, for
/// a limit with none, refuses to start), and the test bounds the attack by that rlimit.
fn with_cgroup(sb: Sandbox) -> Option<Sandbox> {
    match sb.spawn(&crate::rf_in(&["sleep", "0"])) {
        Ok(mut c) => {
            c.wait().unwrap();
            if c.report().is_enforced(Layer::Cgroup) {
                return Some(sb);
            }
            assert!(
                c.report().is_held(Layer::Cgroup),
                "a limit was asked for: {}",
                c.report()
            );
            common::skip(&format!(
                "cgroup limits are held through substitutes for this user here ({}); an rlimit bounds the attack instead",
                c.report().summary().unwrap_or_default()
            ));
            None
        }
        Err(e @ (Error::Cgroup(_) | Error::Unsupported { .. })) => {
            common::skip(&format!(
                "cgroup limits are refused to this user here ({e}); an rlimit bounds the attack instead"
            ));
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Nothing of the sandbox whose init was `pid` is left.
fn nothing_left(ns: &str) {
    assert_eq!(common::pids_in_ns(ns), vec![]);
}

attack! {
    /// A fork bomb stops at the pids limit (EAGAIN).
    fn fork_bomb() {
        let limit = 32;
        let sb = isolated().timeout(Duration::from_secs(60));
        let (sb, cgroup) = match with_cgroup(sb.clone().pids_limit(limit)) {
            Some(sb) => (sb, true),
            None => (sb.rlimit(Rlimit::Nproc, limit, limit), false),
        };
        let (out, r) = run_in(sb, "forkbomb", &[]);
        assert!(out.status.success(), "{:?} {r:?}", out.status);
        let forked: u64 = r.get("forked").parse().unwrap();
        r.refused("fork_errno", libc::EAGAIN);
        assert!(forked < limit, "{forked} processes");
        if cgroup {
            assert!(out.report.is_enforced(Layer::Cgroup), "{}", out.report);
            if let Some(peak) = out.usage.pids_peak {
                assert!(peak <= limit, "{peak}");
            }
        }
    }
}

attack! {
    /// A memory hog is killed at the memory limit (or refused memory by RLIMIT_AS).
    fn memory_hog() {
        let sb = isolated().timeout(Duration::from_secs(60));
        match with_cgroup(sb.clone().memory_limit(64 << 20).memory_swap(0)) {
            Some(limited) => {
                let (out, r) = run_in(limited, "hog", &["1024"]);
                assert!(out.oom_killed, "{:?} {r:?}", out.status);
                assert_eq!(out.status.signal(), Some(libc::SIGKILL));
                assert!(!r.0.contains_key("hog_mib"), "{r:?}");
                if let Some(peak) = out.usage.peak_memory {
                    assert!(peak <= 64 << 20, "{peak}");
                }
            }
            None => {
                let sb = sb.rlimit(Rlimit::As, 256 << 20, 256 << 20);
                let (out, r) = run_in(sb, "hog", &["1024"]);
                assert!(out.status.success(), "{:?}", out.status);
                r.refused("hog_errno", libc::ENOMEM);
                assert!(r.get("hog_mib").parse::<u64>().unwrap() < 256);
            }
        }
    }
}

attack! {
    /// Filling /tmp: the sandbox's /tmp is a 64 MiB tmpfs of its own; the write ends with
    /// ENOSPC and nothing reaches the host's /tmp.
    fn disk_fill() {
        let name = format!("ringfence-escape-fill-{}", std::process::id());
        let r = run("fill", &[&format!("/tmp/{name}")]);
        r.refused("fill_errno", libc::ENOSPC);
        let written: u64 = r.get("written").parse().unwrap();
        assert!(written > 32 << 20 && written <= 64 << 20, "{written}");
        assert!(!std::env::temp_dir().join(&name).exists());
        assert!(!std::path::Path::new("/tmp").join(&name).exists());
    }
}

attack! {
    /// A CPU spin is killed by the timeout, with nothing left.
    fn cpu_spin() {
        let sb = isolated().timeout(Duration::from_secs(1));
        let mut child = sb.spawn(&crate::rf_in(&["attack", "spin"])).unwrap();
        let ns = std::fs::read_link(format!("/proc/{}/ns/pid", child.id()))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let out = child.wait().unwrap();
        assert!(out.timed_out);
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{:?}", out.status);
        nothing_left(&ns);
    }
}

/// Per-user kernel counters: inotify instances are counted per user in every user namespace
/// up the chain, so a sandbox making them until refused would leave its owner none (the
/// host's `inotify_init` failing with EMFILE). A sandbox with its own user namespace gets half
/// of its owner's limit. As root without a user namespace the sandbox shares root's counters
/// (SECURITY.md): not tried here, it would starve this host's own root services.
#[test]
fn inotify_instances_rootless() {
    use std::io::{BufRead, BufReader, Write};
    if !common::in_child() && common::is_root() {
        let _g = crate::serial();
        return common::rerun("resources::inotify_instances_rootless", true);
    }
    if !crate::can_isolate() {
        return;
    }
    let limit: usize = std::fs::read_to_string("/proc/sys/user/max_inotify_instances")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut child = isolated()
        .spawn(
            crate::rf_in(&["attack", "inotify-instances", &(2 * limit).to_string()])
                .stdin(ringfence::Stdio::piped())
                .stdout(ringfence::Stdio::piped()),
        )
        .unwrap();
    assert!(
        child
            .report()
            .is_enforced(Layer::Namespace(ringfence::Namespace::User))
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let made: usize = line
        .trim()
        .strip_prefix("instances=")
        .unwrap()
        .parse()
        .unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    // While the sandbox holds every instance it could make, its owner can still make one.
    // SAFETY: a descriptor of our own, closed at once.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    let host_errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if fd >= 0 {
        // SAFETY: as above.
        unsafe { libc::close(fd) };
    }
    child.stdin.take().unwrap().write_all(b"done\n").unwrap();
    assert!(child.wait().unwrap().status.success());
    assert_eq!(line.trim(), format!("inotify_errno={}", libc::EMFILE));
    assert!(
        fd >= 0,
        "the sandbox made {made} inotify instances and its owner got none: errno {host_errno}"
    );
    assert!(made <= limit / 2, "{made} of {limit}");
}
