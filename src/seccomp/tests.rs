//! Compiler tests: golden programs for small cases, and the compiled programs run in the
//! interpreter against the profile's reference semantics ([`Profile::evaluate`]).

use super::compile::*;
use super::interp::{SeccompData, run, run_stack};
use super::*;
#[cfg(feature = "serde")]
use super::{ImportOptions, KernelVersion};

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
            st(0x20, 0),
            st(0x06, 0x0005_0001)
        ]
    );
}

#[test]
fn golden_two_actions_and_notify() {
    // read (0) -> allow; getpid (39) -> notify; default kill. Three ranges of numbers besides
    // the default: a binary search on the number, each leaf a return.
    let p = Profile::deny_all()
        .for_arch(A)
        .default_action(Action::KillProcess)
        .rule(sys("read"), [], Action::Allow)
        .rule(sys("getpid"), [], Action::Notify);
    let main = p.compile_main(A).unwrap();
    let expected = vec![
        st(0x20, 4),
        jmp(0x15, AUDIT_X86_64, 1, 0),
        st(0x06, 0x8000_0000),
        st(0x20, 0),
        jmp(0x35, 39, 3, 0), // nr >= 39: upper half
        jmp(0x35, 1, 1, 0),  // nr >= 1
        st(0x06, 0x7fff_0000),
        st(0x06, 0x8000_0000),
        jmp(0x35, 40, 1, 0), // nr >= 40
        st(0x06, 0x7fc0_0000),
        st(0x06, 0x8000_0000),
    ];
    assert_eq!(main, expected);
    for (nr, want) in [(0, 0x7fff_0000), (39, 0x7fc0_0000), (1, 0x8000_0000)] {
        assert_eq!(run(&main, &data(nr, [0; 6])).unwrap(), want, "nr {nr}");
    }
}

#[test]
fn golden_merged_guard() {
    // The guard merged into a profile without rules: wrong architecture and x32 killed,
    // ioctl TIOCSTI/TIOCLINUX EPERM, clone3 ENOSYS, everything else the default (allow).
    let c = Profile::allow_all().for_arch(A).compile().unwrap();
    let progs: Vec<&[Insn]> = c.programs().collect();
    let expected = vec![
        st(0x20, 4),
        jmp(0x15, AUDIT_X86_64, 0, 2),
        st(0x20, 0),
        jmp(0x35, 0x4000_0000, 0, 1), // x32
        st(0x06, 0x8000_0000),
        // Five ranges: [0, 16) allow, 16 ioctl, [17, 435) allow, 435 clone3, [436, ...) allow.
        jmp(0x35, 17, 7, 0), // nr >= 17: upper half
        jmp(0x35, 16, 1, 0), // nr >= 16
        st(0x06, 0x7fff_0000),
        st(0x20, 24), // ioctl: args[1], low half
        jmp(0x15, 0x5412, 2, 0),
        jmp(0x15, 0x541c, 1, 0),
        st(0x06, 0x7fff_0000),
        st(0x06, 0x0005_0001),
        jmp(0x35, 435, 1, 0), // nr >= 435
        st(0x06, 0x7fff_0000),
        jmp(0x35, 436, 1, 0), // nr >= 436
        st(0x06, 0x0005_0026),
        st(0x06, 0x7fff_0000),
    ];
    assert_eq!(progs, [&expected[..]]);
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
        jmp(0x35, 16, 1, 0), // nr >= 16
        st(0x06, 0x0005_0001),
        jmp(0x35, 17, 4, 0), // nr >= 17
        st(0x20, 24),        // args[1], low 32 bits only: no load of offset 28
        jmp(0x15, 0x5401, 0, 1),
        st(0x06, 0x7fff_0000),
        st(0x06, 0x0005_0001),
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
    assert_eq!(
        bytes.len(),
        1,
        "the guard is merged into the profile's program"
    );
    assert_eq!(bytes[0].len(), c.programs().next().unwrap().len() * 8);
}

/// Runs the merged program and the guard stacked with the profile's own program, as the
/// kernel would run two filters, on many inputs (other architectures, x32 numbers, `clone3`,
/// `ioctl` with the guard's requests, the rules' values).
fn check_merged(p: &Profile, rounds: usize, seed: u64) {
    let compiled = p.compile().unwrap();
    let progs: Vec<&[Insn]> = compiled.programs().collect();
    assert_eq!(progs.len(), 1, "one program to install");
    let merged = progs[0];
    let main = p.compile_main(A).unwrap();
    let g = guard(A);
    let mut values: Vec<u64> = vec![
        0,
        1,
        0xffff_ffff,
        1 << 32,
        u64::MAX,
        u64::from(TIOCSTI),
        u64::from(TIOCLINUX),
        0xffff_ffff_0000_0000 | u64::from(TIOCSTI),
        (1 << 32) | u64::from(TIOCLINUX),
    ];
    let mut nrs: Vec<u32> = vec![435, 16, 0, u32::MAX, X32_SYSCALL_BIT, X32_SYSCALL_BIT | 16];
    for r in p.rules() {
        nrs.push(r.syscall().nr());
        nrs.push(r.syscall().nr() | X32_SYSCALL_BIT);
        for c in r.conds() {
            values.extend(around(c.value()));
        }
    }
    let mut rng = Rng(seed);
    for i in 0..rounds {
        let nr = match i % 3 {
            0 => nrs[rng.below(nrs.len() as u64) as usize],
            1 => rng.below(600) as u32,
            _ => rng.next() as u32,
        };
        let arch = [
            AUDIT_X86_64,
            AUDIT_X86_64,
            AUDIT_X86_64,
            AUDIT_I386,
            AUDIT_AARCH64,
            0,
        ][rng.below(6) as usize];
        let mut args = [0u64; 6];
        for a in &mut args {
            *a = if rng.below(4) == 0 {
                rng.next()
            } else {
                values[rng.below(values.len() as u64) as usize]
            };
        }
        let d = SeccompData {
            arch,
            ..data(nr, args)
        };
        let want = run_stack([&g[..], &main[..]].into_iter(), &d).unwrap();
        assert_eq!(
            run(merged, &d).unwrap(),
            want,
            "nr {nr:#x} arch {arch:#x} args {args:x?}"
        );
    }
}

#[test]
fn merged_guard_matches_two_filters_presets() {
    check_merged(&Profile::default_container().for_arch(A), 60_000, 11);
    check_merged(&Profile::strict().for_arch(A), 60_000, 12);
    check_merged(&Profile::allow_all().for_arch(A), 10_000, 13);
}

#[test]
fn merged_guard_matches_two_filters_on_guarded_calls() {
    // Rules on the calls the guard decides, with actions more and less restrictive than the
    // guard's, conditional and not.
    let (clone3, ioctl) = (sys("clone3"), sys("ioctl"));
    let actions = [
        Action::Allow,
        Action::EPERM,
        Action::Errno(2),
        Action::KillProcess,
        Action::KillThread,
        Action::Trap,
        Action::Notify,
        Action::Log,
        Action::Trace(1),
    ];
    let mut rng = Rng(5);
    for round in 0..60 {
        let mut p = Profile::allow_all()
            .for_arch(A)
            .default_action(actions[round % actions.len()]);
        for _ in 0..rng.below(6) {
            let s = [clone3, ioctl, sys("read")][rng.below(3) as usize];
            let a = actions[rng.below(actions.len() as u64) as usize];
            let conds = match rng.below(4) {
                0 => vec![],
                1 => vec![Cond::arg32(1).eq(u64::from(TIOCSTI))],
                2 => vec![Cond::arg(1).masked_eq(0xff00, 0x5400)],
                _ => vec![Cond::arg(0).gt(rng.below(3))],
            };
            p = p.rule(s, conds, a);
        }
        p.check().unwrap();
        check_merged(&p, 4_000, round as u64 + 100);
    }
}

#[test]
fn far_jumps_go_through_trampolines() {
    // Enough conditional rules that the search tree's jumps exceed 255 instructions.
    let mut p = Profile::allow_all().for_arch(A);
    for (i, name) in ["read", "write", "openat", "mmap", "socket", "connect"]
        .iter()
        .enumerate()
    {
        for v in 0..60u64 {
            p = p.rule(
                sys(name),
                [Cond::arg(i as u8).eq(v * 3 + 1)],
                Action::Errno(v as u16 + 1),
            );
        }
    }
    let main = p.compile_main(A).unwrap();
    assert!(main.len() > 600, "{}", main.len());
    assert!(
        main.iter().any(|i| i.code == 0x05 && i.k > 0),
        "a trampoline"
    );
    check_semantics(&p, 30_000, 21);
    check_merged(&p, 30_000, 22);
}

/// The kernel's `seccomp_is_const_allow` (kernel/seccomp.c): the program run with only the
/// number and architecture known; true when it reaches `ret ALLOW` without reading anything
/// else, which puts the number in the per-syscall action cache.
fn const_allow(prog: &[Insn], nr: u32, arch: u32) -> bool {
    let mut a = 0u32;
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        match i.code {
            0x20 => match i.k {
                0 => a = nr,
                4 => a = arch,
                _ => return false,
            },
            0x06 => return i.k == libc::SECCOMP_RET_ALLOW,
            0x05 => pc += i.k as usize,
            0x15 | 0x35 | 0x25 | 0x45 => {
                let taken = match i.code {
                    0x15 => a == i.k,
                    0x35 => a >= i.k,
                    0x25 => a > i.k,
                    _ => a & i.k != 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            0x54 => a &= i.k,
            _ => return false,
        }
        pc += 1;
    }
    false
}

#[test]
fn merged_program_keeps_the_action_cache() {
    // Every number the two filters let the kernel cache, the merged program does too, and no
    // other: constant results stay decidable from the number alone.
    for p in [
        Profile::default_container().for_arch(A),
        Profile::strict().for_arch(A),
        Profile::allow_all().for_arch(A),
    ] {
        let merged = p.compile().unwrap();
        let merged = merged.programs().next().unwrap();
        let (main, g) = (p.compile_main(A).unwrap(), guard(A));
        let mut cached = 0;
        for nr in 0..600 {
            let two = const_allow(&g, nr, AUDIT_X86_64) && const_allow(&main, nr, AUDIT_X86_64);
            assert_eq!(const_allow(merged, nr, AUDIT_X86_64), two, "nr {nr}");
            cached += usize::from(two);
        }
        if p.get_default_action() == Action::Allow {
            assert!(cached > 250, "{cached}");
        }
    }
    let merged = Profile::default_container().for_arch(A).compile().unwrap();
    let merged = merged.programs().next().unwrap();
    for nr in [0, 1, 39, 60] {
        assert!(
            const_allow(merged, nr, AUDIT_X86_64),
            "nr {nr} (read, write, getpid, exit)"
        );
    }
    for name in ["ioctl", "clone", "socket", "keyctl", "clone3"] {
        assert!(!const_allow(merged, sys(name).nr(), AUDIT_X86_64), "{name}");
    }
}

#[test]
fn default_profile_is_short() {
    // The cost of installing a filter grows with its length; the layout keeps the default
    // profile (guard included) well below seccompiler's 961 + 14 instructions.
    let c = Profile::default_container().for_arch(A).compile().unwrap();
    let len = c.programs().next().unwrap().len();
    assert!(len < 250, "{len} instructions");
}

#[test]
fn reporting_notifies_exactly_the_refusals() {
    // The program a reporting sandbox installs answers like the plain one, but every errno and
    // kill-process result (not clone3's ENOSYS) is a user notification; what the kernel can
    // cache as always allowed stays the same, so allowed calls cost nothing more.
    let kill_default = Profile::deny_all()
        .for_arch(A)
        .default_action(Action::KillProcess)
        .allow(["read", "write", "exit_group"])
        .rule(sys("socket"), [Cond::arg(0).eq(1)], Action::Errno(13))
        .rule(sys("socket"), [Cond::arg(0).eq(2)], Action::Allow);
    let notify = super::profile::RET_USER_NOTIF;
    let enosys = Action::Errno(libc::ENOSYS as u16).to_ret();
    for (k, p) in [
        Profile::default_container().for_arch(A),
        Profile::strict().for_arch(A),
        kill_default,
    ]
    .into_iter()
    .enumerate()
    {
        let plain = p.compile().unwrap();
        let plain = plain.programs().next().unwrap();
        let rep = p.compile_reporting().unwrap();
        assert!(rep.uses_notify());
        let rep = rep.programs().next().unwrap();
        assert_eq!(plain.len(), rep.len());
        for nr in 0..600 {
            assert_eq!(
                const_allow(plain, nr, AUDIT_X86_64),
                const_allow(rep, nr, AUDIT_X86_64),
                "nr {nr}"
            );
        }
        let mut rng = Rng(7 + k as u64);
        let values = [0, 1, 2, 38, 0x5412, 0x1000_0000, 0xffff_ffff, u64::MAX];
        for i in 0..40_000 {
            let nr = match i % 3 {
                0 => rng.below(600) as u32,
                1 => [435, 16, 41, 56, 135][rng.below(5) as usize],
                _ => rng.next() as u32,
            };
            let arch = [AUDIT_X86_64, AUDIT_X86_64, AUDIT_I386][rng.below(3) as usize];
            let mut args = [0u64; 6];
            for a in &mut args {
                *a = values[rng.below(values.len() as u64) as usize];
            }
            let d = SeccompData {
                arch,
                ..data(nr, args)
            };
            let (want, got) = (run(plain, &d).unwrap(), run(rep, &d).unwrap());
            let clone3_enosys = nr == 435 && arch == AUDIT_X86_64 && want == enosys;
            if refusal_reported(want) && !clone3_enosys {
                assert_eq!(got, notify, "nr {nr} arch {arch:#x} args {args:x?}");
            } else {
                assert_eq!(got, want, "nr {nr} arch {arch:#x} args {args:x?}");
            }
        }
    }
}

/// Runs two programs on many inputs around `p`'s rules and the guard's cases; panics on the
/// first difference.
#[cfg(feature = "serde")]
fn same_results(p: &Profile, a: &[Insn], b: &[Insn], seed: u64, tag: &str) {
    let mut values: Vec<u64> = vec![
        0,
        1,
        0xffff_ffff,
        1 << 32,
        u64::MAX,
        u64::from(TIOCSTI),
        u64::from(TIOCLINUX),
        0xffff_ffff_0000_0000 | u64::from(TIOCSTI),
        (1 << 32) | u64::from(TIOCLINUX),
        u64::from(TIOCSTI) ^ 1,
    ];
    let mut nrs: Vec<u32> = vec![435, 16, 0, X32_SYSCALL_BIT | 16];
    for r in p.rules() {
        nrs.push(r.syscall().nr());
        for c in r.conds() {
            values.extend(around(c.value()));
            if let CmpOp::MaskedEq(m) = c.op() {
                values.extend(around(m));
            }
        }
    }
    let mut rng = Rng(seed);
    for i in 0..30_000 {
        let nr = match i % 3 {
            0 | 1 => nrs[rng.below(nrs.len() as u64) as usize],
            _ => rng.below(600) as u32,
        };
        let mut args = [0u64; 6];
        for a in &mut args {
            *a = if rng.below(5) == 0 {
                rng.next()
            } else {
                values[rng.below(values.len() as u64) as usize]
            };
        }
        let arch = [AUDIT_X86_64, AUDIT_X86_64, AUDIT_I386][rng.below(3) as usize];
        let d = SeccompData {
            arch,
            ..data(nr, args)
        };
        assert_eq!(
            run(a, &d).unwrap(),
            run(b, &d).unwrap(),
            "{tag}: nr {nr} arch {arch:#x} args {args:x?}"
        );
    }
}

#[cfg(feature = "serde")]
#[test]
fn export_carries_the_guard_and_round_trips() {
    let opts = || {
        ImportOptions::running_system()
            .arch(A)
            .kernel_version(KernelVersion::new(6, 1))
    };
    let mut profiles = vec![
        ("default", Profile::default_container().for_arch(A)),
        ("strict", Profile::strict().for_arch(A)),
        ("deny_only", Profile::deny_only(&["keyctl"]).for_arch(A)),
        (
            "allow ioctl",
            Profile::deny_all()
                .for_arch(A)
                .default_action(Action::Errno(38))
                .allow(["ioctl", "clone3", "read"]),
        ),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/seccomp");
    for (name, path) in [
        ("docker", dir.join("docker-default.json")),
        (
            "docker old format",
            dir.join("docker-default-old-format.json"),
        ),
        (
            "conditional include",
            dir.join("docker-conditional_include.json"),
        ),
        (
            "podman",
            std::path::PathBuf::from("/usr/share/containers/seccomp.json"),
        ),
    ] {
        match std::fs::read_to_string(&path) {
            Ok(json) => {
                let p = Profile::from_oci_json_with(&json, &opts()).unwrap();
                profiles.push((name, p.clone().with_caps_mask(0)));
                profiles.push((name, p.with_caps_mask(!0)));
            }
            Err(e) => eprintln!("SKIPPED {name}: {}: {e}", path.display()),
        }
    }
    for (k, (name, p)) in profiles.iter().enumerate() {
        let json = p.to_oci_json().unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = Profile::from_oci_json_with(&json, &opts()).unwrap();
        let (a, b) = (p.compile().unwrap(), back.compile().unwrap());
        same_results(
            p,
            a.programs().next().unwrap(),
            b.programs().next().unwrap(),
            k as u64 + 1,
            name,
        );
        // The exported profile states the guard itself: compiled *without* ringfence's
        // guard, it still answers as the guarded original on the profile's architecture.
        let bare = back.compile_main(A).unwrap();
        let mut rng = Rng(99 + k as u64);
        let args_for = |req: u64| [3, req, 0, 0, 0, 0];
        for req in [
            u64::from(TIOCSTI),
            u64::from(TIOCLINUX),
            (7 << 32) | u64::from(TIOCSTI),
            0x5401,
            rng.next(),
        ] {
            let d = data(16, args_for(req));
            assert_eq!(
                run(&bare, &d).unwrap(),
                run(a.programs().next().unwrap(), &d).unwrap(),
                "{name}: ioctl {req:#x}"
            );
        }
        let d = data(435, [0; 6]);
        assert_eq!(
            run(&bare, &d).unwrap(),
            run(a.programs().next().unwrap(), &d).unwrap(),
            "{name}: clone3"
        );
        // And it exports again.
        back.to_oci_json()
            .unwrap_or_else(|e| panic!("{name} again: {e}"));
    }
}
