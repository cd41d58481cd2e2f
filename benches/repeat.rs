//! Repeated runs: how many runs of `/bin/true` per second, with `std::process::Command` (the
//! unsandboxed baseline), with a [`Prepared`](ringfence::Prepared) sandbox (a new sandbox per
//! run, the command-independent work done once) and with a [`Warm`](ringfence::Warm) sandbox
//! (one zygote starting every run), for `Sandbox::new()` and `Sandbox::isolated()`.
//!
//! Every iteration is one run to its end; the standard streams are `/dev/null` everywhere.
//! After criterion's group (`repeat`), a paired measurement runs the variants in turn (rounds
//! of 20 runs each, the median round per variant), so that load drifts on a shared machine
//! affect all of them alike, and prints runs/s with the ratio to std's. See
//! docs/BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ringfence::{Command, RunOptions, Sandbox, Stdio};

const TRUE: &str = "/bin/true";
const ROUNDS: usize = 41;
const PER_ROUND: u32 = 20;

fn std_true() -> std::process::Command {
    let mut cmd = std::process::Command::new(TRUE);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

fn rf_true() -> Command {
    let mut cmd = Command::new(TRUE);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// One run of each kind, boxed so that the paired loop can take them in turn.
type Run = Box<dyn FnMut()>;

fn variants() -> Vec<(&'static str, Run)> {
    let mut out: Vec<(&'static str, Run)> = Vec::new();
    let mut std_cmd = std_true();
    out.push((
        "std",
        Box::new(move || assert!(black_box(std_cmd.status().unwrap()).success())),
    ));
    for (name, warm_name, sb) in [
        ("prepared", "warm", Sandbox::new()),
        ("prepared-isolated", "warm-isolated", Sandbox::isolated()),
    ] {
        let prepared = sb.prepare().expect("prepare the sandbox");
        let cmd = rf_true();
        let p = prepared.clone();
        out.push((
            name,
            Box::new(move || {
                let out = p.spawn(&cmd).unwrap().wait().unwrap();
                assert!(black_box(out).success());
            }),
        ));
        let mut warm = prepared.warm().expect("start the warm sandbox");
        let cmd = rf_true();
        let opts = RunOptions::new();
        out.push((
            warm_name,
            Box::new(move || assert!(black_box(warm.run(&cmd, &opts).unwrap()).success())),
        ));
    }
    out
}

fn repeat(c: &mut Criterion) {
    let mut group = c.benchmark_group("repeat");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50);
    for (name, mut run) in variants() {
        group.bench_function(name, |b| b.iter(&mut run));
    }
    group.finish();
}

/// The paired measurement: runs/s of each variant and its ratio to std's.
fn paired() {
    let mut vs = variants();
    let mut rounds: Vec<Vec<Duration>> = vec![Vec::with_capacity(ROUNDS); vs.len()];
    for _ in 0..ROUNDS {
        for ((_, run), times) in vs.iter_mut().zip(rounds.iter_mut()) {
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                run();
            }
            times.push(t.elapsed() / PER_ROUND);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let medians: Vec<Duration> = rounds.iter_mut().map(median).collect();
    let std_rate = 1.0 / medians[0].as_secs_f64();
    println!("\npaired: {ROUNDS} rounds of {PER_ROUND} runs of {TRUE} per variant, median round");
    println!("| variant | per run | runs/s | vs std (runs/s) |");
    println!("|---|---:|---:|---:|");
    for ((name, _), m) in vs.iter().zip(&medians) {
        let rate = 1.0 / m.as_secs_f64();
        println!(
            "| {name} | {:.0} µs | {rate:.0} | {:.2}× |",
            m.as_secs_f64() * 1e6,
            rate / std_rate
        );
    }
    let warm = vs.iter().position(|(n, _)| *n == "warm").unwrap();
    let ratio = medians[0].as_secs_f64() / medians[warm].as_secs_f64();
    println!(
        "target: warm runs/s >= 0.8x std's: {ratio:.2}x, {}",
        if ratio >= 0.8 { "met" } else { "not met" }
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    repeat(&mut c);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        paired();
    }
}
