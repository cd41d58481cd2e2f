//! Host an untrusted plugin: a Python script, written to a directory of its own and bound
//! read-only into an isolated sandbox, runs under the `strict()` seccomp allow-list, a
//! timeout and a memory limit. Every system call outside the allow-list is refused and
//! reported back as a violation; the host prints the plugin's answer, how it ended and what it
//! tried.
//!
//! ```sh
//! cargo run --example plugin_host
//! ```
//!
//! Three plugins run: one that does its job and also pokes around (a socket, a child process,
//! a secret file), one that never ends, one that takes all the memory it can. Needs `python3`; as an ordinary
//! user, namespaces come from a user namespace and the cgroup memory limit is dropped where
//! cgroups cannot be created (the address-space rlimit still bounds the plugin).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringfence::{Action, Command, Compat, Layer, Outcome, Profile, Rlimit, Sandbox, Size, Stdio};

/// Does its job (the three most frequent words of its input), then tries what a hostile
/// plugin would: open a socket, start a process, read a secret.
const CURIOUS: &str = r#"
import sys
words = sys.stdin.read().lower().split()
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
print("top: " + ", ".join("%s=%d" % kv for kv in top))
sys.stdout.flush()

import os, socket
for what, attempt in [
    ("socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
    ("fork", os.fork),
    ("/etc/shadow", lambda: open("/etc/shadow").read()),
]:
    try:
        attempt()
        print("%s: allowed" % what, file=sys.stderr)
    except OSError as e:
        print("%s: %s" % (what, e.strerror), file=sys.stderr)
"#;

/// Never ends.
const RUNAWAY: &str = "while True:\n    pass\n";

/// Takes memory, 16 MiB at a time, until something stops it.
const HOG: &str = r#"
chunks = []
try:
    while True:
        chunks.append(b"x" * (16 << 20))
except MemoryError:
    print("stopped at %d MiB" % (16 * len(chunks)))
    raise
"#;

const INPUT: &str = "the quick brown fox jumps over the lazy dog the fox the end";

/// A directory for the plugins, removed when dropped.
struct PluginDir(PathBuf);

impl PluginDir {
    fn new() -> std::io::Result<PluginDir> {
        let dir = std::env::temp_dir().join(format!("ringfence-plugins-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(PluginDir(dir))
    }

    fn write(&self, name: &str, code: &str) -> std::io::Result<()> {
        std::fs::write(self.0.join(name), code)
    }
}

impl Drop for PluginDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `strict()`, an allow-list, where every other call fails with EPERM and is reported in the
/// Outcome (`Notify`).
fn plugin_profile() -> Profile {
    Profile::strict().default_action(Action::Notify)
}

/// The sandbox for plugins: isolated (own namespaces, a read-only system, a private /tmp, no
/// network), the plugins read-only at /plugins, and limits.
fn plugin_sandbox(plugins: &Path) -> Sandbox {
    Sandbox::isolated()
        .bind_ro(plugins, "/plugins")
        .chdir("/tmp")
        .seccomp(plugin_profile())
        .timeout(Duration::from_secs(2))
        // Without a writable cgroup, these two hold through per-process resource limits
        // (the report names them)...
        .memory_limit(Size::mib(64))
        .pids_limit(16)
        // ...and the swap limit has no substitute: best effort, the report says so.
        .compat(Compat::BestEffort)
        .memory_swap(0)
        // A bound that needs no cgroup: 256 MiB of address space.
        .rlimit(Rlimit::As, 256 << 20, 256 << 20)
        .rlimit(Rlimit::Nofile, 64, 64)
}

fn run_plugin(sandbox: &Sandbox, name: &str, input: &str) -> ringfence::Result<Outcome> {
    let mut cmd = Command::new("python3");
    cmd.args(["-I", "-S", &format!("/plugins/{name}")])
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped());
    let mut child = sandbox.spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        // Short enough for the pipe: writing cannot block before the plugin reads.
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output()
}

fn report(name: &str, out: &Outcome) {
    println!("== {name}");
    let ended = if out.timed_out {
        "killed at its timeout".to_owned()
    } else if out.oom_killed {
        "killed at its memory limit".to_owned()
    } else {
        format!("exited with {}", out.shell_code())
    };
    println!(
        "   {ended} after {:?} (peak memory {})",
        out.usage.wall,
        out.usage
            .peak_memory
            .map_or("unknown".to_owned(), |b| format!("{} KiB", b >> 10))
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("   stdout: {line}");
    }
    for line in String::from_utf8_lossy(&out.stderr).lines().take(5) {
        println!("   stderr: {line}");
    }
    let mut refused: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &out.violations {
        *refused.entry(&v.syscall).or_default() += 1;
    }
    if !refused.is_empty() {
        let list: Vec<String> = refused.iter().map(|(s, n)| format!("{s} x{n}")).collect();
        println!("   refused system calls: {}", list.join(", "));
    }
}

/// Run the three plugins and report; fails if the sandbox did not hold one of them.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !["/usr/bin/python3", "/bin/python3"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        println!("SKIPPED: python3 is not installed, and the plugins are Python scripts");
        return Ok(());
    }
    let dir = PluginDir::new()?;
    dir.write("curious.py", CURIOUS)?;
    dir.write("runaway.py", RUNAWAY)?;
    dir.write("hog.py", HOG)?;
    let sandbox = plugin_sandbox(&dir.0);

    let out = run_plugin(&sandbox, "curious.py", INPUT)?;
    println!("what the sandbox enforced:\n{}", out.report);
    report("curious.py", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.success() || stdout.trim() != "top: the=4, fox=2, brown=1" {
        return Err(format!("the plugin did not do its job: {out:?}").into());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("allowed") {
        return Err(format!("the sandbox let the plugin through:\n{stderr}").into());
    }
    if !out.violations.iter().any(|v| v.syscall == "socket") {
        return Err("the plugin's socket() was not reported".into());
    }

    let out = run_plugin(&sandbox, "runaway.py", "")?;
    report("runaway.py", &out);
    if !out.timed_out {
        return Err(format!("the runaway plugin was not stopped: {out:?}").into());
    }

    let out = run_plugin(&sandbox, "hog.py", "")?;
    report("hog.py", &out);
    if out.success() {
        return Err("nothing stopped the memory hog".into());
    }
    if out.report.is_enforced(Layer::Cgroup) && !out.oom_killed {
        return Err(format!("the memory hog was not OOM-killed: {out:?}").into());
    }
    Ok(())
}
