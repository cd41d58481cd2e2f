//! Errors: one enum for everything `spawn` and `wait` can report, and the setup [`Stage`] a
//! failure inside the sandbox happened at.

use std::fmt;
use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::probe::Layer;

/// The step of the sandbox setup that failed, as reported by the sandboxed process to the parent.
///
/// The process that runs between `clone` and `execve` cannot allocate or format messages, so a
/// failure travels to the parent as a pair `(stage, errno)` and becomes
/// [`Error::Setup`]. The numbering is part of that private wire format only; match on the
/// variants, not the numbers.
#[repr(u32)]
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Creating the sandbox's first process (`clone3`/`clone`) in the parent.
    Clone = 1,
    /// Writing `/proc/PID/uid_map` (done by the parent).
    UidMap,
    /// Writing `/proc/PID/setgroups` (done by the parent).
    SetgroupsDeny,
    /// Writing `/proc/PID/gid_map` (done by the parent).
    GidMap,
    /// Waiting for the parent to finish its part of the setup.
    Release,
    /// Moving itself into its cgroup (writing `0` to each cgroup v1 hierarchy's `tasks`), or
    /// into the cgroup of the running sandbox it joins.
    CgroupAttach,
    /// `prctl(PR_SET_PDEATHSIG)`.
    ParentDeathSignal,
    /// Resetting signal dispositions and the signal mask.
    Signals,
    /// `setsid()`.
    Setsid,
    /// `setns()` into the network namespace given with `Net::Join`.
    JoinNetNs,
    /// `setns()` through a pidfd into the namespaces of a running sandbox (`Child::exec`) or
    /// of a pod's holder (`Sandbox::pod`).
    JoinNs,
    /// `unshare()` of the namespaces a pod member gets of its own, after joining the pod's.
    Unshare,
    /// Forking the process that enters a joined pid (or time) namespace; the forking process
    /// stays outside as a relay of signals and of the exit status.
    RelayFork,
    /// Making every mount of the new mount namespace private (no propagation to the host).
    MountPropagation,
    /// Building the new root (reported as [`Error::Mount`], naming the step).
    Mount,
    /// Creating the time namespace and writing its clock offsets.
    TimeNs,
    /// `sethostname()` in the new UTS namespace.
    Hostname,
    /// Bringing the loopback interface up in the new network namespace.
    Loopback,
    /// Forking the payload from the sandbox's init process (pid 1 of the new pid namespace).
    InitFork,
    /// Installing the signal handling of the init process.
    InitSignals,
    /// Connecting stdin, stdout and stderr.
    Stdio,
    /// Placing the file descriptors passed with `Command::pass_fd`.
    PassFds,
    /// `setrlimit()`.
    Rlimit,
    /// `umask()`.
    Umask,
    /// `setgroups()` for the payload.
    Setgroups,
    /// `setresgid()` for the payload.
    Setgid,
    /// `setresuid()` for the payload.
    Setuid,
    /// Dropping capabilities (bounding set, ambient set, `capset`).
    Capabilities,
    /// `chdir()` into the working directory.
    Chdir,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs,
    /// `landlock_restrict_self()`.
    Landlock,
    /// Closing every file descriptor that was not passed explicitly.
    CloseFds,
    /// Installing the seccomp filters (the last step before `execve`).
    Seccomp,
    /// `execve()` of the program.
    Exec,
}

impl Stage {
    /// Every stage, in the order the setup runs them.
    pub const ALL: [Stage; 34] = [
        Stage::Clone,
        Stage::UidMap,
        Stage::SetgroupsDeny,
        Stage::GidMap,
        Stage::Release,
        Stage::CgroupAttach,
        Stage::ParentDeathSignal,
        Stage::Signals,
        Stage::Setsid,
        Stage::JoinNetNs,
        Stage::JoinNs,
        Stage::Unshare,
        Stage::RelayFork,
        Stage::MountPropagation,
        Stage::Mount,
        Stage::TimeNs,
        Stage::Hostname,
        Stage::Loopback,
        Stage::InitFork,
        Stage::InitSignals,
        Stage::Stdio,
        Stage::PassFds,
        Stage::Rlimit,
        Stage::Umask,
        Stage::Setgroups,
        Stage::Setgid,
        Stage::Setuid,
        Stage::Capabilities,
        Stage::Chdir,
        Stage::NoNewPrivs,
        Stage::Landlock,
        Stage::CloseFds,
        Stage::Seccomp,
        Stage::Exec,
    ];

    /// A short name of the stage, e.g. `"exec"` or `"uid_map"`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Clone => "clone",
            Stage::UidMap => "uid_map",
            Stage::SetgroupsDeny => "setgroups_deny",
            Stage::GidMap => "gid_map",
            Stage::Release => "release",
            Stage::CgroupAttach => "cgroup_attach",
            Stage::ParentDeathSignal => "parent_death_signal",
            Stage::Signals => "signals",
            Stage::Setsid => "setsid",
            Stage::JoinNetNs => "join_netns",
            Stage::JoinNs => "join_ns",
            Stage::Unshare => "unshare",
            Stage::RelayFork => "relay_fork",
            Stage::MountPropagation => "mount_propagation",
            Stage::Mount => "mount",
            Stage::TimeNs => "time_ns",
            Stage::Hostname => "hostname",
            Stage::Loopback => "loopback",
            Stage::InitFork => "init_fork",
            Stage::InitSignals => "init_signals",
            Stage::Stdio => "stdio",
            Stage::PassFds => "pass_fds",
            Stage::Rlimit => "rlimit",
            Stage::Umask => "umask",
            Stage::Setgroups => "setgroups",
            Stage::Setgid => "setgid",
            Stage::Setuid => "setuid",
            Stage::Capabilities => "capabilities",
            Stage::Chdir => "chdir",
            Stage::NoNewPrivs => "no_new_privs",
            Stage::Landlock => "landlock",
            Stage::Seccomp => "seccomp",
            Stage::CloseFds => "close_fds",
            Stage::Exec => "exec",
        }
    }

    pub(crate) fn from_u32(n: u32) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| *s as u32 == n)
    }

    /// What a user can do about `errno` at this stage, when there is something to say.
    pub fn hint(self, errno: Errno) -> Option<&'static str> {
        use Errno::*;
        Some(match (self, errno) {
            (Stage::Exec, ENOENT) => {
                "the program (or its ELF interpreter) does not exist in the sandbox's view of the filesystem"
            }
            (Stage::Exec, EACCES) => {
                "the program is not executable, or a directory on its path is not searchable, or its filesystem is mounted noexec"
            }
            (Stage::Exec, ENOEXEC) => "the file is not in a format this kernel can execute",
            (Stage::Exec, ETXTBSY) => "the program is open for writing by another process",
            (Stage::Chdir, ENOENT) => "the working directory does not exist inside the sandbox",
            (Stage::Chdir, EACCES) => {
                "the working directory is not accessible to the sandboxed user (the change of directory happens after privileges are dropped)"
            }
            (Stage::UidMap | Stage::GidMap | Stage::SetgroupsDeny, EPERM) => {
                "without root only your own uid and gid can be mapped into a user namespace (one line each, count 1)"
            }
            (Stage::JoinNetNs, EPERM) => {
                "joining a network namespace needs CAP_SYS_ADMIN over it: run as root, or join the user namespace that owns it"
            }
            (Stage::JoinNetNs, EINVAL) => "the file descriptor is not a network namespace",
            (Stage::JoinNs, ESRCH) => {
                "the sandbox to join has ended (its first process exited while joining)"
            }
            (Stage::JoinNs, EPERM) => {
                "joining a sandbox needs privileges over its namespaces: join as the user who started it (or as root)"
            }
            (Stage::JoinNs, EINVAL) => {
                "this kernel cannot join namespaces through a pidfd (Linux 5.8 or later is needed)"
            }
            (Stage::Setuid | Stage::Setgid | Stage::Setgroups, EINVAL) => {
                "the uid or gid is not mapped in the sandbox's user namespace"
            }
            (Stage::Setuid | Stage::Setgid | Stage::Setgroups, EPERM) => {
                "changing uid/gid needs privileges: run as root or use a user namespace"
            }
            (Stage::Capabilities, EPERM) => {
                "a capability to keep is not held by the caller; without root, capabilities can only be kept inside a user namespace"
            }
            (Stage::Rlimit, EPERM) => "raising a hard resource limit needs CAP_SYS_RESOURCE",
            (Stage::Rlimit, EINVAL) => "the soft limit is above the hard limit",
            (Stage::Clone, EPERM | ENOSPC | EUSERS) => {
                "creating namespaces was refused: run as root, or allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, kernel.apparmor_restrict_unprivileged_userns=0)"
            }
            (Stage::Clone, EAGAIN) => "the process limit (RLIMIT_NPROC or pids cgroup) was reached",
            (Stage::Clone, ENOMEM) => "the kernel is out of memory or the pid namespace is dying",
            (Stage::TimeNs, EPERM) => {
                "time namespaces need CAP_SYS_ADMIN: run as root or in a user namespace"
            }
            (Stage::TimeNs, ERANGE | EINVAL) => {
                "the clock offset is out of the range the kernel accepts"
            }
            (Stage::Hostname, EPERM) => "setting the hostname needs a new UTS namespace",
            (Stage::Seccomp, EINVAL) => {
                "this kernel lacks seccomp filters (CONFIG_SECCOMP_FILTER) or an action of the profile"
            }
            (Stage::Landlock, EPERM) => {
                "Landlock needs no_new_privs (set by ringfence) or CAP_SYS_ADMIN"
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a [`Sandbox`](crate::Sandbox) or [`Command`](crate::Command) was refused before anything
/// was started.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The program name is empty.
    EmptyProgram,
    /// A string that must become a C string contains a NUL byte.
    InteriorNul {
        /// Which value: "program", "argument", "environment variable", ...
        what: &'static str,
    },
    /// An environment variable name is empty or contains `=`.
    InvalidEnvName {
        /// The offending name, lossily converted.
        name: String,
    },
    /// The hostname is longer than 64 bytes or empty.
    InvalidHostname {
        /// The length in bytes that was given.
        len: usize,
    },
    /// The file descriptor given to `Net::Join` is not an open network namespace.
    NotANetNs {
        /// What checking the descriptor found.
        source: Errno,
    },
    /// Two options that cannot be used together.
    Conflict {
        /// A sentence saying which options and why.
        what: &'static str,
    },
    /// A uid/gid map entry is invalid (empty, overlapping, or too many lines).
    InvalidIdMap {
        /// What is wrong with it.
        what: &'static str,
    },
    /// A soft resource limit above its hard limit.
    InvalidRlimit {
        /// The resource's name, e.g. `"nofile"`.
        resource: &'static str,
    },
    /// A file descriptor to pass into the sandbox is invalid or targets stdio.
    InvalidPassFd {
        /// The target descriptor number inside the sandbox.
        target: i32,
    },
    /// A path of the filesystem configuration is not usable.
    InvalidPath {
        /// The path as given.
        path: std::path::PathBuf,
        /// What is wrong with it: "must be absolute", "must not contain `..`", ...
        why: &'static str,
        /// Which option it was given to: "bind source", "tmpfs destination", ...
        what: &'static str,
    },
    /// A bind source (or root, or overlay layer) cannot be opened.
    SourceUnavailable {
        /// The path as given.
        path: std::path::PathBuf,
        /// Why it cannot be opened.
        errno: Errno,
    },
    /// A size of zero or out of range.
    InvalidSize {
        /// Which size.
        what: &'static str,
    },
    /// The overlay layers are not usable together.
    Overlay {
        /// What is wrong.
        what: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::EmptyProgram => f.write_str("the program name is empty"),
            ConfigError::InteriorNul { what } => write!(f, "a NUL byte was found in the {what}"),
            ConfigError::InvalidEnvName { name } => {
                write!(
                    f,
                    "invalid environment variable name {name:?} (empty or contains '=')"
                )
            }
            ConfigError::InvalidHostname { len } => {
                write!(
                    f,
                    "a hostname must be 1 to 64 bytes long, this one has {len}"
                )
            }
            ConfigError::NotANetNs { source } => write!(
                f,
                "not an open network namespace ({source}); open /proc/PID/ns/net or a bind-mounted namespace file such as /run/netns/NAME"
            ),
            ConfigError::Conflict { what } => f.write_str(what),
            ConfigError::InvalidIdMap { what } => write!(f, "invalid uid/gid map: {what}"),
            ConfigError::InvalidRlimit { resource } => {
                write!(
                    f,
                    "the soft limit of rlimit {resource} is above its hard limit"
                )
            }
            ConfigError::InvalidPath { path, why, what } => {
                write!(f, "the {what} {} {why}", path.display())
            }
            ConfigError::SourceUnavailable { path, errno } => {
                write!(f, "cannot open {}: {errno}", path.display())
            }
            ConfigError::InvalidSize { what } => f.write_str(what),
            ConfigError::Overlay { what } => write!(f, "overlay layers: {what}"),
            ConfigError::InvalidPassFd { target } => write!(
                f,
                "cannot pass a file descriptor as number {target}: targets must be >= 3 (use stdin/stdout/stderr for 0-2) and distinct"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Everything that can go wrong when starting, waiting for, or stopping a sandbox.
///
/// Every variant says what failed; setup failures name the [`Stage`] and the errno, and
/// [`Error::hint`] gives something a user can act on. When `spawn` returns an error, no process
/// of the sandbox is left running and no file descriptor is leaked.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration was refused before anything was started.
    #[error("invalid sandbox configuration: {0}")]
    Config(ConfigError),

    /// The program has no `/` and was not found in `PATH`.
    #[error("program {program:?} not found in PATH ({path})")]
    ProgramNotFound {
        /// The program as given.
        program: PathBuf,
        /// The search path that was used.
        path: String,
    },

    /// A layer that was marked [`Compat::Required`](crate::Compat::Required) is not available
    /// on this host.
    #[error("{layer} is required but not available: {reason}; {hint}")]
    Unsupported {
        /// The layer that could not be enforced.
        layer: Layer,
        /// Why this host cannot provide it.
        reason: String,
        /// How to make it available.
        hint: &'static str,
    },

    /// A step of the sandbox setup failed (in the parent or in the sandboxed process).
    #[error("sandbox setup failed at stage {stage}: {errno}{}", hint_suffix(*stage, *errno))]
    Setup {
        /// Which step failed.
        stage: Stage,
        /// The error the kernel returned.
        errno: Errno,
    },

    /// A running sandbox (or pod) cannot be joined: it has ended, it is not ours, it is no
    /// sandbox at all, ...
    #[error("cannot join process {pid}: {reason}; {hint}")]
    Join {
        /// The pid that was to be joined.
        pid: u32,
        /// What is wrong with it.
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },

    /// The seccomp profile is invalid or cannot be compiled.
    #[error("invalid seccomp profile: {0}")]
    Profile(crate::seccomp::ProfileError),

    /// The sandbox's cgroup cannot be created, limited, joined or emptied.
    #[error("cgroup: {0}")]
    Cgroup(crate::cgroup::CgroupError),

    /// The Landlock rules cannot be prepared.
    #[error("Landlock: {0}")]
    Landlock(crate::landlock::LandlockError),

    /// A step of building the sandbox's filesystem failed.
    #[error("sandbox setup failed at {step}: {errno}{}", mount_hint(*errno))]
    Mount {
        /// The step, e.g. `bind ro /usr -> /usr` or `proc /proc`.
        step: String,
        /// The error the kernel returned.
        errno: Errno,
    },

    /// An operation of the parent on the sandbox's resources failed (pipes, waiting, signals).
    #[error("failed to {op}: {error}")]
    Io {
        /// What the parent was doing, e.g. "create a pipe".
        op: &'static str,
        /// The underlying error (part of the message, so not also returned as `source()`).
        error: io::Error,
    },

    /// The sandboxed process reported something the protocol does not allow (a bug).
    #[error("protocol error between ringfence and its sandboxed process: {0}")]
    Protocol(&'static str),

    /// A warm sandbox or one of its runs failed ([`Warm`](crate::Warm)).
    #[error("warm sandbox: {0}")]
    Warm(crate::warm::WarmError),

    /// The user-mode network of [`Net::User`](crate::Net::User) could not be set up.
    #[error("user-mode network: {0}")]
    UserNet(crate::usernet::UserNetError),
}

fn hint_suffix(stage: Stage, errno: Errno) -> String {
    match stage.hint(errno) {
        Some(h) => format!("; hint: {h}"),
        None => String::new(),
    }
}

fn mount_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EPERM => {
            "; hint: mounting needs CAP_SYS_ADMIN over the mount namespace (root, or a user namespace); proc also needs a pid namespace and an unobstructed /proc on the host"
        }
        Errno::ENOSYS => {
            "; hint: building a root needs Linux >= 5.12 (the descriptor-based mount API)"
        }
        Errno::ENOENT => "; hint: a path needed by this step does not exist",
        Errno::ELOOP => "; hint: the path runs into a symlink loop inside the new root",
        Errno::EINVAL => "; hint: the kernel refused the mount options or the target",
        _ => "",
    }
}

impl Error {
    pub(crate) fn setup(stage: Stage, errno: Errno) -> Error {
        Error::Setup { stage, errno }
    }

    pub(crate) fn io(op: &'static str, error: impl Into<io::Error>) -> Error {
        Error::Io {
            op,
            error: error.into(),
        }
    }

    /// The setup stage that failed, for [`Error::Setup`].
    pub fn stage(&self) -> Option<Stage> {
        match self {
            Error::Setup { stage, .. } => Some(*stage),
            Error::Mount { .. } => Some(Stage::Mount),
            _ => None,
        }
    }

    /// The errno behind this error, where there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Setup { errno, .. } | Error::Mount { errno, .. } => Some(*errno),
            Error::Io { error, .. } => error.raw_os_error().map(Errno::from_raw),
            Error::Config(ConfigError::NotANetNs { source }) => Some(*source),
            _ => None,
        }
    }

    /// Something a user can do about this error, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Setup { stage, errno, .. } => stage.hint(*errno),
            Error::Unsupported { hint, .. } => Some(hint),
            Error::ProgramNotFound { .. } => {
                Some("give an absolute path, or set PATH in the command's environment")
            }
            Error::Cgroup(e) => e.hint(),
            Error::Landlock(e) => e.hint(),
            Error::Warm(e) => e.hint(),
            _ => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

impl From<crate::usernet::UserNetError> for Error {
    fn from(e: crate::usernet::UserNetError) -> Error {
        Error::UserNet(e)
    }
}

impl From<crate::warm::WarmError> for Error {
    fn from(e: crate::warm::WarmError) -> Error {
        Error::Warm(e)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_numbers_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_u32(s as u32), Some(s));
        }
        assert_eq!(Stage::from_u32(0), None);
        assert_eq!(Stage::from_u32(10_000), None);
    }

    #[test]
    fn setup_error_names_stage_errno_and_hint() {
        let e = Error::setup(Stage::Exec, Errno::ENOENT);
        let msg = e.to_string();
        assert!(msg.contains("stage exec"), "{msg}");
        assert!(msg.contains("ENOENT"), "{msg}");
        assert!(msg.contains("hint: the program"), "{msg}");
        assert_eq!(e.stage(), Some(Stage::Exec));
        assert_eq!(e.errno(), Some(Errno::ENOENT));
    }

    #[test]
    fn error_shape_is_pinned() {
        // Matching on nested variants is part of the API: this fails to compile if it changes.
        let e = Error::from(ConfigError::InteriorNul { what: "argument" });
        assert!(matches!(
            e,
            Error::Config(ConfigError::InteriorNul { what: "argument" })
        ));
        assert_eq!(
            e.to_string(),
            "invalid sandbox configuration: a NUL byte was found in the argument"
        );
        // The message says it all; it is not repeated by a source chain.
        assert!(std::error::Error::source(&e).is_none());
    }
}
