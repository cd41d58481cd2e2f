//! Attacks on processes outside the sandbox, on what the parent holds (descriptors,
//! environment), and on the sandbox's own end (daemons, `kill(-1)`).

use std::io::{BufRead, BufReader};

use super::{attack, isolated, run, run_in};
use crate::common;
use libc::{EACCES, ECONNREFUSED, ENOENT, EPERM, ESRCH};
use ringfence::Stdio;

/// A process of the host, started by the test, killed and reaped when dropped.
struct Sentinel(std::process::Child);

impl Sentinel {
    fn start() -> Sentinel {
        Sentinel(
            std::process::Command::new("/bin/sleep")
                .arg("60")
                .spawn()
                .expect("start a sentinel process"),
        )
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn tracer(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .unwrap()
            .trim()
            .to_owned()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

attack! {
    /// ptrace (and its relatives) against a process of the host and against the sandbox's
    /// own init, which keeps what the program dropped and shares the caller's memory.
    fn ptrace_outside() {
        let s = Sentinel::start();
        let r = run("ptrace", &[&s.pid().to_string()]);
        r.refused("ptrace_host", EPERM);
        r.refused("ptrace_seize_host", EPERM);
        r.refused("ptrace_init", EPERM);
        r.refused("process_vm_readv_init", EPERM);
        // Nor written: the init runs in the caller's own memory (docs/ARCHITECTURE.md).
        r.refused("mem_write_init", EACCES);
        r.refused("process_vm_writev_init", EPERM);
        // The host's process is not even there: another pid namespace and its own /proc.
        r.refused("kill0_host", ESRCH);
        r.refused("pidfd_open_host", ESRCH);
        r.refused("proc_host", ENOENT);
        assert!(common::alive(s.pid()));
        assert_eq!(s.tracer(), "0");
    }
}

attack! {
    /// A descriptor the parent opened without `O_CLOEXEC` (a secret file) is not there.
    fn fd_leak_from_the_parent() {
        let secret = std::env::temp_dir().join(format!("ringfence-escape-fd-{}", std::process::id()));
        std::fs::write(&secret, "secret").unwrap();
        let path = std::ffi::CString::new(secret.to_str().unwrap()).unwrap();
        // SAFETY: open without O_CLOEXEC on purpose; closed below.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
        assert!(fd >= 0);
        // SAFETY: F_GETFD reads the flags of our own descriptor.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC, 0);
        let r = run("fds", &[]);
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(fd) };
        std::fs::remove_file(&secret).unwrap();
        assert_eq!(r.get("open_fds"), "", "descriptors beyond stdio reached the sandbox");
    }
}

attack! {
    /// A double-forked, `setsid` daemon does not outlive the sandbox.
    fn daemonising() {
        // The program starts the daemon, then waits for a line on stdin before it exits, so
        // that the test can see the daemon from the host first.
        let mut child = isolated()
            .spawn(
                crate::rf_in(&["exec", "/bin/sh", "-c", "/rf-inspect daemon 60; read x || true"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped()),
            )
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("daemon="), "{line}");
        let ns = pid_ns_of(child.id() as i32).unwrap();
        assert_ne!(ns, common::host_ns("pid"));
        // init, sh and the daemon (and maybe its parent, exiting).
        let members = common::pids_in_ns(&ns);
        assert!(members.len() >= 3, "{members:?}");
        drop(child.stdin.take());
        let out = child.wait().unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        // The sandbox ended with its program: nothing of it survives, seen from the host.
        assert_eq!(common::pids_in_ns(&ns), vec![]);
        for (pid, _) in members {
            assert!(
                !common::alive(pid) || pid_ns_of(pid) != Some(ns.clone()),
                "{pid} survived"
            );
        }
    }
}

fn pid_ns_of(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

attack! {
    /// `kill(-1, SIGKILL)` from inside the sandbox's pid namespace (the attack refuses to
    /// run anywhere else) reaches only the sandbox: the test process and a sentinel process
    /// of the host survive, while a victim inside is killed.
    fn kill_minus_one() {
        let s = Sentinel::start();
        let r = run("kill-all", &[&common::host_ns("pid")]);
        assert!(!r.0.contains_key("refused"), "{r:?}");
        r.refused("kill_all", 0);
        assert_eq!(r.get("victim_signal"), libc::SIGKILL.to_string());
        assert!(common::alive(s.pid()), "the host's sentinel was killed");
        assert!(common::alive(std::process::id() as i32));
    }
}

attack! {
    /// Listeners of the host: an abstract unix socket and TCP on 127.0.0.1 are in the host's
    /// network namespace, out of reach.
    fn host_listeners() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ringfence-escape-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let unix = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        unix.set_nonblocking(true).unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let port = tcp.local_addr().unwrap().port().to_string();
        // The listeners work from the host.
        drop(std::os::unix::net::UnixStream::connect_addr(&addr).unwrap());
        drop(std::net::TcpStream::connect(("127.0.0.1", tcp.local_addr().unwrap().port())).unwrap());
        unix.accept().unwrap();
        tcp.accept().unwrap();

        let r = run("connect", &[&name, &port]);
        r.refused("abstract_unix", ECONNREFUSED);
        r.refused("tcp_loopback", ECONNREFUSED);
        assert_eq!(unix.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
        assert_eq!(tcp.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    }
}

const SECRET_ENV: &str = "RINGFENCE_ESCAPE_SECRET";

/// The environment: a secret in the parent's environment (given to this process at exec, so
/// it is also in the memory the sandbox's init inherits) is not visible inside, neither in the
/// program's own environment nor in any `/proc/PID/environ`.
fn environment(test: &str, nobody: bool) {
    let Ok(secret) = std::env::var(SECRET_ENV) else {
        // Re-run in a fresh process that has the secret in its environment from the start.
        if !nobody && !common::is_root() {
            return common::skip("needs root (the rootless variant runs as this user)");
        }
        let _g = super::serial();
        let secret = format!(
            "s3cret-{}-{:?}",
            std::process::id(),
            std::time::Instant::now()
        );
        return common::rerun_env(test, nobody && common::is_root(), &[(SECRET_ENV, &secret)]);
    };
    if !super::can_isolate() {
        return;
    }
    let (out, r) = run_in(isolated(), "environ", &[]);
    assert!(out.status.success(), "{:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&secret), "the secret leaked: {text}");
    assert_eq!(r.get("self"), "");
    // The init's environment block is the parent's: not readable by the program.
    r.refused_any("environ_1_errno", &[EACCES, EPERM]);
}

mod environment_leakage {
    #[test]
    fn root() {
        super::environment("processes::environment_leakage::root", false);
    }

    #[test]
    fn rootless() {
        super::environment("processes::environment_leakage::rootless", true);
    }
}

const EXEC_SECRET_ENV: &str = "RINGFENCE_ESCAPE_EXEC_SECRET";

/// The `exec` setup window: a program inside the sandbox watches for the processes that
/// `Child::exec` sends in and tries to reach each through /proc — stopping it first, so that
/// its setup waits — for the caller's binary (`exe`, CVE-2019-5736's way out), environment
/// (a secret of the caller), memory and descriptors. The joined process is not dumpable from
/// its clone to its `execve` and enters a Landlock domain of its own, out of the sandbox's
/// reach also after its `execve`.
fn exec_window(test: &str, nobody: bool) {
    use std::os::unix::fs::MetadataExt;
    let Ok(secret) = std::env::var(EXEC_SECRET_ENV) else {
        if !nobody && !common::is_root() {
            return common::skip("needs root (the rootless variant runs as this user)");
        }
        let _g = super::serial();
        let secret = format!("x5ecret-{}", std::process::id());
        return common::rerun_env(
            test,
            nobody && common::is_root(),
            &[(EXEC_SECRET_ENV, &secret)],
        );
    };
    if !super::can_isolate() {
        return;
    }
    let exe = std::fs::metadata(std::env::current_exe().unwrap()).unwrap();
    let exe_id = format!("{}:{}", exe.dev(), exe.ino());
    let mut target = isolated()
        .spawn(
            crate::rf_in(&["attack", "exec-window", &exe_id, &secret])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        )
        .unwrap();
    let mut out = BufReader::new(target.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready=1");
    let mut quick = ringfence::Command::new("/rf-inspect");
    quick.args(["sleep", "0"]).stdout(Stdio::Null);
    for _ in 0..20 {
        let mut joined = target.exec(&quick).unwrap();
        assert!(joined.wait().unwrap().status.success());
    }
    // CVE-2019-5736's way in: the sandbox plants a script whose interpreter is
    // `/proc/self/exe`, so that executing it runs the caller's binary (here this test binary,
    // which runs no test with that argument) inside the sandbox, reachable from it while it
    // runs unless it is out of the sandbox's reach.
    let mut plant = ringfence::Command::new("/bin/sh");
    plant.args([
        "-c",
        "printf '#!/proc/self/exe\\n' > /tmp/evil && chmod 755 /tmp/evil",
    ]);
    assert!(
        target
            .exec(&plant)
            .unwrap()
            .wait()
            .unwrap()
            .status
            .success()
    );
    let mut evil = ringfence::Command::new("/tmp/evil");
    evil.stdout(Stdio::Null).stderr(Stdio::Null);
    for _ in 0..3 {
        let out = target.exec(&evil).unwrap().wait().unwrap();
        assert!(out.status.success(), "{:?}", out.status);
    }
    // One that stays long enough to be seen for sure.
    let mut slow = ringfence::Command::new("/rf-inspect");
    slow.args(["sleep", "1"]).stdout(Stdio::Null);
    assert!(target.exec(&slow).unwrap().wait().unwrap().status.success());
    drop(target.stdin.take());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(target.wait().unwrap().status.success());
    let r: std::collections::HashMap<&str, u32> = rest
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    assert!(r["seen"] >= 1, "the watcher saw no process come in: {r:?}");
    assert_eq!(r["exe_host"], 0, "the caller's binary was reachable: {r:?}");
    assert_eq!(
        r["environ_secret"], 0,
        "the caller's environment leaked: {r:?}"
    );
    if ringfence::landlock::abi() == 0 {
        return common::skip(
            "no Landlock: the executed program's own /proc entries stay reachable",
        );
    }
    for key in ["exe_other", "environ_read", "mem_rw", "fd0_link", "fd0"] {
        assert_eq!(r[key], 0, "{key}: a joined process was reachable: {r:?}");
    }
    if ringfence::landlock::abi() >= 6 {
        // Signals stay inside the sandbox's domain too.
        assert_eq!(r["stopped"], 0, "a joined process was stopped: {r:?}");
    }
}

mod exec_setup_window {
    #[test]
    fn root() {
        super::exec_window("processes::exec_setup_window::root", false);
    }

    #[test]
    fn rootless() {
        super::exec_window("processes::exec_setup_window::rootless", true);
    }
}

attack! {
    /// Without any namespace (the default mode), the program cannot reach into its caller
    /// through /proc/$PPID: not its memory (to write code into it, outside the filter), its
    /// environment, its descriptors or its binary. As root the capability drop already
    /// refuses it; as an ordinary user the sandbox's own Landlock domain does.
    fn caller_through_proc() {
        let out = ringfence::Sandbox::new()
            .output(&common::rf(&["attack", "parent-proc"]))
            .unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        let r = crate::Results::parse(&out);
        assert_eq!(r.get("ppid"), std::process::id().to_string());
        if ringfence::landlock::abi() == 0 && !common::is_root() {
            return common::skip("no Landlock: an ordinary user's sandbox without namespaces can reach its caller");
        }
        assert!(out.report.is_enforced(ringfence::Layer::LandlockDomain), "{}", out.report);
        for key in ["mem_rw", "environ", "fd0", "fd0_link", "exe"] {
            r.refused_any(key, &[EACCES, EPERM]);
        }
    }
}

attack! {
    /// The sandbox's init (a copy of the caller) shows no command line or environment of the
    /// caller in /proc/1.
    fn init_strings() {
        let r = run("init-strings", &[]);
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap();
        let cmdline = r.get("cmdline");
        assert!(!cmdline.contains(name), "the caller's command line: {cmdline:?}");
        assert_eq!(cmdline, "ringfence-init");
        if let Some(env) = r.0.get("environ") {
            assert_eq!(env, "", "the caller's environment");
        }
    }
}
