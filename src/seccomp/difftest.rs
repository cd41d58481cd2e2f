//! Differential test of the compiler against libseccomp.
//!
//! For each profile in the shared profile directory (env `RINGFENCE_SECCOMP_DATA`, else
//! `../shared/data/seccomp` next to the crate) and for the presets, the rules ringfence's
//! importer resolved are handed to `tests/data/libseccomp_bpf.py`, which builds the same
//! filter with libseccomp's Python binding and exports its BPF. Both programs then run in the
//! interpreter, each stacked with ringfence's guard as the kernel would run them, on more than
//! 100,000 inputs; the results must be identical. Both sides see the same rule list, so this
//! compares the compilers, not the importers.
//!
//! libseccomp's bad-architecture action is set to KILL_PROCESS to match the guard. ringfence
//! compares `arg32` conditions on 32 bits; libseccomp has no such comparison, so they are given
//! to it as `MASKED_EQ` with mask `0xffffffff` (only `eq`/`masked_eq` are used by the presets).
//!
//! Skipped, with a message, when no `python3` can `import seccomp` (Debian: python3-seccomp).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::compile::Insn;
use super::interp::{SeccompData, run_stack};
use super::tests::{Rng, around};
use super::*;

fn python() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import seccomp"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn data_dir() -> PathBuf {
    std::env::var_os("RINGFENCE_SECCOMP_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/seccomp"),
        PathBuf::from,
    )
}

fn spec(p: &Profile) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = p
        .rules()
        .iter()
        .map(|r| {
            let args: Vec<serde_json::Value> = r
                .conds()
                .iter()
                .map(|c| {
                    let (op, value, datum) = match (c.op(), c.is_32bit()) {
                        (CmpOp::Eq, true) => ("MASKED_EQ", 0xffff_ffff, c.value()),
                        (CmpOp::MaskedEq(m), true) => ("MASKED_EQ", m & 0xffff_ffff, c.value()),
                        (_, true) => panic!("no libseccomp equivalent for {c:?}"),
                        (CmpOp::Eq, _) => ("EQ", c.value(), 0),
                        (CmpOp::Ne, _) => ("NE", c.value(), 0),
                        (CmpOp::Lt, _) => ("LT", c.value(), 0),
                        (CmpOp::Le, _) => ("LE", c.value(), 0),
                        (CmpOp::Gt, _) => ("GT", c.value(), 0),
                        (CmpOp::Ge, _) => ("GE", c.value(), 0),
                        (CmpOp::MaskedEq(m), _) => ("MASKED_EQ", m, c.value()),
                    };
                    serde_json::json!({"index": c.index(), "op": op, "value": value, "datum": datum})
                })
                .collect();
            serde_json::json!({"nr": r.syscall().nr(), "action": r.action().to_ret(), "args": args})
        })
        .collect();
    serde_json::json!({"default": p.get_default_action().to_ret(), "rules": rules})
}

fn libseccomp_bpf(py: &str, p: &Profile, tag: &str) -> Vec<Insn> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/libseccomp_bpf.py");
    let out = std::env::temp_dir().join(format!(
        "ringfence-difftest-{}-{tag}.bpf",
        std::process::id()
    ));
    let mut child = Command::new(py)
        .arg(&script)
        .arg(&out)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec(p).to_string().as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "libseccomp script failed for {tag}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    bytes
        .chunks_exact(8)
        .map(|b| Insn {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect()
}

/// Compares the two stacks on `n` inputs; returns the number of differences (printed).
fn compare(tag: &str, p: &Profile, ours: &CompiledProfile, theirs: &[Insn], n: usize) -> usize {
    let arch = p.arch().unwrap();
    let g = guard(arch);
    let arches = [
        arch.audit_arch(),
        0x4000_0003, /* i386 */
        0xc000_00b7,
        0xc000_003e,
        0x4000_0028, /* arm */
        0,
    ];
    let mut values = vec![
        0u64,
        1,
        2,
        0xffff_ffff,
        0x1_0000_0000,
        u64::MAX,
        1 << 63,
        0x5412,
        0x541c,
    ];
    let mut nrs: Vec<u32> = Vec::new();
    for r in p.rules() {
        nrs.push(r.syscall().nr());
        for c in r.conds() {
            values.extend(around(c.value()));
            if let CmpOp::MaskedEq(m) = c.op() {
                values.extend(around(m));
                values.extend(around(m | c.value()));
                values.push(!m);
            }
        }
    }
    values.sort_unstable();
    values.dedup();
    let mut rng = Rng(0x5eed ^ n as u64);
    let mut diffs = 0;
    for i in 0..n {
        let nr: u32 = match i % 8 {
            0..=2 => (i / 8 % 600) as u32,
            3 | 4 if !nrs.is_empty() => nrs[rng.below(nrs.len() as u64) as usize],
            5 => 0x4000_0000 | rng.below(600) as u32,
            6 => rng.next() as u32,
            _ => rng.below(1024) as u32,
        };
        let a = if i % 16 == 15 {
            arches[rng.below(arches.len() as u64) as usize]
        } else {
            arch.audit_arch()
        };
        let mut args = [0u64; 6];
        for x in &mut args {
            *x = match rng.below(8) {
                0 => rng.next(),
                1 => rng.next() & 0xffff_ffff,
                _ => values[rng.below(values.len() as u64) as usize],
            };
        }
        let d = SeccompData {
            nr: nr as i32,
            arch: a,
            instruction_pointer: rng.next(),
            args,
        };
        let mine = run_stack(ours.programs(), &d).unwrap();
        let other = run_stack([&g[..], theirs].into_iter(), &d).unwrap();
        if mine != other {
            diffs += 1;
            if diffs <= 20 {
                eprintln!(
                    "{tag}: nr {nr:#x} arch {a:#x} args {args:x?}: ringfence {mine:#x}, libseccomp {other:#x}"
                );
            }
        }
    }
    diffs
}

#[test]
fn compiler_agrees_with_libseccomp() {
    let Some(py) = python() else {
        eprintln!(
            "skipping compiler_agrees_with_libseccomp: no python3 with the seccomp module (apt-get install python3-seccomp)"
        );
        return;
    };
    let arch = Arch::native().expect("supported host");
    let mut cases: Vec<(String, Profile)> = vec![
        ("default_container".into(), Profile::default_container()),
        ("strict".into(), Profile::strict()),
    ];
    match std::fs::read_dir(data_dir()) {
        Ok(dir) => {
            let mut files: Vec<PathBuf> = dir
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                let json = std::fs::read_to_string(&f).unwrap();
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                for caps in [
                    &[][..],
                    &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYSLOG"][..],
                ] {
                    let opts = ImportOptions::running_system()
                        .arch(arch)
                        .caps(caps.iter().copied())
                        .kernel_version(KernelVersion::new(6, 1));
                    match Profile::from_oci_json_with(&json, &opts) {
                        Ok(p) => cases.push((format!("{name}+{}caps", caps.len()), p)),
                        Err(e) => eprintln!("{name}: not importable ({e}), not compared"),
                    }
                }
            }
        }
        Err(e) => eprintln!(
            "no shared profiles at {} ({e}); comparing the presets only",
            data_dir().display()
        ),
    }
    let mut total = 0;
    for (tag, p) in &cases {
        let ours = p.compile().unwrap();
        let theirs = libseccomp_bpf(py, p, tag);
        let n = 120_000;
        let d = compare(tag, p, &ours, &theirs, n);
        eprintln!(
            "{tag}: {n} inputs, {d} differences ({} rules; {} vs {} instructions)",
            p.rules().len(),
            ours.programs().last().unwrap().len(),
            theirs.len()
        );
        total += d;
    }
    assert_eq!(total, 0, "ringfence and libseccomp disagree");
}

/// Random profiles with every operator and action, one action per syscall: libseccomp does not
/// keep the order of overlapping rules with different actions (see
/// [`Profile::order_sensitive`]), and refuses rules whose action is the default one.
///
/// By default each syscall gets one rule (its conditions ANDed). With
/// `RINGFENCE_DIFFTEST_MULTI=1` a syscall may get several rules with the same action: then
/// libseccomp 2.5.4 is seen to lose one of two range rules on the same argument (e.g. `write`
/// with `arg2 <= 0x100000000` and another with `arg2 < 0xffffffff`: for `arg2 = 0xffffffff` its
/// filter returns the default action although the first rule matches). ringfence's output for
/// those inputs agrees with the reference model (`Profile::evaluate`), checked in tests.rs.
#[test]
fn compiler_agrees_with_libseccomp_on_random_profiles() {
    let Some(py) = python() else {
        eprintln!("skipping: no python3 with the seccomp module (apt-get install python3-seccomp)");
        return;
    };
    let arch = Arch::native().expect("supported host");
    let names = [
        "read", "write", "socket", "ioctl", "mmap", "openat", "clone", "kill",
    ];
    let actions = [
        Action::Allow,
        Action::EPERM,
        Action::Errno(2),
        Action::KillProcess,
        Action::KillThread,
        Action::Notify,
        Action::Log,
        Action::Trap,
        Action::Trace(3),
    ];
    let multi = std::env::var_os("RINGFENCE_DIFFTEST_MULTI").is_some_and(|v| v == "1");
    let mut rng = Rng(4242);
    let mut total = 0;
    for round in 0..30 {
        let default = actions[round % actions.len()];
        let mut p = Profile::deny_all().for_arch(arch).default_action(default);
        let mut per_syscall = std::collections::BTreeMap::new();
        for _ in 0..1 + rng.below(10) {
            let name = names[rng.below(names.len() as u64) as usize];
            let s = Syscall::named_for(arch, name).unwrap();
            if !multi && per_syscall.contains_key(name) {
                continue;
            }
            let action = *per_syscall.entry(name).or_insert_with(|| {
                loop {
                    let a = actions[rng.below(actions.len() as u64) as usize];
                    if a != default {
                        break a;
                    }
                }
            });
            let mut conds = Vec::new();
            let mut used = [false; 6];
            for _ in 0..1 + rng.below(3) {
                let idx = rng.below(6) as u8;
                if std::mem::replace(&mut used[usize::from(idx)], true) {
                    continue;
                }
                let v =
                    [0, 1, 0xffff_ffff, 1 << 32, rng.next(), rng.below(100)][rng.below(6) as usize];
                let arg = Cond::arg(idx);
                conds.push(match rng.below(7) {
                    0 => arg.eq(v),
                    1 => arg.ne(v),
                    2 => arg.lt(v),
                    3 => arg.le(v),
                    4 => arg.gt(v),
                    5 => arg.ge(v),
                    _ => arg.masked_eq(v | 0xff00_0000_00ff, v & 0xf0),
                });
            }
            p = p.rule(s, conds, action);
        }
        assert_eq!(p.order_sensitive(), None);
        let tag = format!("random{round}");
        let ours = p.compile().unwrap();
        let theirs = libseccomp_bpf(py, &p, &tag);
        let d = compare(&tag, &p, &ours, &theirs, 20_000);
        if d > 0 {
            eprintln!("{tag}: {d} differences; rules: {:#?}", p.rules());
        }
        total += d;
    }
    assert_eq!(total, 0, "ringfence and libseccomp disagree");
}
