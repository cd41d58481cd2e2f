//! Resource limits through the `Sandbox` builder: a memory hog is OOM-killed and reported, a
//! fork bomb stays under its pids limit, a CPU spinner gets its quota, `kill` takes daemons
//! along, usage comes from the cgroup, a sandbox reused carries nothing from one run to the
//! next, and no cgroup directory of ours is left behind.
//! Needs root on a cgroup v1 host or a delegated subtree on v2 (skipped otherwise, visibly).

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::rf;
use ringfence::{Command, Cpu, Layer, Sandbox, Stdio};

/// The tests of this file run one at a time, so that each can list this process's cgroups.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn can_limit() -> bool {
    if !common::is_root() {
        common::skip("creating cgroups here needs root (or a delegated cgroup v2 subtree)");
        return false;
    }
    true
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.args(["-c", script]);
    c
}

#[test]
fn a_memory_hog_is_oom_killed_and_reported() {
    let _g = serial();
    if !can_limit() {
        return;
    }
    let sb = Sandbox::new().memory_limit(64 << 20).memory_swap(0);
    // Grows a shell variable past 64 MiB.
    let out = sb
        .output(&sh(
            "x=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived ${#x}",
        ))
        .unwrap();
    assert!(out.report.is_enforced(Layer::Cgroup), "{}", out.report);
    assert!(out.oom_killed, "{:?} {:?}", out.status, out.usage);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
    let peak = out.usage.peak_memory.expect("peak memory from the cgroup");
    assert!(peak <= 64 << 20, "{peak}");
}

#[test]
fn a_fork_bomb_stays_under_the_pids_limit() {
    let _g = serial();
    if !can_limit() {
        return;
    }
    // Forks sleeping children, reporting each, until the shell cannot fork any more.
    let sb = Sandbox::new()
        .pids_limit(32)
        .timeout(Duration::from_secs(20));
    let out = sb
        .output(&sh(
            "i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); echo $i; done",
        ))
        .unwrap();
    let started = String::from_utf8_lossy(&out.stdout).lines().count();
    // The shell counts as one; it stopped at the limit, with a fork failure.
    assert!(started < 32, "{started} children started");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("fork"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(peak) = out.usage.pids_peak {
        assert!(peak <= 32, "{peak}");
    }
}

#[test]
fn cpu_quota_limits_a_spinner() {
    let _g = serial();
    if !can_limit() {
        return;
    }
    let sb = Sandbox::new()
        .cpu_quota(Cpu::percent(20))
        .timeout(Duration::from_secs(2));
    let out = sb.output(&sh("while :; do :; done")).unwrap();
    assert!(out.timed_out);
    let cpu = out.usage.cgroup_cpu.expect("cgroup CPU time");
    let per_wall = cpu.as_secs_f64() / out.usage.wall.as_secs_f64();
    assert!(
        (0.15..=0.25).contains(&per_wall),
        "{cpu:?} over {:?}",
        out.usage.wall
    );
}

#[test]
fn kill_takes_a_daemon_along_without_a_pid_namespace() {
    let _g = serial();
    if !can_limit() {
        return;
    }
    // No pid namespace: only the cgroup knows about the setsid, double-forked daemon.
    let sb = Sandbox::new().pids_limit(64);
    let mut child = sb
        .spawn(
            sh(&format!(
                "{} daemon 30; sleep 30",
                common::inspect().display()
            ))
            .stdout(Stdio::piped()),
        )
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let daemon: i32 = line.trim().trim_start_matches("daemon=").parse().unwrap();
    assert!(common::alive(daemon));
    child.kill().unwrap();
    child.wait().unwrap();
    for _ in 0..100 {
        if !common::alive(daemon) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!common::alive(daemon), "the daemon survived kill()");
}

#[test]
fn no_cgroup_is_left_behind() {
    let _g = serial();
    if !can_limit() {
        return;
    }
    let sb = Sandbox::new().pids_limit(16).memory_limit(64 << 20);
    for _ in 0..5 {
        let out = sb.output(&rf(&["sleep", "0"])).unwrap();
        assert!(out.success());
    }
    // One after the other, the runs reused one cgroup: the sandbox keeps it for the next
    // (none on v2 before Linux 6.12, where memory.peak cannot be reset between runs).
    let kept = common::our_cgroups();
    let names: std::collections::BTreeSet<&std::ffi::OsStr> =
        kept.iter().filter_map(|d| d.file_name()).collect();
    if ringfence::cgroup::cgroup_info().is_v2() {
        assert!(names.len() <= 1, "{kept:?}");
    } else {
        assert_eq!(names.len(), 1, "{kept:?}");
    }
    // Dropped without waiting.
    drop(sb.spawn(&rf(&["sleep", "30"])).unwrap());
    assert_eq!(common::our_cgroups(), kept);
    // A run still going when the sandbox goes keeps its cgroup until it ends.
    let mut running = sb.spawn(&rf(&["sleep", "30"])).unwrap();
    drop(sb);
    assert!(!common::our_cgroups().is_empty());
    running.kill().unwrap();
    running.wait().unwrap();
    drop(running);
    assert!(
        common::our_cgroups().is_empty(),
        "{:?}",
        common::our_cgroups()
    );
}

#[test]
fn a_reused_sandbox_carries_nothing_between_runs() {
    let _g = serial();
    if !can_limit() {
        return;
    }
    let sb = Sandbox::new()
        .memory_limit(64 << 20)
        .memory_swap(0)
        .pids_limit(32);
    // Run 1: leaves a setsid daemon behind and gets OOM-killed.
    let mut first = sb
        .spawn(
            sh(&format!(
                "{} daemon 30; x=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived",
                common::inspect().display()
            ))
            .stdout(Stdio::piped()),
        )
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(first.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let daemon: i32 = line.trim().trim_start_matches("daemon=").parse().unwrap();
    let run1 = first.wait().unwrap();
    assert!(run1.oom_killed, "{:?} {:?}", run1.status, run1.usage);
    // The daemon went with run 1's cgroup, before anything else could use it.
    assert!(!common::alive(daemon), "run 1's daemon survived its run");

    // Run 2, in the same sandbox: a shell that runs nothing.
    let run2 = sb.output(&sh("exit 0")).unwrap();
    assert!(run2.success(), "{:?}", run2.status);
    assert!(run2.report.is_enforced(Layer::Cgroup), "{}", run2.report);
    assert!(!run2.oom_killed, "run 1's OOM kill reported again");
    if let Some(peak) = run2.usage.peak_memory {
        assert!(peak < 16 << 20, "run 1's peak carried over: {peak}");
    }
    if let Some(peak) = run2.usage.pids_peak {
        assert!(peak <= 2, "run 1's pids peak carried over: {peak}");
    }
    drop((sb, first));
    assert!(
        common::our_cgroups().is_empty(),
        "{:?}",
        common::our_cgroups()
    );
}

#[test]
fn an_impossible_limit_is_refused_before_anything_starts() {
    let _g = serial();
    let e = Sandbox::new()
        .memory_limit(4096)
        .spawn(&sh("true"))
        .expect_err("4 KiB of memory is below the minimum");
    assert!(e.to_string().contains("memory"), "{e}");
    let e = Sandbox::new()
        .cpuset("999")
        .spawn(&sh("true"))
        .expect_err("no CPU 999 here");
    assert!(e.to_string().contains("999"), "{e}");
    assert!(
        common::our_cgroups().is_empty(),
        "{:?}",
        common::our_cgroups()
    );
}

/// A caller much larger than its sandbox's memory limit survives the sandbox's OOM kill. A
/// process that shares the caller's memory (a pid namespace's init, on the shared-memory
/// spawn) must not sit in the sandbox's memory cgroup: the OOM killer picks the task with the
/// largest memory map and kills every process sharing it, the caller included.
#[test]
fn a_large_caller_survives_its_sandboxs_oom_kill() {
    const CHILD: &str = "RINGFENCE_TEST_OOM_CALLER";
    if std::env::var_os(CHILD).is_some() {
        // The caller: 256 MiB touched, a pid namespace and a 64 MiB limit.
        let ballast = vec![1u8; 256 << 20];
        let sb = Sandbox::new()
            .pid_ns()
            .memory_limit(64 << 20)
            .memory_swap(0);
        let out = sb
            .output(&sh(
                "x=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived ${#x}",
            ))
            .unwrap();
        assert!(out.oom_killed, "{:?} {:?}", out.status, out.usage);
        println!(
            "caller alive, {} bytes held",
            ballast.iter().map(|&b| b as usize).sum::<usize>()
        );
        return;
    }
    let _g = serial();
    if !can_limit() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_large_caller_survives_its_sandboxs_oom_kill",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = format!(
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("caller alive, 268435456 bytes held"),
        "{text}"
    );
}
