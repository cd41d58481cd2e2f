//! Resource limits (`setrlimit(2)`) for the sandboxed program.

use std::fmt;

/// A resource that `setrlimit(2)` limits.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rlimit {
    /// Address space in bytes (`RLIMIT_AS`).
    As,
    /// Core file size in bytes (`RLIMIT_CORE`).
    Core,
    /// CPU time in seconds (`RLIMIT_CPU`): SIGXCPU at the soft limit, SIGKILL at the hard one.
    Cpu,
    /// Data segment size in bytes (`RLIMIT_DATA`).
    Data,
    /// Largest file the process may create, in bytes (`RLIMIT_FSIZE`).
    Fsize,
    /// Locked memory in bytes (`RLIMIT_MEMLOCK`).
    Memlock,
    /// Bytes in POSIX message queues (`RLIMIT_MSGQUEUE`).
    Msgqueue,
    /// Ceiling of the nice value (`RLIMIT_NICE`).
    Nice,
    /// Highest file descriptor number + 1 (`RLIMIT_NOFILE`).
    Nofile,
    /// Processes of the real uid (`RLIMIT_NPROC`) — counted across the whole uid, not per
    /// sandbox: prefer the cgroup pids limit.
    Nproc,
    /// Stack size in bytes (`RLIMIT_STACK`).
    Stack,
    /// Pending signals (`RLIMIT_SIGPENDING`).
    Sigpending,
}

impl Rlimit {
    /// The lower-case name, as in `prlimit(1)`: `"nofile"`, `"as"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Rlimit::As => "as",
            Rlimit::Core => "core",
            Rlimit::Cpu => "cpu",
            Rlimit::Data => "data",
            Rlimit::Fsize => "fsize",
            Rlimit::Memlock => "memlock",
            Rlimit::Msgqueue => "msgqueue",
            Rlimit::Nice => "nice",
            Rlimit::Nofile => "nofile",
            Rlimit::Nproc => "nproc",
            Rlimit::Stack => "stack",
            Rlimit::Sigpending => "sigpending",
        }
    }

    /// Every resource.
    pub const ALL: [Rlimit; 12] = [
        Rlimit::As,
        Rlimit::Core,
        Rlimit::Cpu,
        Rlimit::Data,
        Rlimit::Fsize,
        Rlimit::Memlock,
        Rlimit::Msgqueue,
        Rlimit::Nice,
        Rlimit::Nofile,
        Rlimit::Nproc,
        Rlimit::Stack,
        Rlimit::Sigpending,
    ];

    /// Parse a name as given by [`Rlimit::name`].
    pub fn from_name(name: &str) -> Option<Rlimit> {
        Rlimit::ALL.into_iter().find(|r| r.name() == name)
    }

    pub(crate) fn resource(self) -> libc::__rlimit_resource_t {
        (match self {
            Rlimit::As => libc::RLIMIT_AS,
            Rlimit::Core => libc::RLIMIT_CORE,
            Rlimit::Cpu => libc::RLIMIT_CPU,
            Rlimit::Data => libc::RLIMIT_DATA,
            Rlimit::Fsize => libc::RLIMIT_FSIZE,
            Rlimit::Memlock => libc::RLIMIT_MEMLOCK,
            Rlimit::Msgqueue => libc::RLIMIT_MSGQUEUE,
            Rlimit::Nice => libc::RLIMIT_NICE,
            Rlimit::Nofile => libc::RLIMIT_NOFILE,
            Rlimit::Nproc => libc::RLIMIT_NPROC,
            Rlimit::Stack => libc::RLIMIT_STACK,
            Rlimit::Sigpending => libc::RLIMIT_SIGPENDING,
        }) as libc::__rlimit_resource_t
    }
}

impl fmt::Display for Rlimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Rlimit::ALL {
            assert_eq!(Rlimit::from_name(r.name()), Some(r));
        }
        assert_eq!(Rlimit::from_name("bogus"), None);
    }
}
