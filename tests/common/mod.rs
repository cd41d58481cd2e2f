//! Shared support for the integration tests.
//!
//! - `rf-inspect` (tests/helper, a workspace member of its own) is run inside sandboxes to
//!   report what it sees.
//! - Rootless variants re-run one test of the current test binary in a fresh process as
//!   uid/gid 65534 (`nobody`), which is how an unprivileged user meets ringfence.
//! - Tests that change per-process state (a seccomp filter on the test process) use the same
//!   re-run mechanism, so the test harness itself is never affected.
#![allow(dead_code)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use ringfence::{Command, Outcome, Sandbox};

/// Set in a re-run child: which mode it runs in ("nobody" or "fresh").
pub const CHILD_ENV: &str = "RINGFENCE_TEST_CHILD";
/// Path of rf-inspect for a re-run child (when it had to be copied).
pub const INSPECT_ENV: &str = "RINGFENCE_TEST_INSPECT";

/// The `rf-inspect` binary: the one `RINGFENCE_TEST_INSPECT` names, or else the workspace
/// member `tests/helper`, built at the first call.
pub fn inspect() -> PathBuf {
    if let Some(p) = std::env::var_os(INSPECT_ENV) {
        return PathBuf::from(p);
    }
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_inspect).clone()
}

/// Build rf-inspect (a no-op when `cargo build`/`cargo test --workspace` already did) with the
/// cargo running the tests, in this test binary's profile, and return its path. rf-inspect is
/// no binary of the library, so that the published crate does not carry it.
fn build_inspect() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary>
    let release = exe
        .parent()
        .and_then(Path::parent)
        .is_some_and(|p| p.ends_with("release"));
    let mut cmd = std::process::Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
    cmd.args([
        "build",
        "--quiet",
        "--message-format=json",
        "-p",
        "rf-inspect",
    ])
    .arg("--manifest-path")
    .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
    .stderr(std::process::Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo to build rf-inspect");
    assert!(out.status.success(), "cargo build -p rf-inspect failed");
    let json = String::from_utf8_lossy(&out.stdout);
    let line = json
        .lines()
        .find(|l| l.contains("\"compiler-artifact\"") && l.contains("\"name\":\"rf-inspect\""))
        .expect("cargo reported no rf-inspect binary");
    let key = "\"executable\":\"";
    let start = line.find(key).expect("rf-inspect has no executable") + key.len();
    let len = line[start..].find('"').unwrap();
    PathBuf::from(&line[start..start + len])
}

/// A command running `rf-inspect` with these arguments.
pub fn rf(args: &[&str]) -> Command {
    let mut c = Command::new(inspect());
    c.args(args);
    c
}

/// Run `rf-inspect facts` in `sb` and parse its `key=value` lines.
pub fn facts(sb: &Sandbox) -> Facts {
    facts_of(sb, &rf(&["facts"]))
}

/// Run `cmd` (an `rf-inspect facts` command) in `sb` and parse the lines.
pub fn facts_of(sb: &Sandbox, cmd: &Command) -> Facts {
    let out = sb.output(cmd).expect("spawn rf-inspect");
    assert!(
        out.status.success(),
        "rf-inspect failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Facts::parse(&out)
}

/// The facts rf-inspect reported.
#[derive(Debug)]
pub struct Facts(pub HashMap<String, String>);

impl Facts {
    pub fn parse(out: &Outcome) -> Facts {
        let text = String::from_utf8_lossy(&out.stdout);
        Facts(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("rf-inspect reported no {key:?}: {:?}", self.0))
    }
}

/// The namespace link of this test process, e.g. `net:[4026531840]`.
pub fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this process is a re-run child.
pub fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Print why a test is skipped (visible with `--nocapture` and in CI logs).
pub fn skip(why: &str) {
    eprintln!("SKIPPED: {why}");
    println!("SKIPPED: {why}");
}

fn world_traversable(p: &Path) -> bool {
    p.ancestors().skip(1).all(|dir| {
        std::fs::metadata(dir)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

/// Re-run test `name` of this binary in a new process, as uid/gid 65534 when `nobody`.
/// Panics with the child's output if it fails.
pub fn rerun(name: &str, nobody: bool) {
    rerun_env(name, nobody, &[]);
}

/// [`rerun`] with extra environment variables for the new process.
pub fn rerun_env(name: &str, nobody: bool, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let mut inspect = inspect();
    let mut cleanup = None;
    let mut exe_to_run = exe.clone();
    if nobody && !(world_traversable(&exe) && world_traversable(&inspect)) {
        // The build directory is not reachable for uid 65534: run copies.
        let dir =
            std::env::temp_dir().join(format!("ringfence-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = dir.join("test");
        std::fs::copy(&exe, &e).unwrap();
        let i = dir.join("rf-inspect");
        std::fs::copy(&inspect, &i).unwrap();
        exe_to_run = e;
        inspect = i;
        cleanup = Some(dir);
    }
    let mut cmd = std::process::Command::new(&exe_to_run);
    cmd.args([
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
    ])
    .env(CHILD_ENV, if nobody { "nobody" } else { "fresh" })
    .env(INSPECT_ENV, &inspect)
    .envs(env.iter().copied())
    .current_dir("/");
    if nobody {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("re-run the test binary");
    if let Some(dir) = cleanup {
        let _ = std::fs::remove_dir_all(dir);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout.lines().chain(stderr.lines()) {
        if line.starts_with("SKIPPED:") {
            eprintln!("{line}");
        }
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "re-run of {name} (nobody={nobody}) failed: {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// Define a test whose body runs as uid 65534 in a fresh process (or directly, when the test
/// process is not root to begin with).
#[macro_export]
macro_rules! rootless_test {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        $(#[$m])*
        #[test]
        fn $name() {
            if common::in_child() || !common::is_root() {
                $body
            } else {
                common::rerun(stringify!($name), true);
            }
        }
    };
}

/// Define a test whose body runs in a fresh process (for per-process state such as seccomp).
#[macro_export]
macro_rules! fresh_process_test {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        $(#[$m])*
        #[test]
        fn $name() {
            if common::in_child() {
                $body
            } else {
                common::rerun(stringify!($name), false);
            }
        }
    };
}

/// Whether user namespaces work for this process (for rootless tests).
pub fn userns_available() -> bool {
    ringfence::probe().user_ns.is_ok()
}

/// Process ids of this process's direct children (all threads).
pub fn children() -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    out
}

/// The open descriptors of this process.
///
/// Not counted: the interface files of sandbox cgroups (`/sys/fs/cgroup/.../ringfence-*`), which
/// a sandbox with a cgroup keeps open while it lives, and which another test of this process
/// may hold at any moment. `tests/soak.rs` counts them ([`open_fds_all`]) and checks they are
/// closed with their sandbox.
pub fn open_fds() -> Vec<i32> {
    fds(false)
}

/// This process's open descriptors, all of them.
pub fn open_fds_all() -> Vec<i32> {
    fds(true)
}

/// What each descriptor of this process in `fds` is open on, for failure messages.
pub fn fd_targets(fds: &[i32]) -> Vec<String> {
    fds.iter()
        .map(|fd| {
            let t = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
            format!("{fd}: {}", t.display())
        })
        .collect()
}

fn fds(all: bool) -> Vec<i32> {
    // The listing's own descriptor is not counted: its number depends on what is open.
    let listing = PathBuf::from(format!("/proc/{}/fd", std::process::id()));
    let counted = |e: &std::fs::DirEntry| match std::fs::read_link(e.path()) {
        Ok(t) if t == listing => false,
        Ok(t) => {
            all || !(t.starts_with("/sys/fs/cgroup") && t.to_string_lossy().contains("/ringfence-"))
        }
        Err(_) => true,
    };
    let mut v: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(counted)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    v.sort();
    v
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Host pids of every process in the pid namespace `ns` (e.g. `pid:[4026532179]`).
pub fn pids_in_ns(ns: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .map(|l| l.to_string_lossy() == ns)
            .unwrap_or(false)
        {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().next().map(str::to_owned))
                })
                .unwrap_or_default();
            out.push((pid, state));
        }
    }
    out
}

/// Sandbox cgroup directories (`ringfence-<pid>-*`) made by any of `pids`, anywhere below
/// /sys/fs/cgroup (a pod member's below its pod's too), sorted.
pub fn sandbox_cgroups_of(pids: &[u32]) -> Vec<PathBuf> {
    let prefixes: Vec<String> = pids.iter().map(|p| format!("ringfence-{p}-")).collect();
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let name = e.file_name().to_string_lossy().into_owned();
                if prefixes.iter().any(|p| name.starts_with(p)) {
                    found.push(e.path());
                }
                stack.push(e.path());
            }
        }
    }
    found.sort();
    found
}

/// The sandbox cgroup directories this process made (see [`sandbox_cgroups_of`]).
pub fn our_cgroups() -> Vec<PathBuf> {
    sandbox_cgroups_of(&[std::process::id()])
}

/// Resident memory of this process, in bytes.
pub fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}
