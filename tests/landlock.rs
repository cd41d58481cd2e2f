//! Landlock: file, TCP port, signal and abstract-socket restrictions, and the report of what
//! the running kernel enforces.
//!
//! Landlock restricts the calling thread and its future children, irreversibly, so every test
//! that restricts runs in a fresh process (`fresh_process_test!`, `rootless_test!`), which sets
//! up what it needs first (files, listeners, a process to signal), restricts itself, then looks.
//! Cleanup that a restricted process can no longer do (removing files outside its rules,
//! killing a process outside its scope) is left to a helper started before the restriction,
//! which acts when the test process exits.
//!
//! On a kernel that lacks a part (the Debian 6.1 VM has Landlock ABI 2: no truncate, TCP or
//! scope restrictions), each test checks that the report says so and that the kernel indeed
//! lets the operation through: the report is honest both ways.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use nix::errno::Errno;
use ringfence::landlock::{
    __prepare_for_tests, __restrict_self_for_tests, FsAccess, Landlock, LandlockError,
    LandlockPart, abi,
};
use ringfence::{Compat, Enforcement};

/// Start a shell, outside any Landlock domain, that runs `script` (with `$0` = `arg`) once this
/// process has exited (when its stdin pipe closes).
fn at_exit(script: &str, arg: &str) -> Child {
    std::process::Command::new("/bin/sh")
        .args(["-c", &format!("cat >/dev/null; {script}"), arg])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the cleanup shell")
}

/// A scratch directory with `ro/file`, `rw/` and `outside/secret`, removed when this process
/// exits.
struct Scratch {
    dir: PathBuf,
    _cleanup: Child,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("ringfence-landlock-{}-{name}", std::process::id()));
        fs::create_dir_all(dir.join("ro")).unwrap();
        fs::create_dir_all(dir.join("rw")).unwrap();
        fs::create_dir_all(dir.join("outside")).unwrap();
        fs::write(dir.join("ro/file"), "allowed").unwrap();
        fs::write(dir.join("outside/secret"), "secret").unwrap();
        let cleanup = at_exit("rm -rf \"$0\"", dir.to_str().unwrap());
        Scratch {
            dir,
            _cleanup: cleanup,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// A `sleep` process outside any Landlock domain, started by an unrestricted shell that kills
/// it when this process exits.
struct Outsider {
    pid: nix::unistd::Pid,
    _helper: Child,
}

impl Outsider {
    fn start() -> Outsider {
        let mut helper = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 60 & echo $!; cat >/dev/null; kill -9 $!"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the helper shell");
        let mut line = String::new();
        BufReader::new(helper.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(line.trim().parse().expect("the sleeper's pid"));
        Outsider {
            pid,
            _helper: helper,
        }
    }
}

fn errno_of(e: &std::io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw)
}

#[track_caller]
fn assert_denied<T: std::fmt::Debug>(r: std::io::Result<T>, errno: Errno, what: &str) {
    match r {
        Err(e) if errno_of(&e) == Some(errno) => {}
        other => panic!("{what}: expected {errno}, got {other:?}"),
    }
}

fn enforced(report: &[(LandlockPart, Enforcement)], part: LandlockPart) -> bool {
    match report.iter().find(|(p, _)| *p == part) {
        Some((_, Enforcement::Enforced)) => true,
        Some((_, Enforcement::NotEnforced { reason, hint })) => {
            // A part the kernel lacks is reported with the ABI it needs and the fix.
            assert!(
                reason.contains(&format!("needs Landlock ABI {}", part.min_abi())),
                "{part}: {reason}"
            );
            assert!(hint.contains("Linux"), "{part}: {hint}");
            eprintln!("NOT ENFORCED here: {part}: {reason} (fix: {hint})");
            false
        }
        Some((_, other)) => panic!("{part}: {other:?}"),
        None => panic!("{part} missing from the report {report:?}"),
    }
}

/// Skip (visibly) when this kernel has no Landlock at all.
fn no_landlock() -> bool {
    if abi() == 0 {
        common::skip("this kernel has no Landlock");
        return true;
    }
    false
}

fn files_and_devices() {
    if no_landlock() {
        return;
    }
    let s = Scratch::new("files");
    let rules = Landlock::new()
        .read_only([s.path("ro")])
        .read_write([s.path("rw")])
        .allow("/dev/null", FsAccess::READ_FILE | FsAccess::WRITE_FILE);
    let report = __restrict_self_for_tests(&rules, Compat::BestEffort).unwrap();
    eprintln!("Landlock ABI {}: {report:?}", abi());
    assert!(enforced(&report, LandlockPart::Filesystem));

    // Reading beneath a read-only path works.
    assert_eq!(fs::read_to_string(s.path("ro/file")).unwrap(), "allowed");
    assert!(fs::read_dir(s.path("ro")).is_ok());
    // Anything else is denied, next door or elsewhere on the host.
    assert_denied(
        fs::read(s.path("outside/secret")),
        Errno::EACCES,
        "read outside",
    );
    assert_denied(
        fs::read_dir(s.path("outside")),
        Errno::EACCES,
        "list outside",
    );
    assert_denied(fs::read("/etc/passwd"), Errno::EACCES, "read /etc/passwd");
    // A read-only path cannot be written, and nothing can be created in it.
    assert_denied(
        OpenOptions::new().append(true).open(s.path("ro/file")),
        Errno::EACCES,
        "write a read-only file",
    );
    assert_denied(
        File::create(s.path("ro/new")),
        Errno::EACCES,
        "create in a read-only dir",
    );
    assert_denied(
        fs::remove_file(s.path("ro/file")),
        Errno::EACCES,
        "remove in a read-only dir",
    );
    // A read-write path allows it all.
    let new = s.path("rw/new");
    File::create(&new).unwrap().write_all(b"written").unwrap();
    assert_eq!(fs::read_to_string(&new).unwrap(), "written");
    fs::rename(&new, s.path("rw/renamed")).unwrap();
    fs::create_dir(s.path("rw/sub")).unwrap();
    fs::remove_dir(s.path("rw/sub")).unwrap();
    fs::remove_file(s.path("rw/renamed")).unwrap();

    // A file rule: /dev/null may be opened, but no device ioctl (ABI 5) is allowed on it.
    let mut null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .unwrap();
    null.write_all(b"x").unwrap();
    assert_eq!(null.read(&mut [0u8; 1]).unwrap(), 0);
    let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: TCGETS writes a termios into this buffer (or fails).
    let rc = unsafe { libc::ioctl(null.as_raw_fd(), libc::TCGETS, termios.as_mut_ptr()) };
    assert_eq!(rc, -1);
    let ioctl_errno = Errno::last();
    if enforced(&report, LandlockPart::IoctlDev) {
        assert_eq!(ioctl_errno, Errno::EACCES, "device ioctl");
    } else {
        // The driver answers: Landlock did not look.
        assert_eq!(ioctl_errno, Errno::ENOTTY, "device ioctl");
    }

    // Truncation (ABI 3): denied on a read-only file, or, where the kernel cannot restrict
    // it, let through as the report says.
    let r = nix::unistd::truncate(&s.path("ro/file"), 0);
    if enforced(&report, LandlockPart::Truncate) {
        assert_eq!(r, Err(Errno::EACCES), "truncate a read-only file");
    } else if common::is_root() {
        assert_eq!(r, Ok(()), "truncate a read-only file");
    }
}

fresh_process_test! {
    fn files_outside_the_rules_are_denied() {
        files_and_devices();
    }
}

rootless_test! {
    fn rootless_files_outside_the_rules_are_denied() {
        files_and_devices();
    }
}

fresh_process_test! {
    fn tcp_connect_only_to_allowed_ports() {
        if no_landlock() {
            return;
        }
        let localhost = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let allowed = TcpListener::bind(localhost(0)).unwrap();
        let other = TcpListener::bind(localhost(0)).unwrap();
        let allowed_port = allowed.local_addr().unwrap().port();
        let other_port = other.local_addr().unwrap().port();

        let rules = Landlock::new().connect_tcp(allowed_port);
        let report = __restrict_self_for_tests(&rules, Compat::BestEffort).unwrap();

        TcpStream::connect(localhost(allowed_port)).expect("connect to the allowed port");
        let to_other = TcpStream::connect(localhost(other_port));
        let bind_any = TcpListener::bind(localhost(0));
        if enforced(&report, LandlockPart::Tcp) {
            assert_denied(to_other, Errno::EACCES, "connect to another port");
            // Once a TCP rule is given, binding is denied too (no bind rule was given).
            assert_denied(bind_any, Errno::EACCES, "bind");
        } else {
            to_other.expect("without TCP rules in this kernel, any port is reachable");
            bind_any.expect("without TCP rules in this kernel, bind works");
        }
    }
}

fresh_process_test! {
    fn bind_only_to_allowed_ports() {
        if no_landlock() {
            return;
        }
        // Find a free port, then allow binding only to it.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let report = __restrict_self_for_tests(&Landlock::new().bind_tcp(port), Compat::BestEffort)
            .unwrap();
        if !enforced(&report, LandlockPart::Tcp) {
            return common::skip("this kernel has no Landlock TCP rules (ABI < 4)");
        }
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind to the allowed port");
        assert_denied(
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)),
            Errno::EACCES,
            "bind to another port",
        );
    }
}

fresh_process_test! {
    fn signals_and_abstract_sockets_outside_are_scoped() {
        if no_landlock() {
            return;
        }
        // A process outside the Landlock domain (started before the restriction).
        let outsider = Outsider::start();
        let name = format!("ringfence-landlock-test-{}", std::process::id());
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        let _listener = UnixListener::bind_addr(&addr).unwrap();

        let rules = Landlock::new().scope_signals().scope_abstract_unix();
        let report = __restrict_self_for_tests(&rules, Compat::BestEffort).unwrap();

        let outside = nix::sys::signal::kill(outsider.pid, None);
        let myself = nix::sys::signal::kill(nix::unistd::getpid(), None);
        assert_eq!(myself, Ok(()), "signal 0 to itself");
        if enforced(&report, LandlockPart::ScopeSignals) {
            assert_eq!(outside, Err(Errno::EPERM), "signal 0 to a process outside");
        } else {
            assert_eq!(outside, Ok(()), "signal 0 without signal scoping");
        }
        let connect = UnixStream::connect_addr(&addr);
        if enforced(&report, LandlockPart::ScopeAbstractUnix) {
            assert_denied(connect, Errno::EPERM, "connect to an abstract socket outside");
        } else {
            connect.expect("connect without abstract unix scoping");
        }
    }
}

#[test]
fn report_matches_this_kernel() {
    // Preparing never restricts: this runs in the test process itself.
    let rules = Landlock::new()
        .read_only(["/usr"])
        .connect_tcp(443)
        .scope_signals()
        .scope_abstract_unix();
    let report = match __prepare_for_tests(&rules, Compat::BestEffort) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(report, rules.enforcement());
    let abi = abi();
    eprintln!("Landlock ABI {abi}:");
    for (part, e) in &report {
        eprintln!("  {:<30} {e:?}", part.name());
        match e {
            Enforcement::Enforced => assert!(abi >= part.min_abi(), "{part}"),
            Enforcement::NotEnforced { reason, hint } => {
                assert!(abi < part.min_abi(), "{part}");
                if abi == 0 {
                    assert!(hint.contains("lsm="), "{hint}");
                } else {
                    assert_eq!(
                        reason,
                        &format!(
                            "needs Landlock ABI {}, this kernel has ABI {abi}",
                            part.min_abi()
                        )
                    );
                }
            }
            _ => unreachable!(),
        }
    }
    let parts: Vec<LandlockPart> = report.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        parts,
        [
            LandlockPart::Filesystem,
            LandlockPart::Truncate,
            LandlockPart::IoctlDev,
            LandlockPart::Tcp,
            LandlockPart::ScopeSignals,
            LandlockPart::ScopeAbstractUnix,
        ]
    );
    if abi >= 6 {
        assert!(report.iter().all(|(_, e)| *e == Enforcement::Enforced));
    }
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let missing = Path::new("/no/such/ringfence/dir");
    let e = __prepare_for_tests(
        &Landlock::new().read_only(["/usr"]).read_write([missing]),
        Compat::BestEffort,
    )
    .unwrap_err();
    match &e {
        LandlockError::OpenPath { path, source } => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("\"/no/such/ringfence/dir\""), "{msg}");
    assert_eq!(e.errno(), Some(Errno::ENOENT));
    assert!(e.hint().unwrap().contains("must exist"));
}

#[test]
fn required_fails_when_the_kernel_lacks_a_part() {
    let rules = Landlock::new().read_only(["/usr"]).scope_signals();
    let r = __prepare_for_tests(&rules, Compat::Required);
    match abi() {
        0 => assert!(matches!(r, Err(LandlockError::Unavailable { .. })), "{r:?}"),
        abi if abi < LandlockPart::ScopeSignals.min_abi() => {
            let e = r.unwrap_err();
            let msg = e.to_string();
            eprintln!("{msg}");
            let LandlockError::Unsupported { missing, .. } = &e else {
                panic!("{e:?}")
            };
            assert!(missing.contains(&LandlockPart::ScopeSignals), "{msg}");
            assert!(msg.contains("signal scoping (needs ABI 6)"), "{msg}");
            assert!(e.hint().unwrap().contains("6.12"), "{msg}");
        }
        _ => {
            // This kernel has every part: Required changes nothing. (A lower ABI is simulated
            // by the unit tests, and shown for real in a VM with an older kernel.)
            let report = r.unwrap();
            assert!(report.iter().all(|(_, e)| *e == Enforcement::Enforced));
        }
    }
}

fn through_the_sandbox() {
    if no_landlock() {
        return;
    }
    // The program may read the system and its own directory, nothing else.
    let dir = std::env::temp_dir().join(format!("ringfence-ll-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("allowed"), "yes\n").unwrap();
    let secret = std::env::temp_dir().join(format!("ringfence-ll-secret-{}", std::process::id()));
    std::fs::write(&secret, "no\n").unwrap();
    let rules = Landlock::new()
        .read_only(
            ["/usr", "/etc", "/bin", "/lib", "/lib64", "/dev"]
                .iter()
                .filter(|p| Path::new(p).exists()),
        )
        .read_only([&dir]);
    // Best effort: on kernels with an older ABI (no truncate or ioctl rules) the file rules
    // still hold; required (the default) would refuse to run there.
    let sb = ringfence::Sandbox::new()
        .compat(Compat::BestEffort)
        .landlock(rules);
    let mut cmd = ringfence::Command::new("/bin/sh");
    cmd.arg("-c").arg(format!(
        "cat {}/allowed; cat {} 2>&1",
        dir.display(),
        secret.display()
    ));
    let out = sb.output(&cmd).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&secret);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("yes\n"), "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    assert!(!text.contains("no\n"), "{text}");
    assert!(
        out.report
            .is_enforced(ringfence::Layer::Landlock(LandlockPart::Filesystem)),
        "{}",
        out.report
    );
}

#[test]
fn rules_given_to_a_sandbox_restrict_its_program() {
    through_the_sandbox();
}

rootless_test! {
    fn rules_given_to_a_sandbox_restrict_its_program_rootless() {
        through_the_sandbox();
    }
}
