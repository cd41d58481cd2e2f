//! The `memory` controller: limit (`memory.max`; v1 `memory.limit_in_bytes`) and swap
//! (`memory.swap.max`; v1 `memory.memsw.limit_in_bytes`, which counts memory plus swap).

use std::path::Path;

use super::controller::Controller;
use super::{CgroupConfig, CgroupError, fs};

pub(crate) struct MemoryController;

const SWAP_HINT: &str = "the kernel does not account swap per cgroup: boot with swapaccount=1 (v1) or a kernel with CONFIG_MEMCG_SWAP, or drop the swap limit";

fn swap_unsupported(dir: &Path, file: &str) -> CgroupError {
    CgroupError::Unsupported {
        controller: "memory",
        reason: format!("{} does not exist", dir.join(file).display()),
        hint: SWAP_HINT,
    }
}

impl Controller for MemoryController {
    const NAME: &'static str = "memory";

    fn wanted(cfg: &CgroupConfig) -> bool {
        cfg.memory.is_some() || cfg.swap.is_some()
    }

    fn apply_v2(cfg: &CgroupConfig, dir: &Path) -> Result<(), CgroupError> {
        if let Some(m) = cfg.memory {
            fs::write(dir, "memory.max", &m.to_string())?;
        }
        if let Some(s) = cfg.swap {
            if !dir.join("memory.swap.max").exists() {
                return Err(swap_unsupported(dir, "memory.swap.max"));
            }
            fs::write(dir, "memory.swap.max", &s.to_string())?;
        }
        Ok(())
    }

    fn apply_v1(cfg: &CgroupConfig, dir: &Path) -> Result<(), CgroupError> {
        // ORDER: memory before memory+swap: the kernel refuses memsw below the memory limit.
        if let Some(m) = cfg.memory {
            fs::write(dir, "memory.limit_in_bytes", &m.to_string())?;
        }
        if let (Some(m), Some(s)) = (cfg.memory, cfg.swap) {
            if !dir.join("memory.memsw.limit_in_bytes").exists() {
                return Err(swap_unsupported(dir, "memory.memsw.limit_in_bytes"));
            }
            // validate() checked that the sum does not overflow.
            fs::write(
                dir,
                "memory.memsw.limit_in_bytes",
                &m.saturating_add(s).to_string(),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::fs::TempDir;

    fn cfg() -> CgroupConfig {
        CgroupConfig {
            memory: Some(64 << 20),
            swap: Some(16 << 20),
            ..Default::default()
        }
    }

    #[test]
    fn v2_files() {
        let t = TempDir::new();
        t.files(&["memory.max", "memory.swap.max"]);
        MemoryController::apply_v2(&cfg(), t.path()).unwrap();
        assert_eq!(t.get("memory.max"), (64u64 << 20).to_string());
        assert_eq!(t.get("memory.swap.max"), (16u64 << 20).to_string());
    }

    #[test]
    fn v1_memsw_is_memory_plus_swap() {
        let t = TempDir::new();
        t.files(&["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]);
        MemoryController::apply_v1(&cfg(), t.path()).unwrap();
        assert_eq!(t.get("memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(
            t.get("memory.memsw.limit_in_bytes"),
            (80u64 << 20).to_string()
        );
    }

    #[test]
    fn missing_swap_accounting_is_unsupported() {
        let t = TempDir::new();
        t.files(&["memory.max", "memory.limit_in_bytes"]);
        let e = MemoryController::apply_v2(&cfg(), t.path()).unwrap_err();
        assert!(
            matches!(
                e,
                CgroupError::Unsupported {
                    controller: "memory",
                    ..
                }
            ),
            "{e}"
        );
        let e = MemoryController::apply_v1(&cfg(), t.path()).unwrap_err();
        assert!(e.to_string().contains("swapaccount=1"), "{e}");
    }
}
