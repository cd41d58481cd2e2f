//! Resource control with cgroups: CPU, memory, swap, process count and CPU placement limits,
//! usage accounting, and killing every process of a sandbox at once.
//!
//! One interface, two backends picked at run time from `/proc/self/mountinfo`: cgroup v2 (the
//! unified hierarchy) and cgroup v1 (including hybrid hosts, where a cgroup2 mount exists but
//! the controllers live on v1 hierarchies). [`cgroup_info`] says which one this host has.
//!
//! A sandbox's cgroup is named `ringfence-<pid>-<n>` (the pid of the process that created
//! it) and created below the caller's own cgroup of each hierarchy (from `/proc/self/cgroup`),
//! or below [`CgroupConfig::parent`] — never beside it. On v2 the sandbox's first process is
//! born inside it (`clone3` with `CLONE_INTO_CGROUP`); on v1 the parent moves it in before
//! releasing it. The cgroup is removed when the sandbox ends; directories left behind by a
//! parent that died (their `<pid>` no longer exists) are removed the next time a process
//! creates its first sandbox cgroup, if they hold no process.
//!
//! Limits are plain data ([`CgroupConfig`]) written by one small module per controller
//! (`cpu.rs`, `memory.rs`, `pids.rs`, `cpuset.rs`) for either version; `v1.rs` and `v2.rs`
//! place, fill, kill, account and remove the cgroup.
//!
//! A `Sandbox` spawned many times reuses its cgroups (`CgroupPool` in `pool.rs`): at the end
//! of a run the cgroup is killed until empty and handed back to the sandbox instead of being
//! removed; the next spawn resets it (per-run counters, limits) and uses it again. Creating
//! and removing directories in every hierarchy is the larger part of what a cgroup costs a
//! spawn; the directories are removed when the sandbox and the children still holding one
//! are gone.

mod config;
mod controller;
mod cpu;
mod cpuset;
mod error;
mod fs;
mod info;
mod memory;
mod pids;
mod pool;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::fs as stdfs;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use self::config::{Cpu, MIN_MEMORY};
// The configuration as the builder keeps it, and the v1/v2 weight conversion, are no API:
// public only with the `internals` feature, for ringfence's own tests.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use self::config::{CgroupConfig, shares_to_weight, weight_to_shares};
#[cfg(not(feature = "internals"))]
#[allow(unused_imports)]
pub(crate) use self::config::{CgroupConfig, shares_to_weight, weight_to_shares};
pub use self::error::CgroupError;
pub use self::info::{CgroupBackend, CgroupInfo, ControllerInfo, cgroup_info};

pub(crate) use self::pool::CgroupPool;

use self::controller::Controller;

/// What a sandbox's processes used, read from its cgroup. Fields the kernel does not provide
/// are `None` (`memory.peak` needs Linux 5.19 on v2; `pids.peak` is recent on both versions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// CPU time (user + system) of every process that ran in the cgroup (v2 `cpu.stat`
    /// `usage_usec`, v1 `cpuacct.usage`).
    pub cpu_time: Option<Duration>,
    /// The highest memory use in bytes (v2 `memory.peak`, v1 `memory.max_usage_in_bytes`).
    pub peak_memory: Option<u64>,
    /// Whether the kernel's OOM killer killed a process of the cgroup because it reached its
    /// memory limit (v2 `memory.events` `oom_kill`, v1 `memory.oom_control` `oom_kill`).
    pub oom_killed: bool,
    /// The highest number of processes and threads at once (`pids.peak`).
    pub pids_peak: Option<u64>,
}

/// What the cgroup files say, counted since the directories were created (a reused cgroup
/// has counted earlier runs too: [`SandboxCgroup::usage`] makes them per run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawUsage {
    /// `cpu.stat` `usage_usec` / `cpuacct.usage`.
    pub cpu_time: Option<Duration>,
    /// `memory.peak` / `memory.max_usage_in_bytes` (reset when a cgroup is reused).
    pub peak_memory: Option<u64>,
    /// The `oom_kill` count of `memory.events` / `memory.oom_control`.
    pub oom_kills: Option<u64>,
    /// `pids.peak`.
    pub pids_peak: Option<u64>,
}

/// How long [`SandboxCgroup::kill`] waits for the processes to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// One controller's entry points, for iterating over all of them.
#[derive(Clone, Copy)]
struct Ctl {
    name: &'static str,
    wanted: fn(&CgroupConfig) -> bool,
    v1: fn(&CgroupConfig, &Path) -> Result<(), CgroupError>,
    v2: fn(&CgroupConfig, &Path) -> Result<(), CgroupError>,
}

fn ctl<C: Controller>() -> Ctl {
    Ctl {
        name: C::NAME,
        wanted: C::wanted,
        v1: C::apply_v1,
        v2: C::apply_v2,
    }
}

/// Every controller ringfence sets limits with, in the order they are written.
fn controllers() -> [Ctl; 4] {
    [
        ctl::<cpuset::CpusetController>(),
        ctl::<cpu::CpuController>(),
        ctl::<memory::MemoryController>(),
        ctl::<pids::PidsController>(),
    ]
}

/// Send `SIGKILL` to every pid (gone ones are fine).
fn kill_pids(pids: &[libc::pid_t]) {
    for &p in pids {
        if p > 0 {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

/// Wait until no process is left in `dirs` (and below), until `deadline`.
fn wait_empty(dirs: &[&Path], deadline: Instant) -> Result<(), CgroupError> {
    let mut pause = Duration::from_micros(50);
    loop {
        let mut left = 0;
        let mut at = dirs.first().map(|d| d.to_path_buf()).unwrap_or_default();
        for d in dirs {
            let n = fs::procs_recursive(d)?.len();
            if n > 0 {
                left = n;
                at = d.to_path_buf();
                break;
            }
        }
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CgroupError::NotEmptied {
                path: at,
                count: left,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

#[derive(Debug)]
enum Inner {
    V1(v1::V1Cgroup),
    V2(v2::V2Cgroup),
}

/// The live cgroup of one sandbox: created by the parent before the sandbox's first process
/// (or taken ready from a [`CgroupPool`]), given back to its pool or removed (after killing
/// what is left in it) by [`remove`](Self::remove), removed on drop.
#[derive(Debug)]
pub(crate) struct SandboxCgroup {
    inner: Inner,
    removed: bool,
    /// The limits it was created with (a pool hands it out for these only).
    cfg: CgroupConfig,
    /// The pool it goes back to at the end of the run (`None` while it waits in the pool).
    pool: Option<Arc<pool::Shared>>,
    /// The counters at the start of this run: what earlier runs in the same directories left.
    base: RawUsage,
    /// The counters read by the last [`usage`](Self::usage): the next run's `base`.
    last: Mutex<Option<RawUsage>>,
    /// Set when [`kill`](Self::kill) found no process left: a reused cgroup starts empty.
    emptied: AtomicBool,
    /// Given back by a run: reset (limits rewritten, peaks reset) before the next one.
    dirty: bool,
}

const NAME_PREFIX: &str = "ringfence-";

/// A fresh name `ringfence-<pid>-<n>`.
fn next_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{NAME_PREFIX}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The pid in a name `ringfence-<pid>-<n>`.
fn name_pid(name: &str) -> Option<libc::pid_t> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok().filter(|p| *p > 0)
}

// The spawn core is the user of this API; until every entry point is wired there, some are
// reached only from tests.
#[allow(dead_code)]
impl SandboxCgroup {
    /// Validate `cfg`, then create the cgroup with its limits (see the module docs for where).
    /// On error nothing is left behind.
    pub(crate) fn create(cfg: &CgroupConfig) -> Result<SandboxCgroup, CgroupError> {
        Self::create_with(cfg, false)
    }

    /// [`create`](Self::create) a cgroup that is to be reused: its interface files are kept
    /// open from the first write on (see `fs.rs`), and closed when it is removed.
    pub(crate) fn create_kept(cfg: &CgroupConfig) -> Result<SandboxCgroup, CgroupError> {
        Self::create_with(cfg, true)
    }

    fn create_with(cfg: &CgroupConfig, keep: bool) -> Result<SandboxCgroup, CgroupError> {
        cfg.validate()?;
        let info = cgroup_info();
        sweep_stale();
        if let Some(p) = &cfg.parent {
            sweep_parent(p);
        }
        let mut attempts = 0;
        loop {
            let name = next_name();
            let res = match &info.backend {
                CgroupBackend::V2 { mount } => {
                    v2::V2Cgroup::create(cfg, info, mount, &name, keep).map(Inner::V2)
                }
                CgroupBackend::V1 { hierarchies } => {
                    v1::V1Cgroup::create(cfg, info, hierarchies, &name, keep).map(Inner::V1)
                }
                CgroupBackend::Unavailable { reason } => Err(CgroupError::Unsupported {
                    controller: "cgroup",
                    reason: reason.clone(),
                    hint: "mount the cgroup2 filesystem on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup), or run without cgroup limits",
                }),
            };
            match res {
                // A live directory of a pid that was reused: take the next number.
                Err(CgroupError::Create { source, .. })
                    if source.raw_os_error() == Some(libc::EEXIST) && attempts < 16 =>
                {
                    attempts += 1;
                }
                Err(e) => return Err(e),
                Ok(inner) => {
                    tracing::debug!(cgroup = ?inner, "created sandbox cgroup");
                    return Ok(SandboxCgroup {
                        inner,
                        removed: false,
                        cfg: cfg.clone(),
                        pool: None,
                        base: RawUsage::default(),
                        last: Mutex::new(None),
                        emptied: AtomicBool::new(false),
                        dirty: false,
                    });
                }
            }
        }
    }

    /// The cgroup's directories: one on v2, one per hierarchy used on v1.
    pub(crate) fn dirs(&self) -> Vec<&Path> {
        match &self.inner {
            Inner::V2(c) => vec![c.dir()],
            Inner::V1(c) => c.dirs().iter().map(PathBuf::as_path).collect(),
        }
    }

    /// On v2, a directory descriptor of the cgroup (`O_DIRECTORY | O_CLOEXEC`) for
    /// `clone3(CLONE_INTO_CGROUP)`, valid as long as `self`; `None` on v1.
    pub(crate) fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.inner {
            Inner::V2(c) => Some(c.clone_into_fd()),
            Inner::V1(_) => None,
        }
    }

    /// On v1, each hierarchy's `tasks` file, open for writing (close-on-exec): the sandbox's
    /// first process writes `0` to each to move itself in, which spares it the thread-group
    /// lock a move by pid takes (see `Plan::cgroup_tasks`). Empty on v2, where the process is
    /// born inside with `CLONE_INTO_CGROUP` (or attached by pid without clone3).
    pub(crate) fn self_attach_files(&self) -> Result<Vec<std::os::fd::OwnedFd>, CgroupError> {
        match &self.inner {
            Inner::V2(_) => Ok(Vec::new()),
            Inner::V1(c) => c
                .dirs()
                .iter()
                .map(|d| fs::open_write(d, "tasks"))
                .collect(),
        }
    }

    /// Move process `pid` (and, since it has none yet, everything it will start) into the
    /// cgroup: on v1 into every hierarchy's `cgroup.procs`, to be done before the child is
    /// released. On v2 writes `cgroup.procs` too, for when `clone3` was not available; a
    /// child born inside with `CLONE_INTO_CGROUP` does not need it (the kernel would do
    /// nothing).
    pub(crate) fn attach(&self, pid: libc::pid_t) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V2(c) => c.attach(pid),
            Inner::V1(c) => c.attach(pid),
        }
    }

    /// Kill every process in the cgroup, daemons that left their session and process group
    /// included, and wait until none is left (at most 5 s, then
    /// [`CgroupError::NotEmptied`]).
    pub(crate) fn kill(&self) -> Result<(), CgroupError> {
        let res = match &self.inner {
            Inner::V2(c) => c.kill(),
            Inner::V1(c) => c.kill(),
        };
        self.emptied.store(res.is_ok(), Ordering::Relaxed);
        res
    }

    /// What the cgroup's processes used in this run (so far): CPU time and the OOM kill count
    /// relative to where earlier runs in the same directories left them; the peaks were reset
    /// before this run (see [`CgroupPool`]).
    pub(crate) fn usage(&self) -> CgroupUsage {
        let raw = match &self.inner {
            Inner::V2(c) => c.usage(),
            Inner::V1(c) => c.usage(),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(raw);
        let base = self.base;
        CgroupUsage {
            cpu_time: raw
                .cpu_time
                .map(|t| t.saturating_sub(base.cpu_time.unwrap_or_default())),
            peak_memory: raw.peak_memory,
            oom_killed: raw.oom_kills.unwrap_or(0) > base.oom_kills.unwrap_or(0),
            pids_peak: raw.pids_peak,
        }
    }

    /// The sandbox's run is over: kill what is left and give the cgroup back to its pool for
    /// the next spawn, or (without a pool, or when the pool is full or gone) remove its
    /// directories, retrying briefly while the kernel finishes the exits.
    pub(crate) fn remove(mut self) -> Result<(), CgroupError> {
        if let Some(pool) = self.pool.take() {
            if self.emptied.load(Ordering::Relaxed) || self.kill().is_ok() {
                self.base = self.last_counters();
                self.dirty = true;
                let reusable = match &self.inner {
                    Inner::V2(c) => c.reusable(&self.base),
                    Inner::V1(_) => true,
                };
                if !reusable {
                    self.removed = true;
                    return self.remove_inner();
                }
                if let Some(cg) = pool.give_back(self) {
                    return cg.remove();
                }
                return Ok(());
            }
        }
        self.removed = true;
        self.remove_inner()
    }

    /// The counters as the last [`usage`](Self::usage) read them, or as they are now.
    fn last_counters(&self) -> RawUsage {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.unwrap_or_else(|| match &self.inner {
            Inner::V2(c) => c.usage(),
            Inner::V1(c) => c.usage(),
        })
    }

    /// Make a cgroup given back by a run ready for the next one, or say it cannot be (then
    /// it is removed, and a new one created): remove sub-cgroups the run made, rewrite the
    /// limits (a run able to write its cgroup's files may have changed them), reset the
    /// memory peak; a `pids.peak` above 1 cannot be reset, so that directory is made anew
    /// (v1) or the cgroup is not reused (v2).
    fn reset(&mut self) -> Result<bool, CgroupError> {
        if !self.dirty {
            return Ok(true);
        }
        let last = self.base;
        let ok = match &mut self.inner {
            Inner::V2(c) => c.reset(&self.cfg, &last)?,
            Inner::V1(c) => c.reset(&self.cfg, &last)?,
        };
        if ok {
            self.dirty = false;
            self.emptied.store(false, Ordering::Relaxed);
            *self.last.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        }
        Ok(ok)
    }

    fn remove_inner(&self) -> Result<(), CgroupError> {
        let emptied = self.emptied.load(Ordering::Relaxed);
        match &self.inner {
            Inner::V2(c) => c.remove(emptied),
            Inner::V1(c) => c.remove(emptied),
        }
    }
}

impl Drop for SandboxCgroup {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = self.remove_inner() {
                tracing::warn!("could not remove a sandbox cgroup: {e}");
            }
        }
    }
}

/// Whether process `pid` exists (in this pid namespace).
fn alive(pid: libc::pid_t) -> bool {
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// Remove the `ringfence-<pid>-*` directories in `dir` whose `<pid>` is dead and that hold no
/// process; return the ones removed. A stale cgroup that still holds processes (a sandbox
/// started with `keep_running`, or one whose parent died while killing it) is left alone,
/// but thawed if it was left frozen, so that pending kills complete.
fn sweep_dir(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(rd) = stdfs::read_dir(dir) else {
        return removed;
    };
    let me = std::process::id() as libc::pid_t;
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(name_pid) else {
            continue;
        };
        if pid == me || alive(pid) {
            continue;
        }
        let path = e.path();
        let populated = fs::procs_recursive(&path).is_ok_and(|p| !p.is_empty());
        if populated {
            if fs::read_opt(&path, "freezer.state").is_some_and(|s| s.trim() != "THAWED") {
                let _ = fs::write(&path, "freezer.state", "THAWED");
            }
            if fs::read_opt(&path, "cgroup.freeze").is_some_and(|s| s.trim() == "1") {
                let _ = fs::write(&path, "cgroup.freeze", "0");
            }
            tracing::debug!(path = %path.display(), "stale sandbox cgroup still has processes");
            continue;
        }
        match fs::remove_tree(&path) {
            Ok(()) => {
                tracing::debug!(path = %path.display(), "removed stale sandbox cgroup");
                removed.push(path);
            }
            Err(e) => tracing::debug!("could not remove a stale sandbox cgroup: {e}"),
        }
    }
    removed
}

/// The directories where this process creates sandbox cgroups by default.
fn own_dirs(info: &CgroupInfo) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = info
        .own_v2
        .iter()
        .cloned()
        .chain(info.controllers.values().map(|c| c.own.clone()))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Remove the directories `ringfence-<pid>-*` below this process's own cgroups whose `<pid>`
/// no longer exists (left by a parent that crashed). Runs once per process, at its first
/// [`SandboxCgroup::create`]; returns what it removed.
pub(crate) fn sweep_stale() -> Vec<PathBuf> {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return Vec::new();
    }
    *done = true;
    own_dirs(cgroup_info())
        .iter()
        .flat_map(|d| sweep_dir(d))
        .collect()
}

/// [`sweep_dir`] for an explicitly given parent, once per parent and process (on v1 in each
/// hierarchy of the parent's relative path).
fn sweep_parent(parent: &Path) {
    static DONE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.iter().any(|p| p == parent) {
        return;
    }
    done.push(parent.to_path_buf());
    match &cgroup_info().backend {
        CgroupBackend::V1 { hierarchies } => {
            let info = cgroup_info();
            let mut dirs: Vec<PathBuf> = hierarchies
                .keys()
                .filter_map(|c| v1::parent_in(info, hierarchies, c, parent).ok())
                .collect();
            dirs.sort();
            dirs.dedup();
            for d in dirs {
                sweep_dir(&d);
            }
        }
        _ => {
            sweep_dir(parent);
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn names() {
        let n = next_name();
        assert_eq!(name_pid(&n), Some(std::process::id() as libc::pid_t));
        assert_ne!(next_name(), n);
        assert_eq!(name_pid("ringfence-12-0"), Some(12));
        for bad in [
            "ringfence-12",
            "ringfence--1-0",
            "ringfence-a-0",
            "other-12-0",
            "ringfence-12-x",
        ] {
            assert_eq!(name_pid(bad), None, "{bad}");
        }
    }

    #[test]
    fn sweep_removes_only_dead_and_empty() {
        let t = fs::TempDir::new();
        // Fixture directories stand in for cgroups: an empty directory is an empty cgroup,
        // one with a pid in cgroup.procs a populated one.
        let mk = |name: &str| {
            let d = t.path().join(name);
            stdfs::create_dir(&d).unwrap();
            d
        };
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = mk(&format!("ringfence-{dead}-0"));
        let mine = mk(&format!("ringfence-{}-999", std::process::id()));
        let live = mk("ringfence-1-0");
        let other = mk("unrelated-1-0");
        let busy = mk(&format!("ringfence-{dead}-1"));
        stdfs::write(busy.join("cgroup.procs"), "1\n").unwrap();
        assert_eq!(sweep_dir(t.path()), std::slice::from_ref(&stale));
        assert!(!stale.exists());
        assert!(mine.exists() && live.exists() && other.exists() && busy.exists());
    }
}
