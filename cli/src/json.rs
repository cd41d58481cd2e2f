//! The JSON documents `--json` writes: an [`Outcome`], a failure, the host probe.

use std::os::unix::process::ExitStatusExt;

use ringfence::{Enforcement, HostInfo, Outcome, Report};
use serde_json::{Value, json};

use crate::failure::Failure;

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The enforcement report as a list of `{"layer", "description", "enforced"[, "substitute"][,
/// "reason"][, "hint"]}`; `layer` is the stable name (e.g. `namespace.pid`); `substitute` names
/// what holds a layer the host could not make.
pub fn report(r: &Report) -> Value {
    r.iter()
        .map(|(layer, e)| {
            let mut v = json!({
                "layer": layer.name(),
                "description": layer.to_string(),
                "enforced": r.is_enforced(layer),
            });
            match e {
                Enforcement::NotEnforced { reason, hint } => {
                    v["reason"] = json!(reason);
                    v["hint"] = json!(hint);
                }
                Enforcement::Substituted { substitute, reason } => {
                    v["substitute"] = json!(substitute);
                    v["reason"] = json!(reason);
                }
                _ => {}
            }
            v
        })
        .collect()
}

/// How the sandbox ended; `exit_code` is the CLI's own exit status. The cgroup usage fields
/// are `null` without cgroup limits or where the kernel does not count them.
pub fn outcome(o: &Outcome, exit_code: i32) -> Value {
    json!({
        "status": {"code": o.status.code(), "signal": o.status.signal()},
        "exit_code": exit_code,
        "timed_out": o.timed_out,
        "oom_killed": o.oom_killed,
        "usage": {
            "wall_ms": millis(o.usage.wall),
            "user_cpu_ms": millis(o.usage.user_cpu),
            "sys_cpu_ms": millis(o.usage.sys_cpu),
            "max_rss_bytes": o.usage.max_rss,
            "cgroup_cpu_ms": o.usage.cgroup_cpu.map(millis),
            "peak_memory_bytes": o.usage.peak_memory,
            "pids_peak": o.usage.pids_peak,
        },
        "violations": o.violations.iter().map(|v| json!({
            "syscall": v.syscall,
            "nr": v.nr,
            "args": v.args,
            "pid": v.pid,
            "action": crate::profile::action(v.action),
            "count": v.count,
        })).collect::<Vec<_>>(),
        "report": report(&o.report),
    })
}

/// Why the sandbox could not be run.
pub fn failure(f: &Failure) -> Value {
    json!({
        "error": {
            "message": f.message(),
            "stage": f.stage().map(|s| s.name()),
            "errno": f.errno(),
            "hint": f.hint(),
            "exit_code": f.exit_code(),
        }
    })
}

/// What this host supports.
pub fn host(h: &HostInfo) -> Value {
    let user_ns = match &h.user_ns {
        Ok(()) => json!({"available": true}),
        Err(u) => json!({"available": false, "reason": u.reason, "hint": u.hint}),
    };
    json!({
        "kernel": h.kernel,
        "euid": h.euid,
        "egid": h.egid,
        "privileged": h.privileged,
        "user_ns": user_ns,
        "namespaces": h.namespaces.iter().map(|n| n.name()).collect::<Vec<_>>(),
        "cap_last_cap": h.cap_last_cap,
    })
}
