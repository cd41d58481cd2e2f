//! ringfence: run untrusted commands in a sandbox built from Linux kernel primitives.

pub mod seccomp;
pub use seccomp::{
    Action, Arch, CmpOp, CompiledProfile, Cond, Insn, Profile, ProfileError, Rule, Syscall,
};
