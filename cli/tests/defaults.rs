//! `ringfence run -- CMD` without any flag: isolated, with limits that stop a fork bomb and a
//! runaway allocation, as root and as uid 65534; `--no-isolation` keeps the bare mode; one line
//! on stderr says why ringfence or the kernel ended a sandbox.
//!
//! The tests that switch to uid 65534 need root; they skip visibly otherwise.

mod common;

use std::process::Output;

use common::{As, Bin, TempDir, code, needs_root, read_json, stderr, stdout, text};

fn run_as(who: As, args: &[&str]) -> (Output, serde_json::Value) {
    let bin = Bin::for_user(who);
    let dir = TempDir::new();
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let json = dir.path("out.json");
    let mut full = vec!["run", "--json", json.to_str().unwrap()];
    full.extend_from_slice(args);
    let o = common::output(bin.command(who).args(&full));
    let v = if json.exists() && std::fs::metadata(&json).unwrap().len() > 0 {
        read_json(&json)
    } else {
        serde_json::Value::Null
    };
    (o, v)
}

fn both(test: impl Fn(As)) {
    if needs_root() {
        return;
    }
    test(As::Root);
    test(As::Nobody);
}

fn enforced(v: &serde_json::Value, layer: &str) -> bool {
    v["report"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["layer"] == layer && l["enforced"] == true)
}

#[test]
fn a_run_without_flags_is_isolated_and_limited_root() {
    both(|who| {
        let (o, v) = run_as(
            who,
            &[
                "--",
                "sh",
                "-c",
                "hostname; ls /; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
            ],
        );
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
        let out = stdout(&o);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("sandbox"), "{who:?}: {out}");
        for host_only in ["home", "root", "var", "work"] {
            assert!(
                !out.lines().any(|l| l == host_only),
                "{who:?}: the host's /{host_only} is visible: {out}"
            );
        }
        assert_eq!(out.lines().last(), Some("lo"), "{who:?}: {out}");
        assert!(enforced(&v, "namespace.pid"), "{who:?}: {v}");
        assert!(enforced(&v, "filesystem"), "{who:?}: {v}");
        let limits = &v["limits"];
        assert_eq!(limits["pids"], 1024, "{who:?}: {v}");
        assert!(limits["memory_bytes"].as_u64().is_some(), "{who:?}: {v}");
        assert_eq!(limits["defaults"], serde_json::json!(["memory", "pids"]));
        match who {
            // Root can create cgroups on this host: the limits are the cgroup's.
            As::Root => assert!(enforced(&v, "cgroup"), "{v}"),
            // An ordinary user cannot: rlimits stand in, and the report says so.
            As::Nobody => {
                let cgroup = v["report"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|l| l["layer"] == "cgroup")
                    .expect("the cgroup layer is reported");
                assert!(
                    cgroup["enforced"] == true
                        || cgroup["substitute"]
                            .as_str()
                            .is_some_and(|s| s.contains("RLIMIT_NPROC")),
                    "{v}"
                );
            }
        }
        // --report names the limits and what enforces them.
        let o = common::output(
            Bin::for_user(who)
                .command(who)
                .args(["run", "--report", "--", "true"]),
        );
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
        assert!(
            stderr(&o).contains("limits: memory")
                && stderr(&o).contains("1024 processes (default)"),
            "{who:?}: {}",
            text(&o)
        );
    });
}

#[test]
fn no_isolation_keeps_the_bare_mode() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let o = common::ringfence(&["run", "--no-isolation", "--", "hostname"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(stdout(&o), host);
    let o = common::ringfence(&["run", "--bare", "--json", "--", "true"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let v = common::stderr_json(&o);
    assert!(v["limits"]["pids"].is_null(), "{v}");
    assert!(!enforced(&v, "namespace.pid"), "{v}");
    let o = common::ringfence(&["run", "--no-isolation", "--isolated", "--", "true"]);
    assert_eq!(code(&o), 125, "{}", text(&o));
}

#[test]
fn a_fork_bomb_stops_at_the_default_limit_root() {
    // Up to 3000 processes at once (each sleeping): with the default limit the forks beyond
    // it fail. Without it (`--no-default-limits`) all 3000 start.
    let bomb = "import os, time\nn = 0\nfor i in range(3000):\n    try:\n        pid = os.fork()\n    except OSError:\n        continue\n    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    n += 1\nprint(n)";
    both(|who| {
        let (o, v) = run_as(who, &["--timeout", "60s", "--", "python3", "-c", bomb]);
        assert_eq!(code(&o), 0, "{who:?}: {}", text(&o));
        let count: u64 = stdout(&o).trim().parse().expect("a count");
        assert!(count <= 1024 + 2, "{who:?}: {count} processes ran: {v}");
        assert!(count > 100, "{who:?}: only {count} processes: {}", text(&o));
    });
}

#[test]
fn a_runaway_allocation_stops_at_the_default_limit_as_nobody() {
    // As an ordinary user (no cgroup here), RLIMIT_AS stops a single allocation above the
    // default limit at once, before any memory is touched. As root the cgroup's memory limit
    // does (an allocation of that size would have to touch gigabytes to show it; the cgroup
    // memory limit itself is shown by the --memory tests).
    if needs_root() {
        return;
    }
    let (o, v) = run_as(
        As::Nobody,
        &[
            "--",
            "python3",
            "-c",
            "import sys\ntry:\n    b = bytearray(5 << 30)\n    print('allocated')\nexcept MemoryError:\n    print('refused')",
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    if enforced(&v, "cgroup") {
        return common::skip("this user has a cgroup: the memory limit is the cgroup's");
    }
    assert_eq!(stdout(&o).trim(), "refused", "{}", text(&o));
}

#[test]
fn one_line_on_stderr_says_why_the_sandbox_was_killed() {
    let o = common::ringfence(&["run", "--timeout", "200ms", "--", "sleep", "5"]);
    assert_eq!(code(&o), 124, "{}", text(&o));
    assert!(
        stderr(&o).contains("ringfence: the sandbox ran past its timeout of 200ms"),
        "{}",
        text(&o)
    );
    // A system call of another ABI (x32) is killed by the filter's guard.
    let o = common::ringfence(&[
        "run",
        "--",
        "python3",
        "-c",
        "import ctypes; ctypes.CDLL(None).syscall(0x40000027)",
    ]);
    // Killed by SIGSYS, or by the supervisor that reports refusals (it names the call).
    assert!(
        [128 + libc::SIGSYS, 128 + libc::SIGKILL].contains(&code(&o)),
        "{}",
        text(&o)
    );
    assert!(
        stderr(&o).contains("killed by seccomp (SIGSYS)")
            || stderr(&o).contains("seccomp killed the process at getpid"),
        "{}",
        text(&o)
    );
    if !common::is_root() {
        return common::skip("the OOM line needs a memory cgroup (root here)");
    }
    let o = common::ringfence(&[
        "run",
        "--memory",
        "32M",
        "--",
        "python3",
        "-c",
        "b = bytearray(200 << 20)",
    ]);
    assert_eq!(code(&o), 137, "{}", text(&o));
    assert!(
        stderr(&o).contains("killed by the kernel's OOM killer at its memory limit of 32M"),
        "{}",
        text(&o)
    );
    // A program that ends by itself gets no such line.
    let o = common::ringfence(&["run", "--", "sh", "-c", "exit 3"]);
    assert_eq!(code(&o), 3);
    assert_eq!(stderr(&o), "");
}
