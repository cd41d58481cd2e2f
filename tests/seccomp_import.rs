//! OCI / Docker JSON import and export of seccomp profiles.

#![cfg(feature = "serde")]

use std::path::PathBuf;

use ringfence::seccomp::{ImportOptions, KernelVersion, UnknownSyscalls};
use ringfence::{Action, Arch, Cond, Profile, Syscall};

fn data_dir() -> PathBuf {
    std::env::var_os("RINGFENCE_SECCOMP_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/seccomp"))
}

fn read(name: &str) -> Option<String> {
    let p = data_dir().join(name);
    match std::fs::read_to_string(&p) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!(
                "skipping: cannot read {}: {e} (set RINGFENCE_SECCOMP_DATA)",
                p.display()
            );
            None
        }
    }
}

fn opts(caps: &[&str]) -> ImportOptions {
    ImportOptions::running_system()
        .arch(Arch::X86_64)
        .caps(caps.iter().copied())
        .kernel_version(KernelVersion::new(6, 1))
}

fn sys(n: &str) -> Syscall {
    Syscall::named_for(Arch::X86_64, n).unwrap()
}

const NONE: [u64; 6] = [0; 6];

#[test]
fn imports_every_profile() {
    let Ok(dir) = std::fs::read_dir(data_dir()) else {
        eprintln!("skipping: no profile directory at {}", data_dir().display());
        return;
    };
    let mut n = 0;
    for e in dir {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let json = std::fs::read_to_string(&p).unwrap();
        n += 1;
        if p.file_name().is_some_and(|f| f == "docker-example.json") {
            // errnoRet 12345: refused, as libseccomp refuses it (checked in bad_inputs_...).
            assert!(Profile::from_oci_json_with(&json, &opts(&[])).is_err());
            continue;
        }
        for caps in [&[][..], &["CAP_SYS_ADMIN", "CAP_SYSLOG"][..]] {
            let prof = Profile::from_oci_json_with(&json, &opts(caps))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            prof.compile()
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            // Export and import again, and exporting again changes nothing. (That the filter
            // gives the same results is checked in the interpreter by the unit test
            // `seccomp::tests::export_carries_the_guard_and_round_trips`: the export writes
            // the guard out, so the programs differ in shape.)
            let out = prof.to_oci_json().unwrap();
            let again = Profile::from_oci_json_with(&out, &opts(caps)).unwrap();
            again.compile().unwrap();
            assert_eq!(again.to_oci_json().unwrap(), out, "{}", p.display());
            assert_eq!(again.get_default_action(), prof.get_default_action());
        }
    }
    assert!(n >= 4, "expected the four profiles, found {n}");
}

#[test]
fn docker_default_semantics() {
    let Some(json) = read("docker-default.json") else {
        return;
    };
    let p = Profile::from_oci_json_with(&json, &opts(&[])).unwrap();
    assert_eq!(p.get_default_action(), Action::EPERM);
    assert_eq!(p.evaluate(sys("read").nr(), &NONE), Action::Allow);
    assert_eq!(p.evaluate(sys("keyctl").nr(), &NONE), Action::EPERM);
    // clone: allowed without namespace flags (no CAP_SYS_ADMIN)
    assert_eq!(
        p.evaluate(sys("clone").nr(), &[0x11, 0, 0, 0, 0, 0]),
        Action::Allow
    );
    assert_eq!(
        p.evaluate(sys("clone").nr(), &[0x1000_0000, 0, 0, 0, 0, 0]),
        Action::EPERM
    );
    // clone3 -> ENOSYS without CAP_SYS_ADMIN
    assert_eq!(p.evaluate(sys("clone3").nr(), &NONE), Action::Errno(38));
    // socket: AF_ALG (38) and AF_VSOCK (40) refused
    assert_eq!(
        p.evaluate(sys("socket").nr(), &[38, 0, 0, 0, 0, 0]),
        Action::EPERM
    );
    assert_eq!(
        p.evaluate(sys("socket").nr(), &[2, 0, 0, 0, 0, 0]),
        Action::Allow
    );
    // ptrace: minKernel 4.8 satisfied
    assert_eq!(p.evaluate(sys("ptrace").nr(), &NONE), Action::Allow);
    let old =
        Profile::from_oci_json_with(&json, &opts(&[]).kernel_version(KernelVersion::new(4, 4)))
            .unwrap();
    assert_eq!(old.evaluate(sys("ptrace").nr(), &NONE), Action::EPERM);
    // with CAP_SYS_ADMIN: mount allowed, clone3 allowed
    let admin = Profile::from_oci_json_with(&json, &opts(&["CAP_SYS_ADMIN"])).unwrap();
    assert_eq!(admin.evaluate(sys("mount").nr(), &NONE), Action::Allow);
    assert_eq!(admin.evaluate(sys("clone3").nr(), &NONE), Action::Allow);
    // arch-specific entries: arch_prctl on amd64 only
    assert_eq!(p.evaluate(sys("arch_prctl").nr(), &NONE), Action::Allow);
    let arm = Profile::from_oci_json_with(&json, &opts(&[]).arch(Arch::Aarch64)).unwrap();
    assert!(
        arm.rules()
            .iter()
            .all(|r| r.syscall().name() != "arch_prctl")
    );
}

#[test]
fn conditional_include() {
    let Some(json) = read("docker-conditional_include.json") else {
        return;
    };
    let p = Profile::from_oci_json_with(&json, &opts(&[])).unwrap();
    assert_eq!(p.evaluate(sys("syslog").nr(), &NONE), Action::EPERM);
    assert_eq!(p.evaluate(sys("ptrace").nr(), &NONE), Action::Allow);
    let p = Profile::from_oci_json_with(&json, &opts(&["CAP_SYSLOG", "CAP_SYS_ADMIN"])).unwrap();
    assert_eq!(p.evaluate(sys("syslog").nr(), &NONE), Action::Allow);
    assert_eq!(p.evaluate(sys("ptrace").nr(), &NONE), Action::EPERM);
}

fn err(json: &str) -> String {
    Profile::from_oci_json_with(json, &opts(&[]))
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_inputs_have_exact_messages() {
    assert_eq!(
        err("{"),
        "malformed JSON at line 1 column 1: EOF while parsing an object"
    );
    assert_eq!(
        err(r#"{"defaultAction": 3}"#),
        "malformed JSON at line 1 column 19: invalid type: integer `3`, expected a string"
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#),
        r#"defaultAction: unknown action "SCMP_ACT_NOPE""#
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4095}"#),
        "defaultErrnoRet: errno 4095 is out of range (OCI profiles take 0 to 4094, as libseccomp does)"
    );
    // 4094 is the largest errno libseccomp 2.5 (and so runc) accepts.
    Profile::from_oci_json_with(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4094}"#,
        &opts(&[]),
    )
    .unwrap();
    let base = |s: &str| {
        format!(
            r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{{"names": ["read"], "action": "SCMP_ACT_ALLOW"}}, {s}]}}"#
        )
    };
    assert_eq!(
        Profile::from_oci_json_with(
            &base(r#"{"names": ["read", "no_such_call"], "action": "SCMP_ACT_ALLOW"}"#),
            &opts(&[]).unknown_syscalls(UnknownSyscalls::Error)
        )
        .unwrap_err()
        .to_string(),
        r#"syscalls[1].names[1]: unknown syscall "no_such_call" on x86_64"#
    );
    let many = format!(
        r#"{{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{}]}}"#,
        (0..25)
            .map(|i| format!(
                r#"{{"index": {}, "value": {i}, "op": "SCMP_CMP_NE"}}"#,
                i % 6
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The same index twice splits the rule: 25 conditions on six arguments are 25 rules.
    Profile::from_oci_json_with(&base(&many), &opts(&[])).unwrap();
    let many = format!(
        r#"{{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{}]}}"#,
        (0..6)
            .map(|i| format!(r#"{{"index": {i}, "value": {i}, "op": "SCMP_CMP_NE"}}"#))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Profile::from_oci_json_with(&base(&many), &opts(&[])).unwrap();
    assert_eq!(
        err(&base(r#"{"names": ["read"], "action": "SCMP_ACT_FOO"}"#)),
        r#"syscalls[1].action: unknown action "SCMP_ACT_FOO""#
    );
    assert_eq!(
        err(&base(
            r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}"#
        )),
        r#"syscalls[1].args[0].op: unknown operator "SCMP_CMP_FOO""#
    );
    assert_eq!(
        err(&base(
            r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}"#
        )),
        "syscalls[1].args[1].index: argument index 6 is out of range (0 to 5)"
    );
    assert_eq!(
        err(&base(
            r#"{"names": ["syslog"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000}"#
        )),
        "syscalls[1].errnoRet: errno 5000 is out of range (OCI profiles take 0 to 4094, as libseccomp does)"
    );
    assert_eq!(
        err(&base(r#"{"action": "SCMP_ACT_ALLOW"}"#)),
        "syscalls[1]: no syscall name given"
    );
    assert_eq!(
        err(&base(
            r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "six"}}"#
        )),
        r#"syscalls[1].includes.minKernel: invalid kernel version "six""#
    );
    assert_eq!(
        err(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": []}"#
        ),
        r#"archMap: "architectures" and "archMap" cannot both be given"#
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}"#),
        r#"architectures[0]: unknown architecture "SCMP_ARCH_VAX""#
    );
    // The real example profile has errnoRet 12345.
    if let Some(json) = read("docker-example.json") {
        assert_eq!(
            err(&json),
            "syscalls[3].errnoRet: errno 12345 is out of range (OCI profiles take 0 to 4094, as libseccomp does)"
        );
    }
}

#[test]
fn unknown_names_can_be_skipped_and_other_arch_names_are_absent() {
    let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "typo_call", "chown32", "s390_runtime_instr", "send", "typo_call"], "action": "SCMP_ACT_ALLOW"}]}"#;
    let strict = opts(&[]).unknown_syscalls(UnknownSyscalls::Error);
    assert!(Profile::from_oci_json_with(json, &strict).is_err());
    // Skipping (with a warning) is the default, as in runc and crun.
    let p = Profile::from_oci_json_with(json, &opts(&[])).unwrap();
    assert_eq!(p.rules().len(), 1);
    assert_eq!(p.skipped_syscalls(), ["typo_call"]);
    // Names libseccomp resolves on other architectures only (Podman's profile lists them).
    let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "syscall", "get_tls"], "action": "SCMP_ACT_ALLOW"}]}"#;
    let p = Profile::from_oci_json_with(json, &strict).unwrap();
    assert_eq!(p.rules().len(), 1);
    assert!(p.skipped_syscalls().is_empty());
    let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "chown32", "s390_runtime_instr", "send"], "action": "SCMP_ACT_ALLOW"}]}"#;
    assert_eq!(
        Profile::from_oci_json_with(json, &opts(&[]))
            .unwrap()
            .rules()
            .len(),
        1
    );
}

#[test]
fn oci_rules_semantics() {
    // Rule with the default action is skipped; same index twice splits into ORed rules;
    // MASKED_EQ takes mask in value and datum in valueTwo; first added wins; ERRNO without
    // errnoRet is EPERM.
    let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
        {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 255, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["read"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["write"], "action": "SCMP_ACT_TRACE"}
    ]}"#;
    let p = Profile::from_oci_json_with(json, &opts(&[])).unwrap();
    assert!(p.rules().iter().all(|r| r.syscall().name() != "getpid"));
    let socket = sys("socket").nr();
    assert_eq!(p.evaluate(socket, &[1, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(p.evaluate(socket, &[2, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(p.evaluate(socket, &[3, 0, 0, 0, 0, 0]), Action::EPERM);
    assert_eq!(
        p.evaluate(sys("ioctl").nr(), &[0, 0x101, 0, 0, 0, 0]),
        Action::Allow
    );
    assert_eq!(
        p.evaluate(sys("ioctl").nr(), &[0, 0x102, 0, 0, 0, 0]),
        Action::EPERM
    );
    assert_eq!(p.evaluate(sys("read").nr(), &NONE), Action::Allow);
    assert_eq!(p.evaluate(sys("write").nr(), &NONE), Action::Trace(1));
}

#[test]
fn export_shape() {
    let p = Profile::deny_all()
        .for_arch(Arch::X86_64)
        .allow(["read", "write"])
        .rule(sys("ioctl"), [Cond::arg32(1).eq(0x5401)], Action::Allow)
        .rule(sys("socket"), [Cond::arg(0).lt(3)], Action::Notify);
    let json = p.to_oci_json().unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(v["defaultErrnoRet"], 1);
    assert_eq!(v["architectures"][0], "SCMP_ARCH_X86_64");
    assert_eq!(
        v["syscalls"][0]["names"],
        serde_json::json!(["read", "write"])
    );
    assert_eq!(v["syscalls"][1]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(v["syscalls"][1]["args"][0]["value"], 0xffff_ffffu64);
    assert_eq!(v["syscalls"][2]["action"], "SCMP_ACT_NOTIFY");
    assert!(Profile::unconfined().to_oci_json().is_err());
    let lt32 = Profile::deny_all().for_arch(Arch::X86_64).rule(
        sys("read"),
        [Cond::arg32(0).lt(3)],
        Action::Allow,
    );
    assert!(lt32.to_oci_json().is_err());
}

#[test]
fn order_sensitive_profiles_are_not_exported() {
    let p = Profile::allow_all()
        .for_arch(Arch::X86_64)
        .rule(sys("clone"), [Cond::arg(0).eq(0)], Action::Allow)
        .rule(sys("clone"), [], Action::EPERM);
    assert_eq!(p.order_sensitive(), Some("clone"));
    assert_eq!(
        p.to_oci_json().unwrap_err().to_string(),
        "the rules for \"clone\" give it different actions depending on their order, which libseccomp-based runtimes do not keep"
    );
    // Rules after an unconditional one are dead and dropped, not a conflict.
    let p = Profile::allow_all()
        .for_arch(Arch::X86_64)
        .rule(sys("clone"), [], Action::EPERM)
        .rule(sys("clone"), [Cond::arg(0).eq(0)], Action::Allow);
    assert_eq!(p.order_sensitive(), None);
    let v: serde_json::Value = serde_json::from_str(&p.to_oci_json().unwrap()).unwrap();
    let clone: Vec<_> = v["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["names"].as_array().unwrap().iter().any(|n| n == "clone"))
        .collect();
    assert_eq!(clone.len(), 1, "{v}");
    for preset in [Profile::default_container(), Profile::strict()] {
        assert_eq!(preset.order_sensitive(), None);
        let back = Profile::from_oci_json_with(&preset.to_oci_json().unwrap(), &opts(&[]));
        back.unwrap().compile().unwrap();
    }
}

#[test]
fn a_masked_value_outside_its_mask_is_refused() {
    use ringfence::{Action, Cond, Profile, ProfileError, Syscall};
    let p = Profile::allow_all()
        .default_action(Action::KillThread)
        .rule(
            Syscall::named("getpid").unwrap(),
            [Cond::arg(0).masked_eq(0xff, 0x100)],
            Action::Allow,
        );
    let e = p.compile().expect_err("an ambiguous condition");
    assert!(
        matches!(
            e,
            ProfileError::MaskedValue {
                index: 0,
                mask: 0xff,
                value: 0x100
            }
        ),
        "{e}"
    );
    // Within the mask it is fine.
    let ok = Profile::allow_all().rule(
        Syscall::named("getpid").unwrap(),
        [Cond::arg(0).masked_eq(0xff, 0x10)],
        Action::EPERM,
    );
    assert!(ok.compile().is_ok());
}

#[test]
fn capability_rules_follow_the_capabilities_kept() {
    let Some(json) = read("docker-default.json") else {
        return;
    };
    // Without explicit capabilities the importer leaves `includes.caps` / `excludes.caps` to
    // whoever keeps capabilities: the result does not depend on who imports.
    let deferred = ImportOptions::running_system()
        .arch(Arch::X86_64)
        .kernel_version(KernelVersion::new(6, 1));
    let p = Profile::from_oci_json_with(&json, &deferred).unwrap();
    assert!(p.depends_on_capabilities());
    for caps in [
        &[][..],
        &["CAP_SYS_ADMIN"],
        &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"],
    ] {
        let kept = caps
            .iter()
            .map(|c| c.parse::<ringfence::Capability>().unwrap());
        let resolved = p.clone().for_capabilities(kept);
        assert!(!resolved.depends_on_capabilities());
        let direct = Profile::from_oci_json_with(&json, &opts(caps)).unwrap();
        assert_eq!(resolved.rules(), direct.rules(), "{caps:?}");
        assert_eq!(resolved.compile().unwrap(), direct.compile().unwrap());
    }
    // Compiled as it is, it is the profile for no capability (a sandbox's default).
    assert_eq!(
        p.compile().unwrap(),
        Profile::from_oci_json_with(&json, &opts(&[]))
            .unwrap()
            .compile()
            .unwrap()
    );
    assert_eq!(p.evaluate(sys("mount").nr(), &NONE), Action::EPERM);
    assert_eq!(
        p.evaluate(sys("unshare").nr(), &[0x1000_0000, 0, 0, 0, 0, 0]),
        Action::EPERM
    );
}

/// `unshare -U true` in a sandbox; `None` when it could not be run at all.
fn unshare_user_ns(sb: ringfence::Sandbox) -> Option<bool> {
    let mut cmd = ringfence::Command::new("/usr/bin/unshare");
    cmd.args(["-U", "true"]);
    let out = sb.output(&cmd).ok()?;
    Some(out.success())
}

/// Docker's profile allows unshare/mount/setns only with CAP_SYS_ADMIN. Run by root, the
/// sandbox still keeps no capability, so they must stay refused inside.
#[test]
fn root_docker_profile_refuses_a_user_namespace_inside() {
    let Some(json) = read("docker-default.json") else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root (the bug was judging includes.caps by the caller's)");
        return;
    }
    if !std::path::Path::new("/usr/bin/unshare").exists() {
        eprintln!("SKIPPED: no /usr/bin/unshare (util-linux)");
        return;
    }
    use ringfence::{Capability, Sandbox};
    let sb = || Sandbox::new().seccomp(Profile::from_oci_json(&json).unwrap());
    // Control: without the profile a user namespace can be made here.
    if unshare_user_ns(Sandbox::new().seccomp(Profile::unconfined())) != Some(true) {
        eprintln!("SKIPPED: user namespaces cannot be created on this host");
        return;
    }
    assert_eq!(
        unshare_user_ns(sb()),
        Some(false),
        "unshare(CLONE_NEWUSER) allowed"
    );
    // Keeping CAP_SYS_ADMIN brings Docker's CAP_SYS_ADMIN rules in, as under runc.
    assert_eq!(
        unshare_user_ns(sb().capabilities([Capability::CAP_SYS_ADMIN])),
        Some(true)
    );
}

/// A profile whose own `ioctl` rule answers TIOCSTI with another errno than the guard's EPERM:
/// written out, the guard's rule and the profile's would overlap, and libseccomp's order would
/// pick between them. The export is refused, as for any order-sensitive profile, instead of
/// writing JSON that means one thing here and maybe another under runc. (Found by the
/// `oci_profile` fuzz target: the export did not import again to an exportable profile.)
#[test]
fn an_export_whose_guard_rules_would_overlap_the_profiles_is_refused() {
    let json = r#"{
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{
            "names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0,
            "args": [{"index": 1, "value": 21522, "op": "SCMP_CMP_EQ"}]
        }]
    }"#;
    let p = Profile::from_oci_json_with(json, &opts(&[])).unwrap();
    match p.to_oci_json() {
        Err(ringfence::ProfileError::OrderSensitive { syscall }) => assert_eq!(syscall, "ioctl"),
        other => panic!("{other:?}"),
    }
}
