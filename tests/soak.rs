//! Leak and soak test: thousands of spawns of mixed configurations, then the parent's open
//! descriptors, mounts, cgroup directories, threads, zombie children and memory are what they
//! were before.
//!
//! `cargo test` runs a bounded number of spawns (`RINGFENCE_SOAK_SPAWNS`, default 300); the
//! full 10,000 is `cargo test --test soak -- --ignored`. Each runs in a fresh process, so
//! that nothing else of the test harness changes what is measured.

mod common;

use std::time::Duration;

use ringfence::{Command, Error, Landlock, Sandbox, Stdio};

/// What must not grow.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    /// What each descriptor is open on, sorted (a cgroup directory made anew reopens its
    /// kept files under other numbers).
    fds: Vec<String>,
    mounts: Vec<String>,
    cgroups: Vec<std::path::PathBuf>,
    threads: usize,
    children: Vec<i32>,
}

impl Footprint {
    fn now() -> Footprint {
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .map(|l| l.split(' ').skip(4).take(2).collect::<Vec<_>>().join(" "))
            .collect();
        mounts.sort();
        Footprint {
            // The kept files of the configurations' cgroups too.
            fds: {
                let mut t: Vec<String> = common::fd_targets(&common::open_fds_all())
                    .into_iter()
                    .map(|t| t.split_once(": ").map_or(t.clone(), |(_, p)| p.to_owned()))
                    .collect();
                t.sort();
                t
            },
            mounts,
            cgroups: common::our_cgroups(),
            threads: std::fs::read_dir("/proc/self/task").unwrap().count(),
            children: common::children(),
        }
    }
}

/// Memory the parent may have grown by (allocator caches, lazily filled tables).
const RSS_TOLERANCE: u64 = 16 << 20;

fn rf(inside: bool, args: &[&str]) -> Command {
    let mut c = if inside {
        Command::new("/rf-inspect")
    } else {
        Command::new(common::inspect())
    };
    c.args(args);
    c
}

/// The configurations, and how each spawn of them ends.
fn configurations() -> Vec<(&'static str, Sandbox, Command, End)> {
    let capable = common::is_root() || common::userns_available();
    let isolated = || Sandbox::isolated().bind_ro(common::inspect(), "/rf-inspect");
    let mut v = vec![
        (
            "hygiene only",
            Sandbox::new(),
            rf(false, &["sleep", "0"]),
            End::Wait,
        ),
        (
            "piped output",
            Sandbox::new(),
            {
                let mut c = rf(false, &["write-stdout", "100000"]);
                c.stdout(Stdio::piped()).stderr(Stdio::piped());
                c
            },
            End::Output,
        ),
        (
            "missing program",
            Sandbox::new(),
            Command::new("/nonexistent/program"),
            End::Fails,
        ),
        (
            "Landlock",
            Sandbox::new().landlock(Landlock::new().read_only(["/"])),
            rf(false, &["sleep", "0"]),
            End::Wait,
        ),
        (
            "killed",
            Sandbox::new(),
            rf(false, &["sleep", "60"]),
            End::Kill,
        ),
    ];
    if capable {
        v.extend([
            (
                "pid namespace",
                Sandbox::new().pid_ns(),
                rf(false, &["orphans", "2"]),
                End::Drop,
            ),
            ("isolated", isolated(), rf(true, &["facts"]), End::Output),
            (
                "isolated, timed out",
                isolated().timeout(Duration::from_millis(20)),
                rf(true, &["sleep", "60"]),
                End::Wait,
            ),
            (
                "isolated, dropped",
                isolated(),
                rf(true, &["sleep", "60"]),
                End::Drop,
            ),
            (
                "bad mount",
                isolated().bind_ro("/nonexistent-source", "/x"),
                rf(true, &["sleep", "0"]),
                End::Fails,
            ),
        ]);
    }
    if common::is_root() {
        v.extend([
            (
                "cgroup limits",
                isolated().pids_limit(32).memory_limit(128 << 20),
                rf(true, &["sleep", "0"]),
                End::Wait,
            ),
            (
                "cgroup limits, killed",
                Sandbox::new().pids_limit(32),
                rf(false, &["daemon", "60"]),
                End::Kill,
            ),
        ]);
    }
    v
}

#[derive(Clone, Copy, Debug)]
enum End {
    Wait,
    Output,
    Kill,
    Drop,
    Fails,
}

fn spawn_once(sb: &Sandbox, cmd: &Command, end: End) {
    match end {
        End::Fails => match sb.spawn(cmd) {
            Err(Error::Setup { .. } | Error::Mount { .. } | Error::Config(_)) => {}
            other => panic!("expected a failure: {other:?}"),
        },
        End::Wait => {
            sb.spawn(cmd).unwrap().wait().unwrap();
        }
        End::Output => {
            let out = sb.output(cmd).unwrap();
            assert!(out.success(), "{:?}", out.status);
        }
        End::Kill => {
            let mut c = sb.spawn(cmd).unwrap();
            c.kill().unwrap();
            c.wait().unwrap();
        }
        End::Drop => drop(sb.spawn(cmd).unwrap()),
    }
}

fn soak(spawns: usize) {
    let fds_at_start = common::open_fds_all();
    let configs = configurations();
    // Warm up: every configuration twice (caches, lazily initialised host facts; a sandbox's
    // cgroup keeps its files open from its first run, its directories from its first reuse).
    for _ in 0..2 {
        for (_, sb, cmd, end) in &configs {
            spawn_once(sb, cmd, *end);
        }
    }
    let before = Footprint::now();
    let rss_before = common::rss();
    for i in 0..spawns {
        let (_, sb, cmd, end) = &configs[i % configs.len()];
        spawn_once(sb, cmd, *end);
    }
    // Mounts made by other programs of this machine come and go: look again for a while
    // before a difference counts. Processes a kill or a drop ended may take a moment to be
    // reaped by the kernel's pid namespace teardown.
    let mut after = Footprint::now();
    for _ in 0..50 {
        if after == before {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = Footprint::now();
    }
    let rss_after = common::rss();
    eprintln!(
        "{spawns} spawns of {} configurations: {} fds, {} mounts, {} cgroups, {} threads, {} children; RSS {} -> {} KiB",
        configs.len(),
        after.fds.len(),
        after.mounts.len(),
        after.cgroups.len(),
        after.threads,
        after.children.len(),
        rss_before >> 10,
        rss_after >> 10
    );
    assert_eq!(after.fds, before.fds, "descriptors");
    assert_eq!(after.mounts, before.mounts, "mounts");
    assert_eq!(after.cgroups, before.cgroups, "cgroup directories");
    assert_eq!(after.threads, before.threads, "threads");
    assert_eq!(
        after.children, before.children,
        "children (zombies included)"
    );
    assert!(
        rss_after < rss_before + RSS_TOLERANCE,
        "RSS grew from {rss_before} to {rss_after}"
    );
    // The sandboxes gone, so are the descriptors their cgroups kept open.
    drop(configs);
    assert_eq!(
        common::open_fds_all(),
        fds_at_start,
        "descriptors after the drop"
    );
}

fresh_process_test! {
    /// A bounded soak for every `cargo test` (`RINGFENCE_SOAK_SPAWNS`, default 300).
    fn spawns_leave_nothing_behind() {
        let n = std::env::var("RINGFENCE_SOAK_SPAWNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        soak(n);
    }
}

fresh_process_test! {
    /// The full soak: 10,000 spawns.
    #[ignore = "long: 10,000 spawns; run with --ignored"]
    fn ten_thousand_spawns_leave_nothing_behind() {
        soak(10_000);
    }
}
