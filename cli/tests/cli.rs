//! End-to-end tests of the `ringfence` binary. They create namespaces, so they run as root
//! (as CI does).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ringfence");

/// Run `ringfence ARGS` to completion.
fn ringfence(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ringfence")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("ringfence exits, it is not killed")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ringfence-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the JSON file exists");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid JSON {text:?}: {e}"))
}

#[test]
fn unshare_all_gives_hostname_pid_2_behind_init_and_root() {
    let o = ringfence(&[
        "run",
        "--unshare-all",
        "--hostname",
        "box",
        "--",
        "sh",
        "-c",
        "hostname; echo $$; echo $PPID; id -u",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "box\n2\n1\n0\n");
}

#[test]
fn exit_codes_propagate() {
    let o = ringfence(&["run", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code(&o), 7);
    let o = ringfence(&["run", "--unshare-pid", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code(&o), 7);
}

#[test]
fn killed_by_a_signal_is_128_plus_the_signal() {
    let o = ringfence(&["run", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(code(&o), 143, "{}", stderr(&o));
    let o = ringfence(&["run", "--unshare-pid", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(code(&o), 143, "{}", stderr(&o));
}

#[test]
fn missing_program_is_127_with_its_name() {
    let o = ringfence(&["run", "--", "ringfence-no-such-program"]);
    assert_eq!(code(&o), 127);
    let err = stderr(&o);
    assert!(err.starts_with("ringfence: "), "{err}");
    assert!(err.contains("ringfence-no-such-program"), "{err}");
    assert!(err.contains("\nhint: "), "{err}");

    let o = ringfence(&["run", "--", "/nonexistent/ringfence-prog"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
    assert!(stderr(&o).contains("exec"), "{}", stderr(&o));
}

#[test]
fn non_executable_file_is_126() {
    let dir = TempDir::new();
    let file = dir.path("not-executable");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    let o = ringfence(&["run", "--", file.to_str().unwrap()]);
    assert_eq!(code(&o), 126, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("EACCES"), "{err}");
    // The hint is on its own line, not repeated in the message.
    assert_eq!(err.matches("not executable").count(), 1, "{err}");
}

#[test]
fn timeout_is_124_and_reported_in_json() {
    let dir = TempDir::new();
    let json = dir.path("out.json");
    let o = ringfence(&[
        "run",
        "--timeout",
        "200ms",
        "--json",
        json.to_str().unwrap(),
        "--",
        "sleep",
        "5",
    ]);
    assert_eq!(code(&o), 124, "{}", stderr(&o));
    let v = read_json(&json);
    assert_eq!(v["timed_out"], true, "{v}");
    assert_eq!(v["exit_code"], 124, "{v}");
}

#[test]
fn json_file_has_every_field() {
    let dir = TempDir::new();
    let json = dir.path("out.json");
    let o = ringfence(&[
        "run",
        "--unshare-pid",
        "--json",
        json.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let v = read_json(&json);
    assert_eq!(v["status"]["code"], 3, "{v}");
    assert!(v["status"]["signal"].is_null(), "{v}");
    assert_eq!(v["exit_code"], 3, "{v}");
    assert_eq!(v["timed_out"], false, "{v}");
    for key in ["wall_ms", "user_cpu_ms", "sys_cpu_ms"] {
        assert!(v["usage"][key].as_f64().is_some(), "{key}: {v}");
    }
    assert!(v["usage"]["max_rss_bytes"].as_u64().is_some(), "{v}");
    let report = v["report"].as_array().expect("report is a list");
    assert!(
        report
            .iter()
            .any(|l| l["layer"] == "namespace.pid" && l["enforced"] == true),
        "{v}"
    );
    assert!(report.iter().all(|l| l["enforced"].is_boolean()), "{v}");
}

#[test]
fn json_goes_to_stderr_without_a_file() {
    let o = ringfence(&["run", "--json", "--", "true"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    let line = err.lines().last().expect("a JSON line");
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(v["exit_code"], 0);
}

#[test]
fn setup_error_in_json() {
    let dir = TempDir::new();
    let json = dir.path("err.json");
    let o = ringfence(&[
        "run",
        "--json",
        json.to_str().unwrap(),
        "--",
        "/nonexistent/ringfence-prog",
    ]);
    assert_eq!(code(&o), 127);
    let v = read_json(&json);
    let e = &v["error"];
    assert_eq!(e["stage"], "exec", "{v}");
    assert_eq!(e["errno"], 2, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["hint"].is_string(), "{v}");
}

/// Flags ringfence refuses: exit 125 with a message naming the problem.
#[test]
fn bad_flags_exit_125_with_a_clear_message() {
    let long_name = "a".repeat(65);
    let cases: [(&[&str], &str); 8] = [
        (&["--timeout", "0"], "longer than 0"),
        (&["--timeout", "soon"], "unit"),
        (&["--rlimit", "nofile=abc"], "\"abc\""),
        (&["--rlimit", "bogus=1"], "unknown resource"),
        (&["--net", "/nonexistent"], "/nonexistent"),
        (&["--hostname", &long_name], "64 bytes"),
        (&["--cap-add", "cap_bogus"], "unknown capability"),
        (&["--umask", "999"], "octal"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend(["--", "true"]);
        let o = ringfence(&args);
        assert_eq!(code(&o), 125, "{flags:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(expected),
            "{flags:?}: {:?} lacks {expected:?}",
            stderr(&o)
        );
    }
}

#[test]
fn command_without_double_dash_is_a_usage_error() {
    let o = ringfence(&["run", "true"]);
    assert_eq!(code(&o), 125);
    assert!(
        stderr(&o).contains("put `--` before the command"),
        "{}",
        stderr(&o)
    );
    let o = ringfence(&["run", "--unshare-pid"]);
    assert_eq!(code(&o), 125);
}

#[test]
fn environment_is_empty_but_path() {
    let o = Command::new(BIN)
        .args(["run", "--", "env"])
        .env("RINGFENCE_TEST_SECRET", "s3cret")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("PATH="), "{out}");
}

#[test]
fn environment_flags() {
    let o = Command::new(BIN)
        .args([
            "run",
            "--setenv",
            "A",
            "B",
            "--env",
            "C=D=E",
            "--env-inherit",
            "RINGFENCE_TEST_X",
            "--unsetenv",
            "PATH",
            "--",
            "/usr/bin/env",
        ])
        .env("RINGFENCE_TEST_X", "x")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines, ["A=B", "C=D=E", "RINGFENCE_TEST_X=x"]);

    let o = Command::new(BIN)
        .args(["run", "--inherit-env", "--", "env"])
        .env("RINGFENCE_TEST_X", "x")
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("RINGFENCE_TEST_X=x\n"),
        "{}",
        stdout(&o)
    );

    let o = ringfence(&["run", "--env", "NOEQUALS", "--", "true"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("KEY=VALUE"), "{}", stderr(&o));
}

#[test]
fn limits_and_identity_apply() {
    let o = ringfence(&[
        "run",
        "--rlimit",
        "nofile=64",
        "--umask",
        "077",
        "--uid",
        "1234",
        "--gid",
        "4321",
        "--chdir",
        "/",
        "--",
        "sh",
        "-c",
        "ulimit -n; umask; id -u; id -g; pwd",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "64\n0077\n1234\n4321\n/\n");
}

#[test]
fn cap_add_keeps_one_capability() {
    let o = ringfence(&[
        "run",
        "--cap-add",
        "net_bind_service",
        "--",
        "sh",
        "-c",
        "grep CapEff /proc/self/status",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // CAP_NET_BIND_SERVICE is bit 10.
    assert_eq!(stdout(&o).trim(), "CapEff:\t0000000000000400");
}

#[test]
fn net_none_has_only_loopback() {
    // /proc/net follows the process's network namespace (/sys/class/net follows the mount).
    let list = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
    let o = ringfence(&["run", "--net", "none", "--", "sh", "-c", list]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "lo\n");
    // Joining the namespace of a process: here ringfence's own, which is the host's.
    let host = ringfence(&["run", "--", "sh", "-c", list]);
    let o = ringfence(&["run", "--net", "/proc/self/ns/net", "--", "sh", "-c", list]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), stdout(&host));
}

#[test]
fn report_lists_layers() {
    let o = ringfence(&[
        "run",
        "--report",
        "--require",
        "--unshare-pid",
        "--",
        "true",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("enforced      pid namespace"), "{err}");
}

/// Start `ringfence ARGS` with the payload printing `ready` once its trap is set, send SIGTERM
/// to ringfence, and return its exit status.
fn sigterm_to_ringfence(extra: &[&str]) -> i32 {
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend([
        "--timeout",
        "60s",
        "--",
        "sh",
        "-c",
        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let mut child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap().code().expect("ringfence exits")
}

#[test]
fn signals_are_forwarded() {
    assert_eq!(sigterm_to_ringfence(&[]), 42);
    assert_eq!(sigterm_to_ringfence(&["--unshare-pid"]), 42);
}

#[test]
fn probe_prints_text_and_json() {
    let o = ringfence(&["probe"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("namespaces"), "{}", stdout(&o));
    let o = ringfence(&["probe", "--json"]);
    assert_eq!(code(&o), 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["kernel"].is_string(), "{v}");
    assert!(v["user_ns"]["available"].is_boolean(), "{v}");
    assert!(
        v["namespaces"]
            .as_array()
            .is_some_and(|n| n.contains(&Value::from("pid"))),
        "{v}"
    );
    assert!(v["cap_last_cap"].as_u64().is_some(), "{v}");
}

#[test]
fn version_and_help() {
    let o = ringfence(&["--version"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).starts_with("ringfence "), "{}", stdout(&o));
    let o = ringfence(&["run", "--help"]);
    assert_eq!(code(&o), 0);
    let help = stdout(&o);
    for needle in [
        "--unshare-all",
        "PATH",
        "TIOCSTI",
        "124",
        "125",
        "126",
        "127",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}
