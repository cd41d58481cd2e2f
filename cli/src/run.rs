//! `ringfence run`: flags → [`Sandbox`] and [`Command`] → spawn, forward signals, wait.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::ArgAction;
use ringfence::{Capability, Command, Compat, Net, Outcome, Sandbox, TimeOffsets, UserNs};

use crate::failure::{EXIT_FAILURE, EXIT_TIMEOUT, Failure};
use crate::parse::{self, NetArg, RlimitArg};
use crate::signals;

const NS: &str = "Namespaces";
const IDENTITY: &str = "Identity and limits";
const ENV: &str = "Environment";
const PROCESS: &str = "Process";
const OUTPUT: &str = "Output";

/// Flags of `ringfence run`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Run a command in a sandbox",
    long_about = "\
Run a command in a sandbox and exit with its status.

Without flags the command gets process hygiene only (no namespaces): a new session without a \
controlling terminal, no_new_privs, every capability dropped, every file descriptor but stdin, \
stdout and stderr closed, an empty environment except PATH, and it is killed if ringfence dies. \
Each flag adds one layer; layers this host cannot provide are left out with a warning (or make \
the run fail with --require).

stdin, stdout and stderr are ringfence's own. SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and \
SIGUSR2 sent to ringfence are forwarded to the sandbox.

Put `--` before the command.",
    after_help = "\
Exit status:
  N        the command's exit status
  128+N    the command was killed by signal N
  124      the command ran past --timeout and was killed (like timeout(1))
  125      an error of ringfence itself: bad flags, setup failure (like env(1), docker run)
  126      the command was found but could not be executed
  127      the command was not found

Examples:
  ringfence run --unshare-all --hostname box -- sh -c 'hostname; id'
  ringfence run --net none --timeout 10s --rlimit as=1G --json out.json -- ./untrusted"
)]
pub struct RunArgs {
    /// New user namespace, mapping your uid and gid to themselves [Sandbox::user_ns(UserNs::current())].
    /// Without root, ringfence adds one by itself as soon as any namespace is asked for.
    #[arg(long, help_heading = NS)]
    unshare_user: bool,

    /// New pid namespace: the command runs behind a small init that is pid 1 and forwards
    /// signals; when it ends every process left inside is killed [Sandbox::pid_ns].
    #[arg(long, help_heading = NS)]
    unshare_pid: bool,

    /// New network namespace with only `lo`; same as `--net none` [Sandbox::net(Net::New)].
    #[arg(long, help_heading = NS, conflicts_with = "net")]
    unshare_net: bool,

    /// New IPC namespace: System V IPC, POSIX message queues [Sandbox::ipc_ns].
    #[arg(long, help_heading = NS)]
    unshare_ipc: bool,

    /// New UTS namespace: hostname and domain name [Sandbox::uts_ns].
    #[arg(long, help_heading = NS)]
    unshare_uts: bool,

    /// New cgroup namespace: the sandbox's cgroup appears as the root [Sandbox::cgroup_ns].
    #[arg(long, help_heading = NS)]
    unshare_cgroup: bool,

    /// New time namespace, clocks unchanged [Sandbox::time_ns]. See --monotonic-offset.
    #[arg(long, help_heading = NS)]
    unshare_time: bool,

    /// New mount namespace, with mount propagation to the host cut [Sandbox::mount_ns].
    #[arg(long, help_heading = NS)]
    unshare_mount: bool,

    /// New pid, ipc, uts, cgroup and network namespaces (not mount, time or user)
    /// [Sandbox::unshare_all]. `--net` still applies: `--unshare-all --net host` keeps the
    /// host's network.
    #[arg(long, help_heading = NS)]
    unshare_all: bool,

    /// The network: `host` (the default), `none` (a new namespace with only `lo`), or the path
    /// of a network namespace to join, e.g. /proc/PID/ns/net or /run/netns/NAME
    /// [Sandbox::net(Net::Host | Net::New | Net::join(file))].
    #[arg(long, value_name = "host|none|PATH", help_heading = NS)]
    net: Option<OsString>,

    /// The hostname inside (1 to 64 bytes); implies a new UTS namespace [Sandbox::hostname].
    #[arg(long, value_name = "NAME", help_heading = NS)]
    hostname: Option<OsString>,

    /// Clock offset of CLOCK_MONOTONIC inside, e.g. `1h`; implies a new time namespace
    /// [Sandbox::time_offsets].
    #[arg(long, value_name = "DURATION", value_parser = parse::duration, help_heading = NS)]
    monotonic_offset: Option<Duration>,

    /// Clock offset of CLOCK_BOOTTIME inside; implies a new time namespace
    /// [Sandbox::time_offsets].
    #[arg(long, value_name = "DURATION", value_parser = parse::duration, help_heading = NS)]
    boottime_offset: Option<Duration>,

    /// New user namespace in which your uid and gid are 0, like `unshare -r`
    /// [Sandbox::user_ns(UserNs::root())].
    #[arg(short = 'r', long, help_heading = IDENTITY)]
    map_root_user: bool,

    /// Run the command as this uid (inside the user namespace, if any) [Sandbox::uid].
    #[arg(long, value_name = "UID", help_heading = IDENTITY)]
    uid: Option<u32>,

    /// Run the command as this gid, with no supplementary groups [Sandbox::gid].
    #[arg(long, value_name = "GID", help_heading = IDENTITY)]
    gid: Option<u32>,

    /// Keep this capability (all others are dropped), e.g. `CAP_NET_BIND_SERVICE` or
    /// `net_bind_service`; repeatable [Sandbox::capabilities].
    #[arg(long, value_name = "CAP", value_parser = parse::capability, action = ArgAction::Append, help_heading = IDENTITY)]
    cap_add: Vec<Capability>,

    /// Set a resource limit: `NAME=SOFT[:HARD]` (one value sets both), NAME as in prlimit(1):
    /// as, core, cpu, data, fsize, memlock, msgqueue, nice, nofile, nproc, stack, sigpending.
    /// Values are numbers or `unlimited`; byte sizes take K, M, G, T suffixes, e.g.
    /// `as=1G`, `nofile=256:1024`; repeatable [Sandbox::rlimit].
    #[arg(long, value_name = "NAME=SOFT[:HARD]", value_parser = parse::rlimit, action = ArgAction::Append, help_heading = IDENTITY)]
    rlimit: Vec<RlimitArg>,

    /// The command's umask, in octal, e.g. 022 [Sandbox::umask].
    #[arg(long, value_name = "MODE", value_parser = parse::umask, help_heading = IDENTITY)]
    umask: Option<u32>,

    /// Set KEY to VALUE, like bwrap; repeatable [Command::env].
    #[arg(long, num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append, help_heading = ENV)]
    setenv: Vec<OsString>,

    /// Set a variable, KEY=VALUE; repeatable [Command::env].
    #[arg(long, value_name = "KEY=VALUE", action = ArgAction::Append, help_heading = ENV)]
    env: Vec<OsString>,

    /// Pass this variable of ringfence's environment through, if set; repeatable
    /// [Command::env_inherit].
    #[arg(long, value_name = "KEY", action = ArgAction::Append, help_heading = ENV)]
    env_inherit: Vec<OsString>,

    /// Pass ringfence's whole environment through — secrets included [Command::inherit_env].
    /// The environment is otherwise EMPTY except for PATH, which is passed through (remove it
    /// with `--unsetenv PATH`).
    #[arg(long, help_heading = ENV)]
    inherit_env: bool,

    /// Remove a variable; applied after every other environment flag [Command::env_remove].
    #[arg(long, value_name = "KEY", action = ArgAction::Append, help_heading = ENV)]
    unsetenv: Vec<OsString>,

    /// The command's working directory inside the sandbox (by default ringfence's)
    /// [Command::current_dir].
    #[arg(long, value_name = "DIR", help_heading = PROCESS)]
    chdir: Option<PathBuf>,

    /// Kill the whole sandbox after this long and exit with 124: a number with an optional
    /// unit ms, s, m, h or d (a bare number is seconds), e.g. 500ms, 10s, 2m [Sandbox::timeout].
    #[arg(long, value_name = "DURATION", value_parser = parse::timeout, help_heading = PROCESS)]
    timeout: Option<Duration>,

    /// Keep ringfence's session and controlling terminal [Sandbox::new_session(false)].
    /// WARNING: the command can then inject input into your terminal (TIOCSTI); use it only for
    /// trusted interactive programs.
    #[arg(long, help_heading = PROCESS)]
    share_session: bool,

    /// Do not kill the sandbox when ringfence dies [Sandbox::die_with_parent(false)].
    #[arg(long, help_heading = PROCESS)]
    no_die_with_parent: bool,

    /// Fail (exit 125) instead of running without a layer this host cannot provide: every
    /// requested layer becomes required [Sandbox::compat(Compat::Required)].
    #[arg(long, help_heading = PROCESS)]
    require: bool,

    /// After the run, write the outcome as one line of JSON to stderr, or to FILE: status,
    /// exit_code, timed_out, usage (wall/user/sys ms, max RSS) and the enforcement report; on
    /// failure {"error": {message, stage, errno, hint}}.
    #[arg(long, value_name = "FILE", num_args = 0..=1, help_heading = OUTPUT)]
    json: Option<Option<PathBuf>>,

    /// Print which layers are enforced to stderr once the command has started.
    #[arg(long, help_heading = OUTPUT)]
    report: bool,

    /// The command and its arguments, after `--`.
    #[arg(value_name = "COMMAND", last = true, required = true)]
    command: Vec<OsString>,
}

/// Where `--json` goes.
enum JsonSink {
    /// ringfence's stderr.
    Stderr,
    /// A file, created (or truncated) before the run so that a bad path fails early.
    File(PathBuf, File),
}

impl JsonSink {
    fn open(target: &Option<PathBuf>) -> Result<JsonSink, Failure> {
        Ok(match target {
            None => JsonSink::Stderr,
            Some(path) => {
                let file = File::create(path)
                    .with_context(|| format!("cannot create the JSON file {}", path.display()))?;
                JsonSink::File(path.clone(), file)
            }
        })
    }

    fn write(&mut self, doc: &serde_json::Value) -> Result<(), Failure> {
        let line = format!("{doc}\n");
        match self {
            JsonSink::Stderr => std::io::stderr()
                .write_all(line.as_bytes())
                .context("cannot write JSON to stderr")?,
            JsonSink::File(path, file) => file
                .write_all(line.as_bytes())
                .with_context(|| format!("cannot write the JSON file {}", path.display()))?,
        }
        Ok(())
    }
}

/// Run `ringfence run`; returns the exit status.
pub fn main(args: &RunArgs) -> i32 {
    let mut sink = match args.json.as_ref().map(JsonSink::open).transpose() {
        Ok(sink) => sink,
        Err(f) => {
            eprintln!("{f}");
            return f.exit_code();
        }
    };
    let (doc, code) = match run(args) {
        Ok(outcome) => {
            let code = exit_code(&outcome);
            (crate::json::outcome(&outcome, code), code)
        }
        Err(f) => {
            eprintln!("{f}");
            (crate::json::failure(&f), f.exit_code())
        }
    };
    if let Some(sink) = &mut sink {
        if let Err(f) = sink.write(&doc) {
            eprintln!("{f}");
            return EXIT_FAILURE;
        }
    }
    code
}

/// The CLI's exit status for a sandbox that ran.
fn exit_code(o: &Outcome) -> i32 {
    if o.timed_out {
        EXIT_TIMEOUT
    } else {
        o.shell_code()
    }
}

/// Spawn the sandbox, forward signals to it, wait for it.
fn run(args: &RunArgs) -> Result<Outcome, Failure> {
    let sandbox = sandbox(args)?;
    let command = command(args)?;
    // Before the spawn, while this is the only thread: see `signals`.
    signals::block().context("cannot block the signals to forward")?;
    let mut child = sandbox.spawn(&command)?;
    let pidfd = child
        .pidfd()
        .try_clone_to_owned()
        .context("cannot duplicate the sandbox's pidfd")?;
    signals::forward(pidfd, args.share_session).context("cannot start the signal forwarder")?;
    if args.report {
        eprint!("ringfence: enforcement report:\n{}", child.report());
    } else {
        for (layer, reason, hint) in child.report().not_enforced() {
            eprintln!("ringfence: warning: {layer} is not enforced: {reason}\nhint: {hint}");
        }
    }
    Ok(child.wait()?)
}

/// The sandbox the flags describe.
fn sandbox(a: &RunArgs) -> Result<Sandbox, Failure> {
    let mut sb = Sandbox::new();
    if a.require {
        sb = sb.compat(Compat::Required);
    }
    if a.unshare_all {
        sb = sb.unshare_all();
    }
    if a.map_root_user {
        sb = sb.user_ns(UserNs::root());
    } else if a.unshare_user {
        sb = sb.user_ns(UserNs::current());
    }
    if a.unshare_pid {
        sb = sb.pid_ns();
    }
    if a.unshare_ipc {
        sb = sb.ipc_ns();
    }
    if a.unshare_uts {
        sb = sb.uts_ns();
    }
    if a.unshare_cgroup {
        sb = sb.cgroup_ns();
    }
    if a.unshare_time {
        sb = sb.time_ns();
    }
    if a.unshare_mount {
        sb = sb.mount_ns();
    }
    if a.unshare_net {
        sb = sb.net(Net::New);
    }
    if let Some(net) = &a.net {
        let choice = parse::net(net).map_err(|e| anyhow!("invalid value for --net: {e}"))?;
        sb = sb.net(match choice {
            NetArg::Host => Net::Host,
            NetArg::None => Net::New,
            NetArg::Join(path) => Net::join(File::open(&path).with_context(|| {
                format!("cannot open the network namespace {}", path.display())
            })?),
        });
    }
    if let Some(name) = &a.hostname {
        sb = sb.hostname(name);
    }
    if a.monotonic_offset.is_some() || a.boottime_offset.is_some() {
        sb = sb.time_offsets(TimeOffsets {
            monotonic: a.monotonic_offset.unwrap_or_default(),
            boottime: a.boottime_offset.unwrap_or_default(),
        });
    }
    if let Some(uid) = a.uid {
        sb = sb.uid(uid);
    }
    if let Some(gid) = a.gid {
        sb = sb.gid(gid);
    }
    if !a.cap_add.is_empty() {
        sb = sb.capabilities(a.cap_add.iter().copied());
    }
    for r in &a.rlimit {
        sb = sb.rlimit(r.resource, r.soft, r.hard);
    }
    if let Some(mask) = a.umask {
        sb = sb.umask(mask);
    }
    if let Some(limit) = a.timeout {
        sb = sb.timeout(limit);
    }
    if a.share_session {
        sb = sb.new_session(false);
    }
    if a.no_die_with_parent {
        sb = sb.die_with_parent(false);
    }
    Ok(sb)
}

/// The command the flags describe. The environment is built in a fixed order — whole
/// environment, PATH, --env-inherit, --env, --setenv, --unsetenv — later steps winning.
fn command(a: &RunArgs) -> Result<Command, Failure> {
    let (program, rest) = a
        .command
        .split_first()
        .ok_or_else(|| anyhow!("no command given: put it after `--`"))?;
    let mut cmd = Command::new(program);
    cmd.args(rest);
    if a.inherit_env {
        cmd.inherit_env();
    }
    cmd.env_inherit("PATH");
    for key in &a.env_inherit {
        cmd.env_inherit(key);
    }
    for kv in &a.env {
        let bytes = kv.as_bytes();
        let eq = bytes
            .iter()
            .position(|&b| b == b'=')
            .filter(|&i| i > 0)
            .ok_or_else(|| {
                anyhow!(
                    "invalid value {:?} for --env: expected KEY=VALUE",
                    kv.to_string_lossy()
                )
            })?;
        let (key, value) = (
            OsStr::from_bytes(&bytes[..eq]),
            OsStr::from_bytes(&bytes[eq + 1..]),
        );
        cmd.env(key, value);
    }
    for pair in a.setenv.chunks_exact(2) {
        cmd.env(&pair[0], &pair[1]);
    }
    for key in &a.unsetenv {
        cmd.env_remove(key);
    }
    if let Some(dir) = &a.chdir {
        cmd.current_dir(dir);
    }
    Ok(cmd)
}
