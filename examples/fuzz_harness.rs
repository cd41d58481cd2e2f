//! A fuzz harness on a warm sandbox: run a target thousands of times, each run with a new
//! input on stdin, and report executions per second and the crashes found.
//!
//! ```sh
//! cargo run --release --example fuzz_harness            # 1000 runs
//! RINGFENCE_FUZZ_RUNS=20000 cargo run --release --example fuzz_harness
//! ```
//!
//! The target here is a small shell program with planted bugs, so that the example runs
//! anywhere: it crashes with SIGSEGV when its input contains `BUG`, aborts (SIGABRT) when the
//! input starts with `!`, and hangs when it contains `HANG`. A real harness would run a
//! compiled target the same way (bind its directory into the sandbox). Inputs are random
//! mutations of a seed; since the bugs are known, the harness also checks that the sandbox
//! reported every outcome as the target's model predicts.
//!
//! The sandbox is `Sandbox::isolated()` (every namespace, read-only system directories, a
//! private `/tmp`, the default seccomp profile), warm: the namespaces and mounts are made once
//! and a zygote inside starts each run. Needs root or unprivileged user namespaces.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use ringfence::{Command, Outcome, RunOptions, Sandbox, Stdio};

const TARGET: &str = r#"read -r line
case "$line" in
  *BUG*) kill -SEGV $$ ;;
  '!'*) kill -ABRT $$ ;;
  *HANG*) while :; do :; done ;;
esac
echo "ok: $line""#;

/// What the target does with `input`.
fn model(input: &[u8]) -> &'static str {
    // The target reads one line.
    let line = input.split(|&b| b == b'\n').next().unwrap_or_default();
    let has_line = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
    if has_line(b"BUG") {
        "crash SIGSEGV"
    } else if line.first() == Some(&b'!') {
        "crash SIGABRT"
    } else if has_line(b"HANG") {
        "hang"
    } else {
        "ok"
    }
}

/// How a run ended, in the model's terms.
fn classify(out: &Outcome) -> &'static str {
    if out.timed_out {
        return "hang";
    }
    match out.status.signal() {
        Some(libc::SIGSEGV) => "crash SIGSEGV",
        Some(libc::SIGABRT) => "crash SIGABRT",
        Some(_) => "other signal",
        None if out.status.success() => "ok",
        None => "error exit",
    }
}

/// A small xorshift generator: the same inputs on every run of the example.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A mutation of `seed`: a few bytes replaced, inserted or removed.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8] = b"BUGHAN!x ";
    let mut input = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let byte = ALPHABET[rng.below(ALPHABET.len())];
        let at = rng.below(input.len() + 1);
        match rng.below(3) {
            0 if at < input.len() => input[at] = byte,
            1 if at < input.len() => {
                input.remove(at);
            }
            _ => input.insert(at, byte),
        }
    }
    input.push(b'\n');
    input
}

/// Run the harness; the number of runs comes from `RINGFENCE_FUZZ_RUNS` (default 1000).
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = match std::env::var("RINGFENCE_FUZZ_RUNS") {
        Ok(n) => n.parse()?,
        Err(_) => 1000,
    };
    let mut target = Command::new("/bin/sh");
    target.arg("-c").arg(TARGET).stderr(Stdio::null());
    let mut warm = Sandbox::isolated().warm()?;
    for (layer, reason, _) in warm.report().not_enforced() {
        eprintln!("note: {layer} is not enforced here: {reason}");
    }

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seed = b"hello BU world".to_vec();
    let mut seen: BTreeMap<&'static str, (usize, Vec<u8>)> = BTreeMap::new();
    let started = Instant::now();
    for _ in 0..runs {
        let input = mutate(&mut rng, &seed);
        let opts = RunOptions::new()
            .input(&input)
            .timeout(Duration::from_millis(200));
        let out = warm.run(&target, &opts)?;
        let got = classify(&out);
        let expected = model(&input);
        if got != expected {
            return Err(format!(
                "input {:?}: the model says {expected}, the sandbox reported {got} ({:?})",
                String::from_utf8_lossy(&input),
                out.status
            )
            .into());
        }
        let entry = seen.entry(got).or_insert((0, input.clone()));
        entry.0 += 1;
    }
    let elapsed = started.elapsed();

    println!(
        "{runs} executions in {:.2} s: {:.0} execs/s",
        elapsed.as_secs_f64(),
        runs as f64 / elapsed.as_secs_f64()
    );
    for (what, (count, first)) in &seen {
        println!(
            "{count:>8}  {what:<14} first input: {:?}",
            String::from_utf8_lossy(first).trim_end()
        );
    }
    let crashes: usize = seen
        .iter()
        .filter(|(what, _)| what.starts_with("crash"))
        .map(|(_, (n, _))| n)
        .sum();
    println!("{crashes} crashing inputs found");
    if runs >= 200 && crashes == 0 {
        return Err("no crash found: the mutations should reach the planted bugs".into());
    }
    Ok(())
}
