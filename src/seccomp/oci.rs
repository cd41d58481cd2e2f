//! OCI runtime spec / Docker seccomp JSON: import and export.
//!
//! Import follows what runc and crun do through libseccomp 2.5 (see the module docs of
//! [`crate::seccomp`]): rules in the profile's order, the first match wins, a rule whose
//! action equals the default is skipped, a rule naming the same argument twice is split into
//! one rule per condition (ORed), `MASKED_EQ` takes the mask in `value` and the datum in
//! `valueTwo` and compares with `datum & mask`, `ERRNO`/`TRACE` without `errnoRet` mean
//! `EPERM`, an `errnoRet` of 4095 or more is refused. Comparisons are 64-bit, as libseccomp
//! does on 64-bit architectures. A name libseccomp knows only on other architectures adds
//! nothing; a name nobody knows is skipped with a warning (or refused, see
//! [`UnknownSyscalls`]). Every error names its JSON path.
//!
//! `includes` and `excludes` are evaluated against [`ImportOptions`] (architecture, kernel
//! version); capabilities are left to the sandbox, which judges them against the capabilities
//! it keeps, unless [`ImportOptions::caps`] names them.
//!
//! Architectures: the filter is built for [`ImportOptions::arch`] only. `architectures` and
//! `archMap` are checked but their sub-architectures (x86, x32, arm) are not honoured:
//! ringfence's guard kills every call from another ABI.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::profile::{
    Action, Arch, CapGate, CmpOp, Cond, Profile, ProfileError, Syscall, known_anywhere,
};

/// What the importer does with a syscall name that no architecture has.
///
/// Names that libseccomp resolves but that exist on other architectures only (`syscall`,
/// `get_tls`, `arm_fadvise64_64`, `s390_runtime_instr`, `chown32` on x86_64, ...) are always
/// accepted and add nothing, as libseccomp does.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnknownSyscalls {
    /// Skip the name with a warning (the default), as runc and crun do: a profile written for
    /// a newer kernel still loads. The names are listed by [`Profile::skipped_syscalls`].
    #[default]
    Skip,
    /// Refuse the profile: a typo should not silently weaken a filter.
    Error,
}

/// A kernel version `MAJOR.MINOR`, as `minKernel` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl KernelVersion {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> KernelVersion {
        KernelVersion { major, minor }
    }

    /// Parses `"5.15"`, `"6.1.0-18-amd64"`, ... (`None` if there is no `major.minor`).
    pub fn parse(s: &str) -> Option<KernelVersion> {
        let mut it = s.split(['.', '-', '+']);
        let major = it.next()?.parse().ok()?;
        let minor_part = it.next()?;
        let digits: String = minor_part
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let minor = digits.parse().ok()?;
        Some(KernelVersion { major, minor })
    }

    /// The running kernel's version (`uname -r`).
    pub fn running() -> Option<KernelVersion> {
        let u = nix::sys::utsname::uname().ok()?;
        KernelVersion::parse(&u.release().to_string_lossy())
    }
}

/// Capability names by bit number (`<linux/capability.h>`).
const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The bit of a capability name (`CAP_SYS_ADMIN` → 21), `None` for a name this table lacks.
fn cap_bit(name: &str) -> Option<u32> {
    CAP_NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// What `includes` / `excludes` are evaluated against, and how strict the importer is.
///
/// ```
/// use ringfence::seccomp::{Arch, ImportOptions, KernelVersion, UnknownSyscalls};
/// let opts = ImportOptions::running_system()
///     .arch(Arch::X86_64)
///     .caps(["CAP_SYS_ADMIN"])
///     .kernel_version(KernelVersion::new(6, 1))
///     .unknown_syscalls(UnknownSyscalls::Error);
/// # let _ = opts;
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// The capabilities the sandboxed process keeps (`CAP_SYS_ADMIN`, ...), against which
    /// `includes.caps` / `excludes.caps` are judged at import; `None` (the default) keeps
    /// such rules in the profile for the sandbox to judge against the capabilities it keeps
    /// ([`Profile::for_capabilities`], done by every [`Sandbox`](crate::Sandbox)), as runc
    /// judges them against the container's capabilities.
    pub caps: Option<BTreeSet<String>>,
    /// The architecture to build the filter for.
    pub arch: Arch,
    /// The kernel version `minKernel` is compared with.
    pub kernel_version: KernelVersion,
    /// Unknown syscall names: error or skip.
    pub unknown_syscalls: UnknownSyscalls,
}

impl ImportOptions {
    /// The running system: the host architecture (x86_64 if unsupported) and the running
    /// kernel; capability-dependent rules left to the sandbox; unknown names skipped.
    pub fn running_system() -> ImportOptions {
        ImportOptions {
            caps: None,
            arch: Arch::native().unwrap_or(Arch::X86_64),
            kernel_version: KernelVersion::running().unwrap_or(KernelVersion::new(0, 0)),
            unknown_syscalls: UnknownSyscalls::Skip,
        }
    }

    /// Judges `includes.caps` / `excludes.caps` at import, against these capabilities
    /// (`CAP_SYS_ADMIN`, ...) instead of leaving them to the sandbox.
    pub fn caps<I, S>(mut self, caps: I) -> ImportOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.caps = Some(caps.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the architecture.
    pub fn arch(mut self, arch: Arch) -> ImportOptions {
        self.arch = arch;
        self
    }

    /// Sets the kernel version.
    pub fn kernel_version(mut self, v: KernelVersion) -> ImportOptions {
        self.kernel_version = v;
        self
    }

    /// Sets the policy for unknown names.
    pub fn unknown_syscalls(mut self, u: UnknownSyscalls) -> ImportOptions {
        self.unknown_syscalls = u;
        self
    }
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions::running_system()
    }
}

#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct OciProfile {
    default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    architectures: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arch_map: Option<Vec<OciArchMap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    syscalls: Option<Vec<OciSyscall>>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct OciArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct OciSyscall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Vec<OciArg>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    includes: Option<OciFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    excludes: Option<OciFilter>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct OciArg {
    index: u64,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct OciFilter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// Architecture names libseccomp knows (`SCMP_ARCH_*`).
const SCMP_ARCHES: &[&str] = &[
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// The smallest `errnoRet` libseccomp 2.5 refuses.
const OCI_ERRNO_LIMIT: u64 = 4095;

fn parse_action(
    name: &str,
    errno: Option<u64>,
    path: &str,
    errno_path: &str,
) -> Result<Action, ProfileError> {
    let data = |e: Option<u64>| -> Result<u16, ProfileError> {
        match e {
            None => Ok(libc::EPERM as u16),
            // libseccomp 2.5 (and so runc and crun) refuses 4095 and above.
            Some(e) if e < OCI_ERRNO_LIMIT => Ok(e as u16),
            Some(e) => Err(ProfileError::ErrnoRet { errno: e }.at(errno_path)),
        }
    };
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(data(errno)?),
        "SCMP_ACT_TRACE" => Action::Trace(data(errno)?),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_NOTIFY" => Action::Notify,
        other => {
            return Err(ProfileError::UnknownAction {
                action: other.to_owned(),
            }
            .at(path));
        }
    })
}

fn parse_arg(a: &OciArg, path: &str) -> Result<Cond, ProfileError> {
    if a.index > 5 {
        return Err(ProfileError::ArgIndex { index: a.index }.at(format!("{path}.index")));
    }
    let arg = Cond::arg(a.index as u8);
    Ok(match a.op.as_str() {
        "SCMP_CMP_EQ" => arg.eq(a.value),
        "SCMP_CMP_NE" => arg.ne(a.value),
        "SCMP_CMP_LT" => arg.lt(a.value),
        "SCMP_CMP_LE" => arg.le(a.value),
        "SCMP_CMP_GT" => arg.gt(a.value),
        "SCMP_CMP_GE" => arg.ge(a.value),
        // `value` is the mask, `valueTwo` the datum; libseccomp compares with `datum & mask`,
        // so datum bits outside the mask are ignored.
        "SCMP_CMP_MASKED_EQ" => arg.masked_eq(a.value, a.value_two & a.value),
        other => {
            return Err(ProfileError::UnknownOperator {
                op: other.to_owned(),
            }
            .at(format!("{path}.op")));
        }
    })
}

fn has(list: &Option<Vec<String>>, x: &str) -> bool {
    list.as_ref().is_some_and(|l| l.iter().any(|s| s == x))
}

/// Whether an entry applies, following moby's `profiles/seccomp` rules: every capability in
/// `includes.caps` held, the arch in `includes.arches`, the kernel at least
/// `includes.minKernel`; no capability of `excludes.caps` held, the arch not in
/// `excludes.arches`, the kernel below `excludes.minKernel`.
///
/// `None` when it does not apply; otherwise the capabilities it still depends on (an open
/// gate when [`ImportOptions::caps`] decided them).
fn applies(
    s: &OciSyscall,
    opts: &ImportOptions,
    path: &str,
) -> Result<Option<CapGate>, ProfileError> {
    let arch = opts.arch.go_name();
    let kernel = |v: &str, p: String| {
        KernelVersion::parse(v).ok_or_else(|| {
            ProfileError::KernelVersion {
                version: v.to_owned(),
            }
            .at(p)
        })
    };
    let mut gate = CapGate::default();
    if let Some(inc) = &s.includes {
        if let Some(caps) = &inc.caps {
            match &opts.caps {
                Some(held) => {
                    if !caps.iter().all(|c| held.contains(c)) {
                        return Ok(None);
                    }
                }
                None => {
                    for c in caps {
                        // A capability no kernel ringfence knows has cannot be kept.
                        let Some(bit) = cap_bit(c) else {
                            return Ok(None);
                        };
                        gate.need |= 1 << bit;
                    }
                }
            }
        }
        if inc.arches.as_ref().is_some_and(|a| !a.is_empty()) && !has(&inc.arches, arch) {
            return Ok(None);
        }
        if let Some(v) = &inc.min_kernel
            && opts.kernel_version < kernel(v, format!("{path}.includes.minKernel"))?
        {
            return Ok(None);
        }
    }
    if let Some(exc) = &s.excludes {
        if let Some(caps) = &exc.caps {
            match &opts.caps {
                Some(held) => {
                    if caps.iter().any(|c| held.contains(c)) {
                        return Ok(None);
                    }
                }
                None => {
                    for bit in caps.iter().filter_map(|c| cap_bit(c)) {
                        gate.unless |= 1 << bit;
                    }
                }
            }
        }
        if has(&exc.arches, arch) {
            return Ok(None);
        }
        if let Some(v) = &exc.min_kernel
            && opts.kernel_version >= kernel(v, format!("{path}.excludes.minKernel"))?
        {
            return Ok(None);
        }
    }
    if gate.need & gate.unless != 0 {
        return Ok(None); // needs a capability it must not have
    }
    Ok(Some(gate))
}

fn json_error(e: serde_json::Error) -> ProfileError {
    let message = e.to_string();
    // serde_json appends " at line L column C"; the variant carries them separately.
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    };
    ProfileError::Json {
        line: e.line(),
        column: e.column(),
        message,
    }
}

impl Profile {
    /// Imports an OCI / Docker seccomp profile, evaluating `includes`/`excludes` against the
    /// running system ([`ImportOptions::running_system`]).
    pub fn from_oci_json(json: &str) -> Result<Profile, ProfileError> {
        Profile::from_oci_json_with(json, &ImportOptions::running_system())
    }

    /// Imports an OCI / Docker seccomp profile with explicit options.
    ///
    /// Errors name the JSON path: `syscalls[12].args[0].op: unknown operator "SCMP_CMP_FOO"`.
    pub fn from_oci_json_with(json: &str, opts: &ImportOptions) -> Result<Profile, ProfileError> {
        let oci: OciProfile = serde_json::from_str(json).map_err(json_error)?;
        let default = parse_action(
            &oci.default_action,
            oci.default_errno_ret,
            "defaultAction",
            "defaultErrnoRet",
        )?;
        if oci.architectures.is_some() && oci.arch_map.is_some() {
            return Err(ProfileError::ArchitecturesAndArchMap.at("archMap"));
        }
        for (i, a) in oci.architectures.iter().flatten().enumerate() {
            if !SCMP_ARCHES.contains(&a.as_str()) {
                return Err(
                    ProfileError::UnknownArch { arch: a.clone() }.at(format!("architectures[{i}]"))
                );
            }
        }
        for (i, m) in oci.arch_map.iter().flatten().enumerate() {
            if !SCMP_ARCHES.contains(&m.architecture.as_str()) {
                return Err(ProfileError::UnknownArch {
                    arch: m.architecture.clone(),
                }
                .at(format!("archMap[{i}].architecture")));
            }
            for (j, s) in m.sub_architectures.iter().flatten().enumerate() {
                if !SCMP_ARCHES.contains(&s.as_str()) {
                    return Err(ProfileError::UnknownArch { arch: s.clone() }
                        .at(format!("archMap[{i}].subArchitectures[{j}]")));
                }
            }
        }

        let mut profile = Profile::allow_all()
            .for_arch(opts.arch)
            .default_action(default);
        for (i, s) in oci.syscalls.iter().flatten().enumerate() {
            let path = format!("syscalls[{i}]");
            let action = parse_action(
                &s.action,
                s.errno_ret,
                &format!("{path}.action"),
                &format!("{path}.errnoRet"),
            )?;
            let conds = s
                .args
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, a)| parse_arg(a, &format!("{path}.args[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let names: Vec<(String, &String)> = match (&s.names, &s.name) {
                (Some(n), _) if !n.is_empty() => n
                    .iter()
                    .enumerate()
                    .map(|(k, n)| (format!("{path}.names[{k}]"), n))
                    .collect(),
                (_, Some(n)) => vec![(format!("{path}.name"), n)],
                _ => return Err(ProfileError::NoName.at(path)),
            };
            let Some(gate) = applies(s, opts, &path)? else {
                continue;
            };
            if action == default {
                continue;
            }
            // The same argument twice: each condition becomes a rule of its own (ORed).
            let mut seen = [false; 6];
            let repeated = conds
                .iter()
                .any(|c| std::mem::replace(&mut seen[usize::from(c.index())], true));
            let groups: Vec<Vec<Cond>> = if repeated {
                conds.iter().map(|c| vec![*c]).collect()
            } else {
                vec![conds]
            };
            if let Some(g) = groups.iter().find(|g| g.len() > super::MAX_CONDS) {
                return Err(
                    ProfileError::TooManyConds { count: g.len() }.at(format!("{path}.args"))
                );
            }
            for (npath, name) in names {
                let sys = match Syscall::named_for(opts.arch, name) {
                    Ok(s) => s,
                    Err(_) if known_anywhere(name) => continue, // absent on this architecture
                    Err(e) => match opts.unknown_syscalls {
                        UnknownSyscalls::Error => return Err(e.at(npath)),
                        UnknownSyscalls::Skip => {
                            tracing::warn!(syscall = %name, at = %npath, "seccomp import: unknown syscall skipped");
                            if !profile.skipped.iter().any(|n| n == name) {
                                profile.skipped.push(name.clone());
                            }
                            continue;
                        }
                    },
                };
                for g in &groups {
                    profile = profile.gated_rule(sys, g.clone(), action, gate);
                }
            }
        }
        profile.check()?;
        Ok(profile)
    }

    /// Exports the profile as OCI / Docker JSON (pretty-printed), with the guard written out
    /// so that the profile is no weaker under runc, crun or Podman than under ringfence:
    /// `architectures` names the profile's architecture only (libseccomp then kills calls of
    /// other ABIs, and x32 calls on x86_64), `clone3` gets `ERRNO(ENOSYS)`, and `ioctl` with
    /// `TIOCSTI` or `TIOCLINUX` in the low 32 bits of its request gets `ERRNO(EPERM)`
    /// (an `ioctl` rule that would allow them is split into `MASKED_EQ` rules covering every
    /// other request). Imported again and compiled, it gives the same results.
    ///
    /// Refused for [`Profile::unconfined`] (OCI expresses it by having no seccomp section),
    /// for profiles whose meaning depends on rule order ([`Profile::order_sensitive`]), for
    /// 32-bit comparisons other than equality (OCI compares 64 bits; `arg32(i).eq(v)` is
    /// written as `MASKED_EQ` with mask `0xffffffff`), and where the guard cannot be written
    /// exactly (an allowing `ioctl` rule that already tests the request, conditional `clone3`
    /// rules that kill).
    pub fn to_oci_json(&self) -> Result<String, ProfileError> {
        self.check()?;
        let resolved = self.resolved();
        let this: &Profile = &resolved;
        if self.unconfined {
            return Err(ProfileError::Export {
                reason: "an unconfined profile has no filter",
            });
        }
        if let Some(syscall) = this.order_sensitive() {
            return Err(ProfileError::OrderSensitive { syscall });
        }
        let (action, errno) = export_action(this.default);
        let mut oci = OciProfile {
            default_action: action.to_owned(),
            default_errno_ret: errno,
            architectures: this.arch.map(|a| vec![a.oci_name().to_owned()]),
            ..OciProfile::default()
        };
        let rules = with_guard(this)?;
        let mut syscalls: Vec<OciSyscall> = Vec::new();
        let mut closed = BTreeSet::new();
        for (sys, conds, action) in &rules {
            if closed.contains(&sys.nr()) {
                continue; // after an unconditional rule for the same call: never matches
            }
            if conds.is_empty() {
                closed.insert(sys.nr());
            }
            let args = conds
                .iter()
                .map(export_cond)
                .collect::<Result<Vec<_>, _>>()?;
            let (action, errno) = export_action(*action);
            if args.is_empty()
                && let Some(last) = syscalls.last_mut()
                && last.args.is_none()
                && last.action == action
                && last.errno_ret == errno
            {
                last.names
                    .get_or_insert_with(Vec::new)
                    .push(sys.name().to_owned());
                continue;
            }
            syscalls.push(OciSyscall {
                names: Some(vec![sys.name().to_owned()]),
                action: action.to_owned(),
                errno_ret: errno,
                args: (!args.is_empty()).then_some(args),
                ..OciSyscall::default()
            });
        }
        oci.syscalls = Some(syscalls);
        let json =
            serde_json::to_string_pretty(&oci).map_err(|e| ProfileError::Backend(e.to_string()))?;
        // Written out, the guard's rules stand beside the profile's own. Where they overlap
        // one of its rules with another result (an `ioctl` rule on TIOCSTI with its own
        // errno, say), libseccomp's order would decide between them: refused, as a profile
        // that is order-sensitive by itself is, so that the export means one thing wherever
        // it is imported.
        if let Some(arch) = this.arch {
            let back =
                Profile::from_oci_json_with(&json, &ImportOptions::running_system().arch(arch))?;
            if let Some(syscall) = back.order_sensitive() {
                return Err(ProfileError::OrderSensitive { syscall });
            }
        }
        Ok(json)
    }
}

/// The guard's `ioctl` requests, compared on the low 32 bits of argument 1.
const GUARDED_IOCTLS: [u32; 2] = [super::TIOCSTI, super::TIOCLINUX];

/// `(mask, value)` pairs on a 32-bit word whose `word & mask == value` sets are disjoint and
/// together hold every word not in `set`.
fn complement(set: &[u32]) -> Vec<(u32, u32)> {
    fn rec(mask: u32, value: u32, bit: i32, members: &[u32], out: &mut Vec<(u32, u32)>) {
        if members.is_empty() {
            out.push((mask, value));
            return;
        }
        if bit < 0 {
            return; // a member of the set
        }
        let b = 1u32 << bit;
        for side in [0, b] {
            let sub: Vec<u32> = members.iter().copied().filter(|m| m & b == side).collect();
            rec(mask | b, value | side, bit - 1, &sub, out);
        }
    }
    let mut out = Vec::new();
    rec(0, 0, 31, set, &mut out);
    out
}

/// Whether a rule can never match an `ioctl` whose request has `req` in its low 32 bits.
fn excludes_request(conds: &[Cond], req: u32) -> bool {
    conds.iter().any(|c| {
        if c.index() != 1 {
            return false;
        }
        let low_mask = match (c.is_32bit(), c.op()) {
            (true, CmpOp::Eq) => 0xffff_ffff,
            (true, CmpOp::MaskedEq(m)) => m & 0xffff_ffff,
            (false, CmpOp::Eq) => {
                return c.value() as u32 != req;
            }
            (false, CmpOp::MaskedEq(m)) => m & 0xffff_ffff,
            _ => return false,
        };
        (u64::from(req) & low_mask) != (c.value() & low_mask)
    })
}

/// The profile's rules with the guard's `clone3` and `ioctl` rules written in, for an
/// exporter: `(syscall, conditions, action)` in order, first match wins.
fn with_guard(p: &Profile) -> Result<Vec<(Syscall, Vec<Cond>, Action)>, ProfileError> {
    use super::compile::stacked;
    let arch = p.arch.ok_or(ProfileError::UnsupportedArch)?;
    let guarded = |guard: Action, a: Action| {
        Action::from_ret(stacked(guard.to_ret(), a.to_ret())).unwrap_or(a)
    };
    let enosys = Action::Errno(libc::ENOSYS as u16);
    let clone3 = Syscall::named_for(arch, "clone3").ok();
    let ioctl = Syscall::named_for(arch, "ioctl").ok();
    let mut out = Vec::new();
    // clone3: every result through the guard's ENOSYS.
    let clone3_rules: Vec<&super::Rule> = p
        .rules()
        .iter()
        .filter(|r| Some(r.syscall()) == clone3)
        .collect();
    let default_part = guarded(enosys, p.default);
    for r in p.rules() {
        let s = r.syscall();
        if Some(s) == clone3 {
            let a = guarded(enosys, r.action());
            if r.conds().is_empty() || default_part == p.default {
                out.push((s, r.conds().to_vec(), a));
            } else if a != default_part {
                return Err(ProfileError::Export {
                    reason: "conditional clone3 rules that are stricter than the guard's ENOSYS",
                });
            }
        } else if Some(s) == ioctl && guarded(Action::EPERM, r.action()) != r.action() {
            // A rule that would let TIOCSTI/TIOCLINUX through.
            let overlaps: Vec<u32> = GUARDED_IOCTLS
                .into_iter()
                .filter(|req| !excludes_request(r.conds(), *req))
                .collect();
            if overlaps.is_empty() {
                out.push((s, r.conds().to_vec(), r.action()));
            } else if r.conds().iter().any(|c| c.index() == 1) {
                return Err(ProfileError::Export {
                    reason: "an ioctl rule that tests the request and would allow TIOCSTI or TIOCLINUX",
                });
            } else {
                // (Not written when EPERM is the default: importers skip such rules.)
                for req in GUARDED_IOCTLS
                    .into_iter()
                    .filter(|_| p.default != Action::EPERM)
                {
                    let mut c = r.conds().to_vec();
                    c.push(Cond::arg(1).masked_eq(0xffff_ffff, u64::from(req)));
                    out.push((s, c, Action::EPERM));
                }
                for (mask, value) in complement(&GUARDED_IOCTLS) {
                    let mut c = r.conds().to_vec();
                    c.push(Cond::arg(1).masked_eq(u64::from(mask), u64::from(value)));
                    out.push((s, c, r.action()));
                }
            }
        } else {
            out.push((s, r.conds().to_vec(), r.action()));
        }
    }
    if let Some(s) = clone3
        && default_part != p.default
        && clone3_rules.iter().all(|r| !r.conds().is_empty())
    {
        out.push((s, Vec::new(), default_part));
    }
    if let Some(s) = ioctl
        && guarded(Action::EPERM, p.default) != p.default
    {
        for req in GUARDED_IOCTLS {
            let rule = (
                s,
                vec![Cond::arg(1).masked_eq(0xffff_ffff, u64::from(req))],
                Action::EPERM,
            );
            if !out.contains(&rule) {
                out.push(rule);
            }
        }
    }
    Ok(out)
}

fn export_action(a: Action) -> (&'static str, Option<u64>) {
    match a {
        Action::Allow => ("SCMP_ACT_ALLOW", None),
        Action::Errno(e) => ("SCMP_ACT_ERRNO", Some(u64::from(e))),
        Action::KillProcess => ("SCMP_ACT_KILL_PROCESS", None),
        Action::KillThread => ("SCMP_ACT_KILL_THREAD", None),
        Action::Trap => ("SCMP_ACT_TRAP", None),
        Action::Log => ("SCMP_ACT_LOG", None),
        Action::Notify => ("SCMP_ACT_NOTIFY", None),
        Action::Trace(m) => ("SCMP_ACT_TRACE", Some(u64::from(m))),
    }
}

fn export_cond(c: &Cond) -> Result<OciArg, ProfileError> {
    let arg = |op: &str, value, value_two| OciArg {
        index: u64::from(c.index()),
        value,
        value_two,
        op: op.to_owned(),
    };
    if c.is_32bit() {
        return match c.op() {
            CmpOp::Eq => Ok(arg("SCMP_CMP_MASKED_EQ", 0xffff_ffff, c.value())),
            CmpOp::MaskedEq(m) => Ok(arg("SCMP_CMP_MASKED_EQ", m & 0xffff_ffff, c.value())),
            _ => Err(ProfileError::Export {
                reason: "OCI profiles have no 32-bit comparisons other than equality",
            }),
        };
    }
    Ok(match c.op() {
        CmpOp::Eq => arg("SCMP_CMP_EQ", c.value(), 0),
        CmpOp::Ne => arg("SCMP_CMP_NE", c.value(), 0),
        CmpOp::Lt => arg("SCMP_CMP_LT", c.value(), 0),
        CmpOp::Le => arg("SCMP_CMP_LE", c.value(), 0),
        CmpOp::Gt => arg("SCMP_CMP_GT", c.value(), 0),
        CmpOp::Ge => arg("SCMP_CMP_GE", c.value(), 0),
        CmpOp::MaskedEq(m) => arg("SCMP_CMP_MASKED_EQ", m, c.value()),
    })
}
