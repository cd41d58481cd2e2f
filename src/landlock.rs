//! Landlock: unprivileged restrictions on the files and TCP ports the sandboxed program may use,
//! and on the signals and abstract unix sockets it may reach outside its sandbox.
//!
//! Landlock is a Linux security module (Linux ≥ 5.13) that any process may use on itself,
//! without privileges and with or without namespaces. Its features come in numbered ABI
//! versions; [`abi()`] tells which one the running kernel has:
//!
//! | ABI | Linux | adds |
//! |-----|-------|------|
//! | 1 | 5.13 | file system rights ([`FsAccess`]) except the ones below |
//! | 2 | 5.19 | [`FsAccess::REFER`]: link or rename into another directory |
//! | 3 | 6.2  | [`FsAccess::TRUNCATE`] |
//! | 4 | 6.7  | TCP port rules ([`Landlock::connect_tcp`], [`Landlock::bind_tcp`]) |
//! | 5 | 6.10 | [`FsAccess::IOCTL_DEV`]: `ioctl` on device files |
//! | 6 | 6.12 | scopes ([`Landlock::scope_signals`], [`Landlock::scope_abstract_unix`]) |
//!
//! [`Landlock`] is pure configuration. When a sandbox is spawned, the parent turns it into a
//! Landlock *ruleset* (through the `landlock` crate; it opens every path, adds the rules and
//! creates the ruleset file descriptor) and reports, part by part ([`LandlockPart`]), what the
//! running kernel enforces. The sandboxed process then only makes one system call,
//! `landlock_restrict_self`, just before it executes the program. The restriction is
//! irreversible and inherited by every process the program starts.
//!
//! Best effort by default: a kernel that lacks a feature still gets every feature it has, and
//! the report says what is missing and why. With [`Compat::Required`] a missing feature (or a
//! kernel without Landlock) is an error instead.
//!
//! Paths are opened by the parent when the sandbox is prepared, in the parent's view of the file
//! system. Landlock attaches a rule to the *inode* it names, so a host directory that is
//! bind-mounted into the sandbox is covered at its new place, but a file system mounted fresh
//! inside the sandbox (a private tmpfs, a new proc) is a different inode and is not covered.

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::{BitAnd, BitOr, BitOrAssign, Not};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope,
};
use nix::errno::Errno;

use crate::probe::{Compat, Enforcement};

// ───────────────────────────────────────── access rights ─────────────────────────────────────────

/// A set of Landlock file system access rights (the kernel's `LANDLOCK_ACCESS_FS_*` bits).
///
/// Combine rights with `|`, e.g. `FsAccess::READ_FILE | FsAccess::WRITE_FILE`. Rights that the
/// running kernel's Landlock ABI does not know are neither restricted nor granted: see the ABI
/// of each constant, and the [report](LandlockPart) of what was enforced.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FsAccess(u64);

impl FsAccess {
    /// Execute a file (ABI 1).
    pub const EXECUTE: FsAccess = FsAccess(1 << 0);
    /// Open a file for writing (ABI 1). Since ABI 3, `O_TRUNC` also needs [`Self::TRUNCATE`].
    pub const WRITE_FILE: FsAccess = FsAccess(1 << 1);
    /// Open a file for reading (ABI 1).
    pub const READ_FILE: FsAccess = FsAccess(1 << 2);
    /// Open a directory or list its content (ABI 1).
    pub const READ_DIR: FsAccess = FsAccess(1 << 3);
    /// Remove an empty directory or rename one (ABI 1).
    pub const REMOVE_DIR: FsAccess = FsAccess(1 << 4);
    /// Unlink or rename a file (ABI 1).
    pub const REMOVE_FILE: FsAccess = FsAccess(1 << 5);
    /// Create, rename or link a character device (ABI 1).
    pub const MAKE_CHAR: FsAccess = FsAccess(1 << 6);
    /// Create or rename a directory (ABI 1).
    pub const MAKE_DIR: FsAccess = FsAccess(1 << 7);
    /// Create, rename or link a regular file (ABI 1).
    pub const MAKE_REG: FsAccess = FsAccess(1 << 8);
    /// Create, rename or link a unix domain socket (ABI 1).
    pub const MAKE_SOCK: FsAccess = FsAccess(1 << 9);
    /// Create, rename or link a named pipe (ABI 1).
    pub const MAKE_FIFO: FsAccess = FsAccess(1 << 10);
    /// Create, rename or link a block device (ABI 1).
    pub const MAKE_BLOCK: FsAccess = FsAccess(1 << 11);
    /// Create, rename or link a symbolic link (ABI 1).
    pub const MAKE_SYM: FsAccess = FsAccess(1 << 12);
    /// Link or rename a file into or out of a directory (ABI 2). On ABI 1 such a move between
    /// two different directories is always denied under Landlock.
    pub const REFER: FsAccess = FsAccess(1 << 13);
    /// Truncate a file: `truncate`, `ftruncate`, `creat`, `open` with `O_TRUNC` (ABI 3).
    pub const TRUNCATE: FsAccess = FsAccess(1 << 14);
    /// `ioctl` on character and block device files (ABI 5).
    pub const IOCTL_DEV: FsAccess = FsAccess(1 << 15);

    /// What [`Landlock::read_only`] grants: read files, list directories, execute.
    pub const READ: FsAccess = FsAccess(Self::EXECUTE.0 | Self::READ_FILE.0 | Self::READ_DIR.0);
    /// Every right above: what [`Landlock::read_write`] grants.
    pub const ALL: FsAccess = FsAccess((1 << 16) - 1);

    /// The rights that apply to a file that is not a directory (the others only make sense
    /// beneath a directory).
    const FILE: FsAccess = FsAccess(
        Self::EXECUTE.0
            | Self::WRITE_FILE.0
            | Self::READ_FILE.0
            | Self::TRUNCATE.0
            | Self::IOCTL_DEV.0,
    );

    /// Each right with its name, the `landlock` crate's flag, and the ABI that introduced it.
    const TABLE: [(FsAccess, &'static str, AccessFs, u32); 16] = [
        (Self::EXECUTE, "EXECUTE", AccessFs::Execute, 1),
        (Self::WRITE_FILE, "WRITE_FILE", AccessFs::WriteFile, 1),
        (Self::READ_FILE, "READ_FILE", AccessFs::ReadFile, 1),
        (Self::READ_DIR, "READ_DIR", AccessFs::ReadDir, 1),
        (Self::REMOVE_DIR, "REMOVE_DIR", AccessFs::RemoveDir, 1),
        (Self::REMOVE_FILE, "REMOVE_FILE", AccessFs::RemoveFile, 1),
        (Self::MAKE_CHAR, "MAKE_CHAR", AccessFs::MakeChar, 1),
        (Self::MAKE_DIR, "MAKE_DIR", AccessFs::MakeDir, 1),
        (Self::MAKE_REG, "MAKE_REG", AccessFs::MakeReg, 1),
        (Self::MAKE_SOCK, "MAKE_SOCK", AccessFs::MakeSock, 1),
        (Self::MAKE_FIFO, "MAKE_FIFO", AccessFs::MakeFifo, 1),
        (Self::MAKE_BLOCK, "MAKE_BLOCK", AccessFs::MakeBlock, 1),
        (Self::MAKE_SYM, "MAKE_SYM", AccessFs::MakeSym, 1),
        (Self::REFER, "REFER", AccessFs::Refer, 2),
        (Self::TRUNCATE, "TRUNCATE", AccessFs::Truncate, 3),
        (Self::IOCTL_DEV, "IOCTL_DEV", AccessFs::IoctlDev, 5),
    ];

    /// No right.
    pub const fn empty() -> FsAccess {
        FsAccess(0)
    }

    /// The kernel's bit mask (`LANDLOCK_ACCESS_FS_*`).
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether no right is in the set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every right of `other` is in `self`.
    pub const fn contains(self, other: FsAccess) -> bool {
        self.0 & other.0 == other.0
    }

    /// The rights in `self` or in `other`.
    pub const fn union(self, other: FsAccess) -> FsAccess {
        FsAccess(self.0 | other.0)
    }

    /// The rights that the Landlock ABI `abi` knows (none for 0).
    pub fn supported_by(abi: u32) -> FsAccess {
        Self::TABLE
            .iter()
            .filter(|(_, _, _, min)| abi >= *min)
            .fold(FsAccess::empty(), |acc, (a, ..)| acc | *a)
    }

    fn to_landlock(self) -> BitFlags<AccessFs> {
        Self::TABLE
            .iter()
            .filter(|(a, ..)| self.contains(*a))
            .fold(BitFlags::EMPTY, |acc, (_, _, l, _)| acc | *l)
    }
}

impl BitOr for FsAccess {
    type Output = FsAccess;
    fn bitor(self, rhs: FsAccess) -> FsAccess {
        FsAccess(self.0 | rhs.0)
    }
}

impl BitOrAssign for FsAccess {
    fn bitor_assign(&mut self, rhs: FsAccess) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for FsAccess {
    type Output = FsAccess;
    fn bitand(self, rhs: FsAccess) -> FsAccess {
        FsAccess(self.0 & rhs.0)
    }
}

impl Not for FsAccess {
    type Output = FsAccess;
    /// The rights of [`FsAccess::ALL`] that are not in `self`.
    fn not(self) -> FsAccess {
        FsAccess(!self.0 & Self::ALL.0)
    }
}

impl fmt::Debug for FsAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FsAccess(")?;
        fmt::Display::fmt(self, f)?;
        f.write_str(")")
    }
}

impl fmt::Display for FsAccess {
    /// The names of the rights, e.g. `READ_FILE | READ_DIR`, or `(none)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        let mut first = true;
        for (a, name, ..) in Self::TABLE {
            if self.contains(a) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

// ───────────────────────────────────────── configuration ─────────────────────────────────────────

/// Landlock rules: what files and ports the sandboxed program may use. Unprivileged; works with
/// and without namespaces.
///
/// [`Landlock::new`] restricts every file system right that ringfence knows and the running
/// kernel supports (see [`FsAccess`]) and allows none: add a rule for everything the program
/// needs, including the program itself and its shared libraries. TCP ports are restricted only
/// once a TCP rule is given (or [`Landlock::deny_tcp`]); signals and abstract unix sockets only
/// when their scope is asked for.
///
/// Rules on a path cover everything beneath it. Rules add up: a path under a
/// [`read_write`](Self::read_write) directory is writable even if it is also listed as
/// [`read_only`](Self::read_only).
///
/// ```
/// use ringfence::landlock::Landlock;
///
/// let rules = Landlock::new()
///     .read_only(["/usr", "/lib", "/bin", "/etc"])
///     .read_write(["/tmp"])
///     .connect_tcp(443)        // ABI 4: TCP connections only to port 443, no bind
///     .scope_signals();        // ABI 6: no signals to processes outside the sandbox
/// ```
#[derive(Clone, Debug, Default)]
pub struct Landlock {
    paths: Vec<PathRule>,
    connect_tcp: Vec<u16>,
    bind_tcp: Vec<u16>,
    deny_tcp: bool,
    /// Only `connect` is restricted (`UserNet::allow_tcp_ports` on a sandbox without TCP
    /// rules of its own): binding stays free.
    connect_only: bool,
    scope_signals: bool,
    scope_abstract_unix: bool,
}

#[derive(Clone, Debug)]
struct PathRule {
    path: PathBuf,
    access: FsAccess,
    /// Given with [`Landlock::allow`]: directory-only rights on a file are an error then,
    /// while the presets quietly keep only the rights that apply to a file.
    exact: bool,
}

impl Landlock {
    /// Rules that restrict every file system right ringfence knows and the running kernel
    /// supports, and allow none yet.
    pub fn new() -> Landlock {
        Landlock::default()
    }

    /// Allow reading files, listing directories and executing beneath each of `paths`
    /// ([`FsAccess::READ`]; ABI 1).
    #[must_use]
    pub fn read_only(self, paths: impl IntoIterator<Item = impl AsRef<Path>>) -> Self {
        self.add_paths(paths, FsAccess::READ, false)
    }

    /// Allow everything beneath each of `paths` ([`FsAccess::ALL`]): read, write, execute,
    /// create, remove, and as the running kernel supports them, link or rename across
    /// directories (ABI 2), truncate (ABI 3) and device `ioctl`s (ABI 5).
    #[must_use]
    pub fn read_write(self, paths: impl IntoIterator<Item = impl AsRef<Path>>) -> Self {
        self.add_paths(paths, FsAccess::ALL, false)
    }

    /// Allow exactly `access` beneath `path`. On a path that is not a directory only
    /// [`EXECUTE`](FsAccess::EXECUTE), [`READ_FILE`](FsAccess::READ_FILE),
    /// [`WRITE_FILE`](FsAccess::WRITE_FILE), [`TRUNCATE`](FsAccess::TRUNCATE) and
    /// [`IOCTL_DEV`](FsAccess::IOCTL_DEV) make sense; others are refused when the sandbox is
    /// prepared.
    #[must_use]
    pub fn allow(self, path: impl AsRef<Path>, access: FsAccess) -> Self {
        self.add_paths([path], access, true)
    }

    fn add_paths(
        mut self,
        paths: impl IntoIterator<Item = impl AsRef<Path>>,
        access: FsAccess,
        exact: bool,
    ) -> Self {
        self.paths.extend(paths.into_iter().map(|p| PathRule {
            path: p.as_ref().to_owned(),
            access,
            exact,
        }));
        self
    }

    /// Allow TCP connections to `port` (ABI 4, Linux 6.7). Once any TCP rule is given, every
    /// other TCP `connect` and `bind` is denied.
    #[must_use]
    pub fn connect_tcp(mut self, port: u16) -> Self {
        self.connect_tcp.push(port);
        self
    }

    /// Allow binding TCP sockets to `port` (ABI 4, Linux 6.7). Once any TCP rule is given,
    /// every other TCP `connect` and `bind` is denied.
    #[must_use]
    pub fn bind_tcp(mut self, port: u16) -> Self {
        self.bind_tcp.push(port);
        self
    }

    /// Deny every TCP `connect` and `bind` but the ports allowed with
    /// [`connect_tcp`](Self::connect_tcp) and [`bind_tcp`](Self::bind_tcp), even when none is
    /// (ABI 4, Linux 6.7). Other protocols (UDP, unix sockets) are not affected.
    #[must_use]
    pub fn deny_tcp(mut self) -> Self {
        self.deny_tcp = true;
        self
    }

    /// Forbid sending signals to processes outside the sandbox's Landlock domain (ABI 6,
    /// Linux 6.12). The program can still signal itself and the processes it starts.
    #[must_use]
    pub fn scope_signals(mut self) -> Self {
        self.scope_signals = true;
        self
    }

    /// Forbid connecting to abstract unix sockets created outside the sandbox's Landlock domain
    /// (ABI 6, Linux 6.12), e.g. `@/tmp/.X11-unix/X0` or D-Bus's abstract addresses.
    #[must_use]
    pub fn scope_abstract_unix(mut self) -> Self {
        self.scope_abstract_unix = true;
        self
    }

    /// These rules with outbound TCP limited to `ports` as well (`UserNet::allow_tcp_ports`).
    /// Rules that already restrict TCP keep their meaning (binding stays restricted); others
    /// restrict only `connect`. Without rules of its own a sandbox gets `base`.
    pub(crate) fn with_connect_ports(rules: Option<&Landlock>, ports: &[u16]) -> Landlock {
        let mut l = match rules {
            Some(r) => r.clone(),
            // Every file system right beneath `/`: only the TCP rule restricts.
            None => Landlock::new().read_write(["/"]),
        };
        if !l.restricts_tcp() {
            l.connect_only = true;
        }
        l.deny_tcp = true;
        l.connect_tcp.extend_from_slice(ports);
        l
    }

    fn restricts_tcp(&self) -> bool {
        self.deny_tcp || !self.connect_tcp.is_empty() || !self.bind_tcp.is_empty()
    }

    /// The parts of Landlock these rules need, in report order.
    fn parts(&self) -> Vec<LandlockPart> {
        let mut parts = vec![
            LandlockPart::Filesystem,
            LandlockPart::Truncate,
            LandlockPart::IoctlDev,
        ];
        if self.restricts_tcp() {
            parts.push(LandlockPart::Tcp);
        }
        if self.scope_signals {
            parts.push(LandlockPart::ScopeSignals);
        }
        if self.scope_abstract_unix {
            parts.push(LandlockPart::ScopeAbstractUnix);
        }
        parts
    }

    /// What the running kernel would enforce of these rules, part by part, without opening
    /// anything (for `ringfence doctor` and logs). A spawned sandbox reports the same.
    pub fn enforcement(&self) -> Vec<(LandlockPart, Enforcement)> {
        assess(self, host_abi())
    }
}

// ───────────────────────────────────────── the report ─────────────────────────────────────────

/// One separately reported part of Landlock: what a kernel may or may not enforce.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LandlockPart {
    /// File system rules: reading, writing, executing, creating and removing (ABI 1).
    Filesystem,
    /// Truncation restricted like writing (ABI 3). Without it, a file the program may not
    /// write can still be truncated with `truncate(2)`.
    Truncate,
    /// `ioctl` on device files restricted (ABI 5).
    IoctlDev,
    /// TCP `bind` and `connect` limited to the allowed ports (ABI 4).
    Tcp,
    /// Signals to processes outside the sandbox denied (ABI 6).
    ScopeSignals,
    /// Connections to abstract unix sockets outside the sandbox denied (ABI 6).
    ScopeAbstractUnix,
}

impl LandlockPart {
    /// The Landlock ABI version that introduced this part.
    pub fn min_abi(self) -> u32 {
        match self {
            LandlockPart::Filesystem => 1,
            LandlockPart::Truncate => 3,
            LandlockPart::Tcp => 4,
            LandlockPart::IoctlDev => 5,
            LandlockPart::ScopeSignals | LandlockPart::ScopeAbstractUnix => 6,
        }
    }

    /// A stable machine-readable name, e.g. `"landlock.tcp"`.
    pub fn name(self) -> &'static str {
        match self {
            LandlockPart::Filesystem => "landlock.fs",
            LandlockPart::Truncate => "landlock.fs.truncate",
            LandlockPart::IoctlDev => "landlock.fs.ioctl_dev",
            LandlockPart::Tcp => "landlock.tcp",
            LandlockPart::ScopeSignals => "landlock.scope.signals",
            LandlockPart::ScopeAbstractUnix => "landlock.scope.abstract_unix",
        }
    }

    /// How to get this part: the kernel that has it.
    fn upgrade_hint(self) -> &'static str {
        match self {
            LandlockPart::Filesystem => LANDLOCK_HINT,
            LandlockPart::Truncate => "use Linux 6.2 or later (Landlock ABI 3)",
            LandlockPart::Tcp => "use Linux 6.7 or later (Landlock ABI 4)",
            LandlockPart::IoctlDev => "use Linux 6.10 or later (Landlock ABI 5)",
            LandlockPart::ScopeSignals | LandlockPart::ScopeAbstractUnix => {
                "use Linux 6.12 or later (Landlock ABI 6)"
            }
        }
    }
}

impl fmt::Display for LandlockPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LandlockPart::Filesystem => "Landlock file system rules",
            LandlockPart::Truncate => "Landlock truncate restriction",
            LandlockPart::IoctlDev => "Landlock device ioctl restriction",
            LandlockPart::Tcp => "Landlock TCP port rules",
            LandlockPart::ScopeSignals => "Landlock signal scoping",
            LandlockPart::ScopeAbstractUnix => "Landlock abstract unix socket scoping",
        })
    }
}

const LANDLOCK_HINT: &str = "use Linux 5.13 or later built with CONFIG_SECURITY_LANDLOCK=y, and enable it at boot: add landlock to the lsm= kernel parameter (e.g. lsm=landlock,lockdown,yama,integrity,apparmor) or to CONFIG_LSM";

/// Why the running kernel has no Landlock, from the errno of `landlock_create_ruleset`.
fn unavailable_reason(errno: Errno) -> &'static str {
    match errno {
        Errno::EOPNOTSUPP => "Landlock is built into this kernel but not enabled at boot",
        Errno::ENOSYS => "this kernel has no Landlock (older than Linux 5.13, or built without it)",
        _ => "this kernel refuses Landlock (landlock_create_ruleset failed)",
    }
}

/// What a kernel with Landlock ABI `abi` (or the errno saying it has none) enforces of `l`.
fn assess(l: &Landlock, abi: Result<u32, Errno>) -> Vec<(LandlockPart, Enforcement)> {
    l.parts()
        .into_iter()
        .map(|part| {
            let e = match abi {
                Err(errno) => Enforcement::NotEnforced {
                    reason: unavailable_reason(errno).to_owned(),
                    hint: LANDLOCK_HINT,
                },
                Ok(abi) if abi >= part.min_abi() => Enforcement::Enforced,
                Ok(abi) => Enforcement::NotEnforced {
                    reason: format!(
                        "needs Landlock ABI {}, this kernel has ABI {abi}",
                        part.min_abi()
                    ),
                    hint: part.upgrade_hint(),
                },
            };
            (part, e)
        })
        .collect()
}

// ───────────────────────────────────────── errors ─────────────────────────────────────────

/// Why Landlock rules could not be prepared.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// Landlock was required, and this kernel has none.
    #[error("Landlock is required but not available: {reason}; {}", LANDLOCK_HINT)]
    Unavailable {
        /// What was found.
        reason: &'static str,
        /// The errno of `landlock_create_ruleset` (`ENOSYS` or `EOPNOTSUPP`).
        errno: Errno,
    },

    /// Landlock was required, and this kernel's Landlock ABI lacks parts the rules need.
    #[error(
        "Landlock is required but this kernel (Landlock ABI {abi}) cannot enforce: {}",
        MissingList(missing)
    )]
    Unsupported {
        /// The running kernel's Landlock ABI.
        abi: u32,
        /// What it cannot enforce (each part says which ABI it needs).
        missing: Vec<LandlockPart>,
    },

    /// A path of a rule is not absolute (rules are resolved when the sandbox is prepared,
    /// so a relative path would depend on the working directory of that moment).
    #[error("Landlock rule path {path:?} is not absolute")]
    RelativePath {
        /// The path as given.
        path: PathBuf,
    },

    /// A path of a rule could not be opened (for example it does not exist).
    #[error("cannot open {path:?} for a Landlock rule: {source}")]
    OpenPath {
        /// The path as given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },

    /// [`Landlock::allow`] gave directory rights for a path that is not a directory.
    #[error("Landlock rule for {path:?}: {rights} only apply to directories, and this is not one")]
    NotADirectory {
        /// The path as given.
        path: PathBuf,
        /// The rights that need a directory.
        rights: FsAccess,
    },

    /// `landlock_create_ruleset` failed.
    #[error("failed to create the Landlock ruleset: {source}")]
    CreateRuleset {
        /// The error of the call.
        source: io::Error,
    },

    /// `landlock_add_rule` failed for a path.
    #[error("failed to add the Landlock rule for {path:?}: {source}")]
    AddPathRule {
        /// The path as given.
        path: PathBuf,
        /// The error of the call.
        source: io::Error,
    },

    /// `landlock_add_rule` failed for a TCP port.
    #[error("failed to add the Landlock rule for TCP port {port}: {source}")]
    AddPortRule {
        /// The port.
        port: u16,
        /// The error of the call.
        source: io::Error,
    },
}

struct MissingList<'a>(&'a [LandlockPart]);

impl fmt::Display for MissingList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{part} (needs ABI {})", part.min_abi())?;
        }
        if let Some(latest) = self.0.iter().max_by_key(|p| p.min_abi()) {
            write!(f, "; {}", latest.upgrade_hint())?;
        }
        Ok(())
    }
}

impl LandlockError {
    /// The errno behind this error, where there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            LandlockError::Unavailable { errno, .. } => Some(*errno),
            LandlockError::OpenPath { source, .. }
            | LandlockError::CreateRuleset { source }
            | LandlockError::AddPathRule { source, .. }
            | LandlockError::AddPortRule { source, .. } => {
                source.raw_os_error().map(Errno::from_raw)
            }
            _ => None,
        }
    }

    /// Something a user can do about this error, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            LandlockError::Unavailable { .. } => Some(LANDLOCK_HINT),
            LandlockError::Unsupported { missing, .. } => missing
                .iter()
                .max_by_key(|p| p.min_abi())
                .map(|p| p.upgrade_hint()),
            LandlockError::OpenPath { .. } => Some(
                "every path of a Landlock rule must exist when the sandbox is spawned; create it first or leave it out",
            ),
            _ => None,
        }
    }
}

/// The OS error inside an error of the `landlock` crate (so its types stay out of ours).
fn os_error(e: &landlock::RulesetError) -> io::Error {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(code) = err
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return io::Error::from_raw_os_error(code);
        }
        cur = err.source();
    }
    io::Error::other(e.to_string())
}

// ───────────────────────────────────────── the parent's side ─────────────────────────────────────────

/// The running kernel's Landlock ABI version, or the errno of `landlock_create_ruleset` when it
/// has none. Found once per process.
fn host_abi() -> Result<u32, Errno> {
    static ABI: OnceLock<Result<u32, Errno>> = OnceLock::new();
    *ABI.get_or_init(|| {
        const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;
        // SAFETY: with this flag the kernel reads no attribute (NULL, size 0) and returns the
        // ABI version or -1 with errno.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        if rc < 0 {
            Err(Errno::last())
        } else {
            Ok(u32::try_from(rc).unwrap_or(0))
        }
    })
}

/// The running kernel's Landlock ABI version: 0 when it has no Landlock (older than Linux 5.13,
/// built without it, or not enabled at boot), else 1, 2, ... (see the [module](self) docs).
pub fn abi() -> u32 {
    host_abi().unwrap_or(0)
}

/// A Landlock ruleset ready for the sandboxed process, and the report of what it enforces.
///
/// Built once in the parent; it may be kept and used by any number of spawns (restricting
/// does not consume the ruleset). The rules refer to the inodes that the paths named when it
/// was prepared.
#[derive(Debug)]
pub(crate) struct PreparedLandlock {
    /// The ruleset (close-on-exec); `None` when the kernel has no Landlock (best effort).
    fd: Option<OwnedFd>,
    report: Vec<(LandlockPart, Enforcement)>,
}

impl PreparedLandlock {
    /// The descriptor to pass to [`restrict`] in the sandboxed process, or `None` when there is
    /// nothing to enforce (this kernel has no Landlock).
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// What the ruleset enforces, part by part, in a fixed order.
    pub(crate) fn report(&self) -> &[(LandlockPart, Enforcement)] {
        &self.report
    }
}

/// Turn `l` into a Landlock ruleset for the running kernel (in the parent, before the clone:
/// this allocates and opens files).
///
/// Opens every path (a missing path is an error naming it), builds the ruleset with the rights
/// the running kernel supports, adds the rules and creates it. With [`Compat::BestEffort`] a
/// kernel without Landlock gives a `PreparedLandlock` without descriptor, and parts the kernel's
/// ABI lacks are reported as not enforced. With [`Compat::Required`] both are errors.
pub(crate) fn prepare(l: &Landlock, compat: Compat) -> Result<PreparedLandlock, LandlockError> {
    prepare_for(l, compat, host_abi())
}

/// [`prepare`] for a kernel with Landlock ABI `abi` (which must not be above the running
/// kernel's; tests pass a lower one to see what an older kernel gets).
fn prepare_for(
    l: &Landlock,
    compat: Compat,
    abi: Result<u32, Errno>,
) -> Result<PreparedLandlock, LandlockError> {
    // Bad input is an error whatever the kernel supports.
    let opened = open_paths(l)?;

    let report = assess(l, abi);
    if compat == Compat::Required {
        let abi = abi.map_err(|errno| LandlockError::Unavailable {
            reason: unavailable_reason(errno),
            errno,
        })?;
        let missing: Vec<LandlockPart> = report
            .iter()
            .filter(|(_, e)| *e != Enforcement::Enforced)
            .map(|(p, _)| *p)
            .collect();
        if !missing.is_empty() {
            return Err(LandlockError::Unsupported { abi, missing });
        }
    }
    let Ok(abi) = abi else {
        return Ok(PreparedLandlock { fd: None, report });
    };

    // Only what this ABI supports is asked of the crate, so that "hard requirement" can only
    // fail if the crate disagrees with this module about the kernel: then fail closed.
    let level = match compat {
        Compat::BestEffort => CompatLevel::BestEffort,
        Compat::Required => CompatLevel::HardRequirement,
    };
    let handled_fs = FsAccess::supported_by(abi);
    let tcp = l.restricts_tcp() && abi >= LandlockPart::Tcp.min_abi();
    let mut scopes = BitFlags::<Scope>::EMPTY;
    if l.scope_signals && abi >= LandlockPart::ScopeSignals.min_abi() {
        scopes |= Scope::Signal;
    }
    if l.scope_abstract_unix && abi >= LandlockPart::ScopeAbstractUnix.min_abi() {
        scopes |= Scope::AbstractUnixSocket;
    }

    let create = |e: landlock::RulesetError| LandlockError::CreateRuleset {
        source: os_error(&e),
    };
    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(handled_fs.to_landlock())
        .map_err(create)?;
    if tcp {
        ruleset = ruleset
            .handle_access(if l.connect_only {
                BitFlags::from(AccessNet::ConnectTcp)
            } else {
                AccessNet::BindTcp | AccessNet::ConnectTcp
            })
            .map_err(create)?;
    }
    if !scopes.is_empty() {
        ruleset = ruleset.scope(scopes).map_err(create)?;
    }
    let mut created = ruleset.create().map_err(create)?;

    for (rule, file, is_dir) in opened {
        let mut access = rule.access & handled_fs;
        if !is_dir {
            access = access & FsAccess::FILE;
        }
        if access.is_empty() {
            // Only rights this kernel does not restrict anyway: nothing to allow.
            continue;
        }
        created = created
            .add_rule(PathBeneath::new(&file, access.to_landlock()))
            .map_err(|e| LandlockError::AddPathRule {
                path: rule.path.clone(),
                source: os_error(&e),
            })?;
    }
    if tcp {
        let ports = (l.connect_tcp.iter().map(|p| (*p, AccessNet::ConnectTcp)))
            .chain(l.bind_tcp.iter().map(|p| (*p, AccessNet::BindTcp)));
        for (port, access) in ports {
            created = created.add_rule(NetPort::new(port, access)).map_err(|e| {
                LandlockError::AddPortRule {
                    port,
                    source: os_error(&e),
                }
            })?;
        }
    }

    let fd: Option<OwnedFd> = created.into();
    match fd {
        Some(fd) => Ok(PreparedLandlock {
            fd: Some(fd),
            report,
        }),
        // The crate saw no Landlock although this module did: never report rules as enforced
        // that are not.
        None => Err(LandlockError::CreateRuleset {
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        }),
    }
}

/// A new ruleset for the Landlock domain that every sandboxed process (and every process
/// joining a sandbox) enters before its program starts, even without Landlock rules; or why
/// there can be none (the errno of `landlock_create_ruleset` and what it means).
///
/// A process in a Landlock domain may not ptrace, nor open `/proc/PID/mem`, `environ`, `fd/`
/// or `exe` of, any process outside its domain (or a domain below it): a sandbox without a pid
/// namespace cannot reach into its caller through `/proc/$PPID/mem`, and a process sent into
/// a sandbox ([`Child::exec`](crate::Child::exec)) gets a fresh domain of its own, which the
/// sandbox's processes cannot reach either. From ABI 6 (Linux 6.12) the domain also keeps
/// signals and connections to abstract unix sockets inside it. The ruleset handles only
/// [`FsAccess::MAKE_BLOCK`] and allows it nowhere (a ruleset must handle some right; making
/// block devices needs CAP_MKNOD, which no sandbox has), so it restricts no file access a
/// sandbox has.
///
/// One system call; the descriptor is close-on-exec and owned by the caller.
pub(crate) fn baseline() -> Result<OwnedFd, (Errno, &'static str)> {
    /// `struct landlock_ruleset_attr` (its size tells the kernel which fields there are).
    #[repr(C)]
    struct Attr {
        handled_access_fs: u64,
        handled_access_net: u64,
        scoped: u64,
    }
    const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    const SCOPE_SIGNAL: u64 = 1 << 1;
    let abi = host_abi().map_err(|e| (e, unavailable_reason(e)))?;
    let (scoped, size) = match abi {
        6.. => (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL, 24usize),
        4 | 5 => (0, 16),
        _ => (0, 8),
    };
    let attr = Attr {
        handled_access_fs: FsAccess::MAKE_BLOCK.bits(),
        handled_access_net: 0,
        scoped,
    };
    // SAFETY: `attr` is a valid ruleset attribute of at least `size` bytes; the kernel returns
    // a new descriptor (close-on-exec) or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const Attr,
            size,
            0u32,
        )
    };
    if fd < 0 {
        let e = Errno::last();
        return Err((e, unavailable_reason(e)));
    }
    // SAFETY: a new descriptor, owned by nobody else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as RawFd) })
}

/// Whether the running kernel gives every sandbox the domain of [`baseline`], and why not.
pub(crate) fn baseline_available() -> Result<(), &'static str> {
    host_abi().map(drop).map_err(unavailable_reason)
}

/// The hint for a kernel without Landlock.
pub(crate) const fn unavailable_hint() -> &'static str {
    LANDLOCK_HINT
}

/// Open every rule's path (`O_PATH`, close-on-exec), with whether it is a directory.
fn open_paths(l: &Landlock) -> Result<Vec<(&PathRule, File, bool)>, LandlockError> {
    l.paths
        .iter()
        .map(|rule| {
            if !rule.path.is_absolute() {
                return Err(LandlockError::RelativePath {
                    path: rule.path.clone(),
                });
            }
            let open_err = |source| LandlockError::OpenPath {
                path: rule.path.clone(),
                source,
            };
            let file = File::options()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(&rule.path)
                .map_err(open_err)?;
            let is_dir = file.metadata().map_err(open_err)?.is_dir();
            let dir_only = rule.access & !FsAccess::FILE;
            if rule.exact && !is_dir && !dir_only.is_empty() {
                return Err(LandlockError::NotADirectory {
                    path: rule.path.clone(),
                    rights: dir_only,
                });
            }
            Ok((rule, file, is_dir))
        })
        .collect()
}

// ───────────────────────────────────────── the child's side ─────────────────────────────────────────

/// Restrict the calling thread, and every process it starts from now on, with the ruleset
/// `ruleset_fd` (from [`PreparedLandlock::raw_fd`]): the raw `landlock_restrict_self(fd, 0)`.
///
/// Runs in the sandboxed process after the clone: async-signal-safe, it allocates nothing,
/// takes no lock and cannot panic. Contract for the caller:
/// - `no_new_privs` is already set (or the thread holds `CAP_SYS_ADMIN` in its user namespace),
///   else the kernel answers `EPERM`;
/// - every mount, `pivot_root` and `chroot` is done: a Landlock-restricted thread may no longer
///   change its mount topology (`EPERM`);
/// - the process is single-threaded (Landlock restricts only the calling thread);
/// - the descriptor stays open until this returns; it is close-on-exec, so it is gone after
///   `execve`, and closing it earlier is harmless.
///
/// Errors are the kernel's: `EPERM` (no `no_new_privs`), `E2BIG` (too many stacked
/// domains, 16), `EBADF`/`EBADFD` (not a ruleset), `EINVAL`, `EOPNOTSUPP`.
pub(crate) fn restrict(ruleset_fd: RawFd) -> Result<(), Errno> {
    // SAFETY: a system call with integer arguments only; the kernel checks the descriptor.
    let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset_fd, 0u32) };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

// ───────────────────────────────────────── test hooks ─────────────────────────────────────────

/// Not part of the API: prepare `l` as a spawn would and return the report, without restricting
/// anything. For ringfence's integration tests (feature `internals`).
#[cfg(feature = "internals")]
#[doc(hidden)]
pub fn __prepare_for_tests(
    l: &Landlock,
    compat: Compat,
) -> Result<Vec<(LandlockPart, Enforcement)>, LandlockError> {
    prepare(l, compat).map(|p| p.report().to_vec())
}

/// Not part of the API: restrict the **calling thread** (irreversibly) as a sandboxed process
/// would be: prepare, `no_new_privs`, [`restrict`]. For ringfence's integration tests, which
/// call it in a fresh process only (feature `internals`).
#[cfg(feature = "internals")]
#[doc(hidden)]
pub fn __restrict_self_for_tests(
    l: &Landlock,
    compat: Compat,
) -> Result<Vec<(LandlockPart, Enforcement)>, LandlockError> {
    let prepared = prepare(l, compat)?;
    if let Some(fd) = prepared.raw_fd() {
        // SAFETY: plain prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        assert_eq!(rc, 0, "PR_SET_NO_NEW_PRIVS: {}", Errno::last());
        if let Err(errno) = restrict(fd) {
            panic!("landlock_restrict_self: {errno}");
        }
    }
    Ok(prepared.report().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_enforced(report: &[(LandlockPart, Enforcement)]) -> Vec<LandlockPart> {
        report
            .iter()
            .filter(|(_, e)| *e != Enforcement::Enforced)
            .map(|(p, _)| *p)
            .collect()
    }

    #[test]
    fn fs_access_sets() {
        assert_eq!(
            FsAccess::READ,
            FsAccess::EXECUTE | FsAccess::READ_FILE | FsAccess::READ_DIR
        );
        assert!(FsAccess::ALL.contains(FsAccess::IOCTL_DEV));
        assert_eq!(FsAccess::ALL.bits(), 0xffff);
        assert_eq!(!FsAccess::ALL, FsAccess::empty());
        assert_eq!(FsAccess::supported_by(0), FsAccess::empty());
        assert_eq!(
            FsAccess::supported_by(1),
            FsAccess::ALL & !(FsAccess::REFER | FsAccess::TRUNCATE | FsAccess::IOCTL_DEV)
        );
        assert_eq!(
            FsAccess::supported_by(2),
            FsAccess::supported_by(1) | FsAccess::REFER
        );
        assert_eq!(FsAccess::supported_by(5), FsAccess::ALL);
        assert_eq!(FsAccess::supported_by(99), FsAccess::ALL);
        assert_eq!(
            format!("{:?}", FsAccess::READ),
            "FsAccess(EXECUTE | READ_FILE | READ_DIR)"
        );
        assert_eq!(FsAccess::empty().to_string(), "(none)");
    }

    #[test]
    fn fs_access_bits_are_the_kernels() {
        for (a, name, l, _) in FsAccess::TABLE {
            assert_eq!(a.bits(), BitFlags::from(l).bits(), "{name}");
        }
        // The crate agrees on what each ABI knows, for the rights ringfence models.
        for abi in 0..=7 {
            let crate_set = landlock::Access::from_all(landlock::ABI::from(abi as i32));
            let crate_set: BitFlags<AccessFs> = crate_set;
            assert_eq!(
                FsAccess::supported_by(abi).to_landlock(),
                crate_set & FsAccess::ALL.to_landlock(),
                "ABI {abi}"
            );
        }
    }

    #[test]
    fn report_on_an_old_kernel_says_what_is_missing_and_why() {
        let l = Landlock::new()
            .read_only(["/usr"])
            .connect_tcp(80)
            .scope_signals()
            .scope_abstract_unix();
        let r = assess(&l, Ok(2));
        assert_eq!(
            r.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            [
                LandlockPart::Filesystem,
                LandlockPart::Truncate,
                LandlockPart::IoctlDev,
                LandlockPart::Tcp,
                LandlockPart::ScopeSignals,
                LandlockPart::ScopeAbstractUnix
            ]
        );
        assert_eq!(
            not_enforced(&r),
            [
                LandlockPart::Truncate,
                LandlockPart::IoctlDev,
                LandlockPart::Tcp,
                LandlockPart::ScopeSignals,
                LandlockPart::ScopeAbstractUnix
            ]
        );
        let Some((_, Enforcement::NotEnforced { reason, hint })) =
            r.iter().find(|(p, _)| *p == LandlockPart::Tcp)
        else {
            panic!("{r:?}")
        };
        assert_eq!(reason, "needs Landlock ABI 4, this kernel has ABI 2");
        assert!(hint.contains("6.7"), "{hint}");

        assert!(not_enforced(&assess(&l, Ok(6))).is_empty());
        // Parts that were not asked for are not reported.
        assert_eq!(assess(&Landlock::new(), Ok(7)).len(), 3);
    }

    #[test]
    fn report_without_landlock_gives_the_boot_hint() {
        let r = assess(&Landlock::new(), Err(Errno::EOPNOTSUPP));
        for (_, e) in &r {
            let Enforcement::NotEnforced { reason, hint } = e else {
                panic!("{r:?}")
            };
            assert!(reason.contains("not enabled at boot"), "{reason}");
            assert!(hint.contains("lsm="), "{hint}");
        }
        let r = assess(&Landlock::new(), Err(Errno::ENOSYS));
        assert!(
            matches!(&r[0].1, Enforcement::NotEnforced { reason, .. } if reason.contains("5.13"))
        );
    }

    #[test]
    fn best_effort_without_landlock_prepares_nothing() {
        let p = prepare_for(
            &Landlock::new().read_only(["/usr"]),
            Compat::BestEffort,
            Err(Errno::ENOSYS),
        )
        .unwrap();
        assert_eq!(p.raw_fd(), None);
        assert_eq!(not_enforced(p.report()).len(), 3);
    }

    #[test]
    fn required_without_landlock_is_an_error() {
        let e =
            prepare_for(&Landlock::new(), Compat::Required, Err(Errno::EOPNOTSUPP)).unwrap_err();
        assert!(matches!(
            e,
            LandlockError::Unavailable {
                errno: Errno::EOPNOTSUPP,
                ..
            }
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("not enabled at boot") && msg.contains("lsm="),
            "{msg}"
        );
    }

    #[test]
    fn required_with_an_old_abi_names_every_missing_part() {
        let e = prepare_for(&Landlock::new().scope_signals(), Compat::Required, Ok(4)).unwrap_err();
        let LandlockError::Unsupported { abi, missing } = &e else {
            panic!("{e}")
        };
        assert_eq!(*abi, 4);
        assert_eq!(
            missing,
            &[LandlockPart::IoctlDev, LandlockPart::ScopeSignals]
        );
        let msg = e.to_string();
        assert_eq!(
            msg,
            "Landlock is required but this kernel (Landlock ABI 4) cannot enforce: Landlock device ioctl restriction (needs ABI 5), Landlock signal scoping (needs ABI 6); use Linux 6.12 or later (Landlock ABI 6)"
        );
        assert_eq!(e.hint(), Some("use Linux 6.12 or later (Landlock ABI 6)"));
    }

    #[test]
    fn bad_paths_are_errors_naming_them() {
        let e = prepare_for(
            &Landlock::new().read_only(["/usr", "/no/such/dir"]),
            Compat::BestEffort,
            Ok(7),
        )
        .unwrap_err();
        assert!(
            matches!(&e, LandlockError::OpenPath { path, .. } if path == Path::new("/no/such/dir"))
        );
        assert_eq!(e.errno(), Some(Errno::ENOENT));
        assert!(e.to_string().contains("\"/no/such/dir\""), "{e}");

        // Even where the kernel has no Landlock: the configuration is wrong everywhere.
        let e = prepare_for(
            &Landlock::new().read_write(["/no/such/dir"]),
            Compat::BestEffort,
            Err(Errno::ENOSYS),
        )
        .unwrap_err();
        assert!(matches!(e, LandlockError::OpenPath { .. }));

        let e = prepare_for(
            &Landlock::new().read_only(["usr"]),
            Compat::BestEffort,
            Ok(7),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "Landlock rule path \"usr\" is not absolute");

        let e = prepare_for(
            &Landlock::new().allow("/etc/passwd", FsAccess::READ_FILE | FsAccess::MAKE_REG),
            Compat::BestEffort,
            Ok(7),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Landlock rule for \"/etc/passwd\": MAKE_REG only apply to directories, and this is not one"
        );
    }

    #[test]
    fn prepares_a_ruleset_on_this_kernel() {
        if abi() == 0 {
            eprintln!("SKIPPED: this kernel has no Landlock");
            return;
        }
        let l = Landlock::new()
            .read_only(["/usr", "/etc/passwd"]) // a file: directory rights are dropped
            .read_write(["/tmp"])
            .allow("/etc", FsAccess::READ_DIR)
            .connect_tcp(443)
            .bind_tcp(8080);
        let p = prepare(&l, Compat::BestEffort).unwrap();
        let fd = p.raw_fd().expect("a ruleset descriptor");
        // SAFETY: fcntl on a descriptor this test owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        assert_eq!(p.report(), assess(&l, host_abi()).as_slice());

        // A lower ABI than the kernel's works too: the ruleset handles only what it knows.
        let p = prepare_for(&l, Compat::BestEffort, Ok(1)).unwrap();
        assert!(p.raw_fd().is_some());
        assert!(not_enforced(p.report()).contains(&LandlockPart::Tcp));
    }

    #[test]
    fn restrict_with_a_bad_descriptor_returns_the_errno() {
        // Not a ruleset: the kernel refuses before restricting anything.
        // (EPERM comes first for a caller without no_new_privs and without CAP_SYS_ADMIN.)
        assert!(matches!(restrict(-1), Err(Errno::EBADF | Errno::EPERM)));
        let f = File::open("/dev/null").unwrap();
        assert!(restrict(f.as_raw_fd()).is_err());
    }
}
