//! cgroupfs file access with path-carrying errors (the shape of youki's
//! `libcgroups/src/common.rs` `write_cgroup_file`).
//!
//! Interface files are opened without `O_CREAT`: a misspelt or missing file is an error
//! (`ENOENT`), never a regular file created by accident in a fixture or on a non-cgroup path.
//!
//! **Kept files.** The directories of a cgroup that is reused run after run (a pooled one, see
//! `pool.rs`) are registered with [`keep_open`]: the interface files read and written there
//! stay open, and each later access is one `pread`/`pwrite` (or `fstat` for the directory)
//! instead of a path walk, an open and a close (about 1 µs against 6–10 µs on cgroup v1, for
//! some twenty accesses per run). Process lists (`cgroup.procs`, `tasks`) are still opened for each
//! read: on v1 an open file keeps serving the list it read first. The descriptors are shared
//! by every user of the path, kept only on cgroupfs, and limited process-wide to an eighth of
//! the soft `RLIMIT_NOFILE` (beyond it, files are opened per access as before); they are
//! closed when their directory is removed ([`remove_tree`]) or unregistered ([`unkeep`]).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::CgroupError;

/// How a file is opened: for reading, for writing, or (a directory) as a path only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read = 0,
    Write = 1,
    Dir = 2,
}

/// The registered directories and their open files.
#[derive(Default)]
struct Kept {
    /// The registered directories.
    dirs: Vec<PathBuf>,
    /// Path → its descriptors, by [`Access`].
    files: HashMap<PathBuf, [Option<Arc<File>>; 3]>,
    /// Descriptors in `files`.
    count: usize,
}

fn kept() -> std::sync::MutexGuard<'static, Kept> {
    static KEPT: OnceLock<Mutex<Kept>> = OnceLock::new();
    KEPT.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// At most this many kept descriptors in this process: an eighth of the soft
/// `RLIMIT_NOFILE` when first needed (128 of the usual 1024), at most 4096.
fn budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills the struct on this stack.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return 0;
        }
        (lim.rlim_cur / 8).min(4096) as usize
    })
}

/// Keep the interface files of cgroup directory `dir` open once they are used.
pub(crate) fn keep_open(dir: &Path) {
    let mut k = kept();
    if !k.dirs.iter().any(|d| d == dir) {
        k.dirs.push(dir.to_path_buf());
    }
}

/// Close the kept files of `dir` and below, and stop keeping them.
pub(crate) fn unkeep(dir: &Path) {
    let mut k = kept();
    k.dirs.retain(|d| !d.starts_with(dir));
    close_kept(&mut k, dir);
}

/// Close the kept files of `dir` and below (they stay registered).
fn close_kept(k: &mut Kept, dir: &Path) {
    let mut closed = 0;
    k.files.retain(|p, slots| {
        let keep = !p.starts_with(dir);
        if !keep {
            closed += slots.iter().flatten().count();
        }
        keep
    });
    k.count -= closed;
}

/// The descriptors kept open in this process for the files of `dir` and below.
#[cfg(test)]
pub(crate) fn kept_under(dir: &Path) -> usize {
    kept()
        .files
        .iter()
        .filter(|(p, _)| p.starts_with(dir))
        .map(|(_, s)| s.iter().flatten().count())
        .sum()
}

/// Whether `f` is on a cgroup filesystem (v1 or v2): only there is a kept descriptor read and
/// written at offset 0 the same as a file opened anew.
fn on_cgroupfs(f: &File) -> bool {
    use nix::sys::statfs::{CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, fstatfs};
    fstatfs(f).is_ok_and(|st| {
        let t = st.filesystem_type();
        t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
    })
}

fn open(path: &Path, access: Access) -> io::Result<File> {
    let mut o = OpenOptions::new();
    match access {
        Access::Read => o.read(true),
        // O_TRUNC as runc does: cgroupfs ignores it, a fixture file needs it.
        Access::Write => o.write(true).truncate(true),
        Access::Dir => o.read(true).custom_flags(libc::O_PATH | libc::O_DIRECTORY),
    };
    o.open(path)
}

/// `path` opened for `access`: the kept descriptor, or one opened now (and kept, when its
/// directory is registered, it is on cgroupfs and the budget allows).
fn handle(path: &Path, access: Access) -> io::Result<Arc<File>> {
    let dir = match access {
        Access::Dir => Some(path),
        _ => path.parent(),
    };
    // A process list read through a descriptor kept open would be stale on v1: the kernel
    // builds the list once per open file and serves that copy until it has gone unused for a
    // second, so an emptied cgroup would look populated, and a populated one empty.
    let listing = access == Access::Read
        && path
            .file_name()
            .is_some_and(|n| n == "cgroup.procs" || n == "tasks" || n == "cgroup.threads");
    {
        let k = kept();
        if let Some(f) = k.files.get(path).and_then(|s| s[access as usize].as_ref()) {
            return Ok(f.clone());
        }
        let registered = dir.is_some_and(|d| k.dirs.iter().any(|r| r == d));
        if listing || !registered || k.count >= budget() {
            drop(k);
            return open(path, access).map(Arc::new);
        }
    }
    let f = Arc::new(open(path, access)?);
    if on_cgroupfs(&f) {
        let mut k = kept();
        let registered = dir.is_some_and(|d| k.dirs.iter().any(|r| r == d));
        if registered && k.count < budget() {
            let slot = &mut k.files.entry(path.to_path_buf()).or_default()[access as usize];
            if slot.is_none() {
                *slot = Some(f.clone());
                k.count += 1;
            }
        }
    }
    Ok(f)
}

/// Write `value` to the interface file `dir/file` in one `write(2)`, as the kernel wants.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    let res = handle(&path, Access::Write).and_then(|f| match f.write_at(value.as_bytes(), 0)? {
        n if n == value.len() => Ok(()),
        _ => Err(io::Error::from(io::ErrorKind::WriteZero)),
    });
    res.map_err(|source| CgroupError::Write {
        path,
        value: value.to_owned(),
        source,
    })
}

/// `dir/file` opened for writing, as a descriptor of its own (close-on-exec): for a process
/// that writes to it after the clone (the self-attach files).
pub(crate) fn open_write(dir: &Path, file: &str) -> Result<std::os::fd::OwnedFd, CgroupError> {
    let path = dir.join(file);
    handle(&path, Access::Write)
        .and_then(|f| f.as_ref().try_clone())
        .map(std::os::fd::OwnedFd::from)
        .map_err(|source| CgroupError::Write {
            path,
            value: "0".into(),
            source,
        })
}

/// The content of `dir/file`: `pread` from offset 0 until end of file (of a kept descriptor,
/// or of one opened for this read).
pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    let read_all = |f: Arc<File>| -> io::Result<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match f.read_at(&mut buf, out.len() as u64)? {
                0 => break,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    handle(&path, Access::Read)
        .and_then(read_all)
        .map_err(|source| CgroupError::Read { path, source })
}

/// The content of `dir/file`, or `None` when it cannot be read (an optional file).
pub(crate) fn read_opt(dir: &Path, file: &str) -> Option<String> {
    read(dir, file).ok()
}

/// A single number in `dir/file` (`None` if missing or unparsable; `max` is `None` too).
pub(crate) fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read_opt(dir, file)?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`key value` lines: `cpu.stat`, `memory.events`,
/// `memory.oom_control`, `pids.events`, `cgroup.events`).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// The pids listed in `dir/cgroup.procs`.
pub(crate) fn procs(dir: &Path) -> Result<Vec<libc::pid_t>, CgroupError> {
    Ok(read(dir, "cgroup.procs")?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Whether `dir` may have subdirectories: cgroupfs (like most filesystems) counts them in a
/// directory's link count (2 + subdirectories), so one `fstat` spares listing a leaf.
fn may_have_subdirs(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    handle(dir, Access::Dir)
        .and_then(|d| d.metadata())
        .map_or(true, |m| m.nlink() != 2)
}

/// `dir` and every cgroup below it, parents before children.
pub(crate) fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if !may_have_subdirs(dir) {
        return out;
    }
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = fs::read_dir(&out[i]) {
            let mut subs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            subs.sort();
            out.extend(subs);
        }
        i += 1;
    }
    out
}

/// The pids in `dir` and in every cgroup below it.
pub(crate) fn procs_recursive(dir: &Path) -> Result<Vec<libc::pid_t>, CgroupError> {
    let mut all = Vec::new();
    for d in tree(dir) {
        match procs(&d) {
            Ok(p) => all.extend(p),
            // A child cgroup removed meanwhile by the sandbox itself.
            Err(_) if d != dir => {}
            Err(e) => return Err(e),
        }
    }
    Ok(all)
}

/// Remove `dir` and every cgroup below it (children first), retrying briefly while the kernel
/// still counts exiting processes (`EBUSY`). A missing directory is not an error.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let mut dirs = tree(dir);
    // After the walk, which may have kept the directory's descriptor.
    close_kept(&mut kept(), dir);
    dirs.reverse();
    for d in dirs {
        rmdir_retry(&d)?;
    }
    Ok(())
}

fn rmdir_retry(dir: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut pause = Duration::from_micros(100);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// A directory under the system's temporary directory, removed with its content on drop: the
/// fixture for controller tests (std only, no `tempfile`).
#[cfg(test)]
pub(crate) struct TempDir(PathBuf);

#[cfg(test)]
impl TempDir {
    pub(crate) fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "ringfence-fixture-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Create empty interface files (as cgroupfs would have them).
    pub(crate) fn files(&self, names: &[&str]) -> &TempDir {
        for n in names {
            fs::write(self.0.join(n), "").unwrap();
        }
        self
    }

    /// Create one file with content.
    pub(crate) fn file(&self, name: &str, content: &str) -> &TempDir {
        fs::write(self.0.join(name), content).unwrap();
        self
    }

    /// The content of a file.
    pub(crate) fn get(&self, name: &str) -> String {
        fs::read_to_string(self.0.join(name)).unwrap()
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_does_not_create_files() {
        let t = TempDir::new();
        t.files(&["pids.max"]);
        write(t.path(), "pids.max", "32").unwrap();
        assert_eq!(t.get("pids.max"), "32");
        let e = write(t.path(), "pids.maxx", "32").unwrap_err();
        assert!(matches!(e, CgroupError::Write { .. }));
        assert_eq!(e.errno(), Some(nix::errno::Errno::ENOENT));
        assert!(!t.path().join("pids.maxx").exists());
    }

    #[test]
    fn only_cgroupfs_files_are_kept() {
        // A registered directory that is no cgroup (a fixture): every access opens the file
        // anew, so a shorter value written after a longer one replaces it.
        let t = TempDir::new();
        t.files(&["cpu.max"]);
        keep_open(t.path());
        write(t.path(), "cpu.max", "100000 100000").unwrap();
        write(t.path(), "cpu.max", "max").unwrap();
        assert_eq!(read(t.path(), "cpu.max").unwrap(), "max");
        assert!(!may_have_subdirs(t.path()));
        assert_eq!(kept_under(t.path()), 0);
        unkeep(t.path());
        assert!(!kept().dirs.iter().any(|d| d == t.path()));
    }

    #[test]
    fn keyed_files() {
        let text = "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n";
        assert_eq!(keyed(text, "usage_usec"), Some(1234));
        assert_eq!(keyed(text, "usage"), None);
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(oom, "oom_kill"), Some(3));
    }

    #[test]
    fn tree_and_remove_tree() {
        let t = TempDir::new();
        let a = t.path().join("a");
        fs::create_dir_all(a.join("b/c")).unwrap();
        fs::create_dir_all(a.join("d")).unwrap();
        let tr = tree(&a);
        assert_eq!(tr[0], a);
        assert_eq!(tr.len(), 4);
        remove_tree(&a).unwrap();
        assert!(!a.exists());
        remove_tree(&a).unwrap();
    }
}
