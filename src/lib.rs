//! ringfence runs untrusted commands in a sandbox built from Linux kernel primitives.
//!
//! (Crate documentation is completed in lib.rs docs below.)

mod caps;
mod child;
mod command;
mod error;
mod inside;
mod ns;
mod probe;
mod rlimit;
mod sandbox;
mod spawn;

pub use crate::caps::Capability;
pub use crate::child::{Child, Outcome, Usage};
pub use crate::command::{Command, Stdio};
pub use crate::error::{ConfigError, Error, Result, Stage};
pub use crate::ns::{IdMap, Namespace, Net, TimeOffsets, UserNs};
pub use crate::probe::{Compat, Enforcement, HostInfo, Layer, Report, Unavailable, probe};
pub use crate::rlimit::Rlimit;
pub use crate::sandbox::Sandbox;
