//! [`CgroupPool`]: the cgroups a sandbox keeps between its spawns.
//!
//! Creating a cgroup is a `mkdir` in every hierarchy (five on a v1 host with CPU, memory and
//! pids limits: freezer, cpuacct, cpu, memory, pids) plus the limit writes, and removing it an
//! `rmdir` in each: most of what a cgroup adds to a short spawn+wait. A `Sandbox` spawned
//! again and again (a fuzz harness, a CI runner) therefore keeps the cgroups of its ended
//! runs and reuses them:
//!
//! - **Taken** by a spawn: a cgroup created for the same [`CgroupConfig`], reset first
//!   ([`SandboxCgroup::reset`]); when none is ready, a new one.
//! - **Given back** at the end of a run ([`SandboxCgroup::remove`]) only once it holds no
//!   process (killed and waited for, as before removal), with the counters it ended with as the
//!   next run's baseline. Each running sandbox has a cgroup of its own: a cgroup is in a run
//!   or in the pool, never both.
//! - **Reset** before reuse: sub-cgroups the run created are removed, the limits written again,
//!   the memory peak reset (v1: `memory.max_usage_in_bytes` ← 0; v2: `memory.peak` through the
//!   descriptor it is read from, Linux 6.12+); CPU time and the OOM kill count are reported
//!   relative to the baseline. `pids.peak` cannot be reset: above 1 (the least any run has) its
//!   directory is made anew (v1), or the cgroup is not reused (v2, and v2 without a resettable
//!   `memory.peak`).
//! - **Removed** when the pool is dropped (with the sandbox's cached state, when the last
//!   clone of the sandbox goes): the idle ones then, the ones still in a run at the end of the
//!   run. A full pool removes what it cannot keep. After a crash, the stale sweep removes them like any other sandbox cgroup (same
//!   names).

use std::sync::{Arc, Mutex};

use super::{CgroupConfig, CgroupError, SandboxCgroup};

/// At most this many idle cgroups per pool: as many as the sandbox ran at once, up to this.
const MAX_IDLE: usize = 8;

/// The cgroups a sandbox keeps ready for its next spawns (see the module docs); cgroups are
/// handed out only for the configuration they were created with. Dropping it removes the idle
/// ones; those still in a run are removed at its end.
#[derive(Debug, Default)]
pub(crate) struct CgroupPool(Arc<Shared>);

/// What a pool and the cgroups it handed out share: the idle cgroups.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    idle: Mutex<Idle>,
}

#[derive(Debug, Default)]
struct Idle {
    list: Vec<SandboxCgroup>,
    /// The pool was dropped: cgroups given back now are removed.
    closed: bool,
}

impl CgroupPool {
    /// A cgroup with `cfg`'s limits for one run: an idle one, reset, or a new one
    /// ([`SandboxCgroup::create_kept`], with its validation and errors). Without `reuse`, a new
    /// one that is removed at the end of the run (a cgroup below a parent that may go away
    /// before the sandbox, such as a pod's).
    pub(crate) fn take(
        &self,
        cfg: &CgroupConfig,
        reuse: bool,
    ) -> Result<SandboxCgroup, CgroupError> {
        if !reuse {
            return SandboxCgroup::create(cfg);
        }
        loop {
            let ready = {
                let mut idle = self.0.idle.lock().unwrap_or_else(|e| e.into_inner());
                let i = idle.list.iter().position(|c| c.cfg == *cfg);
                i.map(|i| idle.list.swap_remove(i))
            };
            let Some(mut cg) = ready else {
                break;
            };
            match cg.reset() {
                Ok(true) => {
                    cg.pool = Some(self.0.clone());
                    return Ok(cg);
                }
                // Dropping it removes it; try the next one.
                Ok(false) => tracing::debug!("sandbox cgroup not reusable, removing it"),
                Err(e) => tracing::debug!("could not reset a sandbox cgroup, removing it: {e}"),
            }
        }
        let mut cg = SandboxCgroup::create_kept(cfg)?;
        cg.pool = Some(self.0.clone());
        Ok(cg)
    }

    /// How many cgroups wait in the pool.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.0
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list
            .len()
    }
}

impl Drop for CgroupPool {
    fn drop(&mut self) {
        let idle = {
            let mut idle = self.0.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.closed = true;
            std::mem::take(&mut idle.list)
        };
        // Removed here (each one's drop), outside the lock.
        drop(idle);
    }
}

impl Shared {
    /// Keep `cg` (empty, its run over) for a later spawn, or hand it back (`Some`) when the
    /// pool is full or dropped.
    pub(super) fn give_back(&self, cg: SandboxCgroup) -> Option<SandboxCgroup> {
        debug_assert!(cg.pool.is_none(), "an idle cgroup must not hold its pool");
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.closed || idle.list.len() >= MAX_IDLE {
            return Some(cg);
        }
        idle.list.push(cg);
        None
    }
}
