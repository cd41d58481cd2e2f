//! The cost of reporting seccomp refusals ([`Sandbox::report_refusals`]), side by side with
//! the same sandbox not reporting them:
//!
//! - `spawn`: spawn and wait for `/bin/true` under the default profile (the reporting run adds
//!   the supervisor thread, the listener hand-over and one notified `execve`);
//! - `allowed`: 200,000 `getppid()` calls timed inside the sandbox by a Python loop (allowed
//!   calls are never notified: the installed program differs only in the values its refusal
//!   returns, so this should read 1.00x);
//! - `refused`: 20,000 refused `settimeofday(NULL, NULL)` calls timed inside (each one a round
//!   trip to the supervisor when reported).
//!
//! Rounds are interleaved (each round runs both variants), medians are printed with the
//! ratio reporting / plain. Run: `cargo bench --bench refusals`. See docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use ringfence::{Command, Sandbox, Syscall};

const ROUNDS: usize = 15;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `code` in python3 inside `sb`; the program prints the seconds its loop took.
fn inside(sb: &Sandbox, code: &str) -> f64 {
    let mut c = Command::new("/usr/bin/python3");
    c.args(["-c", code]);
    let out = sb.output(&c).expect("python3 runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{:?}", String::from_utf8_lossy(&out.stderr)))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let plain = Sandbox::new();
    let reporting = Sandbox::new().report_refusals(true);
    plain.prepare().ok();
    reporting.prepare().ok();
    let loop_of = |nr: u32, n: usize| {
        format!(
            "import ctypes, time\nl = ctypes.CDLL(None)\ns = l.syscall\nt = time.perf_counter()\n\
for _ in range({n}): s({nr}, None, None)\nprint(time.perf_counter() - t)"
        )
    };
    let getppid = loop_of(Syscall::named("getppid").unwrap().nr(), 200_000);
    let refused = loop_of(Syscall::named("settimeofday").unwrap().nr(), 20_000);
    let mut times: [[Vec<f64>; 2]; 3] = Default::default();
    for _ in 0..ROUNDS {
        for (i, sb) in [&plain, &reporting].into_iter().enumerate() {
            let t = Instant::now();
            sb.output(&Command::new("/bin/true")).unwrap();
            times[0][i].push(t.elapsed().as_secs_f64());
            times[1][i].push(inside(sb, &getppid) / 200_000.0);
            times[2][i].push(inside(sb, &refused) / 20_000.0);
        }
    }
    println!(
        "{:<10} {:>12} {:>12} {:>7}",
        "", "plain", "reporting", "ratio"
    );
    for (name, t) in ["spawn", "allowed", "refused"].iter().zip(times) {
        let [p, r] = t.map(median);
        let d = |s: f64| format!("{:.2?}", Duration::from_secs_f64(s));
        println!("{name:<10} {:>12} {:>12} {:>6.2}x", d(p), d(r), r / p);
    }
}
