//! OCI / Docker seccomp JSON → `Profile::from_oci_json_with` never panics; a profile it
//! accepts exports with `to_oci_json` (or is refused for a documented reason), and the export
//! imports again to a profile that decides every probed syscall the same way. Every accepted
//! profile also compiles (or is too large), and never trips the backend.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringfence::seccomp::{Arch, ImportOptions, KernelVersion, UnknownSyscalls};
use ringfence::{Action, CmpOp, Profile, ProfileError, Syscall};

/// Fixed options, so that the result depends on the input only (not on this host's
/// capabilities, kernel or architecture).
/// What `p` decides for a call once ringfence's guard is stacked below it (the guard's
/// architecture and x32 checks aside).
fn guarded(p: &Profile, nr: u32, args: &[u64; 6]) -> Action {
    let arch = p.arch().unwrap();
    let a = p.evaluate(nr, args);
    let nr_of = |n: &str| Syscall::named_for(arch, n).map(|s| s.nr()).ok();
    let guard = if Some(nr) == nr_of("clone3") {
        Action::Errno(libc::ENOSYS as u16)
    } else if Some(nr) == nr_of("ioctl")
        && [
            u64::from(ringfence::seccomp::TIOCSTI),
            u64::from(ringfence::seccomp::TIOCLINUX),
        ]
        .contains(&(args[1] & 0xffff_ffff))
    {
        Action::EPERM
    } else {
        return a;
    };
    // The kernel's rule for stacked filters: the most restrictive action, the later
    // filter's (the profile's) on a tie.
    let rank = |x: Action| (x.to_ret() & libc::SECCOMP_RET_ACTION_FULL) as i32;
    if rank(guard) < rank(a) { guard } else { a }
}

fn option_sets() -> &'static [ImportOptions; 2] {
    static SETS: std::sync::OnceLock<[ImportOptions; 2]> = std::sync::OnceLock::new();
    SETS.get_or_init(|| {
        [
            ImportOptions::running_system()
                .arch(Arch::X86_64)
                .caps(Vec::<String>::new())
                .kernel_version(KernelVersion::new(6, 1))
                .unknown_syscalls(UnknownSyscalls::Error),
            ImportOptions::running_system()
                .arch(Arch::Aarch64)
                .caps(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_BPF"])
                .kernel_version(KernelVersion::new(4, 14))
                .unknown_syscalls(UnknownSyscalls::Skip),
        ]
    })
}

/// Argument vectors that reach every condition's boundaries.
fn probes(p: &Profile, extra: &[u64]) -> Vec<(u32, [u64; 6])> {
    let mut out = Vec::new();
    for r in p.rules() {
        let nr = r.syscall().nr();
        out.push((nr, [0; 6]));
        out.push((nr, [u64::MAX; 6]));
        let mut hit = [0u64; 6];
        for c in r.conds() {
            let i = usize::from(c.index()).min(5);
            let v = c.value();
            hit[i] = v;
            let near: Vec<u64> = match c.op() {
                CmpOp::MaskedEq(m) => vec![v, v & m, v | !m, (v & m) ^ 1, m],
                _ => vec![v, v.wrapping_sub(1), v.wrapping_add(1)],
            };
            for n in near {
                let mut a = [0u64; 6];
                a[i] = n;
                out.push((nr, a));
            }
        }
        out.push((nr, hit));
        for &e in extra {
            out.push((nr, [e; 6]));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    // A few argument values taken from the input's last bytes.
    let extra: Vec<u64> = data
        .rchunks(8)
        .take(2)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect();
    for opts in option_sets() {
        let Ok(p) = Profile::from_oci_json_with(json, opts) else {
            continue;
        };
        assert_eq!(
            p.check(),
            Ok(()),
            "an imported profile passes its own check"
        );
        assert_eq!(p.arch(), Some(opts.arch));
        match p.compile() {
            Ok(c) => {
                assert_eq!(
                    c.programs().count(),
                    1,
                    "the profile with the guard merged in"
                );
                assert!(
                    c.programs()
                        .all(|p| p.len() <= ringfence::seccomp::BPF_MAXINSNS)
                );
            }
            Err(ProfileError::TooLarge { .. }) => {}
            Err(e) => panic!("an imported profile does not compile: {e:?}"),
        }
        let exported = match p.to_oci_json() {
            Ok(j) => j,
            // Documented refusals: order-sensitive rules (libseccomp would read them
            // differently) and what OCI cannot express.
            Err(ProfileError::OrderSensitive { .. } | ProfileError::Export { .. }) => continue,
            Err(e) => panic!("export failed for an undocumented reason: {e:?}"),
        };
        let q = match Profile::from_oci_json_with(&exported, opts) {
            Ok(q) => q,
            Err(e) => panic!("the export does not import again: {e}\n{exported}"),
        };
        assert_eq!(q.get_default_action(), p.get_default_action());
        let mut all = probes(&p, &extra);
        all.extend(probes(&q, &extra));
        // The export writes the guard out (clone3 -> ENOSYS, TIOCSTI/TIOCLINUX -> EPERM): compare
        // both as the guard stacked below them decides.
        for (nr, args) in all {
            assert_eq!(
                guarded(&p, nr, &args),
                guarded(&q, nr, &args),
                "syscall {nr} with {args:x?}: the re-imported export decides differently\n{exported}"
            );
        }
        // The export is a fixed point.
        assert_eq!(q.to_oci_json().as_deref(), Ok(exported.as_str()));
    }
});
