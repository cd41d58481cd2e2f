//! Compiler tests: golden programs for small cases, and the compiled programs run in the
//! interpreter against the profile's reference semantics ([`Profile::evaluate`]).

use super::compile::*;
use super::interp::{SeccompData, run, run_stack};
use super::*;

const A: Arch = Arch::X86_64;
const AUDIT_X86_64: u32 = 0xc000_003e;
const AUDIT_I386: u32 = 0x4000_0003;
const AUDIT_AARCH64: u32 = 0xc000_00b7;

fn sys(n: &str) -> Syscall {
    Syscall::named_for(A, n).unwrap()
}

fn data(nr: u32, args: [u64; 6]) -> SeccompData {
    SeccompData {
        nr: nr as i32,
        arch: AUDIT_X86_64,
        instruction_pointer: 0,
        args,
    }
}

const fn st(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
const fn jmp(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

#[test]
fn golden_guard_x86_64() {
    let expected = vec![
        st(0x20, 4),
        jmp(0x15, AUDIT_X86_64, 1, 0),
        st(0x06, 0x8000_0000),
        st(0x20, 0),
        jmp(0x35, 0x4000_0000, 0, 1),
        st(0x06, 0x8000_0000),
        jmp(0x15, 435, 0, 1),
        st(0x06, 0x0005_0000 | 38),
        jmp(0x15, 16, 0, 4),
        st(0x20, 24),
        jmp(0x15, 0x5412, 1, 0),
        jmp(0x15, 0x541c, 0, 1),
        st(0x06, 0x0005_0001),
        st(0x06, 0x7fff_0000),
    ];
    assert_eq!(guard(A), expected);
}

#[test]
fn golden_empty_profile() {
    let p = Profile::deny_all().for_arch(A);
    let main = p.compile_main(A).unwrap();
    assert_eq!(
        main,
        vec![
            st(0x20, 4),
            jmp(0x15, AUDIT_X86_64, 1, 0),
            st(0x06, 0x8000_0000),
            st(0x06, 0x0005_0001)
        ]
    );
}

#[test]
fn golden_two_actions_and_notify() {
    // read -> allow; getpid -> notify; default kill.
    let p = Profile::deny_all()
        .for_arch(A)
        .default_action(Action::KillProcess)
        .rule(sys("read"), [], Action::Allow)
        .rule(sys("getpid"), [], Action::Notify);
    let main = p.compile_main(A).unwrap();
    let expected = vec![
        // segment (0, Allow), with seccompiler's arch check
        st(0x20, 4),
        jmp(0x15, AUDIT_X86_64, 1, 0),
        st(0x06, 0x8000_0000),
        st(0x20, 0),
        jmp(0x15, 0, 0, 1),
        st(0x05, 1),
        st(0x05, 2),
        st(0x06, 0x7fff_0000),
        st(0x05, 1), // was `ret NEXT`: to the next segment
        st(0x05, 0), // was `ret NEXT` too
        // segment (0, Notify), arch check dropped
        st(0x20, 0),
        jmp(0x15, 39, 0, 1),
        st(0x05, 1),
        st(0x05, 2),
        st(0x06, 0x7fc0_0000),
        st(0x05, 1),
        st(0x05, 0),
        // default
        st(0x06, 0x8000_0000),
    ];
    assert_eq!(main, expected);
    for (nr, want) in [(0, 0x7fff_0000), (39, 0x7fc0_0000), (1, 0x8000_0000)] {
        assert_eq!(run(&main, &data(nr, [0; 6])).unwrap(), want, "nr {nr}");
    }
}

#[test]
fn too_large_is_refused() {
    let s = sys("ioctl");
    let mut p = Profile::deny_all().for_arch(A);
    for v in 0..1500 {
        p = p.rule(s, [Cond::arg(1).eq(v)], Action::Allow);
    }
    assert!(matches!(p.compile(), Err(ProfileError::TooLarge { .. })));
}

#[test]
fn guard_behaviour() {
    let g = guard(A);
    let ioctl = sys("ioctl").nr();
    let r = |d: SeccompData| Action::from_ret(run(&g, &d).unwrap()).unwrap();
    assert_eq!(r(data(0, [0; 6])), Action::Allow);
    assert_eq!(r(data(39 | X32_SYSCALL_BIT, [0; 6])), Action::KillProcess);
    assert_eq!(r(data(u32::MAX, [0; 6])), Action::KillProcess);
    assert_eq!(r(data(435, [0; 6])), Action::Errno(libc::ENOSYS as u16));
    for req in [0x5412u64, 0x541c, 0xffff_ffff_0000_5412, 0x1_0000_541c] {
        assert_eq!(
            r(data(ioctl, [0, req, 0, 0, 0, 0])),
            Action::EPERM,
            "{req:#x}"
        );
    }
    assert_eq!(r(data(ioctl, [0, 0x5401, 0, 0, 0, 0])), Action::Allow);
    for arch in [AUDIT_I386, AUDIT_AARCH64, 0] {
        let d = SeccompData {
            arch,
            ..data(0, [0; 6])
        };
        assert_eq!(r(d), Action::KillProcess);
    }
    let ga = guard(Arch::Aarch64);
    let d = SeccompData {
        arch: AUDIT_AARCH64,
        ..data(29, [0, 0x5412, 0, 0, 0, 0])
    };
    assert_eq!(run(&ga, &d).unwrap(), Action::EPERM.to_ret());
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
pub(crate) struct Rng(pub u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Interesting argument values around `v`.
pub(crate) fn around(v: u64) -> [u64; 6] {
    [
        v,
        v.wrapping_add(1),
        v.wrapping_sub(1),
        v | 0xffff_ffff_0000_0000,
        v & 0xffff_ffff,
        v ^ (1 << 32),
    ]
}

/// Checks the compiled program against `Profile::evaluate` on many inputs.
fn check_semantics(p: &Profile, rounds: usize, seed: u64) {
    let main = p.compile_main(A).unwrap();
    let mut values: Vec<u64> = vec![0, 1, 2, 0xffff_ffff, 0x1_0000_0000, u64::MAX, 1 << 63];
    let mut nrs: Vec<u32> = Vec::new();
    for r in p.rules() {
        nrs.push(r.syscall().nr());
        for c in r.conds() {
            values.extend(around(c.value()));
            if let CmpOp::MaskedEq(m) = c.op() {
                values.extend(around(m));
                values.push(m | c.value());
            }
        }
    }
    let mut rng = Rng(seed);
    for i in 0..rounds {
        let nr = if i % 2 == 0 && !nrs.is_empty() {
            nrs[rng.below(nrs.len() as u64) as usize]
        } else {
            rng.below(600) as u32
        };
        let mut args = [0u64; 6];
        for a in &mut args {
            *a = if rng.below(4) == 0 {
                rng.next()
            } else {
                values[rng.below(values.len() as u64) as usize]
            };
        }
        let got = run(&main, &data(nr, args)).unwrap();
        let want = p.evaluate(nr, &args).to_ret();
        assert_eq!(got, want, "nr {nr} args {args:x?}");
    }
}

#[test]
fn compiled_matches_model_presets() {
    check_semantics(&Profile::default_container().for_arch(A), 50_000, 1);
    check_semantics(&Profile::strict().for_arch(A), 50_000, 2);
}

#[test]
fn compiled_matches_model_interleaved_actions() {
    let s = sys("socket");
    let w = sys("write");
    let p = Profile::allow_all()
        .for_arch(A)
        .rule(s, [Cond::arg(0).eq(1)], Action::Allow)
        .rule(
            s,
            [Cond::arg(0).lt(10), Cond::arg32(1).masked_eq(0xf, 3)],
            Action::Errno(13),
        )
        .rule(w, [Cond::arg(2).gt(100)], Action::Notify)
        .rule(s, [Cond::arg(2).ge(0x1_0000_0000)], Action::Allow)
        .rule(w, [Cond::arg(0).ne(1)], Action::Log)
        .rule(s, [Cond::arg32(0).le(5)], Action::Trap)
        .rule(w, [Cond::arg(2).eq(7)], Action::Allow)
        .rule(s, [], Action::KillThread)
        .rule(s, [Cond::arg(0).eq(2)], Action::Allow) // unreachable
        .rule(w, [], Action::Trace(5));
    check_semantics(&p, 100_000, 3);
}

#[test]
fn random_profiles_match_model() {
    let mut rng = Rng(99);
    let names = [
        "read", "write", "socket", "ioctl", "mmap", "openat", "clone",
    ];
    let actions = [
        Action::Allow,
        Action::EPERM,
        Action::Errno(2),
        Action::KillProcess,
        Action::Notify,
        Action::Log,
    ];
    for round in 0..40 {
        let mut p = Profile::deny_all()
            .for_arch(A)
            .default_action(actions[round % actions.len()]);
        for _ in 0..rng.below(12) {
            let s = sys(names[rng.below(names.len() as u64) as usize]);
            let mut conds = Vec::new();
            for _ in 0..rng.below(3) {
                let idx = rng.below(6) as u8;
                let arg = if rng.below(2) == 0 {
                    Cond::arg(idx)
                } else {
                    Cond::arg32(idx)
                };
                let v = if arg == Cond::arg32(idx) {
                    rng.below(1 << 32)
                } else {
                    [0, 1, 0xffff_ffff, 1 << 32, rng.next()][rng.below(5) as usize]
                };
                let c = match rng.below(7) {
                    0 => arg.eq(v),
                    1 => arg.ne(v),
                    2 => arg.lt(v),
                    3 => arg.le(v),
                    4 => arg.gt(v),
                    5 => arg.ge(v),
                    _ => arg.masked_eq(v | 0xff, v & 0xf0),
                };
                conds.push(c);
            }
            p = p.rule(s, conds, actions[rng.below(actions.len() as u64) as usize]);
        }
        p.check().unwrap();
        check_semantics(&p, 5_000, round as u64 + 7);
    }
}

#[test]
fn stacked_results_take_the_strictest() {
    let c = Profile::default_container().for_arch(A).compile().unwrap();
    let d = data(435, [0; 6]);
    assert_eq!(
        run_stack(c.programs(), &d).unwrap(),
        Action::Errno(38).to_ret()
    );
    let d = data(sys("keyctl").nr(), [0; 6]);
    assert_eq!(run_stack(c.programs(), &d).unwrap(), Action::EPERM.to_ret());
    let d = data(sys("clone").nr(), [0x1000_0000, 0, 0, 0, 0, 0]);
    assert_eq!(run_stack(c.programs(), &d).unwrap(), Action::EPERM.to_ret());
    let d = data(sys("clone").nr(), [0x11, 0, 0, 0, 0, 0]);
    assert_eq!(run_stack(c.programs(), &d).unwrap(), Action::Allow.to_ret());
    let bytes = c.to_bytes();
    assert_eq!(bytes.len(), 2);
    assert_eq!(bytes[0].len(), guard(A).len() * 8);
}

#[test]
fn golden_32bit_condition_reads_only_the_low_half() {
    let p = Profile::deny_all().for_arch(A).rule(
        sys("ioctl"),
        [Cond::arg32(1).eq(0x5401)],
        Action::Allow,
    );
    let main = p.compile_main(A).unwrap();
    let expected = vec![
        st(0x20, 4),
        jmp(0x15, AUDIT_X86_64, 1, 0),
        st(0x06, 0x8000_0000),
        st(0x20, 0),
        jmp(0x15, 16, 0, 1), // ioctl?
        st(0x05, 1),
        st(0x05, 4),  // not ioctl: past the rule
        st(0x20, 24), // args[1], low 32 bits only: no load of offset 28
        jmp(0x15, 0x5401, 0, 1),
        st(0x06, 0x7fff_0000),
        st(0x05, 1), // was `ret NEXT`
        st(0x05, 0), // was `ret NEXT`
        st(0x06, 0x0005_0001),
    ];
    assert_eq!(main, expected);
    let ioctl = sys("ioctl").nr();
    for (arg, want) in [
        (0x5401u64, 0x7fff_0000),
        (0xffff_ffff_0000_5401, 0x7fff_0000),
        (0x5402, 0x0005_0001),
    ] {
        assert_eq!(
            run(&main, &data(ioctl, [0, arg, 0, 0, 0, 0])).unwrap(),
            want,
            "{arg:#x}"
        );
    }
}
