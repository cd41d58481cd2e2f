//! Escape attempts: each runs the real attack inside `Sandbox::isolated()` (with the default
//! seccomp profile) and asserts that it fails and the host is unchanged. Every attack is built
//! so that it could not harm this host even if it succeeded (null pointers, no-op arguments,
//! current values written back, signals only inside a pid namespace).
//!
//! Each attack runs twice: as root (`NAME::root`) and as uid 65534 in a fresh process
//! (`NAME::rootless`, where the sandbox gets a user namespace). The attack programs are
//! subcommands of `rf-inspect attack` (tests/helper/rf-inspect.rs).

#[path = "../common/mod.rs"]
mod common;

mod files;
mod filter_pins;
mod processes;
mod resources;
mod syscalls;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Mutex, MutexGuard};

use common::rf;
use ringfence::{Layer, Outcome, Sandbox};

/// The sandbox every attack runs in: `isolated()` with rf-inspect bound in.
fn isolated() -> Sandbox {
    Sandbox::isolated().bind_ro(common::inspect(), "/rf-inspect")
}

/// A command running rf-inspect inside [`isolated()`], where it is bound at `/rf-inspect`.
fn rf_in(args: &[&str]) -> ringfence::Command {
    let mut c = ringfence::Command::new("/rf-inspect");
    c.args(args);
    c
}

/// The attacks of this binary run one at a time, so that each can compare the state of this
/// process (descriptors, children, mounts) before and after.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether this process can build an isolated sandbox at all (root, or user namespaces).
fn can_isolate() -> bool {
    if common::is_root() || common::userns_available() {
        true
    } else {
        common::skip("needs root or user namespaces (unavailable to this user here)");
        false
    }
}

/// The name of a test of this binary as `--exact` wants it (without the crate name).
fn test_name(module: &str, f: &str) -> String {
    let path = module.split_once("::").map(|(_, p)| p).unwrap_or(module);
    format!("{path}::{f}")
}

/// One escape test, twice: `NAME::root` as the caller is, `NAME::rootless` re-run as uid 65534.
macro_rules! attack {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body() $body

            #[test]
            fn root() {
                if !crate::common::is_root() {
                    return crate::common::skip("needs root (the rootless variant runs as this user)");
                }
                let _g = crate::serial();
                body();
            }

            #[test]
            fn rootless() {
                if crate::common::in_child() || !crate::common::is_root() {
                    if !crate::can_isolate() {
                        return;
                    }
                    let _g = crate::serial();
                    body();
                } else {
                    let _g = crate::serial();
                    crate::common::rerun(&crate::test_name(module_path!(), "rootless"), true);
                }
            }
        }
    };
}
pub(crate) use attack;

/// What the host looks like from this process: what no attack may change.
#[derive(Debug, PartialEq, Eq)]
struct Host {
    hostname: String,
    domainname: String,
    fds: Vec<i32>,
    children: Vec<i32>,
    mounts: Vec<String>,
    ns: Vec<String>,
}

impl Host {
    fn now() -> Host {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mut mounts: Vec<String> = read("/proc/self/mountinfo")
            .lines()
            .map(|l| l.split(' ').skip(4).take(2).collect::<Vec<_>>().join(" "))
            .collect();
        mounts.sort();
        Host {
            hostname: read("/proc/sys/kernel/hostname"),
            domainname: read("/proc/sys/kernel/domainname"),
            fds: common::open_fds(),
            children: common::children(),
            mounts,
            ns: ["mnt", "net", "pid", "user", "uts", "ipc", "cgroup", "time"]
                .iter()
                .map(|n| common::host_ns(n))
                .collect(),
        }
    }

    /// Assert that the host is as it was. Mounts made by other programs on this machine come
    /// and go, so a difference is looked at again for a while before it counts.
    fn assert_unchanged(&self) {
        let mut now = Host::now();
        for _ in 0..50 {
            if now == *self {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            now = Host::now();
        }
        assert_eq!(now.hostname, self.hostname, "the hostname changed");
        assert_eq!(now.domainname, self.domainname, "the domain name changed");
        assert_eq!(
            now.fds,
            self.fds,
            "descriptors of this process changed; now open: {:?}",
            common::fd_targets(&now.fds)
        );
        assert_eq!(
            now.children, self.children,
            "children of this process changed"
        );
        assert_eq!(now.mounts, self.mounts, "the mounts changed");
        assert_eq!(now.ns, self.ns, "the namespaces of this process changed");
    }
}

/// Run `rf-inspect attack NAME ARGS` in `sb`, check that the sandbox was what it should be
/// (seccomp and every namespace enforced) and that the host did not change; return the
/// outcome and the `key=value` lines.
fn run_in(sb: Sandbox, name: &str, args: &[&str]) -> (Outcome, Results) {
    let host = Host::now();
    let mut a = vec!["attack", name];
    a.extend_from_slice(args);
    let out = sb.output(&rf_in(&a)).expect("spawn the attack");
    let requested: Vec<_> = ringfence::Namespace::ALL
        .into_iter()
        .filter(|ns| sb.requests(*ns))
        .collect();
    // The sandbox keeps some descriptors (a Landlock ruleset) for its next spawns.
    drop(sb);
    host.assert_unchanged();
    assert!(out.report.is_enforced(Layer::Seccomp), "{}", out.report);
    assert!(out.report.is_enforced(Layer::Filesystem), "{}", out.report);
    for ns in requested {
        assert!(
            out.report.is_enforced(Layer::Namespace(ns)),
            "{ns:?} not enforced: {}",
            out.report
        );
    }
    let results = Results::parse(&out);
    (out, results)
}

/// Run an attack in [`isolated()`] and require that the program itself ran to its end.
fn run(name: &str, args: &[&str]) -> Results {
    let (out, r) = run_in(isolated(), name, args);
    assert!(
        out.status.success(),
        "{name}: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    r
}

/// The `key=value` lines an attack printed.
#[derive(Debug)]
struct Results(HashMap<String, String>);

impl Results {
    fn parse(out: &Outcome) -> Results {
        Results(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("the attack reported no {key:?}: {:?}", self.0))
    }

    fn errno(&self, key: &str) -> i32 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} is no errno: {:?}", self.0))
    }

    /// Assert that `key` failed with `errno`.
    fn refused(&self, key: &str, errno: i32) {
        assert_eq!(
            self.errno(key),
            errno,
            "{key}: expected {} got {} ({:?})",
            name(errno),
            name(self.errno(key)),
            self.0
        );
    }

    /// Assert that `key` failed with one of `errnos`.
    fn refused_any(&self, key: &str, errnos: &[i32]) {
        let e = self.errno(key);
        assert!(
            errnos.contains(&e),
            "{key}: expected one of {:?} got {} ({:?})",
            errnos.iter().map(|e| name(*e)).collect::<Vec<_>>(),
            name(e),
            self.0
        );
    }
}

fn name(errno: i32) -> String {
    if errno == 0 {
        return "success".into();
    }
    format!("{:?}", nix::errno::Errno::from_raw(errno))
}

attack! {
    /// The filter's refusals of syscalls namespaces do not isolate, in one program.
    fn namespace_gaps() {
        let clock_before = std::time::SystemTime::now();
        let out = isolated()
            .output(&rf_in(&["attacks"]))
            .unwrap();
        assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.report.is_enforced(Layer::Seccomp), "{}", out.report);
        let results = Results::parse(&out);
        assert_eq!(results.0.len(), 23, "{results:?}");
        for name in results.0.keys() {
            let want = if name == "clone3" { libc::ENOSYS } else { libc::EPERM };
            results.refused(name, want);
        }
        // The wall clock was not set back (settimeofday/clock_settime were refused anyway).
        assert!(std::time::SystemTime::now() >= clock_before);
    }
}

attack! {
    /// x32 system call numbers (bit 30) kill the program.
    fn x32_syscalls() {
        let out = isolated().output(&rf_in(&["x32"])).unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{:?}", out.status);
        assert!(out.stdout.is_empty());
    }
}

#[cfg(target_arch = "x86_64")]
attack! {
    /// The i386 entry point (`int 0x80`) kills the program.
    fn int_0x80_syscalls() {
        let out = isolated().output(&rf_in(&["int80"])).unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{:?}", out.status);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn the_default_profile_is_there_without_any_namespace() {
    // Serial like the attacks: they compare this process's descriptors before and after, and
    // the pipes of this sandbox, open while they take their first look, would count as theirs.
    let _g = serial();
    // Seccomp needs no privilege: a bare sandbox has it too.
    let out = Sandbox::new().output(&rf(&["attacks"])).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("settimeofday={}", libc::EPERM)),
        "{text}"
    );
    assert!(text.contains(&format!("keyctl={}", libc::EPERM)), "{text}");
}
