//! The `pids` controller: `pids.max` (the same file on v1 and v2).

use std::path::Path;

use super::controller::Controller;
use super::{CgroupConfig, CgroupError, fs};

pub(crate) struct PidsController;

impl Controller for PidsController {
    const NAME: &'static str = "pids";

    fn wanted(cfg: &CgroupConfig) -> bool {
        cfg.pids.is_some()
    }

    fn apply_v2(cfg: &CgroupConfig, dir: &Path) -> Result<(), CgroupError> {
        // validate() refuses 0: runc treats 0 as "unlimited" and youki maps it to 1; a
        // sandbox rejects it instead of guessing.
        if let Some(n) = cfg.pids {
            fs::write(dir, "pids.max", &n.to_string())?;
        }
        Ok(())
    }

    fn apply_v1(cfg: &CgroupConfig, dir: &Path) -> Result<(), CgroupError> {
        Self::apply_v2(cfg, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::fs::TempDir;

    #[test]
    fn pids_max() {
        let t = TempDir::new();
        t.files(&["pids.max"]);
        let cfg = CgroupConfig {
            pids: Some(32),
            ..Default::default()
        };
        PidsController::apply_v2(&cfg, t.path()).unwrap();
        assert_eq!(t.get("pids.max"), "32");
        t.file("pids.max", "max");
        PidsController::apply_v1(&cfg, t.path()).unwrap();
        assert_eq!(t.get("pids.max"), "32");
    }
}
