//! cgroupfs file access with path-carrying errors (the shape of youki's
//! `libcgroups/src/common.rs` `write_cgroup_file`).
//!
//! Interface files are opened without `O_CREAT`: a misspelt or missing file is an error
//! (`ENOENT`), never a regular file created by accident in a fixture or on a non-cgroup path.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::CgroupError;

/// Write `value` to the interface file `dir/file` in one `write(2)`, as the kernel wants.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    // O_TRUNC as runc does: cgroupfs ignores it, a fixture file needs it.
    let res = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| match f.write(value.as_bytes())? {
            n if n == value.len() => Ok(()),
            _ => Err(io::Error::from(io::ErrorKind::WriteZero)),
        });
    res.map_err(|source| CgroupError::Write {
        path,
        value: value.to_owned(),
        source,
    })
}

/// The content of `dir/file`: `open`, `read` until end of file, `close` (`read_to_string`
/// would add a `statx` and an `lseek` to each of the reads a spawn makes).
pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    let read_all = |mut f: fs::File| -> io::Result<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match f.read(&mut buf)? {
                0 => break,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    fs::File::open(&path)
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
/// directory's link count (2 + subdirectories), so one `statx` spares listing a leaf.
fn may_have_subdirs(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir).map_or(true, |m| m.nlink() != 2)
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
