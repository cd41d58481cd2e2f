//! The cgroup v2 backend: one directory in the unified hierarchy.
//!
//! - create: `mkdir <parent>/ringfence-<pid>-<n>` after enabling the needed controllers in
//!   `cgroup.subtree_control` from the caller's own cgroup down to the parent (never above
//!   the caller's own cgroup, or above an explicitly given parent), then the limits, then an
//!   `O_DIRECTORY` fd for `clone3(CLONE_INTO_CGROUP)`.
//! - attach: write the pid to `cgroup.procs` (only needed when the child was not born inside).
//! - kill: nothing to do when `cgroup.events` says `populated 0`; else `cgroup.kill` (5.14+),
//!   or freeze (`cgroup.freeze`, 5.2+), `SIGKILL` every pid, thaw; then wait until no process
//!   is left.
//! - usage: `cpu.stat` `usage_usec`, `memory.peak` (5.19+), `memory.events` `oom_kill`,
//!   `pids.peak` (where the kernel has it).
//! - reset for reuse (see `pool.rs`): sub-cgroups removed, limits written again, `memory.peak`
//!   reset through the descriptor it is read from (Linux 6.12+); not reused where it cannot be
//!   reset, nor after a run whose `pids.peak` was above 1.
//! - remove: kill, then `rmdir` children first.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::{AccessFlags, access};

use super::error::CREATE_DENIED_HINT;
use super::{
    CgroupConfig, CgroupError, CgroupInfo, Ctl, KILL_TIMEOUT, RawUsage, controllers, fs, kill_pids,
    wait_empty,
};

const DELEGATE_HINT: &str = "cgroup v2 needs a writable (delegated) cgroup: run as root, or start the program in a delegated scope (systemd-run --user --scope -p Delegate=yes <program>) and pass an empty cgroup below it with cgroup_parent";

const ENABLE_HINT: &str = "enable the controller in every ancestor's cgroup.subtree_control (as root: echo +<controller> > <ancestor>/cgroup.subtree_control), or have systemd delegate it (Delegate=yes)";

/// A sandbox's cgroup on the unified hierarchy.
#[derive(Debug)]
pub(crate) struct V2Cgroup {
    dir: PathBuf,
    fd: OwnedFd,
    /// `memory.peak` open for reading and writing where the kernel lets a write reset the
    /// peak seen through that descriptor (6.12+); `None` where it cannot (or has no such file).
    peak: Option<File>,
}

/// `memory.peak` of `dir` opened read-write, if the kernel accepts writes to it (6.12+: a
/// write resets the peak seen through this descriptor). Older kernels open it (every cgroup
/// file has the same file operations) and refuse the write (`EINVAL`): tried once here, on a
/// cgroup that has not run anything yet.
fn open_peak(dir: &Path) -> Option<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join("memory.peak"))
        .ok()?;
    f.write_at(b"reset\n", 0).ok()?;
    Some(f)
}

/// A number read from the start of `f` (an interface file kept open).
fn read_u64_at(f: &File) -> Option<u64> {
    let mut buf = [0u8; 32];
    let n = f.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// The directories whose `cgroup.subtree_control` may be changed to give `parent`'s children a
/// controller: from the caller's own cgroup down to `parent` when `parent` is inside it, else
/// `parent` alone (a parent chosen explicitly is the caller's to configure).
fn enable_chain(own: &Path, parent: &Path) -> Vec<PathBuf> {
    match parent.strip_prefix(own) {
        Ok(rel) => {
            let mut chain = vec![own.to_path_buf()];
            let mut cur = own.to_path_buf();
            for c in rel.components() {
                cur.push(c);
                chain.push(cur.clone());
            }
            chain
        }
        Err(_) => vec![parent.to_path_buf()],
    }
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
}

/// Make `name` available to the children of the last directory of `chain`.
fn enable(chain: &[PathBuf], name: &'static str) -> Result<(), CgroupError> {
    let last = chain.last().expect("chain is never empty");
    if words(&fs::read(last, "cgroup.subtree_control")?).any(|w| w == name) {
        return Ok(());
    }
    for d in chain {
        if words(&fs::read(d, "cgroup.subtree_control")?).any(|w| w == name) {
            continue;
        }
        let avail = fs::read(d, "cgroup.controllers")?;
        if !words(&avail).any(|w| w == name) {
            return Err(CgroupError::Unsupported {
                controller: name,
                reason: format!(
                    "{} offers only [{}]",
                    d.join("cgroup.controllers").display(),
                    avail.trim()
                ),
                hint: ENABLE_HINT,
            });
        }
        fs::write(d, "cgroup.subtree_control", &format!("+{name}"))?;
    }
    Ok(())
}

impl V2Cgroup {
    pub(crate) fn create(
        cfg: &CgroupConfig,
        info: &CgroupInfo,
        mount: &Path,
        name: &str,
        keep: bool,
    ) -> Result<V2Cgroup, CgroupError> {
        let Some(own) = info.own_v2.as_deref() else {
            return Err(CgroupError::Unsupported {
                controller: "cgroup",
                reason: "this process's cgroup v2 directory was not found".into(),
                hint: DELEGATE_HINT,
            });
        };
        let parent = match &cfg.parent {
            Some(p) if !p.starts_with(mount) => {
                return Err(CgroupError::NotACgroup { path: p.clone() });
            }
            Some(p) => p.as_path(),
            None => own,
        };
        if access(parent, AccessFlags::W_OK).is_err() {
            return Err(CgroupError::Unsupported {
                controller: "cgroup",
                reason: format!(
                    "{} is not writable by uid {}",
                    parent.display(),
                    nix::unistd::geteuid()
                ),
                hint: if nix::unistd::geteuid().is_root() {
                    CREATE_DENIED_HINT
                } else {
                    DELEGATE_HINT
                },
            });
        }
        let chain = enable_chain(own, parent);
        let wanted: Vec<Ctl> = controllers()
            .into_iter()
            .filter(|c| (c.wanted)(cfg))
            .collect();
        for c in &wanted {
            enable(&chain, c.name)?;
        }

        let dir = parent.join(name);
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
        let fill = || -> Result<OwnedFd, CgroupError> {
            for c in &wanted {
                (c.v2)(cfg, &dir)?;
            }
            let f: File = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(&dir)
                .map_err(|source| CgroupError::Read {
                    path: dir.clone(),
                    source,
                })?;
            Ok(f.into())
        };
        match fill() {
            Ok(fd) => {
                let peak = open_peak(&dir);
                Ok(V2Cgroup { dir, fd, peak })
            }
            Err(e) => {
                fs::unkeep(&dir);
                let _ = fs::remove_tree(&dir);
                Err(e)
            }
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn clone_into_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn attach(&self, pid: libc::pid_t) -> Result<(), CgroupError> {
        fs::write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    pub(crate) fn kill(&self) -> Result<(), CgroupError> {
        // The common case, the run left nothing: one read of a kept file.
        if fs::read_opt(&self.dir, "cgroup.events").and_then(|e| fs::keyed(&e, "populated"))
            == Some(0)
        {
            return Ok(());
        }
        self.kill_with(self.dir.join("cgroup.kill").exists())
    }

    /// [`kill`](Self::kill), with `cgroup.kill` or (as before Linux 5.14) without it.
    pub(crate) fn kill_with(&self, kill_file: bool) -> Result<(), CgroupError> {
        let deadline = Instant::now() + KILL_TIMEOUT;
        if fs::procs_recursive(&self.dir)?.is_empty() {
            return Ok(());
        }
        if kill_file {
            // cgroup.kill (5.14+) kills every process of the subtree and keeps new ones out.
            fs::write(&self.dir, "cgroup.kill", "1")?;
            return wait_empty(&[self.dir.as_path()], deadline);
        }
        // Older kernels: freeze so that nothing forks while the list is read, kill, thaw
        // (a frozen v2 task dies of SIGKILL anyway, thawing just makes it prompt).
        let freezer = self.dir.join("cgroup.freeze").exists();
        loop {
            if freezer {
                fs::write(&self.dir, "cgroup.freeze", "1")?;
                let until = Instant::now() + Duration::from_millis(100);
                while Instant::now() < until
                    && fs::read_opt(&self.dir, "cgroup.events")
                        .and_then(|e| fs::keyed(&e, "frozen"))
                        != Some(1)
                {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            kill_pids(&fs::procs_recursive(&self.dir)?);
            if freezer {
                fs::write(&self.dir, "cgroup.freeze", "0")?;
            }
            let round = (Instant::now() + Duration::from_millis(100)).min(deadline);
            match wait_empty(&[self.dir.as_path()], round) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
        }
    }

    pub(crate) fn usage(&self) -> RawUsage {
        let d = &self.dir;
        RawUsage {
            cpu_time: fs::read_opt(d, "cpu.stat")
                .and_then(|s| fs::keyed(&s, "usage_usec"))
                .map(Duration::from_micros),
            peak_memory: match &self.peak {
                Some(f) => read_u64_at(f),
                None => fs::read_u64(d, "memory.peak"),
            },
            oom_kills: fs::read_opt(d, "memory.events").and_then(|s| fs::keyed(&s, "oom_kill")),
            pids_peak: fs::read_u64(d, "pids.peak"),
        }
    }

    /// Whether another run can use the cgroup without a peak of the last run (`last`)
    /// showing in its usage: not when `pids.peak` (which cannot be reset) is above 1, nor
    /// when `memory.peak` cannot be reset (before Linux 6.12).
    pub(crate) fn reusable(&self, last: &RawUsage) -> bool {
        last.pids_peak <= Some(1) && (self.peak.is_some() || last.peak_memory.is_none())
    }

    /// Make the (empty) cgroup ready for another run, or `false` when it cannot be without
    /// carrying a peak of the last run (`last`) over.
    pub(crate) fn reset(
        &mut self,
        cfg: &CgroupConfig,
        last: &RawUsage,
    ) -> Result<bool, CgroupError> {
        if !self.reusable(last) {
            return Ok(false);
        }
        for sub in fs::tree(&self.dir).iter().skip(1).rev() {
            fs::remove_tree(sub)?;
        }
        for c in controllers().iter().filter(|c| (c.wanted)(cfg)) {
            (c.v2)(cfg, &self.dir)?;
        }
        if let Some(f) = &self.peak {
            // Any non-empty write resets the peak read through this descriptor to the current
            // use (memory still charged to the cgroup, such as page cache of the last run).
            f.write_at(b"reset\n", 0)
                .map_err(|source| CgroupError::Write {
                    path: self.dir.join("memory.peak"),
                    value: "reset".into(),
                    source,
                })?;
        }
        Ok(true)
    }

    /// Kill (unless `emptied`: already found empty) and remove the directory and those below.
    pub(crate) fn remove(&self, emptied: bool) -> Result<(), CgroupError> {
        let killed = if emptied { Ok(()) } else { self.kill() };
        fs::unkeep(&self.dir);
        let removed = fs::remove_tree(&self.dir);
        killed.and(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_stays_inside_own_cgroup() {
        let own = Path::new("/sys/fs/cgroup/a");
        assert_eq!(enable_chain(own, own), [PathBuf::from("/sys/fs/cgroup/a")]);
        assert_eq!(
            enable_chain(own, Path::new("/sys/fs/cgroup/a/b/c")),
            [
                PathBuf::from("/sys/fs/cgroup/a"),
                PathBuf::from("/sys/fs/cgroup/a/b"),
                PathBuf::from("/sys/fs/cgroup/a/b/c")
            ]
        );
        assert_eq!(
            enable_chain(own, Path::new("/sys/fs/cgroup/other")),
            [PathBuf::from("/sys/fs/cgroup/other")]
        );
        // A sibling whose name starts like ours is not inside it.
        assert_eq!(
            enable_chain(own, Path::new("/sys/fs/cgroup/ab")),
            [PathBuf::from("/sys/fs/cgroup/ab")]
        );
    }

    #[test]
    fn enable_writes_only_where_missing() {
        let top = fs::TempDir::new();
        top.file("cgroup.controllers", "cpu memory pids\n")
            .file("cgroup.subtree_control", "memory\n");
        let sub = top.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("cgroup.controllers"), "memory\n").unwrap();
        std::fs::write(sub.join("cgroup.subtree_control"), "").unwrap();
        let chain = [top.path().to_path_buf(), sub.clone()];
        // memory: available in sub, enabled only there.
        enable(&chain, "memory").unwrap();
        assert_eq!(top.get("cgroup.subtree_control"), "memory\n");
        assert_eq!(
            std::fs::read_to_string(sub.join("cgroup.subtree_control")).unwrap(),
            "+memory"
        );
        // cpu: enabled at the top (a fixture file does not update sub's cgroup.controllers,
        // so the next step finds it unavailable, as the kernel would without delegation).
        let e = enable(&chain, "cpu").unwrap_err();
        assert_eq!(top.get("cgroup.subtree_control"), "+cpu");
        assert!(
            matches!(
                e,
                CgroupError::Unsupported {
                    controller: "cpu",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("subtree_control"), "{e}");
    }
}
