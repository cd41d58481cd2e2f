//! Substitutes for layers this host cannot make (see [`crate::probe`]): the parent decides them
//! before the clone, from what was refused; the sandboxed process only applies plain data
//! (resource limits, one more Landlock ruleset, an environment entry).
//!
//! - **Limits without a writable cgroup**: the process limit becomes `RLIMIT_NPROC` inside the
//!   sandbox's own user namespace (counted per user namespace since Linux 5.14: it caps the
//!   sandbox, not the user); the memory limit becomes `RLIMIT_AS` and `RLIMIT_DATA` of every
//!   process (per process, not in aggregate). The CPU quota and weight, the cpuset and swap
//!   have no substitute.

use crate::cgroup::{CgroupConfig, CgroupError};
use crate::error::{Error, Result};
use crate::probe::{Compat, Enforcement, HostInfo, Layer};

/// What to tell a caller whose cgroup limits cannot all be had.
const CGROUP_HINT: &str = "run as root, or in a delegated cgroup v2 (systemd-run --user --scope -p Delegate=yes, or cgroup_parent on a directory you own); or drop the limits that have no substitute; or choose best effort (Compat::BestEffort, ringfence run --best-effort)";

/// The [`Compat`] level of each cgroup limit, as it was when the limit was set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LimitCompat {
    pub cpu: Compat,
    pub cpu_weight: Compat,
    pub memory: Compat,
    pub swap: Compat,
    pub pids: Compat,
    pub cpuset: Compat,
    pub parent: Compat,
}

/// One resource limit for the sandboxed process, as `setrlimit` takes it.
pub(crate) type RawRlimit = (libc::__rlimit_resource_t, libc::rlimit);

/// The substitutes for cgroup limits that could not be had: the resource limits to add to the
/// sandbox's own, and the report entry.
#[derive(Debug)]
pub(crate) struct LimitSubstitute {
    /// The sandbox's resource limits with the substitutes merged in (the lower value wins).
    pub rlimits: Vec<RawRlimit>,
    /// [`Layer::Cgroup`]'s entry in the report.
    pub enforcement: Enforcement,
}

/// The hard limit this process has for `resource` (a sandboxed process cannot raise it).
fn current_hard(resource: libc::__rlimit_resource_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: getrlimit into a struct on this stack.
    unsafe { libc::getrlimit(resource, &mut lim) };
    lim.rlim_max
}

/// Put `value` (soft and hard) into `rlimits`, keeping a lower value already there and never
/// above this process's own hard limit.
fn merge(rlimits: &mut Vec<RawRlimit>, resource: libc::__rlimit_resource_t, value: u64) {
    let value = (value as libc::rlim_t).min(current_hard(resource));
    match rlimits.iter_mut().find(|(r, _)| *r == resource) {
        Some((_, lim)) => {
            lim.rlim_cur = lim.rlim_cur.min(value);
            lim.rlim_max = lim.rlim_max.min(value);
        }
        None => rlimits.push((
            resource,
            libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            },
        )),
    }
}

/// Substitutes for the limits of `cfg`, which could not be had because of `err`. `own_userns`
/// says whether the sandbox gets a user namespace of its own (where `RLIMIT_NPROC` counts only
/// its processes). Fails when a limit has no substitute and `compat` is required.
pub(crate) fn limits(
    cfg: &CgroupConfig,
    err: &CgroupError,
    compat: &LimitCompat,
    own_userns: bool,
    host: &HostInfo,
    base: &[RawRlimit],
) -> Result<LimitSubstitute> {
    let mut rlimits = base.to_vec();
    let mut held: Vec<String> = Vec::new();
    let mut missing: Vec<(String, Compat)> = Vec::new();
    if let Some(bytes) = cfg.memory {
        merge(&mut rlimits, libc::RLIMIT_AS, bytes);
        merge(&mut rlimits, libc::RLIMIT_DATA, bytes);
        held.push(format!(
            "memory as RLIMIT_AS/RLIMIT_DATA of {bytes} bytes per process (not in aggregate)"
        ));
    }
    if let Some(n) = cfg.pids {
        if !own_userns {
            missing.push((format!(
                "the process limit (without a user namespace of its own RLIMIT_NPROC would count every process of uid {}, not the sandbox's)",
                host.euid
            ), compat.pids));
        } else if host.euid == 0 {
            missing.push((
                "the process limit (RLIMIT_NPROC does not bind root)".into(),
                compat.pids,
            ));
        } else {
            merge(&mut rlimits, libc::RLIMIT_NPROC, n);
            held.push(format!(
                "processes as RLIMIT_NPROC of {n} in the sandbox's user namespace"
            ));
        }
    }
    let none = [
        (cfg.cpu.is_some(), "the CPU quota", compat.cpu),
        (
            cfg.cpu_weight.is_some(),
            "the CPU weight",
            compat.cpu_weight,
        ),
        (cfg.cpuset.is_some(), "the cpuset", compat.cpuset),
        (cfg.swap.is_some(), "the swap limit", compat.swap),
    ];
    missing.extend(
        none.iter()
            .filter(|(asked, _, _)| *asked)
            .map(|(_, what, c)| (what.to_string(), *c)),
    );
    if let (Some(parent), true) = (&cfg.parent, held.is_empty() && missing.is_empty()) {
        missing.push((
            format!("a cgroup below {}", parent.display()),
            compat.parent,
        ));
    }
    let why = first_sentence(err);
    if missing.is_empty() {
        return Ok(LimitSubstitute {
            rlimits,
            enforcement: Enforcement::Substituted {
                substitute: held.join("; "),
                reason: format!("no cgroup: {why}"),
            },
        });
    }
    let names: Vec<&str> = missing.iter().map(|(w, _)| w.as_str()).collect();
    let mut reason = format!("no cgroup ({why}); no substitute for {}", names.join(", "));
    if !held.is_empty() {
        reason.push_str(&format!("; substituted: {}", held.join("; ")));
    }
    if missing.iter().any(|(_, c)| *c == Compat::Required) {
        return Err(Error::Unsupported {
            layer: Layer::Cgroup,
            reason,
            hint: CGROUP_HINT,
        });
    }
    Ok(LimitSubstitute {
        rlimits,
        enforcement: Enforcement::NotEnforced {
            reason,
            hint: CGROUP_HINT,
        },
    })
}

/// A cgroup error's message without its hint (the substitute's report has its own).
fn first_sentence(err: &CgroupError) -> String {
    let text = err.to_string();
    match text.find("; hint:") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Whether a failure to make the cgroup may be met with substitutes: not for a configuration
/// that is wrong in itself.
pub(crate) fn substitutable(err: &CgroupError) -> bool {
    !matches!(
        err,
        CgroupError::InvalidConfig { .. } | CgroupError::NotACgroup { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied() -> CgroupError {
        CgroupError::Unsupported {
            controller: "cgroup",
            reason: "/sys/fs/cgroup/x is not writable by uid 1000".into(),
            hint: "h",
        }
    }

    fn host(euid: u32) -> HostInfo {
        let mut h = crate::probe::probe().clone();
        h.euid = euid;
        h
    }

    #[test]
    fn memory_and_pids_are_substituted_in_a_user_namespace() {
        let cfg = CgroupConfig {
            memory: Some(256 << 20),
            pids: Some(128),
            ..CgroupConfig::default()
        };
        let base = [(
            libc::RLIMIT_AS,
            libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: 1 << 30,
            },
        )];
        let required = LimitCompat::default();
        let s = limits(&cfg, &denied(), &required, true, &host(1000), &base).unwrap();
        let get = |r| s.rlimits.iter().find(|(x, _)| *x == r).map(|(_, l)| *l);
        let as_ = get(libc::RLIMIT_AS).unwrap();
        assert_eq!((as_.rlim_cur, as_.rlim_max), (1 << 20, 256 << 20));
        assert_eq!(get(libc::RLIMIT_DATA).unwrap().rlim_cur, 256 << 20);
        assert_eq!(get(libc::RLIMIT_NPROC).unwrap().rlim_max, 128);
        match &s.enforcement {
            Enforcement::Substituted { substitute, reason } => {
                assert!(substitute.contains("RLIMIT_NPROC of 128"), "{substitute}");
                assert!(substitute.contains("per process"), "{substitute}");
                assert!(reason.contains("not writable"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn no_substitute_fails_when_required_and_is_reported_otherwise() {
        let cfg = CgroupConfig {
            cpu: Some(crate::cgroup::Cpu::percent(20)),
            pids: Some(10),
            ..CgroupConfig::default()
        };
        let required = LimitCompat::default();
        let e = limits(&cfg, &denied(), &required, true, &host(1000), &[]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("CPU quota"), "{msg}");
        assert!(e.hint().unwrap().contains("best effort"), "{msg}");
        // Best effort for the CPU quota only: the process limit, required, has no substitute
        // without a user namespace.
        let cpu_only = LimitCompat {
            cpu: Compat::BestEffort,
            ..LimitCompat::default()
        };
        assert!(limits(&cfg, &denied(), &cpu_only, false, &host(1000), &[]).is_err());
        let cpu_ok = limits(&cfg, &denied(), &cpu_only, true, &host(1000), &[]).unwrap();
        assert!(matches!(
            cpu_ok.enforcement,
            Enforcement::NotEnforced { .. }
        ));
        let lax = LimitCompat {
            cpu: Compat::BestEffort,
            pids: Compat::BestEffort,
            ..LimitCompat::default()
        };
        let s = limits(&cfg, &denied(), &lax, false, &host(1000), &[]).unwrap();
        assert!(s.rlimits.is_empty());
        match s.enforcement {
            Enforcement::NotEnforced { reason, .. } => {
                assert!(reason.contains("CPU quota"), "{reason}");
                assert!(reason.contains("uid 1000"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
    }
}
