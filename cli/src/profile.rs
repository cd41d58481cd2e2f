//! Seccomp profiles on the command line: `--seccomp` values and `ringfence profile`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use ringfence::seccomp::{Arch, ImportOptions, UnknownSyscalls};
use ringfence::{Action, Capability, CmpOp, Cond, Errno, Profile, Rule, Violation};

use crate::failure::Failure;

// For the `[...]` references of the help texts, which are doc comments too.
#[cfg(doc)]
use ringfence::CompiledProfile;

/// The names `--seccomp` and `ringfence profile` take besides a path.
pub const PRESETS: &str = "default, strict, unconfined";

/// A profile named on the command line: `default` ([`Profile::default_container`]), `strict`
/// ([`Profile::strict`]), `unconfined` ([`Profile::unconfined`]), or the path of an OCI /
/// Docker JSON profile ([`Profile::from_oci_json`]). A file called like a preset is given as
/// `./default`. Syscall names no architecture has are skipped with a warning on stderr, as
/// runc and crun do, or refused when `strict` (`--seccomp-strict`).
pub fn load(spec: &OsStr, strict: bool) -> Result<Profile, Failure> {
    let mut opts = ImportOptions::running_system();
    if strict {
        opts = opts.unknown_syscalls(UnknownSyscalls::Error);
    }
    load_with(spec, &opts)
}

/// [`load`] with explicit import options (architecture, strictness about unknown names).
pub fn load_with(spec: &OsStr, opts: &ImportOptions) -> Result<Profile, Failure> {
    let preset = match spec.to_str() {
        Some("default") => Some(Profile::default_container()),
        Some("strict") => Some(Profile::strict()),
        Some("unconfined") => Some(Profile::unconfined()),
        _ => None,
    };
    if let Some(p) = preset {
        return Ok(if p.arch() == Some(opts.arch) {
            p
        } else {
            p.for_arch(opts.arch)
        });
    }
    let path = Path::new(spec);
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the seccomp profile {} (expected {PRESETS}, or the path of an OCI / Docker JSON profile)",
            path.display()
        )
    })?;
    // The error's own text (which names the JSON location), not its chain: a located error
    // also returns the inner error as its source, which would repeat it.
    let profile = Profile::from_oci_json_with(&text, opts)
        .map_err(|e| anyhow!("invalid seccomp profile {}: {e}", path.display()))?;
    for name in profile.skipped_syscalls() {
        eprintln!(
            "ringfence: warning: seccomp profile {}: unknown syscall {name:?} skipped (as runc and crun do; --seccomp-strict refuses it)",
            path.display()
        );
    }
    Ok(profile)
}

/// A capability list of `--caps`: `none`, `all`, or names separated by commas
/// (`CAP_SYS_ADMIN,net_raw`).
fn parse_caps(s: &str) -> Result<Caps, String> {
    match s.trim() {
        "none" | "" => Ok(Caps(Vec::new())),
        "all" => {
            let mut all: Vec<Capability> = caps::all().into_iter().collect();
            all.sort_by_key(|c| c.index());
            Ok(Caps(all))
        }
        list => list
            .split(',')
            .map(crate::parse::capability)
            .collect::<Result<_, _>>()
            .map(Caps),
    }
}

/// The value of `--caps`.
#[derive(Clone, Debug)]
struct Caps(Vec<Capability>);

/// The flags every `ringfence profile` subcommand takes after the profile.
#[derive(Debug, clap::Args)]
struct Selection {
    /// `default`, `strict`, `unconfined`, or the path of an OCI / Docker JSON profile.
    #[arg(value_name = "default|strict|PATH")]
    profile: PathBuf,
    /// The capabilities the sandbox keeps, against which an imported profile's
    /// `includes.caps` / `excludes.caps` are judged (as runc judges them against the
    /// container's): `none` (the default, what `ringfence run` keeps without --cap-add),
    /// `all`, or a comma-separated list such as `CAP_SYS_ADMIN,net_raw`
    /// [Profile::for_capabilities].
    #[arg(long, value_name = "LIST|none|all", value_parser = parse_caps, default_value = "none")]
    caps: Caps,
    /// The architecture to build the filter for: x86_64, i386 or aarch64 (default: this
    /// machine's) [Profile::for_arch].
    #[arg(long, value_name = "x86_64|i386|aarch64")]
    arch: Option<Arch>,
    /// Refuse a JSON profile that names a syscall no architecture has, instead of skipping
    /// the name with a warning [UnknownSyscalls::Error].
    #[arg(long)]
    seccomp_strict: bool,
}

impl Selection {
    fn load(&self) -> Result<Profile, Failure> {
        let mut opts = ImportOptions::running_system();
        if let Some(arch) = self.arch {
            opts = opts.arch(arch);
        }
        if self.seccomp_strict {
            opts = opts.unknown_syscalls(UnknownSyscalls::Error);
        }
        let profile = load_with(self.profile.as_os_str(), &opts)?;
        Ok(profile.for_capabilities(self.caps.0.iter().copied()))
    }
}

/// Flags of `ringfence profile`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Show, export or compile a seccomp profile",
    long_about = "\
Show, export or compile a seccomp profile: `default` (the profile every sandbox gets), \
`strict` (a short allow-list for plugins computing on stdin, stdout and files), or the path \
of an OCI / Docker JSON profile, as `ringfence run --seccomp` takes them.

Every confined profile is installed behind a fixed guard: calls of another architecture and \
x32 calls kill the process, clone3 fails with ENOSYS (so libc falls back to clone, whose \
namespace flags a profile can check), and ioctl TIOCSTI / TIOCLINUX fail with EPERM."
)]
pub struct ProfileArgs {
    /// What to do with the profile.
    #[command(subcommand)]
    action: ProfileAction,
}

/// The `ringfence profile` subcommands.
#[derive(Debug, clap::Subcommand)]
enum ProfileAction {
    /// Print the rules: the default action, then each rule in order (the first match wins)
    /// with its conditions.
    Show {
        #[command(flatten)]
        sel: Selection,
    },
    /// Write the profile as OCI / Docker JSON, as runc, crun and `docker run --security-opt
    /// seccomp=FILE` read it [Profile::to_oci_json].
    Export {
        #[command(flatten)]
        sel: Selection,
        /// Write to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write the compiled BPF programs, one file per filter in installation order, each a raw
    /// `struct sock_filter` array in this machine's byte order, as the kernel receives it:
    /// `00-filter.bpf`, the profile with the guard merged in [CompiledProfile::to_bytes].
    Compile {
        #[command(flatten)]
        sel: Selection,
        /// The directory to write the files into (created if missing).
        #[arg(short, long, value_name = "DIR", required = true)]
        output: PathBuf,
    },
}

/// Run `ringfence profile`; returns the exit status.
pub fn main(args: &ProfileArgs) -> i32 {
    let result = match &args.action {
        ProfileAction::Show { sel } => show(sel),
        ProfileAction::Export { sel, output } => export(sel, output.as_deref()),
        ProfileAction::Compile { sel, output } => compile(sel, output),
    };
    match result {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("{f}");
            f.exit_code()
        }
    }
}

fn show(sel: &Selection) -> Result<(), Failure> {
    let profile = sel.load()?;
    profile
        .check()
        .map_err(|e| anyhow!("invalid seccomp profile: {e}"))?;
    write_stdout(&render(&profile))
}

fn export(sel: &Selection, output: Option<&Path>) -> Result<(), Failure> {
    let profile = sel.load()?;
    let mut json = profile.to_oci_json().map_err(|e| anyhow!("{e}"))?;
    if !json.ends_with('\n') {
        json.push('\n');
    }
    match output {
        None => write_stdout(&json),
        Some(path) => std::fs::write(path, json)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::from),
    }
}

/// The file name of the `index`th installed program.
fn program_file(index: usize, count: usize) -> String {
    match (index, count) {
        (0, 2) => "00-guard.bpf".into(),
        (1, 2) => "01-profile.bpf".into(),
        _ => format!("{index:02}-filter.bpf"),
    }
}

fn compile(sel: &Selection, dir: &Path) -> Result<(), Failure> {
    let profile = sel.load()?;
    if profile.is_unconfined() {
        return Err(anyhow!(
            "an unconfined profile installs no filter: there is nothing to compile"
        )
        .into());
    }
    let compiled = profile
        .compile()
        .map_err(|e| anyhow!("cannot compile the profile: {e}"))?;
    let programs = compiled.to_bytes();
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    for (i, bytes) in programs.iter().enumerate() {
        let path = dir.join(program_file(i, programs.len()));
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}: {} instructions", path.display(), bytes.len() / 8);
    }
    Ok(())
}

fn write_stdout(text: &str) -> Result<(), Failure> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("cannot write to stdout")?;
    Ok(())
}

/// One line per refused syscall of a run, for stderr: `seccomp refused settimeofday (errno
/// EPERM), 3 times`, `seccomp killed the process at getpid (x32)`.
pub fn refusals(violations: &[Violation]) -> Vec<String> {
    violations
        .iter()
        .map(|v| {
            let times = match v.count {
                1 => String::new(),
                n => format!(", {n} times"),
            };
            match v.action {
                Action::KillProcess => format!("seccomp killed the process at {}", v.syscall),
                Action::Notify => format!("seccomp refused {} (notify rule){times}", v.syscall),
                a => format!("seccomp refused {} ({}){times}", v.syscall, action(a)),
            }
        })
        .collect()
}

/// An action as the text output shows it: `allow`, `errno EPERM`, `kill-process`, ...
pub fn action(a: Action) -> String {
    match a {
        Action::Allow => "allow".into(),
        Action::Errno(n) => match Errno::from_raw(i32::from(n)) {
            Errno::UnknownErrno => format!("errno {n}"),
            e => format!("errno {e:?}"),
        },
        Action::KillProcess => "kill-process".into(),
        Action::KillThread => "kill-thread".into(),
        Action::Trap => "trap (SIGSYS)".into(),
        Action::Log => "log".into(),
        Action::Notify => "notify".into(),
        Action::Trace(m) => format!("trace {m}"),
        other => format!("{other:?}"),
    }
}

/// A condition as C-like text: `arg0 & 0x10000000 == 0x10000000`, `(u32)arg1 == 0x5401`.
pub fn cond(c: &Cond) -> String {
    let arg = if c.is_32bit() {
        format!("(u32)arg{}", c.index())
    } else {
        format!("arg{}", c.index())
    };
    let v = c.value();
    match c.op() {
        CmpOp::Eq => format!("{arg} == {v:#x}"),
        CmpOp::Ne => format!("{arg} != {v:#x}"),
        CmpOp::Lt => format!("{arg} < {v:#x}"),
        CmpOp::Le => format!("{arg} <= {v:#x}"),
        CmpOp::Gt => format!("{arg} > {v:#x}"),
        CmpOp::Ge => format!("{arg} >= {v:#x}"),
        CmpOp::MaskedEq(m) => format!("{arg} & {m:#x} == {v:#x}"),
        other => format!("{arg} {other:?} {v:#x}"),
    }
}

fn rule_line(r: &Rule) -> String {
    let conds: Vec<String> = r.conds().iter().map(cond).collect();
    let when = if conds.is_empty() {
        String::new()
    } else {
        format!("  if {}", conds.join(" && "))
    };
    let line = format!(
        "  {:<22} {:<14}{when}",
        r.syscall().name(),
        action(r.action())
    );
    line.trim_end().to_owned()
}

/// The human-readable form of a profile.
pub fn render(p: &Profile) -> String {
    let mut out = String::new();
    if p.is_unconfined() {
        out.push_str("unconfined: no seccomp filter is installed, not even the guard\n");
        return out;
    }
    let arch = p.arch().map_or("unknown".into(), |a| a.to_string());
    let _ = writeln!(out, "architecture    {arch}");
    let _ = writeln!(
        out,
        "default action  {} (for every call no rule matches)",
        action(p.get_default_action())
    );
    let other = if p.arch() == Some(Arch::X86_64) {
        "other architectures and x32"
    } else {
        "other architectures"
    };
    let _ = writeln!(
        out,
        "guard           {other}: kill-process; clone3: errno ENOSYS; ioctl TIOCSTI/TIOCLINUX: errno EPERM"
    );
    if !p.skipped_syscalls().is_empty() {
        let _ = writeln!(
            out,
            "skipped         {} (unknown syscall names)",
            p.skipped_syscalls().join(", ")
        );
    }
    let _ = writeln!(
        out,
        "rules           {} (the first that matches wins)",
        p.rules().len()
    );
    for r in p.rules() {
        let _ = writeln!(out, "{}", rule_line(r));
    }
    out
}
