//! `ringfence probe`: what this host and user can use.

use std::io::Write;

use ringfence::HostInfo;

use crate::failure::EXIT_FAILURE;

/// Flags of `ringfence probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Print the result as one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Print `ringfence::probe()`; returns the exit status.
pub fn main(args: &ProbeArgs) -> i32 {
    let info = ringfence::probe();
    let text = if args.json {
        format!("{}\n", crate::json::host(info))
    } else {
        render(info)
    };
    match std::io::stdout().write_all(text.as_bytes()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ringfence: cannot write to stdout: {e}");
            EXIT_FAILURE
        }
    }
}

/// The human-readable form.
fn render(h: &HostInfo) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<17}{v}\n"));
    line("kernel", &h.kernel);
    line("euid / egid", &format!("{} / {}", h.euid, h.egid));
    line(
        "privileged",
        if h.privileged {
            "yes (CAP_SYS_ADMIN: namespaces need no user namespace)"
        } else {
            "no (no CAP_SYS_ADMIN: namespaces come with a user namespace)"
        },
    );
    match &h.user_ns {
        Ok(()) => line("user namespaces", "available"),
        Err(u) => {
            line("user namespaces", &format!("unavailable: {}", u.reason));
            line("", &format!("hint: {}", u.hint));
        }
    }
    let names: Vec<&str> = h.namespaces.iter().map(|n| n.name()).collect();
    line("namespaces", &names.join(" "));
    line("cap_last_cap", &h.cap_last_cap.to_string());
    out
}
