//! Profiles must not rot: real programs run under the seccomp presets and must work.
//!
//! Allow- and deny-lists break when libc, language runtimes or the kernel start using new
//! syscalls (`clone3`, `rseq`, `faccessat2`, `close_range`, `statx`, `futex_waitv`, ...). Each
//! test here runs one part of a corpus of real programs — sh, coreutils, python3, perl, a C
//! compile with gcc, git, a small offline `cargo build` — in three sandboxes:
//!
//! - `default`: [`Sandbox::new`] with [`Profile::default_container`], on the host's files;
//! - `default-notify`: the same profile with every refusal turned into [`Action::Notify`]: the
//!   call still fails with `EPERM`, and it is recorded in [`Outcome::violations`]. A program
//!   that meets `EPERM` may work around it silently; here any refused call is reported, by name,
//!   and fails the test;
//! - `isolated`: [`Sandbox::isolated`] with `default_container()`, the case's work directory
//!   bound read-write at `/job`.
//!
//! [`Profile::strict`] runs a computing workload: python3 reading stdin, writing stdout.
//!
//! Every step must exit 0 with the expected output, and its stderr must say neither "Operation
//! not permitted" nor "Bad system call". A program that is not installed skips its case with a
//! `SKIPPED:` line; the other cases still run. Programs are taken from `/usr/local/bin`,
//! `/usr/bin` and `/bin` first (the system's, which `Sandbox::isolated` shows too), then from
//! `PATH`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringfence::{Action, Command, Outcome, Profile, Sandbox, Stdio};

/// Where system programs are looked up first, and the `PATH` inside `isolated`.
const SYS_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Host directories `Sandbox::isolated` shows (read-only).
const SYS_DIRS: &[&str] = &["/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/"];
/// Where the work directory is bound in `isolated`.
const WORK: &str = "/job";
/// The longest any single step may take (the cargo build is the slow one).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn skip(why: &str) {
    eprintln!("SKIPPED: {why}");
    println!("SKIPPED: {why}");
}

fn find_in(path: &OsStr, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A program: the system's first, else the one on `PATH`.
fn tool(name: &str) -> Option<PathBuf> {
    find_in(OsStr::new(SYS_PATH), name)
        .or_else(|| find_in(&std::env::var_os("PATH").unwrap_or_default(), name))
}

fn host_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| SYS_PATH.into())
}

fn home() -> OsString {
    std::env::var_os("HOME").unwrap_or_else(|| "/".into())
}

/// A directory of its own under the temporary directory, removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(tag: &str) -> WorkDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ringfence-corpus-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&p).unwrap();
        WorkDir(p)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `default_container()` with each rule that refuses a call turned into `Notify`: the same
/// decisions (a notified call is refused with `EPERM`), but each refusal is recorded.
fn default_container_notify() -> Profile {
    let base = Profile::default_container();
    let mut p = Profile::allow_all();
    for r in base.rules() {
        let action = if r.action() == Action::Allow {
            Action::Allow
        } else {
            Action::Notify
        };
        p = p.rule(r.syscall(), r.conds().to_vec(), action);
    }
    p.check().expect("the notify variant of default_container");
    p
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Default,
    DefaultNotify,
    Isolated,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Default, Variant::DefaultNotify, Variant::Isolated];

    fn label(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::DefaultNotify => "default-notify",
            Variant::Isolated => "isolated",
        }
    }
}

/// One sandbox of one case: where its work directory is, and how its steps run.
struct Ctx {
    case: &'static str,
    variant: Variant,
    sandbox: Sandbox,
    /// The work directory as the sandboxed program sees it.
    dir: PathBuf,
    /// The same directory on the host.
    host_dir: PathBuf,
    tools: HashMap<&'static str, PathBuf>,
    /// Environment every step gets (ringfence clears the environment).
    env: Vec<(OsString, OsString)>,
}

impl Ctx {
    /// The path of a program the case declared.
    fn tool(&self, name: &str) -> &Path {
        &self.tools[name]
    }

    /// A path inside the work directory, as the program sees it.
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// A command for `program` with the case's environment, in the work directory.
    fn cmd(&self, program: &str, args: &[&dyn AsRef<OsStr>]) -> Command {
        let mut c = Command::new(self.tool(program));
        for a in args {
            c.arg(a);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.current_dir(&self.dir);
        c
    }

    /// Runs `cmd` to its end and checks it (see [`Ctx::check`]); returns its stdout.
    fn run(&self, what: &str, cmd: &Command, expect: &str) -> String {
        let started = Instant::now();
        let out = self
            .sandbox
            .output(cmd)
            .unwrap_or_else(|e| panic!("{}: {what}: cannot spawn: {e}", self.tag()));
        check(&self.tag(), what, &out, expect, started)
    }

    fn tag(&self) -> String {
        format!("{} [{}]", self.case, self.variant.label())
    }
}

/// The program must have exited 0 with no syscall refused by a `Notify` rule, printed
/// `expect` on stdout, and printed nothing on stderr that tells of a refused syscall.
fn check(tag: &str, what: &str, out: &Outcome, expect: &str, started: Instant) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let details = format!(
        "status {:?}, after {:.1?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status,
        started.elapsed()
    );
    if out.status.signal() == Some(libc::SIGSYS) {
        panic!("{tag}: {what}: killed by SIGSYS: the guard kills calls of another ABI\n{details}");
    }
    assert!(
        out.violations.is_empty(),
        "{tag}: {what}: the profile refused {}\n{details}",
        violations(out)
    );
    assert!(!out.timed_out, "{tag}: {what}: timed out\n{details}");
    assert!(out.success(), "{tag}: {what}: failed\n{details}");
    for refusal in ["Operation not permitted", "Bad system call"] {
        assert!(
            !stderr.contains(refusal),
            "{tag}: {what}: stderr says {refusal:?}\n{details}"
        );
    }
    assert!(
        stdout.contains(expect),
        "{tag}: {what}: stdout lacks {expect:?}\n{details}"
    );
    stdout
}

/// The refused calls, as `name(arg0, arg1, ...) in pid N`.
fn violations(out: &Outcome) -> String {
    let list: Vec<String> = out
        .violations
        .iter()
        .map(|v| format!("{}({:x?}) in pid {}", v.syscall, v.args, v.pid))
        .collect();
    list.join(", ")
}

/// What a case needs besides its programs.
#[derive(Default)]
struct Needs {
    /// Extra environment for every step: `(name, value on the host, value in isolated)`.
    env: Vec<(&'static str, OsString, OsString)>,
    /// Host directories to bind read-only at the same path in `isolated`.
    binds: Vec<PathBuf>,
    /// Prepended to `PATH` in `isolated`.
    isolated_path: Vec<PathBuf>,
}

/// Runs `body` in each variant, with a fresh work directory prepared by `setup`. Skips the case
/// (visibly) when one of `programs` is missing, and the `isolated` variant alone when a
/// program lives outside what it shows.
fn corpus(
    case: &'static str,
    programs: &[&'static str],
    needs: Needs,
    setup: impl Fn(&Path),
    body: impl Fn(&Ctx),
) {
    let mut tools = HashMap::new();
    for &p in programs {
        match tool(p) {
            Some(path) => {
                tools.insert(p, path);
            }
            None => {
                skip(&format!("{case}: `{p}` is not installed"));
                return;
            }
        }
    }
    let started = Instant::now();
    for variant in Variant::ALL {
        let work = WorkDir::new(case);
        setup(&work.0);
        let (sandbox, dir, mut env) = match variant {
            Variant::Default | Variant::DefaultNotify => {
                let profile = if variant == Variant::Default {
                    Profile::default_container()
                } else {
                    default_container_notify()
                };
                let env: Vec<(OsString, OsString)> =
                    vec![("PATH".into(), host_path()), ("HOME".into(), home())];
                (
                    Sandbox::new().seccomp(profile).timeout(STEP_TIMEOUT),
                    work.0.clone(),
                    env,
                )
            }
            Variant::Isolated => {
                let visible = |p: &Path| {
                    let s = p.to_string_lossy();
                    SYS_DIRS.iter().any(|d| s.starts_with(d))
                        || needs.binds.iter().any(|b| p.starts_with(b))
                };
                if let Some((name, p)) = tools.iter().find(|(_, p)| !visible(p)) {
                    skip(&format!(
                        "{case} [isolated]: `{name}` is {}, outside the system directories",
                        p.display()
                    ));
                    continue;
                }
                let mut sb = Sandbox::isolated()
                    .bind_rw(&work.0, WORK)
                    .chdir(WORK)
                    .seccomp(Profile::default_container())
                    .timeout(STEP_TIMEOUT);
                for b in &needs.binds {
                    sb = sb.bind_ro(b, b);
                }
                let mut path: Vec<PathBuf> = needs.isolated_path.clone();
                path.extend(std::env::split_paths(SYS_PATH));
                let env: Vec<(OsString, OsString)> = vec![
                    ("PATH".into(), std::env::join_paths(path).unwrap()),
                    ("HOME".into(), "/tmp".into()),
                ];
                (sb, PathBuf::from(WORK), env)
            }
        };
        for (k, host, isolated) in &needs.env {
            let v = if variant == Variant::Isolated {
                isolated
            } else {
                host
            };
            env.push(((*k).into(), v.clone()));
        }
        let ctx = Ctx {
            case,
            variant,
            sandbox,
            dir,
            host_dir: work.0.clone(),
            tools: tools.clone(),
            env,
        };
        if variant == Variant::Isolated {
            // Only a fully built isolated sandbox has the work directory at /job.
            let probe = ctx
                .sandbox
                .output(Command::new("/bin/sh").arg("-c").arg(":"));
            match probe {
                Ok(o) if !o.report.is_fully_enforced() => {
                    skip(&format!(
                        "{case} [isolated]: not every layer is enforced here:\n{}",
                        o.report
                    ));
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    skip(&format!("{case} [isolated]: cannot be built here: {e}"));
                    continue;
                }
            }
        }
        body(&ctx);
    }
    eprintln!("{case}: done in {:.1?}", started.elapsed());
}

#[test]
fn sh_pipeline() {
    corpus(
        "sh",
        &["sh"],
        Needs::default(),
        |_| {},
        |c| {
            let script = r#"
                set -e
                n=$(printf 'pear\napple\nfig\napple\n' | sort | uniq | tr a-z A-Z | wc -l)
                for i in 1 2 3; do echo "line $i"; done | grep -c line >/dev/null
                (echo sub; exit 0) | cat
                echo "distinct=$n"
            "#;
            let out = c.run(
                "sh -c pipeline",
                &c.cmd("sh", &[&"-c", &script]),
                "distinct=3",
            );
            assert!(out.contains("sub\n"), "{out}");
        },
    );
}

#[test]
fn coreutils() {
    let programs = [
        "ls", "cat", "sort", "date", "stat", "cp", "mv", "rm", "mkdir", "find",
    ];
    corpus(
        "coreutils",
        &programs,
        Needs::default(),
        |dir| std::fs::write(dir.join("a.txt"), "pear\napple\nfig\n").unwrap(),
        |c| {
            c.run("ls -la /", &c.cmd("ls", &[&"-la", &"/"]), "..");
            c.run("cat", &c.cmd("cat", &[&c.path("a.txt")]), "apple");
            c.run(
                "sort",
                &c.cmd("sort", &[&c.path("a.txt")]),
                "apple\nfig\npear\n",
            );
            c.run("date", &c.cmd("date", &[&"-u", &"+%Y"]), "20");
            c.run(
                "stat",
                &c.cmd("stat", &[&"-c", &"%s %F", &c.path("a.txt")]),
                "15 regular file",
            );
            c.run(
                "cp",
                &c.cmd("cp", &[&c.path("a.txt"), &c.path("b.txt")]),
                "",
            );
            c.run(
                "mkdir",
                &c.cmd("mkdir", &[&"-p", &c.path("sub/deeper")]),
                "",
            );
            c.run(
                "mv",
                &c.cmd("mv", &[&c.path("b.txt"), &c.path("sub/deeper/c.txt")]),
                "",
            );
            c.run(
                "find",
                &c.cmd("find", &[&c.dir, &"-name", &"*.txt", &"-type", &"f"]),
                "sub/deeper/c.txt",
            );
            assert_eq!(
                std::fs::read_to_string(c.host_dir.join("sub/deeper/c.txt")).unwrap(),
                "pear\napple\nfig\n"
            );
            c.run("rm", &c.cmd("rm", &[&"-r", &c.path("sub")]), "");
            assert!(!c.host_dir.join("sub").exists(), "rm -r left sub/ behind");
        },
    );
}

#[test]
fn python3() {
    corpus(
        "python3",
        &["python3", "sh"],
        Needs::default(),
        |dir| std::fs::write(dir.join("data.txt"), "ringfence data\n").unwrap(),
        |c| {
            c.run(
                "compute",
                &c.cmd(
                    "python3",
                    &[&"-c", &"print(sum(i * i for i in range(100000)))"],
                ),
                "333328333350000",
            );
            c.run(
                "read a file",
                &c.cmd(
                    "python3",
                    &[
                        &"-c",
                        &"import sys; print(open(sys.argv[1]).read().upper(), end='')",
                        &c.path("data.txt"),
                    ],
                ),
                "RINGFENCE DATA\n",
            );
            c.run(
                "json",
                &c.cmd(
                    "python3",
                    &[
                        &"-c",
                        &"import json; d = json.loads(json.dumps({'a': [1, 2, {'b': None}]})); \
                          print(d['a'][2], len(d['a']))",
                    ],
                ),
                "{'b': None} 3",
            );
            c.run(
                "subprocess",
                &c.cmd(
                    "python3",
                    &[
                        &"-c",
                        &"import subprocess, sys; \
                          r = subprocess.run([sys.argv[1], '-c', 'echo from-child'], \
                          capture_output=True, check=True); print(r.stdout.decode().strip())",
                        &c.tool("sh"),
                    ],
                ),
                "from-child",
            );
            c.run(
                "threads",
                &c.cmd(
                    "python3",
                    &[
                        &"-c",
                        &"from concurrent.futures import ThreadPoolExecutor as T; \
                          print(sum(T(4).map(lambda x: x * x, range(100))))",
                    ],
                ),
                "328350",
            );
        },
    );
}

#[test]
fn perl() {
    corpus(
        "perl",
        &["perl"],
        Needs::default(),
        |dir| std::fs::write(dir.join("data.txt"), "b 2\na 1\n").unwrap(),
        |c| {
            let script = r#"
                use strict; use warnings;
                open(my $f, "<", $ARGV[0]) or die "open: $!";
                my %h = map { chomp; split / / } <$f>;
                print join(",", map { "$_=$h{$_}" } sort keys %h), "\n";
                my $pid = fork() // die "fork: $!";
                if ($pid == 0) { exit 7 }
                waitpid($pid, 0);
                print "child=", $? >> 8, "\n";
            "#;
            c.run(
                "perl -e",
                &c.cmd("perl", &[&"-e", &script, &c.path("data.txt")]),
                "a=1,b=2\nchild=7\n",
            );
        },
    );
}

const HELLO_C: &str = r#"#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void *square(void *arg) {
    long n = (long)arg;
    return (void *)(n * n);
}

int main(void) {
    pthread_t t;
    void *r;
    if (pthread_create(&t, NULL, square, (void *)12L) != 0 || pthread_join(t, &r) != 0)
        return 1;
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0)
        _exit(5);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 3;
    printf("hello from C: %ld %d\n", (long)r, WEXITSTATUS(status));
    return 0;
}
"#;

#[test]
fn gcc_compile_and_run() {
    corpus(
        "gcc",
        &["gcc"],
        Needs::default(),
        |dir| std::fs::write(dir.join("hello.c"), HELLO_C).unwrap(),
        |c| {
            c.run(
                "gcc",
                &c.cmd(
                    "gcc",
                    &[
                        &"-O1",
                        &"-pthread",
                        &"-o",
                        &c.path("hello"),
                        &c.path("hello.c"),
                    ],
                ),
                "",
            );
            let mut run = Command::new(c.path("hello"));
            run.current_dir(&c.dir);
            c.run("the compiled program", &run, "hello from C: 144 5\n");
        },
    );
}

#[test]
fn git() {
    corpus(
        "git",
        &["git"],
        Needs::default(),
        |dir| {
            std::fs::create_dir(dir.join("repo")).unwrap();
            std::fs::write(dir.join("repo/README"), "ringfence corpus\n").unwrap();
        },
        |c| {
            let repo = c.path("repo");
            let git = |args: &[&dyn AsRef<OsStr>]| {
                let mut all: Vec<&dyn AsRef<OsStr>> = vec![
                    &"-C",
                    &repo,
                    &"-c",
                    &"user.name=ringfence",
                    &"-c",
                    &"user.email=corpus@ringfence.invalid",
                    &"-c",
                    &"init.defaultBranch=main",
                ];
                all.extend_from_slice(args);
                let mut cmd = c.cmd("git", &all);
                // Nothing from the host's or the user's git configuration.
                cmd.env("GIT_CONFIG_NOSYSTEM", "1").env("HOME", &c.dir);
                cmd
            };
            c.run("git init", &git(&[&"init", &"-q"]), "");
            c.run("git add", &git(&[&"add", &"README"]), "");
            c.run(
                "git commit",
                &git(&[&"commit", &"-q", &"-m", &"first commit"]),
                "",
            );
            c.run(
                "git log",
                &git(&[&"log", &"--format=%s by %an"]),
                "first commit by ringfence\n",
            );
            let status = c.run("git status", &git(&[&"status", &"--porcelain"]), "");
            assert_eq!(status, "", "{}: the work tree is not clean", c.tag());
        },
    );
}

#[test]
fn cargo_build_offline() {
    if tool("cargo").is_none() {
        skip("cargo build: `cargo` is not on PATH");
        return;
    }
    let home = PathBuf::from(home());
    let cargo_home =
        std::env::var_os("CARGO_HOME").map_or_else(|| home.join(".cargo"), PathBuf::from);
    let rustup_home =
        std::env::var_os("RUSTUP_HOME").map_or_else(|| home.join(".rustup"), PathBuf::from);
    let mut needs = Needs::default();
    for (name, dir) in [("CARGO_HOME", &cargo_home), ("RUSTUP_HOME", &rustup_home)] {
        if dir.is_dir() {
            needs
                .env
                .push((name, dir.clone().into(), dir.clone().into()));
            needs.binds.push(dir.clone());
        }
    }
    if let Some(t) = std::env::var_os("RUSTUP_TOOLCHAIN") {
        needs.env.push(("RUSTUP_TOOLCHAIN", t.clone(), t));
    }
    if cargo_home.join("bin").is_dir() {
        needs.isolated_path.push(cargo_home.join("bin"));
    }
    // rustc links with `cc`.
    corpus(
        "cargo",
        &["cargo", "cc"],
        needs,
        |_| {},
        |c| {
            c.run(
                "cargo new",
                &c.cmd(
                    "cargo",
                    &[
                        &"new",
                        &"--quiet",
                        &"--vcs",
                        &"none",
                        &"--name",
                        &"hello",
                        &c.path("hello"),
                    ],
                ),
                "",
            );
            let mut build = c.cmd(
                "cargo",
                &[
                    &"build",
                    &"--offline",
                    &"--quiet",
                    &"--manifest-path",
                    &c.path("hello/Cargo.toml"),
                ],
            );
            build.current_dir(c.path("hello"));
            c.run("cargo build --offline", &build, "");
            let mut run = Command::new(c.path("hello/target/debug/hello"));
            run.current_dir(&c.dir);
            c.run("the built program", &run, "Hello, world!\n");
        },
    );
}

/// `strict()`: a plugin computing on stdin and stdout, in `Sandbox::new()` and in
/// `Sandbox::isolated()`. A third run with `Notify` as the default action lists what `strict()`
/// refused and python3 went on without (start-up probes such as `sysinfo`, or the `socket` of a
/// name-service lookup); it is printed, not failed on: the allow-list is short on purpose, and
/// what matters is that the workload works.
#[test]
fn strict_python3_stdin_to_stdout() {
    let Some(python) = tool("python3") else {
        skip("strict: `python3` is not installed");
        return;
    };
    let script = "import sys\n\
                  data = sys.stdin.read()\n\
                  nums = [int(w) for w in data.split()]\n\
                  sys.stdout.write('sum=%d max=%d\\n' % (sum(nums), max(nums)))\n\
                  sys.stdout.write(' '.join(str(n * 2) for n in sorted(nums)) + '\\n')\n";
    let input: String = (1..=1000).rev().map(|n| format!("{n}\n")).collect();
    let doubled: Vec<String> = (1..=1000).map(|n| (n * 2).to_string()).collect();
    let expect = format!("sum=500500 max=1000\n{}\n", doubled.join(" "));
    let mut runs = vec![
        ("strict", Sandbox::new().seccomp(Profile::strict())),
        (
            "strict-notify",
            Sandbox::new().seccomp(Profile::strict().default_action(Action::Notify)),
        ),
    ];
    if python.starts_with("/usr/") || python.starts_with("/bin/") {
        runs.push((
            "strict-isolated",
            Sandbox::isolated().seccomp(Profile::strict()),
        ));
    } else {
        skip(&format!(
            "strict [isolated]: python3 is {}, outside the system directories",
            python.display()
        ));
    }
    for (label, sandbox) in runs {
        let mut cmd = Command::new(&python);
        cmd.args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .current_dir("/");
        let started = Instant::now();
        let mut child = sandbox
            .timeout(STEP_TIMEOUT)
            .spawn(&cmd)
            .unwrap_or_else(|e| panic!("{label}: spawn: {e}"));
        if label == "strict-isolated" && !child.report().is_fully_enforced() {
            skip(&format!(
                "strict [isolated]: not every layer is enforced here:\n{}",
                child.report()
            ));
            continue;
        }
        {
            let mut stdin = child.stdin.take().expect("piped stdin");
            // 3.9 kB: fits the pipe, so writing before reading cannot deadlock.
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let mut out = child.wait_with_output().unwrap();
        if label == "strict-notify" {
            let refused: std::collections::BTreeSet<&str> =
                out.violations.iter().map(|v| v.syscall.as_str()).collect();
            eprintln!("strict refused, and python3 went on without: {refused:?}");
            out.violations.clear();
        }
        let stdout = check(
            label,
            "python3 stdin to stdout",
            &out,
            "sum=500500 max=1000\n",
            started,
        );
        assert_eq!(stdout, expect, "{label}: wrong output");
    }
}
