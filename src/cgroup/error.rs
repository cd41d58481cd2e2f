//! [`CgroupError`]: what failed, on which cgroupfs path, with the errno and a hint.

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// A cgroup could not be configured, created, filled, emptied or removed.
///
/// Every variant that touches the filesystem carries the path and the underlying
/// [`io::Error`] (whose errno [`CgroupError::errno`] returns); [`CgroupError::hint`] says what
/// a user can do about it, and the `Display` text ends with that hint.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The configuration is refused before anything is created.
    #[error("invalid cgroup configuration: {what}")]
    InvalidConfig {
        /// What is wrong, with the offending value and the accepted range.
        what: String,
    },

    /// The cgroup parent given with `cgroup_parent` is not a directory of a cgroup filesystem.
    #[error(
        "{path} is not a cgroup directory; hint: give a directory below a cgroup mount (e.g. /sys/fs/cgroup/...), on cgroup v1 one that exists in every hierarchy the sandbox needs"
    )]
    NotACgroup {
        /// The path that was given (or, on cgroup v1, the hierarchy's directory that is missing).
        path: PathBuf,
    },

    /// This host or this caller cannot provide a controller the configuration needs.
    #[error("{} is not available: {reason}; hint: {hint}", subject(controller))]
    Unsupported {
        /// The controller (`"cpu"`, `"memory"`, `"pids"`, `"cpuset"`, ...) or `"cgroup"` for
        /// cgroups as a whole.
        controller: &'static str,
        /// What was found.
        reason: String,
        /// How to make it available.
        hint: &'static str,
    },

    /// `mkdir` of the sandbox's cgroup directory failed.
    #[error("failed to create cgroup {path}: {source}{}", suffix(self.hint()))]
    Create {
        /// The directory.
        path: PathBuf,
        /// The error from `mkdir`.
        #[source]
        source: io::Error,
    },

    /// Writing a cgroup interface file failed (a limit, a pid into `cgroup.procs`, ...).
    #[error("failed to write {value:?} to {path}: {source}{}", suffix(self.hint()))]
    Write {
        /// The interface file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The error from `open` or `write`.
        #[source]
        source: io::Error,
    },

    /// Reading a cgroup interface file failed.
    #[error("failed to read {path}: {source}{}", suffix(self.hint()))]
    Read {
        /// The interface file.
        path: PathBuf,
        /// The error from `open` or `read`.
        #[source]
        source: io::Error,
    },

    /// Processes were still alive in the cgroup after it was killed and waited for.
    #[error(
        "{count} process(es) still in cgroup {path} after killing it; hint: a process stuck in uninterruptible sleep (state D, e.g. on a hung NFS mount) cannot die until its I/O completes"
    )]
    NotEmptied {
        /// The cgroup directory.
        path: PathBuf,
        /// How many processes were left.
        count: usize,
    },

    /// `rmdir` of the sandbox's cgroup directory failed.
    #[error("failed to remove cgroup {path}: {source}{}", suffix(self.hint()))]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The error from `rmdir`.
        #[source]
        source: io::Error,
    },
}

fn subject(controller: &str) -> String {
    match controller {
        "cgroup" => "a cgroup for the sandbox".to_owned(),
        c => format!("cgroup controller {c}"),
    }
}

fn suffix(hint: Option<&'static str>) -> String {
    hint.map(|h| format!("; hint: {h}")).unwrap_or_default()
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

impl CgroupError {
    /// The errno behind this error, where there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            CgroupError::Create { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Read { source, .. }
            | CgroupError::Remove { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    /// The path this error is about, where there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            CgroupError::NotACgroup { path }
            | CgroupError::Create { path, .. }
            | CgroupError::Write { path, .. }
            | CgroupError::Read { path, .. }
            | CgroupError::NotEmptied { path, .. }
            | CgroupError::Remove { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Something a user can do about this error, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        use Errno::*;
        let errno = self.errno();
        Some(match self {
            CgroupError::Unsupported { hint, .. } => hint,
            CgroupError::Create { .. } => match errno? {
                EACCES | EPERM => CREATE_DENIED_HINT,
                EROFS => {
                    "the cgroup filesystem is mounted read-only (common inside containers): run where cgroups are delegated, or without cgroup limits"
                }
                ENOSPC | EAGAIN => {
                    "too many cgroups: cgroup.max.descendants or cgroup.max.depth of an ancestor was reached"
                }
                ENOENT => "the parent cgroup disappeared",
                _ => return None,
            },
            CgroupError::Write { path, .. } => {
                let file = file_name(path);
                match (file, errno?) {
                    ("cgroup.procs" | "tasks", EACCES | EPERM) => {
                        "moving a process needs write access to cgroup.procs of the common ancestor of its old and new cgroup: run as root or from a delegated cgroup"
                    }
                    ("cgroup.procs" | "tasks", ESRCH) => {
                        "the process exited before it could be moved"
                    }
                    ("cgroup.procs", EBUSY | EOPNOTSUPP) => {
                        "cgroup v2 does not allow processes in a cgroup whose controllers are enabled for children (no-internal-process rule)"
                    }
                    ("cgroup.subtree_control", EBUSY) => {
                        "this cgroup has processes of its own, so it cannot enable controllers for its children (cgroup v2 no-internal-process rule): run from a leaf below a delegated cgroup, or choose an empty cgroup as cgroup_parent"
                    }
                    ("cgroup.subtree_control", ENOENT | EINVAL) => {
                        "the controller is not available here: enable it in the ancestors' cgroup.subtree_control"
                    }
                    ("cpu.max" | "cpu.cfs_quota_us" | "cpu.cfs_period_us", EINVAL) => {
                        "the CPU quota is out of range for the kernel (period 1 ms..1 s, quota >= 1 ms) or above an ancestor's quota"
                    }
                    ("cpuset.cpus" | "cpuset.mems", EINVAL) => {
                        "the CPU list names a CPU that is offline or not in the parent cgroup's cpuset"
                    }
                    (
                        "memory.limit_in_bytes" | "memory.memsw.limit_in_bytes" | "memory.max",
                        EBUSY,
                    ) => "the memory limit is below what the cgroup already uses",
                    ("memory.memsw.limit_in_bytes", EINVAL) => {
                        "memory+swap must not be below the memory limit"
                    }
                    (_, ENOENT) => {
                        "this kernel does not have the interface file: the controller is missing or not enabled for this cgroup"
                    }
                    (_, EACCES | EPERM) => CREATE_DENIED_HINT,
                    _ => return None,
                }
            }
            CgroupError::Read { .. } => match errno? {
                ENOENT => {
                    "this kernel does not have the interface file: the controller is missing or not enabled for this cgroup"
                }
                _ => return None,
            },
            CgroupError::Remove { .. } => match errno? {
                EBUSY => "processes are still in the cgroup, or it has child cgroups",
                EACCES | EPERM => CREATE_DENIED_HINT,
                _ => return None,
            },
            CgroupError::InvalidConfig { .. }
            | CgroupError::NotACgroup { .. }
            | CgroupError::NotEmptied { .. } => return None,
        })
    }
}

/// The hint for a cgroup directory this caller may not create or change.
pub(crate) const CREATE_DENIED_HINT: &str = "this user may not create cgroups here: run as root, or in a delegated cgroup (systemd-run --user --scope -p Delegate=yes <program>) and give a cgroup below it with cgroup_parent";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_error_names_path_value_errno_and_hint() {
        let e = CgroupError::Write {
            path: PathBuf::from("/sys/fs/cgroup/x/cgroup.subtree_control"),
            value: "+cpu".into(),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        };
        let msg = e.to_string();
        assert!(
            msg.contains("/sys/fs/cgroup/x/cgroup.subtree_control"),
            "{msg}"
        );
        assert!(msg.contains("\"+cpu\""), "{msg}");
        assert!(msg.contains("busy"), "{msg}");
        assert!(msg.contains("hint: this cgroup has processes"), "{msg}");
        assert_eq!(e.errno(), Some(Errno::EBUSY));
        assert_eq!(
            e.path(),
            Some(Path::new("/sys/fs/cgroup/x/cgroup.subtree_control"))
        );
    }

    #[test]
    fn error_shape_is_pinned() {
        // Matching on the variants is part of the API: this fails to compile if they change.
        let e = CgroupError::Unsupported {
            controller: "pids",
            reason: "no hierarchy".into(),
            hint: "mount it",
        };
        assert!(matches!(
            e,
            CgroupError::Unsupported {
                controller: "pids",
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "cgroup controller pids is not available: no hierarchy; hint: mount it"
        );
        let e = CgroupError::Create {
            path: "/x".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(e.to_string().contains("hint: this user may not create"));
    }
}
