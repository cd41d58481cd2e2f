//! `ringfence run`: flags → [`Sandbox`] and [`Command`] → spawn, forward signals, wait.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{ArgAction, ArgMatches};
use ringfence::{
    Capability, Command, Compat, Cpu, Landlock, Net, Outcome, Sandbox, TimeOffsets, UserNet, UserNs,
};

use crate::failure::{EXIT_FAILURE, EXIT_TIMEOUT, Failure};
use crate::parse::{self, NetArg, RlimitArg, ScopeArg, TmpfsArg};
use crate::signals;

const NS: &str = "Namespaces";
const IDENTITY: &str = "Identity and limits";
const ENV: &str = "Environment";
const PROCESS: &str = "Process";
const FS: &str = "Filesystem (applied in command-line order, like bwrap)";
const SECURITY: &str = "Seccomp and Landlock";
const RESOURCES: &str = "Resources (cgroups)";
const OUTPUT: &str = "Output";
const NAMED: &str = "Named sandboxes and pods";

/// Flags of `ringfence run`.
#[derive(Debug, clap::Args)]
#[command(
    allow_negative_numbers = true,
    about = "Run a command in a sandbox",
    long_about = "\
Run a command in a sandbox and exit with its status.

By default the command runs isolated (what --isolated describes: every namespace, a network \
with only lo, a new root with the host's system directories read-only, a private /tmp, its own \
/proc and a minimal /dev), under the default seccomp profile, with default limits that stop a \
fork bomb and a runaway allocation (at most 1024 processes, memory at most half of RAM up to \
4G; --pids and --memory change them, --no-default-limits removes them; --report shows them). \
Every sandbox also gets process hygiene: a new session without a controlling terminal, \
no_new_privs, every capability dropped, every file descriptor but stdin, stdout and stderr \
closed, an empty environment except PATH, and it is killed if ringfence dies. Other flags add \
to this; --no-isolation starts from process hygiene alone instead, each flag then adding one \
layer. A layer this host cannot make is held through a substitute where one exists (the \
filesystem view through Landlock without a mount namespace, the memory and process limits as \
resource limits without a cgroup); where none exists the run fails (exit 125) with the reason \
and the fix, unless --best-effort is given. One line on stderr names what was substituted or \
left out; --report lists every layer.

stdin, stdout and stderr are ringfence's own. SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and \
SIGUSR2 sent to ringfence are forwarded to the sandbox.

Put `--` before the command.",
    after_help = "\
Exit status:
  N        the command's exit status
  128+N    the command was killed by signal N; 137 (128+SIGKILL) also when the kernel's OOM
           killer ended it at its --memory limit (--json then says \"oom_killed\": true)
  124      the command ran past --timeout and was killed (like timeout(1))
  125      an error of ringfence itself: bad flags, setup failure (like env(1), docker run)
  126      the command was found but could not be executed
  127      the command was not found

Examples:
  ringfence run --unshare-all --hostname box -- sh -c 'hostname; id'
  ringfence run --net none --timeout 10s --rlimit as=1G --json out.json -- ./untrusted
  ringfence run --isolated --ro-bind ./src /src --tmpfs /out:256M --chdir /src -- make
  ringfence run --isolated --cpu 50% --memory 512M --pids 64 --seccomp strict -- ./plugin
  ringfence run --landlock-ro /usr --landlock-ro /lib --landlock-rw ./work -- ./tool"
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

    /// The network: `host` (the default), `none` (a new namespace with only `lo`), `user` (a
    /// private network with outbound access through pasta or slirp4netns; the host's loopback
    /// is not reachable), or the path of a network namespace to join, e.g. /proc/PID/ns/net
    /// or /run/netns/NAME [Sandbox::net(Net::Host | Net::New | Net::User | Net::join(file))].
    #[arg(long, value_name = "host|none|user|PATH", help_heading = NS)]
    net: Option<OsString>,

    /// With `--net user`: forward a host port into the sandbox (repeatable)
    /// [UserNet::forward].
    #[arg(short = 'p', long = "publish", value_name = "[HOST_IP:]HOST_PORT:PORT[/tcp|udp]", help_heading = NS)]
    publish: Vec<String>,

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
    #[arg(long, value_name = "UID", value_parser = parse::id, help_heading = IDENTITY)]
    uid: Option<u32>,

    /// Run the command as this gid, with no supplementary groups [Sandbox::gid].
    #[arg(long, value_name = "GID", value_parser = parse::id, help_heading = IDENTITY)]
    gid: Option<u32>,

    /// Run the command as this user, by name or uid, with its primary group or GROUP (a name
    /// or gid), like `docker run --user`; names are those of the host's /etc/passwd and
    /// /etc/group [Sandbox::uid, Sandbox::gid].
    #[arg(short = 'u', long, value_name = "USER[:GROUP]", conflicts_with_all = ["uid", "gid"], help_heading = IDENTITY)]
    user: Option<String>,

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
    #[arg(short = 'e', long, value_name = "KEY=VALUE", action = ArgAction::Append, help_heading = ENV)]
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

    /// The isolated preset, the default [Sandbox::isolated()]: every namespace (network with
    /// only `lo`, hostname `sandbox`), a new root with the host's /usr, /bin, /sbin, /lib* and
    /// the parts of /etc programs need (read-only), a private 64M /tmp, a /proc of its own, a
    /// minimal /dev. Other flags add to it. The working directory is / unless --chdir says
    /// otherwise. With --rootfs or --overlay the root is that instead of the host's system
    /// directories.
    #[arg(long, help_heading = FS)]
    isolated: bool,

    /// Start from process hygiene alone, without namespaces, filesystem view or default limits
    /// [Sandbox::new()]: each flag then adds one layer. The command sees the host's files,
    /// processes and network: for trusted commands only.
    #[arg(long, visible_alias = "bare", conflicts_with = "isolated", help_heading = FS)]
    no_isolation: bool,

    /// Bind the host path SRC read-only at DST [Sandbox::bind_ro]. By default it goes into the
    /// isolated root; with --no-isolation, filesystem flags apply in a new mount namespace over
    /// the host's filesystem made read-only, unless --host-system, --rootfs or --overlay give a
    /// new root.
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], action = ArgAction::Append, help_heading = FS)]
    ro_bind: Vec<PathBuf>,

    /// Like --ro-bind, but skipped when SRC does not exist [Sandbox::bind_ro_try].
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], action = ArgAction::Append, help_heading = FS)]
    ro_bind_try: Vec<PathBuf>,

    /// Bind the host path SRC read-write at DST (nosuid, nodev) [Sandbox::bind_rw].
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], action = ArgAction::Append, help_heading = FS)]
    bind: Vec<PathBuf>,

    /// Bind SRC read-write at DST with its device nodes usable (no nodev) [Sandbox::bind_dev].
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"], action = ArgAction::Append, help_heading = FS)]
    dev_bind: Vec<PathBuf>,

    /// A private tmpfs at DST of at most SIZE bytes (default 64M; K, M, G, T suffixes), e.g.
    /// `/tmp:1G` [Sandbox::mount_tmpfs_sized].
    #[arg(long, value_name = "DST[:SIZE]", value_parser = |s: &str| parse::tmpfs(OsStr::new(s)), action = ArgAction::Append, help_heading = FS)]
    tmpfs: Vec<TmpfsArg>,

    /// A /proc of the sandbox's own pid namespace, with the usual files masked and /proc/sys
    /// read-only; implies --unshare-pid [Sandbox::mount_proc].
    #[arg(long, help_heading = FS)]
    proc: bool,

    /// A minimal /dev: null, zero, full, random, urandom, tty, a private devpts and shm
    /// [Sandbox::mount_dev].
    #[arg(long, help_heading = FS)]
    dev: bool,

    /// Create a directory (and its parents) [Sandbox::mkdir].
    #[arg(long, value_name = "DST", action = ArgAction::Append, help_heading = FS)]
    dir: Vec<PathBuf>,

    /// Create the symlink LINK pointing to TARGET [Sandbox::symlink].
    #[arg(long, num_args = 2, value_names = ["TARGET", "LINK"], action = ArgAction::Append, help_heading = FS)]
    symlink: Vec<PathBuf>,

    /// Create the file DST holding CONTENT (mode 0644; keep it small) [Sandbox::write_file].
    #[arg(long, num_args = 2, value_names = ["DST", "CONTENT"], allow_hyphen_values = true, action = ArgAction::Append, help_heading = FS)]
    write_file: Vec<OsString>,

    /// The host's system directories read-only, as --isolated has them: /usr, /bin, /sbin,
    /// /lib*, and the parts of /etc dynamically linked programs need [Sandbox::host_system_ro].
    #[arg(long, help_heading = FS)]
    host_system: bool,

    /// Use the host directory DIR as the root, read-only [Sandbox::rootfs]. Not ordered: the
    /// other filesystem flags apply on top of it.
    #[arg(long, value_name = "DIR", conflicts_with = "overlay", help_heading = FS)]
    rootfs: Option<PathBuf>,

    /// Use overlay layers as the root, as container images run: the `:`-separated LOWERS are
    /// read-only (the first is the top one), every change lands in UPPER, WORK is overlay's
    /// scratch directory on the same filesystem as UPPER [Sandbox::rootfs_layers]. Not ordered,
    /// like --rootfs.
    #[arg(long, num_args = 3, value_names = ["LOWER[:LOWER...]", "UPPER", "WORK"], help_heading = FS)]
    overlay: Option<Vec<PathBuf>>,

    /// The seccomp profile: `default` (the default: closes what namespaces leave open, e.g.
    /// clock setting, keyring, modules, mounts, new namespaces, ptrace), `strict` (a short
    /// allow-list for computing on stdin, stdout and files), `unconfined` (no filter at all),
    /// or the path of an OCI / Docker JSON profile (./default for a file called `default`)
    /// [Sandbox::seccomp(Profile::default_container() | strict() | unconfined() |
    /// from_oci_json(..))]. See `ringfence profile show`.
    #[arg(long, value_name = "default|strict|unconfined|PATH", help_heading = SECURITY)]
    seccomp: Option<OsString>,

    /// Do not report the calls the seccomp filter refuses. By default each refused syscall is
    /// printed once on stderr after the run, with its errno and count, and listed under
    /// "violations" in --json (refusals become notifications a supervisor answers with the same
    /// errno; allowed calls cost nothing more) [Sandbox::report_refusals].
    #[arg(long = "no-report-refusals", action = ArgAction::SetFalse, help_heading = SECURITY)]
    report_refusals: bool,

    /// Refuse a --seccomp JSON profile naming a syscall no architecture has, instead of
    /// skipping the name with a warning as runc and crun do.
    #[arg(long, help_heading = SECURITY)]
    seccomp_strict: bool,

    /// Landlock: allow reading and executing beneath PATH; repeatable. Any --landlock-ro or
    /// --landlock-rw denies every other file access [Landlock::read_only]. Rules follow the
    /// host's inodes: a host directory bound into the sandbox is covered, a tmpfs, proc or dev
    /// mounted inside is not (so it is denied).
    #[arg(long, value_name = "PATH", action = ArgAction::Append, help_heading = SECURITY)]
    landlock_ro: Vec<PathBuf>,

    /// Landlock: allow every file access beneath PATH; repeatable [Landlock::read_write].
    #[arg(long, value_name = "PATH", action = ArgAction::Append, help_heading = SECURITY)]
    landlock_rw: Vec<PathBuf>,

    /// Landlock: allow TCP connections to PORT; repeatable. Any TCP rule denies every other
    /// TCP connect and bind (Linux >= 6.7) [Landlock::connect_tcp].
    #[arg(long, value_name = "PORT", value_parser = parse::port, action = ArgAction::Append, help_heading = SECURITY)]
    landlock_connect: Vec<u16>,

    /// Landlock: allow binding TCP sockets to PORT; repeatable [Landlock::bind_tcp].
    #[arg(long, value_name = "PORT", value_parser = parse::port, action = ArgAction::Append, help_heading = SECURITY)]
    landlock_bind: Vec<u16>,

    /// Landlock: deny signals to processes outside the sandbox (`signals`), or connections to
    /// abstract unix sockets outside it (`abstract-unix`); repeatable (Linux >= 6.12)
    /// [Landlock::scope_signals | scope_abstract_unix].
    #[arg(long, value_name = "SCOPE", value_enum, action = ArgAction::Append, help_heading = SECURITY)]
    landlock_scope: Vec<ScopeArg>,

    /// CPU bandwidth: a percentage of one CPU (`20%`; `250%` is two and a half CPUs), a number
    /// of CPUs (`0.5`), or QUOTA/PERIOD (`50ms/100ms`) [Sandbox::cpu_quota(Cpu)].
    #[arg(long, value_name = "LIMIT", value_parser = parse::cpu, allow_hyphen_values = true, help_heading = RESOURCES)]
    cpu: Option<Cpu>,

    /// Relative CPU weight under contention, 1 to 10000 (default 100) [Sandbox::cpu_weight].
    #[arg(long, value_name = "N", value_parser = parse::weight, help_heading = RESOURCES)]
    cpu_weight: Option<u32>,

    /// Memory limit, e.g. `256M` (K, M, G, T suffixes; at least 1M). A sandbox that needs more
    /// is OOM-killed: it exits with 137 (128 + SIGKILL) and --json says `"oom_killed": true`
    /// [Sandbox::memory_limit].
    #[arg(long, value_name = "SIZE", value_parser = parse::size, allow_hyphen_values = true, help_heading = RESOURCES)]
    memory: Option<u64>,

    /// Swap allowed on top of --memory (which it needs); `0` forbids swapping
    /// [Sandbox::memory_swap].
    #[arg(long, value_name = "0|SIZE", value_parser = parse::size, allow_hyphen_values = true, help_heading = RESOURCES)]
    swap: Option<u64>,

    /// Most processes and threads at once, e.g. 64 (a fork bomb stops there; with a pid
    /// namespace the init counts too) [Sandbox::pids_limit].
    #[arg(long, value_name = "N", value_parser = parse::count, help_heading = RESOURCES)]
    pids: Option<u64>,

    /// Run on these CPUs only, as a CPU list such as `0-1,3` [Sandbox::cpuset].
    #[arg(long, value_name = "CPUS", help_heading = RESOURCES)]
    cpuset: Option<String>,

    /// Create the sandbox's cgroup below this cgroup directory instead of ringfence's own,
    /// e.g. /sys/fs/cgroup/ci.slice [Sandbox::cgroup_parent].
    #[arg(long, value_name = "DIR", help_heading = RESOURCES)]
    cgroup_parent: Option<PathBuf>,

    /// Without the default limits (at most 1024 processes; memory at most half of RAM, up to
    /// 4G). Without a writable cgroup they are held through resource limits (RLIMIT_NPROC in
    /// the sandbox's own user namespace, RLIMIT_AS per process), as --pids and --memory are.
    #[arg(long, help_heading = RESOURCES)]
    no_default_limits: bool,

    /// The command's working directory inside the sandbox (by default ringfence's, or / with
    /// a filesystem flag) [Command::current_dir].
    #[arg(long, value_name = "DIR", help_heading = PROCESS)]
    chdir: Option<PathBuf>,

    /// Kill the whole sandbox after this long and exit with 124: a number with an optional
    /// unit ms, s, m, h or d (a bare number is seconds), e.g. 500ms, 10s, 2m [Sandbox::timeout].
    #[arg(long, value_name = "DURATION", value_parser = parse::timeout, allow_hyphen_values = true, help_heading = PROCESS)]
    timeout: Option<Duration>,

    /// Run the command N times in one warm sandbox — namespaces, filesystem and cgroup made
    /// once, each run started by a resident process inside — then print runs/s and how the
    /// runs ended. The runs' stdin, stdout and stderr are /dev/null; --timeout applies to each
    /// run; files written to a tmpfs stay for the next run. Exits with 0 if every run did, else
    /// with the status of the last run that did not [Sandbox::warm].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), conflicts_with_all = ["json", "name", "detach", "pod"], help_heading = PROCESS)]
    repeat: Option<u64>,

    /// Keep ringfence's session and controlling terminal [Sandbox::new_session(false)].
    /// WARNING: the command can then inject input into your terminal (TIOCSTI); use it only for
    /// trusted interactive programs.
    #[arg(long, help_heading = PROCESS, conflicts_with_all = ["tty", "interactive"])]
    share_session: bool,

    /// Give the command a pseudo-terminal that ringfence owns as its stdin, stdout, stderr and
    /// controlling terminal, with your terminal's window size and job control (`-it` for a
    /// shell, like `docker run -it`). ringfence relays it to its own stdio, your terminal in
    /// raw mode meanwhile, and closes it when the sandbox ends.
    #[arg(short = 't', long, help_heading = PROCESS, conflicts_with_all = ["detach", "repeat"])]
    tty: bool,

    /// Keep stdin open when it is a terminal: without -t the command then reads it through a
    /// pipe. Without -i or -t a terminal stdin is /dev/null for the command, and a terminal
    /// stdout or stderr reaches it as a pipe: your terminal itself never reaches the sandbox
    /// (see --share-session). Redirected stdin, stdout and stderr are passed as they are.
    #[arg(short = 'i', long, help_heading = PROCESS, conflicts_with_all = ["detach", "repeat"])]
    interactive: bool,

    /// Do not kill the sandbox when ringfence dies [Sandbox::die_with_parent(false)].
    #[arg(long, help_heading = PROCESS)]
    no_die_with_parent: bool,

    /// Run without the layers this host can neither make nor substitute (one line on stderr
    /// names them), instead of failing [Sandbox::compat(Compat::BestEffort)].
    #[arg(long, help_heading = PROCESS)]
    best_effort: bool,

    /// After the run, write the outcome as one line of JSON to stderr, or to FILE: status,
    /// exit_code, timed_out, oom_killed, usage (wall/user/sys ms, max RSS; with cgroup limits
    /// cgroup_cpu_ms, peak_memory_bytes, pids_peak, else null) and the enforcement report; on
    /// failure {"error": {message, stage, errno, hint}}.
    #[arg(long, value_name = "FILE", num_args = 0..=1, help_heading = OUTPUT)]
    json: Option<Option<PathBuf>>,

    /// Print which layers are enforced to stderr once the command has started.
    #[arg(long, help_heading = OUTPUT)]
    report: bool,

    /// Name the sandbox, so that `ringfence ps` lists it and `ringfence exec NAME` and
    /// `ringfence kill NAME` reach it while it runs.
    #[arg(long, value_name = "NAME", help_heading = NAMED)]
    name: Option<String>,

    /// Start the sandbox in the background and print its name (given with --name, or
    /// generated): a monitor process keeps it, with its stdio on /dev/null, until it ends or
    /// `ringfence kill NAME`.
    #[arg(short = 'd', long, help_heading = NAMED)]
    detach: bool,

    /// Run as a member of the pod NAME (`ringfence pod create NAME`): its network, IPC and
    /// UTS namespaces, its cgroup [Sandbox::pod_ref].
    #[arg(long, value_name = "NAME", help_heading = NAMED, conflicts_with_all = ["net", "unshare_net", "hostname", "unshare_uts", "unshare_ipc"])]
    pod: Option<String>,

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

/// `ringfence learn`: the flags of `run`, and where to write the profile.
#[derive(Debug, clap::Args)]
pub struct LearnArgs {
    /// Write the learned profile (OCI JSON) to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Everything `ringfence run` takes (`--seccomp` is replaced by the learning profile).
    #[command(flatten)]
    pub run: RunArgs,
}

/// Run `ringfence learn`; returns the program's exit status (or 125).
pub fn learn_main(args: &LearnArgs, matches: &ArgMatches) -> i32 {
    let learned = sandbox(&args.run, matches).and_then(|sb| {
        let cmd = command(&args.run)?;
        Ok(sb.learn(&cmd)?)
    });
    let learned = match learned {
        Ok(l) => l,
        Err(f) => {
            eprintln!("{f}");
            return f.exit_code();
        }
    };
    use std::io::Write;
    let _ = std::io::stderr().write_all(&learned.outcome.stderr);
    let json = match learned.profile.to_oci_json() {
        Ok(j) => j,
        Err(e) => {
            eprintln!("ringfence: cannot export the learned profile: {e}");
            return EXIT_FAILURE;
        }
    };
    let written = match &args.output {
        Some(path) => {
            std::fs::write(path, format!("{json}\n")).map_err(|e| (path.display().to_string(), e))
        }
        None => {
            let _ = std::io::stdout().write_all(&learned.outcome.stdout);
            println!("{json}");
            Ok(())
        }
    };
    if let Err((path, e)) = written {
        eprintln!("ringfence: cannot write {path}: {e}");
        return EXIT_FAILURE;
    }
    if args.output.is_some() {
        let _ = std::io::stdout().write_all(&learned.outcome.stdout);
    }
    eprintln!(
        "ringfence: learned {} rules from the run ({} syscalls)",
        learned.profile.rules().len(),
        learned
            .profile
            .rules()
            .iter()
            .map(|r| r.syscall().nr())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    exit_code(&learned.outcome)
}

/// Run `ringfence run`; returns the exit status. `matches` are the parsed flags of `run`,
/// which know the order in which the filesystem flags were given.
pub fn main(args: &RunArgs, matches: &ArgMatches) -> i32 {
    if args.detach {
        return run_detached(args, matches);
    }
    if let Some(n) = args.repeat {
        return repeat(args, matches, n).unwrap_or_else(|f| {
            eprintln!("{f}");
            f.exit_code()
        });
    }
    let mut sink = match args.json.as_ref().map(JsonSink::open).transpose() {
        Ok(sink) => sink,
        Err(f) => {
            eprintln!("{f}");
            return f.exit_code();
        }
    };
    let (doc, code) = match run(args, matches) {
        Ok(outcome) => {
            for line in crate::profile::refusals(&outcome.violations) {
                eprintln!("ringfence: {line}");
            }
            let code = exit_code(&outcome);
            for line in ending(args, &outcome) {
                eprintln!("ringfence: {line}");
            }
            let mut doc = crate::json::outcome(&outcome, code);
            doc["limits"] = limits_json(args);
            (doc, code)
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

/// `run --repeat N`: N runs in one warm sandbox; prints runs/s and the outcomes.
fn repeat(args: &RunArgs, matches: &ArgMatches, n: u64) -> Result<i32, Failure> {
    let sandbox = sandbox(args, matches)?;
    let mut cmd = command(args)?;
    cmd.stdin(ringfence::Stdio::null())
        .stdout(ringfence::Stdio::null())
        .stderr(ringfence::Stdio::null());
    let mut warm = sandbox.warm()?;
    if let Some(summary) = warm.report().summary() {
        eprintln!("ringfence: {summary}");
    }
    let mut outcomes: std::collections::BTreeMap<String, u64> = Default::default();
    let mut walls = Vec::with_capacity(n.min(1 << 20) as usize);
    let mut code = 0;
    let started = std::time::Instant::now();
    for _ in 0..n {
        let outcome = warm.output(&cmd)?;
        let this = exit_code(&outcome);
        if this != 0 {
            code = this;
        }
        let what = match (outcome.timed_out, outcome.status.code()) {
            (true, _) => "timed out".to_owned(),
            (false, Some(c)) => format!("exit {c}"),
            (false, None) => {
                use std::os::unix::process::ExitStatusExt;
                let sig = outcome.status.signal().unwrap_or(0);
                format!("signal {sig} ({})", signal_name(sig))
            }
        };
        *outcomes.entry(what).or_default() += 1;
        walls.push(outcome.usage.wall);
    }
    let elapsed = started.elapsed();
    walls.sort();
    let pct = |p: usize| walls[(walls.len() - 1) * p / 100].as_secs_f64() * 1e6;
    println!(
        "{n} runs in {:.3} s: {:.0} runs/s; run time p50 {:.0} µs, p99 {:.0} µs",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        pct(50),
        pct(99)
    );
    for (what, count) in &outcomes {
        println!("{count:>10}  {what}");
    }
    Ok(code)
}

/// The usual name of a signal that ends programs.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => "other",
    }
}

/// One line each for the ways a sandbox can be ended by ringfence or the kernel rather than
/// by the program: a timeout, the OOM killer, a seccomp kill. Empty when the program ended by
/// itself.
fn ending(args: &RunArgs, o: &Outcome) -> Vec<String> {
    use std::os::unix::process::ExitStatusExt;
    let mut lines = Vec::new();
    if o.timed_out {
        let limit = args
            .timeout
            .map_or_else(String::new, |d| format!(" of {}", human_duration(d)));
        lines.push(format!(
            "the sandbox ran past its timeout{limit} and was killed (exit {EXIT_TIMEOUT})"
        ));
    } else if o.oom_killed {
        let limit = args
            .memory
            .or(default_limits(args).memory)
            .map_or_else(String::new, |m| format!(" of {}", human_size(m)));
        lines.push(format!(
            "the sandbox was killed by the kernel's OOM killer at its memory limit{limit} (exit {}); raise it with --memory",
            128 + libc::SIGKILL
        ));
    } else if o.status.signal() == Some(libc::SIGSYS) {
        lines.push(format!(
            "the program was killed by seccomp (SIGSYS): it made a system call its profile forbids (exit {}); `ringfence learn` shows the calls a program makes",
            128 + libc::SIGSYS
        ));
    }
    lines
}

/// A duration as the flags write it (`500ms`, `10s`, `1.5s`).
fn human_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// A byte size as the flags write it (`64M`, `4G`, `1000`).
fn human_size(b: u64) -> String {
    if b != 0 && b % (1 << 30) == 0 {
        format!("{}G", b >> 30)
    } else if b != 0 && b % (1 << 20) == 0 {
        format!("{}M", b >> 20)
    } else if b != 0 && b % (1 << 10) == 0 {
        format!("{}K", b >> 10)
    } else {
        b.to_string()
    }
}

/// The limits of the run for --json: `{"memory_bytes", "pids", "defaults": [...]}` (how they
/// are held is in the report's `cgroup` entry).
fn limits_json(a: &RunArgs) -> serde_json::Value {
    let d = default_limits(a);
    let mut defaults = Vec::new();
    if d.memory.is_some() {
        defaults.push("memory");
    }
    if d.pids.is_some() {
        defaults.push("pids");
    }
    serde_json::json!({
        "memory_bytes": a.memory.or(d.memory),
        "pids": a.pids.or(d.pids),
        "defaults": defaults,
    })
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
fn run(args: &RunArgs, matches: &ArgMatches) -> Result<Outcome, Failure> {
    let sandbox = sandbox(args, matches)?;
    let mut command = command(args)?;
    let record = match &args.name {
        Some(name) => Some(crate::named::sandbox_record(
            name,
            &stored_args(args),
            &args.command,
        )?),
        None => None,
    };
    // Before the spawn and the stdio relay, while this is the only thread: see `signals`.
    signals::block().context("cannot block the signals to forward")?;
    crate::tty::block_winch();
    let relay = attach_stdio(&mut command, args.tty, args.interactive, args.share_session)?;
    let spawned = sandbox
        .spawn(&command)
        .with_context(|| format!("cannot run {}", args.command[0].to_string_lossy()));
    // The command holds the sandbox's side of the pipes or the terminal: closed here, so that
    // the relay sees the end when the sandbox's processes have closed theirs.
    drop(command);
    let mut child = spawned?;
    let pidfd = child
        .pidfd()
        .try_clone_to_owned()
        .context("cannot duplicate the sandbox's pidfd")?;
    signals::forward(pidfd, args.share_session).context("cannot start the signal forwarder")?;
    if let Some(r) = &record {
        r.set_pid(child.id())?;
    }
    report_layers(args, child.report());
    let outcome = child.wait();
    if let Some(relay) = relay {
        relay.finish(RELAY_GRACE);
    }
    Ok(outcome?)
}

/// How long the relay waits for the sandbox's last output once it has ended.
pub const RELAY_GRACE: Duration = Duration::from_millis(250);

/// Give `cmd` its stdio by the terminal rule (see [`crate::tty`]): a pseudo-terminal with
/// `tty`; else pipes for the streams of ringfence's that are terminals (stdin only with
/// `interactive`); the streams as they are with `share_session` (the caller asked for its
/// terminal to be shared). Returns the relay that copies, to finish once the sandbox ended.
pub fn attach_stdio(
    cmd: &mut Command,
    tty: bool,
    interactive: bool,
    share_session: bool,
) -> Result<Option<crate::tty::Relay>, Failure> {
    if share_session {
        return Ok(None);
    }
    let ([stdin, stdout, stderr], relay) = crate::tty::streams(tty, interactive)
        .context("cannot set up the terminal or the pipes for the sandbox's stdio")?;
    cmd.stdin(stdin).stdout(stdout).stderr(stderr);
    if tty {
        cmd.controlling_terminal(true);
    }
    Ok(relay)
}

/// What `run` says on stderr once the sandbox has started: the whole report and the limits
/// with --report, else one line naming what was substituted or left out, if anything.
fn report_layers(args: &RunArgs, report: &ringfence::Report) {
    if args.report {
        eprint!("ringfence: enforcement report:\n{report}");
        if let Some(line) = limits_line(args, report) {
            eprintln!("ringfence: {line}");
        }
    } else if let Some(summary) = report.summary() {
        eprintln!("ringfence: {summary} (--report for details)");
    }
}

/// `run --detach`: a monitor keeps the sandbox; this process prints its name and exits.
fn run_detached(args: &RunArgs, matches: &ArgMatches) -> i32 {
    let prepared = sandbox(args, matches).and_then(|sb| Ok((sb, command(args)?)));
    let (sandbox, mut command) = match prepared {
        Ok(p) => p,
        Err(f) => {
            eprintln!("{f}");
            return f.exit_code();
        }
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("rf-{}", std::process::id()));
    if let Err(f) = crate::named::check_name(&name) {
        eprintln!("{f}");
        return f.exit_code();
    }
    let stored = stored_args(args);
    let argv = args.command.clone();
    crate::named::detach(move |started| {
        let record = crate::named::sandbox_record(&name, &stored, &argv)?;
        // The output goes to the sandbox's log (`ringfence logs NAME`).
        let log = record.log_file(&name)?;
        let log2 = log.try_clone().context("cannot duplicate the log file")?;
        command
            .stdin(ringfence::Stdio::Null)
            .stdout(log)
            .stderr(log2);
        let mut child = sandbox.spawn(&command)?;
        drop(command);
        record.set_pid(child.id())?;
        started(&name);
        let outcome = child.wait()?;
        let code = exit_code(&outcome);
        record.finish(code);
        Ok(code)
    })
}

/// The flags `exec` needs to rebuild this sandbox's restrictions, and nothing else: no
/// environment (it may hold secrets), no file contents, no namespaces or mounts (`exec` joins
/// the running sandbox's). Built from the parsed values, with paths made absolute.
fn stored_args(a: &RunArgs) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    let mut flag = |name: &str, value: Option<OsString>| {
        out.push(name.into());
        out.extend(value);
    };
    if a.no_isolation {
        flag("--no-isolation", None);
    }
    if a.no_default_limits {
        flag("--no-default-limits", None);
    }
    if a.map_root_user {
        flag("--map-root-user", None);
    }
    let (uid, gid) = identity(a).unwrap_or((a.uid, a.gid));
    if let Some(uid) = uid {
        flag("--uid", Some(uid.to_string().into()));
    }
    if let Some(gid) = gid {
        flag("--gid", Some(gid.to_string().into()));
    }
    for cap in &a.cap_add {
        flag("--cap-add", Some(cap.to_string().into()));
    }
    for r in &a.rlimit {
        let v = |n: u64| {
            if n == u64::MAX {
                "unlimited".to_owned()
            } else {
                n.to_string()
            }
        };
        flag(
            "--rlimit",
            Some(format!("{}={}:{}", r.resource.name(), v(r.soft), v(r.hard)).into()),
        );
    }
    if let Some(mask) = a.umask {
        flag("--umask", Some(format!("{mask:03o}").into()));
    }
    if let Some(spec) = &a.seccomp {
        let spec = match spec.to_str() {
            Some("default" | "strict" | "unconfined") => spec.clone(),
            _ => absolute(Path::new(spec)).into_os_string(),
        };
        flag("--seccomp", Some(spec));
    }
    for p in &a.landlock_ro {
        flag("--landlock-ro", Some(absolute(p).into_os_string()));
    }
    for p in &a.landlock_rw {
        flag("--landlock-rw", Some(absolute(p).into_os_string()));
    }
    for port in &a.landlock_connect {
        flag("--landlock-connect", Some(port.to_string().into()));
    }
    for port in &a.landlock_bind {
        flag("--landlock-bind", Some(port.to_string().into()));
    }
    for scope in &a.landlock_scope {
        let name = match scope {
            ScopeArg::Signals => "signals",
            ScopeArg::AbstractUnix => "abstract-unix",
        };
        flag("--landlock-scope", Some(name.into()));
    }
    if a.share_session {
        flag("--share-session", None);
    }
    if a.no_die_with_parent {
        flag("--no-die-with-parent", None);
    }
    if a.best_effort {
        // What the sandbox ran without, an exec into it runs without too.
        flag("--best-effort", None);
    }
    out.push("--".into());
    out.push("true".into());
    out
}

/// `p` relative to the working directory made absolute (`.` components dropped; symlinks and
/// `..` left for the kernel to resolve).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// What a sandbox's recorded flags allow, for `exec` to compare with the running sandbox.
pub struct Allowed {
    /// No seccomp filter at all.
    pub unconfined: bool,
    /// The capabilities kept, as a bit mask of capability numbers.
    pub caps: u64,
    /// The uid asked for (inside the sandbox's user namespace, if any).
    pub uid: Option<u32>,
}

/// The sandbox that `run` flags (as stored by `run --name`) describe, and what they allow.
pub fn sandbox_from_args(args: &[OsString]) -> Result<(Sandbox, Allowed), Failure> {
    use clap::{Args, FromArgMatches};
    let cmd = RunArgs::augment_args(clap::Command::new("run").no_binary_name(true));
    let m = cmd
        .try_get_matches_from(args)
        .context("the sandbox's recorded flags no longer parse")?;
    let a = RunArgs::from_arg_matches(&m).context("the sandbox's recorded flags")?;
    let allowed = Allowed {
        unconfined: a.seccomp.as_ref().is_some_and(|s| s == "unconfined"),
        caps: a.cap_add.iter().fold(0, |mask, c| mask | 1u64 << c.index()),
        uid: identity(&a)?.0,
    };
    Ok((sandbox(&a, &m)?, allowed))
}

/// The uid and gid the flags ask for: --uid and --gid, or --user resolved on the host.
fn identity(a: &RunArgs) -> Result<(Option<u32>, Option<u32>), Failure> {
    let Some(spec) = &a.user else {
        return Ok((a.uid, a.gid));
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec.as_str(), None),
    };
    let bad =
        |what: &str| -> Failure { anyhow!("invalid value {spec:?} for --user: {what}").into() };
    let (uid, primary) = if let Ok(uid) = parse::id(user) {
        let gid = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.gid.as_raw());
        (uid, gid)
    } else {
        let u = nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .ok_or_else(|| bad(&format!("no user named {user:?} in /etc/passwd")))?;
        (u.uid.as_raw(), Some(u.gid.as_raw()))
    };
    let gid = match group {
        None => primary.unwrap_or(uid),
        Some(g) => match parse::id(g) {
            Ok(gid) => gid,
            Err(_) => nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
                .ok_or_else(|| bad(&format!("no group named {g:?} in /etc/group")))?,
        },
    };
    Ok((Some(uid), Some(gid)))
}

/// The sandbox the flags describe.
fn sandbox(a: &RunArgs, m: &ArgMatches) -> Result<Sandbox, Failure> {
    let isolated = !a.no_isolation;
    let mut sb = Sandbox::new();
    if a.best_effort {
        sb = sb.compat(Compat::BestEffort);
    }
    if isolated && (a.rootfs.is_some() || a.overlay.is_some()) {
        // The preset without the host's system directories: the image is the root.
        sb = sb
            .unshare_all()
            .hostname("sandbox")
            .mount_tmpfs("/tmp")
            .mount_proc()
            .mount_dev();
    } else if isolated {
        sb = sb.isolate();
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
            NetArg::User => {
                let mut u = UserNet::new();
                for p in &a.publish {
                    u = u.forward(
                        p.parse()
                            .map_err(|e| anyhow!("invalid value for -p: {e}"))?,
                    );
                }
                Net::User(u)
            }
            NetArg::Join(path) => Net::join(File::open(&path).with_context(|| {
                format!("cannot open the network namespace {}", path.display())
            })?),
        });
    }
    if !a.publish.is_empty()
        && !a
            .net
            .as_deref()
            .is_some_and(|n| matches!(parse::net(n), Ok(NetArg::User)))
    {
        return Err(anyhow!("-p/--publish needs --net user").into());
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
    let (uid, gid) = identity(a)?;
    if let Some(uid) = uid {
        sb = sb.uid(uid);
    }
    if let Some(gid) = gid {
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
    sb = filesystem(sb, a, m)?;
    if let Some(spec) = &a.seccomp {
        sb = sb.seccomp(crate::profile::load(spec, a.seccomp_strict)?);
    }
    sb = sb.report_refusals(a.report_refusals);
    if let Some(rules) = landlock(a)? {
        sb = sb.landlock(rules);
    }
    let sb = cgroups(sb, a);
    Ok(match &a.pod {
        Some(name) => sb.pod_ref(&crate::named::pod_ref(name)?),
        None => sb,
    })
}

/// One filesystem flag, to be applied in command-line order.
#[derive(Debug)]
enum FsArg<'a> {
    RoBind(&'a Path, &'a Path),
    RoBindTry(&'a Path, &'a Path),
    Bind(&'a Path, &'a Path),
    DevBind(&'a Path, &'a Path),
    Tmpfs(&'a TmpfsArg),
    Proc,
    Dev,
    Dir(&'a Path),
    Symlink(&'a Path, &'a Path),
    WriteFile(&'a Path, &'a OsStr),
    HostSystem,
}

/// The position on the command line of each occurrence of the flag `id` that takes `per`
/// values (the position of its first value; of the flag itself for a flag without values).
fn positions(m: &ArgMatches, id: &str, per: usize) -> Vec<usize> {
    m.indices_of(id)
        .map(|i| i.step_by(per.max(1)).collect())
        .unwrap_or_default()
}

/// The filesystem flags in the order they were given. clap groups values by flag, so the
/// order comes from the positions clap recorded for them.
fn fs_args<'a>(a: &'a RunArgs, m: &ArgMatches) -> Vec<FsArg<'a>> {
    let mut ops: Vec<(usize, FsArg<'a>)> = Vec::new();
    let mut pairs = |id: &str, values: &'a [PathBuf], make: fn(&'a Path, &'a Path) -> FsArg<'a>| {
        let at = positions(m, id, 2);
        for (i, pair) in at.into_iter().zip(values.chunks_exact(2)) {
            ops.push((i, make(&pair[0], &pair[1])));
        }
    };
    pairs("ro_bind", &a.ro_bind, FsArg::RoBind);
    pairs("ro_bind_try", &a.ro_bind_try, FsArg::RoBindTry);
    pairs("bind", &a.bind, FsArg::Bind);
    pairs("dev_bind", &a.dev_bind, FsArg::DevBind);
    pairs("symlink", &a.symlink, FsArg::Symlink);
    for (i, t) in positions(m, "tmpfs", 1).into_iter().zip(&a.tmpfs) {
        ops.push((i, FsArg::Tmpfs(t)));
    }
    for (i, d) in positions(m, "dir", 1).into_iter().zip(&a.dir) {
        ops.push((i, FsArg::Dir(d)));
    }
    for (i, pair) in positions(m, "write_file", 2)
        .into_iter()
        .zip(a.write_file.chunks_exact(2))
    {
        ops.push((i, FsArg::WriteFile(Path::new(&pair[0]), &pair[1])));
    }
    for (id, on, op) in [
        ("proc", a.proc, FsArg::Proc),
        ("dev", a.dev, FsArg::Dev),
        ("host_system", a.host_system, FsArg::HostSystem),
    ] {
        if on {
            ops.push((m.index_of(id).unwrap_or(usize::MAX), op));
        }
    }
    ops.sort_by_key(|(i, _)| *i);
    ops.into_iter().map(|(_, op)| op).collect()
}

/// Add the filesystem flags: the root (--rootfs, --overlay), then the steps in command-line
/// order.
fn filesystem(mut sb: Sandbox, a: &RunArgs, m: &ArgMatches) -> Result<Sandbox, Failure> {
    // Host paths may be relative to the working directory, as with bwrap.
    let abs = |p: &Path| absolute(p);
    if let Some(dir) = &a.rootfs {
        sb = sb.rootfs(abs(dir));
    }
    if let Some(layers) = &a.overlay {
        let [lowers, upper, work] = layers.as_slice() else {
            return Err(
                anyhow!("--overlay takes three values: LOWER[:LOWER...] UPPER WORK").into(),
            );
        };
        let lowers: Vec<PathBuf> = lowers
            .as_os_str()
            .as_bytes()
            .split(|&b| b == b':')
            .map(|l| abs(Path::new(OsStr::from_bytes(l))))
            .collect();
        if lowers.iter().any(|l| l.as_os_str().is_empty()) {
            return Err(anyhow!(
                "invalid --overlay lower layers {:?}: expected LOWER[:LOWER...] without empty entries",
                layers[0].display().to_string()
            )
            .into());
        }
        sb = sb.rootfs_layers(lowers, abs(upper), abs(work));
    }
    for op in fs_args(a, m) {
        sb = match op {
            FsArg::RoBind(src, dst) => sb.bind_ro(abs(src), dst),
            FsArg::RoBindTry(src, dst) => sb.bind_ro_try(abs(src), dst),
            FsArg::Bind(src, dst) => sb.bind_rw(abs(src), dst),
            FsArg::DevBind(src, dst) => sb.bind_dev(abs(src), dst),
            FsArg::Tmpfs(t) => sb.mount_tmpfs_sized(&t.dst, t.size),
            FsArg::Proc => sb.mount_proc(),
            FsArg::Dev => sb.mount_dev(),
            FsArg::Dir(d) => sb.mkdir(d),
            FsArg::Symlink(target, link) => sb.symlink(target, link),
            FsArg::WriteFile(dst, content) => sb.write_file(dst, content.as_bytes()),
            FsArg::HostSystem => sb.host_system_ro(),
        };
    }
    Ok(sb)
}

/// The Landlock rules the flags describe, if any.
fn landlock(a: &RunArgs) -> Result<Option<Landlock>, Failure> {
    let paths = !a.landlock_ro.is_empty() || !a.landlock_rw.is_empty();
    let others = !a.landlock_connect.is_empty()
        || !a.landlock_bind.is_empty()
        || !a.landlock_scope.is_empty();
    if !paths && !others {
        return Ok(None);
    }
    if !paths {
        // Landlock rules always restrict file access: without a path rule the command could
        // not even be executed.
        return Err(anyhow!(
            "Landlock denies every file access not allowed by --landlock-ro or --landlock-rw, and none was given: add the paths the command needs (e.g. --landlock-ro /usr --landlock-ro /lib), or --landlock-rw / to leave the host's files unrestricted"
        )
        .into());
    }
    let mut rules = Landlock::new()
        .read_only(a.landlock_ro.iter().map(|p| absolute(p)))
        .read_write(a.landlock_rw.iter().map(|p| absolute(p)));
    for port in &a.landlock_connect {
        rules = rules.connect_tcp(*port);
    }
    for port in &a.landlock_bind {
        rules = rules.bind_tcp(*port);
    }
    for scope in &a.landlock_scope {
        rules = match scope {
            ScopeArg::Signals => rules.scope_signals(),
            ScopeArg::AbstractUnix => rules.scope_abstract_unix(),
        };
    }
    Ok(Some(rules))
}

/// The most processes and threads of a sandbox by default.
pub const DEFAULT_PIDS: u64 = 1024;

/// The default memory limit: half of the host's RAM, at most 4 GiB.
fn default_memory() -> u64 {
    const CAP: u64 = 4 << 30;
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| kib * 1024);
    total.map_or(CAP, |t| (t / 2).min(CAP))
}

/// The limits a `run` applies by default.
#[derive(Debug, Default)]
pub struct DefaultLimits {
    /// The default memory limit, when --memory does not give one.
    pub memory: Option<u64>,
    /// The default process limit, when --pids does not give one.
    pub pids: Option<u64>,
}

/// The default limits of a run with these flags: none with --no-isolation, --no-default-limits
/// or in a pod (whose own cgroup bounds its members). Like --memory and --pids, they are held
/// through resource limits where this user cannot create a cgroup (the report says so).
pub fn default_limits(a: &RunArgs) -> DefaultLimits {
    if a.no_isolation || a.no_default_limits || a.pod.is_some() {
        return DefaultLimits::default();
    }
    DefaultLimits {
        memory: a.memory.is_none().then(default_memory),
        pids: a.pids.is_none().then_some(DEFAULT_PIDS),
    }
}

/// Add the cgroup flags and the default limits.
fn cgroups(mut sb: Sandbox, a: &RunArgs) -> Sandbox {
    let defaults = default_limits(a);
    if let Some(cpu) = a.cpu {
        sb = sb.cpu_quota(cpu);
    }
    if let Some(w) = a.cpu_weight {
        sb = sb.cpu_weight(w);
    }
    if let Some(bytes) = a.memory.or(defaults.memory) {
        sb = sb.memory_limit(bytes);
    }
    if let Some(bytes) = a.swap {
        sb = sb.memory_swap(bytes);
    }
    if let Some(n) = a.pids.or(defaults.pids) {
        sb = sb.pids_limit(n);
    }
    if let Some(cpus) = &a.cpuset {
        sb = sb.cpuset(cpus.as_str());
    }
    if let Some(dir) = &a.cgroup_parent {
        sb = sb.cgroup_parent(absolute(dir));
    }
    sb
}

/// One line saying which limits apply to the sandbox and what enforces them (for --report),
/// or `None` without limits.
fn limits_line(a: &RunArgs, report: &ringfence::Report) -> Option<String> {
    let defaults = default_limits(a);
    let cgroup = report.is_enforced(ringfence::Layer::Cgroup);
    let size = human_size;
    let mut parts = Vec::new();
    if let Some(m) = a.memory.or(defaults.memory) {
        let origin = if a.memory.is_some() { "" } else { " (default)" };
        parts.push(format!("memory {}{origin}", size(m)));
    }
    if let Some(n) = a.pids.or(defaults.pids) {
        let origin = if a.pids.is_some() { "" } else { " (default)" };
        parts.push(format!("{n} processes{origin}"));
    }
    if parts.is_empty() {
        return None;
    }
    let how = if cgroup {
        "enforced by the sandbox's cgroup".to_owned()
    } else if let Some((_, sub, _)) = report
        .substituted()
        .find(|(l, _, _)| *l == ringfence::Layer::Cgroup)
    {
        format!("held through {sub} (no cgroup here)")
    } else {
        "NOT enforced (see the report)".to_owned()
    };
    Some(format!("limits: {}: {how}", parts.join(", ")))
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
