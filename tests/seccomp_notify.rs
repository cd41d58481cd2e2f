//! Seccomp user notification: calls refused by `Notify` rules are reported as violations in
//! the `Outcome`, and the learning mode records what a program does and builds a profile under
//! which it runs while a call it never made is refused.

mod common;

use ringfence::{Action, Command, Profile, Sandbox, Syscall};

fn sh(script: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.args(["-c", script]);
    c.env("PATH", "/usr/bin:/bin");
    c
}

fn violations_are_reported(sb: Sandbox) {
    let profile =
        Profile::default_container().rule(Syscall::named("uname").unwrap(), [], Action::Notify);
    let out = sb
        .seccomp(profile)
        .output(&Command::new("/bin/uname"))
        .unwrap();
    assert!(!out.success(), "uname should have been refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    let v: Vec<&str> = out.violations.iter().map(|v| v.syscall.as_str()).collect();
    assert_eq!(v, ["uname"], "{:?}", out.violations);
    assert!(out.violations[0].pid > 1);
}

#[test]
fn notify_rules_report_violations() {
    violations_are_reported(Sandbox::new());
}

#[test]
fn notify_rules_report_violations_in_a_pid_namespace() {
    if !common::is_root() && !common::userns_available() {
        return common::skip("needs root or user namespaces");
    }
    violations_are_reported(Sandbox::new().pid_ns());
}

rootless_test! {
    fn notify_rules_report_violations_rootless() {
        violations_are_reported(Sandbox::new());
    }
}

#[test]
fn a_clean_run_has_no_violations() {
    let profile =
        Profile::default_container().rule(Syscall::named("uname").unwrap(), [], Action::Notify);
    let out = Sandbox::new()
        .seccomp(profile)
        .output(&sh("echo ok"))
        .unwrap();
    assert!(out.success());
    assert!(out.violations.is_empty(), "{:?}", out.violations);
}

fn learn_round_trip(cmd: &Command, stdout: &str) {
    let sb = Sandbox::new();
    let learned = sb.learn(cmd).unwrap();
    assert!(learned.outcome.success(), "{:?}", learned.outcome);
    assert_eq!(String::from_utf8_lossy(&learned.outcome.stdout), stdout);
    let rules = learned.profile.rules().len();
    assert!(rules > 10 && rules < 200, "{rules} rules");
    assert_eq!(learned.profile.get_default_action(), Action::EPERM);
    // The program runs under what was learned...
    let strict = sb.clone().seccomp(learned.profile.clone());
    let out = strict.output(cmd).unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), stdout);
    // ...and a call it never made is refused.
    let out = strict.output(&Command::new("/bin/uname")).unwrap();
    assert!(
        !out.success(),
        "uname ran under a profile learned without it"
    );
    // The profile survives an OCI round trip.
    let json = learned.profile.to_oci_json().unwrap();
    let again = Profile::from_oci_json(&json).unwrap();
    assert_eq!(again.rules().len(), rules);
}

#[test]
fn learning_a_shell_command() {
    learn_round_trip(&sh("echo hello; echo again"), "hello\nagain\n");
}

#[test]
fn learning_python() {
    if !std::path::Path::new("/usr/bin/python3").exists() {
        return common::skip("no /usr/bin/python3");
    }
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", "import json; print(json.dumps(sum(range(10))))"]);
    learn_round_trip(&cmd, "45\n");
}
