//! `ringfence`: run a command in a Linux sandbox from the shell.
//!
//! A thin layer over the `ringfence` library: every flag of `ringfence run` maps to one call of
//! the [`ringfence::Sandbox`] builder or of [`ringfence::Command`].

mod doctor;
mod failure;
mod json;
mod named;
mod parse;
mod probe;
mod profile;
mod run;
mod signals;
mod state;
mod tty;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::failure::EXIT_FAILURE;

/// Run untrusted commands in a sandbox built from Linux namespaces, capabilities and rlimits.
#[derive(Debug, Parser)]
#[command(name = "ringfence", version, propagate_version = true)]
#[command(after_help = "\
Exit status: ringfence's own errors (bad flags included) exit with 125, so that the \
program's own statuses 1 and 2 are never ambiguous; see `ringfence run --help` for the rest.")]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Subcommand,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    // The help text is on `RunArgs`: a doc comment here would replace it.
    #[allow(missing_docs)]
    Run(Box<run::RunArgs>),
    /// Show what this host and user can use: namespaces, user namespaces, capabilities.
    Probe(probe::ProbeArgs),
    // The help text is on `ProfileArgs`.
    #[allow(missing_docs)]
    Profile(profile::ProfileArgs),
    /// Check what this host supports and what a sandbox here gets, with a fix for each
    /// missing piece.
    Doctor(doctor::DoctorArgs),
    /// Run a command (with every `run` flag) while recording each system call it makes, and
    /// write a minimal OCI seccomp profile for it: the calls it made are allowed (socket
    /// families, clone flags, ioctl requests and personalities pinned to the values seen),
    /// everything else fails with EPERM. Use it with `ringfence run --seccomp FILE`.
    Learn(Box<run::LearnArgs>),
    /// List the running named sandboxes (`ringfence run --name NAME`).
    Ps(named::PsArgs),
    /// Run a command inside a running named sandbox, like `docker exec`.
    Exec(named::ExecArgs),
    /// Kill a running named sandbox.
    Kill(named::KillArgs),
    /// Wait until a named sandbox ends; exit with its status.
    Wait(named::NameArgs),
    /// Print what a detached sandbox wrote to stdout and stderr.
    Logs(named::LogsArgs),
    /// Print a named sandbox's record as JSON: its command, pids, restricting flags, state and
    /// exit status.
    Inspect(named::NameArgs),
    /// Forget an ended detached sandbox: its record and log.
    Rm(named::NameArgs),
    /// Print a completion script for a shell: `ringfence completions bash > /etc/bash_completion.d/ringfence`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `ringfence man | man -l -`.
    Man,
    /// Pods: sandboxes that share a network, IPC and UTS namespace and a cgroup.
    Pod(named::PodArgs),
}

fn main() {
    // Parsed in two steps: `run` needs the matches themselves, which know where each flag was
    // given (filesystem flags apply in command-line order).
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors are ringfence's
            // own errors, reported with 125 like every other (not clap's default 2).
            let _ = e.print();
            if let Some(hint) = usage_hint(&e) {
                eprintln!("hint: {hint}");
            }
            std::process::exit(if e.use_stderr() { EXIT_FAILURE } else { 0 });
        }
    };
    let code = match cli.command {
        Subcommand::Run(args) => {
            let run_matches = matches
                .subcommand_matches("run")
                .expect("the run subcommand was parsed");
            run::main(&args, run_matches)
        }
        Subcommand::Probe(args) => probe::main(&args),
        Subcommand::Profile(args) => profile::main(&args),
        Subcommand::Doctor(args) => doctor::main(&args),
        Subcommand::Ps(args) => named::ps(&args),
        Subcommand::Exec(args) => named::exec(&args),
        Subcommand::Kill(args) => named::kill(&args),
        Subcommand::Wait(args) => named::wait(&args),
        Subcommand::Logs(args) => named::logs(&args),
        Subcommand::Inspect(args) => named::inspect(&args),
        Subcommand::Rm(args) => named::rm(&args),
        Subcommand::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ringfence",
                &mut std::io::stdout(),
            );
            0
        }
        Subcommand::Man => {
            let page = clap_mangen::Man::new(Cli::command());
            match page.render(&mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("ringfence: cannot write the man page: {e}");
                    EXIT_FAILURE
                }
            }
        }
        Subcommand::Pod(args) => named::pod(&args),
        Subcommand::Learn(args) => {
            let learn_matches = matches
                .subcommand_matches("learn")
                .expect("the learn subcommand was parsed");
            run::learn_main(&args, learn_matches)
        }
    };
    std::process::exit(code);
}

/// A hint for a command given without `--` in front of it, which clap reports as an unexpected
/// argument.
fn usage_hint(e: &clap::Error) -> Option<&'static str> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) if !arg.starts_with('-') => {
            Some("put `--` before the command: ringfence run [FLAGS] -- COMMAND [ARGS...]")
        }
        _ => None,
    }
}
