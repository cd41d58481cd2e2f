//! The CLI's value parsers (`cli/src/parse.rs`) never panic on any text, keep their
//! documented invariants, and round-trip where a canonical form exists: sizes (`64M`, `1G`),
//! durations (`10s`, `500ms`), timeouts, tmpfs specifications, CPU limits, rlimits, umasks,
//! ports, capabilities and `--net` values.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ringfence_fuzz::parse;

/// The input's layout: a unit selector (1 byte) and a number (8 bytes, little-endian) for the
/// round trips, then the text given to every parser (as bytes where a parser takes an
/// `OsStr`, lossily as UTF-8 elsewhere). Seeds are easy to write by hand:
/// `printf '\x05\x40\0\0\0\0\0\0\0/tmp:64M'`.
struct Input {
    unit: u8,
    n: u64,
    bytes: Vec<u8>,
    raw: String,
}

impl Input {
    fn new(data: &[u8]) -> Input {
        let mut head = [0u8; 9];
        let k = data.len().min(9);
        head[..k].copy_from_slice(&data[..k]);
        let bytes = data[k..].to_vec();
        Input {
            unit: head[0],
            n: u64::from_le_bytes(head[1..].try_into().unwrap()),
            raw: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }
}

const SIZE_UNITS: [(&str, u32); 14] = [
    ("", 0),
    ("K", 10),
    ("k", 10),
    ("KiB", 10),
    ("kb", 10),
    ("M", 20),
    ("MB", 20),
    ("mib", 20),
    ("G", 30),
    ("GiB", 30),
    ("g", 30),
    ("T", 40),
    ("TB", 40),
    ("B", 0),
];

const DURATION_UNITS: [(&str, u128); 6] = [
    ("", 1_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// Whether `got` is within floating-point error of `want` nanoseconds: the parser goes
/// through an `f64`, exact to 2^-52 relative, then rounds to whole nanoseconds.
fn close(got: Duration, want: u128) -> bool {
    let got = got.as_nanos();
    let diff = got.abs_diff(want);
    diff <= 1 + want / (1u128 << 50)
}

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let raw = input.raw.as_str();

    // Sizes: a parsed size prints back as plain bytes and parses to the same value.
    if let Ok(n) = parse::size(raw) {
        assert_eq!(parse::size(&n.to_string()), Ok(n), "{raw:?}");
    }
    let (unit, shift) = SIZE_UNITS[usize::from(input.unit) % SIZE_UNITS.len()];
    let text = format!("{}{unit}", input.n);
    match input.n.checked_mul(1u64 << shift) {
        Some(v) => assert_eq!(parse::size(&text), Ok(v), "{text:?}"),
        None => assert!(parse::size(&text).is_err(), "{text:?} overflows"),
    }
    assert_eq!(
        parse::size(&format!(" {text} ")).ok(),
        parse::size(&text).ok(),
        "surrounding spaces do not matter"
    );

    // Durations: a bare number is seconds; N<unit> is N times the unit.
    if let Ok(d) = parse::duration(raw) {
        if d.as_secs() < 1 << 52 {
            let text = format!("{}.{:09}s", d.as_secs(), d.subsec_nanos());
            let again = parse::duration(&text).expect("a printed duration parses");
            assert!(close(again, d.as_nanos()), "{raw:?} -> {d:?} -> {text} -> {again:?}");
        }
        assert_eq!(parse::timeout(raw).is_ok(), !d.is_zero(), "{raw:?}");
    } else {
        assert!(parse::timeout(raw).is_err(), "{raw:?}");
    }
    let (unit, scale) = DURATION_UNITS[usize::from(input.unit) % DURATION_UNITS.len()];
    let n = input.n >> (input.unit % 64); // all magnitudes, small ones often
    let text = format!("{n}{unit}");
    let want = u128::from(n) * scale;
    match parse::duration(&text) {
        Ok(d) => assert!(close(d, want), "{text:?} -> {d:?}, want {want} ns"),
        // Out of range only past Duration::MAX (give or take float error at the edge).
        Err(e) => assert!(
            want >= u128::from(u64::MAX) * 1_000_000_000 - u128::from(u64::MAX) / 1000,
            "{text:?} refused: {e}"
        ),
    }

    // Timeouts are never zero; tmpfs values are absolute with a size above 0.
    if let Ok(d) = parse::timeout(raw) {
        assert!(!d.is_zero());
    }
    for s in [OsStr::from_bytes(&input.bytes), OsStr::new(raw)] {
        if let Ok(t) = parse::tmpfs(s) {
            assert!(t.dst.is_absolute(), "{s:?}");
            assert!(t.size.0 > 0, "{s:?}");
            // DST:SIZE with the size in bytes gives the same value back.
            let mut again = t.dst.as_os_str().as_bytes().to_vec();
            again.extend_from_slice(format!(":{}", t.size.0).as_bytes());
            assert_eq!(parse::tmpfs(OsStr::from_bytes(&again)), Ok(t), "{s:?}");
        }
        let _ = parse::net(s);
    }

    if let Ok(c) = parse::cpu(raw) {
        // Only the quota is checked in whole microseconds: a period below 1 µs such as
        // `1/0.0000001` passes the parser with period_us 0, and the library's cgroup
        // validation refuses it when the sandbox is spawned (period outside 1000..=1000000).
        assert!(c.quota_us() > 0, "{raw:?} -> {c:?}");
    }
    if let Ok(r) = parse::rlimit(raw) {
        assert!(r.soft <= r.hard, "{raw:?}");
    }
    if let Ok(m) = parse::umask(raw) {
        assert!(m <= 0o777);
        assert_eq!(parse::umask(&format!("{m:03o}")), Ok(m));
    }
    if let Ok(p) = parse::port(raw) {
        assert_eq!(parse::port(&p.to_string()), Ok(p));
    }
    if let Ok(c) = parse::capability(raw) {
        assert_eq!(parse::capability(&c.to_string()), Ok(c), "{raw:?}");
    }
});
