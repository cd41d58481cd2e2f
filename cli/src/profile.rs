//! Seccomp profiles on the command line: `--seccomp` values and `ringfence profile`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use ringfence::{Action, CmpOp, Cond, Errno, Profile, Rule};

use crate::failure::Failure;

// For the `[...]` references of the help texts, which are doc comments too.
#[cfg(doc)]
use ringfence::CompiledProfile;

/// The names `--seccomp` and `ringfence profile` take besides a path.
pub const PRESETS: &str = "default, strict, unconfined";

/// A profile named on the command line: `default` ([`Profile::default_container`]), `strict`
/// ([`Profile::strict`]), `unconfined` ([`Profile::unconfined`]), or the path of an OCI /
/// Docker JSON profile ([`Profile::from_oci_json`]). A file called like a preset is given as
/// `./default`.
pub fn load(spec: &OsStr) -> Result<Profile, Failure> {
    match spec.to_str() {
        Some("default") => return Ok(Profile::default_container()),
        Some("strict") => return Ok(Profile::strict()),
        Some("unconfined") => return Ok(Profile::unconfined()),
        _ => {}
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
    Profile::from_oci_json(&text)
        .map_err(|e| anyhow!("invalid seccomp profile {}: {e}", path.display()).into())
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
        /// `default`, `strict`, `unconfined`, or the path of an OCI / Docker JSON profile.
        #[arg(value_name = "default|strict|PATH")]
        profile: PathBuf,
    },
    /// Write the profile as OCI / Docker JSON, as runc, crun and `docker run --security-opt
    /// seccomp=FILE` read it [Profile::to_oci_json].
    Export {
        /// `default`, `strict`, or the path of an OCI / Docker JSON profile.
        #[arg(value_name = "default|strict|PATH")]
        profile: PathBuf,
        /// Write to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write the compiled BPF programs, one file per filter in installation order, each a raw
    /// `struct sock_filter` array in this machine's byte order, as the kernel receives it:
    /// `00-filter.bpf`, the profile with the guard merged in [CompiledProfile::to_bytes].
    Compile {
        /// `default`, `strict`, or the path of an OCI / Docker JSON profile.
        #[arg(value_name = "default|strict|PATH")]
        profile: PathBuf,
        /// The directory to write the files into (created if missing).
        #[arg(short, long, value_name = "DIR", required = true)]
        output: PathBuf,
    },
}

/// Run `ringfence profile`; returns the exit status.
pub fn main(args: &ProfileArgs) -> i32 {
    let result = match &args.action {
        ProfileAction::Show { profile } => show(profile),
        ProfileAction::Export { profile, output } => export(profile, output.as_deref()),
        ProfileAction::Compile { profile, output } => compile(profile, output),
    };
    match result {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("{f}");
            f.exit_code()
        }
    }
}

fn show(spec: &Path) -> Result<(), Failure> {
    let profile = load(spec.as_os_str())?;
    profile
        .check()
        .map_err(|e| anyhow!("invalid seccomp profile: {e}"))?;
    write_stdout(&render(&profile))
}

fn export(spec: &Path, output: Option<&Path>) -> Result<(), Failure> {
    let profile = load(spec.as_os_str())?;
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

fn compile(spec: &Path, dir: &Path) -> Result<(), Failure> {
    let profile = load(spec.as_os_str())?;
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
    let _ = writeln!(
        out,
        "guard           other architectures and x32: kill-process; clone3: errno ENOSYS; ioctl TIOCSTI/TIOCLINUX: errno EPERM"
    );
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
