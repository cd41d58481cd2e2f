//! The `cpuset` controller: `cpuset.cpus` (and on v1 `cpuset.mems`, which a new v1 cpuset
//! cgroup has empty and which must be filled before any process can join).

use std::path::Path;

use super::config::{format_cpu_list, parse_cpu_list};
use super::controller::Controller;
use super::{CgroupConfig, CgroupError, fs};

pub(crate) struct CpusetController;

/// The CPU list to write: normalised (`"1,0-1"` → `"0-1"`).
fn cpus(cfg: &CgroupConfig) -> Result<Option<String>, CgroupError> {
    match &cfg.cpuset {
        Some(list) => Ok(Some(format_cpu_list(&parse_cpu_list(list)?))),
        None => Ok(None),
    }
}

impl Controller for CpusetController {
    const NAME: &'static str = "cpuset";

    fn wanted(cfg: &CgroupConfig) -> bool {
        cfg.cpuset.is_some()
    }

    fn apply_v2(cfg: &CgroupConfig, dir: &Path) -> Result<(), CgroupError> {
        // An empty cpuset.mems means "the parent's": nothing to copy on v2.
        if let Some(c) = cpus(cfg)? {
            fs::write(dir, "cpuset.cpus", &c)?;
        }
        Ok(())
    }

    fn apply_v1(cfg: &CgroupConfig, dir: &Path) -> Result<(), CgroupError> {
        // ORDER: mems first (copied from the parent), then cpus: a v1 cpuset cgroup with either
        // empty refuses processes (ENOSPC), and nothing may join before both are set.
        let parent = dir.parent().unwrap_or(dir);
        let mems = fs::read(parent, "cpuset.mems")?;
        fs::write(dir, "cpuset.mems", mems.trim())?;
        let c = match cpus(cfg)? {
            Some(c) => c,
            None => fs::read(parent, "cpuset.cpus")?.trim().to_owned(),
        };
        fs::write(dir, "cpuset.cpus", &c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::fs::TempDir;

    #[test]
    fn v2_writes_normalised_cpus() {
        let t = TempDir::new();
        t.files(&["cpuset.cpus"]);
        let cfg = CgroupConfig {
            cpuset: Some("1, 0-1".into()),
            ..Default::default()
        };
        CpusetController::apply_v2(&cfg, t.path()).unwrap();
        assert_eq!(t.get("cpuset.cpus"), "0-1");
    }

    #[test]
    fn v1_copies_mems_from_the_parent() {
        let parent = TempDir::new();
        parent
            .file("cpuset.mems", "0\n")
            .file("cpuset.cpus", "0-3\n");
        let child = parent.path().join("sb");
        std::fs::create_dir(&child).unwrap();
        std::fs::write(child.join("cpuset.mems"), "").unwrap();
        std::fs::write(child.join("cpuset.cpus"), "").unwrap();
        let cfg = CgroupConfig {
            cpuset: Some("2".into()),
            ..Default::default()
        };
        CpusetController::apply_v1(&cfg, &child).unwrap();
        assert_eq!(
            std::fs::read_to_string(child.join("cpuset.mems")).unwrap(),
            "0"
        );
        assert_eq!(
            std::fs::read_to_string(child.join("cpuset.cpus")).unwrap(),
            "2"
        );
        CpusetController::apply_v1(&CgroupConfig::default(), &child).unwrap();
        assert_eq!(
            std::fs::read_to_string(child.join("cpuset.cpus")).unwrap(),
            "0-3"
        );
    }
}
