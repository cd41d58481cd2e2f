//! The public cgroup surface: host detection as `ringfence doctor` shows it, configuration
//! validation and error messages.
//!
//! The tests that create real cgroups (limits enforced, usage, kill-all, cleanup, stale sweep)
//! need the crate-internal sandbox cgroup and live next to it in `src/cgroup/tests.rs`
//! (`cargo test --lib cgroup::`).

use std::path::Path;
use std::time::Duration;

use ringfence::cgroup::{
    CgroupBackend, CgroupConfig, CgroupError, Cpu, MIN_MEMORY, cgroup_info, shares_to_weight,
    weight_to_shares,
};

#[test]
fn host_detection_matches_proc_self_cgroup() {
    let info = cgroup_info();
    eprintln!("{info:#?}");
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    match &info.backend {
        CgroupBackend::V2 { mount } => {
            let own = info.own_v2.as_ref().expect("own cgroup on v2");
            assert!(own.starts_with(mount), "{own:?} not below {mount:?}");
            let line = proc_cgroup.lines().find(|l| l.starts_with("0::")).unwrap();
            let rel = line.trim_start_matches("0::").trim_start_matches('/');
            assert!(own.ends_with(rel), "{own:?} vs {line}");
            for c in info.controllers.values() {
                assert_eq!(&c.own, own);
            }
        }
        CgroupBackend::V1 { hierarchies } => {
            assert!(info.own_v2.is_none());
            for (name, c) in &info.controllers {
                assert!(
                    c.own.starts_with(&hierarchies[name]),
                    "{name}: {:?} not below its mount",
                    c.own
                );
                assert!(c.enabled);
                let line = proc_cgroup
                    .lines()
                    .find(|l| {
                        l.split(':')
                            .nth(1)
                            .is_some_and(|cs| cs.split(',').any(|x| x == name))
                    })
                    .unwrap_or_else(|| panic!("{name} not in /proc/self/cgroup"));
                let rel = line.splitn(3, ':').nth(2).unwrap().trim_start_matches('/');
                assert!(c.own.ends_with(rel), "{name}: {:?} vs {line}", c.own);
            }
        }
        CgroupBackend::Unavailable { reason } => {
            eprintln!("SKIPPED host_detection_matches_proc_self_cgroup: {reason}")
        }
        _ => {}
    }
    // Found once.
    assert!(std::ptr::eq(info, cgroup_info()));
}

#[test]
fn valid_configuration() {
    let cfg = CgroupConfig {
        cpu: Some(Cpu::quota(
            Duration::from_millis(50),
            Duration::from_millis(100),
        )),
        cpu_weight: Some(10_000),
        memory: Some(MIN_MEMORY),
        swap: Some(0),
        pids: Some(1),
        cpuset: Some("0".into()),
        parent: None,
    };
    cfg.validate().unwrap();
    assert!(!cfg.is_empty());
    assert!(CgroupConfig::default().is_empty());
}

#[test]
fn bad_input_gets_clear_errors() {
    let invalid = |cfg: CgroupConfig, expect: &str| {
        let e = cfg.validate().unwrap_err();
        assert!(matches!(e, CgroupError::InvalidConfig { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(expect), "{msg:?} does not say {expect:?}");
    };
    invalid(
        CgroupConfig {
            memory: Some(MIN_MEMORY - 1),
            ..Default::default()
        },
        "below the minimum of 1 MiB",
    );
    invalid(
        CgroupConfig {
            cpu: Some(Cpu::percent(0)),
            ..Default::default()
        },
        "quota of zero",
    );
    invalid(
        CgroupConfig {
            cpu: Some(Cpu::percent(100_000)),
            ..Default::default()
        },
        "CPU(s) online",
    );
    invalid(
        CgroupConfig {
            cpuset: Some("100000".into()),
            ..Default::default()
        },
        "not online",
    );
    invalid(
        CgroupConfig {
            cpuset: Some("1-0".into()),
            ..Default::default()
        },
        "CPU list",
    );
    invalid(
        CgroupConfig {
            pids: Some(0),
            ..Default::default()
        },
        "pids limit of 0",
    );
    invalid(
        CgroupConfig {
            swap: Some(0),
            ..Default::default()
        },
        "needs a memory limit",
    );
    let e = CgroupConfig {
        parent: Some("/proc".into()),
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(
        matches!(&e, CgroupError::NotACgroup { path } if path == Path::new("/proc")),
        "{e:?}"
    );
    assert_eq!(e.path(), Some(Path::new("/proc")));
    assert!(e.to_string().contains("not a cgroup directory"), "{e}");
}

#[test]
fn cpu_and_weight_conversions() {
    assert_eq!(Cpu::percent(20).quota_us(), 20_000);
    assert_eq!(Cpu::percent(20).period_us(), 100_000);
    assert_eq!(Cpu::DEFAULT_PERIOD, Duration::from_millis(100));
    assert_eq!(weight_to_shares(100), 2 + (99 * 262_142u64).div_ceil(9_999));
    assert_eq!(shares_to_weight(weight_to_shares(100)), 100);
}
