//! Escape attempts: each runs the real attack inside `Sandbox::isolated()` (with the default
//! seccomp profile) and asserts that it fails and the host is unchanged. Every attack is built
//! so that it could not harm this host even if it succeeded (null pointers, no-op arguments).
//! Root and rootless.

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;

use common::rf;
use ringfence::{Layer, Sandbox};

fn isolated() -> Sandbox {
    Sandbox::isolated().bind_ro(common::inspect(), "/rf-inspect")
}

fn attacks() {
    let out = isolated()
        .output(
            &ringfence::Command::new("/rf-inspect")
                .arg("attacks")
                .clone(),
        )
        .unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.report.is_enforced(Layer::Seccomp), "{}", out.report);
    let results: HashMap<String, i32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect();
    assert_eq!(results.len(), 23, "{results:?}");
    for (name, errno) in &results {
        let want = if name == "clone3" {
            libc::ENOSYS
        } else {
            libc::EPERM
        };
        assert_eq!(
            *errno, want,
            "{name} was not refused by the filter: errno {errno}"
        );
    }
}

#[test]
fn namespace_gaps_are_closed_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    let clock_before = std::time::SystemTime::now();
    attacks();
    // The wall clock was not set back (settimeofday/clock_settime were refused anyway).
    assert!(std::time::SystemTime::now() >= clock_before);
}

rootless_test! {
    fn namespace_gaps_are_closed_rootless() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        attacks();
    }
}

#[test]
fn x32_syscalls_kill_the_program() {
    if !common::is_root() && !common::userns_available() {
        return common::skip("needs root or user namespaces");
    }
    let out = isolated()
        .output(&ringfence::Command::new("/rf-inspect").arg("x32").clone())
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{:?}", out.status);
    assert!(out.stdout.is_empty());
}

#[cfg(target_arch = "x86_64")]
#[test]
fn int_0x80_syscalls_kill_the_program() {
    if !common::is_root() && !common::userns_available() {
        return common::skip("needs root or user namespaces");
    }
    let out = isolated()
        .output(&ringfence::Command::new("/rf-inspect").arg("int80").clone())
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{:?}", out.status);
    assert!(out.stdout.is_empty());
}

#[test]
fn the_default_profile_is_there_without_any_namespace() {
    // Seccomp needs no privilege: a bare sandbox has it too.
    let out = Sandbox::new().output(&rf(&["attacks"])).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("settimeofday={}", libc::EPERM)),
        "{text}"
    );
    assert!(text.contains(&format!("keyctl={}", libc::EPERM)), "{text}");
}
