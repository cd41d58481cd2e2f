//! Process hygiene every sandbox gets: closed descriptors, no controlling terminal,
//! no_new_privs, no capabilities, an empty environment, reset signals, death with the parent;
//! and the options that change them (passed fds, kept capabilities, ids, rlimits, umask, cwd).

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use common::{facts, facts_of, rf};
use ringfence::{Capability, Command, Rlimit, Sandbox, Stdio};

const NO_CAPS: &str = "0000000000000000";

#[test]
fn descriptors_not_passed_are_closed() {
    // A descriptor without close-on-exec, as a careless parent (or a C library) leaves them.
    // SAFETY: open returns a new descriptor that we own.
    let leaked = unsafe { OwnedFd::from_raw_fd(libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY)) };
    assert!(leaked.as_raw_fd() > 2);
    let f = facts(&Sandbox::new());
    let fds: Vec<&str> = f
        .get("fds")
        .split(',')
        .map(|d| d.split(':').next().unwrap())
        .collect();
    assert_eq!(fds, ["0", "1", "2"], "{}", f.get("fds"));
}

#[test]
fn passed_descriptors_stay_open_under_their_numbers() {
    let (r, _w) = nix::unistd::pipe().unwrap();
    let mut cmd = rf(&["facts"]);
    cmd.pass_fd(&r).unwrap().pass_fd_as(&r, 40).unwrap();
    let f = facts_of(&Sandbox::new(), &cmd);
    let fds = f.get("fds");
    let expect_same = format!("{}:pipe:", r.as_raw_fd());
    assert!(fds.contains(&expect_same), "{fds}");
    assert!(fds.contains("40:pipe:"), "{fds}");
    assert_eq!(fds.split(',').count(), 5, "{fds}");
}

#[test]
fn the_program_has_no_privileges() {
    let f = facts(&Sandbox::new());
    assert_eq!(f.get("NoNewPrivs"), "1");
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(f.get(set), NO_CAPS, "{set}");
    }
    if common::is_root() {
        // Without privileges the bounding set cannot be changed (no_new_privs makes it moot).
        assert_eq!(f.get("CapBnd"), NO_CAPS);
    }
}

#[test]
fn kept_capabilities_survive_exec_for_root_and_non_root() {
    if !common::is_root() {
        return common::skip("keeping capabilities without a user namespace needs root");
    }
    let bit = format!("{:016x}", 1u64 << Capability::CAP_NET_BIND_SERVICE.index());
    let sb = Sandbox::new().capabilities([Capability::CAP_NET_BIND_SERVICE]);
    let f = facts(&sb);
    assert_eq!(f.get("CapEff"), bit);
    assert_eq!(f.get("CapBnd"), bit);
    // A non-root program keeps it through the ambient set.
    let f = facts(&sb.uid(65534).gid(65534));
    assert_eq!(f.get("uid"), "65534");
    assert_eq!(f.get("CapEff"), bit);
    assert_eq!(f.get("CapAmb"), bit);
    assert_eq!(f.get("CapBnd"), bit);
}

#[test]
fn uid_and_gid_change_as_root() {
    if !common::is_root() {
        return common::skip("needs root");
    }
    let f = facts(&Sandbox::new().uid(65534).gid(65534));
    assert_eq!(f.get("uid"), "65534");
    assert_eq!(f.get("euid"), "65534");
    assert_eq!(f.get("gid"), "65534");
    assert_eq!(f.get("CapEff"), NO_CAPS);
}

#[test]
fn environment_is_empty_unless_given() {
    // SAFETY-free: the test environment has PATH and HOME set.
    let f = facts(&Sandbox::new());
    assert_eq!(f.get("env"), "");
    let mut cmd = rf(&["facts"]);
    cmd.env("ONLY", "this").env_inherit("HOME");
    let f = facts_of(&Sandbox::new(), &cmd);
    let home = std::env::var("HOME").unwrap_or_default();
    let mut want = vec![format!("ONLY=this")];
    if !home.is_empty() {
        want.insert(0, format!("HOME={home}"));
    }
    assert_eq!(f.get("env"), want.join(";"));
}

#[test]
fn rlimits_umask_and_cwd_apply() {
    let sb = Sandbox::new().rlimit(Rlimit::Nofile, 64, 128).umask(0o077);
    let mut cmd = rf(&["facts"]);
    cmd.current_dir("/tmp");
    let f = facts_of(&sb, &cmd);
    assert_eq!(f.get("nofile"), "64:128");
    assert_eq!(f.get("umask"), "77");
    assert_eq!(f.get("cwd"), "/tmp");
}

#[test]
fn new_session_and_signal_state() {
    let f = facts(&Sandbox::new());
    // A session leader of its own session.
    assert_eq!(f.get("sid"), f.get("pid"));
    // A C program reports its own signal state (a Rust program would ignore SIGPIPE itself).
    let out = Sandbox::new()
        .output(Command::new("/bin/grep").args(["-E", "^Sig(Blk|Ign)", "/proc/self/status"]))
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The test harness ignores SIGPIPE; the program must not inherit that.
    assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
    assert!(text.contains("SigIgn:\t0000000000000000"), "{text}");
}

fresh_process_test! {
    fn no_controlling_terminal_even_when_the_parent_has_one() {
        // Become a session leader with a pseudo-terminal as controlling terminal.
        // SAFETY: plain libc calls in a fresh, single-purpose test process.
        let slave = unsafe {
            assert!(libc::setsid() > 0);
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(master >= 0);
            assert_eq!(libc::grantpt(master), 0);
            assert_eq!(libc::unlockpt(master), 0);
            let name = libc::ptsname(master);
            let slave = libc::open(name, libc::O_RDWR);
            assert!(slave >= 0);
            assert_eq!(libc::ioctl(slave, libc::TIOCSCTTY, 0), 0);
            OwnedFd::from_raw_fd(slave)
        };
        assert!(std::fs::File::open("/dev/tty").is_ok(), "the test needs a controlling terminal");
        let tty = Stdio::from(slave.try_clone().unwrap());
        let mut cmd = rf(&["facts"]);
        cmd.stdin(tty.clone());
        let f = facts_of(&Sandbox::new(), &cmd);
        assert_eq!(f.get("ctty"), format!("no:{}", libc::ENXIO));
        // The same program without a new session reaches the terminal: the check above can fail.
        let f = facts_of(&Sandbox::new().new_session(false), &cmd);
        assert_eq!(f.get("ctty"), "yes");
    }
}

fresh_process_test! {
    fn the_sandbox_dies_with_the_thread_that_spawned_it() {
        let spawn_in_thread = |sb: Sandbox| {
            std::thread::spawn(move || {
                let mut child = sb.spawn(&rf(&["sleep", "30"])).unwrap();
                child.keep_running();
                child.id() as i32
            })
            .join()
            .unwrap()
        };
        let pid = spawn_in_thread(Sandbox::new());
        let mut died = false;
        for _ in 0..100 {
            // The process is our child: reap it when it is gone.
            // SAFETY: waitpid on our own child.
            let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            if r == pid {
                died = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(died, "the sandbox outlived the thread that spawned it");

        let pid = spawn_in_thread(Sandbox::new().die_with_parent(false));
        std::thread::sleep(Duration::from_millis(200));
        assert!(common::alive(pid), "die_with_parent(false) must keep it running");
        // SAFETY: kill and reap our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

rootless_test! {
    fn hygiene_holds_for_an_unprivileged_caller() {
        // As uid 65534, with and without the namespaces that need a user namespace.
        let mut sandboxes = vec![Sandbox::new()];
        if common::userns_available() {
            sandboxes.push(Sandbox::new().unshare_all());
        } else {
            common::skip("user namespaces are not available to uid 65534: namespaced variant");
        }
        // SAFETY: open returns a new descriptor that we own.
        let leaked = unsafe { OwnedFd::from_raw_fd(libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY)) };
        assert!(leaked.as_raw_fd() > 2);
        for sb in sandboxes {
            let f = facts(&sb);
            assert_eq!(f.get("uid"), "65534");
            assert_eq!(f.get("NoNewPrivs"), "1");
            for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
                assert_eq!(f.get(set), NO_CAPS, "{set}");
            }
            assert_eq!(f.get("env"), "");
            assert_eq!(f.get("fds").split(',').count(), 3, "{}", f.get("fds"));
            // Its own session: led by itself, or in a pid namespace by the init.
            let leader = if f.get("pid") == "2" { "1" } else { f.get("pid") };
            assert_eq!(f.get("sid"), leader);
        }
    }
}
