//! Entering a running sandbox ([`Child::exec`](crate::Child::exec), [`Sandbox::join`],
//! [`Sandbox::join_pid`]) or a pod ([`Sandbox::pod`]): the parent's side.
//!
//! The target is named by a pidfd, opened before anything about it is read, and checked
//! alive after: a pid reused in between cannot be joined by mistake. The namespaces to enter
//! are those of the target that differ from the caller's (the kernel refuses to "enter" the
//! user namespace one is already in); the sandboxed process enters them all with one
//! `setns(pidfd, flags)` after the clone. A joined pid namespace only applies to children, so
//! the process then forks and stays outside as a relay (`src/inside/init.rs`).
//!
//! [`Sandbox::join`]: crate::Sandbox::join
//! [`Sandbox::join_pid`]: crate::Sandbox::join_pid
//! [`Sandbox::pod`]: crate::Sandbox::pod

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;

use crate::error::Error;
use crate::ns::Namespace;

/// The namespace kinds, their `/proc/PID/ns` names and clone flags, in the order the kernel
/// enters them through a pidfd (the user namespace first).
const KINDS: [(Namespace, &str); 8] = [
    (Namespace::User, "user"),
    (Namespace::Mount, "mnt"),
    (Namespace::Pid, "pid"),
    (Namespace::Net, "net"),
    (Namespace::Ipc, "ipc"),
    (Namespace::Uts, "uts"),
    (Namespace::Cgroup, "cgroup"),
    (Namespace::Time, "time"),
];

/// Why a process cannot be joined, kept in the builder until `spawn` reports it.
#[derive(Clone, Debug)]
pub(crate) struct JoinProblem {
    pub pid: u32,
    pub reason: String,
    pub hint: &'static str,
}

impl From<&JoinProblem> for Error {
    fn from(p: &JoinProblem) -> Error {
        Error::Join {
            pid: p.pid,
            reason: p.reason.clone(),
            hint: p.hint,
        }
    }
}

/// A pod's part of a member's setup: where its cgroup goes, and where it registers so that
/// killing the pod reaches it.
#[derive(Debug)]
pub(crate) struct PodLink {
    /// The pod's cgroup directory (one of them on v1), the parent of the member's cgroup.
    pub cgroup_parent: Option<PathBuf>,
    /// Pidfds of the members, killed with the pod.
    pub members: Arc<Mutex<Vec<OwnedFd>>>,
    /// Whether the pod shares its pid namespace with its members.
    pub pid_ns: bool,
}

/// What a spawn joins.
#[derive(Debug)]
pub(crate) struct JoinSpec {
    pub pidfd: OwnedFd,
    /// The namespaces to enter (those the target does not share with the caller).
    pub entered: Vec<Namespace>,
    /// Whether `setgroups(2)` is allowed in the target's user namespace.
    pub setgroups_allowed: bool,
    /// For `exec`: the target's cgroup directories (below the caller's own), to attach to.
    pub cgroup: Vec<PathBuf>,
    /// For a pod member: the pod.
    pub pod: Option<PodLink>,
}

impl JoinSpec {
    /// Whether the target's namespace of this kind is entered.
    pub fn enters(&self, ns: Namespace) -> bool {
        self.entered.contains(&ns)
    }

    /// The `CLONE_NEW*` flags for `setns(pidfd, flags)`.
    pub fn flags(&self) -> libc::c_int {
        self.entered
            .iter()
            .fold(0, |f, ns| f | ns.clone_flag() as libc::c_int)
    }
}

pub(crate) fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open with integer arguments; returns a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn alive(pidfd: &OwnedFd) -> bool {
    crate::spawn::pidfd_kill(pidfd, 0).is_ok()
}

fn ns_id(proc_dir: &Path, name: &str) -> Option<(u64, u64)> {
    let m = std::fs::metadata(proc_dir.join("ns").join(name)).ok()?;
    Some((m.dev(), m.ino()))
}

/// Open `pid` for joining: check it is ours and alive, find the namespaces it does not share
/// with the caller. `which` limits the kinds considered (a pod shares only some).
pub(crate) fn open(
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    which: &[Namespace],
) -> Result<JoinSpec, JoinProblem> {
    let problem = |reason: String, hint: &'static str| JoinProblem {
        pid: pid as u32,
        reason,
        hint,
    };
    let ended = || {
        problem(
            "it has ended".into(),
            "start the sandbox again; a sandbox can be joined only while it runs",
        )
    };
    if pid <= 0 {
        return Err(problem(
            "not a valid pid".into(),
            "give the pid of a running sandbox",
        ));
    }
    let pidfd = match pidfd {
        Some(fd) => fd,
        None => match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(Errno::ESRCH) => {
                return Err(problem(
                    "no such process".into(),
                    "give the pid of a running sandbox (ringfence ps lists them)",
                ));
            }
            Err(e) => {
                return Err(problem(
                    format!("pidfd_open failed: {e}"),
                    "Linux 5.3 or later is needed to join sandboxes",
                ));
            }
        },
    };
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let owner = match std::fs::metadata(&dir) {
        Ok(m) => m.uid(),
        Err(_) => return Err(ended()),
    };
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 && owner != euid {
        return Err(problem(
            format!("it belongs to uid {owner}, not to uid {euid}"),
            "join only sandboxes you started (or run as root)",
        ));
    }
    let own = Path::new("/proc/self");
    let mut entered = Vec::new();
    for (ns, name) in KINDS {
        if !which.contains(&ns) {
            continue;
        }
        let ours = ns_id(own, name);
        let theirs = ns_id(&dir, name);
        if ours.is_none() {
            // This kernel has no namespaces of this kind.
            continue;
        }
        // A process that has exited (a zombie until it is reaped) has no namespaces left.
        let Some(theirs) = theirs else {
            return Err(ended());
        };
        if Some(theirs) != ours {
            entered.push(ns);
        }
    }
    if entered.is_empty() {
        return Err(problem(
            "it shares every namespace with this process: it is not a sandbox".into(),
            "give the pid of a sandbox's first process (ringfence ps lists them)",
        ));
    }
    let setgroups_allowed = std::fs::read_to_string(dir.join("setgroups"))
        .map(|s| s.trim() != "deny")
        .unwrap_or(true);
    let cgroup = sandbox_cgroup_dirs(&dir);
    // Everything above was read from /proc/PID: it was about this process only if it is
    // still alive now (until it is reaped, its pid cannot be reused).
    if !alive(&pidfd) {
        return Err(ended());
    }
    Ok(JoinSpec {
        pidfd,
        entered,
        setgroups_allowed,
        cgroup,
        pod: None,
    })
}

/// The `ringfence-*` cgroup directories of the process behind `proc_dir` that are below this
/// process's own cgroup (never anything else: a joining process is only ever put into one of
/// our own sandboxes' cgroups).
fn sandbox_cgroup_dirs(proc_dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(proc_dir.join("cgroup")) else {
        return Vec::new();
    };
    let info = crate::cgroup::cgroup_info();
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        let (mount, own) = match &info.backend {
            crate::cgroup::CgroupBackend::V2 { mount } if ctls.is_empty() => {
                (mount.clone(), info.own_v2.clone())
            }
            crate::cgroup::CgroupBackend::V1 { hierarchies } => {
                let Some(ctl) = ctls.split(',').find(|c| hierarchies.contains_key(*c)) else {
                    continue;
                };
                (
                    hierarchies[ctl].clone(),
                    info.controller(ctl).map(|c| c.own.clone()),
                )
            }
            _ => continue,
        };
        let dir = mount.join(rel);
        let ours = own.is_some_and(|o| dir.starts_with(&o) && dir != o);
        let named = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("ringfence-"));
        if ours && named && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}
