//! Named sandboxes and pods through the `ringfence` binary: `run --name --detach`, `ps`,
//! `exec`, `kill`, `pod create|ls|rm`, `run --pod`. Each test keeps its state in a directory
//! of its own (`RINGFENCE_STATE_DIR`). They create namespaces and cgroups, so they run as root.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ringfence");

/// A state directory of its own, removed (after checking it is empty) on drop.
struct State(PathBuf);

impl State {
    fn new(test: &str) -> State {
        let dir =
            std::env::temp_dir().join(format!("ringfence-named-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        State(dir)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("RINGFENCE_STATE_DIR", &self.0)
            .stdin(Stdio::null())
            .output()
            .expect("run ringfence")
    }

    /// Names with a record of this kind ("sandboxes" or "pods").
    fn records(&self, kind: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.join(kind))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn detached_sandbox_lists_execs_and_kills_root() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let st = State::new("detach");
    let o = st.run(&[
        "run",
        "--isolated",
        "--name",
        "job",
        "--detach",
        "--",
        "sh",
        "-c",
        "echo ready > /tmp/state; sleep 60",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "job");

    let ps = st.run(&["ps"]);
    let listing = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(
        listing.contains("job") && listing.contains("sleep 60"),
        "{listing}"
    );
    let pid: u32 = listing
        .lines()
        .find(|l| l.starts_with("job"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("ps shows the pid");

    // exec sees the sandbox's files, hostname and processes, under its restrictions.
    let o = st.run(&[
        "exec",
        "job",
        "--",
        "sh",
        "-c",
        "hostname; cat /tmp/state; ps -e -o comm= | sort | tr '\\n' ' '",
    ]);
    // The file may not be written yet right after the start.
    let o = if o.status.success() {
        o
    } else {
        std::thread::sleep(Duration::from_millis(300));
        st.run(&[
            "exec",
            "job",
            "--",
            "sh",
            "-c",
            "hostname; cat /tmp/state; ps -e -o comm= | sort | tr '\\n' ' '",
        ])
    };
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.starts_with("sandbox\nready\n"), "{out}");
    assert!(
        out.contains("sleep"),
        "the sandbox's processes are not visible: {out}"
    );
    let o = st.run(&["exec", "job", "--", "sh", "-c", "touch /usr/x"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // By pid too; the command's status is exec's.
    let o = st.run(&["exec", &pid.to_string(), "--", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    let o = st.run(&["kill", "job"]);
    assert!(o.status.success(), "{}", text(&o));
    // The detached sandbox's record stays, ended, with its status and log, until `rm`.
    assert_eq!(st.records("sandboxes"), ["job.json", "job.log"]);
    let o = st.run(&["wait", "job"]);
    assert_eq!(o.status.code(), Some(128 + libc::SIGKILL), "{}", text(&o));
    let o = st.run(&["rm", "job"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        st.records("sandboxes").is_empty(),
        "{:?}",
        st.records("sandboxes")
    );
    assert!(
        wait_until(Duration::from_secs(5), || !PathBuf::from(format!(
            "/proc/{pid}"
        ))
        .exists()),
        "the sandbox survived kill"
    );
    let o = st.run(&["ps"]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("job"),
        "{}",
        text(&o)
    );
}

#[test]
fn foreground_named_run_is_listed_while_it_runs_root() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let st = State::new("fg");
    let mut fg = Command::new(BIN)
        .args(["run", "--unshare-all", "--name", "fg", "--", "sleep", "60"])
        .env("RINGFENCE_STATE_DIR", &st.0)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // The record is listed from the moment the name is claimed, before the sandbox has a pid
    // (`-` in the PID column); `exec` needs the pid, so wait for that.
    assert!(wait_until(Duration::from_secs(10), || {
        String::from_utf8_lossy(&st.run(&["ps"]).stdout)
            .lines()
            .any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 1 && cols[0] == "fg" && cols[1].parse::<u32>().is_ok()
            })
    }));
    let o = st.run(&["exec", "fg", "--", "hostname"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = st.run(&["kill", "fg"]);
    assert!(o.status.success(), "{}", text(&o));
    let status = fg.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), None);
    assert_eq!(status.code(), Some(128 + libc::SIGKILL));
    assert!(st.records("sandboxes").is_empty());
}

#[test]
fn bad_names_and_targets_fail_clearly() {
    let st = State::new("bad");
    for (args, says) in [
        (
            &["exec", "nosuch", "--", "true"][..],
            "no sandbox named \"nosuch\"",
        ),
        (
            &["exec", "1", "--", "true"][..],
            "not a running ringfence sandbox",
        ),
        (&["kill", "nosuch"][..], "no sandbox named"),
        (&["pod", "rm", "nosuch"][..], "no pod named"),
        (&["run", "--name", "../x", "--", "true"][..], "invalid name"),
        (
            &["run", "--pod", "nosuch", "--", "true"][..],
            "no pod named",
        ),
        (
            &["run", "--pod", "p", "--net", "host", "--", "true"][..],
            "cannot be used with",
        ),
        (&["kill", "--signal", "NOPE", "x"][..], "unknown signal"),
    ] {
        let o = st.run(args);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{args:?}: {}",
            text(&o)
        );
    }
    // A stale record (its holder is gone) is removed when found, not trusted.
    std::fs::create_dir_all(st.0.join("sandboxes")).unwrap();
    std::fs::write(
        st.0.join("sandboxes/old.json"),
        r#"{"name":"old","monitor":999999999,"monitor_start":1,"pid":1,"pid_start":1}"#,
    )
    .unwrap();
    let o = st.run(&["exec", "old", "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("has ended"),
        "{}",
        text(&o)
    );
    assert!(st.records("sandboxes").is_empty());
}

#[test]
fn pod_members_share_the_network_and_die_with_the_pod_root() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let st = State::new("pod");
    let o = st.run(&[
        "pod",
        "create",
        "ci",
        "--hostname",
        "ci-pod",
        "--memory",
        "256M",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = st.run(&["pod", "ls"]);
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(listing.contains("ci "), "{listing}");
    let cgroup = listing
        .lines()
        .find(|l| l.starts_with("ci "))
        .and_then(|l| l.split_whitespace().last())
        .map(PathBuf::from)
        .unwrap();
    assert!(cgroup.exists(), "{}", cgroup.display());

    // A service in the background, a job that talks to it over the pod's loopback.
    let o = st.run(&[
        "run", "--isolated", "--pod", "ci", "--name", "svc", "--detach", "--", "python3", "-c",
        "import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', 7001)); s.listen(4)\nwhile True:\n    c, _ = s.accept(); c.sendall(b'pong'); c.close()",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = st.run(&[
        "run", "--isolated", "--pod", "ci", "--", "python3", "-c",
        "import socket, time, os\nfor i in range(500):\n    try:\n        s = socket.create_connection(('127.0.0.1', 7001)); break\n    except ConnectionRefusedError:\n        time.sleep(0.01)\nprint(os.uname().nodename, s.recv(10).decode())",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ci-pod pong");

    let o = st.run(&["pod", "rm", "ci"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(st.records("pods").is_empty());
    // The service died with the pod; its monitor marked its record ended.
    assert!(
        wait_until(Duration::from_secs(10), || st
            .run(&["wait", "svc"])
            .status
            .code()
            == Some(128 + libc::SIGKILL)),
        "{:?}",
        st.records("sandboxes")
    );
    let o = st.run(&["rm", "svc"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(st.records("sandboxes").is_empty());
    assert!(!cgroup.exists(), "the pod's cgroup was left behind");
}
