//! The limits a sandbox's cgroup gets ([`CgroupConfig`], [`Cpu`]) and their validation.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::CgroupError;

/// The smallest memory limit accepted: 1 MiB.
///
/// cgroup v2 takes any `memory.max` and v1 rounds `memory.limit_in_bytes` to a page, but
/// below about a megabyte not even a shell's page tables and kernel stack fit, so the process
/// would be OOM-killed at its first page fault; a smaller value is almost certainly a unit
/// mistake (bytes, not KiB or MiB).
pub const MIN_MEMORY: u64 = 1 << 20;

/// The CFS bandwidth period and quota bounds of the kernel (`cpu.max`,
/// `cpu.cfs_period_us`/`cpu.cfs_quota_us`): period 1 ms to 1 s, quota at least 1 ms.
const MIN_PERIOD_US: u64 = 1_000;
const MAX_PERIOD_US: u64 = 1_000_000;
const MIN_QUOTA_US: u64 = 1_000;

/// A CPU bandwidth limit: at most `quota` of CPU time in every `period` of wall time, summed
/// over all the sandbox's processes (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` and
/// `cpu.cfs_period_us`).
///
/// ```
/// use ringfence::cgroup::Cpu;
/// use std::time::Duration;
///
/// // A fifth of one CPU: 20 ms every 100 ms.
/// assert_eq!(Cpu::percent(20).quota_us(), 20_000);
/// assert_eq!(Cpu::percent(20).period_us(), 100_000);
/// // Two and a half CPUs.
/// let c = Cpu::quota(Duration::from_millis(250), Duration::from_millis(100));
/// assert_eq!(c.cpus(), 2.5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cpu {
    quota_us: u64,
    period_us: u64,
}

impl Cpu {
    /// The period used by [`Cpu::percent`]: 100 ms, the kernel's default.
    pub const DEFAULT_PERIOD: Duration = Duration::from_millis(100);

    /// `percent` % of one CPU (e.g. 20 → 20 ms per 100 ms; 250 → two and a half CPUs).
    pub fn percent(percent: u32) -> Cpu {
        Cpu {
            quota_us: u64::from(percent) * 1_000,
            period_us: 100_000,
        }
    }

    /// `quota` of CPU time per `period` of wall time (both rounded down to microseconds).
    pub fn quota(quota: Duration, period: Duration) -> Cpu {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Cpu {
            quota_us: us(quota),
            period_us: us(period),
        }
    }

    /// The quota in microseconds.
    pub fn quota_us(&self) -> u64 {
        self.quota_us
    }

    /// The period in microseconds.
    pub fn period_us(&self) -> u64 {
        self.period_us
    }

    /// How many CPUs' worth of time this allows (quota / period).
    pub fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }

    fn validate(&self, online: usize) -> Result<(), CgroupError> {
        if self.quota_us == 0 {
            return invalid("a CPU quota of zero would never let the sandbox run".into());
        }
        if !(MIN_PERIOD_US..=MAX_PERIOD_US).contains(&self.period_us) {
            return invalid(format!(
                "CPU period {} µs is outside what the kernel accepts (1000..=1000000 µs)",
                self.period_us
            ));
        }
        if self.quota_us < MIN_QUOTA_US {
            return invalid(format!(
                "CPU quota {} µs is below the kernel's minimum of 1000 µs",
                self.quota_us
            ));
        }
        if self.quota_us > self.period_us.saturating_mul(online as u64) {
            return invalid(format!(
                "CPU quota {} µs per {} µs is {:.0} % of one CPU, more than the {online} CPU(s) online ({} %)",
                self.quota_us,
                self.period_us,
                self.cpus() * 100.0,
                online * 100
            ));
        }
        Ok(())
    }
}

/// The resource limits of a sandbox's cgroup. Pure data: nothing happens until a sandbox is
/// spawned; [`validate`](Self::validate) checks it against this host.
///
/// Every `None` means "no limit". The cgroup is created below the caller's own cgroup of each
/// hierarchy (or below [`parent`](Self::parent)) and removed when the sandbox ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupConfig {
    /// CPU bandwidth limit (`cpu.max`; v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`).
    pub cpu: Option<Cpu>,
    /// Relative CPU weight under contention, 1..=10000, default 100 (`cpu.weight`; v1
    /// `cpu.shares`, converted as runc does: see [`weight_to_shares`]).
    pub cpu_weight: Option<u32>,
    /// Memory limit in bytes, at least [`MIN_MEMORY`] (`memory.max`; v1
    /// `memory.limit_in_bytes`). Exceeding it gets a process OOM-killed.
    pub memory: Option<u64>,
    /// Swap the sandbox may use in bytes, on top of [`memory`](Self::memory), which it needs
    /// (`memory.swap.max`; v1 `memory.memsw.limit_in_bytes` = memory + swap). `Some(0)`
    /// forbids swapping.
    pub swap: Option<u64>,
    /// Maximum number of processes and threads, at least 1 (`pids.max`). With a pid namespace
    /// the sandbox's init process counts too.
    pub pids: Option<u64>,
    /// The CPUs the sandbox may run on, as a kernel CPU list such as `"0-1,3"`
    /// (`cpuset.cpus`).
    pub cpuset: Option<String>,
    /// Create the sandbox's cgroup below this cgroup directory instead of the caller's own
    /// cgroup, e.g. `/sys/fs/cgroup/ci.slice`. On v1, give the directory in any one
    /// hierarchy: its path relative to that hierarchy's mount is used in every hierarchy.
    pub parent: Option<PathBuf>,
}

impl CgroupConfig {
    /// Whether no limit and no parent was asked for.
    pub fn is_empty(&self) -> bool {
        self == &CgroupConfig::default()
    }

    /// Check every value against the kernel's ranges and this host (online CPUs, the parent
    /// directory); creating a cgroup runs this first.
    pub fn validate(&self) -> Result<(), CgroupError> {
        let online = online_cpus();
        if let Some(cpu) = &self.cpu {
            cpu.validate(online.len().max(1))?;
        }
        if let Some(w) = self.cpu_weight {
            if !(1..=10_000).contains(&w) {
                return invalid(format!("CPU weight {w} is outside 1..=10000"));
            }
        }
        if let Some(m) = self.memory {
            if m < MIN_MEMORY {
                return invalid(format!(
                    "memory limit {m} bytes is below the minimum of 1 MiB ({MIN_MEMORY} bytes); limits are in bytes"
                ));
            }
        }
        if let Some(s) = self.swap {
            let Some(m) = self.memory else {
                return invalid("a swap limit needs a memory limit too".into());
            };
            if m.checked_add(s).is_none() {
                return invalid(format!("memory {m} + swap {s} bytes overflows"));
            }
        }
        if self.pids == Some(0) {
            return invalid(
                "a pids limit of 0 would refuse the sandbox's first process; use at least 1".into(),
            );
        }
        if let Some(list) = &self.cpuset {
            let cpus = parse_cpu_list(list)?;
            if !online.is_empty() {
                if let Some(c) = cpus.iter().find(|c| !online.contains(c)) {
                    return invalid(format!(
                        "cpuset {list:?} names CPU {c}, which is not online (online: {})",
                        format_cpu_list(&online)
                    ));
                }
            }
        }
        if let Some(p) = &self.parent {
            check_cgroup_dir(p)?;
        }
        Ok(())
    }
}

fn invalid<T>(what: String) -> Result<T, CgroupError> {
    Err(CgroupError::InvalidConfig { what })
}

/// `Ok` if `p` is a directory on a cgroup or cgroup2 filesystem.
pub(crate) fn check_cgroup_dir(p: &Path) -> Result<(), CgroupError> {
    let not = || CgroupError::NotACgroup {
        path: p.to_path_buf(),
    };
    if !p.is_absolute() || !fs::metadata(p).is_ok_and(|m| m.is_dir()) {
        return Err(not());
    }
    let fs = nix::sys::statfs::statfs(p).map_err(|_| not())?;
    let t = fs.filesystem_type();
    if t != nix::sys::statfs::CGROUP2_SUPER_MAGIC && t != nix::sys::statfs::CGROUP_SUPER_MAGIC {
        return Err(not());
    }
    Ok(())
}

/// The online CPUs (`/sys/devices/system/cpu/online`), empty if unknown.
pub(crate) fn online_cpus() -> Vec<u32> {
    fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(&s).ok())
        .unwrap_or_default()
}

/// Parse a kernel CPU list (`"0-3,5,7-8"`) into sorted, distinct CPU numbers.
pub(crate) fn parse_cpu_list(list: &str) -> Result<Vec<u32>, CgroupError> {
    let bad = |why: &str| CgroupError::InvalidConfig {
        what: format!("cpuset {list:?} is not a CPU list like \"0-1,3\": {why}"),
    };
    let mut out = Vec::new();
    for part in list.trim().split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad("empty element"));
        }
        let num = |s: &str| s.trim().parse::<u32>().map_err(|_| bad("not a number"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad("a range goes downwards"));
                }
                if b - a > 65_536 {
                    return Err(bad("range too large"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Format CPU numbers as a kernel CPU list (`[0,1,2,5]` → `"0-2,5"`).
pub(crate) fn format_cpu_list(cpus: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// cgroup v1 `cpu.shares` (2..=262144) for a v2 `cpu.weight` (1..=10000).
///
/// runc converts shares to weight with `1 + (shares - 2) * 9999 / 262142` (rounding down);
/// this is its inverse rounding up, so [`shares_to_weight`] gives the weight back exactly.
pub fn weight_to_shares(weight: u32) -> u64 {
    let w = u64::from(weight.clamp(1, 10_000));
    2 + ((w - 1) * 262_142).div_ceil(9_999)
}

/// cgroup v2 `cpu.weight` for a v1 `cpu.shares` value, as runc converts it.
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn shares_to_weight(shares: u64) -> u32 {
    let s = shares.clamp(2, 262_144);
    (1 + (s - 2) * 9_999 / 262_142) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_math() {
        let c = Cpu::percent(20);
        assert_eq!((c.quota_us(), c.period_us()), (20_000, 100_000));
        assert!((c.cpus() - 0.2).abs() < 1e-9);
        let c = Cpu::quota(Duration::from_micros(50_500), Duration::from_millis(50));
        assert_eq!((c.quota_us(), c.period_us()), (50_500, 50_000));
        assert!(Cpu::percent(100).validate(1).is_ok());
        assert!(Cpu::percent(200).validate(2).is_ok());
        assert!(Cpu::percent(201).validate(2).is_err());
        assert!(Cpu::percent(0).validate(2).is_err());
        assert!(
            Cpu::quota(Duration::from_micros(999), Duration::from_millis(100))
                .validate(2)
                .is_err()
        );
        assert!(
            Cpu::quota(Duration::from_millis(1), Duration::from_micros(999))
                .validate(2)
                .is_err()
        );
        assert!(
            Cpu::quota(Duration::from_millis(1), Duration::from_millis(1001))
                .validate(2)
                .is_err()
        );
        let e = Cpu::percent(500).validate(2).unwrap_err().to_string();
        assert!(e.contains("500 %") && e.contains("2 CPU(s)"), "{e}");
    }

    #[test]
    fn shares_and_weight() {
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // runc's own example: 1024 shares (the v1 default) → weight 39.
        assert_eq!(shares_to_weight(1024), 39);
        for w in 1..=10_000 {
            assert_eq!(shares_to_weight(weight_to_shares(w)), w, "weight {w}");
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1,3").unwrap(), [0, 1, 3]);
        assert_eq!(parse_cpu_list("3,1-2,2\n").unwrap(), [1, 2, 3]);
        assert_eq!(parse_cpu_list("7").unwrap(), [7]);
        for bad in ["", "a", "1-", "3-1", "1,,2", "-1", "0-99999999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(format_cpu_list(&[]), "");
    }

    #[test]
    fn validation() {
        let ok = CgroupConfig {
            cpu: Some(Cpu::percent(20)),
            cpu_weight: Some(100),
            memory: Some(64 << 20),
            swap: Some(0),
            pids: Some(32),
            cpuset: Some("0".into()),
            parent: None,
        };
        ok.validate().unwrap();
        assert!(!ok.is_empty());
        assert!(CgroupConfig::default().is_empty());
        CgroupConfig::default().validate().unwrap();

        let bad = |c: CgroupConfig| c.validate().unwrap_err().to_string();
        let e = bad(CgroupConfig {
            memory: Some(4096),
            ..Default::default()
        });
        assert!(e.contains("below the minimum of 1 MiB"), "{e}");
        let e = bad(CgroupConfig {
            swap: Some(1 << 20),
            ..Default::default()
        });
        assert!(e.contains("needs a memory limit"), "{e}");
        bad(CgroupConfig {
            memory: Some(u64::MAX),
            swap: Some(1),
            ..Default::default()
        });
        bad(CgroupConfig {
            pids: Some(0),
            ..Default::default()
        });
        bad(CgroupConfig {
            cpu_weight: Some(0),
            ..Default::default()
        });
        bad(CgroupConfig {
            cpu_weight: Some(10_001),
            ..Default::default()
        });
        bad(CgroupConfig {
            cpu: Some(Cpu::percent(0)),
            ..Default::default()
        });
        let e = bad(CgroupConfig {
            cpuset: Some("4095".into()),
            ..Default::default()
        });
        assert!(e.contains("not online"), "{e}");
        let e = CgroupConfig {
            parent: Some("/tmp".into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(matches!(e, CgroupError::NotACgroup { .. }), "{e}");
        let e = CgroupConfig {
            parent: Some("relative/path".into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(matches!(e, CgroupError::NotACgroup { .. }), "{e}");
    }
}
