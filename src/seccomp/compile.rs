//! Lowering a [`Profile`] to classic BPF: seccompiler does the rule code, ringfence adds what
//! it lacks (several actions in one program, user notification, the guard).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use super::profile::{Action, Arch, CmpOp, Cond, Profile, ProfileError, RET_USER_NOTIF};

/// The kernel's limit on the length of one filter program (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Insn {
    /// Opcode (`BPF_LD | BPF_W | BPF_ABS`, ...).
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

const _: () = assert!(std::mem::size_of::<Insn>() == std::mem::size_of::<libc::sock_filter>());
const _: () = assert!(std::mem::align_of::<Insn>() == std::mem::align_of::<libc::sock_filter>());

// Opcodes, from <linux/bpf_common.h>.
pub(crate) const BPF_LD: u16 = 0x00;
pub(crate) const BPF_JMP: u16 = 0x05;
pub(crate) const BPF_RET: u16 = 0x06;
pub(crate) const BPF_W: u16 = 0x00;
pub(crate) const BPF_ABS: u16 = 0x20;
pub(crate) const BPF_JA: u16 = 0x00;
pub(crate) const BPF_JEQ: u16 = 0x10;
pub(crate) const BPF_JGE: u16 = 0x30;
pub(crate) const BPF_K: u16 = 0x00;

// Offsets in `struct seccomp_data` (little-endian: the low half of an argument comes first).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

/// Bit that marks x32 syscall numbers on x86_64 (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `TIOCSTI`: push a byte into the terminal's input queue.
pub const TIOCSTI: u32 = 0x5412;
/// `TIOCLINUX`: console subcommands, including selection paste (input injection).
pub const TIOCLINUX: u32 = 0x541c;

const fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// The guard program installed with every confined profile.
///
/// ```text
/// arch != native            -> KILL_PROCESS   (i386 int 0x80, arm32, ...)
/// nr >= 0x40000000 (x86_64) -> KILL_PROCESS   (x32 ABI)
/// clone3                    -> ERRNO(ENOSYS)  (libc falls back to clone, whose flags are checkable)
/// ioctl, (u32)arg1 == TIOCSTI or TIOCLINUX -> ERRNO(EPERM)
/// otherwise                 -> ALLOW
/// ```
pub fn guard(arch: Arch) -> Vec<Insn> {
    let ret = |a: Action| stmt(BPF_RET | BPF_K, a.to_ret());
    let nr = |name: &str| {
        // The names are in every shipped table (checked by a unit test).
        super::Syscall::named_for(arch, name).map_or(u32::MAX, |s| s.nr())
    };
    let mut p = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, arch.audit_arch(), 1, 0),
        ret(Action::KillProcess),
        stmt(BPF_LD | BPF_W | BPF_ABS, OFF_NR),
    ];
    if arch == Arch::X86_64 {
        p.extend([
            jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
            ret(Action::KillProcess),
        ]);
    }
    p.extend([
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr("clone3"), 0, 1),
        ret(Action::Errno(libc::ENOSYS as u16)),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr("ioctl"), 0, 4),
        stmt(BPF_LD | BPF_W | BPF_ABS, off_arg_lo(1)),
        jump(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 1, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 0, 1),
        ret(Action::EPERM),
        ret(Action::Allow),
    ]);
    p
}

/// A profile compiled to BPF, ready to be installed (many times: compile once, spawn often).
///
/// Holds one program per filter to install, in installation order: the guard first, then
/// the profile. An [`unconfined`](Profile::unconfined) profile has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledProfile {
    programs: Vec<Box<[Insn]>>,
    notify: bool,
}

impl CompiledProfile {
    /// The programs, in the order they are installed (guard, then profile).
    pub fn programs(&self) -> impl DoubleEndedIterator<Item = &[Insn]> + ExactSizeIterator {
        self.programs.iter().map(|p| &p[..])
    }

    /// Each program as the bytes of the `struct sock_filter` array the kernel receives
    /// (native endianness: `code: u16, jt: u8, jf: u8, k: u32` per instruction).
    pub fn to_bytes(&self) -> Vec<Vec<u8>> {
        self.programs
            .iter()
            .map(|p| {
                p.iter()
                    .flat_map(|i| {
                        let mut b = [0u8; 8];
                        b[..2].copy_from_slice(&i.code.to_ne_bytes());
                        b[2] = i.jt;
                        b[3] = i.jf;
                        b[4..].copy_from_slice(&i.k.to_ne_bytes());
                        b
                    })
                    .collect()
            })
            .collect()
    }

    /// Whether the profile uses [`Action::Notify`], so that its last program must be
    /// installed with a user-notification listener.
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    /// The programs to install, in order. Allocation-free; safe to call after clone.
    #[allow(dead_code)] // called by the spawn core
    pub(crate) fn install_order(&self) -> &[Box<[Insn]>] {
        &self.programs
    }

    /// Installs every program in order, the last one with a listener when the profile uses
    /// `Notify`; returns the listener fd. The contract of [`super::install::install`] applies
    /// (no allocation, `PR_SET_NO_NEW_PRIVS` already set).
    #[allow(dead_code)] // called by the spawn core
    pub(crate) fn install_all(&self) -> Result<Option<std::os::fd::RawFd>, nix::errno::Errno> {
        let mut fd = None;
        let last = self.programs.len().saturating_sub(1);
        for (i, p) in self.programs.iter().enumerate() {
            let listener = self.notify && i == last;
            if let Some(f) = super::install::install(p, listener)? {
                fd = Some(f);
            }
        }
        Ok(fd)
    }
}

// seccompiler has no user-notification action and no "go on with the next part" action. They are
// compiled as ERRNO returns with data that is no valid errno, then patched.
const PLACEHOLDER_NOTIFY: u32 = 0xfffe;
const PLACEHOLDER_NEXT: u32 = 0xffff;

/// Profiles with rules for more syscalls than this get a dispatch prefix (see [`dispatch`]).
/// Smaller ones stay a plain chain (and their instructions stay easy to check by eye).
const DISPATCH_THRESHOLD: usize = 16;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JA: u16 = 0x05;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
/// Marks a jump to the end of the prefix until its offset is known.
const TO_REST: u32 = u32::MAX;

fn insn(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// A binary search over the syscalls that have rules, put in front of the rule chain: a
/// syscall without rules returns the default action after about log2(n) comparisons instead of
/// walking the whole chain. Besides the run time of such calls, this is what makes installing
/// a filter cheap: the kernel evaluates the filter once per syscall number, at installation, to
/// cache the syscalls that are always allowed.
///
/// Layout: the architecture check (wrong architecture: kill the process, like the rest of the
/// program), `ld nr`, then the search tree; a leaf that finds its number jumps past the prefix
/// into the chain, every other leaf returns the default action.
fn dispatch(sorted: &[u32], default_ret: u32, arch: Arch) -> Vec<Insn> {
    fn tree(sorted: &[u32], default_ret: u32, out: &mut Vec<Insn>) {
        match sorted {
            [] => out.push(insn(BPF_RET_K, default_ret, 0, 0)),
            [nr] => {
                out.push(insn(BPF_JMP_JEQ_K, *nr, 0, 1));
                out.push(insn(BPF_JMP_JA, TO_REST, 0, 0));
                out.push(insn(BPF_RET_K, default_ret, 0, 0));
            }
            _ => {
                let mid = sorted.len() / 2;
                let mut lower = Vec::new();
                tree(&sorted[..mid], default_ret, &mut lower);
                // nr >= sorted[mid]: the next instruction jumps over the lower half.
                out.push(insn(BPF_JMP_JGE_K, sorted[mid], 0, 1));
                out.push(insn(BPF_JMP_JA, lower.len() as u32, 0, 0));
                out.extend(lower);
                tree(&sorted[mid..], default_ret, out);
            }
        }
    }
    let mut out = vec![
        insn(BPF_LD_W_ABS, 4, 0, 0), // seccomp_data.arch
        insn(BPF_JMP_JEQ_K, arch.audit_arch(), 1, 0),
        insn(BPF_RET_K, SECCOMP_RET_KILL_PROCESS, 0, 0),
        insn(BPF_LD_W_ABS, 0, 0, 0), // seccomp_data.nr
    ];
    tree(sorted, default_ret, &mut out);
    let len = out.len();
    for (i, ins) in out.iter_mut().enumerate() {
        if ins.code == BPF_JMP_JA && ins.k == TO_REST {
            ins.k = (len - i - 1) as u32;
        }
    }
    out
}

fn backend_action(a: Action) -> SeccompAction {
    match a {
        Action::Allow => SeccompAction::Allow,
        Action::Errno(e) => SeccompAction::Errno(u32::from(e)),
        Action::KillProcess => SeccompAction::KillProcess,
        Action::KillThread => SeccompAction::KillThread,
        Action::Trap => SeccompAction::Trap,
        Action::Log => SeccompAction::Log,
        Action::Notify => SeccompAction::Errno(PLACEHOLDER_NOTIFY),
        Action::Trace(m) => SeccompAction::Trace(u32::from(m)),
    }
}

fn backend_cond(c: &Cond) -> Result<SeccompCondition, ProfileError> {
    let len = if c.is_32bit() {
        SeccompCmpArgLen::Dword
    } else {
        SeccompCmpArgLen::Qword
    };
    let op = match c.op() {
        CmpOp::Eq => SeccompCmpOp::Eq,
        CmpOp::Ne => SeccompCmpOp::Ne,
        CmpOp::Lt => SeccompCmpOp::Lt,
        CmpOp::Le => SeccompCmpOp::Le,
        CmpOp::Gt => SeccompCmpOp::Gt,
        CmpOp::Ge => SeccompCmpOp::Ge,
        CmpOp::MaskedEq(m) => SeccompCmpOp::MaskedEq(m),
    };
    SeccompCondition::new(c.index(), len, op, c.value())
        .map_err(|e| ProfileError::Backend(e.to_string()))
}

/// One syscall's rules as runs of equal actions: `(action, rules)`, where an empty rule list
/// inside means "unconditional".
type Runs = Vec<(Action, Vec<Vec<Cond>>)>;

/// Groups the rules per syscall in order, drops what can never match (rules after an
/// unconditional one) and trailing rules that give the default action anyway.
fn runs(profile: &Profile) -> BTreeMap<u32, Runs> {
    // Per syscall: whether an unconditional rule was seen, and the live rules so far.
    type Live = (bool, Vec<(Action, Vec<Cond>)>);
    let mut per: BTreeMap<u32, Live> = BTreeMap::new();
    for r in profile.rules() {
        let e = per.entry(r.syscall().nr()).or_default();
        if e.0 {
            continue; // an earlier unconditional rule always matches first
        }
        if r.conds().is_empty() {
            e.0 = true;
        }
        e.1.push((r.action(), r.conds().to_vec()));
    }
    let mut out = BTreeMap::new();
    for (nr, (_, mut rules)) in per {
        while rules.last().is_some_and(|(a, _)| *a == profile.default) {
            rules.pop();
        }
        let mut runs: Runs = Vec::new();
        for (a, conds) in rules {
            match runs.last_mut() {
                Some((ra, list)) if *ra == a => list.push(conds),
                _ => runs.push((a, vec![conds])),
            }
        }
        if !runs.is_empty() {
            out.insert(nr, runs);
        }
    }
    out
}

impl Profile {
    /// Compiles the profile (and the guard) to BPF.
    ///
    /// Errors: the first builder error ([`Profile::check`]), or a program longer than
    /// [`BPF_MAXINSNS`].
    pub fn compile(&self) -> Result<CompiledProfile, ProfileError> {
        self.check()?;
        if self.unconfined {
            return Ok(CompiledProfile {
                programs: Vec::new(),
                notify: false,
            });
        }
        let arch = self.arch.ok_or(ProfileError::UnsupportedArch)?;
        let mut main = self.compile_main(arch)?;
        let ruled: Vec<u32> = runs(self).into_keys().collect();
        if ruled.len() > DISPATCH_THRESHOLD {
            let mut prefixed = dispatch(&ruled, self.default.to_ret(), arch);
            prefixed.append(&mut main);
            main = prefixed;
            if main.len() > BPF_MAXINSNS {
                return Err(ProfileError::TooLarge { len: main.len() });
            }
        }
        Ok(CompiledProfile {
            programs: vec![guard(arch).into_boxed_slice(), main.into_boxed_slice()],
            notify: self.uses_notify(),
        })
    }

    /// The profile's own program, without the guard.
    pub(crate) fn compile_main(&self, arch: Arch) -> Result<Vec<Insn>, ProfileError> {
        // Segment (depth, action): for every syscall, its depth-th run of rules if that run has
        // this action. Going through the segments by depth keeps each syscall's rule order, so
        // the first matching rule decides; within one depth a syscall is in one segment only.
        let mut segments: BTreeMap<(usize, Action), BTreeMap<i64, Vec<SeccompRule>>> =
            BTreeMap::new();
        for (nr, runs) in runs(self) {
            for (depth, (action, rules)) in runs.into_iter().enumerate() {
                let mut lowered = Vec::new();
                let mut unconditional = false;
                for conds in rules {
                    if conds.is_empty() {
                        unconditional = true;
                        break;
                    }
                    let conds = conds.iter().map(backend_cond).collect::<Result<_, _>>()?;
                    lowered.push(
                        SeccompRule::new(conds)
                            .map_err(|e| ProfileError::Backend(e.to_string()))?,
                    );
                }
                if unconditional {
                    // seccompiler: an empty rule chain matches the syscall unconditionally.
                    lowered.clear();
                }
                segments
                    .entry((depth, action))
                    .or_default()
                    .insert(i64::from(nr), lowered);
            }
        }

        let target = arch.seccompiler();
        let mut out: Vec<Insn> = Vec::new();
        let prologue_len = arch_prologue(target)?.len();
        for (i, ((_, action), rules)) in segments.into_iter().enumerate() {
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Errno(PLACEHOLDER_NEXT),
                backend_action(action),
                target,
            )
            .map_err(|e| ProfileError::Backend(e.to_string()))?;
            let prog: BpfProgram =
                filter
                    .try_into()
                    .map_err(|e: seccompiler::BackendError| match e {
                        seccompiler::BackendError::FilterTooLarge(len) => {
                            ProfileError::TooLarge { len }
                        }
                        e => ProfileError::Backend(e.to_string()),
                    })?;
            let mut seg: Vec<Insn> = prog
                .iter()
                .map(|f| Insn {
                    code: f.code,
                    jt: f.jt,
                    jf: f.jf,
                    k: f.k,
                })
                .collect();
            if i > 0 {
                // The architecture was checked by the first segment; the prologue is
                // self-contained (its jumps stay inside it), so dropping it is safe.
                seg.drain(..prologue_len);
            }
            let len = seg.len();
            for (j, insn) in seg.iter_mut().enumerate() {
                patch(insn, (len - 1 - j) as u32);
            }
            out.extend(seg);
        }
        if out.is_empty() {
            out.extend(arch_prologue(target)?);
        }
        let mut last = stmt(BPF_RET | BPF_K, backend_action(self.default).into());
        patch(&mut last, 0);
        out.push(last);
        if out.len() > BPF_MAXINSNS {
            return Err(ProfileError::TooLarge { len: out.len() });
        }
        Ok(out)
    }
}

/// Replaces placeholder returns: NOTIFY by the user-notification return, NEXT by a jump to
/// the instruction after the segment (`to_end` instructions further).
fn patch(insn: &mut Insn, to_end: u32) {
    if insn.code != BPF_RET | BPF_K {
        return;
    }
    if insn.k == libc::SECCOMP_RET_ERRNO | PLACEHOLDER_NOTIFY {
        insn.k = RET_USER_NOTIF;
    } else if insn.k == libc::SECCOMP_RET_ERRNO | PLACEHOLDER_NEXT {
        *insn = stmt(BPF_JMP | BPF_JA, to_end);
    }
}

/// seccompiler's architecture check, as it emits it for a filter without rules.
fn arch_prologue(target: seccompiler::TargetArch) -> Result<Vec<Insn>, ProfileError> {
    let f = SeccompFilter::new(
        BTreeMap::new(),
        SeccompAction::Allow,
        SeccompAction::KillProcess,
        target,
    )
    .map_err(|e| ProfileError::Backend(e.to_string()))?;
    let p: BpfProgram = f
        .try_into()
        .map_err(|e: seccompiler::BackendError| ProfileError::Backend(e.to_string()))?;
    // Everything but the final `ret ALLOW`.
    Ok(p[..p.len() - 1]
        .iter()
        .map(|f| Insn {
            code: f.code,
            jt: f.jt,
            jf: f.jf,
            k: f.k,
        })
        .collect())
}
