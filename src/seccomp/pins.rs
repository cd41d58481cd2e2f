//! Every refusal the default profile documents, checked on the compiled program (the guard
//! and the profile merged, as installed) in the BPF interpreter, for each architecture: the
//! documented errno for the refused calls and argument values, and `Allow` for their ordinary
//! neighbours (so that a refusal of everything would not pass either).
//!
//! The kernel side of the same refusals (the calls made with the capability that would
//! otherwise refuse them kept) is in the escape tests (`tests/escape/filter_pins.rs`).

use super::interp::{SeccompData, run_stack};
use super::*;

const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

/// Argument patterns a refused call is tried with: a refusal by number alone must not depend
/// on them.
const ARGS: [[u64; 6]; 4] = [
    [0; 6],
    [u64::MAX; 6],
    [1, 2, 3, 4, 5, 6],
    [
        0x8000_0000,
        0xffff_ffff,
        0x1_0000_0000,
        0x7e02_0000,
        0x40,
        0xdead_beef_dead_beef,
    ],
];

fn result(c: &CompiledProfile, arch: Arch, name: &str, args: [u64; 6]) -> u32 {
    let nr = Syscall::named_for(arch, name)
        .unwrap_or_else(|_| panic!("{name} on {arch:?}"))
        .nr();
    let d = SeccompData {
        nr: nr as i32,
        arch: arch.audit_arch(),
        instruction_pointer: 0x7f00_0000_1000,
        args,
    };
    run_stack(c.programs(), &d).unwrap()
}

fn compiled(arch: Arch) -> CompiledProfile {
    Profile::default_container()
        .for_arch(arch)
        .compile()
        .unwrap()
}

#[test]
fn every_denied_syscall_is_refused_with_eperm() {
    let eperm = Action::EPERM.to_ret();
    for arch in ARCHES {
        let c = compiled(arch);
        let mut checked = 0;
        for name in DEFAULT_CONTAINER_DENIED {
            if Syscall::named_for(arch, name).is_err() {
                // Not a syscall of this architecture (stime, vm86, create_module... on the
                // 64-bit ABIs): the guard kills the other ABIs that have it.
                continue;
            }
            for args in ARGS {
                assert_eq!(
                    result(&c, arch, name, args),
                    eperm,
                    "{name} on {arch:?} with {args:x?}"
                );
            }
            checked += 1;
        }
        // Most of the list exists on both architectures; a table change that loses the
        // names would make this test vacuous.
        assert!(
            checked >= 45,
            "{arch:?}: only {checked} of the list checked"
        );
    }
}

#[test]
fn ordinary_calls_are_allowed() {
    let allow = Action::Allow.to_ret();
    for arch in ARCHES {
        let c = compiled(arch);
        for name in [
            "read",
            "write",
            "openat",
            "close",
            "getpid",
            "execve",
            "exit_group",
            "clock_gettime",
            "gettimeofday",
            "mmap",
        ] {
            for args in ARGS {
                assert_eq!(result(&c, arch, name, args), allow, "{name} on {arch:?}");
            }
        }
    }
}

#[test]
fn namespace_flags_of_clone_and_unshare_are_refused_bit_by_bit() {
    let (eperm, allow) = (Action::EPERM.to_ret(), Action::Allow.to_ret());
    // fork(), pthread_create() and vfork() flags, with SIGCHLD in the low byte.
    let ordinary = [
        0x11u64,
        0x003d_0f00,
        0x0000_4111,
        // The upper half of the register is not looked at by the kernel.
        0xffff_ffff_0000_0011,
    ];
    for arch in ARCHES {
        let c = compiled(arch);
        for bit in (0..32).map(|b| 1u64 << b) {
            for base in [0u64, 0x11, 0x003d_0f00] {
                let flags = base | bit;
                let want = |mask: u64| if flags & mask != 0 { eperm } else { allow };
                assert_eq!(
                    result(&c, arch, "clone", [flags, 0, 0, 0, 0, 0]),
                    want(CLONE_NS_FLAGS),
                    "clone({flags:#x}) on {arch:?}"
                );
                assert_eq!(
                    result(&c, arch, "unshare", [flags, 0, 0, 0, 0, 0]),
                    want(CLONE_NS_FLAGS | CLONE_NEWTIME),
                    "unshare({flags:#x}) on {arch:?}"
                );
            }
        }
        for flags in ordinary {
            assert_eq!(result(&c, arch, "clone", [flags, 0, 0, 0, 0, 0]), allow);
        }
        // The documented mask is exactly the namespace flags of <linux/sched.h>.
        let ns = [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
        ]
        .iter()
        .fold(0u64, |m, f| m | *f as u64);
        assert_eq!(ns, CLONE_NS_FLAGS);
        assert_eq!(CLONE_NEWTIME, 0x80);
        // clone3 passes its flags in memory: the guard answers ENOSYS so that libc falls
        // back to clone, whose flags the filter sees.
        for args in ARGS {
            assert_eq!(
                result(&c, arch, "clone3", args),
                Action::Errno(libc::ENOSYS as u16).to_ret(),
                "clone3 on {arch:?}"
            );
        }
    }
}

#[test]
fn personality_allows_only_the_documented_bits() {
    let (eperm, allow) = (Action::EPERM.to_ret(), Action::Allow.to_ret());
    for arch in ARCHES {
        let c = compiled(arch);
        for v in [0u64, 8, 0x2_0000, 0x2_0008] {
            assert_eq!(result(&c, arch, "personality", [v, 0, 0, 0, 0, 0]), allow);
        }
        for bit in (0..32).map(|b| 1u64 << b) {
            let want = if bit & PERSONALITY_FLAGS_ALLOWED != 0 {
                allow
            } else {
                eperm
            };
            assert_eq!(
                result(&c, arch, "personality", [bit, 0, 0, 0, 0, 0]),
                want,
                "personality({bit:#x}) on {arch:?}"
            );
        }
        // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC and the query are refused.
        for v in [0x0004_0000u64, 0x0040_0000, 0xffff_ffff] {
            assert_eq!(result(&c, arch, "personality", [v, 0, 0, 0, 0, 0]), eperm);
        }
    }
}

#[test]
fn denied_socket_families_are_refused_and_others_allowed() {
    let (eperm, allow) = (Action::EPERM.to_ret(), Action::Allow.to_ret());
    for arch in ARCHES {
        let c = compiled(arch);
        for family in 0..64u64 {
            let want = if SOCKET_FAMILIES_DENIED.contains(&family) {
                eperm
            } else {
                allow
            };
            for high in [0u64, 0xffff_ffff_0000_0000] {
                // `domain` is an int: the upper half of the register does not count.
                assert_eq!(
                    result(&c, arch, "socket", [high | family, 1, 0, 0, 0, 0]),
                    want,
                    "socket({family}) on {arch:?}"
                );
            }
        }
        assert_eq!(SOCKET_FAMILIES_DENIED, &[38, 40, 41]);
        assert_eq!(
            [libc::AF_ALG, libc::AF_VSOCK, 41],
            [38, 40, 41],
            "AF_ALG, AF_VSOCK, AF_KCM"
        );
    }
}

#[test]
fn the_guard_refusals_hold_in_the_default_profile() {
    let eperm = Action::EPERM.to_ret();
    for arch in ARCHES {
        let c = compiled(arch);
        for req in [TIOCSTI, TIOCLINUX] {
            for high in [0u64, 0xffff_ffff_0000_0000] {
                assert_eq!(
                    result(&c, arch, "ioctl", [0, high | u64::from(req), 0, 0, 0, 0]),
                    eperm,
                    "ioctl({req:#x}) on {arch:?}"
                );
            }
        }
        // USERFAULTFD_IOC_NEW (_IO(0xAA, 0)) on /dev/userfaultfd, on its low 32 bits.
        for high in [0u64, 0xffff_ffff_0000_0000] {
            assert_eq!(
                result(&c, arch, "ioctl", [3, high | 0xAA00, 0, 0, 0, 0]),
                eperm,
                "USERFAULTFD_IOC_NEW on {arch:?}"
            );
        }
        for req in [0x5401u64, 0xAA01, 0xAB00] {
            assert_eq!(
                result(&c, arch, "ioctl", [0, req, 0, 0, 0, 0]),
                Action::Allow.to_ret(),
                "ioctl({req:#x})"
            );
        }
    }
}

#[test]
fn every_denied_syscall_is_in_the_documented_table() {
    // The table in presets.rs's documentation of DEFAULT_CONTAINER_DENIED says why each call
    // is refused; a name added to the list without a reason (or a reason for a name that is
    // not in the list) fails here.
    let src = include_str!("presets.rs");
    let table: Vec<&str> = src
        .lines()
        .take_while(|l| !l.starts_with("pub const DEFAULT_CONTAINER_DENIED"))
        .filter(|l| l.starts_with("/// | `"))
        .map(|l| l.split('|').nth(1).unwrap())
        .collect();
    let documented: Vec<&str> = table
        .iter()
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|w| {
            w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    for name in DEFAULT_CONTAINER_DENIED {
        assert!(documented.contains(name), "{name} has no documented reason");
    }
    for name in &documented {
        assert!(
            DEFAULT_CONTAINER_DENIED.contains(name)
                || ["clone", "unshare", "clone3", "personality", "socket"].contains(name),
            "{name} is documented as refused but not in the list"
        );
    }
}

/// `install` takes programs up to the kernel's limit, `BPF_MAXINSNS` (4096) instructions,
/// and refuses longer and empty ones with EINVAL, as the kernel would. Installed in a forked
/// child (a filter cannot be removed), which only makes raw system calls.
#[test]
fn install_takes_programs_up_to_the_kernel_limit() {
    use super::compile::{BPF_JA, BPF_JMP, BPF_K, BPF_RET};
    let nop = Insn {
        code: BPF_JMP | BPF_JA,
        jt: 0,
        jf: 0,
        k: 0,
    };
    let allow = Insn {
        code: BPF_RET | BPF_K,
        jt: 0,
        jf: 0,
        k: Action::Allow.to_ret(),
    };
    let program = |len: usize| {
        let mut p = vec![nop; len.saturating_sub(1)];
        if len > 0 {
            p.push(allow);
        }
        p
    };
    for (len, want) in [
        (1, 0),
        (BPF_MAXINSNS, 0),
        (BPF_MAXINSNS + 1, libc::EINVAL),
        (0, libc::EINVAL),
    ] {
        let prog = program(len);
        // SAFETY: the child makes raw prctl/seccomp calls on `prog`, built before the fork,
        // and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(100);
                }
                let code = match super::install::install(&prog, false) {
                    Ok(None) => 0,
                    Ok(Some(_)) => 101,
                    Err(e) => e as i32,
                };
                libc::_exit(code);
            }
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "{len}: {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            want,
            "a program of {len} instructions"
        );
    }
}
