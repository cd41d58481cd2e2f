//! Named sandboxes and pods: `run --name/--detach`, `ps`, `kill`, `exec`, `pod create|rm|ls`
//! and `run --pod`.
//!
//! State lives in one JSON file per sandbox or pod in the state directory (see [`crate::state`]
//! for where it is and how it is checked). A record names the process that holds the
//! sandbox's handle (ringfence itself, or the monitor a `--detach` leaves behind) and the
//! sandbox's first process, each with its start time, so that a pid reused after a crash is
//! never taken for the sandbox; records of processes that are gone are removed when found. The
//! holder of the handle removes its record when the sandbox ends.
//!
//! Records are input, not authority. Before any signal or join, the holder must still be the
//! recorded process (start time), run as this user and run this ringfence binary, and the
//! sandbox's process must be its child. A record holds only the flags that restrict (never the
//! environment), and `exec` compares what they allow with what the kernel shows of the running
//! sandbox's program (seccomp filter, bounding set, uid): a record asking for less is refused.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use ringfence::{Command, Cpu, Net, Pod, PodRef};
use serde_json::{Value, json};

use crate::failure::{EXIT_FAILURE, Failure};
use crate::parse;
use crate::state::{Dir, euid};

/// What a state record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A sandbox started with `run --name`.
    Sandbox,
    /// A pod started with `pod create`.
    Pod,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Sandbox => "sandboxes",
            Kind::Pod => "pods",
        }
    }
}

/// The checked directory of the records of `kind` (created if `create`); `None` if there is
/// none yet.
fn records(kind: Kind, create: bool) -> Result<Option<Dir>, Failure> {
    Dir::open(kind.dir(), create)
}

fn file_name(name: &str) -> String {
    format!("{name}.json")
}

/// A name must be usable as a file name and in a shell: letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(anyhow!(
            "invalid name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
        )
        .into());
    }
    Ok(())
}

/// The start time of `pid` (field 22 of /proc/PID/stat), if it exists.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// The real and effective uid of `pid`.
fn uids(pid: u32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let mut ids = line.split_whitespace().map(|v| v.parse::<u32>().ok());
    Some((ids.next()??, ids.next()??))
}

/// The parent of `pid`.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether `pid` runs the same ringfence binary as this process.
fn runs_this_binary(pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(format!("/proc/{pid}/exe")),
        std::fs::metadata("/proc/self/exe"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether the process recorded as (`pid`, `start`) is still that process.
fn same_process(rec: &Value, pid_key: &str, start_key: &str) -> bool {
    let (Some(pid), Some(start)) = (rec[pid_key].as_u64(), rec[start_key].as_u64()) else {
        return false;
    };
    u32::try_from(pid).is_ok_and(|pid| start_time(pid) == Some(start))
}

/// Whether the record's holder (the process that keeps the sandbox or pod) still runs, and is
/// a ringfence of this user: the recorded start time, the owner and the binary all match.
/// Records are input that is checked, not trusted: nothing is signalled or joined on the word
/// of a record alone.
fn live(rec: &Value) -> bool {
    let Some(monitor) = rec["monitor"].as_u64().and_then(|p| u32::try_from(p).ok()) else {
        return false;
    };
    same_process(rec, "monitor", "monitor_start")
        && uids(monitor) == Some((euid(), euid()))
        && (monitor == std::process::id() || runs_this_binary(monitor))
}

/// The sandbox's (or pod's) first process, checked: the recorded process (start time) and a
/// child of the record's live holder. Its pid is returned.
fn checked_pid(rec: &Value) -> Result<u32, Failure> {
    let pid = rec["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| anyhow!("the sandbox has not started yet"))?;
    if !live(rec) || !same_process(rec, "pid", "pid_start") {
        return Err(anyhow!("the sandbox {} has ended", rec["name"]).into());
    }
    if parent(pid).map(u64::from) != rec["monitor"].as_u64() {
        return Err(anyhow!(
            "refusing the record of {}: process {pid} is not a sandbox started by its ringfence process",
            rec["name"]
        )
        .into());
    }
    Ok(pid)
}

fn what(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Sandbox => ("sandbox", "ringfence ps"),
        Kind::Pod => ("pod", "ringfence pod ls"),
    }
}

/// Read a record; a record whose holder is gone is removed and reported as missing.
pub fn load(kind: Kind, name: &str) -> Result<Value, Failure> {
    check_name(name)?;
    let (what, list) = what(kind);
    let missing = || anyhow!("no {what} named {name:?} is running ({list} lists them)");
    let Some(dir) = records(kind, false)? else {
        return Err(missing().into());
    };
    let file = file_name(name);
    let Some(text) = dir.read(&file)? else {
        return Err(missing().into());
    };
    let rec: Value = serde_json::from_slice(&text).with_context(|| {
        format!(
            "the state file {} is damaged",
            dir.path().join(&file).display()
        )
    })?;
    if rec["exit_code"].as_i64().is_some() {
        return Err(anyhow!(
            "the {what} {name:?} has ended with status {} (ringfence logs/inspect {name} show what it did)",
            rec["exit_code"]
        )
        .into());
    }
    if !live(&rec) {
        dir.remove(&file);
        return Err(anyhow!("the {what} {name:?} has ended (its stale record was removed; {list} lists the running ones)").into());
    }
    Ok(rec)
}

/// Every live record of `kind`, by name; stale ones are removed, untrusted ones skipped.
fn list(kind: Kind) -> Result<Vec<(String, Value)>, Failure> {
    let Some(dir) = records(kind, false)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for file in dir.names() {
        let Some(name) = file.strip_suffix(".json").map(str::to_owned) else {
            continue;
        };
        if check_name(&name).is_err() {
            continue;
        }
        let rec: Option<Value> = match dir.read(&file) {
            Ok(text) => text.and_then(|t| serde_json::from_slice(&t).ok()),
            Err(f) => {
                eprintln!("ringfence: warning: {f}");
                continue;
            }
        };
        match rec {
            Some(rec) if rec["exit_code"].as_i64().is_some() => {}
            Some(rec) if live(&rec) => out.push((name, rec)),
            _ => dir.remove(&file),
        }
    }
    Ok(out)
}

/// A record owned by this process: written when created, removed when dropped.
pub struct Record {
    dir: Dir,
    file: String,
    /// Kept after the holder ends (a detached sandbox's exit status, for `wait` and `logs`).
    keep: bool,
}

impl Record {
    /// Claim `name` (failing if a live record holds it) and write `rec` under it.
    pub fn create(kind: Kind, name: &str, mut rec: Value) -> Result<Record, Failure> {
        check_name(name)?;
        let dir = records(kind, true)?.expect("created");
        let file = file_name(name);
        let me = std::process::id();
        rec["name"] = json!(name);
        rec["monitor"] = json!(me);
        rec["monitor_start"] = json!(start_time(me));
        rec["created"] = json!(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        // Claim the name atomically; a stale record of the same name is replaced.
        for _ in 0..2 {
            match dir.create(&file, format!("{rec}\n").as_bytes()) {
                Ok(()) => {
                    return Ok(Record {
                        dir,
                        file,
                        keep: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if ended(kind, name) {
                        // A detached sandbox that has ended: its record and log give way.
                        dir.remove(&file);
                        dir.remove(&log_name(name));
                        continue;
                    }
                    match load(kind, name) {
                        Ok(_) => {
                            return Err(anyhow!("the name {name:?} is in use by a running sandbox or pod; choose another").into());
                        }
                        // Not a trusted record: left for the user to look at.
                        Err(f) if dir.exists(&file) => return Err(f),
                        Err(_) => {}
                    }
                }
                Err(e) => {
                    return Err(anyhow!(e)
                        .context(format!(
                            "cannot create {}",
                            dir.path().join(&file).display()
                        ))
                        .into());
                }
            }
        }
        Err(anyhow!("cannot claim the name {name:?}").into())
    }

    /// Add the sandbox's first process to the record.
    pub fn set_pid(&self, pid: u32) -> Result<(), Failure> {
        self.update(|rec| {
            rec["pid"] = json!(pid);
            rec["pid_start"] = json!(start_time(pid));
        })
    }

    /// Change the record (atomically replaced, so a reader never sees half of it).
    fn update(&self, change: impl FnOnce(&mut Value)) -> Result<(), Failure> {
        let text = self
            .dir
            .read(&self.file)?
            .ok_or_else(|| anyhow!("the record {} was removed", self.file))?;
        let mut rec: Value = serde_json::from_slice(&text)?;
        change(&mut rec);
        self.dir.replace(&self.file, format!("{rec}\n").as_bytes())
    }
}

impl Record {
    /// Create the sandbox's log file (mode 0600), where a detached sandbox's output goes.
    pub fn log_file(&self, name: &str) -> Result<std::fs::File, Failure> {
        let log = log_name(name);
        self.dir.remove(&log);
        self.dir
            .create_file(&log)
            .with_context(|| format!("cannot create {}", self.dir.path().join(&log).display()))
            .map_err(Failure::from)
    }

    /// The sandbox has ended with `code`: the record stays, with the status, for `wait`,
    /// `logs` and `inspect` (until the name is used again or `ringfence rm NAME`).
    pub fn finish(mut self, code: i32) {
        let done = self.update(|rec| {
            rec["exit_code"] = json!(code);
            rec["ended"] = json!(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            );
        });
        self.keep = done.is_ok();
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.keep {
            self.dir.remove(&self.file);
        }
    }
}

fn log_name(name: &str) -> String {
    format!("{name}.log")
}

/// A record of an ended detached sandbox (it has an exit status), checked like any other.
fn ended_record(kind: Kind, name: &str) -> Option<Value> {
    let dir = records(kind, false).ok()??;
    let text = dir.read(&file_name(name)).ok()??;
    let rec: Value = serde_json::from_slice(&text).ok()?;
    rec["exit_code"].as_i64().is_some().then_some(rec)
}

fn ended(kind: Kind, name: &str) -> bool {
    ended_record(kind, name).is_some()
}

/// Fork a monitor that runs `work` detached (new session, stdio on /dev/null) and reports
/// back on a pipe: `Ok(line)` once it has started (the line is printed), or the error it met.
/// Returns the exit status for the foreground process; the monitor never returns.
pub fn detach(work: impl FnOnce(&mut dyn FnMut(&str)) -> Result<i32, Failure>) -> i32 {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!(
            "ringfence: cannot create a pipe: {}",
            std::io::Error::last_os_error()
        );
        return EXIT_FAILURE;
    }
    // SAFETY: both descriptors were just created and are owned here only.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: ringfence has started no thread yet (detaching happens before anything else),
    // so the child may go on running Rust code.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!(
                "ringfence: cannot fork: {}",
                std::io::Error::last_os_error()
            );
            EXIT_FAILURE
        }
        0 => {
            drop(r);
            let mut report = std::fs::File::from(w);
            // SAFETY: setsid and dup2 onto stdio of /dev/null, in this single-threaded child.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                    if null > 2 {
                        libc::close(null);
                    }
                }
            }
            let result = {
                let mut started = |line: &str| {
                    // The first line tells the foreground process to go.
                    let _ = report.write_all(format!("ok {line}\n").as_bytes());
                };
                work(&mut started)
            };
            let code = match result {
                Ok(code) => code,
                Err(f) => {
                    // A failure before the start reaches the foreground; after, nobody is
                    // listening any more.
                    let _ = report.write_all(format!("error {f}\n").as_bytes());
                    f.exit_code()
                }
            };
            std::process::exit(code)
        }
        _ => {
            drop(w);
            // One line: the monitor keeps its end open while it runs.
            let mut text = String::new();
            let _ = std::io::BufReader::new(std::fs::File::from(r)).read_line(&mut text);
            match text.lines().next() {
                Some(line) if line.starts_with("ok ") => {
                    println!("{}", &line[3..]);
                    0
                }
                Some(line) if line.starts_with("error ") => {
                    eprintln!("{}", &text["error ".len()..].trim_end());
                    EXIT_FAILURE
                }
                _ => {
                    eprintln!("ringfence: the detached monitor ended before it started anything");
                    EXIT_FAILURE
                }
            }
        }
    }
}

/// `ringfence ps`: the running named sandboxes.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

fn age(rec: &Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let s = now.saturating_sub(rec["created"].as_u64().unwrap_or(now));
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// Run `ringfence ps`.
pub fn ps(args: &PsArgs) -> i32 {
    let rows = match list(Kind::Sandbox) {
        Ok(rows) => rows,
        Err(f) => {
            eprintln!("{f}");
            return f.exit_code();
        }
    };
    if args.json {
        for (_, rec) in rows {
            println!("{rec}");
        }
        return 0;
    }
    println!("{:<20} {:>8} {:>6}  COMMAND", "NAME", "PID", "AGE");
    for (name, rec) in rows {
        let cmd: Vec<String> = rec["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<20} {:>8} {:>6}  {}",
            name,
            rec["pid"].as_u64().map_or("-".into(), |p| p.to_string()),
            age(&rec),
            cmd.join(" ")
        );
    }
    0
}

/// `ringfence kill`: signal a named sandbox (every process in it, with the default SIGKILL).
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// The sandbox's name (see `ringfence ps`).
    name: String,
    /// The signal, by number or name (TERM, SIGTERM, 15); default KILL. KILL ends the whole
    /// sandbox at once; another signal goes to its first process (forwarded to the program
    /// behind the init).
    #[arg(short, long, value_name = "SIGNAL", default_value = "KILL")]
    signal: String,
}

fn signal_number(s: &str) -> Result<i32, Failure> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    let n = match name.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        _ => {
            return Err(anyhow!(
                "unknown signal {s:?}: use a number or a name such as TERM or KILL"
            )
            .into());
        }
    };
    Ok(n)
}

/// Send `sig` to the process recorded under `pid_key` through a pidfd (checked to be the
/// recorded process first: see [`checked_pid`] and [`live`]).
fn signal_recorded(rec: &Value, pid_key: &str, start_key: &str, sig: i32) -> Result<(), Failure> {
    let pid = if pid_key == "pid" {
        checked_pid(rec)?
    } else {
        rec[pid_key]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| anyhow!("the record has no {pid_key}"))?
    } as i32;
    // SAFETY: pidfd_open with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(anyhow!("process {pid} is gone").into());
    }
    // SAFETY: a new descriptor owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // Opened first, checked second: the pidfd then names the recorded process for sure.
    if !same_process(rec, pid_key, start_key) || !live(rec) {
        return Err(anyhow!("process {pid} is not the one recorded any more").into());
    }
    // SAFETY: pidfd_send_signal on our descriptor, no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc != 0 {
        return Err(anyhow!(std::io::Error::last_os_error())
            .context(format!("cannot signal process {pid}"))
            .into());
    }
    Ok(())
}

/// Wait (at most `limit`) until the record of `name` is gone.
fn wait_gone(kind: Kind, name: &str, limit: Duration) -> bool {
    let Ok(Some(dir)) = records(kind, false) else {
        return true;
    };
    let deadline = Instant::now() + limit;
    // Gone, or kept as an ended detached sandbox (its monitor has finished).
    while dir.exists(&file_name(name)) && !ended(kind, name) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Run `ringfence kill`.
pub fn kill(args: &KillArgs) -> i32 {
    let res = (|| -> Result<(), Failure> {
        let sig = signal_number(&args.signal)?;
        let rec = load(Kind::Sandbox, &args.name)?;
        signal_recorded(&rec, "pid", "pid_start", sig)?;
        if sig == libc::SIGKILL && !wait_gone(Kind::Sandbox, &args.name, Duration::from_secs(10)) {
            return Err(anyhow!(
                "the sandbox was killed but its monitor has not finished cleaning up"
            )
            .into());
        }
        Ok(())
    })();
    match res {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("{f}");
            f.exit_code()
        }
    }
}

/// `ringfence exec`: run a command inside a running named sandbox, like `docker exec`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The command enters every namespace of the sandbox (its files, processes, network, hostname) and \
its cgroup, under the same restrictions (seccomp profile, Landlock rules, capabilities, \
identity, rlimits) as the sandbox's own program. Its environment is empty unless given with \
--env. The exit status is the command's, as with `ringfence run`.")]
pub struct ExecArgs {
    /// The sandbox: its name, or the pid `ringfence ps` shows.
    target: String,
    /// Set an environment variable for the command: `KEY=VALUE`; repeatable.
    #[arg(short, long, value_name = "KEY=VALUE")]
    env: Vec<OsString>,
    /// The command's working directory inside the sandbox (default: its root).
    #[arg(long, value_name = "DIR")]
    chdir: Option<PathBuf>,
    /// Give the command a pseudo-terminal that ringfence owns (window size, job control),
    /// closed when the command ends: `exec -it NAME -- bash` for a shell.
    #[arg(short = 't', long)]
    tty: bool,
    /// Keep stdin open when it is a terminal (through a pipe, without -t). Without -i or -t a
    /// terminal stdin is /dev/null for the command and a terminal stdout or stderr reaches it
    /// through a pipe: your terminal itself never enters the sandbox.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// The command and its arguments, after `--`.
    #[arg(value_name = "COMMAND", last = true, required = true)]
    command: Vec<OsString>,
}

/// The record of a sandbox given by name or by pid.
fn find_sandbox(target: &str) -> Result<Value, Failure> {
    if let Ok(pid) = target.parse::<u64>() {
        return list(Kind::Sandbox)?
            .into_iter()
            .map(|(_, rec)| rec)
            .find(|rec| rec["pid"].as_u64() == Some(pid))
            .ok_or_else(|| {
                anyhow!("process {pid} is not a running ringfence sandbox started with --name (ringfence ps lists them)")
                    .into()
            });
    }
    load(Kind::Sandbox, target)
}

/// The fields of /proc/PID/status.
fn status(pid: u32) -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

fn field<'a>(status: &'a [(String, String)], key: &str) -> Option<&'a str> {
    status
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The process that runs the sandbox's program: `pid` itself, or its first child when `pid`
/// is the init of a pid namespace (which keeps what it needs to manage the namespace).
fn workload(pid: u32) -> u32 {
    let is_init = status(pid)
        .and_then(|s| field(&s, "NSpid").map(|v| v.split_whitespace().last() == Some("1")))
        .unwrap_or(false);
    if !is_init {
        return pid;
    }
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()
        .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(pid)
}

/// The host uid that `uid` inside `pid`'s user namespace is.
fn host_uid(pid: u32, uid: u32) -> Option<u32> {
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).ok()?;
    map.lines().find_map(|l| {
        let v: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [inside, outside, count] = v[..] else {
            return None;
        };
        let uid = u64::from(uid);
        (uid >= inside && uid < inside + count).then(|| (outside + uid - inside) as u32)
    })
}

/// Refuse an `exec` whose restrictions (rebuilt from the record) would be weaker than those the
/// running sandbox's program has, as the kernel shows them: a record, even one of this user's,
/// is never trusted to lift a seccomp filter, add a capability or change the identity.
fn not_weaker(pid: u32, allowed: &crate::run::Allowed) -> Result<(), Failure> {
    let target = workload(pid);
    let st = status(target).ok_or_else(|| anyhow!("the sandbox's process {target} is gone"))?;
    let refuse = |what: &str| -> Failure {
        anyhow!(
            "refusing to exec: the record asks for {what} than the running sandbox has; it does not describe this sandbox"
        )
        .into()
    };
    if field(&st, "Seccomp") == Some("2") && allowed.unconfined {
        return Err(refuse("no seccomp filter, a weaker restriction"));
    }
    let bnd = field(&st, "CapBnd")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0);
    if allowed.caps & !bnd != 0 {
        return Err(refuse("more capabilities"));
    }
    let target_uid = field(&st, "Uid")
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u32>().ok());
    // Without --uid the program runs as ringfence's own user (mapped, in a user namespace).
    let exec_uid = match allowed.uid {
        Some(uid) => host_uid(target, uid),
        None => Some(euid()),
    };
    if target_uid.is_none() || exec_uid != target_uid {
        return Err(refuse("another identity"));
    }
    Ok(())
}

/// Run `ringfence exec`.
pub fn exec(args: &ExecArgs) -> i32 {
    let res = (|| -> Result<ringfence::Outcome, Failure> {
        let rec = find_sandbox(&args.target)?;
        let pid = checked_pid(&rec)?;
        // The sandbox's restrictions, rebuilt from the flags it was started with.
        let run_args: Vec<OsString> = rec["args"]
            .as_array()
            .ok_or_else(|| anyhow!("the record has no flags"))?
            .iter()
            .filter_map(|v| v.as_str().map(OsString::from))
            .collect();
        let (sandbox, allowed) = crate::run::sandbox_from_args(&run_args)?;
        not_weaker(pid, &allowed)?;
        let mut cmd = Command::new(&args.command[0]);
        cmd.args(&args.command[1..]);
        for kv in &args.env {
            let kv = kv.to_string_lossy();
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("--env takes KEY=VALUE, not {kv:?}"))?;
            cmd.env(k, v);
        }
        if let Some(dir) = &args.chdir {
            cmd.current_dir(dir);
        }
        crate::signals::block().context("cannot block the signals to forward")?;
        crate::tty::block_winch();
        let relay = crate::run::attach_stdio(&mut cmd, args.tty, args.interactive, false)?;
        let spawned = sandbox.exec_pid(pid, &cmd);
        // The sandbox's side of the pipes or the terminal is the command's: closed here.
        drop(cmd);
        let mut child = spawned?;
        let pidfd = child
            .pidfd()
            .try_clone_to_owned()
            .context("cannot duplicate the pidfd")?;
        crate::signals::forward(pidfd, false).context("cannot start the signal forwarder")?;
        let outcome = child.wait();
        if let Some(relay) = relay {
            relay.finish(crate::run::RELAY_GRACE);
        }
        Ok(outcome?)
    })();
    match res {
        Ok(o) => o.shell_code(),
        Err(f) => {
            eprintln!("{f}");
            f.exit_code()
        }
    }
}

/// `ringfence wait`, `logs`, `inspect`: a named sandbox by name.
#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// The sandbox's name.
    name: String,
}

/// `ringfence logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The sandbox's name (started with `run --name NAME --detach`).
    name: String,
    /// Keep printing what the sandbox writes until it ends.
    #[arg(short, long)]
    follow: bool,
}

/// The record of `name`, running or ended.
fn any_record(name: &str) -> Result<Value, Failure> {
    check_name(name)?;
    if let Some(rec) = ended_record(Kind::Sandbox, name) {
        return Ok(rec);
    }
    load(Kind::Sandbox, name)
}

fn report(res: Result<i32, Failure>) -> i32 {
    res.unwrap_or_else(|f| {
        eprintln!("{f}");
        f.exit_code()
    })
}

/// Run `ringfence wait`: until the sandbox ends; exits with its status.
pub fn wait(args: &NameArgs) -> i32 {
    report((|| loop {
        let rec = any_record(&args.name)?;
        if let Some(code) = rec["exit_code"].as_i64() {
            return Ok(code as i32);
        }
        std::thread::sleep(Duration::from_millis(50));
    })())
}

/// Run `ringfence logs`: what a detached sandbox wrote (stdout and stderr, in order).
pub fn logs(args: &LogsArgs) -> i32 {
    report((|| {
        any_record(&args.name)?;
        let dir = records(Kind::Sandbox, false)?
            .ok_or_else(|| anyhow!("no sandbox named {:?}", args.name))?;
        let mut file = dir.open_read(&log_name(&args.name))?.ok_or_else(|| {
            anyhow!(
                "the sandbox {:?} has no log (only detached sandboxes have one)",
                args.name
            )
        })?;
        let mut out = std::io::stdout().lock();
        loop {
            std::io::copy(&mut file, &mut out).context("cannot copy the log")?;
            out.flush().ok();
            if !args.follow || ended(Kind::Sandbox, &args.name) {
                // Whatever was written before the end.
                std::io::copy(&mut file, &mut out).context("cannot copy the log")?;
                return Ok(0);
            }
            if load(Kind::Sandbox, &args.name).is_err() && !ended(Kind::Sandbox, &args.name) {
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })())
}

/// Run `ringfence inspect`: the sandbox's record as JSON, with its state.
pub fn inspect(args: &NameArgs) -> i32 {
    report((|| {
        let mut rec = any_record(&args.name)?;
        rec["state"] = json!(if rec["exit_code"].is_null() {
            "running"
        } else {
            "exited"
        });
        let _ = writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&rec)?);
        Ok(0)
    })())
}

/// Run `ringfence rm`: forget an ended detached sandbox (its record and log).
pub fn rm(args: &NameArgs) -> i32 {
    report((|| {
        if ended_record(Kind::Sandbox, &args.name).is_none() {
            any_record(&args.name)?;
            return Err(anyhow!(
                "the sandbox {:?} is running: end it with ringfence kill first",
                args.name
            )
            .into());
        }
        let dir = records(Kind::Sandbox, false)?.expect("it has a record");
        dir.remove(&file_name(&args.name));
        dir.remove(&log_name(&args.name));
        Ok(0)
    })())
}

/// `ringfence pod`: pods of sandboxes sharing a network, IPC and UTS namespace.
#[derive(Debug, clap::Args)]
pub struct PodArgs {
    #[command(subcommand)]
    command: PodCommand,
}

/// The pod subcommands.
#[derive(Debug, clap::Subcommand)]
enum PodCommand {
    /// Start a pod in the background; add sandboxes with `ringfence run --pod NAME`.
    Create(PodCreateArgs),
    /// End a pod: every sandbox in it is killed.
    Rm {
        /// The pod's name.
        name: String,
    },
    /// List the running pods.
    Ls {
        /// One JSON object per line per pod (its record) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `ringfence pod create`.
#[derive(Debug, clap::Args)]
pub struct PodCreateArgs {
    /// The pod's name.
    name: String,
    /// The members' network: `none` (a new namespace with only lo, the default) or `host`.
    #[arg(long, value_name = "none|host", default_value = "none")]
    net: String,
    /// The hostname the members see.
    #[arg(long, value_name = "NAME")]
    hostname: Option<OsString>,
    /// Share one pid namespace between the members.
    #[arg(long)]
    share_pid: bool,
    /// CPU limit of the whole pod, e.g. `50%` or `1.5` CPUs.
    #[arg(long, value_name = "LIMIT", value_parser = parse::cpu)]
    cpu: Option<Cpu>,
    /// Memory limit of the whole pod, e.g. `512M`.
    #[arg(long, value_name = "SIZE", value_parser = parse::size)]
    memory: Option<u64>,
    /// Limit on the number of processes of all members.
    #[arg(long, value_name = "N")]
    pids: Option<u64>,
}

/// Run `ringfence pod ...`.
pub fn pod(args: &PodArgs) -> i32 {
    match &args.command {
        PodCommand::Create(c) => pod_create(c),
        PodCommand::Rm { name } => {
            let res = (|| -> Result<(), Failure> {
                let rec = load(Kind::Pod, name)?;
                signal_recorded(&rec, "monitor", "monitor_start", libc::SIGTERM)?;
                if !wait_gone(Kind::Pod, name, Duration::from_secs(15)) {
                    return Err(anyhow!("the pod's monitor has not finished ending it").into());
                }
                Ok(())
            })();
            match res {
                Ok(()) => 0,
                Err(f) => {
                    eprintln!("{f}");
                    f.exit_code()
                }
            }
        }
        PodCommand::Ls { json } => {
            let rows = match list(Kind::Pod) {
                Ok(rows) => rows,
                Err(f) => {
                    eprintln!("{f}");
                    return f.exit_code();
                }
            };
            if *json {
                for (_, rec) in rows {
                    println!("{rec}");
                }
                return 0;
            }
            println!("{:<20} {:>8} {:>6}  CGROUP", "NAME", "HOLDER", "AGE");
            for (name, rec) in rows {
                println!(
                    "{:<20} {:>8} {:>6}  {}",
                    name,
                    rec["pid"].as_u64().map_or("-".into(), |p| p.to_string()),
                    age(&rec),
                    rec["cgroup"].as_str().unwrap_or("-")
                );
            }
            0
        }
    }
}

fn pod_create(a: &PodCreateArgs) -> i32 {
    if let Err(f) = check_name(&a.name) {
        eprintln!("{f}");
        return f.exit_code();
    }
    let net = match a.net.as_str() {
        "none" => Net::New,
        "host" => Net::Host,
        other => {
            eprintln!("ringfence: invalid value for --net: {other:?} (use none or host)");
            return EXIT_FAILURE;
        }
    };
    let mut pod = Pod::new().net(net);
    if let Some(h) = &a.hostname {
        pod = pod.hostname(h);
    }
    if a.share_pid {
        pod = pod.pid_ns();
    }
    if let Some(c) = a.cpu {
        pod = pod.cpu_quota(c);
    }
    if let Some(m) = a.memory {
        pod = pod.memory_limit(m);
    }
    if let Some(p) = a.pids {
        pod = pod.pids_limit(p);
    }
    let name = a.name.clone();
    detach(move |started| {
        let record = Record::create(Kind::Pod, &name, json!({}))?;
        // Signals that end the pod, taken synchronously below.
        let set = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];
        // SAFETY: sigset_t is plain data; blocks the signals in this (single) thread.
        let mask = unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut mask);
            for s in set {
                libc::sigaddset(&mut mask, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut());
            mask
        };
        let mut running = pod.spawn()?;
        let r = running.pod_ref();
        record.set_pid(r.holder)?;
        record.update(|rec| {
            rec["cgroup"] = json!(r.cgroup);
            rec["share_pid"] = json!(r.pid_ns);
        })?;
        started(&name);
        // Until told to end, or until the holder is gone.
        let timeout = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        loop {
            // SAFETY: waits for one of the blocked signals, at most a second.
            let sig = unsafe { libc::sigtimedwait(&mask, std::ptr::null_mut(), &timeout) };
            if sig > 0 || start_time(r.holder).is_none() {
                break;
            }
        }
        running.kill()?;
        drop(record);
        Ok(0)
    })
}

/// The pod `run --pod NAME` joins.
pub fn pod_ref(name: &str) -> Result<PodRef, Failure> {
    let rec = load(Kind::Pod, name)?;
    Ok(PodRef {
        holder: rec["pid"]
            .as_u64()
            .ok_or_else(|| anyhow!("the pod {name:?} has not started yet"))? as u32,
        cgroup: rec["cgroup"].as_str().map(PathBuf::from),
        pid_ns: rec["share_pid"].as_bool().unwrap_or(false),
    })
}

/// The record of a sandbox started by `run --name`: the flags it was started with (to rebuild
/// its restrictions for `exec`) and its command (for `ps`).
pub fn sandbox_record(
    name: &str,
    args: &[OsString],
    command: &[OsString],
) -> Result<Record, Failure> {
    let strings = |v: &[OsString]| -> Vec<String> {
        v.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    };
    Record::create(
        Kind::Sandbox,
        name,
        json!({ "args": strings(args), "command": strings(command) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["db", "job-1", "a.b_c", "X9"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals() {
        assert_eq!(signal_number("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(signal_number("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(signal_number("hup").unwrap(), libc::SIGHUP);
        assert_eq!(signal_number("9").unwrap(), 9);
        assert!(signal_number("NOPE").is_err());
    }

    #[test]
    fn start_time_identifies_this_process() {
        assert!(start_time(std::process::id()).is_some());
        let rec =
            json!({"monitor": std::process::id(), "monitor_start": start_time(std::process::id())});
        assert!(live(&rec));
        let rec = json!({"monitor": std::process::id(), "monitor_start": 1});
        assert!(!live(&rec));
    }
}
