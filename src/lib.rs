//! ringfence runs untrusted commands in a sandbox built from Linux kernel primitives:
//! namespaces, a private filesystem view, a seccomp filter, Landlock, cgroup limits,
//! capability dropping, `no_new_privs`, rlimits and process hygiene.
//!
//! It is made for Rust programs that host untrusted plugins, CI job runners, and fuzz
//! harnesses that start a target thousands of times a minute: it should not leak, start fast,
//! and be pleasant to embed.
//!
//! # A first sandbox
//!
//! ```
//! use ringfence::{Command, Net, Sandbox};
//! use std::time::Duration;
//!
//! // Built once, spawned as often as needed. Best effort: run with what this host gives.
//! let sandbox = Sandbox::new()
//!     .compat(ringfence::Compat::BestEffort)
//!     .unshare_all()                  // pid, net (only `lo`), ipc, uts, cgroup namespaces
//!     .hostname("plugin")
//!     .timeout(Duration::from_secs(10));
//!
//! let mut cmd = Command::new("/bin/sh");
//! cmd.args(["-c", "echo hello from $(hostname)"]);
//! let out = sandbox.output(&cmd)?;
//!
//! assert!(out.success());
//! // On a host that refuses namespaces to this user, the sandbox still ran (best effort),
//! // and the report says what was left out and why.
//! if out.report.is_fully_enforced() {
//!     assert_eq!(out.stdout, b"hello from plugin\n");
//! } else {
//!     eprintln!("not everything was enforced here:\n{}", out.report);
//! }
//! # Ok::<(), ringfence::Error>(())
//! ```
//!
//! Layers are required by default (held exactly or through a named substitute, else the spawn
//! fails); handling what goes wrong:
//!
//! ```
//! use ringfence::{Command, Error, Net, Sandbox, Stage};
//!
//! let sandbox = Sandbox::new().net(Net::New);
//! match sandbox.spawn(&Command::new("/no/such/program")) {
//!     Ok(_) => unreachable!(),
//!     // The program could not be executed: the stage and errno say why.
//!     Err(e @ Error::Setup { stage: Stage::Exec, .. }) => eprintln!("{e}"),
//!     // This host cannot give a new network namespace to this user.
//!     Err(e @ Error::Unsupported { .. }) => eprintln!("{e}"),
//!     Err(e) => panic!("{e}"),
//! }
//! ```
//!
//! # What every sandbox gets
//!
//! [`Sandbox::new`] adds no namespace, but already gives the program: a new session without a
//! controlling terminal (no `TIOCSTI` input injection into your terminal), death when the
//! spawning thread exits, `no_new_privs` (setuid binaries and file capabilities grant nothing),
//! no capabilities in any set (the bounding set emptied where the sandbox may change it: a root
//! caller, or a user namespace), a Landlock domain of its own (no ptrace access, through
//! `/proc/PID/mem` and the like, to its caller or any process outside it), no inherited file descriptor but
//! stdio and the ones passed with [`Command::pass_fd`], an empty environment, default signal
//! dispositions, an empty signal mask, and the seccomp filter [`Profile::default_container`]
//! (no clock setting, keyring, modules, kexec, bpf, perf, userfaultfd, io_uring, mounts, new
//! namespaces, ptrace, ...; replace it with [`Sandbox::seccomp`]). Dropping the [`Child`] kills
//! the sandbox.
//!
//! # Threat model, in short
//!
//! ringfence assumes the sandboxed program is hostile and the kernel is not. Namespaces
//! separate what the program can name (processes, network, hostname, IPC, users); they do not
//! isolate the clock, the keyring, kernel modules, or most of `/proc` and `/sys` — that is what
//! the seccomp and filesystem layers are for. Kernel bugs and hardware side channels are out of
//! scope. Without a pid namespace, a program that escapes its process group (double fork and
//! `setsid`) can outlive the sandbox; use [`Sandbox::pid_ns`] (or, later, a cgroup) when that
//! matters. SECURITY.md, at the root of the repository, has the full model: what each layer
//! covers and what it does not, the defaults and why, and how to report a vulnerability.
//!
//! # Async
//!
//! With the `tokio` feature, `Sandbox::spawn_async` (or `Child::into_async`) gives an
//! `AsyncChild`, in the style of `tokio::process::Child`: `wait` and `wait_with_output` are
//! awaited on a Tokio runtime (the sandbox's end comes through its pidfd in the runtime's
//! reactor, the timeout through its timer) and give the same [`Outcome`].
//!
//! # Compatibility
//!
//! Linux ≥ 5.4 (pidfds, `clone3` with a fallback to `clone`; time namespaces need 5.6; the
//! filesystem view uses the descriptor-based mount API and needs 5.12; Landlock needs 5.13 and
//! reports which of its parts the running ABI enforces). The test suite runs on 6.18 and, in a
//! VM, on Debian's 6.1.
//! Callers without `CAP_SYS_ADMIN` get a user namespace automatically whenever they ask for
//! namespaces. Hosts refuse those more and more often (Ubuntu ≥ 23.10 through AppArmor,
//! `user.max_user_namespaces=0`, container runtimes' seccomp filters), and ordinary users rarely
//! have a writable cgroup. ringfence **degrades closed**: a layer asked for is held exactly or
//! through a substitute (the cgroup's memory and process limits as resource limits, the
//! filesystem view through Landlock), and where neither is possible the spawn fails with the
//! reason and the fix ([`Compat::Required`], the default) unless the layer was added after
//! `compat(Compat::BestEffort)`. The [`Report`] (from [`Child::report`] and in every
//! [`Outcome`]) says what was enforced, substituted, or left out, why, and how to fix it.
//! [`probe()`] tells what this host offers.
//!
//! # Multithreaded callers
//!
//! Spawning is safe from any thread and from many threads at once. The sandboxed process
//! starts as a copy of the spawning thread only; between `clone` and `execve` it runs code that
//! does not allocate, lock, or call into anything but the kernel (see the module comment of
//! `src/inside/mod.rs`). The death signal is tied to the spawning *thread*: spawn from a
//! thread that outlives the sandbox, or turn it off with [`Sandbox::die_with_parent`].
//!
//! # Dependencies in the API
//!
//! ringfence's API has its own types, with three exceptions re-exported from the crates that
//! do the work, so that callers need no direct dependency on them: [`Errno`] (from `nix`, in
//! every [`Error`]), [`Signal`] (from `nix`, for [`Child::signal`]) and [`Capability`] (from
//! `caps`, for [`Sandbox::capabilities`]). They are plain enums of the kernel's numbers; a
//! release of ringfence that moves to a version of `nix` or `caps` in which they change is a
//! breaking release. Nothing else of `nix`, `caps`, `landlock`, `seccompiler` or `libc` appears
//! in the API.
//!
//! # Getting help, reporting problems
//!
//! `ringfence doctor` (the CLI, `cargo install --path cli` in the repository) says what this
//! host offers and what it lacks. SECURITY.md says how to report a vulnerability;
//! docs/TESTING.md in the repository says how the test suite is organised and what it needs.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod caps;
pub mod cgroup;
mod child;
mod command;
mod degrade;
mod error;
mod fs;
mod inside;
mod join;
pub mod landlock;
mod ns;
mod pod;
mod probe;
mod rlimit;
mod sandbox;
pub mod seccomp;
#[cfg(feature = "serde")]
mod serialize;
mod spawn;
mod supervise;
pub mod usernet;
mod warm;

pub use crate::caps::Capability;
pub use crate::cgroup::{CgroupUsage, Cpu};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use crate::child::async_child::AsyncChild;
pub use crate::child::{Child, Outcome, Usage};
pub use crate::command::{Command, Stdio};
pub use crate::error::{ConfigError, Error, Result, Stage};
pub use crate::fs::Size;
pub use crate::landlock::{FsAccess, Landlock, LandlockError, LandlockPart};
pub use crate::ns::{IdMap, Namespace, Net, TimeOffsets, UserNs};
pub use crate::pod::{Pod, PodRef, RunningPod};
pub use crate::probe::{Compat, Enforcement, HostInfo, Layer, Report, Unavailable, probe};
pub use crate::rlimit::Rlimit;
pub use crate::sandbox::{Learned, Sandbox};
pub use crate::seccomp::{
    Action, Arch, CmpOp, CompiledProfile, Cond, Profile, ProfileError, Rule, Syscall,
};
pub use crate::supervise::Violation;
pub use crate::usernet::{IpNet, PortForward, Proto, Stack, UserNet, UserNetError};
pub use crate::warm::{Prepared, RunOptions, Warm, WarmError, WarmOptions};
/// The errno type carried by [`Error`] (re-exported so callers need no `nix` dependency).
pub use nix::errno::Errno;
/// A signal, for [`Child::signal`] (re-exported so callers need no `nix` dependency).
pub use nix::sys::signal::Signal;

// The README's examples are compiled and run with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
