//! One small module per controller behind the [`Controller`] trait, which takes the cgroup
//! directory (the shape of youki's `libcgroups/src/v2/controller.rs`): each writes its limits
//! for v2 and for v1, and is unit-tested against a fixture directory.

use std::path::Path;

use super::{CgroupConfig, CgroupError};

/// A cgroup controller that turns part of a [`CgroupConfig`] into interface-file writes.
pub(crate) trait Controller {
    /// The controller's name in `cgroup.controllers` (v2) and `/proc/self/cgroup` (v1).
    const NAME: &'static str;

    /// Whether `cfg` sets a limit of this controller (then the cgroup must have it).
    fn wanted(cfg: &CgroupConfig) -> bool;

    /// Write the limits into the v2 cgroup `dir`.
    fn apply_v2(cfg: &CgroupConfig, dir: &Path) -> Result<(), CgroupError>;

    /// Write the limits into the v1 cgroup `dir` of this controller's hierarchy.
    fn apply_v1(cfg: &CgroupConfig, dir: &Path) -> Result<(), CgroupError>;
}
