//! The `cpu` controller: bandwidth (`cpu.max`; v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`) and
//! weight (`cpu.weight`; v1 `cpu.shares`).

use std::path::Path;

use super::config::weight_to_shares;
use super::controller::Controller;
use super::{CgroupConfig, CgroupError, fs};

pub(crate) struct CpuController;

impl Controller for CpuController {
    const NAME: &'static str = "cpu";

    fn wanted(cfg: &CgroupConfig) -> bool {
        cfg.cpu.is_some() || cfg.cpu_weight.is_some()
    }

    fn apply_v2(cfg: &CgroupConfig, dir: &Path) -> Result<(), CgroupError> {
        if let Some(cpu) = &cfg.cpu {
            fs::write(
                dir,
                "cpu.max",
                &format!("{} {}", cpu.quota_us(), cpu.period_us()),
            )?;
        }
        if let Some(w) = cfg.cpu_weight {
            fs::write(dir, "cpu.weight", &w.to_string())?;
        }
        Ok(())
    }

    fn apply_v1(cfg: &CgroupConfig, dir: &Path) -> Result<(), CgroupError> {
        if let Some(cpu) = &cfg.cpu {
            // ORDER: the period first. The kernel checks quota/period against the parent's
            // bandwidth on every write; in a new cgroup the quota is still -1 (unlimited), so
            // setting the period first never fails that check spuriously.
            fs::write(dir, "cpu.cfs_period_us", &cpu.period_us().to_string())?;
            fs::write(dir, "cpu.cfs_quota_us", &cpu.quota_us().to_string())?;
        }
        if let Some(w) = cfg.cpu_weight {
            fs::write(dir, "cpu.shares", &weight_to_shares(w).to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Cpu;
    use crate::cgroup::fs::TempDir;

    fn cfg() -> CgroupConfig {
        CgroupConfig {
            cpu: Some(Cpu::percent(20)),
            cpu_weight: Some(100),
            ..Default::default()
        }
    }

    #[test]
    fn v2_files() {
        let t = TempDir::new();
        t.files(&["cpu.max", "cpu.weight"]);
        CpuController::apply_v2(&cfg(), t.path()).unwrap();
        assert_eq!(t.get("cpu.max"), "20000 100000");
        assert_eq!(t.get("cpu.weight"), "100");
    }

    #[test]
    fn v1_files() {
        let t = TempDir::new();
        t.files(&["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"]);
        CpuController::apply_v1(&cfg(), t.path()).unwrap();
        assert_eq!(t.get("cpu.cfs_period_us"), "100000");
        assert_eq!(t.get("cpu.cfs_quota_us"), "20000");
        assert_eq!(t.get("cpu.shares"), weight_to_shares(100).to_string());
    }

    #[test]
    fn nothing_wanted_nothing_written() {
        let t = TempDir::new();
        assert!(!CpuController::wanted(&CgroupConfig::default()));
        CpuController::apply_v2(&CgroupConfig::default(), t.path()).unwrap();
        CpuController::apply_v1(&CgroupConfig::default(), t.path()).unwrap();
    }
}
