//! Parsers for flag values: durations, resource limits, capabilities, umasks, network choices,
//! byte sizes, tmpfs mounts, CPU limits, ports and Landlock scopes.
//!
//! Each returns a `String` error that clap shows after "invalid value '...' for '--flag'", so
//! the messages say what was expected rather than repeating the input.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ringfence::{Capability, Cpu, Rlimit, Size};

// For the `[...]` references of the help texts, which are doc comments too.
#[cfg(doc)]
use ringfence::Landlock;

/// A duration: a number (decimals allowed) followed by `ms`, `s`, `m`, `h` or `d`; a bare
/// number is seconds. `0` is allowed (see [`timeout`] for the flag that refuses it).
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err("must not be negative: expected a number with an optional unit ms, s, m, h or d (e.g. 500ms, 10s, 2m)".into());
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?}: expected a number with an optional unit ms, s, m, h or d (e.g. 500ms, 10s, 2m)"
            ));
        }
    };
    if number.is_empty() {
        return Err(
            "expected a number with an optional unit ms, s, m, h or d (e.g. 500ms, 10s, 2m)".into(),
        );
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{number:?} is not a number"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| "the duration is out of range".into())
}

/// A count such as `--pids`: a whole number, 1 or more.
pub fn count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err("must not be negative: expected a whole number of 1 or more".into());
    }
    match t.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of 1 or more, e.g. 64".into()),
    }
}

/// A CPU weight, 1 to 10000.
pub fn weight(s: &str) -> Result<u32, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if (1..=10000).contains(&n) => Ok(n as u32),
        Ok(_) => Err("expected a weight from 1 to 10000 (100 is the default)".into()),
        Err(_) => Err("expected a whole number from 1 to 10000".into()),
    }
}

/// A uid or gid: a whole number from 0 to 4294967294.
pub fn id(s: &str) -> Result<u32, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err("must not be negative: expected a number from 0 to 4294967294".into());
    }
    match t.parse::<u32>() {
        Ok(u32::MAX) | Err(_) => Err("expected a number from 0 to 4294967294".into()),
        Ok(n) => Ok(n),
    }
}

/// A timeout: a [`duration`] that is not zero.
pub fn timeout(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d.is_zero() {
        return Err("a timeout must be longer than 0".into());
    }
    Ok(d)
}

/// One `--rlimit` value: the resource with its soft and hard limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RlimitArg {
    /// The resource.
    pub resource: Rlimit,
    /// The soft limit (`u64::MAX` is unlimited).
    pub soft: u64,
    /// The hard limit (`u64::MAX` is unlimited).
    pub hard: u64,
}

/// Whether a resource is counted in bytes (so that `K`, `M`, `G` and `T` suffixes make sense).
fn counts_bytes(r: Rlimit) -> bool {
    matches!(
        r,
        Rlimit::As
            | Rlimit::Core
            | Rlimit::Data
            | Rlimit::Fsize
            | Rlimit::Memlock
            | Rlimit::Msgqueue
            | Rlimit::Stack
    )
}

fn rlimit_names() -> String {
    Rlimit::ALL.map(|r| r.name()).join(", ")
}

/// `NAME=SOFT[:HARD]`, as in `prlimit --NAME=SOFT:HARD`: one value sets both limits. Names are
/// those of `prlimit(1)` (`nofile`, `as`, ...; `RLIMIT_NOFILE` works too). Values are numbers
/// or `unlimited`; byte-sized resources take `K`, `M`, `G`, `T` suffixes (powers of 1024).
pub fn rlimit(s: &str) -> Result<RlimitArg, String> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| "expected NAME=SOFT[:HARD], e.g. nofile=256 or as=1G:2G".to_owned())?;
    let lower = name.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix("rlimit_").unwrap_or(&lower);
    let resource = Rlimit::from_name(lower).ok_or_else(|| {
        format!(
            "unknown resource {name:?}: expected one of {}",
            rlimit_names()
        )
    })?;
    let (soft, hard) = match values.split_once(':') {
        Some((soft, hard)) => (limit_value(resource, soft)?, limit_value(resource, hard)?),
        None => {
            let v = limit_value(resource, values)?;
            (v, v)
        }
    };
    if soft > hard {
        return Err(format!(
            "the soft limit of {resource} is above its hard limit"
        ));
    }
    Ok(RlimitArg {
        resource,
        soft,
        hard,
    })
}

fn limit_value(resource: Rlimit, s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("infinity") {
        return Ok(u64::MAX);
    }
    let (digits, multiplier) = match s.char_indices().last() {
        Some((i, c)) if counts_bytes(resource) && c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => {
                    return Err(format!(
                        "invalid limit {s:?}: the suffix must be K, M, G or T"
                    ));
                }
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let unit_hint = if counts_bytes(resource) {
        " (with an optional K, M, G or T suffix)"
    } else {
        ""
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid limit {s:?}: expected a number{unit_hint} or `unlimited`"))?;
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("invalid limit {s:?}: too large"))
}

/// A capability: `CAP_NET_BIND_SERVICE` or `net_bind_service`, in any case.
pub fn capability(s: &str) -> Result<Capability, String> {
    let upper = s.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full)
        .map_err(|_| format!("unknown capability {s:?} (see capabilities(7) for the names)"))
}

/// A umask in octal, e.g. `022` or `0o077`.
pub fn umask(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 && !digits.is_empty() => Ok(m),
        _ => Err("expected an octal mode from 000 to 777, e.g. 022".into()),
    }
}

/// The value of `--net`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetArg {
    /// `host`: the host's network.
    Host,
    /// `none`: a new network namespace with only `lo`.
    None,
    /// `user`: a private network with outbound access (a user-mode network stack).
    User,
    /// A path to a network namespace file to join.
    Join(PathBuf),
}

/// `host`, `none`, or a path (anything with a `/`) to a network namespace file.
pub fn net(s: &OsStr) -> Result<NetArg, String> {
    match s.to_str() {
        Some("host") => Ok(NetArg::Host),
        Some("none") => Ok(NetArg::None),
        Some("user") => Ok(NetArg::User),
        _ if s.as_encoded_bytes().contains(&b'/') => Ok(NetArg::Join(PathBuf::from(s))),
        _ => Err(
            "expected `host`, `none`, `user`, or the path of a network namespace file (e.g. /proc/PID/ns/net or /run/netns/NAME)"
                .into(),
        ),
    }
}

/// A byte size: a number with an optional suffix K, M, G or T (powers of 1024; `KiB`, `MB`
/// and lower case are accepted too), e.g. `64M`, `1G`, `4096`. `0` is allowed.
pub fn size(s: &str) -> Result<u64, String> {
    const EXPECTED: &str =
        "expected a number of bytes with an optional K, M, G or T suffix (e.g. 64M, 1G)";
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("must not be negative: {EXPECTED}"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    if digits.is_empty() {
        return Err(EXPECTED.into());
    }
    let lower = suffix.to_ascii_lowercase();
    let unit = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("unknown unit {suffix:?}: {EXPECTED}")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{digits:?} is too large"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// The default size of `--tmpfs` without `:SIZE`.
pub const DEFAULT_TMPFS: Size = Size::mib(64);

/// One `--tmpfs` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TmpfsArg {
    /// Where, inside the sandbox.
    pub dst: PathBuf,
    /// Its size limit.
    pub size: Size,
}

/// `DST[:SIZE]`, e.g. `/tmp` (64 MiB) or `/tmp:1G`. The size is whatever follows the last `:`,
/// so a destination containing `:` needs an explicit size.
pub fn tmpfs(s: &OsStr) -> Result<TmpfsArg, String> {
    let bytes = s.as_encoded_bytes();
    let (dst, size_text) = match bytes.iter().rposition(|&b| b == b':') {
        Some(i) => {
            let text = std::str::from_utf8(&bytes[i + 1..])
                .map_err(|_| "the size after `:` is not text".to_owned())?;
            (&bytes[..i], Some(text))
        }
        None => (bytes, None),
    };
    if dst.first() != Some(&b'/') {
        return Err(
            "expected an absolute path inside the sandbox, DST[:SIZE], e.g. /tmp:64M".into(),
        );
    }
    let size = match size_text {
        None => DEFAULT_TMPFS,
        Some(t) => Size::bytes(
            size(t)
                .and_then(|n| {
                    if n == 0 {
                        Err("a tmpfs size must be above 0".into())
                    } else {
                        Ok(n)
                    }
                })
                .map_err(|e| format!("invalid size {t:?}: {e}"))?,
        ),
    };
    Ok(TmpfsArg {
        dst: PathBuf::from(OsStr::from_bytes(dst)),
        size,
    })
}

/// A CPU limit: `20%` of one CPU (`250%` is two and a half CPUs), a number of CPUs such as
/// `0.5` or `2`, or `QUOTA/PERIOD` durations such as `50ms/100ms`.
pub fn cpu(s: &str) -> Result<Cpu, String> {
    const EXPECTED: &str = "expected a percentage of one CPU (20%), a number of CPUs (0.5) or QUOTA/PERIOD (50ms/100ms)";
    let t = s.trim();
    let cpu = if let Some((q, p)) = t.split_once('/') {
        let quota = duration(q).map_err(|e| format!("invalid quota {q:?}: {e}"))?;
        let period = duration(p).map_err(|e| format!("invalid period {p:?}: {e}"))?;
        if period.is_zero() {
            return Err("the period must be longer than 0".into());
        }
        Cpu::quota(quota, period)
    } else {
        let (number, per_cpu) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), 100.0),
            None => (t, 1.0),
        };
        let value: f64 = number
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| EXPECTED.to_owned())?;
        let cpus = value / per_cpu;
        if cpus > 1e6 {
            return Err(format!("{s:?} is too large"));
        }
        let period = Cpu::DEFAULT_PERIOD;
        let quota_us = (cpus * period.as_micros() as f64).round() as u64;
        Cpu::quota(Duration::from_micros(quota_us), period)
    };
    if cpu.quota_us() == 0 {
        return Err("a CPU limit of 0 would never let the sandbox run".into());
    }
    if cpu.period_us() == 0 {
        return Err("the period must be at least 1 µs".into());
    }
    Ok(cpu)
}

/// A TCP port, 0 to 65535.
pub fn port(s: &str) -> Result<u16, String> {
    s.trim()
        .parse()
        .map_err(|_| "expected a TCP port number from 0 to 65535".into())
}

/// What `--landlock-scope` restricts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeArg {
    /// Signals to processes outside the sandbox [Landlock::scope_signals].
    Signals,
    /// Connections to abstract unix sockets outside the sandbox
    /// [Landlock::scope_abstract_unix].
    AbstractUnix,
}

#[cfg(test)]
mod tests {

    #[test]
    fn cpu_periods_that_round_to_zero_are_refused() {
        assert!(cpu("1/0.0000001").is_err());
        assert!(cpu("50ms/100ms").is_ok());
    }

    use super::*;

    #[test]
    fn net_choices() {
        assert!(matches!(net(OsStr::new("user")), Ok(NetArg::User)));
        assert!(matches!(net(OsStr::new("none")), Ok(NetArg::None)));
        assert!(net(OsStr::new("users")).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        for bad in ["", "s", "abc", "10x", "1.2.3s", "-1s", "1e400"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
        assert!(timeout("0").is_err());
        assert!(timeout("0ms").is_err());
        assert!(timeout("1ms").is_ok());
    }

    #[test]
    fn rlimits() {
        assert_eq!(
            rlimit("nofile=64"),
            Ok(RlimitArg {
                resource: Rlimit::Nofile,
                soft: 64,
                hard: 64
            })
        );
        assert_eq!(
            rlimit("RLIMIT_AS=1G:unlimited"),
            Ok(RlimitArg {
                resource: Rlimit::As,
                soft: 1 << 30,
                hard: u64::MAX
            })
        );
        assert_eq!(rlimit("fsize=4k").map(|r| r.soft), Ok(4096));
        assert!(rlimit("nofile=abc").is_err());
        assert!(rlimit("nofile=4K").is_err(), "no suffix for counts");
        assert!(rlimit("nofile=10:5").is_err());
        assert!(rlimit("bogus=1").is_err());
        assert!(rlimit("nofile").is_err());
        assert!(rlimit("as=99999999999T").is_err());
    }

    #[test]
    fn capabilities() {
        assert_eq!(
            capability("CAP_NET_BIND_SERVICE"),
            Ok(Capability::CAP_NET_BIND_SERVICE)
        );
        assert_eq!(
            capability("net_bind_service"),
            Ok(Capability::CAP_NET_BIND_SERVICE)
        );
        assert_eq!(capability("Cap_Chown"), Ok(Capability::CAP_CHOWN));
        assert!(capability("cap_bogus").is_err());
    }

    #[test]
    fn umasks() {
        assert_eq!(umask("022"), Ok(0o022));
        assert_eq!(umask("0o077"), Ok(0o077));
        assert_eq!(umask("0"), Ok(0));
        assert!(umask("8").is_err());
        assert!(umask("1000").is_err());
        assert!(umask("").is_err());
    }

    #[test]
    fn nets() {
        assert_eq!(net(OsStr::new("host")), Ok(NetArg::Host));
        assert_eq!(net(OsStr::new("none")), Ok(NetArg::None));
        assert_eq!(
            net(OsStr::new("/run/netns/a")),
            Ok(NetArg::Join("/run/netns/a".into()))
        );
        assert!(net(OsStr::new("bogus")).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("64M"), Ok(64 << 20));
        assert_eq!(size("64m"), Ok(64 << 20));
        assert_eq!(size("1G"), Ok(1 << 30));
        assert_eq!(size("2KiB"), Ok(2048));
        assert_eq!(size("3MB"), Ok(3 << 20));
        assert_eq!(size("0"), Ok(0));
        for bad in ["", "M", "1Q", "-1", "1.5G", "99999999999T"] {
            assert!(size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tmpfs_values() {
        let t = tmpfs(OsStr::new("/tmp")).unwrap();
        assert_eq!((t.dst, t.size), (PathBuf::from("/tmp"), DEFAULT_TMPFS));
        let t = tmpfs(OsStr::new("/a:b:1M")).unwrap();
        assert_eq!((t.dst, t.size), (PathBuf::from("/a:b"), Size::mib(1)));
        assert!(tmpfs(OsStr::new("/x:0")).unwrap_err().contains("above 0"));
        assert!(tmpfs(OsStr::new("relative")).is_err());
        assert!(tmpfs(OsStr::new("/x:big")).is_err());
    }

    #[test]
    fn cpus() {
        let c = cpu("20%").unwrap();
        assert_eq!((c.quota_us(), c.period_us()), (20_000, 100_000));
        let c = cpu("0.5").unwrap();
        assert_eq!((c.quota_us(), c.period_us()), (50_000, 100_000));
        let c = cpu("2").unwrap();
        assert_eq!((c.quota_us(), c.period_us()), (200_000, 100_000));
        let c = cpu("12.5%").unwrap();
        assert_eq!(c.quota_us(), 12_500);
        let c = cpu("50ms/100ms").unwrap();
        assert_eq!((c.quota_us(), c.period_us()), (50_000, 100_000));
        for bad in [
            "0%",
            "0",
            "0ms/100ms",
            "abc",
            "-5%",
            "10ms/0",
            "%",
            "inf",
            "NaN",
        ] {
            assert!(cpu(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(port("443"), Ok(443));
        assert!(port("65536").is_err());
        assert!(port("http").is_err());
    }
}
