//! Seccomp profiles: a model of the filter as data, its compilation to BPF, OCI / Docker JSON
//! import and export, and the allocation-free installation used by the sandbox child.
//!
//! # Model
//!
//! A [`Profile`] is a default [`Action`] and an ordered list of [`Rule`]s. A rule names a
//! [`Syscall`] (resolved to its number for one [`Arch`]), zero or more [`Cond`]itions on its
//! arguments, all of which must hold, and an action.
//!
//! **The first matching rule wins.** Rules are tried in the order they were added; a later
//! rule for the same call never overrides an earlier one that matched. A call that no rule
//! matches gets the default action. This is the order runc and crun obtain from libseccomp
//! when they add an OCI profile's rules one by one, so imported profiles keep their meaning.
//!
//! # The guard
//!
//! Every confined profile carries a fixed guard ([`guard`]), merged into the profile's
//! program: the program returns what the kernel would return for the guard installed as a
//! filter of its own, followed by the profile (the most restrictive result, the profile's on
//! a tie). The guard decides:
//!
//! | input | result | why |
//! | --- | --- | --- |
//! | `seccomp_data.arch` is not the native one (i386 `int 0x80`, arm32, ...) | `KILL_PROCESS` | syscall numbers differ per ABI: a rule written for x86_64 numbers says nothing about i386 ones |
//! | x86_64: `nr >= 0x40000000` | `KILL_PROCESS` | x32 calls pass the arch check (same `AUDIT_ARCH`) with other numbers; a deny-list would let them through |
//! | `clone3` | `ERRNO(ENOSYS)` | its flags are in memory, out of a filter's reach; libc then falls back to `clone`, whose flags a profile can check |
//! | `ioctl(fd, TIOCSTI or TIOCLINUX, ...)`, compared on the low 32 bits | `ERRNO(EPERM)` | pushing input into the controlling terminal escapes the sandbox; the kernel ignores the request's high 32 bits, so the filter does too |
//!
//! libseccomp's default for a wrong architecture is `KILL_THREAD`; ringfence kills the
//! process, which leaves no half-dead multi-threaded program behind.
//!
//! # Presets
//!
//! - [`Profile::default_container`]: the intent of Docker's default profile as a deny-list:
//!   clock setting, keyring, modules, kexec, bpf, perf, userfaultfd, io_uring, mounts,
//!   namespace creation, other processes' memory... (see [`DEFAULT_CONTAINER_DENIED`] for the
//!   full table and reasons).
//! - [`Profile::strict`]: a short allow-list for plugins computing on stdin/stdout and files.
//! - [`Profile::deny_only`]: allow all but the named calls.
//! - [`Profile::unconfined`]: no filter at all, not even the guard; it has to be asked for.
//!
//! # Compilation
//!
//! [`Profile::compile`] lowers the rules and the guard to one program: the architecture and
//! x32 checks, a binary search on the syscall number over ranges of numbers with the same
//! constant result, and at the leaves that result or the syscall's rules in order (conditions
//! compared on 32 or 64 bits; consecutive one-bit tests with the same action share one
//! `jset`). A syscall whose result does not depend on its arguments is decided from its
//! number alone, so the kernel's per-syscall action cache keeps always-allowed calls away
//! from the filter. The program is short (170 instructions for
//! [`Profile::default_container`], where libseccomp writes 227 without the guard) because the
//! kernel's cost of installing a filter, paid by every spawn, grows with its length. Compile
//! once, install many times: [`CompiledProfile`] is plain data.
//!
//! # Differences from libseccomp
//!
//! Checked by a differential test that compiles the same rules with libseccomp (its Python
//! binding) and runs both programs on 120,000 inputs per profile:
//!
//! - For Docker's profiles and ringfence's presets the two filters give identical results.
//! - libseccomp does not keep "first match wins" when one syscall has rules with different
//!   actions: a later unconditional rule replaces earlier conditional ones, and overlapping
//!   conditional rules are ordered by its internal tree. [`Profile::order_sensitive`] finds such
//!   profiles (rules that can never match the same call, by disagreeing equalities, are no
//!   conflict); [`Profile::to_oci_json`] refuses them, since runc or crun would read them
//!   differently. The presets are written without such rules.
//! - ringfence also has 32-bit comparisons ([`Cond::arg32`]), which libseccomp lacks.
//! - The guard kills calls of other ABIs (libseccomp's default is `KILL_THREAD`).
//!
//! # Import and export (feature `serde`)
//!
//! [`Profile::from_oci_json`] reads the OCI runtime spec / Docker format (`archMap`,
//! `includes`/`excludes` by capabilities, architectures and kernel version, the older
//! single-`name` format) as runc reads it; rules that depend on capabilities are judged against
//! the capabilities the sandbox keeps ([`Profile::for_capabilities`]), not the caller's.
//! [`Profile::to_oci_json`] writes it back with the guard written out (the profile's
//! architecture only, `clone3` → `ENOSYS`, `TIOCSTI`/`TIOCLINUX` → `EPERM` on the low 32 bits),
//! so that runc, crun and Podman enforce no less than ringfence; imported again and compiled
//! it answers every call the same.

mod compile;
#[cfg(all(test, feature = "serde"))]
mod difftest;
mod install;
pub(crate) mod interp;
#[cfg(test)]
mod kernel_tests;
#[cfg(feature = "serde")]
mod oci;
#[cfg(test)]
mod pins;
mod presets;
mod profile;
// Generated by tools/gen_syscall_tables.py: i386 and the other-arch names serve the importer.
#[cfg_attr(not(feature = "serde"), allow(dead_code))]
#[rustfmt::skip]
mod tables;
#[cfg(test)]
mod tests;

pub use compile::CompiledProfile;
// The BPF internals (instructions, the guard filter and its constants) are no API: public only
// with the `internals` feature, for ringfence's own tests, benchmarks and fuzz targets.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use compile::{BPF_MAXINSNS, Insn, TIOCLINUX, TIOCSTI, X32_SYSCALL_BIT, guard};
#[cfg(not(feature = "internals"))]
#[allow(unused_imports)]
pub(crate) use compile::{BPF_MAXINSNS, Insn, TIOCLINUX, TIOCSTI, X32_SYSCALL_BIT, guard};
#[cfg(feature = "serde")]
pub use oci::{ImportOptions, KernelVersion, UnknownSyscalls};
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use presets::{CLONE_NEWTIME, CLONE_NS_FLAGS};
#[cfg(not(feature = "internals"))]
#[allow(unused_imports)]
pub(crate) use presets::{CLONE_NEWTIME, CLONE_NS_FLAGS};
pub use presets::{
    DEFAULT_CONTAINER_DENIED, PERSONALITY_FLAGS_ALLOWED, SOCKET_FAMILIES_DENIED, STRICT_ALLOWED,
};
pub use profile::{
    Action, Arch, Arg, CmpOp, Cond, MAX_CONDS, MAX_ERRNO, Profile, ProfileError, Rule, Syscall,
};

#[allow(unused_imports)]
pub(crate) use install::install;
