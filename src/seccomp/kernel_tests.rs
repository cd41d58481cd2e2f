//! Kernel-level tests: filters really installed, in a child process.
//!
//! Seccomp filters are per-thread and cannot be removed, so they are never installed in a test
//! thread of this process. Each test re-runs the test binary (`current_exe`) on the single test
//! [`child_helper`] with `RINGFENCE_SECCOMP_CASE` set; that child installs the filter with the
//! crate's allocation-free [`install`](super::install::install) (through
//! `CompiledProfile::install_all`), makes the syscalls and reports on stdout, or is killed.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

use super::*;

const CASE_ENV: &str = "RINGFENCE_SECCOMP_CASE";
const MARKER: &str = "<<< ringfence seccomp child >>>";

fn run_case(case: &str, stdin: &[u8]) -> Output {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "seccomp::kernel_tests::child_helper",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CASE_ENV, case)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "case {case}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `syscall(nr, args...)` returning `Err(errno)` on failure.
fn sys6(nr: libc::c_long, a: [u64; 6]) -> Result<i64, i32> {
    // SAFETY: the tests only make calls whose pointer arguments are null or point to live
    // locals; a refused call does not run at all.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 { Err(errno()) } else { Ok(r) }
}

fn install_or_die(p: &Profile) -> Option<std::os::fd::RawFd> {
    let c = p.compile().expect("compile");
    // SAFETY: plain prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(r, 0, "PR_SET_NO_NEW_PRIVS");
    match c.install_all() {
        Ok(fd) => fd,
        Err(e) => {
            println!("install failed: {e}");
            // SAFETY: ends the child process at once.
            unsafe { libc::_exit(3) }
        }
    }
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn exit(code: i32) -> ! {
    // SAFETY: ends the whole child process without running the harness any further.
    unsafe { libc::_exit(code) }
}

/// The child side: does nothing unless `RINGFENCE_SECCOMP_CASE` is set.
#[test]
fn child_helper() {
    let Ok(case) = std::env::var(CASE_ENV) else {
        return;
    };
    // The harness writes its own lines to stdout: the parent reads what follows this marker.
    report(MARKER);
    match case.as_str() {
        "default_container" => {
            install_or_die(&Profile::default_container());
            let tiocsti = u64::from(TIOCSTI);
            let c = 0u8;
            let cp = &c as *const u8 as u64;
            let results = [
                ("getpid", sys6(libc::SYS_getpid, [0; 6]).map(|_| 0)),
                ("keyctl", sys6(libc::SYS_keyctl, [0; 6])),
                (
                    "unshare_user",
                    sys6(
                        libc::SYS_unshare,
                        [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
                    ),
                ),
                (
                    "unshare_files",
                    sys6(libc::SYS_unshare, [libc::CLONE_FILES as u64, 0, 0, 0, 0, 0]),
                ),
                ("clone3", sys6(libc::SYS_clone3, [0; 6])),
                ("tiocsti", sys6(libc::SYS_ioctl, [0, tiocsti, cp, 0, 0, 0])),
                (
                    "tiocsti_high",
                    sys6(
                        libc::SYS_ioctl,
                        [0, tiocsti | 0xdead_0000_0000, cp, 0, 0, 0],
                    ),
                ),
                (
                    "personality_query",
                    sys6(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]),
                ),
                (
                    "personality_aslr_off",
                    sys6(libc::SYS_personality, [0x0040000, 0, 0, 0, 0, 0]),
                ),
                (
                    "socket_alg",
                    sys6(
                        libc::SYS_socket,
                        [38, libc::SOCK_SEQPACKET as u64, 0, 0, 0, 0],
                    ),
                ),
                (
                    "socket_unix",
                    sys6(
                        libc::SYS_socket,
                        [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
                    )
                    .map(|_| 0),
                ),
                ("mount", sys6(libc::SYS_mount, [0; 6])),
            ];
            for (name, r) in results {
                report(&format!("{name} {r:?}"));
            }
            exit(0);
        }
        "x32" => {
            install_or_die(&Profile::allow_all());
            report("installed");
            let r = sys6(libc::SYS_getpid | 0x4000_0000, [0; 6]);
            report(&format!("x32 getpid survived: {r:?}"));
            exit(0);
        }
        #[cfg(target_arch = "x86_64")]
        "i386" => {
            install_or_die(&Profile::allow_all());
            report("installed");
            let mut ret: i64 = 20; // i386 getpid
            // SAFETY: `int 0x80` with eax = getpid (i386) takes no pointer; the filter kills the
            // process before the call runs.
            unsafe { std::arch::asm!("int 0x80", inout("rax") ret, options(nostack)) };
            report(&format!("int 0x80 survived: {ret}"));
            exit(0);
        }
        "notify" => {
            let nr = Syscall::named("getppid").unwrap();
            let p = Profile::allow_all().rule(nr, [], Action::Notify);
            // The supervisor must be a thread without the filter: start it first, hand it the fd.
            let (tx, rx) = std::sync::mpsc::channel::<i32>();
            let sup = std::thread::spawn(move || supervise(rx.recv().unwrap()));
            let fd = install_or_die(&p);
            report(&format!("listener {fd:?}"));
            let Some(fd) = fd else { exit(4) };
            tx.send(fd).unwrap();
            let r = sys6(libc::SYS_getppid, [0; 6]);
            report(&format!("getppid {r:?}"));
            let _ = sup.join();
            exit(0);
        }
        "strict_python" => {
            install_or_die(&Profile::strict());
            let err =
                std::os::unix::process::CommandExt::exec(Command::new("/usr/bin/python3").args([
                    "-c",
                    "import sys; sys.stdout.write(sys.stdin.read().upper())",
                ]));
            report(&format!("exec failed: {err}"));
            exit(5);
        }
        "strict_cat" => {
            install_or_die(&Profile::strict());
            let err = std::os::unix::process::CommandExt::exec(&mut Command::new("/bin/cat"));
            report(&format!("exec failed: {err}"));
            exit(5);
        }
        "strict_denied" => {
            install_or_die(&Profile::strict());
            let r = sys6(
                libc::SYS_socket,
                [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
            );
            report(&format!("socket {r:?}"));
            exit(0);
        }
        other => panic!("unknown case {other}"),
    }
}

use crate::supervise::{
    Notif, NotifResp, SECCOMP_IOCTL_NOTIF_RECV as NOTIF_RECV,
    SECCOMP_IOCTL_NOTIF_SEND as NOTIF_SEND,
};

/// Answers one notification with `ENOTSUP`, reporting the syscall number it saw.
fn supervise(fd: i32) {
    let mut n = Notif::default();
    // SAFETY: `n` is a live, correctly sized `struct seccomp_notif`.
    let r = unsafe { libc::ioctl(fd, NOTIF_RECV as _, &mut n as *mut Notif) };
    if r != 0 {
        report(&format!("recv failed: {}", errno()));
        return;
    }
    report(&format!("supervisor saw nr {}", n.data.nr));
    let resp = NotifResp {
        id: n.id,
        val: 0,
        error: -libc::ENOTSUP,
        flags: 0,
    };
    // SAFETY: `resp` is a live, correctly sized `struct seccomp_notif_resp`.
    let r = unsafe { libc::ioctl(fd, NOTIF_SEND as _, &resp as *const NotifResp) };
    if r != 0 {
        report(&format!("send failed: {}", errno()));
    }
}

fn stdout(o: &Output) -> String {
    let s = String::from_utf8_lossy(&o.stdout);
    let marker = format!("{MARKER}\n");
    s.find(&marker)
        .map_or_else(String::new, |i| s[i + marker.len()..].to_owned())
}

#[test]
fn default_container_in_the_kernel() {
    let o = run_case("default_container", b"");
    assert_eq!(o.status.code(), Some(0));
    let s = stdout(&o);
    let eperm = format!("Err({})", libc::EPERM);
    for (name, want) in [
        ("getpid", "Ok(0)".to_owned()),
        ("keyctl", eperm.clone()),
        ("unshare_user", eperm.clone()),
        ("unshare_files", "Ok(0)".to_owned()),
        ("clone3", format!("Err({})", libc::ENOSYS)),
        ("tiocsti", eperm.clone()),
        ("tiocsti_high", eperm.clone()),
        ("personality_query", eperm.clone()),
        ("personality_aslr_off", eperm.clone()),
        ("socket_alg", eperm.clone()),
        ("socket_unix", "Ok(0)".to_owned()),
        ("mount", eperm.clone()),
    ] {
        assert!(
            s.lines().any(|l| l == format!("{name} {want}")),
            "{name}: want {want}, got:\n{s}"
        );
    }
}

#[test]
fn x32_syscalls_kill_the_process() {
    let o = run_case("x32", b"");
    assert!(stdout(&o).contains("installed"));
    assert_eq!(o.status.signal(), Some(libc::SIGSYS), "{:?}", o.status);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn i386_syscalls_kill_the_process() {
    let o = run_case("i386", b"");
    assert!(stdout(&o).contains("installed"));
    assert_eq!(o.status.signal(), Some(libc::SIGSYS), "{:?}", o.status);
}

#[test]
fn notify_gives_a_listener() {
    let o = run_case("notify", b"");
    let s = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{s}");
    assert!(s.contains("listener Some("), "{s}");
    let nr = Syscall::named("getppid").unwrap().nr();
    assert!(s.contains(&format!("supervisor saw nr {nr}")), "{s}");
    assert!(
        s.contains(&format!("getppid Err({})", libc::ENOTSUP)),
        "{s}"
    );
}

#[test]
fn strict_runs_python_on_stdin() {
    if !std::path::Path::new("/usr/bin/python3").exists() {
        eprintln!("skipping: no /usr/bin/python3");
        return;
    }
    let o = run_case("strict_python", b"hello sandbox\n");
    assert_eq!(stdout(&o), "HELLO SANDBOX\n");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn strict_runs_cat() {
    let o = run_case("strict_cat", b"plain text\n");
    assert_eq!(stdout(&o), "plain text\n");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn strict_refuses_sockets() {
    let o = run_case("strict_denied", b"");
    assert_eq!(stdout(&o).trim(), format!("socket Err({})", libc::EPERM));
}
