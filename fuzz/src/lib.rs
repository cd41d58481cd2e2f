//! Helpers shared by the fuzz targets of ringfence.
//!
//! - [`bpf`]: an independent seccomp BPF interpreter, the oracle of `compile_semantics`.
//! - [`cli`]: the CLI's own source files (`cli/src/*.rs`) compiled into this crate, so that
//!   `cli_args` and `size_duration` exercise the real argument parsers (the CLI is a binary
//!   crate without a library to link against).
//! - [`fs`]: the library's `src/fs.rs` compiled into this crate, so that `mount_spec` can
//!   reach `FsConfig::prepare`, the validation the parent runs before a sandbox starts,
//!   without spawning anything (the library has no public entry point for it).
//!
//! Both inclusions are stand-ins for entry points the crates could expose; they compile the
//! real files, against the library's real public error types, so they cannot drift apart.
#![allow(dead_code, unused_imports, clippy::all)]

pub mod bpf;
pub mod mount_spec;

/// What `src/fs.rs` imports as `crate::error`: the library's public error types.
mod error {
    pub use ringfence::{ConfigError, Error, Result};
}

/// The library's filesystem configuration and its validation (`src/fs.rs`).
#[path = "../../src/fs.rs"]
pub mod fs;

// The CLI's modules, at the crate root because they refer to each other as `crate::...`.
#[path = "../../cli/src/failure.rs"]
pub mod failure;
#[path = "../../cli/src/json.rs"]
pub mod json;
#[path = "../../cli/src/named.rs"]
pub mod named;
#[path = "../../cli/src/parse.rs"]
pub mod parse;
#[path = "../../cli/src/profile.rs"]
pub mod profile;
#[path = "../../cli/src/signals.rs"]
pub mod signals;
#[path = "../../cli/src/state.rs"]
pub mod state;
#[path = "../../cli/src/tty.rs"]
pub mod tty;

/// `ringfence run`: `cli/src/run.rs` (prepared by `build.rs`), plus the entry point the
/// `cli_args` target calls. Included rather than loaded with `#[path]` because the function
/// that turns the flags into a `Sandbox` is private to that module.
pub mod run {
    include!(concat!(env!("OUT_DIR"), "/cli_run.rs"));

    /// What [`convert`] made of the arguments.
    pub enum Converted {
        /// The sandbox and the command were built.
        Ok(Sandbox, Command),
        /// The flags were refused with this message and exit status.
        Refused(String, i32),
    }

    /// The clap command of `ringfence run`, as the CLI builds it.
    pub fn clap_command() -> clap::Command {
        use clap::Args;
        RunArgs::augment_args(clap::Command::new("run"))
    }

    /// Parses `argv` (without the program name) as `ringfence run` flags. `None` when clap
    /// refuses them (or answers `--help`).
    pub fn parse(cmd: &clap::Command, argv: &[OsString]) -> Option<(RunArgs, ArgMatches)> {
        use clap::FromArgMatches;
        let m = cmd
            .clone()
            .try_get_matches_from(std::iter::once(OsString::from("run")).chain(argv.iter().cloned()))
            .ok()?;
        let args = RunArgs::from_arg_matches(&m).ok()?;
        Some((args, m))
    }

    /// Builds the `Sandbox` and `Command` the flags describe, as `ringfence run` does before
    /// spawning. Values that make the conversion touch the host beyond looking at it are
    /// replaced first: a `--net` path (opening a FIFO would block) becomes this process's own
    /// network namespace, and a `--seccomp` path (reading `/dev/zero` would never end)
    /// becomes `strict` — the OCI importer has a target of its own.
    pub fn convert(args: &mut RunArgs, m: &ArgMatches) -> Converted {
        if let Some(net) = &args.net {
            if let Ok(NetArg::Join(_)) = parse::net(net) {
                args.net = Some("/proc/self/ns/net".into());
            }
        }
        if let Some(spec) = &args.seccomp {
            if !matches!(spec.to_str(), Some("default" | "strict" | "unconfined")) {
                args.seccomp = Some("strict".into());
            }
        }
        let built = sandbox(args, m).and_then(|sb| Ok((sb, command(args)?)));
        match built {
            Ok((sb, cmd)) => Converted::Ok(sb, cmd),
            Err(f) => Converted::Refused(f.to_string(), f.exit_code()),
        }
    }
}
