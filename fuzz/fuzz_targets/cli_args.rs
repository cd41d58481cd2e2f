//! Arbitrary argument vectors for `ringfence run` through the CLI's own clap definition
//! (`cli/src/run.rs`, compiled into the fuzz helper library) and its conversion into a
//! `Sandbox` and a `Command`: never a panic (clap's debug assertions on the definition
//! included, since fuzz builds have debug assertions on), and a refusal always exits 125.
//!
//! Input: tokens separated by NUL bytes. A token of the form `\x01N` is replaced by the N-th
//! long flag of `ringfence run` (so the fuzzer reaches every flag without spelling it); any
//! other token is an argument as it is (not necessarily UTF-8).
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringfence::Namespace;
use ringfence_fuzz::run::{self, Converted};

struct Cli {
    cmd: clap::Command,
    flags: Vec<String>,
}

fn cli() -> &'static Cli {
    static CLI: OnceLock<Cli> = OnceLock::new();
    CLI.get_or_init(|| {
        let cmd = run::clap_command();
        let mut flags: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        flags.extend(["--".into(), "-r".into(), "--help".into()]);
        Cli { cmd, flags }
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let cli = cli();
    let argv: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|tok| match tok {
            [1, n, ..] => OsString::from(&cli.flags[usize::from(*n) % cli.flags.len()]),
            _ => OsString::from_vec(tok.to_vec()),
        })
        .collect();
    let Some((mut args, m)) = run::parse(&cli.cmd, &argv) else {
        return;
    };
    match run::convert(&mut args, &m) {
        Converted::Ok(sb, cmd) => {
            // The built values are usable: describe them, ask what they request.
            let _ = format!("{sb:?} {cmd:?}");
            for ns in Namespace::ALL {
                let _ = sb.requests(ns);
            }
        }
        Converted::Refused(msg, code) => {
            assert_eq!(
                code, 125,
                "a refused flag set is ringfence's own error: {msg}"
            );
            assert!(msg.starts_with("ringfence: "), "{msg}");
        }
    }
});
