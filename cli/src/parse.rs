//! Parsers for flag values: durations, resource limits, capabilities, umasks, network choices.
//!
//! Each returns a `String` error that clap shows after "invalid value '...' for '--flag'", so
//! the messages say what was expected rather than repeating the input.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ringfence::{Capability, Rlimit};

/// A duration: a number (decimals allowed) followed by `ms`, `s`, `m`, `h` or `d`; a bare
/// number is seconds. `0` is allowed (see [`timeout`] for the flag that refuses it).
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
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
    /// A path to a network namespace file to join.
    Join(PathBuf),
}

/// `host`, `none`, or a path (anything with a `/`) to a network namespace file.
pub fn net(s: &OsStr) -> Result<NetArg, String> {
    match s.to_str() {
        Some("host") => Ok(NetArg::Host),
        Some("none") => Ok(NetArg::None),
        _ if s.as_encoded_bytes().contains(&b'/') => Ok(NetArg::Join(PathBuf::from(s))),
        _ => Err(
            "expected `host`, `none`, or the path of a network namespace file (e.g. /proc/PID/ns/net or /run/netns/NAME)"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
