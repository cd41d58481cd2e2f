//! Process lifecycle: exit statuses and signals, the pid-1 init (reaping, signal forwarding),
//! timeouts that kill a whole process tree, kill and kill-on-drop, output collection, usage.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::{alive, pids_in_ns, rf};
use ringfence::{Command, Sandbox, Stdio};

fn ns_capable() -> bool {
    common::is_root() || common::userns_available()
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(script);
    c
}

#[test]
fn exit_codes_and_signals_are_reported() {
    for sb in [Sandbox::new(), Sandbox::new().pid_ns()] {
        let out = sb.output(&sh("exit 7")).unwrap();
        assert_eq!(out.status.code(), Some(7));
        assert_eq!(out.shell_code(), 7);
        assert!(!out.success());
        // Killed by a signal: the program's own status, also behind the init of a pid ns.
        let out = sb.output(&rf(&["kill-self", "15"])).unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{:?}", out.status);
        assert_eq!(out.shell_code(), 128 + libc::SIGTERM);
        let out = sb.output(&sh("true")).unwrap();
        assert!(out.success());
        assert!(!out.timed_out);
    }
}

#[test]
fn init_is_pid_1_and_reaps_orphans() {
    if !ns_capable() {
        return common::skip("needs root or user namespaces");
    }
    let mut child = Sandbox::new()
        .pid_ns()
        .spawn(rf(&["orphans", "5"]).stdout(Stdio::piped()))
        .unwrap();
    let ns = std::fs::read_link(format!("/proc/{}/ns/pid_for_children", child.id()))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // The orphans exit after 50 ms; rf-inspect lives for 1 s. In between, none may be a zombie.
    std::thread::sleep(Duration::from_millis(500));
    let procs = pids_in_ns(&ns);
    assert!(
        !procs.is_empty(),
        "the sandbox's processes should be visible"
    );
    assert!(
        procs.iter().all(|(_, state)| state != "Z"),
        "zombies left in the sandbox: {procs:?}"
    );
    // Only the init and rf-inspect remain.
    assert_eq!(procs.len(), 2, "{procs:?}");
    let out = child.wait().unwrap();
    assert!(out.success());
}

#[test]
fn init_forwards_sigterm_to_the_program() {
    if !ns_capable() {
        return common::skip("needs root or user namespaces");
    }
    let mut child = Sandbox::new()
        .pid_ns()
        .spawn(rf(&["trap"]).stdout(Stdio::piped()))
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    child.signal(ringfence::Signal::SIGTERM).unwrap();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        format!("got={}", libc::SIGTERM)
    );
    let out = child.wait().unwrap();
    assert_eq!(out.status.code(), Some(42));
}

#[test]
fn timeout_kills_the_process_tree() {
    // Without a pid namespace: the program's process group.
    let out = Sandbox::new()
        .timeout(Duration::from_millis(300))
        .output(&rf(&["tree", "30"]))
        .unwrap();
    assert!(out.timed_out);
    assert!(!out.success());
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    let text = String::from_utf8_lossy(&out.stdout);
    let grandchild: i32 = text
        .trim()
        .strip_prefix("grandchild=")
        .unwrap()
        .parse()
        .unwrap();
    wait_gone(grandchild);
}

#[test]
fn timeout_kills_a_daemon_in_a_pid_namespace() {
    if !ns_capable() {
        return common::skip("needs root or user namespaces");
    }
    // A double-forked, setsid daemon escapes the process group; the pid namespace holds it.
    let sb = Sandbox::new().pid_ns().timeout(Duration::from_millis(500));
    let mut child = sb
        .spawn(
            sh(&format!(
                "{} daemon 30; sleep 30",
                common::inspect().display()
            ))
            .stdout(Stdio::piped()),
        )
        .unwrap();
    let ns = std::fs::read_link(format!("/proc/{}/ns/pid_for_children", child.id()))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let started = Instant::now();
    let out = child.wait().unwrap();
    assert!(out.timed_out);
    assert!(started.elapsed() < Duration::from_secs(20));
    for _ in 0..100 {
        if pids_in_ns(&ns).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("processes survived the sandbox: {:?}", pids_in_ns(&ns));
}

fn wait_gone(pid: i32) {
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("process {pid} survived the sandbox");
}

#[test]
fn kill_and_drop_end_the_sandbox() {
    let sb = Sandbox::new();
    let mut child = sb.spawn(&rf(&["sleep", "30"])).unwrap();
    let pid = child.id() as i32;
    assert!(child.try_wait().unwrap().is_none());
    assert!(
        child
            .wait_timeout(Duration::from_millis(50))
            .unwrap()
            .is_none()
    );
    child.kill().unwrap();
    let out = child.wait().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert!(!out.timed_out);
    // Waiting again returns the same outcome; killing an ended sandbox is fine.
    assert_eq!(child.wait().unwrap().status, out.status);
    child.kill().unwrap();
    assert!(!alive(pid));

    let child = sb.spawn(&rf(&["sleep", "30"])).unwrap();
    let pid = child.id() as i32;
    drop(child);
    assert!(
        !alive(pid),
        "dropping the Child must kill and reap the sandbox"
    );
    assert!(!common::children().contains(&pid));
}

#[test]
fn keep_running_leaves_the_sandbox_alone() {
    let sb = Sandbox::new().die_with_parent(false);
    let mut child = sb.spawn(&rf(&["sleep", "30"])).unwrap();
    let pid = child.id() as i32;
    child.keep_running();
    drop(child);
    assert!(alive(pid));
    // Clean up what we started: it is our child.
    // SAFETY: kill and reap our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

#[test]
fn output_is_collected_without_deadlock() {
    // More than a pipe buffer on stdout while stderr is piped too.
    let out = Sandbox::new()
        .output(&rf(&["write-stdout", "1048576"]))
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), 1 << 20);
    assert!(out.stderr.is_empty());
}

#[test]
fn stdin_can_be_piped() {
    let mut child = Sandbox::new()
        .spawn(
            sh("read x; echo got:$x")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        )
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"got:hello\n");
}

#[test]
fn a_leftover_process_holding_stdout_does_not_hang_output() {
    // Without a pid namespace a setsid daemon survives the process-group kill; collection must
    // still stop when the program ends.
    let out = Sandbox::new()
        .output(&sh(&format!("{} daemon 3", common::inspect().display())))
        .unwrap();
    assert!(out.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let daemon: i32 = text
        .trim()
        .strip_prefix("daemon=")
        .unwrap()
        .parse()
        .unwrap();
    // It escaped on purpose here (no pid namespace); stop it, as it is ours.
    // SAFETY: the daemon is a process this test started.
    unsafe { libc::kill(daemon, libc::SIGKILL) };
}

#[test]
fn usage_is_reported() {
    let out = Sandbox::new()
        .output(&sh("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"))
        .unwrap();
    assert!(out.success());
    assert!(out.usage.wall > Duration::ZERO);
    assert!(
        out.usage.user_cpu + out.usage.sys_cpu > Duration::ZERO,
        "{:?}",
        out.usage
    );
    assert!(out.usage.max_rss > 100 * 1024, "{:?}", out.usage);
    assert!(out.usage.user_cpu + out.usage.sys_cpu <= out.usage.wall * 2);
}

#[test]
fn a_sandbox_can_be_spawned_many_times_and_from_threads() {
    let sb = Sandbox::new().pid_ns();
    let sb = if ns_capable() { sb } else { Sandbox::new() };
    let cmd = sh("exit 3");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    let out = sb.output(&cmd).unwrap();
                    assert_eq!(out.status.code(), Some(3));
                }
            });
        }
    });
}

/// The sandboxed process shares the caller's memory until its exec: spawns of one sandbox with
/// a filesystem view from several threads at once each keep their own detached mounts, and
/// every program runs in its own, complete root.
#[test]
fn an_isolated_sandbox_can_be_spawned_from_threads_at_once() {
    if !ns_capable() {
        return common::skip("namespaces are not available here");
    }
    let sb = Sandbox::isolated();
    let cmd =
        sh("test -d /usr && test -e /dev/null && test -d /proc/self && test -w /tmp && exit 7");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..8 {
                    let out = sb.output(&cmd).unwrap();
                    assert_eq!(out.status.code(), Some(7), "{out:?}");
                }
            });
        }
    });
}

rootless_test! {
    fn rootless_timeout_kills_a_daemon_and_reports() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        let sb = Sandbox::new().pid_ns().timeout(Duration::from_millis(300));
        let mut child = sb
            .spawn(&sh(&format!("{} daemon 30; sleep 30", common::inspect().display())))
            .unwrap();
        let ns = std::fs::read_link(format!("/proc/{}/ns/pid_for_children", child.id()))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let out = child.wait().unwrap();
        assert!(out.timed_out);
        for _ in 0..100 {
            if pids_in_ns(&ns).is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("processes survived the sandbox: {:?}", pids_in_ns(&ns));
    }
}
