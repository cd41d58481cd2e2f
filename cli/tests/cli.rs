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
    let o = ringfence(&["run", "--no-isolation", "--", file.to_str().unwrap()]);
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
    let host = ringfence(&["run", "--no-isolation", "--", "sh", "-c", list]);
    let o = ringfence(&[
        "run",
        "--no-isolation",
        "--net",
        "/proc/self/ns/net",
        "--",
        "sh",
        "-c",
        list,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), stdout(&host));
}

#[test]
fn report_lists_layers() {
    let o = ringfence(&["run", "--report", "--unshare-pid", "--", "true"]);
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

// ───────────────────────────── filesystem, seccomp, Landlock, cgroups ─────────────────────────────

/// Whether this process is root; the tests below that need it print why they skip otherwise.
fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Print why a test does not run here.
fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

/// Whether this user may create cgroups with the controller (the test skips otherwise).
fn cgroup_controller_writable(name: &str) -> bool {
    ringfence::cgroup::cgroup_info()
        .controller(name)
        .is_some_and(|c| c.writable && c.enabled)
}

fn str_of(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[test]
fn isolated_root_has_only_the_system_directories() {
    let o = ringfence(&["run", "--isolated", "--", "ls", "/"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let entries: Vec<&str> = out.lines().collect();
    let allowed = [
        "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr",
    ];
    for e in &entries {
        assert!(allowed.contains(e), "unexpected /{e} in {entries:?}");
    }
    for needed in ["dev", "etc", "proc", "tmp", "usr"] {
        assert!(entries.contains(&needed), "no /{needed} in {entries:?}");
    }
    // The working directory defaults to the new root.
    let o = ringfence(&["run", "--isolated", "--", "pwd"]);
    assert_eq!(stdout(&o), "/\n", "{}", stderr(&o));
}

#[test]
fn ro_bind_is_read_only_and_bind_is_writable() {
    let dir = TempDir::new();
    std::fs::write(dir.path("f"), "hello\n").unwrap();
    let src = str_of(&dir.0);

    let o = ringfence(&[
        "run",
        "--isolated",
        "--ro-bind",
        src,
        "/data",
        "--",
        "sh",
        "-c",
        "cat /data/f; echo x > /data/g",
    ]);
    assert_ne!(code(&o), 0, "the write succeeded");
    assert_eq!(stdout(&o), "hello\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path("g").exists());

    let o = ringfence(&[
        "run",
        "--isolated",
        "--bind",
        src,
        "/data",
        "--",
        "sh",
        "-c",
        "echo written > /data/g",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.path("g")).unwrap(), "written\n");

    // --ro-bind-try skips a missing source; --ro-bind refuses it.
    let missing = dir.path("missing");
    let o = ringfence(&[
        "run",
        "--isolated",
        "--ro-bind-try",
        str_of(&missing),
        "/m",
        "--",
        "true",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = ringfence(&[
        "run",
        "--isolated",
        "--ro-bind",
        str_of(&missing),
        "/m",
        "--",
        "true",
    ]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(stderr(&o).contains(str_of(&missing)), "{}", stderr(&o));
}

#[test]
fn filesystem_flags_apply_in_command_line_order() {
    // The directory and file are created in the tmpfs...
    let o = ringfence(&[
        "run",
        "--isolated",
        "--tmpfs",
        "/x",
        "--dir",
        "/x/y",
        "--write-file",
        "/x/f",
        "data",
        "--symlink",
        "/x/f",
        "/x/link",
        "--",
        "sh",
        "-c",
        "ls /x; cat /x/link",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "f\nlink\ny\ndata");
    // ... or hidden by it when it comes later.
    let o = ringfence(&[
        "run",
        "--isolated",
        "--dir",
        "/x/y",
        "--tmpfs",
        "/x",
        "--",
        "ls",
        "-A",
        "/x",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn tmpfs_size_limit_is_enforced() {
    let o = ringfence(&[
        "run",
        "--isolated",
        "--tmpfs",
        "/t:1M",
        "--",
        "sh",
        "-c",
        "head -c 2000000 /dev/zero > /t/big",
    ]);
    assert_ne!(code(&o), 0, "2 MB fit in a 1 MiB tmpfs");
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    let o = ringfence(&[
        "run",
        "--isolated",
        "--tmpfs",
        "/t:1M",
        "--",
        "sh",
        "-c",
        "head -c 500000 /dev/zero > /t/small",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn overlay_changes_land_in_the_upper_layer() {
    let dir = TempDir::new();
    for d in ["lower", "upper", "work"] {
        std::fs::create_dir(dir.path(d)).unwrap();
    }
    std::fs::write(dir.path("lower/base"), "base\n").unwrap();
    let o = ringfence(&[
        "run",
        "--overlay",
        str_of(&dir.path("lower")),
        str_of(&dir.path("upper")),
        str_of(&dir.path("work")),
        "--host-system",
        "--",
        "sh",
        "-c",
        "cat /base; echo new > /new; rm /base",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "base\n");
    assert_eq!(
        std::fs::read_to_string(dir.path("upper/new")).unwrap(),
        "new\n"
    );
    assert!(!dir.path("lower/new").exists());
    assert!(dir.path("lower/base").exists(), "the lower layer changed");
}

#[test]
fn seccomp_default_blocks_new_namespaces_and_unconfined_does_not() {
    if !Path::new("/usr/bin/unshare").exists() {
        return skip(
            "seccomp_default_blocks_new_namespaces",
            "no /usr/bin/unshare",
        );
    }
    // --isolated, so that nothing the command does reaches the host.
    for flags in [&["--seccomp", "default"][..], &[]] {
        let mut args = vec!["run", "--isolated"];
        args.extend_from_slice(flags);
        args.extend(["--", "unshare", "-U", "true"]);
        let o = ringfence(&args);
        assert_ne!(code(&o), 0, "{flags:?}: unshare -U succeeded");
        assert!(
            stderr(&o).contains("Operation not permitted"),
            "{flags:?}: {}",
            stderr(&o)
        );
    }
    let o = ringfence(&[
        "run",
        "--isolated",
        "--seccomp",
        "unconfined",
        "--",
        "unshare",
        "-U",
        "true",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn seccomp_profile_file_errors_name_the_location() {
    let dir = TempDir::new();
    let malformed = dir.path("malformed.json");
    std::fs::write(
        &malformed,
        "{\"defaultAction\": \"SCMP_ACT_ALLOW\",\n \"syscalls\": [}",
    )
    .unwrap();
    let o = ringfence(&["run", "--seccomp", str_of(&malformed), "--", "true"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(str_of(&malformed)), "{err}");
    assert!(err.contains("line 2 column"), "{err}");

    let bad_action = dir.path("action.json");
    std::fs::write(
        &bad_action,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_BOGUS"}]}"#,
    )
    .unwrap();
    let o = ringfence(&["run", "--seccomp", str_of(&bad_action), "--", "true"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("syscalls[0].action"), "{err}");
    assert_eq!(err.matches("SCMP_ACT_BOGUS").count(), 1, "{err}");

    let o = ringfence(&[
        "run",
        "--seccomp",
        str_of(&dir.path("none.json")),
        "--",
        "true",
    ]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("none.json"), "{}", stderr(&o));
}

#[test]
fn landlock_denies_reads_outside_the_allowed_paths() {
    if ringfence::landlock::abi() == 0 {
        return skip("landlock_denies_reads", "this kernel has no Landlock");
    }
    let dir = TempDir::new();
    let secret = dir.path("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let mut args = vec!["run", "--no-isolation"];
    for p in ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc"] {
        if Path::new(p).exists() {
            args.extend(["--landlock-ro", p]);
        }
    }
    let mut denied = args.clone();
    denied.extend(["--", "cat", str_of(&secret)]);
    let o = ringfence(&denied);
    assert_ne!(code(&o), 0, "read outside the Landlock rules");
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");

    let mut allowed = args;
    allowed.extend([
        "--landlock-ro",
        str_of(&dir.0),
        "--",
        "cat",
        str_of(&secret),
    ]);
    let o = ringfence(&allowed);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "s3cret\n");

    // Network or scope rules alone would deny every file: refused with a clear message.
    let o = ringfence(&["run", "--landlock-connect", "443", "--", "true"]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("--landlock-ro"), "{}", stderr(&o));
}

#[test]
fn memory_hog_is_oom_killed_and_reported() {
    if !is_root() || !cgroup_controller_writable("memory") {
        return skip(
            "memory_hog_is_oom_killed",
            "the memory cgroup is not writable here",
        );
    }
    let dir = TempDir::new();
    let json = dir.path("out.json");
    let o = ringfence(&[
        "run",
        "--memory",
        "64M",
        "--json",
        str_of(&json),
        "--",
        "sh",
        "-c",
        r#"x=$(head -c 200000000 /dev/zero | tr "\0" x)"#,
    ]);
    assert_eq!(code(&o), 137, "{}", stderr(&o));
    let v = read_json(&json);
    assert_eq!(v["oom_killed"], true, "{v}");
    assert_eq!(v["exit_code"], 137, "{v}");
    let peak = &v["usage"]["peak_memory_bytes"];
    assert!(
        peak.is_null() || peak.as_u64().is_some_and(|p| p <= 64 << 20),
        "{v}"
    );
}

#[test]
fn pids_limit_bounds_a_fork_loop() {
    if !is_root() || !cgroup_controller_writable("pids") {
        return skip(
            "pids_limit_bounds_a_fork_loop",
            "the pids cgroup is not writable here",
        );
    }
    let dir = TempDir::new();
    let json = dir.path("out.json");
    let o = ringfence(&[
        "run",
        "--pids",
        "16",
        "--json",
        str_of(&json),
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 40 ]; do sleep 1 & i=$((i+1)); done; wait",
    ]);
    assert_ne!(code(&o), 0, "40 processes started under --pids 16");
    let v = read_json(&json);
    assert_eq!(v["oom_killed"], false, "{v}");
    let peak = &v["usage"]["pids_peak"];
    assert!(
        peak.is_null() || peak.as_u64().is_some_and(|p| p <= 16),
        "{v}"
    );
    assert!(v["usage"]["cgroup_cpu_ms"].as_f64().is_some(), "{v}");
}

#[test]
fn json_without_cgroup_limits_has_null_cgroup_usage() {
    let dir = TempDir::new();
    let json = dir.path("out.json");
    let o = ringfence(&[
        "run",
        "--no-default-limits",
        "--json",
        str_of(&json),
        "--",
        "true",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = read_json(&json);
    assert_eq!(v["oom_killed"], false, "{v}");
    for key in ["cgroup_cpu_ms", "peak_memory_bytes", "pids_peak"] {
        assert!(v["usage"][key].is_null(), "{key}: {v}");
    }
}

#[test]
fn profile_export_reimports_and_shows() {
    let o = ringfence(&["profile", "export", "default"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("the export is JSON");
    assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW", "{v}");
    assert!(
        v["syscalls"].as_array().is_some_and(|s| !s.is_empty()),
        "{v}"
    );

    let dir = TempDir::new();
    let file = dir.path("default.json");
    let o = ringfence(&["profile", "export", "default", "-o", str_of(&file)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = ringfence(&["profile", "show", str_of(&file)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let shown = stdout(&o);
    assert!(shown.contains("default action  allow"), "{shown}");
    assert!(shown.contains("settimeofday"), "{shown}");
    assert!(shown.contains("errno EPERM"), "{shown}");

    let o = ringfence(&["profile", "show", "strict"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("default action  errno EPERM"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("(u32)arg1 == 0x5401"), "{}", stdout(&o));
}

#[test]
fn profile_compile_writes_one_file_per_filter() {
    let dir = TempDir::new();
    let out = dir.path("bpf");
    let o = ringfence(&["profile", "compile", "default", "-o", str_of(&out)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["00-filter.bpf"]);
    for name in names {
        let len = std::fs::metadata(out.join(&name)).unwrap().len();
        assert!(len > 0 && len % 8 == 0, "{name}: {len} bytes");
    }
    let o = ringfence(&["profile", "compile", "unconfined", "-o", str_of(&out)]);
    assert_eq!(code(&o), 125);
    assert!(stderr(&o).contains("nothing to compile"), "{}", stderr(&o));
}

/// Docker's profile in the shared data, if present.
fn docker_profile() -> Option<PathBuf> {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/seccomp/docker-default.json");
    p.exists().then_some(p)
}

#[test]
fn profile_caps_and_arch_select_what_is_compiled() {
    let Some(docker) = docker_profile() else {
        eprintln!("SKIPPED: no ../shared/data/seccomp/docker-default.json");
        return;
    };
    let dir = TempDir::new();
    let out = dir.path("bpf");
    let len = |args: &[&str]| {
        let mut all = vec!["profile", "compile", "-o", str_of(&out)];
        all.extend_from_slice(args);
        all.push(str_of(&docker));
        let o = ringfence(&all);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        std::fs::metadata(out.join("00-filter.bpf")).unwrap().len() / 8
    };
    // The default is what `run` keeps: no capability.
    let none = len(&[]);
    assert_eq!(none, len(&["--caps", "none"]));
    assert_ne!(none, len(&["--caps", "all"]));
    assert_ne!(none, len(&["--caps", "CAP_SYS_ADMIN,net_raw"]));
    assert_ne!(none, len(&["--arch", "aarch64"]));
    assert_ne!(none, len(&["--arch", "i386"]));
    let shown = |args: &[&str]| {
        let mut all = vec!["profile", "show"];
        all.extend_from_slice(args);
        all.push(str_of(&docker));
        stdout(&ringfence(&all))
    };
    assert!(!shown(&[]).contains("  mount "), "{}", shown(&[]));
    assert!(shown(&["--caps", "sys_admin"]).contains("  mount "));
    assert!(shown(&["--arch", "aarch64"]).contains("architecture    aarch64"));
    // Usage errors.
    let o = ringfence(&["profile", "show", "--caps", "CAP_NOPE", "default"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown capability"), "{}", stderr(&o));
    let o = ringfence(&["profile", "show", "--arch", "vax", "default"]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown architecture"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn refused_calls_are_reported_on_stderr_and_in_json() {
    let dir = TempDir::new();
    let json = dir.path("out.json");
    // The raw settimeofday(NULL, NULL) call changes nothing even where it is allowed.
    let nr = if cfg!(target_arch = "aarch64") {
        170
    } else {
        164
    };
    let script = format!(
        "import ctypes\nl = ctypes.CDLL(None)\nfor _ in range(2): l.syscall({nr}, None, None)\nprint('done')"
    );
    let o = ringfence(&[
        "run",
        "--json",
        str_of(&json),
        "--",
        "python3",
        "-c",
        &script,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "done\n");
    assert!(
        stderr(&o).contains("ringfence: seccomp refused settimeofday (errno EPERM), 2 times"),
        "{}",
        stderr(&o)
    );
    let v = read_json(&json);
    assert_eq!(v["violations"][0]["syscall"], "settimeofday", "{v}");
    assert_eq!(v["violations"][0]["action"], "errno EPERM", "{v}");
    assert_eq!(v["violations"][0]["count"], 2, "{v}");
    let o = ringfence(&[
        "run",
        "--no-report-refusals",
        "--json",
        str_of(&json),
        "--",
        "python3",
        "-c",
        &script,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("seccomp refused"), "{}", stderr(&o));
    assert_eq!(read_json(&json)["violations"], serde_json::json!([]));
}

#[test]
fn podmans_profile_runs_and_unknown_names_warn() {
    let podman = "/usr/share/containers/seccomp.json";
    if Path::new(podman).exists() {
        let o = ringfence(&["run", "--seccomp", podman, "--", "sh", "-c", "echo ok"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(stdout(&o), "ok\n");
    } else {
        eprintln!("SKIPPED: no {podman} (Debian: golang-github-containers-common)");
    }
    let dir = TempDir::new();
    let file = dir.path("typo.json");
    std::fs::write(
        &file,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["no_such_call", "syscall", "get_tls"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let o = ringfence(&["run", "--seccomp", str_of(&file), "--", "true"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("unknown syscall \"no_such_call\" skipped"),
        "{err}"
    );
    assert!(
        !err.contains("get_tls") && !err.contains("\"syscall\""),
        "{err}"
    );
    let o = ringfence(&[
        "run",
        "--seccomp-strict",
        "--seccomp",
        str_of(&file),
        "--",
        "true",
    ]);
    assert_eq!(code(&o), 125, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("syscalls[0].names[0]: unknown syscall \"no_such_call\""),
        "{}",
        stderr(&o)
    );
    let o = ringfence(&["profile", "show", str_of(&file)]);
    assert!(
        stdout(&o).contains("skipped         no_such_call"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn doctor_prints_a_checklist_and_json() {
    let o = ringfence(&["doctor"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "user namespaces",
        "cgroups",
        "Landlock",
        "seccomp",
        "overlay",
    ] {
        assert!(text.contains(needle), "doctor lacks {needle}:\n{text}");
    }
    assert!(text.contains('✓') || text.contains('✗'), "{text}");

    let o = ringfence(&["doctor", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in [
        "user_namespaces",
        "cgroup",
        "landlock",
        "seccomp",
        "overlay_user_ns",
    ] {
        assert!(ids.contains(&id), "no check {id}: {v}");
    }
    for c in v["checks"].as_array().unwrap() {
        assert!(
            ["ok", "partial", "missing"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
        assert!(c["status"] == "ok" || c["fix"].is_string(), "{c}");
    }
    assert!(v["user_namespaces"]["available"].is_boolean(), "{v}");
    assert!(v["landlock"]["abi"].as_u64().is_some(), "{v}");
    assert!(v["seccomp"]["actions"].is_array(), "{v}");
    assert!(v["seccomp"]["user_notification"].is_boolean(), "{v}");
    assert!(v["cgroup"]["controllers"].is_object(), "{v}");
    assert!(v["sandbox"]["ran"].is_boolean(), "{v}");
}

/// The number of online CPUs, as the kernel lists them.
fn online_cpus() -> u32 {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    list.trim()
        .split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// Bad values of the new flags: exit 125 with a message naming the problem.
#[test]
fn bad_filesystem_and_resource_flags_exit_125() {
    let too_much = format!("{}%", (online_cpus() + 1) * 100);
    let dir = TempDir::new();
    let missing = dir.path("missing");
    let (upper, work) = (dir.path("upper"), dir.path("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--tmpfs", "/x:0"], "above 0"),
        (vec!["--tmpfs", "relative"], "absolute"),
        (vec!["--cpu", "0%"], "never let the sandbox run"),
        (vec!["--cpu", &too_much], "online"),
        (vec!["--cpu", "lots"], "percentage"),
        (vec!["--memory", "1K"], "1 MiB"),
        (vec!["--memory", "12X"], "unit"),
        (
            vec!["--overlay", str_of(&missing), str_of(&upper), str_of(&work)],
            str_of(&missing),
        ),
        (vec!["--landlock-scope", "bogus"], "abstract-unix"),
        (vec!["--landlock-connect", "70000"], "port"),
        (
            vec!["--seccomp", "bogus-profile"],
            "expected default, strict, unconfined",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run"];
        args.extend_from_slice(&flags);
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
fn learn_writes_a_profile_the_command_runs_under() {
    let dir = TempDir::new();
    let profile = dir.path("learned.json");
    let p = profile.to_str().unwrap();
    let out = ringfence(&["learn", "-o", p, "--", "sh", "-c", "echo learning"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "learning\n");
    assert!(stderr(&out).contains("learned"), "{}", stderr(&out));
    let json = read_json(&profile);
    assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
    let out = ringfence(&["run", "--seccomp", p, "--", "sh", "-c", "echo again"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "again\n");
    // A call the learning run never made is refused, and reported as such.
    let json_out = dir.path("run.json");
    let out = ringfence(&[
        "run",
        "--seccomp",
        p,
        "--json",
        json_out.to_str().unwrap(),
        "--",
        "uname",
    ]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    let v = read_json(&json_out);
    assert_eq!(v["violations"][0]["syscall"], "uname", "{v}");
    assert_eq!(v["violations"][0]["action"], "errno EPERM", "{v}");
    assert!(
        stderr(&out).contains("seccomp refused uname (errno EPERM)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn repeat_runs_in_one_warm_sandbox_and_counts_outcomes() {
    // The tmpfs of the warm sandbox stays between runs: only the first finds no marker.
    let o = ringfence(&[
        "run",
        "--isolated",
        "--repeat",
        "20",
        "--",
        "sh",
        "-c",
        "test -e /tmp/marker && exit 3; touch /tmp/marker; kill -SEGV $$",
    ]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("20 runs in "), "{out}");
    assert!(out.contains("runs/s"), "{out}");
    assert!(out.contains("        19  exit 3\n"), "{out}");
    assert!(out.contains("         1  signal 11 (SIGSEGV)\n"), "{out}");

    let o = ringfence(&["run", "--repeat", "0", "--", "true"]);
    assert_eq!(code(&o), 125);
    let o = ringfence(&["run", "--repeat", "3", "--", "/nonexistent/program"]);
    assert_eq!(code(&o), 127, "{}", stderr(&o));
}
