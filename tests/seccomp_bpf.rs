//! The raw BPF export: the bytes of `CompiledProfile::to_bytes` are what the kernel accepts.
//!
//! Each program is installed in a spawned child between fork and exec (`pre_exec`), from
//! buffers prepared before the fork, with plain `prctl` and `seccomp` syscalls: nothing there
//! allocates. Filters never touch this test process.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

use ringfence::Profile;

/// The programs as `sock_filter` arrays, aligned for the kernel.
fn programs(p: &Profile) -> Vec<Vec<libc::sock_filter>> {
    p.compile()
        .unwrap()
        .to_bytes()
        .iter()
        .map(|b| {
            assert_eq!(b.len() % 8, 0);
            b.chunks_exact(8)
                .map(|i| libc::sock_filter {
                    code: u16::from_ne_bytes([i[0], i[1]]),
                    jt: i[2],
                    jf: i[3],
                    k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
                })
                .collect()
        })
        .collect()
}

fn with_filters(cmd: &mut Command, progs: Vec<Vec<libc::sock_filter>>) -> &mut Command {
    // SAFETY: the closure runs between fork and exec and only makes the prctl and seccomp
    // syscalls on data built before the fork; it does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for p in &progs {
                let fprog = libc::sock_fprog {
                    len: p.len() as u16,
                    filter: p.as_ptr().cast_mut(),
                };
                let flags: libc::c_ulong = 0;
                if libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    flags,
                    &fprog,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        })
    }
}

#[test]
fn exported_default_container_refuses_user_namespaces() {
    if !std::path::Path::new("/usr/bin/unshare").exists() {
        eprintln!("skipping: no /usr/bin/unshare");
        return;
    }
    let progs = programs(&Profile::default_container());
    assert_eq!(progs.len(), 1, "the profile with the guard merged in");
    let out = with_filters(
        Command::new("/usr/bin/unshare").args(["--user", "true"]),
        progs,
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("Operation not permitted"), "{err}");

    // The same command with a filter that allows it.
    let out = with_filters(
        Command::new("/usr/bin/unshare").args(["--user", "true"]),
        programs(&Profile::allow_all()),
    )
    .output()
    .unwrap();
    if !out.status.success() {
        eprintln!(
            "note: user namespaces unavailable here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn exported_strict_kills_nothing_and_runs_true() {
    let out = with_filters(&mut Command::new("/bin/true"), programs(&Profile::strict()))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:?} signal {:?}",
        out.status,
        out.status.signal()
    );
}

#[test]
fn unconfined_exports_nothing() {
    assert!(
        Profile::unconfined()
            .compile()
            .unwrap()
            .to_bytes()
            .is_empty()
    );
}
