//! Namespaces: the kinds, the network choice ([`Net`]) and user namespace id maps ([`UserNs`]).

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;

use crate::error::ConfigError;
use crate::usernet::UserNet;

/// A kind of Linux namespace (see `namespaces(7)`).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    /// User and group ids and capabilities (`user_namespaces(7)`).
    User,
    /// Process ids; the sandbox's first process is pid 1 (`pid_namespaces(7)`).
    Pid,
    /// Network devices, addresses, ports, routes, firewall (`network_namespaces(7)`).
    Net,
    /// System V IPC and POSIX message queues (`ipc_namespaces(7)`).
    Ipc,
    /// Hostname and NIS domain name (`uts_namespaces(7)`).
    Uts,
    /// The cgroup root as seen in `/proc/self/cgroup` (`cgroup_namespaces(7)`).
    Cgroup,
    /// `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` offsets; not the wall clock (`time_namespaces(7)`).
    Time,
    /// Mount points (`mount_namespaces(7)`).
    Mount,
}

impl Namespace {
    /// Every kind, in the order they are set up.
    pub const ALL: [Namespace; 8] = [
        Namespace::User,
        Namespace::Pid,
        Namespace::Net,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Cgroup,
        Namespace::Time,
        Namespace::Mount,
    ];

    /// The human name, e.g. `"net"`.
    pub fn name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Pid => "pid",
            Namespace::Net => "net",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Cgroup => "cgroup",
            Namespace::Time => "time",
            Namespace::Mount => "mount",
        }
    }

    /// The file name under `/proc/PID/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::Mount => "mnt",
            other => other.name(),
        }
    }

    /// The `CLONE_NEW*` flag.
    pub(crate) fn clone_flag(self) -> u64 {
        (match self {
            Namespace::User => libc::CLONE_NEWUSER,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
            Namespace::Time => CLONE_NEWTIME,
            Namespace::Mount => libc::CLONE_NEWNS,
        }) as u32 as u64
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) const CLONE_NEWTIME: libc::c_int = 0x80;

/// The network a sandbox gets.
///
/// ```no_run
/// use ringfence::{Net, Sandbox};
/// use std::os::fd::OwnedFd;
///
/// let host = Sandbox::new().net(Net::Host);
/// let fresh = Sandbox::new().net(Net::New);
/// let fd: OwnedFd = std::fs::File::open("/run/netns/ci")?.into();
/// let joined = Sandbox::new().net(Net::Join(fd));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub enum Net {
    /// The host's network namespace: everything the caller can reach (the default).
    #[default]
    Host,
    /// A new, empty network namespace with only the loopback interface `lo`, brought up.
    New,
    /// An existing network namespace, e.g. `File::open("/proc/PID/ns/net")` or a bind-mounted
    /// namespace file such as `/run/netns/NAME`. The descriptor is checked when the sandbox is
    /// spawned; joining needs `CAP_SYS_ADMIN` over that namespace. The sandbox keeps it (shared
    /// by its clones) and closes it when the last of them is dropped.
    Join(OwnedFd),
    /// A new network namespace with `lo` and `eth0` (an address, a default route, DNS),
    /// connected to the outside by a user-mode network stack (pasta, or slirp4netns) that runs
    /// as long as the sandbox: outbound access without the host's network namespace. Options
    /// (port forwards, host loopback, destination restrictions) in [`UserNet`]; details in
    /// [`crate::usernet`].
    User(UserNet),
}

impl Net {
    /// Join the network namespace behind `fd` (any descriptor type: a `File`, an `OwnedFd`).
    pub fn join(fd: impl Into<OwnedFd>) -> Net {
        Net::Join(fd.into())
    }

    /// A private network with outbound access and the default [`UserNet`] options.
    pub fn user() -> Net {
        Net::User(UserNet::new())
    }
}

/// The network choice as a sandbox keeps it: [`Net`] with a shared descriptor, so that the
/// sandbox stays `Clone`.
#[derive(Clone, Debug, Default)]
pub(crate) enum NetChoice {
    #[default]
    Host,
    New,
    Join(Arc<OwnedFd>),
    User(UserNet),
}

impl From<Net> for NetChoice {
    fn from(net: Net) -> NetChoice {
        match net {
            Net::Host => NetChoice::Host,
            Net::New => NetChoice::New,
            Net::Join(fd) => NetChoice::Join(Arc::new(fd)),
            Net::User(u) => NetChoice::User(u),
        }
    }
}

/// Check that `fd` is an open network namespace.
pub(crate) fn check_netns(fd: &OwnedFd) -> Result<(), ConfigError> {
    // NS_GET_NSTYPE = _IO(0xb7, 0x3)
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: the ioctl takes no argument and only reads the descriptor's type.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), NS_GET_NSTYPE as _) };
    if rc < 0 {
        let errno = Errno::last();
        // ENOTTY: an open file that is not a namespace.
        return Err(ConfigError::NotANetNs { source: errno });
    }
    if rc != libc::CLONE_NEWNET {
        return Err(ConfigError::NotANetNs {
            source: Errno::EINVAL,
        });
    }
    Ok(())
}

/// One line of a uid or gid map: `count` ids starting at `outside` in the caller's namespace
/// appear as `inside..inside+count` in the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    /// First id inside the sandbox.
    pub inside: u32,
    /// First id in the caller's namespace.
    pub outside: u32,
    /// How many ids.
    pub count: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Mapping {
    /// The caller's own uid and gid, mapped to themselves.
    Current,
    /// The caller's own uid and gid, mapped to 0 (root inside, like `unshare -r`).
    Root,
    /// Explicit maps (needs root for anything but the caller's own ids).
    Explicit { uid: Vec<IdMap>, gid: Vec<IdMap> },
}

/// A new user namespace and how ids map into it.
///
/// Without root, only the caller's own uid and gid can be mapped (one id each); the kernel
/// refuses anything else. [`UserNs::current`] (the default when ringfence adds a user namespace
/// for a caller without root) keeps the caller's ids; [`UserNs::root`] maps them to 0, as
/// `unshare -r` does, so the payload sees itself as root (with no power outside).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserNs {
    mapping: Mapping,
}

impl Default for UserNs {
    fn default() -> Self {
        UserNs::current()
    }
}

impl UserNs {
    /// Map the caller's uid and gid to themselves.
    pub fn current() -> UserNs {
        UserNs {
            mapping: Mapping::Current,
        }
    }

    /// Map the caller's uid and gid to 0 inside.
    pub fn root() -> UserNs {
        UserNs {
            mapping: Mapping::Root,
        }
    }

    /// Explicit maps (`uid_map`, `gid_map`). Mapping ids other than your own needs root.
    pub fn maps(
        uid: impl IntoIterator<Item = IdMap>,
        gid: impl IntoIterator<Item = IdMap>,
    ) -> UserNs {
        UserNs {
            mapping: Mapping::Explicit {
                uid: uid.into_iter().collect(),
                gid: gid.into_iter().collect(),
            },
        }
    }

    /// The `(uid_map, gid_map)` file contents for a caller with `euid`/`egid`.
    pub(crate) fn map_files(&self, euid: u32, egid: u32) -> Result<(String, String), ConfigError> {
        let (uid, gid) = match &self.mapping {
            Mapping::Current => (
                vec![IdMap {
                    inside: euid,
                    outside: euid,
                    count: 1,
                }],
                vec![IdMap {
                    inside: egid,
                    outside: egid,
                    count: 1,
                }],
            ),
            Mapping::Root => (
                vec![IdMap {
                    inside: 0,
                    outside: euid,
                    count: 1,
                }],
                vec![IdMap {
                    inside: 0,
                    outside: egid,
                    count: 1,
                }],
            ),
            Mapping::Explicit { uid, gid } => (uid.clone(), gid.clone()),
        };
        Ok((render_map(&uid)?, render_map(&gid)?))
    }
}

fn render_map(map: &[IdMap]) -> Result<String, ConfigError> {
    if map.is_empty() {
        return Err(ConfigError::InvalidIdMap {
            what: "a map needs at least one line",
        });
    }
    // The kernel accepts up to 340 lines (since 4.15).
    if map.len() > 340 {
        return Err(ConfigError::InvalidIdMap {
            what: "more than 340 lines",
        });
    }
    for (i, a) in map.iter().enumerate() {
        if a.count == 0 {
            return Err(ConfigError::InvalidIdMap {
                what: "a line with count 0",
            });
        }
        if a.inside.checked_add(a.count).is_none() || a.outside.checked_add(a.count).is_none() {
            return Err(ConfigError::InvalidIdMap {
                what: "a range that overflows 32 bits",
            });
        }
        for b in &map[i + 1..] {
            let overlap = |x: u32, y: u32| x < y + b.count && y < x + a.count;
            if overlap(a.inside, b.inside) || overlap(a.outside, b.outside) {
                return Err(ConfigError::InvalidIdMap {
                    what: "overlapping ranges",
                });
            }
        }
    }
    Ok(map
        .iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect())
}

/// Clock offsets of a new time namespace: how far `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` are
/// moved forward inside. The wall clock (`CLOCK_REALTIME`) cannot be virtualised by any
/// namespace, which is why the default seccomp profile blocks the calls that set it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeOffsets {
    /// Added to `CLOCK_MONOTONIC` (and its COARSE/RAW variants).
    pub monotonic: Duration,
    /// Added to `CLOCK_BOOTTIME`.
    pub boottime: Duration,
}

impl TimeOffsets {
    /// The text written to `/proc/self/timens_offsets`.
    pub(crate) fn render(&self) -> String {
        format!(
            "monotonic {} {}\nboottime {} {}\n",
            self.monotonic.as_secs(),
            self.monotonic.subsec_nanos(),
            self.boottime.as_secs(),
            self.boottime.subsec_nanos()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_render_and_validate() {
        let ns = UserNs::root();
        assert_eq!(
            ns.map_files(1000, 1001).unwrap(),
            ("0 1000 1\n".to_owned(), "0 1001 1\n".to_owned())
        );
        let ns = UserNs::maps(
            [IdMap {
                inside: 0,
                outside: 100_000,
                count: 65536,
            }],
            [IdMap {
                inside: 0,
                outside: 100_000,
                count: 65536,
            }],
        );
        assert_eq!(ns.map_files(0, 0).unwrap().0, "0 100000 65536\n");
        let bad = UserNs::maps(
            [
                IdMap {
                    inside: 0,
                    outside: 0,
                    count: 10,
                },
                IdMap {
                    inside: 5,
                    outside: 100,
                    count: 1,
                },
            ],
            [IdMap {
                inside: 0,
                outside: 0,
                count: 1,
            }],
        );
        assert_eq!(
            bad.map_files(0, 0),
            Err(ConfigError::InvalidIdMap {
                what: "overlapping ranges"
            })
        );
        let empty = UserNs::maps([], []);
        assert!(empty.map_files(0, 0).is_err());
    }

    #[test]
    fn proc_names() {
        assert_eq!(Namespace::Mount.proc_name(), "mnt");
        assert_eq!(Namespace::Net.proc_name(), "net");
        assert_eq!(Namespace::Time.clone_flag(), 0x80);
    }

    #[test]
    fn time_offsets_render() {
        let t = TimeOffsets {
            monotonic: Duration::from_millis(1500),
            boottime: Duration::from_secs(7),
        };
        assert_eq!(t.render(), "monotonic 1 500000000\nboottime 7 0\n");
    }
}
