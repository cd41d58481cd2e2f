//! Does a spawn's cost grow with the caller's memory? `/bin/true` spawned and waited for from
//! this process while it holds nothing extra, 128 MiB and 1 GiB of touched heap, with std's
//! `Command` (posix_spawn: `CLONE_VM | CLONE_VFORK`, no page table copied), ringfence without
//! namespaces (`Sandbox::new()`), with pid+uts+ipc+net+cgroup namespaces, and
//! `Sandbox::isolated()`.
//!
//! Interleaved, so that the load of a shared machine hits every figure alike: each round
//! allocates the ballast of each size in turn (the order rotating from round to round) and
//! runs a few spawns of every variant before freeing it. Reported, one `name: value` line per
//! figure for `scripts/bench`: the median spawn+wait time of each (variant, size) in
//! microseconds (`ringfence-ns-1g-us: 2345`), and each size's ratio to the small parent's
//! (`ringfence-ns-1g-ratio: 1.03`).
//!
//! Not a criterion benchmark (the interleaving is the point). Needs root for the namespaced
//! variants (namespaces without a user namespace); `PARENT_SIZE_ROUNDS` overrides the number
//! of rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ringfence::{Command, Net, Sandbox};

const TRUE: &str = "/bin/true";
const SIZES: [(&str, usize); 3] = [("small", 0), ("128m", 128 << 20), ("1g", 1 << 30)];
const PER_ROUND: usize = 8;

fn variants() -> Vec<(&'static str, Option<Sandbox>)> {
    vec![
        ("std", None),
        ("ringfence", Some(Sandbox::new())),
        (
            "ringfence-ns",
            Some(
                Sandbox::new()
                    .pid_ns()
                    .uts_ns()
                    .ipc_ns()
                    .cgroup_ns()
                    .net(Net::New),
            ),
        ),
        ("ringfence-isolated", Some(Sandbox::isolated())),
    ]
}

fn once(sandbox: Option<&Sandbox>, cmd: &Command) -> Duration {
    let t = Instant::now();
    match sandbox {
        None => {
            let status = std::process::Command::new(TRUE).status().expect("spawn");
            assert!(status.success());
        }
        Some(sb) => {
            let outcome = sb.spawn(cmd).expect("spawn").wait().expect("wait");
            assert!(outcome.success(), "{}", outcome.status);
        }
    }
    t.elapsed()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("PARENT_SIZE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let cmd = Command::new(TRUE);
    let mut variants = variants();
    variants.retain(|(name, sb)| match sb {
        Some(sb) => match sb.spawn(&cmd).and_then(|mut c| c.wait()) {
            Ok(o) if o.success() => true,
            other => {
                println!("skipping {name}: {other:?}");
                false
            }
        },
        None => true,
    });
    // times[variant][size]
    let mut times = vec![vec![Vec::new(); SIZES.len()]; variants.len()];
    for round in 0..rounds {
        for k in 0..SIZES.len() {
            let s = (k + round) % SIZES.len();
            let ballast = vec![1u8; SIZES[s].1];
            black_box(&ballast);
            for _ in 0..PER_ROUND {
                for (v, (_, sb)) in variants.iter().enumerate() {
                    times[v][s].push(once(sb.as_ref(), &cmd));
                }
            }
            drop(ballast);
        }
    }
    println!("| variant | small parent | 128 MiB parent | 1 GiB parent |");
    println!("|---|---:|---:|---:|");
    let mut lines = Vec::new();
    for (v, (name, _)) in variants.iter().enumerate() {
        let med: Vec<Duration> = (0..SIZES.len()).map(|s| median(&mut times[v][s])).collect();
        let base = med[0].as_secs_f64();
        let mut row = format!("| {name} |");
        for (s, (size, _)) in SIZES.iter().enumerate() {
            let us = med[s].as_secs_f64() * 1e6;
            let ratio = med[s].as_secs_f64() / base;
            lines.push(format!("{name}-{size}-us: {us:.0}"));
            if s > 0 {
                lines.push(format!("{name}-{size}-ratio: {ratio:.2}"));
                row.push_str(&format!(" {:.2} ms ({ratio:.2}×) |", us / 1e3));
            } else {
                row.push_str(&format!(" {:.2} ms |", us / 1e3));
            }
        }
        println!("{row}");
    }
    println!();
    for l in lines {
        println!("{l}");
    }
}
