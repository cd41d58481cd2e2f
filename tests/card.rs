//! The design card's builder chain, written as literally as Rust allows, with each network
//! choice: `Sandbox::new().pid_ns().mount_tmpfs("/tmp").net(..).cpu_quota(..).seccomp(..)`.
//!
//! Without a root chosen the sandbox sees the host's filesystem read-only (so the host's
//! `/bin/sh` runs) with a private, empty `/tmp` on top. Each run checks: a new pid namespace
//! (the shell is pid 2 behind the init), a private writable `/tmp` the host never sees, the
//! rest of the filesystem read-only, the network asked for, and the default seccomp profile
//! refusing `settimeofday` (called with an invalid time, so that even an unfiltered call
//! changes nothing: the kernel answers EINVAL before it looks at capabilities, while the
//! filter answers EPERM). Also the longer example of the design ("API shape").

mod common;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringfence::{Command, Cpu, Landlock, Net, Profile, Sandbox, Size, Stdio, WarmOptions};

/// What the shell inside reports, as `key=value` lines.
const SCRIPT: &str = r#"
echo "pid=$$"
echo "pidns=$(readlink /proc/self/ns/pid)"
echo "netns=$(readlink /proc/self/ns/net)"
echo "tmp_entries=$(ls -A /tmp | wc -l)"
echo x > /tmp/card-marker && echo "tmp_writable=yes"
if [ -n "$PROBE" ]; then
  if echo x > "$PROBE" 2>/dev/null; then echo "host_writable=yes"; else echo "host_writable=no"; fi
fi
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ',')"
if [ -x /usr/bin/python3 ]; then
  /usr/bin/python3 -c '
import ctypes, os
nr = {"x86_64": 164, "aarch64": 170}.get(os.uname().machine)
if nr is None:
    print("settimeofday=unknown-arch")
else:
    libc = ctypes.CDLL(None, use_errno=True)
    class TV(ctypes.Structure):
        _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]
    r = libc.syscall(nr, ctypes.byref(TV(0, 2000000)), None)
    print("settimeofday=%s" % ("ok" if r == 0 else os.strerror(ctypes.get_errno())))
'
else
  echo "settimeofday=no-python3"
fi
"#;

/// The interfaces of this process's network namespace, as the script lists them.
fn host_ifaces() -> String {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    let mut names: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    names.sort_unstable();
    names.iter().map(|n| format!("{n},")).collect()
}

/// Run the script with `plugin` and parse what it printed.
fn run(plugin: &Sandbox, probe: Option<&Path>) -> HashMap<String, String> {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", SCRIPT])
        .env("PATH", "/usr/bin:/bin")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = probe {
        cmd.env("PROBE", p);
    }
    let child = plugin.spawn(&cmd).expect("spawn the card's chain");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.success(),
        "{:?}\nstdout: {stdout}\nstderr: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        out.report
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A host directory the sandbox sees read-only, with the path of a file to try to create.
struct Probe(PathBuf);

impl Probe {
    fn new(tag: &str) -> Probe {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ringfence-card-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Probe(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("written-from-the-sandbox")
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What every run of the chain must show; `net` checks the network part.
fn check(facts: &HashMap<String, String>, probe: Option<&Probe>, net: impl Fn(&str, &str)) {
    let get = |k: &str| {
        facts
            .get(k)
            .unwrap_or_else(|| panic!("no {k} in {facts:?}"))
            .as_str()
    };
    // A new pid namespace: the shell runs behind the sandbox's init.
    assert_eq!(get("pid"), "2", "{facts:?}");
    assert_ne!(get("pidns"), common::host_ns("pid"), "no new pid namespace");
    // A private, empty, writable /tmp...
    assert_eq!(get("tmp_entries"), "0", "/tmp is not empty: {facts:?}");
    assert_eq!(get("tmp_writable"), "yes", "{facts:?}");
    assert!(
        !Path::new("/tmp/card-marker").exists(),
        "the sandbox's /tmp is the host's"
    );
    // ... over the host's filesystem, read-only.
    if let Some(p) = probe {
        assert_eq!(get("host_writable"), "no", "{facts:?}");
        assert!(!p.file().exists(), "the sandbox wrote to the host");
    }
    net(get("netns"), get("ifaces"));
    // The default profile refuses settimeofday (EPERM); without it the kernel says EINVAL.
    match get("settimeofday") {
        "no-python3" | "unknown-arch" => common::skip("settimeofday not checked: no python3 here"),
        v => assert_eq!(v, "Operation not permitted", "{facts:?}"),
    }
}

#[test]
fn card_chain_with_net_host_root() {
    if !common::is_root() {
        return common::skip("needs root (cpu_quota needs a cgroup of its own)");
    }
    let plugin = Sandbox::new()
        .pid_ns()
        .mount_tmpfs("/tmp")
        .net(Net::Host)
        .cpu_quota(Cpu::percent(20))
        .seccomp(Profile::default_container());
    let probe = Probe::new("host");
    let facts = run(&plugin, Some(&probe.file()));
    check(&facts, Some(&probe), |netns, ifaces| {
        assert_eq!(netns, common::host_ns("net"), "not the host's network");
        assert_eq!(ifaces, host_ifaces());
    });
}

#[test]
fn card_chain_with_net_new_root() {
    if !common::is_root() {
        return common::skip("needs root (cpu_quota needs a cgroup of its own)");
    }
    let plugin = Sandbox::new()
        .pid_ns()
        .mount_tmpfs("/tmp")
        .net(Net::New)
        .cpu_quota(Cpu::percent(20))
        .seccomp(Profile::default_container());
    let probe = Probe::new("new");
    let facts = run(&plugin, Some(&probe.file()));
    check(&facts, Some(&probe), |netns, ifaces| {
        assert_ne!(netns, common::host_ns("net"), "no new network namespace");
        assert_eq!(ifaces, "lo,");
    });
}

/// A new network namespace held by a descriptor: a thread unshares its own and opens it.
fn new_netns() -> OwnedFd {
    std::thread::spawn(|| {
        // SAFETY: unshare affects only this short-lived thread.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net").unwrap())
    })
    .join()
    .unwrap()
}

#[test]
fn card_chain_with_net_join_root() {
    if !common::is_root() {
        return common::skip("needs root (to create the network namespace to join)");
    }
    let fd = new_netns();
    let want = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let plugin = Sandbox::new()
        .pid_ns()
        .mount_tmpfs("/tmp")
        .net(Net::Join(fd))
        .cpu_quota(Cpu::percent(20))
        .seccomp(Profile::default_container());
    let probe = Probe::new("join");
    // Spawned twice: the sandbox keeps the descriptor for every spawn.
    for _ in 0..2 {
        let facts = run(&plugin, Some(&probe.file()));
        check(&facts, Some(&probe), |netns, ifaces| {
            assert_eq!(netns, want, "not the joined network namespace");
            assert_eq!(ifaces, "lo,");
        });
    }
}

/// The control for the settimeofday check: without the default profile the same call reaches
/// the kernel, which refuses the invalid time (so the check above sees the filter).
#[test]
fn settimeofday_reaches_the_kernel_without_the_profile_root() {
    if !common::is_root() {
        return common::skip("needs root (the card's chain)");
    }
    let plugin = Sandbox::new()
        .pid_ns()
        .mount_tmpfs("/tmp")
        .net(Net::New)
        .seccomp(Profile::unconfined());
    let facts = run(&plugin, None);
    match facts["settimeofday"].as_str() {
        "no-python3" | "unknown-arch" => common::skip("no python3 here"),
        v => assert_eq!(v, "Invalid argument", "{facts:?}"),
    }
}

rootless_test! {
    /// The chain without `cpu_quota` (a cgroup of its own needs delegation, which uid 65534
    /// lacks here): the same view of the host, rootless.
    fn card_chain_without_cpu_quota_rootless() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        for (new, plugin) in [
            (false, Sandbox::new().pid_ns().mount_tmpfs("/tmp").net(Net::Host)),
            (true, Sandbox::new().pid_ns().mount_tmpfs("/tmp").net(Net::New)),
        ] {
            let plugin = plugin.seccomp(Profile::default_container());
            let facts = run(&plugin, None);
            check(&facts, None, |netns, ifaces| {
                if new {
                    assert_ne!(netns, common::host_ns("net"));
                    assert_eq!(ifaces, "lo,");
                } else {
                    assert_eq!(netns, common::host_ns("net"));
                    assert_eq!(ifaces, host_ifaces());
                }
            });
        }
    }
}

/// The longer example of the design ("API shape"), with `/bin/sh` for the plugin and
/// `Landlock::new().read_only(..)` for `Landlock::read_only(..)` (a Rust type cannot have both
/// an associated function and a method of one name). The plugin writes nothing under `/tmp`:
/// the Landlock rule names the host's `/tmp` (rules are made in the parent, before the
/// sandbox's own tmpfs exists).
#[test]
fn design_example_root() {
    if !common::is_root() {
        return common::skip("needs root (cgroup limits)");
    }
    let sandbox = Sandbox::new() // secure hygiene + default seccomp profile, no namespaces yet
        .pid_ns()
        .mount_ns()
        .mount_tmpfs("/tmp") // a default size; a sized form exists
        .bind_ro("/usr", "/usr")
        .net(Net::New) // Net::Host | Net::New | Net::Join(OwnedFd)
        .cpu_quota(Cpu::percent(20)) // cgroup cpu.max / cfs_quota_us
        .memory_limit(256 << 20)
        .pids_limit(64)
        .seccomp(Profile::default_container()) // roughly Docker's default
        .landlock(Landlock::new().read_only(["/usr"]).read_write(["/tmp"]))
        .timeout(Duration::from_secs(10));

    let out = sandbox
        .spawn(
            Command::new("/bin/sh")
                .args(["-c", "echo plugin; echo x > /usr/x"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .unwrap()
        .wait_with_output()
        .unwrap(); // Outcome: status, stdout/stderr, usage, oom, timed_out, violations
    assert_eq!(out.stdout, b"plugin\n", "{out:?}");
    assert!(!out.success(), "/usr was writable");
    assert!(!out.timed_out && !out.oom_killed);
    assert!(out.violations.is_empty());
    // The same limit written as a Size.
    let _ = sandbox.clone().memory_limit(Size::mib(256));
}

/// The other roots of the table in `Sandbox`'s documentation: `empty_root()` shows only what
/// is mounted (the host's `/bin/sh` is not there), `host_system_ro()` the system directories
/// and not the rest of the host.
#[test]
fn chosen_roots_hide_the_host_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variants of the filesystem tests cover it)");
    }
    let e = Sandbox::new()
        .empty_root()
        .mount_tmpfs("/tmp")
        .spawn(&Command::new("/bin/sh"))
        .expect_err("/bin/sh ran in an empty root");
    assert!(e.to_string().contains("No such file"), "{e}");

    let probe = Probe::new("system");
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"test -e "$PROBE"; echo "probe=$?"; ls /usr >/tmp/ls; echo "usr=$?""#,
    ])
    .env("PROBE", &probe.0);
    let out = Sandbox::new()
        .host_system_ro()
        .mount_tmpfs("/tmp")
        .output(&cmd)
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "probe=1\nusr=0\n",
        "{out:?}"
    );
}

/// The chain's view of the host also serves a warm sandbox (the mount tree built once, the
/// tmpfs emptied for every run with `reset_tmpfs`).
#[test]
fn card_chain_warm_root() {
    if !common::is_root() {
        return common::skip("needs root (cpu_quota needs a cgroup of its own)");
    }
    let plugin = Sandbox::new()
        .pid_ns()
        .mount_tmpfs("/tmp")
        .net(Net::New)
        .cpu_quota(Cpu::percent(20))
        .seccomp(Profile::default_container());
    let mut warm = plugin
        .prepare()
        .unwrap()
        .warm_with(WarmOptions::new().reset_tmpfs(true))
        .unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "ls -A /tmp | wc -l; echo x > /tmp/a; test -e /bin/sh && echo sh",
    ]);
    for _ in 0..2 {
        let out = warm.output(&cmd).unwrap();
        assert!(out.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "0\nsh\n", "{out:?}");
    }
}
