//! `wait`, `logs`, `inspect` and `rm` of detached sandboxes; relative host paths; shell
//! completions and the man page. The sandboxes need root (as CI runs).

mod common;

use std::process::{Command, Output, Stdio};

use common::{BIN, TempDir, code, needs_root, stdout, text};

fn rf(state: &TempDir, args: &[&str]) -> Output {
    common::output(
        Command::new(BIN)
            .args(args)
            .env("RINGFENCE_STATE_DIR", state.path("state"))
            .stdin(Stdio::null()),
    )
}

#[test]
fn a_detached_sandbox_can_be_waited_for_and_its_output_read_root() {
    if needs_root() {
        return;
    }
    let st = TempDir::new();
    let o = rf(&st, &["run", "--name", "a", "--detach", "--", "echo", "hi"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = rf(&st, &["wait", "a"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = rf(&st, &["logs", "a"]);
    assert_eq!((code(&o), stdout(&o).as_str()), (0, "hi\n"), "{}", text(&o));

    let o = rf(
        &st,
        &[
            "run",
            "--name",
            "b",
            "--detach",
            "--",
            "sh",
            "-c",
            "echo out; sleep 0.3; echo err >&2; exit 3",
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = rf(&st, &["logs", "--follow", "b"]);
    assert_eq!(stdout(&o), "out\nerr\n", "{}", text(&o));
    let o = rf(&st, &["wait", "b"]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    let o = rf(&st, &["inspect", "b"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["exit_code"].as_i64()),
        (Some("exited"), Some(3)),
        "{v}"
    );
    // An ended sandbox is not running: ps does not list it, kill and exec say it ended.
    assert!(!stdout(&rf(&st, &["ps"])).contains("\nb "));
    let o = rf(&st, &["exec", "b", "--", "true"]);
    assert_eq!(code(&o), 125, "{}", text(&o));
    // The name can be used again; rm forgets an ended sandbox.
    let o = rf(&st, &["run", "--name", "b", "--detach", "--", "true"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(code(&rf(&st, &["wait", "b"])), 0);
    for name in ["a", "b"] {
        let o = rf(&st, &["rm", name]);
        assert_eq!(code(&o), 0, "{}", text(&o));
    }
    let left: Vec<_> = std::fs::read_dir(st.path("state/sandboxes"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let o = rf(&st, &["wait", "nosuch"]);
    assert_eq!(code(&o), 125, "{}", text(&o));
}

#[test]
fn host_paths_may_be_relative_root() {
    if needs_root() {
        return;
    }
    let dir = TempDir::new();
    std::fs::create_dir(dir.path("x")).unwrap();
    std::fs::write(dir.path("x/f"), "hello\n").unwrap();
    let o = common::output(
        Command::new(BIN)
            .args(["run", "--ro-bind", "./x", "/x", "--", "cat", "/x/f"])
            .current_dir(&dir.0)
            .stdin(Stdio::null()),
    );
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "hello\n"),
        "{}",
        text(&o)
    );
    let o = common::output(
        Command::new(BIN)
            .args([
                "run",
                "--no-isolation",
                "--landlock-ro",
                "/usr",
                "--landlock-ro",
                "/lib",
                "--landlock-ro",
                "/lib64",
                "--landlock-ro",
                "/bin",
                "--landlock-rw",
                "x",
                "--",
                "cat",
                "x/f",
            ])
            .current_dir(&dir.0)
            .stdin(Stdio::null()),
    );
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "hello\n"),
        "{}",
        text(&o)
    );
}

#[test]
fn completions_and_the_man_page() {
    for (shell, says) in [
        ("bash", "_ringfence()"),
        ("zsh", "#compdef ringfence"),
        ("fish", "complete -c ringfence"),
    ] {
        let o = common::ringfence(&["completions", shell]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert!(stdout(&o).contains(says), "{shell}: {}", text(&o));
    }
    let o = common::ringfence(&["man"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(stdout(&o).contains(".TH ringfence"), "{}", text(&o));
}

#[test]
fn negative_and_malformed_numbers_name_the_flag() {
    for (flag, value, says) in [
        ("--timeout", "-1", "must not be negative"),
        ("--memory", "-1M", "must not be negative"),
        ("--pids", "-5", "must not be negative"),
        ("--pids", "lots", "expected a whole number"),
        ("--uid", "-1", "must not be negative"),
        ("--cpu-weight", "0", "from 1 to 10000"),
        ("--cpu", "-50%", "expected a percentage"),
    ] {
        let o = common::ringfence(&["run", flag, value, "--", "true"]);
        assert_eq!(code(&o), 125, "{flag} {value}: {}", text(&o));
        let err = common::stderr(&o);
        assert!(
            err.contains(&format!("invalid value '{value}' for '{flag}")) && err.contains(says),
            "{flag} {value}: {err}"
        );
    }
}

#[test]
fn pod_ls_has_json() {
    let st = TempDir::new();
    let o = rf(&st, &["pod", "ls", "--json"]);
    assert_eq!((code(&o), stdout(&o).as_str()), (0, ""), "{}", text(&o));
}

#[test]
fn user_takes_names_and_ids_root() {
    if needs_root() {
        return;
    }
    for (spec, want) in [
        ("nobody", "65534 65534"),
        ("65534", "65534 65534"),
        ("nobody:0", "65534 0"),
    ] {
        let o = common::ringfence(&[
            "run",
            "--user",
            spec,
            "--",
            "sh",
            "-c",
            "echo $(id -u) $(id -g)",
        ]);
        assert_eq!(
            (code(&o), stdout(&o).trim()),
            (0, want),
            "{spec}: {}",
            text(&o)
        );
    }
    let o = common::ringfence(&["run", "--user", "no-such-user", "--", "true"]);
    assert_eq!(code(&o), 125, "{}", text(&o));
    assert!(common::stderr(&o).contains("no user named"), "{}", text(&o));
}
