//! Tests against the real cgroups of this host (v1 or v2, whichever it has): limits are
//! enforced, usage is reported, `kill` leaves nothing, nothing of ours is left behind.
//!
//! They need root and the controllers they use, and skip visibly ("SKIPPED: why") otherwise.
//! Helper processes are ordinary children of the test started with `std::process::Command`
//! and moved in with `attach`; the ones that must be limited from their first instruction
//! wait on their stdin until they are inside. The tests run one at a time (a lock), so that
//! CPU measurements are not disturbed by a fork bomb next door.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// The lock, or `None` (after saying why) when this test cannot run here.
fn setup(test: &str, controllers: &[&str]) -> Option<MutexGuard<'static, ()>> {
    if std::env::var_os(CRASH_CHILD_ENV).is_some() {
        return None;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED {test}: needs root");
        return None;
    }
    let info = cgroup_info();
    // The VM lane (scripts/test-vm) sets this so that a wrong backend fails instead of passing.
    if let Some(want) = std::env::var_os("RINGFENCE_EXPECT_CGROUP") {
        let have = match info.backend {
            CgroupBackend::V2 { .. } => "v2",
            CgroupBackend::V1 { .. } => "v1",
            _ => "none",
        };
        assert_eq!(have, want, "cgroup backend: {:?}", info.backend);
    }
    if let CgroupBackend::Unavailable { reason } = &info.backend {
        eprintln!("SKIPPED {test}: no cgroups here: {reason}");
        return None;
    }
    for c in controllers {
        if info.controller(c).is_none() {
            eprintln!("SKIPPED {test}: the {c} controller is not available");
            return None;
        }
    }
    eprintln!("{test}: cgroup {}", if info.is_v2() { "v2" } else { "v1" });
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// `ringfence-<this pid>-*` directories in this process's own cgroups.
fn leftovers() -> BTreeSet<PathBuf> {
    let me = std::process::id() as libc::pid_t;
    own_dirs(cgroup_info())
        .iter()
        .filter_map(|d| stdfs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().and_then(name_pid) == Some(me))
        .map(|e| e.path())
        .collect()
}

/// Remove `cg` and check that none of its directories is left.
fn remove_and_check(cg: SandboxCgroup) {
    let dirs: Vec<PathBuf> = cg.dirs().iter().map(|d| d.to_path_buf()).collect();
    cg.remove().expect("remove the cgroup");
    for d in &dirs {
        assert!(!d.exists(), "{} is left behind", d.display());
    }
}

/// `sh -c 'read _; <script>'`: runs `script` once a line arrives on stdin.
fn gated(script: &str) -> Child {
    Command::new("sh")
        .args(["-c", &format!("read _; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sh")
}

fn release(child: &mut Child) {
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("release the helper");
}

/// Wait for `child` at most `limit`.
fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() > end {
            return None;
        }
        sleep(Duration::from_millis(10));
    }
}

fn pid(child: &Child) -> libc::pid_t {
    child.id() as libc::pid_t
}

fn dead_or_zombie(pid: libc::pid_t) -> bool {
    match stdfs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Whether `pid` ends (or is a zombie) within a few seconds: a killed process leaves the
/// cgroup's list when it starts exiting, a little before its state shows it.
fn ends(pid: libc::pid_t) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while !dead_or_zombie(pid) {
        if Instant::now() > end {
            return false;
        }
        sleep(Duration::from_millis(10));
    }
    true
}

fn procs_of(cg: &SandboxCgroup) -> Vec<libc::pid_t> {
    let mut all: Vec<libc::pid_t> = cg
        .dirs()
        .iter()
        .flat_map(|d| fs::procs_recursive(d).unwrap())
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The directory of `cg` holding `controller`'s files.
fn dir_of<'a>(cg: &'a SandboxCgroup, controller: &str) -> &'a Path {
    match &cg.inner {
        Inner::V2(c) => c.dir(),
        Inner::V1(c) => c.dir_of(controller).expect("controller directory"),
    }
}

#[test]
fn cpu_quota_of_20_percent_is_enforced() {
    let Some(_g) = setup("cpu_quota_of_20_percent_is_enforced", &["cpu"]) else {
        return;
    };
    let cfg = CgroupConfig {
        cpu: Some(Cpu::percent(20)),
        ..Default::default()
    };
    let cg = SandboxCgroup::create(&cfg).expect("create");
    let mut spinner = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    cg.attach(pid(&spinner)).expect("attach");
    sleep(Duration::from_millis(200));
    let (c0, t0) = (cg.usage().cpu_time, Instant::now());
    sleep(Duration::from_secs(2));
    let (c1, t1) = (cg.usage().cpu_time, Instant::now());
    let (Some(c0), Some(c1)) = (c0, c1) else {
        panic!("no CPU time reported: {:?}", cg.usage());
    };
    let rate = (c1 - c0).as_secs_f64() / (t1 - t0).as_secs_f64();
    eprintln!("CPU seconds per wall second under a 20 % quota: {rate:.3}");
    cg.kill().expect("kill");
    assert!(wait_for(&mut spinner, Duration::from_secs(5)).is_some());
    remove_and_check(cg);
    assert!((0.15..=0.25).contains(&rate), "rate {rate:.3}");
}

#[test]
fn memory_hog_is_oom_killed_and_reported() {
    let Some(_g) = setup("memory_hog_is_oom_killed_and_reported", &["memory"]) else {
        return;
    };
    let limit = 64u64 << 20;
    let cfg = CgroupConfig {
        memory: Some(limit),
        ..Default::default()
    };
    let cg = SandboxCgroup::create(&cfg).expect("create");
    // tail keeps the last lines; /dev/zero has no newline, so it buffers everything head gives
    // it: 200 MiB if nothing stops it (bounded, so a broken limit cannot take the host down).
    let mut hog = gated("head -c 209715200 /dev/zero | tail > /dev/null");
    cg.attach(pid(&hog)).expect("attach");
    release(&mut hog);
    let status = wait_for(&mut hog, Duration::from_secs(60)).expect("the hog ended");
    let usage = cg.usage();
    eprintln!("hog: {status:?}, {usage:?}");
    remove_and_check(cg);
    assert!(!status.success(), "the hog was not stopped: {status:?}");
    assert!(usage.oom_killed, "{usage:?}");
    if let Some(peak) = usage.peak_memory {
        assert!(peak <= limit + (1 << 20), "peak {peak} above the limit");
        assert!(peak >= limit / 2, "peak {peak}: the hog did not grow");
    }
}

#[test]
fn fork_bomb_cannot_exceed_pids_limit() {
    let Some(_g) = setup("fork_bomb_cannot_exceed_pids_limit", &["pids"]) else {
        return;
    };
    let cfg = CgroupConfig {
        pids: Some(32),
        ..Default::default()
    };
    let cg = SandboxCgroup::create(&cfg).expect("create");
    let pids_dir = dir_of(&cg, "pids").to_path_buf();
    // A binary tree of depth 8 (about a thousand processes if nothing limits it; finite, so a
    // broken limit cannot take the host down): it is the cgroup that must hold it to 32.
    let mut bomb = gated(
        "b() { if [ \"$1\" -gt 0 ]; then b $(($1-1)) & b $(($1-1)) & fi; sleep 3; wait; }; b 8",
    );
    cg.attach(pid(&bomb)).expect("attach");
    release(&mut bomb);
    let mut most = 0;
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        let current = fs::read_u64(&pids_dir, "pids.current").expect("pids.current");
        most = most.max(current).max(procs_of(&cg).len() as u64);
        sleep(Duration::from_millis(10));
    }
    let refused = fs::read_opt(&pids_dir, "pids.events")
        .and_then(|e| fs::keyed(&e, "max"))
        .unwrap_or(0);
    let usage = cg.usage();
    eprintln!("fork bomb: at most {most} processes seen, {refused} forks refused, {usage:?}");
    cg.kill().expect("kill");
    assert!(procs_of(&cg).is_empty());
    assert!(wait_for(&mut bomb, Duration::from_secs(5)).is_some());
    remove_and_check(cg);
    assert!(most <= 32, "{most} processes");
    assert!(refused > 0, "the bomb never reached the limit");
    if let Some(peak) = usage.pids_peak {
        assert!(peak <= 32, "pids.peak {peak}");
    }
}

/// Start a shell in `cg` that leaves a daemon behind: a double fork (the subshell exits), a
/// new session, two sleepers. Returns the shell and the processes seen in the cgroup once the
/// daemon's session exists.
fn start_daemon(cg: &SandboxCgroup) -> (Child, Vec<libc::pid_t>) {
    let mut sh = gated("(setsid sh -c 'sleep 1000 & exec sleep 1000' &); exec sleep 1000");
    cg.attach(pid(&sh)).expect("attach");
    release(&mut sh);
    let sessions = |pids: &[libc::pid_t]| -> BTreeSet<libc::pid_t> {
        pids.iter()
            .filter_map(|p| nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(*p))).ok())
            .map(|s| s.as_raw())
            .collect()
    };
    let end = Instant::now() + Duration::from_secs(10);
    let (mut seen, mut sids) = (Vec::new(), BTreeSet::new());
    while (seen.len() < 3 || sids.len() < 2) && Instant::now() < end {
        sleep(Duration::from_millis(10));
        seen = procs_of(cg);
        sids = sessions(&seen);
    }
    let cmdlines: Vec<String> = seen
        .iter()
        .map(|p| {
            let c = stdfs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            format!("{p}: {}", String::from_utf8_lossy(&c).replace('\0', " "))
        })
        .collect();
    // Two processes in two sessions at least: the shell's sleep and the daemon.
    assert!(
        seen.len() >= 2 && sids.len() >= 2,
        "the daemon did not start: {cmdlines:?}, sessions {sids:?}"
    );
    if seen.len() < 3 {
        eprintln!("note: only {cmdlines:?} running (a fork in the daemon failed?)");
    }
    (sh, seen)
}

#[test]
fn kill_leaves_no_process_even_a_setsid_daemon() {
    let Some(_g) = setup("kill_leaves_no_process_even_a_setsid_daemon", &[]) else {
        return;
    };
    let cg = SandboxCgroup::create(&CgroupConfig::default()).expect("create");
    let (mut sh, seen) = start_daemon(&cg);
    cg.kill().expect("kill");
    assert!(procs_of(&cg).is_empty());
    for p in &seen {
        assert!(ends(*p), "process {p} survived");
    }
    assert!(wait_for(&mut sh, Duration::from_secs(5)).is_some());
    remove_and_check(cg);
}

#[test]
fn v2_kill_without_cgroup_kill_freezes_and_kills() {
    let Some(_g) = setup("v2_kill_without_cgroup_kill_freezes_and_kills", &[]) else {
        return;
    };
    if !cgroup_info().is_v2() {
        eprintln!(
            "SKIPPED v2_kill_without_cgroup_kill_freezes_and_kills: the v2 fallback (this host is v1)"
        );
        return;
    }
    let cg = SandboxCgroup::create(&CgroupConfig::default()).expect("create");
    let (mut sh, seen) = start_daemon(&cg);
    let Inner::V2(v2) = &cg.inner else {
        unreachable!()
    };
    v2.kill_with(false).expect("kill through the freezer");
    assert!(procs_of(&cg).is_empty());
    for p in &seen {
        assert!(ends(*p), "process {p} survived");
    }
    assert_eq!(fs::read(v2.dir(), "cgroup.freeze").unwrap().trim(), "0");
    assert!(wait_for(&mut sh, Duration::from_secs(5)).is_some());
    remove_and_check(cg);
}

#[test]
fn dropping_kills_and_removes() {
    let Some(_g) = setup("dropping_kills_and_removes", &[]) else {
        return;
    };
    let cg = SandboxCgroup::create(&CgroupConfig {
        pids: cgroup_info().controller("pids").map(|_| 8),
        ..Default::default()
    })
    .expect("create");
    let dirs: Vec<PathBuf> = cg.dirs().iter().map(|d| d.to_path_buf()).collect();
    let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    cg.attach(pid(&sleeper)).expect("attach");
    drop(cg);
    assert!(wait_for(&mut sleeper, Duration::from_secs(5)).is_some());
    for d in dirs {
        assert!(!d.exists(), "{} is left behind", d.display());
    }
}

#[test]
fn limits_land_in_the_interface_files() {
    let Some(_g) = setup(
        "limits_land_in_the_interface_files",
        &["cpu", "memory", "pids"],
    ) else {
        return;
    };
    let cpuset = cgroup_info().controller("cpuset").is_some();
    let mut cfg = CgroupConfig {
        cpu: Some(Cpu::percent(50)),
        cpu_weight: Some(200),
        memory: Some(128 << 20),
        swap: Some(32 << 20),
        pids: Some(64),
        cpuset: cpuset.then(|| "0".to_owned()),
        parent: None,
    };
    let cg = match SandboxCgroup::create(&cfg) {
        Err(CgroupError::Unsupported {
            controller: "memory",
            reason,
            ..
        }) => {
            eprintln!("SKIPPED the swap limit: {reason}");
            cfg.swap = None;
            SandboxCgroup::create(&cfg).expect("create")
        }
        r => r.expect("create"),
    };
    let get = |ctl: &str, file: &str| {
        fs::read(dir_of(&cg, ctl), file)
            .expect("read")
            .trim()
            .to_owned()
    };
    if cgroup_info().is_v2() {
        assert_eq!(get("cpu", "cpu.max"), "50000 100000");
        assert_eq!(get("cpu", "cpu.weight"), "200");
        assert_eq!(get("memory", "memory.max"), (128u64 << 20).to_string());
        if cfg.swap.is_some() {
            assert_eq!(get("memory", "memory.swap.max"), (32u64 << 20).to_string());
        }
    } else {
        assert_eq!(get("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(get("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(get("cpu", "cpu.shares"), weight_to_shares(200).to_string());
        assert_eq!(
            get("memory", "memory.limit_in_bytes"),
            (128u64 << 20).to_string()
        );
        if cfg.swap.is_some() {
            assert_eq!(
                get("memory", "memory.memsw.limit_in_bytes"),
                (160u64 << 20).to_string()
            );
        }
    }
    assert_eq!(get("pids", "pids.max"), "64");
    if cpuset {
        assert_eq!(get("cpuset", "cpuset.cpus"), "0");
    }
    // A process can join (on v1 this needs cpuset.mems filled in) and gets the placement.
    let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    cg.attach(pid(&sleeper)).expect("attach");
    if cpuset {
        let status = stdfs::read_to_string(format!("/proc/{}/status", sleeper.id())).unwrap();
        assert!(
            status.contains("Cpus_allowed_list:\t0\n"),
            "{}",
            status
                .lines()
                .find(|l| l.starts_with("Cpus_allowed_list"))
                .unwrap_or("")
        );
    }
    cg.kill().expect("kill");
    assert!(wait_for(&mut sleeper, Duration::from_secs(5)).is_some());
    remove_and_check(cg);
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let Some(_g) = setup("bad_input_is_refused_and_leaves_nothing", &[]) else {
        return;
    };
    let before = leftovers();
    let ncpu = online_cpus_for_tests();
    let cases: Vec<(&str, CgroupConfig)> = vec![
        (
            "memory below the minimum",
            CgroupConfig {
                memory: Some(4096),
                ..Default::default()
            },
        ),
        (
            "zero CPU quota",
            CgroupConfig {
                cpu: Some(Cpu::percent(0)),
                ..Default::default()
            },
        ),
        (
            "CPU quota above every CPU",
            CgroupConfig {
                cpu: Some(Cpu::percent(100 * ncpu + 1)),
                ..Default::default()
            },
        ),
        (
            "cpuset of a CPU that does not exist",
            CgroupConfig {
                cpuset: Some(format!("{}", ncpu + 100)),
                ..Default::default()
            },
        ),
        (
            "parent that is not a cgroup",
            CgroupConfig {
                parent: Some(std::env::temp_dir()),
                pids: Some(8),
                ..Default::default()
            },
        ),
        (
            "parent that does not exist",
            CgroupConfig {
                parent: Some(own_dirs(cgroup_info())[0].join("no-such-cgroup")),
                ..Default::default()
            },
        ),
    ];
    for (what, cfg) in cases {
        let e = SandboxCgroup::create(&cfg).expect_err(what);
        eprintln!("{what}: {e}");
        match what {
            "parent that is not a cgroup" | "parent that does not exist" => {
                assert!(matches!(e, CgroupError::NotACgroup { .. }), "{what}: {e:?}")
            }
            _ => assert!(
                matches!(e, CgroupError::InvalidConfig { .. }),
                "{what}: {e:?}"
            ),
        }
    }
    assert_eq!(leftovers(), before);
}

fn online_cpus_for_tests() -> u32 {
    config::online_cpus().len().max(1) as u32
}

/// Make a plain test cgroup `name` below this process's own cgroup in every hierarchy
/// (v2: the one), returning the directories and the one to pass as `parent`.
fn make_test_parent(name: &str) -> (Vec<PathBuf>, PathBuf) {
    let info = cgroup_info();
    let mut made = Vec::new();
    for d in own_dirs(info) {
        let p = d.join(name);
        stdfs::create_dir(&p).unwrap();
        if !info.is_v2() && p.join("cpuset.mems").exists() {
            // A v1 cpuset cgroup needs cpus and mems before anything joins its children.
            for f in ["cpuset.mems", "cpuset.cpus"] {
                let v = stdfs::read_to_string(d.join(f)).unwrap_or_default();
                stdfs::write(p.join(f), v.trim()).unwrap();
            }
        }
        made.push(p);
    }
    let parent = match &info.own_v2 {
        Some(own) => own.join(name),
        None => info.controllers["pids"].own.join(name),
    };
    (made, parent)
}

#[test]
fn cgroup_parent_is_used() {
    let Some(_g) = setup("cgroup_parent_is_used", &["pids"]) else {
        return;
    };
    let name = format!("rf-test-parent-{}", std::process::id());
    let (made, parent) = make_test_parent(&name);
    let result = std::panic::catch_unwind(|| {
        let cfg = CgroupConfig {
            pids: Some(16),
            parent: Some(parent.clone()),
            ..Default::default()
        };
        let cg = SandboxCgroup::create(&cfg).expect("create below the parent");
        for d in cg.dirs() {
            assert!(d.parent().unwrap().ends_with(&name), "{}", d.display());
        }
        assert_eq!(
            fs::read(dir_of(&cg, "pids"), "pids.max").unwrap().trim(),
            "16"
        );
        let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
        cg.attach(pid(&sleeper)).expect("attach");
        remove_and_check(cg);
        assert!(wait_for(&mut sleeper, Duration::from_secs(5)).is_some());
    });
    for p in made.iter().rev() {
        stdfs::remove_dir(p).unwrap();
    }
    result.unwrap();
}

#[test]
fn v2_controllers_cannot_be_enabled_below_a_cgroup_with_processes() {
    let Some(_g) = setup(
        "v2_controllers_cannot_be_enabled_below_a_cgroup_with_processes",
        &["memory"],
    ) else {
        return;
    };
    if !cgroup_info().is_v2() {
        eprintln!(
            "SKIPPED v2_controllers_cannot_be_enabled_below_a_cgroup_with_processes: a cgroup v2 rule (this host is v1)"
        );
        return;
    }
    let name = format!("rf-test-busy-{}", std::process::id());
    let (made, parent) = make_test_parent(&name);
    let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    stdfs::write(parent.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let before = leftovers();
    // memory is a domain controller; cpu and pids are threaded ones, which the kernel lets a
    // populated cgroup enable (a prospective thread root), so they would not show the rule.
    let res = SandboxCgroup::create(&CgroupConfig {
        memory: Some(64 << 20),
        parent: Some(parent.clone()),
        ..Default::default()
    });
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let after = stdfs::read_dir(&parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().unwrap().is_dir())
        .count();
    for p in made.iter().rev() {
        fs::remove_tree(p).unwrap();
    }
    let e = res.expect_err("enabling memory below a populated cgroup");
    eprintln!("{e}");
    assert_eq!(e.errno(), Some(nix::errno::Errno::EBUSY), "{e:?}");
    assert!(e.to_string().contains("no-internal-process"), "{e}");
    assert_eq!(after, 0, "a directory was left below the parent");
    assert_eq!(leftovers(), before);
}

/// The end of a run as `Child::reap` does it: kill what is left, read the usage, give the
/// cgroup back (to its pool) or remove it.
fn end_run(cg: SandboxCgroup) -> CgroupUsage {
    cg.kill().expect("kill");
    let usage = cg.usage();
    cg.remove().expect("give back");
    usage
}

fn dir_list(cg: &SandboxCgroup) -> Vec<PathBuf> {
    cg.dirs().iter().map(|d| d.to_path_buf()).collect()
}

#[test]
fn a_reused_cgroup_carries_nothing_over() {
    let Some(_g) = setup("a_reused_cgroup_carries_nothing_over", &["memory", "pids"]) else {
        return;
    };
    let limit = 64u64 << 20;
    let cfg = CgroupConfig {
        memory: Some(limit),
        pids: Some(16),
        ..Default::default()
    };
    let pool = CgroupPool::default();

    // Run 1: leaves a daemon behind, spins for a while, then a hog gets OOM-killed.
    let cg = pool.take(&cfg, true).expect("take");
    let first = dir_list(&cg);
    let (mut sh, seen) = start_daemon(&cg);
    let mut hog = gated(
        "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; head -c 209715200 /dev/zero | tail > /dev/null",
    );
    cg.attach(pid(&hog)).expect("attach");
    release(&mut hog);
    wait_for(&mut hog, Duration::from_secs(60)).expect("the hog ended");
    let run1 = end_run(cg);
    assert!(wait_for(&mut sh, Duration::from_secs(5)).is_some());
    eprintln!("run 1: {run1:?}");
    assert!(run1.oom_killed, "{run1:?}");
    assert!(run1.pids_peak.is_none_or(|p| p >= 3), "{run1:?}");
    // Killed empty before it went back: nothing of run 1 can be in run 2's cgroup.
    for p in &seen {
        assert!(ends(*p), "process {p} of run 1 survived");
    }
    // Kept for the next run, except on v2 where run 1's pids.peak (6.13+) or memory.peak
    // (before 6.12) cannot be reset: then removed already.
    let kept = pool.idle();
    if !cgroup_info().is_v2() {
        assert_eq!(kept, 1);
    }

    // Run 2: one short process.
    let cg = pool.take(&cfg, true).expect("take again");
    assert_eq!(pool.idle(), 0);
    let reused = dir_list(&cg) == first;
    eprintln!("run 2 reuses run 1's cgroup: {reused}");
    if !cgroup_info().is_v2() {
        assert!(reused, "{:?} vs {first:?}", dir_list(&cg));
    }
    assert!(procs_of(&cg).is_empty(), "{:?}", procs_of(&cg));
    // The limits hold again even if run 1 had changed them.
    assert_eq!(
        fs::read_u64(dir_of(&cg, "pids"), "pids.max"),
        Some(16),
        "pids.max"
    );
    let mut one = gated("exit 0");
    cg.attach(pid(&one)).expect("attach");
    release(&mut one);
    assert!(wait_for(&mut one, Duration::from_secs(10)).is_some_and(|s| s.success()));
    let run2 = end_run(cg);
    eprintln!("run 2: {run2:?}");
    assert!(
        !run2.oom_killed,
        "run 1's OOM kill reported again: {run2:?}"
    );
    if let Some(peak) = run2.peak_memory {
        assert!(peak < 16 << 20, "run 1's peak carried over: {peak}");
    }
    if let Some(p) = run2.pids_peak {
        assert_eq!(p, 1, "run 1's pids peak carried over");
    }
    if let (Some(c1), Some(c2)) = (run1.cpu_time, run2.cpu_time) {
        // Run 1 counted to 400000 in a shell (a few hundred ms of CPU), run 2 did nothing.
        assert!(c1 >= Duration::from_millis(100), "run 1's loop: {c1:?}");
        assert!(
            c2 < Duration::from_millis(50),
            "run 1's CPU time carried over: {c2:?}"
        );
    }
    drop(pool);
    assert!(leftovers().is_empty(), "{:?}", leftovers());
}

/// This process's descriptors open on a file in one of `dirs`.
fn fds_in(dirs: &[PathBuf]) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| dirs.iter().any(|d| t.starts_with(d)))
        .count()
}

#[test]
fn a_pooled_cgroup_keeps_its_files_open_until_removed() {
    let Some(_g) = setup(
        "a_pooled_cgroup_keeps_its_files_open_until_removed",
        &["pids"],
    ) else {
        return;
    };
    let cfg = CgroupConfig {
        pids: Some(8),
        ..Default::default()
    };
    let pool = CgroupPool::default();
    let cg = pool.take(&cfg, true).expect("take");
    let dirs = dir_list(&cg);
    let mut one = gated("exit 0");
    cg.attach(pid(&one)).expect("attach");
    release(&mut one);
    assert!(wait_for(&mut one, Duration::from_secs(10)).is_some_and(|s| s.success()));
    end_run(cg);
    if pool.idle() == 0 {
        // v2 before 6.12 with the memory controller on: memory.peak cannot be reset, the
        // cgroup is not reused; it was removed with its descriptors.
        assert!(cgroup_info().is_v2());
        eprintln!("note: this kernel's cgroups are not reused (see pool.rs)");
        assert_eq!(
            fds_in(&dirs),
            0,
            "descriptors left open in a removed cgroup"
        );
        return;
    }
    // Kept: the limit, the usage files, cgroup.procs, the directories (v2 also has the
    // directory descriptor for CLONE_INTO_CGROUP and memory.peak of its own).
    let kept: usize = dirs.iter().map(|d| fs::kept_under(d)).sum();
    let open = fds_in(&dirs);
    eprintln!("{kept} descriptors kept open in {dirs:?}, {open} in all");
    assert!(kept > 0 && open >= kept);
    // The next run uses them.
    let cg = pool.take(&cfg, true).expect("take again");
    assert_eq!(dir_list(&cg), dirs);
    assert_eq!(fs::read_u64(dir_of(&cg, "pids"), "pids.max"), Some(8));
    // Its process list is read afresh each time, never a copy of an earlier read.
    assert!(procs_of(&cg).is_empty());
    let mut two = gated("exit 0");
    cg.attach(pid(&two)).expect("attach");
    assert_eq!(procs_of(&cg), vec![pid(&two)]);
    release(&mut two);
    assert!(wait_for(&mut two, Duration::from_secs(10)).is_some_and(|s| s.success()));
    assert!(procs_of(&cg).is_empty());
    end_run(cg);
    // No descriptor more for a run that reads and writes the same files again.
    let open = fds_in(&dirs);
    let cg = pool.take(&cfg, true).expect("take a third time");
    let mut three = gated("exit 0");
    cg.attach(pid(&three)).expect("attach");
    release(&mut three);
    assert!(wait_for(&mut three, Duration::from_secs(10)).is_some());
    end_run(cg);
    assert_eq!(fds_in(&dirs), open);
    drop(pool);
    assert_eq!(fds_in(&dirs), 0, "descriptors left open in removed cgroups");
    assert!(dirs.iter().all(|d| !d.exists()));
}

#[test]
fn dropping_the_pool_removes_every_directory() {
    let Some(_g) = setup("dropping_the_pool_removes_every_directory", &[]) else {
        return;
    };
    let cfg = CgroupConfig {
        pids: cgroup_info().controller("pids").map(|_| 8),
        ..Default::default()
    };
    let other = CgroupConfig {
        pids: cfg.pids.map(|_| 9),
        ..Default::default()
    };
    let pool = CgroupPool::default();
    // Two at once get two cgroups; both go back to the pool.
    let (a, b) = (
        pool.take(&cfg, true).unwrap(),
        pool.take(&cfg, true).unwrap(),
    );
    assert_ne!(dir_list(&a), dir_list(&b));
    end_run(a);
    end_run(b);
    let reuse = pool.idle() == 2;
    if !reuse {
        // v2 before 6.12 with the memory controller on: memory.peak cannot be reset.
        assert!(cgroup_info().is_v2() && pool.idle() == 0, "{}", pool.idle());
        eprintln!("note: this kernel's cgroups are not reused (see pool.rs)");
    }
    // Another configuration gets a cgroup of its own, not one with the wrong limits.
    let c = pool.take(&other, true).unwrap();
    assert_eq!(pool.idle(), if reuse { 2 } else { 0 });
    end_run(c);
    assert_eq!(pool.idle(), if reuse { 3 } else { 0 });
    // A run still going when the pool is dropped: its cgroup goes when it ends.
    let running = pool.take(&cfg, true).unwrap();
    let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    running.attach(pid(&sleeper)).unwrap();
    let running_dirs = dir_list(&running);
    drop(pool);
    let left = leftovers();
    assert_eq!(
        left,
        running_dirs.iter().cloned().collect::<BTreeSet<_>>(),
        "only the running cgroup may be left"
    );
    end_run(running);
    assert!(wait_for(&mut sleeper, Duration::from_secs(5)).is_some());
    assert!(leftovers().is_empty(), "{:?}", leftovers());
    // Without reuse (a pod member's cgroup), the end of the run removes it.
    let pool = CgroupPool::default();
    let once = pool.take(&cfg, false).unwrap();
    let dirs = dir_list(&once);
    end_run(once);
    assert_eq!(pool.idle(), 0);
    for d in dirs {
        assert!(!d.exists(), "{} is left behind", d.display());
    }
}

const CRASH_CHILD_ENV: &str = "RINGFENCE_CGROUP_CRASH_CHILD";

/// Not a test on its own: the process `stale_cgroups_of_a_killed_parent_are_swept` starts
/// and kills. It creates a cgroup, prints its directories and waits to be killed.
#[test]
fn crash_child() {
    if std::env::var_os(CRASH_CHILD_ENV).is_none() {
        return;
    }
    let cfg = CgroupConfig {
        pids: cgroup_info().controller("pids").map(|_| 8),
        ..Default::default()
    };
    // One cgroup in use and one idle in a pool: a crash leaves both.
    let pool = CgroupPool::default();
    let (cg, idle) = (
        pool.take(&cfg, true).expect("take"),
        pool.take(&cfg, true).expect("take"),
    );
    let idle_dirs = dir_list(&idle);
    // (Removed instead where this kernel's cgroups cannot be reused: see pool.rs.)
    idle.remove().expect("give back");
    let mut out = std::io::stdout().lock();
    for d in dir_list(&cg).iter().chain(&idle_dirs) {
        if d.exists() {
            writeln!(out, "DIR {}", d.display()).unwrap();
        }
    }
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    sleep(Duration::from_secs(60));
    std::process::abort();
}

#[test]
fn stale_cgroups_of_a_killed_parent_are_swept() {
    let Some(_g) = setup("stale_cgroups_of_a_killed_parent_are_swept", &[]) else {
        return;
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cgroup::tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut dirs = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // The harness prints "test ... " without a newline before the child's first line.
        if let Some((_, d)) = line.split_once("DIR ") {
            dirs.push(PathBuf::from(d));
        }
        if line.ends_with("READY") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dirs.is_empty(), "the child created no cgroup");
    for d in &dirs {
        assert!(
            d.exists(),
            "{} should be left by the killed parent",
            d.display()
        );
        let name = d.file_name().unwrap().to_str().unwrap();
        assert_eq!(name_pid(name), Some(child.id() as libc::pid_t));
    }
    // The next start sweeps: sweep_stale runs once per process, so call what it calls.
    let mut removed: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.parent().unwrap().to_path_buf())
        .collect::<BTreeSet<_>>()
        .iter()
        .flat_map(|p| sweep_dir(p))
        .collect();
    removed.sort();
    dirs.sort();
    // Others may be swept along: left by another process that died here meanwhile.
    for d in &dirs {
        assert!(
            removed.contains(d),
            "{} not swept: {removed:?}",
            d.display()
        );
    }
    for d in &dirs {
        assert!(!d.exists(), "{} was not swept", d.display());
    }
    let child_pid = child.id() as libc::pid_t;
    let left: Vec<PathBuf> = own_dirs(cgroup_info())
        .iter()
        .filter_map(|d| stdfs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().and_then(name_pid) == Some(child_pid))
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // The same for a directory named after a dead pid that was made by hand.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let own = own_dirs(cgroup_info());
    let fake = own[0].join(format!("ringfence-{dead}-7"));
    stdfs::create_dir(&fake).unwrap();
    assert_eq!(sweep_dir(&own[0]), std::slice::from_ref(&fake));
    assert!(!fake.exists());
}

const ROOTLESS_CHILD_ENV: &str = "RINGFENCE_CGROUP_ROOTLESS_CHILD";

/// Not a test on its own: run as uid 65534 by `rootless_without_delegation_is_refused`.
#[test]
fn rootless_child() {
    if std::env::var_os(ROOTLESS_CHILD_ENV).is_none() {
        return;
    }
    let e = SandboxCgroup::create(&CgroupConfig {
        pids: Some(8),
        ..Default::default()
    })
    .expect_err("creating a cgroup without a delegated one");
    println!("ERROR {e}");
    assert!(
        matches!(e, CgroupError::Unsupported { .. }),
        "{e:?} is not Unsupported"
    );
    assert!(e.hint().is_some_and(|h| h.contains("Delegate=yes")), "{e}");
}

#[test]
fn rootless_without_delegation_is_refused() {
    let Some(_g) = setup("rootless_without_delegation_is_refused", &["pids"]) else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap();
    // uid 65534 must be able to run this binary (every directory on the way searchable).
    let reachable = exe
        .ancestors()
        .skip(1)
        .all(|d| stdfs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
        && stdfs::metadata(&exe).is_ok_and(|m| m.permissions().mode() & 0o005 == 0o005);
    if !reachable {
        eprintln!("SKIPPED rootless_without_delegation_is_refused: uid 65534 cannot run {exe:?}");
        return;
    }
    let own_writable_by_nobody = own_dirs(cgroup_info())
        .iter()
        .any(|d| stdfs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o002 != 0));
    if own_writable_by_nobody {
        eprintln!(
            "SKIPPED rootless_without_delegation_is_refused: a cgroup here is world-writable"
        );
        return;
    }
    let out = Command::new(&exe)
        .args([
            "--exact",
            "cgroup::tests::rootless_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOTLESS_CHILD_ENV, "1")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{}",
        stdout
            .lines()
            .filter(|l| l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ERROR "), "{stdout}");
}
