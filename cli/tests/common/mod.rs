//! The prologue shared by the tests of the `ringfence` binary: running it (as root or as uid
//! 65534), reading its output and JSON, temporary directories, visible skips.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ringfence");

/// Whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Print why a test is skipped (visible with `--nocapture` and in CI logs).
pub fn skip(why: &str) {
    eprintln!("SKIPPED: {why}");
    println!("SKIPPED: {why}");
}

/// Skip (returning true) unless running as root.
pub fn needs_root() -> bool {
    if is_root() {
        return false;
    }
    skip("needs root");
    true
}

/// Run `ringfence ARGS` to completion, stdin on /dev/null.
pub fn ringfence(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ringfence")
}

/// The exit status (ringfence is never killed by a signal in these tests).
pub fn code(o: &Output) -> i32 {
    o.status.code().expect("ringfence exits, it is not killed")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Everything about a run, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    )
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new, empty directory (mode 0755).
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ringfence-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).expect("create a temporary directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Read one JSON document from a file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the JSON file exists");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid JSON {text:?}: {e}"))
}

/// The last line of stderr that is a JSON object (what `run --json` writes).
pub fn stderr_json(o: &Output) -> Value {
    let err = stderr(o);
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON on stderr: {err}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("invalid JSON {line:?}: {e}"))
}

/// Poll `done` every 20 ms for at most `limit`.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Run `c` to completion. A copy of the binary just written may still be open in a child that
/// another test thread forked and that has not reached its `exec` yet (`ETXTBSY`): retried.
pub fn output(c: &mut Command) -> Output {
    for _ in 0..100 {
        match c.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.expect("run ringfence"),
        }
    }
    panic!("the binary stayed busy (ETXTBSY)");
}

/// Who runs ringfence in a test: root, or uid/gid 65534 (an ordinary user).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum As {
    /// The test's own user (root in CI).
    Root,
    /// uid and gid 65534, with no supplementary groups.
    Nobody,
}

/// A copy of the binary that uid 65534 can run (the build directory may not be reachable),
/// removed on drop.
pub struct Bin {
    path: PathBuf,
    _dir: Option<TempDir>,
}

impl Bin {
    /// The binary for `who`.
    pub fn for_user(who: As) -> Bin {
        if who == As::Root {
            return Bin {
                path: PathBuf::from(BIN),
                _dir: None,
            };
        }
        let dir = TempDir::new();
        let path = dir.path("ringfence");
        std::fs::copy(BIN, &path).expect("copy the binary");
        Bin {
            path,
            _dir: Some(dir),
        }
    }

    /// A command running this binary as `who`, with stdin on /dev/null, in `/`, with an
    /// environment of PATH only.
    pub fn command(&self, who: As) -> Command {
        let mut c = Command::new(&self.path);
        c.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .stdin(Stdio::null())
            .current_dir("/");
        if who == As::Nobody {
            // std drops the supplementary groups when it changes the uid as root.
            c.uid(65534).gid(65534);
        }
        c
    }
}
