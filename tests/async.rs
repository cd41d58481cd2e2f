//! Waiting on a Tokio runtime (the `tokio` feature): many sandboxes awaited at once on one
//! thread, the timeout, output and input through Tokio pipes, killing while awaiting, and
//! nothing left behind (processes, descriptors, cgroups).
#![cfg(feature = "tokio")]

mod common;

use std::future::Future;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::rf;
use ringfence::{AsyncChild, Command, Layer, Sandbox, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinSet;

/// The tests of this file run one at a time, so that each can compare this process's
/// children, descriptors and cgroups before and after.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run `f` on a new current-thread runtime, and check that it leaves no child process, no
/// descriptor and no cgroup of ours behind.
fn run<F: Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fds = common::open_fds();
    rt.block_on(f);
    assert_eq!(
        common::children(),
        Vec::<i32>::new(),
        "processes left behind"
    );
    assert_eq!(common::open_fds(), fds, "descriptors left open");
    assert_eq!(
        common::our_cgroups(),
        Vec::<std::path::PathBuf>::new(),
        "cgroups left behind"
    );
}

/// A test run by [`run`], one at a time (the checks of `run` look at the whole process);
/// `rootless` ones run as uid 65534 in a fresh process when the test process is root.
macro_rules! async_test {
    ($(#[$m:meta])* rootless fn $name:ident() $body:block) => {
        $(#[$m])*
        #[test]
        fn $name() {
            let _g = serial();
            if common::in_child() || !common::is_root() {
                run(async $body);
            } else {
                common::rerun(stringify!($name), true);
            }
        }
    };
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        $(#[$m])*
        #[test]
        fn $name() {
            let _g = serial();
            run(async $body);
        }
    };
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.args(["-c", script]);
    c
}

/// Wait (a bounded number of short sleeps) until `pid` is gone.
async fn gone(pid: i32) -> bool {
    for _ in 0..250 {
        if !common::alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Checked when this file compiles: the futures can move between the threads of a
/// multi-threaded runtime (`tokio::spawn`).
#[allow(dead_code)]
fn futures_are_send(mut child: AsyncChild, sb: &Sandbox, cmd: &Command) {
    fn send<T: Send>(_: &T) {}
    send(&child.wait());
    send(&child.kill());
    send(&sb.output_async(cmd));
    send(&child.wait_with_output());
}

async_test! {
    /// 100 sandboxes (each in a pid namespace where this user can have one) run at once and
    /// are awaited by 100 tasks on one thread. Each blocks on its stdin until the main task,
    /// which only gets to run when every waiter has given the thread back, writes to it: a
    /// wait that blocked the thread would leave them all to their timeout.
    rootless fn a_hundred_sandboxes_on_one_thread() {
        let sb = Sandbox::new().pid_ns().timeout(Duration::from_secs(120));
        let mut cmd = sh("read x; echo \"out-$x\"; echo \"err-$x\" >&2; exit $1");
        cmd.arg("sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut waiters = JoinSet::new();
        let mut stdins = Vec::new();
        for i in 0..100u8 {
            let mut c = cmd.clone();
            c.arg(i.to_string());
            let mut child = sb.spawn_async(&c).unwrap();
            stdins.push((i, child.stdin.take().unwrap()));
            waiters.spawn(async move { (i, child.wait_with_output().await.unwrap()) });
        }
        // Every waiter runs up to its first pending poll before this task runs again.
        tokio::task::yield_now().await;
        for (i, mut stdin) in stdins.into_iter().rev() {
            stdin.write_all(format!("in-{i}\n").as_bytes()).await.unwrap();
        }
        let mut seen = Vec::new();
        while let Some(r) = waiters.join_next().await {
            let (i, out) = r.unwrap();
            assert!(!out.timed_out, "sandbox {i} ran into its timeout");
            assert_eq!(out.status.code(), Some(i32::from(i)), "sandbox {i}");
            assert_eq!(out.stdout, format!("out-in-{i}\n").as_bytes(), "sandbox {i}");
            assert_eq!(out.stderr, format!("err-in-{i}\n").as_bytes(), "sandbox {i}");
            seen.push(i);
        }
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<u8>>());
    }
}

async_test! {
    /// The deadline kills the whole process tree (no pid namespace: the process group), also
    /// when only `wait` (no output) is awaited.
    rootless fn the_timeout_kills_the_sandbox() {
        let sb = Sandbox::new().timeout(Duration::from_millis(300));
        let mut child = sb
            .spawn_async(sh("sleep 30 & echo $!; wait").stdout(Stdio::piped()))
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .await
            .unwrap();
        let sleeper: i32 = line.trim().parse().unwrap();
        let out = child.wait().await.unwrap();
        assert!(out.timed_out);
        assert!(!out.success());
        assert_eq!(out.status.signal(), Some(libc::SIGKILL));
        assert!(gone(sleeper).await, "the background sleep survived the timeout");
        // The outcome stays.
        assert!(child.wait().await.unwrap().timed_out);

        // With output collection, what was written before the deadline is kept.
        let out = sb.output_async(&sh("echo started; sleep 30")).await.unwrap();
        assert!(out.timed_out);
        assert_eq!(out.stdout, b"started\n");
    }
}

async_test! {
    fn output_is_collected_while_waiting() {
        let sb = Sandbox::new().timeout(Duration::from_secs(60));
        // 4 MiB, far more than a pipe holds: the program only ends if it is read meanwhile.
        let out = sb
            .output_async(&sh("head -c 4194304 /dev/zero; echo done >&2; exit 3"))
            .await
            .unwrap();
        assert!(!out.timed_out);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout.len(), 4 << 20);
        assert!(out.stdout.iter().all(|&b| b == 0));
        assert_eq!(out.stderr, b"done\n");

        // Written to stdin through the Tokio pipe, read back from stdout.
        let mut child = sb
            .spawn_async(
                Command::new("/bin/cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped()),
            )
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        // Write and collect at the same time: `cat` blocks once both pipes are full.
        let writer = tokio::spawn(async move {
            stdin.write_all(&data).await.unwrap();
        });
        let out = child.wait_with_output().await.unwrap();
        writer.await.unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, expected);

        // The first process ends while a leftover process holds stdout open: the collection
        // stops at the end of the first process instead of waiting for the pipe to close.
        let out = sb
            .output_async(&sh("(sleep 30; echo late) & echo bye"))
            .await
            .unwrap();
        assert!(!out.timed_out);
        assert!(out.success());
        assert_eq!(out.stdout, b"bye\n");
    }
}

async_test! {
    /// Killing while a wait is pending: through `select!` (the wait is cancelled, the handle
    /// still works), and by someone else while a task awaits the sandbox.
    rootless fn kill_while_awaiting() {
        let sb = Sandbox::new().pid_ns().timeout(Duration::from_secs(60));
        let mut child = sb.spawn_async(&rf(&["sleep", "30"])).unwrap();
        tokio::select! {
            out = child.wait() => panic!("ended by itself: {out:?}"),
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        child.kill().await.unwrap();
        let out = child.wait().await.unwrap();
        assert!(!out.timed_out);
        assert_eq!(out.status.signal(), Some(libc::SIGKILL));
        // Killing an ended sandbox is not an error.
        child.kill().await.unwrap();

        // SIGKILL from outside (through a duplicate of the pidfd) while a task awaits.
        let child = sb.spawn_async(&rf(&["sleep", "30"])).unwrap();
        let pidfd = child.pidfd().try_clone_to_owned().unwrap();
        let waiter = tokio::spawn(async move {
            let mut child = child;
            child.wait().await.unwrap()
        });
        tokio::task::yield_now().await;
        // SAFETY: pidfd_send_signal on a pidfd of our own sandbox.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        drop(pidfd);
        let out = waiter.await.unwrap();
        assert!(!out.timed_out);
        assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    }
}

async_test! {
    fn kill_takes_the_whole_cgroup_along() {
        if !common::is_root() {
            common::skip("creating cgroups here needs root (or a delegated cgroup v2 subtree)");
            return;
        }
        // No pid namespace: only the cgroup knows about the setsid, double-forked daemon.
        let sb = Sandbox::new().pids_limit(64);
        let mut child = sb
            .spawn_async(
                sh(&format!(
                    "{} daemon 30; sleep 30",
                    common::inspect().display()
                ))
                .stdout(Stdio::piped()),
            )
            .unwrap();
        assert!(child.report().is_enforced(Layer::Cgroup), "{}", child.report());
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .await
            .unwrap();
        let daemon: i32 = line.trim().trim_start_matches("daemon=").parse().unwrap();
        assert!(common::alive(daemon));
        child.kill().await.unwrap();
        assert!(gone(daemon).await, "the daemon survived kill()");
        let out = child.wait().await.unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGKILL));
        assert!(out.usage.pids_peak.is_some() || out.usage.cgroup_cpu.is_some());

        // Dropped while running: killed and reaped, its cgroup removed (checked by `run`).
        drop(sb.spawn_async(&rf(&["sleep", "30"])).unwrap());
    }
}

async_test! {
    fn outcome_matches_the_blocking_path() {
        let sb = Sandbox::new().pid_ns();
        let cmd = sh("echo out; echo err >&2; kill -TERM $$");
        let blocking = sb.output(&cmd).unwrap();
        let awaited = sb.output_async(&cmd).await.unwrap();
        assert_eq!(awaited.status, blocking.status);
        assert_eq!(awaited.status.signal(), Some(libc::SIGTERM));
        assert_eq!(awaited.stdout, blocking.stdout);
        assert_eq!(awaited.stderr, blocking.stderr);
        assert_eq!(awaited.timed_out, blocking.timed_out);
        assert_eq!(awaited.report.to_string(), blocking.report.to_string());
    }
}
