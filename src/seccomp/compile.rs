//! Lowering a [`Profile`] to classic BPF: one program holding the guard and the profile, with
//! a binary search on the syscall number in front of short per-syscall rule blocks.
//!
//! The program is kept short because the kernel's cost of installing a filter grows with its
//! length (conversion to eBPF, JIT, and the emulation that fills the per-syscall action cache),
//! and every sandbox installs it once per spawn: the default profile with the guard is about
//! 160 instructions, where a program per rule segment (seccompiler's layout) plus a separate
//! guard came to 975.

use std::collections::BTreeMap;

use super::profile::{Action, Arch, CmpOp, Cond, Profile, ProfileError};

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

/// The guard every confined profile carries, as a program of its own.
///
/// [`Profile::compile`] merges it into the profile's program (one filter to install, with the
/// result the kernel gives for this guard installed first and the profile after it); this
/// stand-alone form states the guard's meaning and serves to check the merge and to stack
/// the guard in front of programs from other compilers.
///
/// ```text
/// arch != native            -> KILL_PROCESS   (i386 int 0x80, arm32, ...)
/// nr >= 0x40000000 (x86_64) -> KILL_PROCESS   (x32 ABI)
/// clone3                    -> ERRNO(ENOSYS)  (libc falls back to clone, whose flags are checkable)
/// ioctl, (u32)arg1 == TIOCSTI or TIOCLINUX -> ERRNO(EPERM)
/// otherwise                 -> ALLOW
/// ```
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
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
/// Holds the programs to install, in installation order: one program (the profile with the
/// [`guard`] merged in) for a confined profile, none for an
/// [`unconfined`](Profile::unconfined) one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledProfile {
    programs: Vec<Box<[Insn]>>,
    notify: bool,
    /// For a supervised filter: the program that says what each call gets (the installed one
    /// notifies some calls so that the supervisor sees them).
    reference: Option<Box<[Insn]>>,
}

impl CompiledProfile {
    /// The programs, in the order they are installed (one, or none when unconfined). Not
    /// API (the instruction type is internal): [`to_bytes`](Self::to_bytes) exports them.
    #[doc(hidden)]
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

    /// This filter, supervised: `reference` (the profile's own program) says what each call
    /// gets; the supervisor answers notified calls as it says (see `supervise.rs`).
    pub(crate) fn supervised(mut self, reference: &CompiledProfile) -> CompiledProfile {
        self.reference = reference.programs.last().cloned();
        self
    }

    /// The program that decides what a notified call gets: the profile without the
    /// supervisor's notifications.
    pub(crate) fn reference(&self) -> &[Insn] {
        match (&self.reference, self.programs.last()) {
            (Some(r), _) | (None, Some(r)) => r,
            (None, None) => &[],
        }
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

/// Whether a filter result is a refusal the supervisor reports when asked: an errno, or the
/// kill of the process.
pub(crate) fn refusal_reported(ret: u32) -> bool {
    ret & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_ERRNO
        || ret & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_KILL_PROCESS
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

/// Jump targets before layout.
type Label = usize;

/// One instruction of a program under construction: jumps name labels, resolved by
/// [`Asm::finish`].
#[derive(Clone, Copy, Debug)]
enum Op {
    /// A load, an ALU operation or a return.
    Plain(Insn),
    /// A conditional jump (`code` is `BPF_JMP | op | BPF_K`).
    Jump {
        code: u16,
        k: u32,
        jt: Label,
        jf: Label,
    },
    /// An unconditional jump.
    Ja(Label),
    /// Binds a label to the next instruction (takes no space).
    Bind(Label),
}

// Opcodes of the instructions the compiler emits.
const LD_W_ABS: u16 = BPF_LD | BPF_W | BPF_ABS;
const RET_K: u16 = BPF_RET | BPF_K;
const JEQ_K: u16 = BPF_JMP | BPF_JEQ | BPF_K;
const JGE_K: u16 = BPF_JMP | BPF_JGE | BPF_K;
const JGT_K: u16 = BPF_JMP | 0x20 | BPF_K;
const JSET_K: u16 = BPF_JMP | 0x40 | BPF_K;
const AND_K: u16 = 0x04 | 0x50 | BPF_K;

/// A small assembler: only forward jumps, conditional jumps farther than 255 instructions get
/// an unconditional trampoline.
#[derive(Default)]
struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }
    fn bind(&mut self, l: Label) {
        self.ops.push(Op::Bind(l));
    }
    fn ld(&mut self, off: u32) {
        self.ops.push(Op::Plain(stmt(LD_W_ABS, off)));
    }
    fn ret(&mut self, ret: u32) {
        self.ops.push(Op::Plain(stmt(RET_K, ret)));
    }
    fn jump(&mut self, code: u16, k: u32, jt: Label, jf: Label) {
        self.ops.push(Op::Jump { code, k, jt, jf });
    }
    fn ja(&mut self, l: Label) {
        self.ops.push(Op::Ja(l));
    }

    /// Resolves the labels. Unconditional jumps to the next instruction are dropped;
    /// conditional jumps whose target is out of reach of their 8-bit offsets go through a
    /// trampoline placed right after them.
    fn finish(mut self) -> Vec<Insn> {
        // Drop `ja L` when L is bound before the next instruction.
        let mut i = 0;
        while i < self.ops.len() {
            if let Op::Ja(l) = self.ops[i] {
                let next_binds = self.ops[i + 1..]
                    .iter()
                    .take_while(|o| matches!(o, Op::Bind(_)))
                    .any(|o| matches!(o, Op::Bind(b) if *b == l));
                if next_binds {
                    self.ops.remove(i);
                    continue;
                }
            }
            i += 1;
        }
        loop {
            let mut at = vec![usize::MAX; self.labels];
            let mut pos = Vec::with_capacity(self.ops.len());
            let mut n = 0;
            for op in &self.ops {
                pos.push(n);
                debug_assert!(
                    !matches!(op, Op::Bind(l) if at[*l] != usize::MAX),
                    "bound twice"
                );
                match op {
                    Op::Bind(l) => at[*l] = n,
                    _ => n += 1,
                }
            }
            let far = self.ops.iter().enumerate().find_map(|(i, op)| match op {
                Op::Jump { jt, jf, .. } => {
                    let dist = |l: Label| at[l] - pos[i] - 1;
                    (dist(*jt) > 255 || dist(*jf) > 255).then_some(i)
                }
                _ => None,
            });
            let Some(i) = far else {
                debug_assert!(
                    self.ops.iter().all(|op| match op {
                        Op::Jump { jt, jf, .. } => at[*jt] != usize::MAX && at[*jf] != usize::MAX,
                        Op::Ja(l) => at[*l] != usize::MAX,
                        _ => true,
                    }),
                    "unbound label"
                );
                return self
                    .ops
                    .iter()
                    .enumerate()
                    .filter_map(|(i, op)| {
                        // Every jump is forward: a target is bound after its jump.
                        let dist = |l: Label| at[l] - pos[i] - 1;
                        match *op {
                            Op::Plain(insn) => Some(insn),
                            Op::Jump { code, k, jt, jf } => {
                                Some(jump(code, k, dist(jt) as u8, dist(jf) as u8))
                            }
                            Op::Ja(l) => Some(stmt(BPF_JMP | BPF_JA, dist(l) as u32)),
                            Op::Bind(_) => None,
                        }
                    })
                    .collect();
            };
            let Op::Jump { code, k, jt, jf } = self.ops[i] else {
                unreachable!("only conditional jumps are far")
            };
            let dist = |l: Label| at[l] - pos[i] - 1;
            let mut tramp = Vec::new();
            let (mut nt, mut nf) = (jt, jf);
            for (far, target, new) in [(dist(jt) > 255, jt, &mut nt), (dist(jf) > 255, jf, &mut nf)]
            {
                if far {
                    self.labels += 1;
                    *new = self.labels - 1;
                    tramp.extend([Op::Bind(*new), Op::Ja(target)]);
                }
            }
            self.ops[i] = Op::Jump {
                code,
                k,
                jt: nt,
                jf: nf,
            };
            self.ops.splice(i + 1..i + 1, tramp);
        }
    }
}

/// A test on one 32-bit word of `seccomp_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WordTest {
    /// Always true.
    Always,
    Eq(u32),
    Gt(u32),
    Ge(u32),
    /// `word & mask != 0`
    AnySet(u32),
    /// `word & mask == 0`
    NoneSet(u32),
    /// `word & mask == value`
    MaskEq(u32, u32),
}

/// `word & mask == value` (with `value & !mask == 0`, as [`Cond`] checks) in its cheapest form.
fn masked(mask: u32, value: u32) -> WordTest {
    if mask == 0 {
        WordTest::Always
    } else if value == 0 {
        WordTest::NoneSet(mask)
    } else if value == mask && mask.is_power_of_two() {
        WordTest::AnySet(mask)
    } else if mask == u32::MAX {
        WordTest::Eq(value)
    } else {
        WordTest::MaskEq(mask, value)
    }
}

fn emit_word(asm: &mut Asm, off: u32, test: WordTest, pass: Label, fail: Label) {
    if test == WordTest::Always {
        asm.ja(pass);
        return;
    }
    asm.ld(off);
    match test {
        WordTest::Always => {}
        WordTest::Eq(v) => asm.jump(JEQ_K, v, pass, fail),
        WordTest::Gt(v) => asm.jump(JGT_K, v, pass, fail),
        WordTest::Ge(v) => asm.jump(JGE_K, v, pass, fail),
        WordTest::AnySet(m) => asm.jump(JSET_K, m, pass, fail),
        WordTest::NoneSet(m) => asm.jump(JSET_K, m, fail, pass),
        WordTest::MaskEq(m, v) => {
            asm.ops.push(Op::Plain(stmt(AND_K, m)));
            asm.jump(JEQ_K, v, pass, fail);
        }
    }
}

/// Jumps to `pass` when `c` holds, to `fail` otherwise. 64-bit comparisons look at the high
/// word first; 32-bit ones load only the low word.
fn emit_cond(asm: &mut Asm, c: &Cond, pass: Label, fail: Label) {
    let lo = off_arg_lo(u32::from(c.index()));
    let hi = lo + 4;
    let v = c.value();
    let (vh, vl) = ((v >> 32) as u32, v as u32);
    if c.is_32bit() {
        let (test, pass, fail) = match c.op() {
            CmpOp::Eq => (WordTest::Eq(vl), pass, fail),
            CmpOp::Ne => (WordTest::Eq(vl), fail, pass),
            CmpOp::Gt => (WordTest::Gt(vl), pass, fail),
            CmpOp::Ge => (WordTest::Ge(vl), pass, fail),
            CmpOp::Lt => (WordTest::Ge(vl), fail, pass),
            CmpOp::Le => (WordTest::Gt(vl), fail, pass),
            CmpOp::MaskedEq(m) => (masked(m as u32, vl), pass, fail),
        };
        emit_word(asm, lo, test, pass, fail);
        return;
    }
    // Unsigned order on (high, low): decided by the high words unless they are equal.
    let order = |asm: &mut Asm, last: u16, pass: Label, fail: Label| {
        let (eq, low) = (asm.label(), asm.label());
        asm.ld(hi);
        asm.jump(JGT_K, vh, pass, eq);
        asm.bind(eq);
        asm.jump(JEQ_K, vh, low, fail);
        asm.bind(low);
        asm.ld(lo);
        asm.jump(last, vl, pass, fail);
    };
    match c.op() {
        CmpOp::Eq | CmpOp::Ne => {
            let (pass, fail) = if c.op() == CmpOp::Eq {
                (pass, fail)
            } else {
                (fail, pass)
            };
            let low = asm.label();
            emit_word(asm, hi, WordTest::Eq(vh), low, fail);
            asm.bind(low);
            emit_word(asm, lo, WordTest::Eq(vl), pass, fail);
        }
        CmpOp::Gt => order(asm, JGT_K, pass, fail),
        CmpOp::Ge => order(asm, JGE_K, pass, fail),
        CmpOp::Lt => order(asm, JGE_K, fail, pass),
        CmpOp::Le => order(asm, JGT_K, fail, pass),
        CmpOp::MaskedEq(m) => {
            let (th, tl) = (masked((m >> 32) as u32, vh), masked(m as u32, vl));
            if th != WordTest::Always {
                let low = asm.label();
                emit_word(asm, hi, th, low, fail);
                asm.bind(low);
            }
            emit_word(asm, lo, tl, pass, fail);
        }
    }
}

/// The word offset and bit when a rule is exactly "this one bit of this word is set", which
/// consecutive rules with the same action can share in one `jset`.
fn single_bit(conds: &[Cond]) -> Option<(u32, u32)> {
    let [c] = conds else { return None };
    let CmpOp::MaskedEq(m) = c.op() else {
        return None;
    };
    if m != c.value() || !m.is_power_of_two() {
        return None;
    }
    let lo = off_arg_lo(u32::from(c.index()));
    if m >> 32 == 0 {
        Some((lo, m as u32))
    } else {
        Some((lo + 4, (m >> 32) as u32))
    }
}

/// One syscall's rules (first match wins), ending with `default` when none matches. Every
/// return value goes through `map` (the merge with the guard).
fn emit_rules(asm: &mut Asm, runs: &Runs, default: u32, map: &dyn Fn(u32) -> u32) {
    for (action, rules) in runs {
        let ret = map(action.to_ret());
        let matched = asm.label();
        let end = asm.label();
        let mut i = 0;
        while i < rules.len() {
            let conds = &rules[i];
            if conds.is_empty() {
                // Unconditional: what follows can never run (`runs` keeps nothing after it).
                // Earlier rules of the run that match come here too.
                asm.bind(matched);
                asm.ret(ret);
                return;
            }
            let last_of_run = |j: usize| j + 1 == rules.len();
            if let Some((off, bit)) = single_bit(conds) {
                let mut mask = bit;
                while let Some((o, b)) = rules.get(i + 1).and_then(|r| single_bit(r)) {
                    if o != off {
                        break;
                    }
                    mask |= b;
                    i += 1;
                }
                let next = if last_of_run(i) { end } else { asm.label() };
                emit_word(asm, off, WordTest::AnySet(mask), matched, next);
                if next != end {
                    asm.bind(next);
                }
            } else {
                let next = if last_of_run(i) { end } else { asm.label() };
                for (j, c) in conds.iter().enumerate() {
                    if j + 1 == conds.len() {
                        emit_cond(asm, c, matched, next);
                    } else {
                        let ok = asm.label();
                        emit_cond(asm, c, ok, next);
                        asm.bind(ok);
                    }
                }
                if next != end {
                    asm.bind(next);
                }
            }
            i += 1;
        }
        asm.bind(matched);
        asm.ret(ret);
        asm.bind(end);
    }
    asm.ret(map(default));
}

/// The result of two stacked filters as the kernel computes it (`seccomp_run_filters`): the
/// most restrictive action wins, and on a tie the filter installed last (`last`).
pub(crate) fn stacked(first: u32, last: u32) -> u32 {
    let action = |r: u32| (r & libc::SECCOMP_RET_ACTION_FULL) as i32;
    let mut ret = libc::SECCOMP_RET_ALLOW;
    for cur in [last, first] {
        if action(cur) < action(ret) {
            ret = cur;
        }
    }
    ret
}

/// What the program does once it knows the syscall number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leaf {
    /// Return this value: the result does not depend on the arguments.
    Ret(u32),
    /// The rules of this syscall.
    Rules(u32),
    /// `ioctl` with the guard's `TIOCSTI`/`TIOCLINUX` check in front of its rules.
    GuardedIoctl(u32),
}

/// Lowers a profile to one program: the architecture check (and, with `guard`, the x32
/// check), a binary search on the syscall number over ranges of numbers that get the same
/// constant result, and at the leaves either that result or the syscall's rules.
///
/// With `guard`, the program returns what the kernel would return for [`guard`] installed
/// first and the profile's own program after it.
///
/// With `report`, every errno and kill-process result becomes `USER_NOTIF` (see
/// [`CompiledProfile::supervised`]), except `clone3`'s `ENOSYS`: libc falls back to `clone` on
/// it at every thread or process creation, which is no refusal worth a round trip.
fn lower(profile: &Profile, arch: Arch, with_guard: bool, report: bool) -> Vec<Insn> {
    let runs = runs(profile);
    let default = profile.default.to_ret();
    let nr_of = |name: &str| super::Syscall::named_for(arch, name).map(|s| s.nr());
    let (clone3, ioctl) = if with_guard {
        (nr_of("clone3").ok(), nr_of("ioctl").ok())
    } else {
        (None, None)
    };
    let enosys = Action::Errno(libc::ENOSYS as u16).to_ret();
    let eperm = Action::EPERM.to_ret();
    let note = |r: u32| {
        if report && refusal_reported(r) {
            super::profile::RET_USER_NOTIF
        } else {
            r
        }
    };
    let clone3_ret = |r: u32| {
        let r = stacked(enosys, r);
        if r == enosys { r } else { note(r) }
    };

    let mut leaves: BTreeMap<u32, Leaf> = BTreeMap::new();
    for (nr, r) in &runs {
        let constant = match r.first() {
            Some((a, rules)) if rules.first().is_some_and(Vec::is_empty) => Some(a.to_ret()),
            _ => None,
        };
        let leaf = match constant {
            Some(ret) if Some(*nr) == clone3 => Leaf::Ret(clone3_ret(ret)),
            Some(_) | None if Some(*nr) == ioctl => Leaf::GuardedIoctl(*nr),
            Some(ret) => Leaf::Ret(note(ret)),
            None => Leaf::Rules(*nr),
        };
        leaves.insert(*nr, leaf);
    }
    if let Some(nr) = clone3 {
        leaves.entry(nr).or_insert(Leaf::Ret(clone3_ret(default)));
    }
    if let Some(nr) = ioctl {
        leaves.entry(nr).or_insert(Leaf::GuardedIoctl(nr));
    }

    // Ranges [start, next start) of numbers, each with one leaf; neighbours with the same
    // constant result merge.
    let mut ranges: Vec<(u32, Leaf)> = Vec::new();
    let push = |ranges: &mut Vec<(u32, Leaf)>, start: u32, leaf: Leaf| match ranges.last() {
        Some((_, last)) if *last == leaf && matches!(leaf, Leaf::Ret(_)) => {}
        _ => ranges.push((start, leaf)),
    };
    let mut next: Option<u32> = Some(0);
    for (nr, leaf) in &leaves {
        if let Some(n) = next
            && n < *nr
        {
            push(&mut ranges, n, Leaf::Ret(note(default)));
        }
        push(&mut ranges, *nr, *leaf);
        next = nr.checked_add(1);
    }
    if let Some(n) = next {
        push(&mut ranges, n, Leaf::Ret(note(default)));
    }

    let mut asm = Asm::default();
    let kill = note(Action::KillProcess.to_ret());
    let (load_nr, killed) = (asm.label(), asm.label());
    asm.ld(OFF_ARCH);
    asm.jump(JEQ_K, arch.audit_arch(), load_nr, killed);
    if with_guard && arch == Arch::X86_64 {
        let search = asm.label();
        asm.bind(load_nr);
        asm.ld(OFF_NR);
        asm.jump(JGE_K, X32_SYSCALL_BIT, killed, search);
        asm.bind(killed);
        asm.ret(kill);
        asm.bind(search);
    } else {
        asm.bind(killed);
        asm.ret(kill);
        asm.bind(load_nr);
        asm.ld(OFF_NR);
    }

    let emit_leaf = |asm: &mut Asm, leaf: Leaf| match leaf {
        Leaf::Ret(r) => asm.ret(r),
        Leaf::Rules(nr) => {
            let empty = Runs::new();
            let r = runs.get(&nr).unwrap_or(&empty);
            if Some(nr) == clone3 {
                emit_rules(asm, r, default, &clone3_ret);
            } else {
                emit_rules(asm, r, default, &note);
            }
        }
        Leaf::GuardedIoctl(nr) => {
            let empty = Runs::new();
            let r = runs.get(&nr).unwrap_or(&empty);
            let (inject, plain, other) = (asm.label(), asm.label(), asm.label());
            asm.ld(off_arg_lo(1));
            asm.jump(JEQ_K, TIOCSTI, inject, other);
            asm.bind(other);
            asm.jump(JEQ_K, TIOCLINUX, inject, plain);
            asm.bind(plain);
            emit_rules(asm, r, default, &note);
            asm.bind(inject);
            emit_rules(asm, r, default, &|x| note(stacked(eperm, x)));
        }
    };
    // Binary search, laid out in preorder: `jge` falls through to the lower half.
    fn search(asm: &mut Asm, ranges: &[(u32, Leaf)], emit: &dyn Fn(&mut Asm, Leaf)) {
        match ranges {
            [] => {}
            [(_, leaf)] => emit(asm, *leaf),
            _ => {
                let mid = ranges.len() / 2;
                let (upper, lower) = (asm.label(), asm.label());
                asm.jump(JGE_K, ranges[mid].0, upper, lower);
                asm.bind(lower);
                search(asm, &ranges[..mid], emit);
                asm.bind(upper);
                search(asm, &ranges[mid..], emit);
            }
        }
    }
    search(&mut asm, &ranges, &emit_leaf);
    asm.finish()
}

impl Profile {
    /// Compiles the profile, with the guard merged in, to one BPF program.
    ///
    /// Rules that depend on capabilities (see [`Profile::for_capabilities`]) are judged
    /// against none kept.
    ///
    /// Errors: the first builder error ([`Profile::check`]), or a program longer than
    /// [`BPF_MAXINSNS`].
    pub fn compile(&self) -> Result<CompiledProfile, ProfileError> {
        self.check()?;
        if self.unconfined {
            return Ok(CompiledProfile {
                programs: Vec::new(),
                notify: false,
                reference: None,
            });
        }
        let arch = self.arch.ok_or(ProfileError::UnsupportedArch)?;
        let prog = lower(&self.resolved(), arch, true, false);
        if prog.len() > BPF_MAXINSNS {
            return Err(ProfileError::TooLarge { len: prog.len() });
        }
        Ok(CompiledProfile {
            programs: vec![prog.into_boxed_slice()],
            notify: self.uses_notify(),
            reference: None,
        })
    }

    /// Compiles the profile with every errno and kill-process result (but `clone3`'s `ENOSYS`)
    /// turned into a user notification, for a supervisor that answers the same and reports
    /// the call ([`crate::Sandbox::report_refusals`]).
    pub(crate) fn compile_reporting(&self) -> Result<CompiledProfile, ProfileError> {
        let mut c = self.compile()?;
        if let Some(arch) = self.arch
            && !self.unconfined
        {
            c.programs = vec![lower(&self.resolved(), arch, true, true).into_boxed_slice()];
            if c.programs[0].len() > BPF_MAXINSNS {
                return Err(ProfileError::TooLarge {
                    len: c.programs[0].len(),
                });
            }
            c.notify = true;
        }
        Ok(c)
    }

    /// The profile's own program, without the guard (for tests: it is what [`guard`] was
    /// merged with).
    #[cfg(test)]
    pub(crate) fn compile_main(&self, arch: Arch) -> Result<Vec<Insn>, ProfileError> {
        self.check()?;
        let prog = lower(&self.resolved(), arch, false, false);
        if prog.len() > BPF_MAXINSNS {
            return Err(ProfileError::TooLarge { len: prog.len() });
        }
        Ok(prog)
    }
}
