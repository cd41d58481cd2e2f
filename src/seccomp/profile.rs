//! The profile model: pure data, validated, no kernel calls.

use std::fmt;

use super::tables;

/// The largest errno a seccomp `ERRNO` action can carry (exclusive bound).
///
/// The kernel passes `-(data)` back to the caller; values of 4096 and above are not
/// valid errnos and libseccomp/runc refuse them.
pub const MAX_ERRNO: u16 = 4096;

/// The most conditions one rule may have (the BPF jumps inside a rule are 8-bit).
pub const MAX_CONDS: usize = 24;

/// A CPU architecture whose syscall table ringfence knows.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// x86_64 (64-bit ABI only: i386 and x32 calls are killed by the guard).
    X86_64,
    /// aarch64 (64-bit ABI only: arm32 calls are killed by the guard).
    Aarch64,
    /// i386 (32-bit x86, also the `int 0x80` / compat ABI of an x86_64 kernel). Filters for it
    /// can be compiled, checked and exported on any host; arguments are 32-bit there (the
    /// kernel zero-extends them into `seccomp_data`).
    I386,
}

impl Arch {
    /// The architecture this library was compiled for, if ringfence supports it.
    pub const fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else if cfg!(target_arch = "x86") {
            Some(Arch::I386)
        } else {
            None
        }
    }

    /// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch` for this architecture.
    pub const fn audit_arch(self) -> u32 {
        match self {
            // AUDIT_ARCH_X86_64 = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
            Arch::X86_64 => 0xc000_003e,
            // AUDIT_ARCH_AARCH64 = EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
            Arch::Aarch64 => 0xc000_00b7,
            // AUDIT_ARCH_I386 = EM_386 | __AUDIT_ARCH_LE
            Arch::I386 => 0x4000_0003,
        }
    }

    /// The name used by the OCI runtime spec (`SCMP_ARCH_X86_64`, `SCMP_ARCH_AARCH64`,
    /// `SCMP_ARCH_X86`).
    pub const fn oci_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
            Arch::I386 => "SCMP_ARCH_X86",
        }
    }

    /// The Go name (`GOARCH`) Docker profiles use in `includes.arches`.
    pub const fn go_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::I386 => "386",
        }
    }

    pub(crate) fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => tables::X86_64,
            Arch::Aarch64 => tables::AARCH64,
            Arch::I386 => tables::I386,
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = String;

    /// `x86_64` (or `amd64`), `aarch64` (or `arm64`), `i386` (or `x86`, `386`).
    fn from_str(s: &str) -> Result<Arch, String> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            "i386" | "x86" | "386" => Ok(Arch::I386),
            other => Err(format!(
                "unknown architecture {other:?} (expected x86_64, i386 or aarch64)"
            )),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::I386 => "i386",
        })
    }
}

/// Everything that can go wrong while building, importing or compiling a profile.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// A masked comparison whose value has bits outside its mask (it could never match as
    /// written, and BPF compilers would quietly compare with `value & mask`).
    #[error("argument {index}: masked_eq value {value:#x} has bits outside the mask {mask:#x}")]
    MaskedValue {
        /// The argument index.
        index: u8,
        /// The mask.
        mask: u64,
        /// The value.
        value: u64,
    },
    /// The name is not a syscall of the architecture.
    #[error("unknown syscall \"{name}\" on {arch}")]
    UnknownSyscall {
        /// The name as given.
        name: String,
        /// The architecture it was looked up for.
        arch: Arch,
    },
    /// The host architecture has no syscall table in ringfence.
    #[error("seccomp profiles are not supported on this architecture")]
    UnsupportedArch,
    /// A rule names a syscall resolved for another architecture than the profile's.
    #[error(
        "syscall \"{name}\" was resolved for {syscall_arch}, but the profile is for {profile_arch}"
    )]
    ArchMismatch {
        /// The syscall's name.
        name: &'static str,
        /// The architecture the syscall was resolved for.
        syscall_arch: Arch,
        /// The profile's architecture.
        profile_arch: Arch,
    },
    /// Syscalls have six arguments, 0 to 5.
    #[error("argument index {index} is out of range (0 to 5)")]
    ArgIndex {
        /// The index given.
        index: u64,
    },
    /// A 32-bit comparison was given a value that does not fit in 32 bits.
    #[error("value {value:#x} does not fit the 32-bit comparison of argument {index}")]
    Value32 {
        /// The argument index.
        index: u8,
        /// The value given.
        value: u64,
    },
    /// An errno of 4096 or more.
    #[error("errno {errno} is out of range (must be below 4096)")]
    ErrnoRange {
        /// The errno given.
        errno: u64,
    },
    /// An imported `errnoRet` (or `defaultErrnoRet`) of 4095 or more, which libseccomp 2.5,
    /// and so runc and crun, refuse.
    #[error("errno {errno} is out of range (OCI profiles take 0 to 4094, as libseccomp does)")]
    ErrnoRet {
        /// The errno given.
        errno: u64,
    },
    /// A rule with more conditions than [`MAX_CONDS`].
    #[error("a rule has {count} conditions, more than the limit of 24")]
    TooManyConds {
        /// Conditions in the rule.
        count: usize,
    },
    /// The compiled filter is longer than the kernel accepts (`BPF_MAXINSNS`).
    #[error("the compiled filter has {len} instructions, more than the kernel's limit of 4096")]
    TooLarge {
        /// Instructions in the program that was refused.
        len: usize,
    },
    /// The profile could not be serialised to JSON (a bug in ringfence's exporter).
    #[error("cannot write the profile as JSON: {0}")]
    Backend(String),
    /// The JSON could not be parsed.
    #[error("malformed JSON at line {line} column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// An action name the importer does not know.
    #[error("unknown action \"{action}\"")]
    UnknownAction {
        /// The action as written.
        action: String,
    },
    /// A comparison operator the importer does not know.
    #[error("unknown operator \"{op}\"")]
    UnknownOperator {
        /// The operator as written.
        op: String,
    },
    /// An architecture name the importer does not know.
    #[error("unknown architecture \"{arch}\"")]
    UnknownArch {
        /// The architecture as written.
        arch: String,
    },
    /// A `minKernel` that is not `MAJOR.MINOR`.
    #[error("invalid kernel version \"{version}\"")]
    KernelVersion {
        /// The version as written.
        version: String,
    },
    /// Both `architectures` and `archMap` are given.
    #[error("\"architectures\" and \"archMap\" cannot both be given")]
    ArchitecturesAndArchMap,
    /// A syscall entry without `name` or `names`.
    #[error("no syscall name given")]
    NoName,
    /// The profile's meaning depends on rule order in a way OCI runtimes do not keep
    /// (see [`Profile::order_sensitive`]).
    #[error(
        "the rules for \"{syscall}\" give it different actions depending on their order, which libseccomp-based runtimes do not keep"
    )]
    OrderSensitive {
        /// The syscall concerned.
        syscall: &'static str,
    },
    /// The profile cannot be expressed in OCI JSON.
    #[error("this profile cannot be exported to OCI JSON: {reason}")]
    Export {
        /// Why.
        reason: &'static str,
    },
    /// An error at a location in an imported JSON document.
    #[error("{path}: {error}")]
    At {
        /// The JSON path, e.g. `syscalls[12].args[0].op`.
        path: String,
        /// What is wrong there (part of the message, so not also returned as `source()`).
        error: Box<ProfileError>,
    },
}

impl ProfileError {
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn at(self, path: impl Into<String>) -> ProfileError {
        ProfileError::At {
            path: path.into(),
            error: Box::new(self),
        }
    }
}

/// A syscall resolved to its number on one architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Syscall {
    arch: Arch,
    nr: u32,
    name: &'static str,
}

impl Syscall {
    /// Resolves `name` on the host architecture.
    ///
    /// ```
    /// let s = ringfence::Syscall::named("socket").unwrap();
    /// assert_eq!(s.name(), "socket");
    /// assert!(ringfence::Syscall::named("no_such_call").is_err());
    /// ```
    pub fn named(name: &str) -> Result<Syscall, ProfileError> {
        Syscall::named_for(Arch::native().ok_or(ProfileError::UnsupportedArch)?, name)
    }

    /// Resolves `name` on `arch`.
    pub fn named_for(arch: Arch, name: &str) -> Result<Syscall, ProfileError> {
        let table = arch.table();
        match table.binary_search_by(|(n, _)| (*n).cmp(name)) {
            Ok(i) => {
                let (name, nr) = table[i];
                Ok(Syscall { arch, nr, name })
            }
            Err(_) => Err(ProfileError::UnknownSyscall {
                name: name.to_owned(),
                arch,
            }),
        }
    }

    /// Looks a syscall up by number on `arch`.
    pub fn from_nr(arch: Arch, nr: u32) -> Option<Syscall> {
        arch.table()
            .iter()
            .find(|(_, n)| *n == nr)
            .map(|&(name, nr)| Syscall { arch, nr, name })
    }

    /// The syscall's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The syscall's number on [`Syscall::arch`].
    pub fn nr(&self) -> u32 {
        self.nr
    }

    /// The architecture the number belongs to.
    pub fn arch(&self) -> Arch {
        self.arch
    }
}

/// The 64-bit `(mask, value)` of an equality condition (`eq`, `masked_eq`, on 32 or 64
/// bits), `None` for an order comparison.
fn as_masked(c: &Cond) -> Option<(u64, u64)> {
    let width = if c.bits32 { 0xffff_ffff } else { u64::MAX };
    match c.op {
        CmpOp::Eq => Some((width, c.value)),
        CmpOp::MaskedEq(m) => Some((m & width, c.value & m & width)),
        _ => None,
    }
}

/// Whether two rules' conditions can never hold together: some argument has an equality in
/// each that disagree on a bit both look at, or `== v` in one and `!= v` in the other.
fn disjoint(a: &[Cond], b: &[Cond]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            let ne_eq = |n: &Cond, e: &Cond| {
                // `arg != v` against `arg == v`, compared on the same width.
                n.op == CmpOp::Ne && e.op == CmpOp::Eq && n.bits32 == e.bits32 && n.value == e.value
            };
            x.index == y.index
                && (ne_eq(x, y)
                    || ne_eq(y, x)
                    || matches!((as_masked(x), as_masked(y)), (Some((ma, va)), Some((mb, vb))) if (va ^ vb) & ma & mb != 0))
        })
    })
}

/// Whether `name` is a syscall on some architecture (shipped table or known elsewhere).
#[cfg_attr(not(feature = "serde"), allow(dead_code))]
pub(crate) fn known_anywhere(name: &str) -> bool {
    [tables::X86_64, tables::I386, tables::AARCH64]
        .iter()
        .any(|t| t.binary_search_by(|(n, _)| (*n).cmp(name)).is_ok())
        || tables::OTHER_ARCHES.binary_search(&name).is_ok()
}

/// What the kernel does with a syscall.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Run the syscall.
    Allow,
    /// Fail the syscall with this errno (below 4096), without running it.
    Errno(u16),
    /// Kill the whole process (`SECCOMP_RET_KILL_PROCESS`).
    KillProcess,
    /// Kill the calling thread (`SECCOMP_RET_KILL_THREAD`).
    KillThread,
    /// Send `SIGSYS` to the thread (`SECCOMP_RET_TRAP`).
    Trap,
    /// Run the syscall and log it to the audit log (`SECCOMP_RET_LOG`).
    Log,
    /// Ask a supervisor through the user-notification fd (`SECCOMP_RET_USER_NOTIF`).
    Notify,
    /// Notify a ptrace tracer with this message (`SECCOMP_RET_TRACE`); without a tracer the
    /// syscall fails with `ENOSYS`. Kept for OCI profiles.
    Trace(u16),
}

/// `SECCOMP_RET_USER_NOTIF`.
pub(crate) const RET_USER_NOTIF: u32 = 0x7fc0_0000;

impl Action {
    /// `Errno(EPERM)`: what Docker's profiles and ringfence's presets return for denied calls.
    pub const EPERM: Action = Action::Errno(libc::EPERM as u16);

    /// The 32-bit value a seccomp filter returns for this action.
    pub fn to_ret(self) -> u32 {
        match self {
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Errno(e) => libc::SECCOMP_RET_ERRNO | u32::from(e),
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
            Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
            Action::Trap => libc::SECCOMP_RET_TRAP,
            Action::Log => libc::SECCOMP_RET_LOG,
            Action::Notify => RET_USER_NOTIF,
            Action::Trace(m) => libc::SECCOMP_RET_TRACE | u32::from(m),
        }
    }

    /// The action a filter return value stands for (`None` for unknown values).
    pub fn from_ret(ret: u32) -> Option<Action> {
        let data = (ret & libc::SECCOMP_RET_DATA) as u16;
        Some(match ret & libc::SECCOMP_RET_ACTION_FULL {
            libc::SECCOMP_RET_ALLOW => Action::Allow,
            libc::SECCOMP_RET_ERRNO => Action::Errno(data),
            libc::SECCOMP_RET_KILL_PROCESS => Action::KillProcess,
            libc::SECCOMP_RET_KILL_THREAD => Action::KillThread,
            libc::SECCOMP_RET_TRAP => Action::Trap,
            libc::SECCOMP_RET_LOG => Action::Log,
            RET_USER_NOTIF => Action::Notify,
            libc::SECCOMP_RET_TRACE => Action::Trace(data),
            _ => return None,
        })
    }

    fn validate(self) -> Result<(), ProfileError> {
        match self {
            Action::Errno(e) if e >= MAX_ERRNO => Err(ProfileError::ErrnoRange {
                errno: u64::from(e),
            }),
            _ => Ok(()),
        }
    }
}

/// A comparison operator of a [`Cond`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `arg == value`
    Eq,
    /// `arg != value`
    Ne,
    /// `arg < value` (unsigned)
    Lt,
    /// `arg <= value` (unsigned)
    Le,
    /// `arg > value` (unsigned)
    Gt,
    /// `arg >= value` (unsigned)
    Ge,
    /// `arg & mask == value`
    MaskedEq(u64),
}

/// A condition on one syscall argument. Build it with [`Cond::arg`] or [`Cond::arg32`].
///
/// ```
/// use ringfence::Cond;
/// let c = Cond::arg(0).masked_eq(0x7e02_0000, 0); // no namespace flag set
/// let d = Cond::arg32(1).eq(0x5412);              // low 32 bits only
/// # let _ = (c, d);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cond {
    index: u8,
    bits32: bool,
    op: CmpOp,
    value: u64,
}

/// An argument of the syscall, selected by [`Cond::arg`] or [`Cond::arg32`]; turn it into a
/// [`Cond`] with a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    index: u8,
    bits32: bool,
}

impl Cond {
    /// Argument `index` (0 to 5), compared on all 64 bits. An index above 5 makes the rule
    /// (and so the profile) invalid: the error surfaces when the profile is checked or compiled.
    pub const fn arg(index: u8) -> Arg {
        Arg {
            index,
            bits32: false,
        }
    }

    /// Argument `index`, compared on its low 32 bits only (the high half is ignored, as the
    /// kernel does for `int`/`unsigned int` parameters such as `ioctl`'s request).
    pub const fn arg32(index: u8) -> Arg {
        Arg {
            index,
            bits32: true,
        }
    }

    /// The argument index.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// Whether only the low 32 bits are compared.
    pub fn is_32bit(&self) -> bool {
        self.bits32
    }

    /// The operator.
    pub fn op(&self) -> CmpOp {
        self.op
    }

    /// The value compared with (the datum for [`CmpOp::MaskedEq`]).
    pub fn value(&self) -> u64 {
        self.value
    }

    /// Whether the condition holds for an argument value (used by tests and learn mode).
    pub fn matches(&self, arg: u64) -> bool {
        let a = if self.bits32 { arg & 0xffff_ffff } else { arg };
        match self.op {
            CmpOp::Eq => a == self.value,
            CmpOp::Ne => a != self.value,
            CmpOp::Lt => a < self.value,
            CmpOp::Le => a <= self.value,
            CmpOp::Gt => a > self.value,
            CmpOp::Ge => a >= self.value,
            CmpOp::MaskedEq(m) => a & m == self.value,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ProfileError> {
        if self.index > 5 {
            return Err(ProfileError::ArgIndex {
                index: u64::from(self.index),
            });
        }
        if let CmpOp::MaskedEq(m) = self.op {
            // `arg & mask == value` can never hold when `value` has bits outside the mask; BPF
            // compilers (seccompiler, libseccomp) compare with `value & mask` instead. Refuse
            // the ambiguity rather than pick a reading.
            if self.value & !m != 0 {
                return Err(ProfileError::MaskedValue {
                    index: self.index,
                    mask: m,
                    value: self.value,
                });
            }
        }
        if self.bits32 {
            let mask = match self.op {
                CmpOp::MaskedEq(m) => m,
                _ => 0,
            };
            let big = if self.value > u64::from(u32::MAX) {
                self.value
            } else {
                mask
            };
            if big > u64::from(u32::MAX) {
                return Err(ProfileError::Value32 {
                    index: self.index,
                    value: big,
                });
            }
        }
        Ok(())
    }
}

impl Arg {
    fn cond(self, op: CmpOp, value: u64) -> Cond {
        Cond {
            index: self.index,
            bits32: self.bits32,
            op,
            value,
        }
    }

    /// `arg == v`
    pub fn eq(self, v: u64) -> Cond {
        self.cond(CmpOp::Eq, v)
    }
    /// `arg != v`
    pub fn ne(self, v: u64) -> Cond {
        self.cond(CmpOp::Ne, v)
    }
    /// `arg < v`, unsigned
    pub fn lt(self, v: u64) -> Cond {
        self.cond(CmpOp::Lt, v)
    }
    /// `arg <= v`, unsigned
    pub fn le(self, v: u64) -> Cond {
        self.cond(CmpOp::Le, v)
    }
    /// `arg > v`, unsigned
    pub fn gt(self, v: u64) -> Cond {
        self.cond(CmpOp::Gt, v)
    }
    /// `arg >= v`, unsigned
    pub fn ge(self, v: u64) -> Cond {
        self.cond(CmpOp::Ge, v)
    }
    /// `arg & mask == v`
    pub fn masked_eq(self, mask: u64, v: u64) -> Cond {
        self.cond(CmpOp::MaskedEq(mask), v)
    }
}

/// The capabilities an imported rule depends on (an OCI profile's `includes.caps` and
/// `excludes.caps`), as bit masks of capability numbers: the rule applies to a sandbox that
/// keeps every capability of `need` and none of `unless`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct CapGate {
    pub(crate) need: u64,
    pub(crate) unless: u64,
}

impl CapGate {
    pub(crate) fn is_open(&self) -> bool {
        self.need == 0 && self.unless == 0
    }

    pub(crate) fn holds(&self, kept: u64) -> bool {
        kept & self.need == self.need && kept & self.unless == 0
    }
}

/// One rule of a profile: when `syscall` is called and every condition holds, take `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    syscall: Syscall,
    conds: Vec<Cond>,
    action: Action,
    gate: CapGate,
}

impl Rule {
    /// A rule from parts already checked (the parts of another rule, or a syscall resolved for
    /// the profile's architecture).
    pub(crate) fn new_unchecked(syscall: Syscall, conds: Vec<Cond>, action: Action) -> Rule {
        Rule {
            syscall,
            conds,
            action,
            gate: CapGate::default(),
        }
    }

    /// The syscall.
    pub fn syscall(&self) -> Syscall {
        self.syscall
    }
    /// The conditions, all of which must hold (AND).
    pub fn conds(&self) -> &[Cond] {
        &self.conds
    }
    /// The action taken when the rule matches.
    pub fn action(&self) -> Action {
        self.action
    }
}

/// A seccomp profile: a default action and an ordered list of rules.
///
/// The **first** rule that matches a syscall decides its action (later rules for the same
/// call do not override it); a call no rule matches gets the default action. This is the
/// order libseccomp keeps when runc or crun add an OCI profile's rules one by one.
///
/// Builder methods never fail: an invalid name, argument index or errno is remembered and
/// reported by [`Profile::check`] and [`Profile::compile`].
///
/// ```
/// use ringfence::{Action, Cond, Profile, Syscall};
/// let p = Profile::allow_all()
///     .deny(["settimeofday", "keyctl"])
///     .rule(Syscall::named("socket").unwrap(), [Cond::arg(0).eq(40)], Action::EPERM);
/// p.check().unwrap();
/// let compiled = p.compile().unwrap();
/// assert_eq!(compiled.programs().count(), 1); // the profile with the guard merged in
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub(crate) arch: Option<Arch>,
    pub(crate) default: Action,
    pub(crate) rules: Vec<Rule>,
    pub(crate) deny_action: Action,
    pub(crate) unconfined: bool,
    pub(crate) error: Option<ProfileError>,
    /// Names an imported profile gave that no architecture has, skipped.
    pub(crate) skipped: Vec<String>,
}

impl Profile {
    fn with_default(default: Action) -> Profile {
        let mut p = Profile {
            arch: Arch::native(),
            default,
            rules: Vec::new(),
            deny_action: Action::EPERM,
            unconfined: false,
            error: None,
            skipped: Vec::new(),
        };
        if p.arch.is_none() {
            p.error = Some(ProfileError::UnsupportedArch);
        }
        p
    }

    /// A deny-list base: every syscall is allowed unless a rule says otherwise.
    pub fn allow_all() -> Profile {
        Profile::with_default(Action::Allow)
    }

    /// An allow-list base: every syscall fails with `EPERM` unless a rule allows it.
    pub fn deny_all() -> Profile {
        Profile::with_default(Action::EPERM)
    }

    /// No filter at all: [`Profile::compile`] yields no program, not even the guard.
    pub fn unconfined() -> Profile {
        let mut p = Profile::allow_all();
        p.unconfined = true;
        p
    }

    /// Whether this is [`Profile::unconfined`].
    pub fn is_unconfined(&self) -> bool {
        self.unconfined
    }

    /// The same profile for another architecture: rules are resolved again by name, and rules
    /// for syscalls the architecture does not have are dropped (such a call cannot be made
    /// there). Conditions are kept as they are: check that argument positions agree.
    pub fn for_arch(mut self, arch: Arch) -> Profile {
        if self.arch == Some(arch) {
            return self;
        }
        let rules = std::mem::take(&mut self.rules);
        if self.error == Some(ProfileError::UnsupportedArch) {
            self.error = None;
        }
        self.arch = Some(arch);
        for r in rules {
            if let Ok(s) = Syscall::named_for(arch, r.syscall.name) {
                self.rules.push(Rule { syscall: s, ..r });
            }
        }
        self
    }

    /// The architecture the profile is for (the host's by default).
    pub fn arch(&self) -> Option<Arch> {
        self.arch
    }

    /// Sets the action for syscalls no rule matches.
    pub fn default_action(mut self, action: Action) -> Profile {
        if let Err(e) = action.validate() {
            self.fail(e);
        }
        self.default = action;
        self
    }

    /// The action for syscalls no rule matches.
    pub fn get_default_action(&self) -> Action {
        self.default
    }

    /// The action [`Profile::deny`] uses (default `Errno(EPERM)`).
    pub fn deny_with(mut self, action: Action) -> Profile {
        if let Err(e) = action.validate() {
            self.fail(e);
        }
        self.deny_action = action;
        self
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn fail(&mut self, e: ProfileError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn by_names<I, S>(mut self, names: I, action: Action) -> Profile
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let Some(arch) = self.arch else {
            return self;
        };
        for n in names {
            match Syscall::named_for(arch, n.as_ref()) {
                Ok(s) => self = self.rule(s, [], action),
                Err(e) => self.fail(e),
            }
        }
        self
    }

    /// Adds unconditional rules denying these syscalls with the deny action
    /// (`Errno(EPERM)` unless changed by [`Profile::deny_with`]).
    pub fn deny<I, S>(self, names: I) -> Profile
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let action = self.deny_action;
        self.by_names(names, action)
    }

    /// Adds unconditional rules allowing these syscalls.
    pub fn allow<I, S>(self, names: I) -> Profile
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.by_names(names, Action::Allow)
    }

    /// Adds a rule: when `syscall` is called and all `conds` hold, take `action`.
    /// Rules are tried in the order they were added; the first match wins.
    pub fn rule(
        mut self,
        syscall: Syscall,
        conds: impl IntoIterator<Item = Cond>,
        action: Action,
    ) -> Profile {
        let conds: Vec<Cond> = conds.into_iter().collect();
        if conds.len() > MAX_CONDS {
            self.fail(ProfileError::TooManyConds { count: conds.len() });
        }
        if let Err(e) = action.validate() {
            self.fail(e);
        }
        for c in &conds {
            if let Err(e) = c.validate() {
                self.fail(e);
            }
        }
        if let Some(arch) = self.arch
            && syscall.arch != arch
        {
            self.fail(ProfileError::ArchMismatch {
                name: syscall.name,
                syscall_arch: syscall.arch,
                profile_arch: arch,
            });
        }
        self.rules.push(Rule {
            syscall,
            conds,
            action,
            gate: CapGate::default(),
        });
        self
    }

    /// Adds a rule that applies only to sandboxes keeping the capabilities `gate` names
    /// (imported `includes.caps` / `excludes.caps`).
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn gated_rule(
        mut self,
        syscall: Syscall,
        conds: Vec<Cond>,
        action: Action,
        gate: CapGate,
    ) -> Profile {
        self = self.rule(syscall, conds, action);
        if let Some(r) = self.rules.last_mut() {
            r.gate = gate;
        }
        self
    }

    /// Whether some rules apply only with some capabilities kept (an imported profile's
    /// `includes.caps` / `excludes.caps`, not yet decided by [`Profile::for_capabilities`]).
    pub fn depends_on_capabilities(&self) -> bool {
        self.rules.iter().any(|r| !r.gate.is_open())
    }

    /// The profile as it applies to a process that keeps exactly the capabilities `keep`:
    /// rules an imported profile made depend on capabilities (`includes.caps`,
    /// `excludes.caps`) are kept or dropped accordingly, as runc does for a container's
    /// capabilities.
    ///
    /// A [`Sandbox`](crate::Sandbox) does this itself with the capabilities it keeps
    /// ([`Sandbox::capabilities`](crate::Sandbox::capabilities)); [`Profile::compile`],
    /// [`Profile::evaluate`] and [`Profile::to_oci_json`] judge rules still depending on
    /// capabilities against none kept (a sandbox's default).
    ///
    /// ```
    /// # #[cfg(feature = "serde")] {
    /// use ringfence::{Capability, Profile};
    /// let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
    ///     {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}"#;
    /// let p = Profile::from_oci_json(json).unwrap();
    /// assert!(p.depends_on_capabilities());
    /// assert_eq!(p.clone().for_capabilities([]).rules().len(), 0);
    /// assert_eq!(p.for_capabilities([Capability::CAP_SYS_ADMIN]).rules().len(), 1);
    /// # }
    /// ```
    pub fn for_capabilities(self, keep: impl IntoIterator<Item = crate::Capability>) -> Profile {
        let mask = keep.into_iter().fold(0u64, |m, c| m | (1u64 << c.index()));
        self.with_caps_mask(mask)
    }

    /// [`Profile::for_capabilities`] with a mask of capability numbers.
    pub(crate) fn with_caps_mask(mut self, kept: u64) -> Profile {
        if self.depends_on_capabilities() {
            self.rules.retain(|r| r.gate.holds(kept));
            for r in &mut self.rules {
                r.gate = CapGate::default();
            }
        }
        self
    }

    /// The profile with capability-dependent rules judged against no capability kept;
    /// borrowed when there are none.
    pub(crate) fn resolved(&self) -> std::borrow::Cow<'_, Profile> {
        if self.depends_on_capabilities() {
            std::borrow::Cow::Owned(self.clone().with_caps_mask(0))
        } else {
            std::borrow::Cow::Borrowed(self)
        }
    }

    /// Reports the first error a builder call ran into, if any.
    pub fn check(&self) -> Result<(), ProfileError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The syscall names the importer skipped because no architecture has them (typos, or
    /// calls newer than ringfence's tables), in the order met, each once. Empty unless the
    /// profile was imported with [`UnknownSyscalls::Skip`](crate::seccomp::UnknownSyscalls),
    /// the default.
    pub fn skipped_syscalls(&self) -> &[String] {
        &self.skipped
    }

    /// Whether any rule or the default action uses [`Action::Notify`].
    pub fn uses_notify(&self) -> bool {
        !self.unconfined
            && (self.default == Action::Notify
                || self.rules.iter().any(|r| r.action == Action::Notify))
    }

    /// The first syscall whose rules give it more than one action (after dropping rules that
    /// follow an unconditional one and can never match), if any.
    ///
    /// ringfence decides such a call by the first matching rule. libseccomp, and so runc and
    /// crun, do not: a later unconditional rule replaces earlier conditional ones, and
    /// overlapping conditional rules with different actions are ordered by its own internal
    /// tree. Such a profile therefore cannot be exported to OCI JSON without changing its
    /// meaning. Docker's profiles never do this once `includes`/`excludes` are applied.
    pub fn order_sensitive(&self) -> Option<&'static str> {
        // Per syscall: closed by an unconditional rule, and the live rules so far.
        type Live<'a> = (bool, Vec<&'a Rule>);
        let mut seen: std::collections::BTreeMap<u32, Live<'_>> = Default::default();
        for r in self.rules.iter().filter(|r| r.gate.holds(0)) {
            let (closed, live) = seen.entry(r.syscall.nr).or_default();
            if *closed {
                continue; // after an unconditional rule: never matches
            }
            // Rules with different actions that can never match the same call (equalities
            // on the same argument that disagree) do not depend on their order.
            if live
                .iter()
                .any(|l| l.action != r.action && !disjoint(&l.conds, &r.conds))
            {
                return Some(r.syscall.name);
            }
            *closed = r.conds.is_empty();
            live.push(r);
        }
        None
    }

    /// The action this profile (without the guard) gives a syscall of its architecture:
    /// a reference model of the semantics, used by tests and learn mode.
    pub fn evaluate(&self, nr: u32, args: &[u64; 6]) -> Action {
        if self.unconfined {
            return Action::Allow;
        }
        self.rules
            .iter()
            .find(|r| {
                r.gate.holds(0)
                    && r.syscall.nr == nr
                    && r.conds.iter().all(|c| {
                        args.get(usize::from(c.index))
                            .is_some_and(|a| c.matches(*a))
                    })
            })
            .map_or(self.default, |r| r.action)
    }
}

#[test]
fn builder_errors_are_deferred() {
    let p = Profile::deny_all().allow(["read", "no_such_call", "write"]);
    assert_eq!(
        p.check().unwrap_err().to_string(),
        format!(
            "unknown syscall \"no_such_call\" on {}",
            Arch::native().unwrap()
        )
    );
    let s = Syscall::named("read").unwrap();
    let p = Profile::deny_all().rule(s, [Cond::arg(6).eq(1)], Action::Allow);
    assert_eq!(
        p.check().unwrap_err().to_string(),
        "argument index 6 is out of range (0 to 5)"
    );
    let p = Profile::deny_all().rule(s, [], Action::Errno(5000));
    assert_eq!(
        p.check().unwrap_err().to_string(),
        "errno 5000 is out of range (must be below 4096)"
    );
    let p = Profile::deny_all().rule(s, [Cond::arg32(0).eq(1 << 32)], Action::Allow);
    assert!(matches!(p.check(), Err(ProfileError::Value32 { .. })));
}

#[test]
fn presets_move_between_architectures() {
    for arch in [Arch::X86_64, Arch::Aarch64, Arch::I386] {
        for p in [Profile::default_container(), Profile::strict()] {
            let p = p.for_arch(arch);
            p.check().unwrap();
            assert!(p.rules().iter().all(|r| r.syscall().arch() == arch));
            p.compile().unwrap();
        }
    }
    let s = Syscall::named("read").unwrap();
    let conds = vec![Cond::arg(0).ne(1); 25];
    let p = Profile::deny_all().rule(s, conds, Action::Allow);
    assert_eq!(p.check(), Err(ProfileError::TooManyConds { count: 25 }));
}

#[test]
fn first_match_wins_in_the_model() {
    let s = Syscall::named("socket").unwrap();
    let p = Profile::allow_all()
        .rule(s, [Cond::arg(0).eq(1)], Action::Allow)
        .rule(s, [], Action::EPERM)
        .rule(s, [Cond::arg(0).eq(2)], Action::Allow);
    assert_eq!(p.evaluate(s.nr(), &[1, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(p.evaluate(s.nr(), &[2, 0, 0, 0, 0, 0]), Action::EPERM);
}

#[test]
fn tables_resolve() {
    assert_eq!(Syscall::named_for(Arch::X86_64, "read").unwrap().nr(), 0);
    assert_eq!(Syscall::named_for(Arch::Aarch64, "read").unwrap().nr(), 63);
    assert_eq!(
        Syscall::named_for(Arch::X86_64, "clone3").unwrap().nr(),
        435
    );
    assert!(Syscall::named_for(Arch::Aarch64, "open").is_err());
    assert_eq!(Syscall::from_nr(Arch::X86_64, 41).unwrap().name(), "socket");
    assert!(known_anywhere("send") && known_anywhere("open") && !known_anywhere("nope"));
    for t in [tables::X86_64, tables::I386, tables::AARCH64] {
        assert!(
            t.windows(2).all(|w| w[0].0 < w[1].0),
            "tables must be sorted"
        );
    }
}
