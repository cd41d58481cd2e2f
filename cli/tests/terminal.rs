//! Terminals: `-t` gives a pseudo-terminal that ringfence owns (window size, job control);
//! the caller's terminal never reaches a sandboxed process, so a payload that reopens
//! `/proc/N/fd/0` of an `exec`'d process cannot keep it after `exec` returned. As root and as
//! uid 65534; these tests open pseudo-terminals and change owners, so they need root.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{As, Bin, TempDir, code, needs_root, stdout, text};

/// A pseudo-terminal standing for the user's terminal: the test types into and reads from
/// the master; ringfence gets the slave as its stdin, stdout and stderr.
struct Terminal {
    master: std::fs::File,
    slave: OwnedFd,
}

impl Terminal {
    fn new(owner: u32, rows: u16, cols: u16) -> Terminal {
        let ws = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let p = nix::pty::openpty(&ws, None).unwrap();
        // The user's own terminal belongs to the user.
        let name = std::fs::read_link(format!("/proc/self/fd/{}", p.slave.as_raw_fd())).unwrap();
        std::os::unix::fs::chown(&name, Some(owner), None).unwrap();
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(p.master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        Terminal {
            master: std::fs::File::from(p.master),
            slave: p.slave,
        }
    }

    fn stdio(&self) -> Stdio {
        Stdio::from(self.slave.try_clone().unwrap())
    }

    /// Everything the terminal shows within `wait`.
    fn read_for(&mut self, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Run ringfence as `who` with the terminal as its stdio, to completion.
fn on_terminal(
    who: As,
    bin: &Bin,
    term: &mut Terminal,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String) {
    let mut c = bin.command(who);
    c.args(args)
        .envs(env.iter().copied())
        .stdin(term.stdio())
        .stdout(term.stdio())
        .stderr(term.stdio());
    let mut child = loop {
        match c.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => break other.unwrap(),
        }
    };
    let mut shown = String::new();
    let status = loop {
        shown.push_str(&term.read_for(Duration::from_millis(50)));
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
    };
    shown.push_str(&term.read_for(Duration::from_millis(200)));
    (status.code().unwrap_or(-1), shown)
}

fn both(test: impl Fn(As)) {
    if needs_root() {
        return;
    }
    test(As::Root);
    test(As::Nobody);
}

fn uid(who: As) -> u32 {
    match who {
        As::Root => 0,
        As::Nobody => 65534,
    }
}

#[test]
fn run_t_gives_a_terminal_with_the_window_size_and_job_control_root() {
    both(|who| {
        let bin = Bin::for_user(who);
        let mut term = Terminal::new(uid(who), 33, 111);
        let (status, shown) = on_terminal(
            who,
            &bin,
            &mut term,
            &[],
            &[
                "run",
                "-t",
                "--",
                "bash",
                "-i",
                "-c",
                "stty size; echo flags=$-; sleep 0.2 & fg >/dev/null; echo fg-done",
            ],
        );
        assert_eq!(status, 0, "{who:?}: {shown}");
        assert!(shown.contains("33 111"), "{who:?}: {shown}");
        // `m`: bash has job control (it found a controlling terminal).
        let flags = shown
            .lines()
            .find_map(|l| l.trim().strip_prefix("flags="))
            .unwrap_or_else(|| panic!("{who:?}: {shown}"));
        assert!(flags.contains('m'), "{who:?}: {shown}");
        assert!(!shown.contains("no job control"), "{who:?}: {shown}");
        assert!(shown.contains("fg-done"), "{who:?}: {shown}");
    });
}

/// The exec'd payload: it leaves a process behind (in a session of its own, out of the
/// process group that ends with the exec) that keeps the stdin and stdout it was given and,
/// once `exec` has returned, writes to them and reads what the user types next; the result
/// goes to /tmp/result. (Reopening `/proc/N/fd/0` of the exec'd process from another process
/// of the sandbox is refused by the sandbox's Landlock domain as well.)
const PAYLOAD: &str = r#"setsid -f bash -c 'trap "" PIPE HUP; sleep 2; echo PWNED; w=$?; read -r -t 3 line; echo "write=$w read=$line" > /tmp/result'; echo exec-done"#;

fn attack(who: As, tty: bool) {
    let bin = Bin::for_user(who);
    let tmp = TempDir::new();
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let state = tmp.path("state");
    let env = [("RINGFENCE_STATE_DIR", state.to_str().unwrap())];
    let rf = |args: &[&str]| -> Output {
        common::output(bin.command(who).envs(env.iter().copied()).args(args))
    };
    let o = rf(&["run", "--name", "job", "--detach", "--", "sleep", "60"]);
    assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
    // Killed however the test ends.
    struct Kill<'a>(&'a dyn Fn(&[&str]) -> Output);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            (self.0)(&["kill", "job"]);
        }
    }
    let _kill = Kill(&rf);
    // The exec'd program, on the user's terminal.
    let mut term = Terminal::new(uid(who), 24, 80);
    let mut args = vec!["exec"];
    if tty {
        args.push("-t");
    }
    args.extend(["job", "--", "bash", "-c", PAYLOAD]);
    let (status, shown) = on_terminal(who, &bin, &mut term, &env, &args);
    assert_eq!(status, 0, "{who:?}: {shown}");
    assert!(shown.contains("exec-done"), "{who:?}: {shown}");
    // exec has returned. The user types a secret; the payload acts.
    term.master.write_all(b"hunter2\n").unwrap();
    assert!(
        common::wait_until(Duration::from_secs(15), || code(&rf(&[
            "exec",
            "job",
            "--",
            "test",
            "-e",
            "/tmp/result"
        ])) == 0),
        "{who:?} tty={tty}: the payload wrote no result"
    );
    let result = stdout(&rf(&["exec", "job", "--", "cat", "/tmp/result"]));
    let shown_after = term.read_for(Duration::from_millis(300));
    eprintln!("{who:?} tty={tty}: {result}");
    assert!(result.starts_with("write="), "{who:?}: {result}");
    assert!(
        !result.contains("hunter2"),
        "{who:?} tty={tty}: the payload read what the user typed after exec returned: {result}"
    );
    assert!(
        !shown_after.contains("PWNED"),
        "{who:?} tty={tty}: the payload wrote to the user's terminal after exec returned: {shown_after:?} ({result})"
    );
}

#[test]
fn a_payload_cannot_keep_the_terminal_of_an_exec_root() {
    both(|who| {
        attack(who, false);
        attack(who, true);
    });
}
