//! What this host supports, how much of a sandbox's configuration a spawn may give up
//! ([`Compat`]), and the [`Report`] of what was actually enforced.
//!
//! Every layer asked for is held, exactly or through a substitute the [`Report`] names. When
//! the host cannot make a layer (a common case: unprivileged user namespaces are disabled, as
//! on Ubuntu ≥ 23.10 through AppArmor; no writable cgroup for an ordinary user), ringfence uses
//! the closest safe substitute where one exists: the filesystem view through Landlock instead
//! of a mount namespace, with a private directory as `TMPDIR` for the private `/tmp`; the
//! process limit as `RLIMIT_NPROC` inside the sandbox's user namespace and the memory limit as
//! per-process `RLIMIT_AS`/`RLIMIT_DATA` instead of a cgroup. Where there is no substitute the
//! spawn fails with [`Error::Unsupported`](crate::Error::Unsupported), the reason and the fix
//! ([`Compat::Required`], the default), unless best effort was chosen
//! ([`Compat::BestEffort`]): then the sandbox runs without that layer and the report says so.

use std::fmt;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use crate::ns::Namespace;

/// How to treat a layer that this host cannot provide, neither exactly nor through a
/// substitute (see [`Enforcement::Substituted`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Compat {
    /// Run without it and say so in the [`Report`].
    BestEffort,
    /// Refuse to spawn: `spawn` returns [`Error::Unsupported`](crate::Error::Unsupported)
    /// (the default).
    #[default]
    Required,
}

/// One independently enforceable part of a sandbox.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// A new namespace of this kind.
    Namespace(Namespace),
    /// `PR_SET_NO_NEW_PRIVS`: setuid binaries and file capabilities grant nothing.
    NoNewPrivs,
    /// Capabilities dropped (all but the ones asked to keep).
    Capabilities,
    /// Every file descriptor but stdio and the passed ones closed at exec.
    CloseFds,
    /// A new session without a controlling terminal (`setsid`).
    NewSession,
    /// Killed with `SIGKILL` when the thread that spawned it exits.
    DieWithParent,
    /// Resource limits (`setrlimit`).
    Rlimits,
    /// The hostname set in the new UTS namespace.
    Hostname,
    /// Clock offsets of the new time namespace.
    TimeOffsets,
    /// The sandbox's own filesystem view (a new root with the configured mounts).
    Filesystem,
    /// The seccomp filter (the guard and the profile).
    Seccomp,
    /// A cgroup of its own with the configured limits.
    Cgroup,
    /// A part of the Landlock rules.
    Landlock(crate::landlock::LandlockPart),
    /// The user-mode network stack of [`Net::User`](crate::Net::User), named.
    UserNet(crate::usernet::Stack),
    /// A Landlock domain of the sandbox's own, entered even without Landlock rules: no
    /// ptrace access (`/proc/PID/mem`, `environ`, `fd`, `exe`) to processes outside it, and
    /// from Linux 6.12 no signals or abstract unix socket connections to them either.
    LandlockDomain,
}

impl Layer {
    /// A stable machine-readable name, e.g. `"namespace.pid"` or `"no_new_privs"`.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Namespace(ns) => match ns {
                Namespace::User => "namespace.user",
                Namespace::Pid => "namespace.pid",
                Namespace::Net => "namespace.net",
                Namespace::Ipc => "namespace.ipc",
                Namespace::Uts => "namespace.uts",
                Namespace::Cgroup => "namespace.cgroup",
                Namespace::Time => "namespace.time",
                Namespace::Mount => "namespace.mount",
            },
            Layer::NoNewPrivs => "no_new_privs",
            Layer::Capabilities => "capabilities",
            Layer::CloseFds => "close_fds",
            Layer::NewSession => "new_session",
            Layer::DieWithParent => "die_with_parent",
            Layer::Rlimits => "rlimits",
            Layer::Hostname => "hostname",
            Layer::TimeOffsets => "time_offsets",
            Layer::Filesystem => "filesystem",
            Layer::Seccomp => "seccomp",
            Layer::Cgroup => "cgroup",
            Layer::Landlock(part) => part.name(),
            Layer::UserNet(crate::usernet::Stack::Pasta) => "user_net.pasta",
            Layer::UserNet(crate::usernet::Stack::Slirp4netns) => "user_net.slirp4netns",
            Layer::LandlockDomain => "landlock.domain",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Namespace(ns) => write!(f, "{} namespace", ns.name()),
            Layer::NoNewPrivs => f.write_str("no_new_privs"),
            Layer::Capabilities => f.write_str("capability drop"),
            Layer::CloseFds => f.write_str("closing inherited file descriptors"),
            Layer::NewSession => f.write_str("new session"),
            Layer::DieWithParent => f.write_str("die with parent"),
            Layer::Rlimits => f.write_str("resource limits"),
            Layer::Hostname => f.write_str("hostname"),
            Layer::TimeOffsets => f.write_str("time namespace offsets"),
            Layer::Filesystem => f.write_str("filesystem view"),
            Layer::Seccomp => f.write_str("seccomp filter"),
            Layer::Cgroup => f.write_str("cgroup limits"),
            Layer::Landlock(part) => write!(f, "{part}"),
            Layer::UserNet(stack) => write!(f, "user-mode network ({stack})"),
            Layer::LandlockDomain => {
                f.write_str("Landlock domain (no access to processes outside)")
            }
        }
    }
}

/// Whether a requested layer is in force.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// In force.
    Enforced,
    /// Held through a substitute, because this host could not provide the layer itself.
    Substituted {
        /// What stands in for the layer, e.g. "Landlock rules over the host's paths".
        substitute: String,
        /// Why the layer itself could not be had.
        reason: String,
    },
    /// Requested, but this host could not provide it.
    NotEnforced {
        /// Why not.
        reason: String,
        /// How to get it.
        hint: &'static str,
    },
}

/// What a spawned sandbox actually got, layer by layer.
///
/// Returned by [`Child::report`](crate::Child::report) and included in every
/// [`Outcome`](crate::Outcome).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    entries: Vec<(Layer, Enforcement)>,
}

impl Report {
    pub(crate) fn push(&mut self, layer: Layer, e: Enforcement) {
        self.entries.push((layer, e));
    }

    /// Replace the entry of `layer` (or add it).
    pub(crate) fn set(&mut self, layer: Layer, e: Enforcement) {
        match self.entries.iter_mut().find(|(l, _)| *l == layer) {
            Some(entry) => entry.1 = e,
            None => self.entries.push((layer, e)),
        }
    }

    /// Every requested layer with its enforcement, in setup order.
    pub fn iter(&self) -> impl Iterator<Item = (Layer, &Enforcement)> {
        self.entries.iter().map(|(l, e)| (*l, e))
    }

    /// The enforcement of one layer, or `None` if it was not requested.
    pub fn get(&self, layer: Layer) -> Option<&Enforcement> {
        self.entries
            .iter()
            .find(|(l, _)| *l == layer)
            .map(|(_, e)| e)
    }

    /// Whether `layer` was requested and is in force exactly (not through a substitute).
    pub fn is_enforced(&self, layer: Layer) -> bool {
        matches!(self.get(layer), Some(Enforcement::Enforced))
    }

    /// Whether `layer` was requested and is held, exactly or through a substitute.
    pub fn is_held(&self, layer: Layer) -> bool {
        matches!(
            self.get(layer),
            Some(Enforcement::Enforced | Enforcement::Substituted { .. })
        )
    }

    /// Whether every requested layer is in force exactly.
    pub fn is_fully_enforced(&self) -> bool {
        self.entries
            .iter()
            .all(|(_, e)| matches!(e, Enforcement::Enforced))
    }

    /// The layers that were requested but are not in force (neither exactly nor through a
    /// substitute).
    pub fn not_enforced(&self) -> impl Iterator<Item = (Layer, &str, &'static str)> {
        self.entries.iter().filter_map(|(l, e)| match e {
            Enforcement::NotEnforced { reason, hint } => Some((*l, reason.as_str(), *hint)),
            _ => None,
        })
    }

    /// The layers held through a substitute: the layer, its substitute, and why.
    pub fn substituted(&self) -> impl Iterator<Item = (Layer, &str, &str)> {
        self.entries.iter().filter_map(|(l, e)| match e {
            Enforcement::Substituted { substitute, reason } => {
                Some((*l, substitute.as_str(), reason.as_str()))
            }
            _ => None,
        })
    }

    /// One short line naming what was substituted and what is not enforced, e.g.
    /// `"substituted: filesystem view, cgroup limits; not enforced: net namespace"`, or `None`
    /// when every requested layer is in force exactly.
    pub fn summary(&self) -> Option<String> {
        let list = |names: Vec<String>| {
            let mut out: Vec<String> = Vec::new();
            for n in names {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
            out.join(", ")
        };
        let subst = list(self.substituted().map(|(l, _, _)| l.to_string()).collect());
        let missing = list(self.not_enforced().map(|(l, _, _)| l.to_string()).collect());
        match (subst.is_empty(), missing.is_empty()) {
            (true, true) => None,
            (false, true) => Some(format!("substituted: {subst}")),
            (true, false) => Some(format!("not enforced: {missing}")),
            (false, false) => Some(format!("substituted: {subst}; not enforced: {missing}")),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (layer, e) in &self.entries {
            match e {
                Enforcement::Enforced => writeln!(f, "  enforced      {layer}")?,
                Enforcement::Substituted { substitute, reason } => {
                    writeln!(f, "  substituted   {layer}: {substitute} ({reason})")?
                }
                Enforcement::NotEnforced { reason, hint } => {
                    writeln!(f, "  NOT enforced  {layer}: {reason} (fix: {hint})")?
                }
            }
        }
        Ok(())
    }
}

/// Why user namespaces cannot be used by this process, with the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    /// What was found.
    pub reason: String,
    /// How to change it.
    pub hint: &'static str,
}

/// What this host and this process can do, found once per process by [`probe()`].
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct HostInfo {
    /// The effective uid of this process.
    pub euid: u32,
    /// The effective gid of this process.
    pub egid: u32,
    /// Whether this process holds `CAP_SYS_ADMIN` (then it needs no user namespace).
    pub privileged: bool,
    /// Whether this process may create user namespaces, or why not.
    pub user_ns: Result<(), Unavailable>,
    /// Namespace kinds this kernel knows (`/proc/self/ns/*`).
    pub namespaces: Vec<Namespace>,
    /// The highest capability number of this kernel (`/proc/sys/kernel/cap_last_cap`).
    pub cap_last_cap: u32,
    /// The kernel release, e.g. `"6.1.0-28-amd64"`.
    pub kernel: String,
}

impl HostInfo {
    /// Whether this kernel knows namespaces of this kind.
    pub fn supports(&self, ns: Namespace) -> bool {
        self.namespaces.contains(&ns)
    }
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

const USERNS_HINT: &str = "allow unprivileged user namespaces: sysctl user.max_user_namespaces=15000, sysctl kernel.unprivileged_userns_clone=1 (Debian < 11), sysctl kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile with `userns,` (Ubuntu >= 23.10); or run as root";

fn probe_user_ns(privileged: bool) -> Result<(), Unavailable> {
    if !Path::new("/proc/self/ns/user").exists() {
        return Err(Unavailable {
            reason: "this kernel has no user namespaces (CONFIG_USER_NS)".into(),
            hint: "use a kernel built with CONFIG_USER_NS=y",
        });
    }
    if read_trimmed("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Err(Unavailable {
            reason: "user.max_user_namespaces is 0".into(),
            hint: USERNS_HINT,
        });
    }
    if privileged {
        return Ok(());
    }
    if read_trimmed("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Err(Unavailable {
            reason: "kernel.unprivileged_userns_clone is 0".into(),
            hint: USERNS_HINT,
        });
    }
    if read_trimmed("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref()
        == Some("1")
    {
        return Err(Unavailable {
            reason: "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)".into(),
            hint: USERNS_HINT,
        });
    }
    Ok(())
}

/// Whether the calling thread's effective capability set holds `cap`.
pub(crate) fn has_effective_cap(cap: u32) -> bool {
    let mut hdr = libc_cap_header();
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two `CapData` entries for _LINUX_CAPABILITY_VERSION_3.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return false;
    }
    let (word, bit) = ((cap / 32) as usize, cap % 32);
    data.get(word)
        .is_some_and(|d| d.effective & (1 << bit) != 0)
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct CapHeader {
    pub version: u32,
    pub pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CapData {
    pub effective: u32,
    pub permitted: u32,
    pub inheritable: u32,
}

pub(crate) const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

pub(crate) fn libc_cap_header() -> CapHeader {
    CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    }
}

const CAP_SYS_ADMIN: u32 = 21;

/// What this host and process support. Computed once, then cached for the process's lifetime.
pub fn probe() -> &'static HostInfo {
    static INFO: OnceLock<HostInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        let privileged = has_effective_cap(CAP_SYS_ADMIN);
        let namespaces = Namespace::ALL
            .into_iter()
            .filter(|ns| Path::new("/proc/self/ns").join(ns.proc_name()).exists())
            .collect();
        let cap_last_cap = read_trimmed("/proc/sys/kernel/cap_last_cap")
            .and_then(|s| s.parse().ok())
            .unwrap_or(40);
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        HostInfo {
            euid,
            egid,
            privileged,
            user_ns: probe_user_ns(privileged),
            namespaces,
            cap_last_cap,
            kernel,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_tracks_enforcement() {
        let mut r = Report::default();
        r.push(Layer::NoNewPrivs, Enforcement::Enforced);
        r.push(
            Layer::Namespace(Namespace::Net),
            Enforcement::NotEnforced {
                reason: "no".into(),
                hint: "yes",
            },
        );
        assert!(r.is_enforced(Layer::NoNewPrivs));
        assert!(!r.is_enforced(Layer::Namespace(Namespace::Net)));
        assert!(!r.is_fully_enforced());
        assert_eq!(r.get(Layer::Rlimits), None);
        let missing: Vec<_> = r.not_enforced().collect();
        assert_eq!(
            missing,
            vec![(Layer::Namespace(Namespace::Net), "no", "yes")]
        );
        let text = r.to_string();
        assert!(
            text.contains("NOT enforced  net namespace: no (fix: yes)"),
            "{text}"
        );
    }

    #[test]
    fn probe_finds_basic_namespaces() {
        let info = probe();
        assert!(info.supports(Namespace::Pid));
        assert!(info.supports(Namespace::Net));
        assert!(info.cap_last_cap >= 36);
    }
}
