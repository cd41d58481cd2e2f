//! A `Profile` built from structured input → `compile()` never panics, and when it succeeds
//! the compiled programs, run the way the kernel runs stacked filters, decide every probed
//! `seccomp_data` exactly as `Profile::evaluate` (the reference model) and the guard's
//! documented table say.
//!
//! The programs are run by this crate's own interpreter (`ringfence_fuzz::bpf`), which also
//! applies the kernel's static checks (opcodes seccomp allows, jumps in range, aligned loads
//! inside `seccomp_data`, at most `BPF_MAXINSNS` instructions).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ringfence::seccomp::{BPF_MAXINSNS, TIOCLINUX, TIOCSTI, X32_SYSCALL_BIT};
use ringfence::{Action, Arch, CmpOp, Cond, Profile, ProfileError, Syscall};
use ringfence_fuzz::bpf::{self, SeccompData};

/// Masked comparisons with value bits outside the mask are generated too: the library refuses
/// them (`ProfileError::MaskedValue`), which `compile()` must report like any `check()` error.
const MASKED_DATUM_OUTSIDE_MASK: bool = true;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FAction {
    Allow,
    Errno(u16),
    KillProcess,
    KillThread,
    Trap,
    Log,
    Notify,
    Trace(u16),
}

impl FAction {
    fn get(self) -> Action {
        match self {
            // Mostly valid errnos, sometimes one of 4096 or more (refused by check()).
            FAction::Errno(e) => Action::Errno(if e >= 0xf000 { e } else { e % 4096 }),
            FAction::Allow => Action::Allow,
            FAction::KillProcess => Action::KillProcess,
            FAction::KillThread => Action::KillThread,
            FAction::Trap => Action::Trap,
            FAction::Log => Action::Log,
            FAction::Notify => Action::Notify,
            FAction::Trace(m) => Action::Trace(m),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FValue {
    Small(u8),
    Any(u64),
    Low32(u32),
    High(u32),
    Max,
}

impl FValue {
    fn get(self) -> u64 {
        match self {
            FValue::Small(v) => u64::from(v),
            FValue::Any(v) => v,
            FValue::Low32(v) => u64::from(v),
            FValue::High(v) => u64::from(v) << 32 | 0xffff_ffff,
            FValue::Max => u64::MAX,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct FCond {
    /// 0 to 5 valid; 6 and 7 refused by check().
    index: u8,
    bits32: bool,
    op: u8,
    value: FValue,
    mask: FValue,
}

impl FCond {
    fn get(self) -> Cond {
        let idx = self.index % 8;
        let arg = if self.bits32 {
            Cond::arg32(idx)
        } else {
            Cond::arg(idx)
        };
        let v = self.value.get();
        match self.op % 7 {
            0 => arg.eq(v),
            1 => arg.ne(v),
            2 => arg.lt(v),
            3 => arg.le(v),
            4 => arg.gt(v),
            5 => arg.ge(v),
            _ => {
                let m = self.mask.get();
                // See MASKED_DATUM_OUTSIDE_MASK.
                let v = if MASKED_DATUM_OUTSIDE_MASK { v } else { v & m };
                arg.masked_eq(m, v)
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct FRule {
    /// Picks a syscall of the profile's table (numbers are dense from 0 on both arches).
    sys: u16,
    conds: Vec<FCond>,
    action: FAction,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FArg {
    Value(FValue),
    /// A value next to the value (or mask) of some condition of the profile.
    NearCond(u16, i8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FNr {
    OfRule(u16),
    Raw(u32),
    Clone3,
    Ioctl,
    X32(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FArch {
    Profile,
    Other,
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
struct FProbe {
    nr: FNr,
    arch: FArch,
    ip: u64,
    args: [FArg; 6],
    tiocsti_high: Option<u32>,
}

#[derive(Debug)]
struct Input {
    aarch64: bool,
    default: FAction,
    rules: Vec<FRule>,
    probes: Vec<FProbe>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let aarch64 = u.arbitrary()?;
        let default = u.arbitrary()?;
        let n = u.int_in_range(0..=48)?;
        let mut rules = Vec::with_capacity(n);
        for _ in 0..n {
            let sys = u.arbitrary()?;
            let k = u.int_in_range(0..=26)?;
            let k = if k > 4 && !u.ratio(1, 8)? { k % 5 } else { k };
            let mut conds = Vec::with_capacity(k);
            for _ in 0..k {
                conds.push(u.arbitrary()?);
            }
            rules.push(FRule {
                sys,
                conds,
                action: u.arbitrary()?,
            });
        }
        let mut probes = Vec::new();
        for _ in 0..u.int_in_range(1..=24)? {
            probes.push(u.arbitrary()?);
        }
        Ok(Input {
            aarch64,
            default,
            rules,
            probes,
        })
    }
}

/// What the guard does, from the table in the `seccomp` module's documentation.
fn guard_model(arch: Arch, d: &SeccompData) -> u32 {
    let nr = |name| Syscall::named_for(arch, name).unwrap().nr();
    if d.arch != arch.audit_arch() {
        Action::KillProcess.to_ret()
    } else if arch == Arch::X86_64 && d.nr >= X32_SYSCALL_BIT {
        Action::KillProcess.to_ret()
    } else if d.nr == nr("clone3") {
        Action::Errno(libc::ENOSYS as u16).to_ret()
    } else if d.nr == nr("ioctl") && matches!(d.args[1] as u32, TIOCSTI | TIOCLINUX) {
        Action::EPERM.to_ret()
    } else {
        Action::Allow.to_ret()
    }
}

fn probe_data(p: &Profile, arch: Arch, f: &FProbe, near: &[u64]) -> SeccompData {
    let other = match arch {
        Arch::X86_64 => Arch::Aarch64,
        _ => Arch::X86_64,
    };
    let rule_nrs: Vec<u32> = p.rules().iter().map(|r| r.syscall().nr()).collect();
    let nr = match f.nr {
        FNr::OfRule(i) if !rule_nrs.is_empty() => rule_nrs[usize::from(i) % rule_nrs.len()],
        FNr::OfRule(i) => u32::from(i),
        FNr::Raw(n) => n,
        FNr::Clone3 => Syscall::named_for(arch, "clone3").unwrap().nr(),
        FNr::Ioctl => Syscall::named_for(arch, "ioctl").unwrap().nr(),
        FNr::X32(n) => X32_SYSCALL_BIT | u32::from(n),
    };
    let mut args = [0u64; 6];
    for (a, fa) in args.iter_mut().zip(f.args) {
        *a = match fa {
            FArg::Value(v) => v.get(),
            FArg::NearCond(i, d) if !near.is_empty() => {
                near[usize::from(i) % near.len()].wrapping_add_signed(i64::from(d))
            }
            FArg::NearCond(i, d) => u64::from(i).wrapping_add_signed(i64::from(d)),
        };
    }
    if let Some(high) = f.tiocsti_high {
        args[1] =
            u64::from(high) << 32 | u64::from(if high & 1 == 0 { TIOCSTI } else { TIOCLINUX });
    }
    SeccompData {
        nr,
        arch: match f.arch {
            FArch::Profile => arch.audit_arch(),
            FArch::Other => other.audit_arch(),
            FArch::Raw(a) => a,
        },
        instruction_pointer: f.ip,
        args,
    }
}

fuzz_target!(|input: Input| {
    let arch = if input.aarch64 {
        Arch::Aarch64
    } else {
        Arch::X86_64
    };
    let mut p = Profile::allow_all()
        .for_arch(arch)
        .default_action(input.default.get());
    for r in &input.rules {
        let Some(s) = Syscall::from_nr(arch, u32::from(r.sys) % 480) else {
            continue;
        };
        p = p.rule(s, r.conds.iter().map(|c| c.get()), r.action.get());
    }
    let compiled = match p.compile() {
        Ok(c) => c,
        Err(e) => {
            // compile() fails only for what check() reports, or for a program too long.
            match p.check() {
                Err(c) => assert_eq!(c, e),
                Ok(()) => assert!(
                    matches!(e, ProfileError::TooLarge { len } if len > BPF_MAXINSNS),
                    "a checked profile failed to compile: {e:?}"
                ),
            }
            return;
        }
    };
    assert_eq!(p.check(), Ok(()));
    let progs: Vec<&[ringfence::seccomp::Insn]> = compiled.programs().collect();
    // One program: the guard merged into the profile's; it must answer what the two stacked
    // filters (the guard below the profile) would.
    assert_eq!(progs.len(), 1, "the profile with the guard merged in");
    let guard_prog = ringfence::seccomp::guard(arch);
    assert!(bpf::check(&guard_prog).is_ok());
    for prog in &progs {
        if let Err(e) = bpf::check(prog) {
            panic!("the kernel would refuse a compiled program: {e:?}\n{prog:?}");
        }
    }
    assert_eq!(compiled.uses_notify(), p.uses_notify());
    assert_eq!(
        compiled.to_bytes().iter().map(Vec::len).collect::<Vec<_>>(),
        progs.iter().map(|p| p.len() * 8).collect::<Vec<_>>()
    );

    // Values next to which conditions change their answer.
    let mut near = Vec::new();
    for r in p.rules() {
        for c in r.conds() {
            near.push(c.value());
            if let CmpOp::MaskedEq(m) = c.op() {
                near.push(m);
                near.push(c.value() | !m);
            }
        }
    }
    for f in &input.probes {
        let d = probe_data(&p, arch, f, &near);
        let merged = bpf::run(progs[0], &d).expect("checked");
        let guard = bpf::run(&guard_prog, &d).expect("checked");
        assert_eq!(guard, guard_model(arch, &d), "guard on {d:x?}");
        let profile = if d.arch == arch.audit_arch() {
            p.evaluate(d.nr, &d.args).to_ret()
        } else {
            Action::KillProcess.to_ret()
        };
        let want = bpf::combine([profile, guard]);
        assert_eq!(
            merged,
            want,
            "merged program {:?} != model {:?} (profile {:?}, guard {:?}) on {d:x?}\n{p:#?}",
            Action::from_ret(merged),
            Action::from_ret(want),
            Action::from_ret(profile),
            Action::from_ret(guard)
        );
        let stacked = bpf::run_stack(compiled.programs(), &d).expect("checked");
        assert_eq!(stacked, merged);
    }
});
