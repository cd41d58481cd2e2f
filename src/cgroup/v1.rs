//! The cgroup v1 backend: one directory per hierarchy (co-mounted controllers such as
//! `cpu,cpuacct` share one), all with the same name.
//!
//! - create: `mkdir` below the caller's own cgroup of each hierarchy it uses: `freezer` (kill),
//!   `cpuacct` (CPU time), `memory` and `pids` (limits, peak, OOM) whenever they are mounted
//!   and writable, `cpu` and `cpuset` only when limited; then the limits.
//! - attach: write the pid to `cgroup.procs` in every hierarchy, before the child is released.
//! - kill: nothing to do when `pids.current` says the subtree has no task; else `SIGKILL`
//!   every pid of `cgroup.procs` and wait, and from the fourth round on freezer `FROZEN`
//!   around the listing and the kill, `THAWED` after; repeat until no process is left.
//! - usage: `cpuacct.usage`, `memory.max_usage_in_bytes`, `memory.oom_control` `oom_kill`,
//!   `pids.peak`.
//! - reset for reuse (see `pool.rs`): sub-cgroups removed, limits written again,
//!   `memory.max_usage_in_bytes` ← 0; the directory holding `pids.peak` (which cannot be reset)
//!   made anew when the last run's peak was above 1.
//! - remove: kill, then `rmdir` in every hierarchy.

use std::collections::BTreeMap;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::{AccessFlags, access};

use super::config::check_cgroup_dir;
use super::error::CREATE_DENIED_HINT;
use super::{
    CgroupConfig, CgroupError, CgroupInfo, KILL_TIMEOUT, RawUsage, controllers, fs, kill_pids,
    wait_empty,
};

/// Controllers used whenever available, for kill-all and usage, even without a limit.
const ALWAYS: [&str; 4] = ["freezer", "cpuacct", "memory", "pids"];

/// A sandbox's cgroup on the v1 hierarchies.
#[derive(Debug)]
pub(crate) struct V1Cgroup {
    /// Controller → the sandbox's directory in that controller's hierarchy.
    by_controller: BTreeMap<&'static str, PathBuf>,
    /// The distinct directories, in creation order.
    dirs: Vec<PathBuf>,
}

fn mount_hint(name: &str) -> &'static str {
    match name {
        "cpu" => {
            "mount the cpu controller: mount -t cgroup -o cpu cgroup /sys/fs/cgroup/cpu (or use a cgroup v2 host)"
        }
        "memory" => {
            "mount the memory controller: mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory (or use a cgroup v2 host)"
        }
        "pids" => {
            "mount the pids controller: mount -t cgroup -o pids cgroup /sys/fs/cgroup/pids (or use a cgroup v2 host)"
        }
        "cpuset" => {
            "mount the cpuset controller: mount -t cgroup -o cpuset cgroup /sys/fs/cgroup/cpuset (or use a cgroup v2 host)"
        }
        _ => "mount the controller's cgroup v1 hierarchy, or use a cgroup v2 host",
    }
}

/// The parent directory for `controller` when `parent` (a directory in any one hierarchy) was
/// given: the same path relative to this process's own cgroup when `parent` is below it (own
/// cgroups may differ between hierarchies), else relative to the hierarchy's mount.
pub(crate) fn parent_in(
    info: &CgroupInfo,
    hierarchies: &BTreeMap<String, PathBuf>,
    controller: &str,
    parent: &Path,
) -> Result<PathBuf, CgroupError> {
    let not = || CgroupError::NotACgroup {
        path: parent.to_path_buf(),
    };
    // The hierarchy `parent` is on: the deepest mount that contains it.
    let (on, rel_mount) = hierarchies
        .iter()
        .filter_map(|(c, m)| Some((c, parent.strip_prefix(m).ok()?)))
        .min_by_key(|(_, r)| r.components().count())
        .ok_or_else(not)?;
    let own_rel = info
        .controllers
        .get(on.as_str())
        .and_then(|ci| parent.strip_prefix(&ci.own).ok());
    let p = match (own_rel, info.controllers.get(controller)) {
        (Some(rel), Some(ci)) => ci.own.join(rel),
        _ => hierarchies.get(controller).ok_or_else(not)?.join(rel_mount),
    };
    check_cgroup_dir(&p)?;
    Ok(p)
}

impl V1Cgroup {
    pub(crate) fn create(
        cfg: &CgroupConfig,
        info: &CgroupInfo,
        hierarchies: &BTreeMap<String, PathBuf>,
        name: &str,
        keep: bool,
    ) -> Result<V1Cgroup, CgroupError> {
        let ctls = controllers();
        // Controller → (required, parent directory).
        let mut plan: Vec<(&'static str, PathBuf)> = Vec::new();
        let all = ALWAYS.iter().map(|n| (*n, false)).chain(
            ctls.iter()
                .filter(|c| (c.wanted)(cfg))
                .map(|c| (c.name, true)),
        );
        for (name, required) in all {
            if let Some(i) = plan.iter().position(|(n, _)| *n == name) {
                if !required {
                    continue;
                }
                plan.remove(i);
            }
            let Some(ci) = info.controllers.get(name) else {
                if required {
                    return Err(CgroupError::Unsupported {
                        controller: name,
                        reason: "no cgroup v1 hierarchy with this controller is mounted, or this process's cgroup in it is not visible".into(),
                        hint: mount_hint(name),
                    });
                }
                continue;
            };
            let parent = match &cfg.parent {
                Some(p) => parent_in(info, hierarchies, name, p)?,
                None => ci.own.clone(),
            };
            if access(&parent, AccessFlags::W_OK).is_err() {
                if required {
                    return Err(CgroupError::Unsupported {
                        controller: name,
                        reason: format!(
                            "{} is not writable by uid {}",
                            parent.display(),
                            nix::unistd::geteuid()
                        ),
                        hint: CREATE_DENIED_HINT,
                    });
                }
                continue;
            }
            plan.push((name, parent));
        }
        if plan.is_empty() {
            return Err(CgroupError::Unsupported {
                controller: "cgroup",
                reason: "no cgroup v1 hierarchy is mounted and writable by this process".into(),
                hint: CREATE_DENIED_HINT,
            });
        }

        let mut cg = V1Cgroup {
            by_controller: BTreeMap::new(),
            dirs: Vec::new(),
        };
        let res = (|| {
            for (ctl, parent) in &plan {
                let dir = parent.join(name);
                if !cg.dirs.contains(&dir) {
                    DirBuilder::new()
                        .mode(0o755)
                        .create(&dir)
                        .map_err(|source| CgroupError::Create {
                            path: dir.clone(),
                            source,
                        })?;
                    if keep {
                        fs::keep_open(&dir);
                    }
                    cg.dirs.push(dir.clone());
                }
                cg.by_controller.insert(ctl, dir);
            }
            for c in ctls.iter().filter(|c| (c.wanted)(cfg)) {
                (c.v1)(cfg, &cg.by_controller[c.name])?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => Ok(cg),
            Err(e) => {
                for d in cg.dirs.iter().rev() {
                    fs::unkeep(d);
                    let _ = fs::remove_tree(d);
                }
                Err(e)
            }
        }
    }

    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    pub(crate) fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.by_controller.get(controller).map(PathBuf::as_path)
    }

    pub(crate) fn attach(&self, pid: libc::pid_t) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        for d in &self.dirs {
            fs::write(d, "cgroup.procs", &pid)?;
        }
        Ok(())
    }

    fn all_procs(&self) -> Result<Vec<libc::pid_t>, CgroupError> {
        let mut all = Vec::new();
        for d in &self.dirs {
            all.extend(fs::procs_recursive(d)?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    pub(crate) fn kill(&self) -> Result<(), CgroupError> {
        // The common case, the run left nothing: one read of a kept file. `pids.current`
        // counts every task of the subtree, exited ones until they are reaped, and is charged
        // before a fork completes; a process that moved itself out of the pids hierarchy
        // could as well have left every hierarchy, which no listing would see either.
        if self
            .dir_of("pids")
            .and_then(|d| fs::read_u64(d, "pids.current"))
            == Some(0)
        {
            return Ok(());
        }
        let deadline = Instant::now() + KILL_TIMEOUT;
        let dirs: Vec<&Path> = self.dirs.iter().map(PathBuf::as_path).collect();
        let mut attempt = 0u32;
        loop {
            if self.all_procs()?.is_empty() {
                return Ok(());
            }
            // The first rounds kill without freezing: a frozen cgroup whose killer dies (the
            // parent killed right then) stays frozen, and a frozen task does not even die of its
            // death signal, until the next start's sweep thaws it. Only processes that keep
            // forking faster than they are killed need the freezer.
            attempt += 1;
            let freezer = self.dir_of("freezer").filter(|_| attempt > 3);
            // Frozen, nothing in the cgroup can fork or exit, so the list read next is
            // complete and its pids cannot be reused before they get the signal.
            if let Some(fz) = freezer {
                fs::write(fz, "freezer.state", "FROZEN")?;
                let until = Instant::now() + Duration::from_millis(100);
                while Instant::now() < until
                    && fs::read_opt(fz, "freezer.state").as_deref().map(str::trim) != Some("FROZEN")
                {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            let pids = self.all_procs();
            if let Ok(p) = &pids {
                kill_pids(p);
            }
            // ORDER: thaw even if listing failed, or the processes would stay frozen forever.
            // A v1-frozen task does not die of SIGKILL until it is thawed.
            if let Some(fz) = freezer {
                fs::write(fz, "freezer.state", "THAWED")?;
            }
            pids?;
            let wait = if attempt > 3 { 100 } else { 10 };
            let round = (Instant::now() + Duration::from_millis(wait)).min(deadline);
            match wait_empty(&dirs, round) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
        }
    }

    pub(crate) fn usage(&self) -> RawUsage {
        let cpu = self
            .dir_of("cpuacct")
            .and_then(|d| fs::read_u64(d, "cpuacct.usage"))
            .map(Duration::from_nanos);
        let mem = self.dir_of("memory");
        RawUsage {
            cpu_time: cpu,
            peak_memory: mem.and_then(|d| fs::read_u64(d, "memory.max_usage_in_bytes")),
            oom_kills: mem
                .and_then(|d| fs::read_opt(d, "memory.oom_control"))
                .and_then(|s| fs::keyed(&s, "oom_kill")),
            pids_peak: self
                .dir_of("pids")
                .and_then(|d| fs::read_u64(d, "pids.peak")),
        }
    }

    /// Make the (empty) cgroup ready for another run; `last` is what the last run left.
    pub(crate) fn reset(
        &mut self,
        cfg: &CgroupConfig,
        last: &RawUsage,
    ) -> Result<bool, CgroupError> {
        // A sub-cgroup the run made (it is empty: the whole tree was killed).
        for d in &self.dirs {
            for sub in fs::tree(d).iter().skip(1).rev() {
                fs::remove_tree(sub)?;
            }
        }
        // pids.peak only grows: above 1 it could hide a smaller peak of the next run.
        if let Some(pids) = self.dir_of("pids").filter(|_| last.pids_peak > Some(1)) {
            let pids = pids.to_path_buf();
            fs::remove_tree(&pids)?;
            DirBuilder::new()
                .mode(0o755)
                .create(&pids)
                .map_err(|source| CgroupError::Create {
                    path: pids.clone(),
                    source,
                })?;
        }
        for c in controllers().iter().filter(|c| (c.wanted)(cfg)) {
            (c.v1)(cfg, &self.by_controller[c.name])?;
        }
        if let Some(mem) = self.dir_of("memory") {
            // Writing 0 sets the peak to the current use (memory still charged to the cgroup,
            // such as page cache the last run read, which the kernel reclaims under the limit).
            fs::write(mem, "memory.max_usage_in_bytes", "0")?;
        }
        Ok(true)
    }

    /// Kill (unless `emptied`: already found empty) and remove every directory.
    pub(crate) fn remove(&self, emptied: bool) -> Result<(), CgroupError> {
        let mut res = if emptied { Ok(()) } else { self.kill() };
        for d in &self.dirs {
            fs::unkeep(d);
        }
        for d in self.dirs.iter().rev() {
            let r = fs::remove_tree(d);
            if res.is_ok() {
                res = r;
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_maps_across_hierarchies() {
        use crate::cgroup::CgroupBackend;
        use crate::cgroup::info::detect;
        let info = detect(
            "1 0 0:1 / /nonexistent/cpu rw - cgroup cgroup rw,cpu\n\
             2 0 0:2 / /nonexistent/memory rw - cgroup cgroup rw,memory\n",
            "2:memory:/own\n1:cpu:/\n",
            &|_| true,
            &|_| true,
        );
        let CgroupBackend::V1 { hierarchies } = &info.backend else {
            panic!("{info:?}")
        };
        let missing = |e: CgroupError| match e {
            CgroupError::NotACgroup { path } => path,
            e => panic!("{e}"),
        };
        // Below the own cgroup: relative to the own cgroup of each hierarchy.
        let e = parent_in(
            &info,
            hierarchies,
            "cpu",
            Path::new("/nonexistent/memory/own/ci"),
        );
        assert_eq!(missing(e.unwrap_err()), Path::new("/nonexistent/cpu/ci"));
        let e = parent_in(
            &info,
            hierarchies,
            "memory",
            Path::new("/nonexistent/cpu/ci"),
        );
        assert_eq!(
            missing(e.unwrap_err()),
            Path::new("/nonexistent/memory/own/ci")
        );
        // Elsewhere: relative to the mount.
        let e = parent_in(
            &info,
            hierarchies,
            "cpu",
            Path::new("/nonexistent/memory/ci"),
        );
        assert_eq!(missing(e.unwrap_err()), Path::new("/nonexistent/cpu/ci"));
        // Not on any hierarchy.
        let e = parent_in(&info, hierarchies, "cpu", Path::new("/tmp/x"));
        assert_eq!(missing(e.unwrap_err()), Path::new("/tmp/x"));
    }
}
