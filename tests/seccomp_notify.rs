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

fn python(code: &str) -> Command {
    let mut c = Command::new("/usr/bin/python3");
    c.args(["-c", code]);
    c
}

/// The raw `settimeofday(NULL, NULL)` system call (glibc's wrapper dereferences its
/// argument), three times: it changes nothing even where it is allowed, so it is safe to try.
fn settimeofday() -> Command {
    let nr = Syscall::named("settimeofday").unwrap().nr();
    python(&format!(
        "import ctypes, os\n\
l = ctypes.CDLL(None, use_errno=True)\n\
for _ in range(3):\n    r = l.syscall({nr}, None, None)\n\
print(r, os.strerror(ctypes.get_errno()))"
    ))
}

#[test]
fn reported_refusals_keep_their_errno_and_are_counted() {
    let out = Sandbox::new()
        .report_refusals(true)
        .output(&settimeofday())
        .unwrap();
    assert!(
        out.success(),
        "{:?} {} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "-1 Operation not permitted\n"
    );
    let v: Vec<(&str, Action, u64)> = out
        .violations
        .iter()
        .map(|v| (v.syscall.as_str(), v.action, v.count))
        .collect();
    assert_eq!(
        v,
        [("settimeofday", Action::EPERM, 3)],
        "{:?}",
        out.violations
    );
    // Not reported unless asked, and the refusal is the same.
    let out = Sandbox::new().output(&settimeofday()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "-1 Operation not permitted\n"
    );
    assert!(out.violations.is_empty(), "{:?}", out.violations);
}

#[test]
fn a_reported_kill_names_its_syscall() {
    // clone3 gets ENOSYS from the guard (unreported); an x32 getpid kills the process.
    let code = "import ctypes, os\n\
l = ctypes.CDLL(None, use_errno=True)\n\
print(l.syscall(435, None, 0), ctypes.get_errno(), flush=True)\n\
l.syscall(0x40000000 | 39)\n\
print('survived')";
    let out = Sandbox::new()
        .report_refusals(true)
        .output(&python(code))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "-1 38\n");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{:?}", out.status);
    let v: Vec<(&str, Action)> = out
        .violations
        .iter()
        .map(|v| (v.syscall.as_str(), v.action))
        .collect();
    // clone3's ENOSYS is not reported: libc falls back to clone on it at every thread or
    // process creation.
    assert_eq!(
        v,
        [("getpid (x32)", Action::KillProcess)],
        "{:?}",
        out.violations
    );
    // Without reporting, the kernel kills with SIGSYS and nothing is named.
    let out = Sandbox::new().output(&python(code)).unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{:?}", out.status);
    assert!(out.violations.is_empty());
}

#[test]
fn reporting_with_notify_rules_and_under_a_pid_namespace() {
    let profile =
        Profile::default_container().rule(Syscall::named("uname").unwrap(), [], Action::Notify);
    let mut sb = Sandbox::new().seccomp(profile).report_refusals(true);
    if common::is_root() || common::userns_available() {
        sb = sb.pid_ns();
    }
    let out = sb
        .output(&sh(
            "uname; python3 -c 'import ctypes; ctypes.CDLL(None).setns(0, 0)'; echo done",
        ))
        .unwrap();
    assert!(out.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    let mut v: Vec<(&str, Action)> = out
        .violations
        .iter()
        .map(|v| (v.syscall.as_str(), v.action))
        .collect();
    v.sort();
    assert_eq!(
        v,
        [("setns", Action::EPERM), ("uname", Action::Notify)],
        "{:?}",
        out.violations
    );
}
