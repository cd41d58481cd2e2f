//! [`Sandbox`]: the consuming builder that describes a sandbox. Pure data: nothing touches the
//! kernel until [`Sandbox::spawn`].

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use crate::caps::Capability;
use crate::cgroup::{CgroupConfig, Cpu};
use crate::child::{Child, Outcome};
use crate::command::{Command, Stdio};
use crate::error::Result;
use crate::fs::{FsConfig, FsOp, PreparedFs, Root, Size};
use crate::join::{JoinProblem, JoinSpec};
use crate::landlock::{Landlock, PreparedLandlock};
use crate::ns::{Namespace, Net, NetChoice, TimeOffsets, UserNs};
use crate::probe::Compat;
use crate::rlimit::Rlimit;
use crate::seccomp::{CompiledProfile, Profile};
use std::sync::{Arc, Mutex};

/// A sandbox configuration: which namespaces, which identity, which limits.
///
/// Setters take and return `Self`, so a sandbox is written as one expression, kept, and
/// [`spawn`](Sandbox::spawn)ed as many times as needed (it is `Clone` and `Sync`).
///
/// [`Sandbox::new`] is *hygiene only*: no namespaces, but the process hygiene every sandbox
/// gets — a new session without a controlling terminal (no `TIOCSTI` injection), killed when
/// the spawning thread exits, `no_new_privs`, every capability dropped, every file descriptor but
/// stdio (and the ones passed explicitly) closed, an empty environment, reset signal handling.
///
/// # The filesystem a sandbox sees
///
/// | The sandbox has                                            | Its root                                                          |
/// |------------------------------------------------------------|-------------------------------------------------------------------|
/// | no filesystem option (only [`Sandbox::mount_ns`], or none)  | the host's, unchanged                                             |
/// | filesystem options ([`mount_tmpfs`](Sandbox::mount_tmpfs), [`bind_ro`](Sandbox::bind_ro), [`mount_proc`](Sandbox::mount_proc), ...) and no root chosen | the host's whole filesystem **read-only** (nosuid), with the options mounted on top — like `bwrap --ro-bind / /` plus the mounts, or systemd's `PrivateTmp` |
/// | [`host_system_ro`](Sandbox::host_system_ro) (as [`isolated`](Sandbox::isolated) has) | a new, empty, read-only root with the host's `/usr`, `/bin`, `/sbin`, `/lib*` and the parts of `/etc` programs need, then the options |
/// | [`empty_root`](Sandbox::empty_root)                         | a new, empty, read-only root with only the options               |
/// | [`rootfs(dir)`](Sandbox::rootfs)                            | `dir`, read-only, then the options                                |
/// | [`rootfs_layers`](Sandbox::rootfs_layers)                   | overlay layers (changes land in the upper directory), then the options |
///
/// So the design card's chain runs the host's `/bin/sh`, with a private `/tmp`:
///
/// ```no_run
/// use ringfence::{Command, Cpu, Net, Profile, Sandbox};
///
/// let plugin = Sandbox::new().pid_ns().mount_tmpfs("/tmp").net(Net::New)
///     .cpu_quota(Cpu::percent(20)).seccomp(Profile::default_container());
/// let child = plugin.spawn(&Command::new("/bin/sh"))?;
/// # Ok::<(), ringfence::Error>(())
/// ```
///
/// # Best effort or required
///
/// Each optional layer follows the [`Compat`] level in force when it is added
/// ([`Sandbox::compat`]). A layer this host cannot make is held through a substitute where one
/// exists (the [`Report`](crate::Report) names it: see [`crate::probe`]); where none exists
/// the spawn fails with the reason and the fix — the default, [`Compat::Required`] — unless
/// the layer was added after `compat(Compat::BestEffort)`: then the sandbox runs without it
/// and the report says so.
///
/// ```no_run
/// use ringfence::{Command, Net, Sandbox, Stdio};
/// use std::time::Duration;
///
/// let sandbox = Sandbox::new()
///     .pid_ns()
///     .net(Net::New)
///     .hostname("box")
///     .timeout(Duration::from_secs(10));
/// let out = sandbox.output(Command::new("hostname").env("PATH", "/usr/bin:/bin"))?;
/// assert_eq!(out.stdout, b"box\n");
/// # Ok::<(), ringfence::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Sandbox {
    pub(crate) ns: [Option<Compat>; Namespace::ALL.len()],
    pub(crate) user_ns: Option<UserNs>,
    pub(crate) net: NetChoice,
    pub(crate) hostname: Option<OsString>,
    pub(crate) time_offsets: Option<TimeOffsets>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) keep_caps: u64,
    pub(crate) rlimits: Vec<(Rlimit, u64, u64)>,
    pub(crate) umask: Option<u32>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) die_with_parent: bool,
    pub(crate) new_session: bool,
    pub(crate) fs: FsConfig,
    /// The compatibility level of the filesystem view (the strictest of its options).
    pub(crate) fs_compat: Option<Compat>,
    pub(crate) seccomp: Arc<Profile>,
    pub(crate) landlock: Option<(Landlock, Compat)>,
    pub(crate) cgroup: CgroupConfig,
    /// The compatibility level of each cgroup limit.
    pub(crate) cgroup_compat: crate::degrade::LimitCompat,
    pub(crate) cwd: Option<std::path::PathBuf>,
    /// Learning: every syscall is notified, recorded and let through.
    pub(crate) learning: bool,
    /// Whether refused calls are reported ([`Sandbox::report_refusals`]).
    pub(crate) report_refusals: bool,
    /// A running sandbox or pod to enter instead of creating namespaces (or why it cannot be).
    pub(crate) join: Option<Arc<std::result::Result<JoinSpec, JoinProblem>>>,
    /// Work that does not depend on the command, done at the first spawn and kept.
    cache: Arc<Cache>,
    compat: Compat,
}

/// What [`Sandbox::learn`] found.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Learned {
    /// How the learning run ended.
    pub outcome: Outcome,
    /// The minimal profile for the command.
    pub profile: Profile,
}

/// What a sandbox computes once and reuses for every spawn.
#[derive(Debug, Default)]
struct Cache {
    seccomp: Mutex<Option<Arc<CompiledProfile>>>,
    landlock: Mutex<Option<Arc<PreparedLandlock>>>,
    /// The mount plan, with the configuration and hostname it was built for.
    fs: Mutex<Option<PreparedFs>>,
    /// The cgroups of ended runs, ready for the next spawns (removed with the cache).
    cgroups: crate::cgroup::CgroupPool,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    /// A sandbox with process hygiene only (see the type's documentation).
    pub fn new() -> Sandbox {
        Sandbox {
            ns: [None; Namespace::ALL.len()],
            user_ns: None,
            net: NetChoice::Host,
            hostname: None,
            time_offsets: None,
            uid: None,
            gid: None,
            keep_caps: 0,
            rlimits: Vec::new(),
            umask: None,
            timeout: None,
            die_with_parent: true,
            new_session: true,
            fs: FsConfig::default(),
            fs_compat: None,
            seccomp: Arc::new(Profile::default_container()),
            landlock: None,
            cgroup: CgroupConfig::default(),
            cgroup_compat: Default::default(),
            cwd: None,
            learning: false,
            report_refusals: false,
            join: None,
            cache: Arc::default(),
            compat: Compat::Required,
        }
    }

    /// The seccomp profile (by default [`Profile::default_container`], which closes what
    /// namespaces leave open: clock setting, the keyring, modules, kexec, bpf, perf,
    /// userfaultfd, io_uring, mounts, new namespaces, ptrace, ...). Every profile is installed
    /// behind a guard (other architectures and x32 killed, `clone3` answered with ENOSYS,
    /// `TIOCSTI`/`TIOCLINUX` refused). [`Profile::unconfined`] installs nothing.
    pub fn seccomp(mut self, profile: Profile) -> Sandbox {
        self.seccomp = Arc::new(profile);
        self.cache = Arc::default();
        self
    }

    /// Report every call the seccomp filter refuses (off by default): each one is listed in
    /// [`Outcome::violations`](crate::Outcome::violations) with its syscall, arguments and
    /// count, including a call that kills the process (a wrong architecture, x32, or a
    /// `KillProcess` rule), which a plain filter leaves unnamed.
    ///
    /// How: the filter's refusals (errno and kill-process results) become user notifications
    /// that a supervisor thread answers exactly as the filter would have (the same errno;
    /// a kill with `SIGKILL`, so the process then ends by signal 9, not `SIGSYS`). Allowed
    /// calls never leave the kernel and cost nothing more; each refused call costs a round
    /// trip to the supervisor, and each `execve` one more (it is how the supervisor takes the
    /// listener over). If the supervisor is gone (the [`Child`](crate::Child) was
    /// dropped without waiting while the process lives on), refused calls fail with `ENOSYS`
    /// instead: they are still never run.
    ///
    /// Limits: a process under a reporting filter cannot install a seccomp filter with a
    /// listener of its own (the kernel allows one per process), and warm sandboxes
    /// ([`Warm`](crate::Warm)) do not report.
    pub fn report_refusals(mut self, on: bool) -> Sandbox {
        if self.report_refusals != on {
            self.report_refusals = on;
            self.cache = Arc::default();
        }
        self
    }

    /// Landlock rules for the program: which files and TCP ports it may use, and scoping of
    /// signals and abstract unix sockets. Unprivileged, so it holds with and without
    /// namespaces. Follows [`Sandbox::compat`]: required by default (a part this kernel cannot
    /// enforce fails the spawn with the fix), or after `compat(Compat::BestEffort)` run with
    /// the parts this kernel enforces (the [`Report`](crate::Report) says which).
    pub fn landlock(mut self, rules: Landlock) -> Sandbox {
        self.landlock = Some((rules, self.compat));
        self.cache = Arc::default();
        self
    }

    /// Limit CPU time with the CFS bandwidth controller, e.g. `Cpu::percent(20)` (20 % of
    /// one CPU). Like every cgroup limit, it puts the sandbox in a cgroup of its own, created
    /// below the caller's cgroup; killing the sandbox then kills every process in that cgroup.
    /// When a run ends its cgroup, emptied, is kept for this `Sandbox`'s next spawn (peaks
    /// reset, limits rewritten, usage counted per run) and removed once the sandbox and its
    /// children are dropped.
    ///
    /// Without a writable cgroup (rootless without delegation) the limits that have a
    /// substitute get it (see [`Sandbox::pids_limit`], [`Sandbox::memory_limit`]); the CPU
    /// quota and weight, the cpuset and swap have none: `spawn` fails with a hint, unless they
    /// were added after [`Sandbox::compat`]`(Compat::BestEffort)`.
    pub fn cpu_quota(mut self, cpu: Cpu) -> Sandbox {
        self.cgroup.cpu = Some(cpu);
        self.cgroup_compat.cpu = self.compat;
        self
    }

    /// Relative CPU weight under contention, 1 to 10000 (default 100).
    pub fn cpu_weight(mut self, weight: u32) -> Sandbox {
        self.cgroup.cpu_weight = Some(weight);
        self.cgroup_compat.cpu_weight = self.compat;
        self
    }

    /// Limit memory, e.g. `Size::mib(256)` (or a number of bytes); a sandbox that needs more
    /// is OOM-killed
    /// ([`Outcome::oom_killed`](crate::Outcome::oom_killed)). The cgroup is reused by later
    /// spawns as [`Sandbox::cpu_quota`] says: page cache a run leaves charged to it counts
    /// in the next run's peak (and under its limit) until the kernel reclaims it.
    ///
    /// Without a writable cgroup the substitute is a per-process limit: `RLIMIT_AS` and
    /// `RLIMIT_DATA` of this size for every process of the sandbox (an allocation beyond it
    /// fails with `ENOMEM` instead of an OOM kill; several processes together may use more).
    pub fn memory_limit(mut self, limit: impl Into<Size>) -> Sandbox {
        self.cgroup.memory = Some(limit.into().0);
        self.cgroup_compat.memory = self.compat;
        self
    }

    /// Allow this much swap on top of the memory limit; `Size::bytes(0)` forbids swapping.
    pub fn memory_swap(mut self, swap: impl Into<Size>) -> Sandbox {
        self.cgroup.swap = Some(swap.into().0);
        self.cgroup_compat.swap = self.compat;
        self
    }

    /// Limit the number of processes and threads (a fork bomb stops there).
    ///
    /// Without a writable cgroup the substitute is `RLIMIT_NPROC` inside the sandbox's own
    /// user namespace, which Linux ≥ 5.14 counts per user namespace: it caps the sandbox's
    /// processes and threads, not the user's (for a caller that is not root, which the limit
    /// does not bind).
    pub fn pids_limit(mut self, max: u64) -> Sandbox {
        self.cgroup.pids = Some(max);
        self.cgroup_compat.pids = self.compat;
        self
    }

    /// Run on these CPUs only, as a kernel CPU list such as `"0-1,3"`.
    pub fn cpuset(mut self, cpus: impl Into<String>) -> Sandbox {
        self.cgroup.cpuset = Some(cpus.into());
        self.cgroup_compat.cpuset = self.compat;
        self
    }

    /// Create the sandbox's cgroup below this cgroup directory instead of the caller's own.
    pub fn cgroup_parent(mut self, dir: impl AsRef<std::path::Path>) -> Sandbox {
        self.cgroup.parent = Some(dir.as_ref().into());
        self.cgroup_compat.parent = self.compat;
        self
    }

    /// The working directory inside the sandbox for commands that set none with
    /// [`Command::current_dir`] (by default the caller's, which a new root may not have).
    pub fn chdir(mut self, dir: impl AsRef<std::path::Path>) -> Sandbox {
        self.cwd = Some(dir.as_ref().into());
        self
    }

    /// Run `cmd` in this sandbox while recording every system call it makes (through seccomp
    /// user notification: each call is let through), and build from that a minimal profile:
    /// an allow-list of exactly those calls — with the argument values that matter pinned
    /// (socket family, clone flags, ioctl request, personality) — and `EPERM` for the rest.
    /// The command then runs under [`Sandbox::seccomp`]`(learned.profile)`.
    ///
    /// The command runs with this sandbox's other layers; stdout and stderr are captured as
    /// with [`Sandbox::output`].
    pub fn learn(&self, cmd: &Command) -> Result<Learned> {
        let mut learning = self.clone().seccomp(crate::supervise::learning_profile());
        learning.learning = true;
        let outcome = learning.output(cmd)?;
        let arch = crate::seccomp::Arch::native().ok_or(crate::Error::Profile(
            crate::seccomp::ProfileError::UnsupportedArch,
        ))?;
        let profile = crate::supervise::learned_profile(&outcome.seen, arch);
        Ok(Learned { outcome, profile })
    }

    /// The seccomp profile as it applies to this sandbox: capability-dependent rules judged
    /// against the capabilities it keeps.
    pub(crate) fn effective_seccomp(&self) -> Profile {
        (*self.seccomp).clone().with_caps_mask(self.keep_caps)
    }

    /// The compiled seccomp profile (compiled at the first spawn), or `None` when unconfined.
    /// A profile with Notify actions (and learning) also notifies `execve`, which is how the
    /// supervisor takes the listener over (see `supervise.rs`).
    pub(crate) fn compiled_seccomp(&self) -> Result<Option<Arc<CompiledProfile>>> {
        if self.seccomp.is_unconfined() {
            return Ok(None);
        }
        let mut slot = self.cache.seccomp.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = &*slot {
            return Ok(Some(c.clone()));
        }
        // Capability-dependent rules (an imported profile's `includes.caps`) are judged against
        // the capabilities this sandbox keeps, as runc does for a container.
        let profile = self.effective_seccomp();
        let report = self.report_refusals && !self.learning;
        let compiled = if profile.uses_notify() || report {
            let reference = profile.compile().map_err(crate::Error::Profile)?;
            let notified = crate::supervise::with_notified_exec(&profile);
            let installed = if report {
                notified.compile_reporting()
            } else {
                notified.compile()
            };
            installed
                .map_err(crate::Error::Profile)?
                .supervised(&reference)
        } else {
            profile.compile().map_err(crate::Error::Profile)?
        };
        let compiled = Arc::new(compiled);
        *slot = Some(compiled.clone());
        Ok(Some(compiled))
    }

    /// The cgroups this sandbox keeps for its next spawns.
    pub(crate) fn cgroup_pool(&self) -> &crate::cgroup::CgroupPool {
        &self.cache.cgroups
    }

    /// The mount plan (see [`crate::fs::prepare_cached`]), if the sandbox has a filesystem view.
    pub(crate) fn prepared_fs(&self) -> Result<Option<Arc<crate::fs::FsPlan>>> {
        crate::fs::prepare_cached(
            &self.fs,
            self.hostname.as_deref(),
            &mut self.cache.fs.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// The prepared Landlock ruleset (prepared at the first spawn), if rules were given.
    pub(crate) fn prepared_landlock(&self) -> Result<Option<Arc<PreparedLandlock>>> {
        // Outbound ports of a `Net::User` network: a TCP connect rule, merged with the
        // sandbox's own rules.
        let merged = match &self.net {
            NetChoice::User(u) => u.tcp_ports().map(|ports| {
                let own = self.landlock.as_ref();
                (
                    Landlock::with_connect_ports(own.map(|(l, _)| l), ports),
                    own.map_or(self.compat, |(_, c)| *c),
                )
            }),
            _ => None,
        };
        let Some((rules, compat)) = merged.as_ref().or(self.landlock.as_ref()) else {
            return Ok(None);
        };
        let mut slot = self
            .cache
            .landlock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(p) = &*slot {
            return Ok(Some(p.clone()));
        }
        let prepared =
            Arc::new(crate::landlock::prepare(rules, *compat).map_err(crate::Error::Landlock)?);
        *slot = Some(prepared.clone());
        Ok(Some(prepared))
    }

    /// A sandbox isolated in every way this crate knows, for untrusted code:
    ///
    /// - every namespace (pid, net with only `lo`, ipc, uts with hostname `sandbox`, cgroup,
    ///   mount; user where the caller needs one);
    /// - a new root holding only the host's `/usr`, `/bin`, `/sbin`, `/lib*` (read-only, with
    ///   merged-`/usr` symlinks mirrored) and the parts of `/etc` dynamically linked programs
    ///   need (`ld.so.cache`, `ld.so.conf*`, `alternatives`, `passwd`, `group`,
    ///   `nsswitch.conf`, `localtime`, `os-release`, `ssl`), read-only;
    /// - a private 64 MiB `/tmp`, a `/proc` of its own (with the usual files masked and
    ///   `/proc/sys` read-only), a minimal `/dev`;
    /// - every capability dropped, `no_new_privs`, and the rest of [`Sandbox::new`]'s hygiene.
    ///
    /// Add binds for what the program needs (its own files, a work directory).
    ///
    /// Where the host refuses the namespaces (an ordinary user without user namespaces), the
    /// filesystem view is held through Landlock instead (see [`crate::probe`]); the other
    /// namespaces have no substitute, so the spawn fails unless best effort was chosen:
    /// `Sandbox::new().compat(Compat::BestEffort).isolate()`.
    pub fn isolated() -> Sandbox {
        Sandbox::new().isolate()
    }

    /// Add every layer of [`Sandbox::isolated`] to this sandbox, at the [`Sandbox::compat`]
    /// level in force.
    pub fn isolate(self) -> Sandbox {
        self.unshare_all()
            .hostname("sandbox")
            .host_system_ro()
            .mount_tmpfs("/tmp")
            .mount_proc()
            .mount_dev()
    }

    fn bind(
        self,
        src: &std::path::Path,
        dst: &std::path::Path,
        write: bool,
        dev: bool,
        optional: bool,
    ) -> Sandbox {
        self.with_fs(FsOp::Bind {
            src: src.into(),
            dst: dst.into(),
            write,
            dev,
            follow: false,
            optional,
        })
    }

    fn with_fs(mut self, op: FsOp) -> Sandbox {
        self.fs.ops.push(op);
        self.fs_touched()
    }

    fn fs_touched(mut self) -> Sandbox {
        self.fs_compat = Some(self.fs_compat.map_or(self.compat, |c| c.max(self.compat)));
        self.with_ns(Namespace::Mount)
    }

    /// Bind the host path `src` read-only at `dst` in the sandbox (nosuid, nodev).
    ///
    /// Like every filesystem option, it puts the sandbox in a new mount namespace and applies
    /// on top of its root: the host's filesystem read-only unless a root is chosen (see the
    /// table in [`Sandbox`]'s documentation). On the host's read-only view, `dst` must exist.
    ///
    /// `src` may go through no symbolic link (refused with [`ConfigError::InvalidPath`] when
    /// the sandbox is prepared, and with `ELOOP` if one appears later): a directory that some
    /// sandbox could write may hold a link it planted. Name the link's target instead
    /// (`std::fs::canonicalize`) when you trust it. The same holds for every bind.
    ///
    /// [`ConfigError::InvalidPath`]: crate::ConfigError::InvalidPath
    pub fn bind_ro(
        self,
        src: impl AsRef<std::path::Path>,
        dst: impl AsRef<std::path::Path>,
    ) -> Sandbox {
        self.bind(src.as_ref(), dst.as_ref(), false, false, false)
    }

    /// Bind the host path `src` read-write at `dst` (nosuid, nodev).
    pub fn bind_rw(
        self,
        src: impl AsRef<std::path::Path>,
        dst: impl AsRef<std::path::Path>,
    ) -> Sandbox {
        self.bind(src.as_ref(), dst.as_ref(), true, false, false)
    }

    /// Like [`Sandbox::bind_ro`], but skipped when `src` does not exist (bubblewrap's
    /// `--ro-bind-try`).
    pub fn bind_ro_try(
        self,
        src: impl AsRef<std::path::Path>,
        dst: impl AsRef<std::path::Path>,
    ) -> Sandbox {
        self.bind(src.as_ref(), dst.as_ref(), false, false, true)
    }

    /// Bind device nodes from `src` read-write at `dst`, keeping them usable (no `nodev`).
    pub fn bind_dev(
        self,
        src: impl AsRef<std::path::Path>,
        dst: impl AsRef<std::path::Path>,
    ) -> Sandbox {
        self.bind(src.as_ref(), dst.as_ref(), true, true, false)
    }

    /// The host's system directories read-only, as [`Sandbox::isolated`] has them: `/usr`,
    /// `/bin`, `/sbin`, `/lib*` (merged-`/usr` symlinks mirrored) and the parts of `/etc`
    /// dynamically linked programs need. Without [`Sandbox::rootfs`] or
    /// [`Sandbox::rootfs_layers`], they go into a new, empty root: nothing else of the host is
    /// visible.
    pub fn host_system_ro(self) -> Sandbox {
        self.with_fs(FsOp::HostSystem)
    }

    /// A private, empty tmpfs at `dst` (mode 1777, nosuid, nodev) of at most
    /// [`Sandbox::TMPFS_SIZE`] (64 MiB), like systemd's `PrivateTmp`:
    /// `.mount_tmpfs("/tmp")`. [`Sandbox::mount_tmpfs_sized`] sets another size. What is
    /// written there is memory charged to the sandbox's cgroup, if it has one, and is gone
    /// when the sandbox ends.
    pub fn mount_tmpfs(self, dst: impl AsRef<std::path::Path>) -> Sandbox {
        self.mount_tmpfs_sized(dst, Sandbox::TMPFS_SIZE)
    }

    /// The size of a tmpfs mounted with [`Sandbox::mount_tmpfs`]: 64 MiB.
    pub const TMPFS_SIZE: Size = Size::mib(64);

    /// A private tmpfs of at most `size` at `dst` (mode 1777, nosuid, nodev), e.g.
    /// `.mount_tmpfs_sized("/tmp", Size::gib(1))`.
    pub fn mount_tmpfs_sized(
        self,
        dst: impl AsRef<std::path::Path>,
        size: impl Into<Size>,
    ) -> Sandbox {
        self.with_fs(FsOp::Tmpfs {
            dst: dst.as_ref().into(),
            size: size.into(),
            inodes: None,
            mode: 0o1777,
        })
    }

    /// A private tmpfs with a limit on both its size and its number of inodes.
    pub fn mount_tmpfs_limited(
        self,
        dst: impl AsRef<std::path::Path>,
        size: impl Into<Size>,
        inodes: u64,
    ) -> Sandbox {
        self.with_fs(FsOp::Tmpfs {
            dst: dst.as_ref().into(),
            size: size.into(),
            inodes: Some(inodes),
            mode: 0o1777,
        })
    }

    /// A `/proc` for the sandbox's pid namespace, with `kcore`, `keys`, `timer_list`,
    /// `sched_debug`, `latency_stats`, `acpi`, `scsi`, `asound`, `firmware` masked and `sys`,
    /// `sysrq-trigger`, `irq`, `bus`, `fs` read-only (as Docker has it). Implies a pid
    /// namespace.
    pub fn mount_proc(self) -> Sandbox {
        self.pid_ns().with_fs(FsOp::Proc {
            dst: "/proc".into(),
        })
    }

    /// A minimal `/dev`: `null`, `zero`, `full`, `random`, `urandom`, `tty` (bound from the
    /// host), a private `devpts` with `ptmx`, a private `shm`, and the `fd`, `stdin`,
    /// `stdout`, `stderr` links. Nothing else: no disks, no `/dev/mem`, no `/dev/kmsg`.
    pub fn mount_dev(self) -> Sandbox {
        self.with_fs(FsOp::Dev { dst: "/dev".into() })
    }

    /// Create a directory (and its parents) in the sandbox.
    pub fn mkdir(self, path: impl AsRef<std::path::Path>) -> Sandbox {
        self.with_fs(FsOp::Mkdir {
            dst: path.as_ref().into(),
            mode: 0o755,
        })
    }

    /// Create a symlink `link` → `target` in the sandbox.
    pub fn symlink(
        self,
        target: impl AsRef<std::path::Path>,
        link: impl AsRef<std::path::Path>,
    ) -> Sandbox {
        self.with_fs(FsOp::Symlink {
            target: target.as_ref().into(),
            link: link.as_ref().into(),
        })
    }

    /// Create a file with this content in the sandbox (mode 0644; on a read-only root it lives
    /// in the root's own small tmpfs, so keep it small).
    pub fn write_file(
        self,
        path: impl AsRef<std::path::Path>,
        data: impl Into<Vec<u8>>,
    ) -> Sandbox {
        self.with_fs(FsOp::File {
            dst: path.as_ref().into(),
            data: data.into(),
            mode: 0o644,
        })
    }

    /// Start from a new, empty root (a read-only tmpfs): only what the other filesystem
    /// options bind or mount is visible — for a statically linked program, say. Without a
    /// root chosen, filesystem options apply over the host's filesystem, read-only.
    pub fn empty_root(mut self) -> Sandbox {
        self.fs.root = Root::Empty;
        self.fs_touched()
    }

    /// Use the host directory `dir` as the sandbox's root, read-only.
    pub fn rootfs(mut self, dir: impl AsRef<std::path::Path>) -> Sandbox {
        self.fs.root = Root::Dir(dir.as_ref().into());
        self.fs_touched()
    }

    /// Use overlay layers as the root, the way container images are run: `lowers` are
    /// read-only (the first is the top one), every change lands in `upper` (deletions as
    /// whiteouts), `work` is overlay's scratch directory on the same filesystem as `upper`.
    /// `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` come from a per-sandbox init layer
    /// and are never written into `upper`.
    pub fn rootfs_layers(
        mut self,
        lowers: impl IntoIterator<Item = impl AsRef<std::path::Path>>,
        upper: impl AsRef<std::path::Path>,
        work: impl AsRef<std::path::Path>,
    ) -> Sandbox {
        self.fs.root = Root::Layers {
            lowers: lowers.into_iter().map(|l| l.as_ref().into()).collect(),
            upper: upper.as_ref().into(),
            work: work.as_ref().into(),
        };
        self.fs_touched()
    }

    /// Set the [`Compat`] level of every layer added after this call. Layers added before keep
    /// theirs, so one chain can require some layers and take others best effort:
    ///
    /// ```
    /// use ringfence::{Compat, Net, Sandbox};
    /// let sb = Sandbox::new()
    ///     .net(Net::New)            // required (the default): spawn fails if it cannot be had
    ///     .compat(Compat::BestEffort)
    ///     .ipc_ns();                // best effort: without it if this host cannot make it
    /// ```
    pub fn compat(mut self, level: Compat) -> Sandbox {
        self.compat = level;
        self
    }

    fn with_ns(mut self, ns: Namespace) -> Sandbox {
        let slot = &mut self.ns[ns.index()];
        // The stricter level wins when a namespace is asked for twice.
        *slot = Some(slot.map_or(self.compat, |c| c.max(self.compat)));
        self
    }

    /// New pid, ipc, uts, cgroup and network namespaces (and a user namespace where the caller
    /// needs one), like `bwrap --unshare-all` or `unshare -Upinuc`.
    pub fn unshare_all(self) -> Sandbox {
        self.pid_ns().ipc_ns().uts_ns().cgroup_ns().net(Net::New)
    }

    /// A new user namespace with this id mapping.
    ///
    /// Callers without `CAP_SYS_ADMIN` get one automatically (mapping their own ids,
    /// [`UserNs::current`]) as soon as they ask for any namespace; this sets the mapping
    /// explicitly, and as root creates a user namespace that would not be used otherwise.
    pub fn user_ns(mut self, map: UserNs) -> Sandbox {
        self.user_ns = Some(map);
        self.with_ns(Namespace::User)
    }

    /// A new pid namespace. Its first process is a small init (pid 1) that forwards
    /// SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to the program, reaps
    /// orphans, and exits with the program's status; when it exits, the kernel kills every
    /// process left in the namespace.
    pub fn pid_ns(self) -> Sandbox {
        self.with_ns(Namespace::Pid)
    }

    /// A new IPC namespace (System V IPC, POSIX message queues).
    pub fn ipc_ns(self) -> Sandbox {
        self.with_ns(Namespace::Ipc)
    }

    /// A new UTS namespace (hostname, domain name). See also [`Sandbox::hostname`].
    pub fn uts_ns(self) -> Sandbox {
        self.with_ns(Namespace::Uts)
    }

    /// A new cgroup namespace: the sandbox sees its own cgroup as the root.
    pub fn cgroup_ns(self) -> Sandbox {
        self.with_ns(Namespace::Cgroup)
    }

    /// A new mount namespace (mount propagation to the host is cut with `MS_PRIVATE`).
    pub fn mount_ns(self) -> Sandbox {
        self.with_ns(Namespace::Mount)
    }

    /// A new time namespace, with the clocks unchanged. See [`Sandbox::time_offsets`].
    pub fn time_ns(self) -> Sandbox {
        self.with_ns(Namespace::Time)
    }

    /// A new time namespace whose `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` run ahead by these
    /// offsets. The wall clock is not affected (no namespace can change it).
    pub fn time_offsets(mut self, offsets: TimeOffsets) -> Sandbox {
        self.time_offsets = Some(offsets);
        self.with_ns(Namespace::Time)
    }

    /// The network: the host's ([`Net::Host`], the default), a new one with only `lo`
    /// ([`Net::New`]), a private one with outbound access ([`Net::User`]), or an existing
    /// namespace ([`Net::Join`]).
    pub fn net(self, net: Net) -> Sandbox {
        self.net_choice(net.into())
    }

    pub(crate) fn net_choice(mut self, net: NetChoice) -> Sandbox {
        self.ns[Namespace::Net.index()] = None;
        if matches!(net, NetChoice::New | NetChoice::User(_)) {
            self = self.with_ns(Namespace::Net);
        }
        self.net = net;
        self
    }

    /// Set the hostname inside. Implies a new UTS namespace, so the host's hostname is never
    /// touched: if the UTS namespace cannot be had, the hostname is not set either.
    pub fn hostname(mut self, name: impl AsRef<OsStr>) -> Sandbox {
        self.hostname = Some(name.as_ref().to_owned());
        self.with_ns(Namespace::Uts)
    }

    /// Run the program as this uid (inside the user namespace, if there is one).
    pub fn uid(mut self, uid: u32) -> Sandbox {
        self.uid = Some(uid);
        self
    }

    /// Run the program as this gid, with no supplementary groups.
    pub fn gid(mut self, gid: u32) -> Sandbox {
        self.gid = Some(gid);
        self
    }

    /// Keep these capabilities (all others are dropped from every set, including the bounding
    /// set where the sandbox may change it: a root caller, or a user namespace). They stay effective across `execve` also for a non-root program (through the
    /// ambient set). By default every capability is dropped.
    pub fn capabilities(mut self, keep: impl IntoIterator<Item = Capability>) -> Sandbox {
        self.keep_caps = keep
            .into_iter()
            .fold(0, |mask, c| mask | (1u64 << c.index()));
        // The seccomp profile's capability-dependent rules follow the capabilities kept.
        if self.seccomp.depends_on_capabilities() {
            self.cache = Arc::default();
        }
        self
    }

    /// Set a resource limit (`setrlimit(2)`) for the program. `u64::MAX` is "unlimited".
    pub fn rlimit(mut self, resource: Rlimit, soft: u64, hard: u64) -> Sandbox {
        self.rlimits.retain(|(r, _, _)| *r != resource);
        self.rlimits.push((resource, soft, hard));
        self
    }

    /// The program's file mode creation mask (by default the parent's).
    pub fn umask(mut self, mask: u32) -> Sandbox {
        self.umask = Some(mask & 0o777);
        self
    }

    /// Kill the whole sandbox when it runs longer than this (wall-clock time, counted from the
    /// spawn). The deadline is enforced by the [`Child`] methods that wait
    /// ([`wait`](Child::wait), [`wait_timeout`](Child::wait_timeout),
    /// [`try_wait`](Child::try_wait), [`wait_with_output`](Child::wait_with_output)); the
    /// [`Outcome`] says `timed_out`.
    pub fn timeout(mut self, limit: Duration) -> Sandbox {
        self.timeout = Some(limit);
        self
    }

    /// Whether the sandbox is killed (`SIGKILL`) when the *thread* that spawned it exits — for
    /// example when the parent crashes. On by default. Note that this is tied to the spawning
    /// thread, not the process (see `PR_SET_PDEATHSIG` in `prctl(2)`): spawn from a thread that
    /// outlives the sandbox, or turn this off.
    pub fn die_with_parent(mut self, on: bool) -> Sandbox {
        self.die_with_parent = on;
        self
    }

    /// Whether the program starts in a new session with no controlling terminal (`setsid`).
    /// On by default: with the caller's terminal, a sandboxed program could inject input into
    /// it (`TIOCSTI`). Turn it off only for trusted interactive programs.
    pub fn new_session(mut self, on: bool) -> Sandbox {
        self.new_session = on;
        self
    }

    /// Whether a namespace of this kind is requested (explicitly or implied by another option).
    pub fn requests(&self, ns: Namespace) -> bool {
        self.ns[ns.index()].is_some()
    }

    /// Start the program inside the running sandbox `target` instead of a new one, as
    /// `docker exec` does: it enters every namespace of `target` (user, mount, pid, network,
    /// IPC, UTS, cgroup, time — each one `target` does not share with the caller) and its
    /// cgroup, so it sees the sandbox's files, processes and network, and is killed with it.
    ///
    /// The restrictions are this sandbox's own (seccomp profile, Landlock rules, capabilities,
    /// identity, rlimits, timeout): use [`Child::exec`] for the target's own restrictions, or
    /// this to run something under stricter ones. Options that create something new — namespaces,
    /// a filesystem view, a hostname, a network, cgroup limits — cannot be combined with it
    /// (`spawn` says which).
    ///
    /// ```no_run
    /// use ringfence::{Command, Profile, Sandbox};
    ///
    /// let job = Sandbox::isolated().spawn(Command::new("sleep").arg("60"))?;
    /// let out = Sandbox::new()
    ///     .seccomp(Profile::strict())
    ///     .join(&job)
    ///     .output(Command::new("ps").arg("-e"))?;
    /// # Ok::<(), ringfence::Error>(())
    /// ```
    pub fn join(mut self, target: &Child) -> Sandbox {
        let spec = target
            .pidfd()
            .try_clone_to_owned()
            .map_err(|e| JoinProblem {
                pid: target.id(),
                reason: format!("cannot duplicate its pidfd: {e}"),
                hint: "raise the open-files limit (ulimit -n)",
            })
            .and_then(|fd| {
                crate::join::open(target.id() as libc::pid_t, Some(fd), &Namespace::ALL)
            });
        self.join = Some(Arc::new(spec));
        self
    }

    /// Like [`Sandbox::join`], for a sandbox this process did not start (`ringfence exec`):
    /// process `pid`, the sandbox's first process, which must belong to the caller (or the
    /// caller be root) and have namespaces of its own.
    pub fn join_pid(mut self, pid: u32) -> Sandbox {
        let spec = match libc::pid_t::try_from(pid) {
            Ok(p) => crate::join::open(p, None, &Namespace::ALL),
            Err(_) => Err(JoinProblem {
                pid,
                reason: "not a valid pid".into(),
                hint: "give the pid of a running sandbox",
            }),
        };
        self.join = Some(Arc::new(spec));
        self
    }

    /// Make this sandbox a member of `pod`: it enters the pod's network, IPC and UTS
    /// namespaces (and its pid namespace, if the pod has one) and the pod's user namespace
    /// where it has one, and its cgroup is created below the pod's (so the pod's limits
    /// bound the sum of its members). The sandbox keeps its own mount, pid (unless the pod
    /// shares one), cgroup and time namespaces, filesystem view and restrictions.
    ///
    /// This replaces the sandbox's own network, IPC and UTS choices; a `.net(..)`,
    /// `.hostname(..)`, `.ipc_ns()` or `.uts_ns()` given *after* `.pod(..)` makes `spawn`
    /// fail (the pod decides those).
    pub fn pod(self, pod: &crate::pod::RunningPod) -> Sandbox {
        self.with_pod_spec(pod.join_spec())
    }

    pub(crate) fn with_pod_spec(
        mut self,
        spec: std::result::Result<JoinSpec, JoinProblem>,
    ) -> Sandbox {
        self.net = NetChoice::Host;
        self.hostname = None;
        for ns in [Namespace::Net, Namespace::Ipc, Namespace::Uts] {
            self.ns[ns.index()] = None;
        }
        self.join = Some(Arc::new(spec));
        self
    }

    /// [`Child::exec`] for a sandbox started by another process (as `ringfence exec` does):
    /// run `cmd` inside the running sandbox whose first process is `pid`, under the
    /// restrictions of this configuration — the one the sandbox was started with (or a
    /// stricter one). Only what restricts is taken from `self`; its namespaces, filesystem
    /// view and limits are the running sandbox's.
    pub fn exec_pid(&self, pid: u32, cmd: &Command) -> Result<Child> {
        self.exec_template().join_pid(pid).spawn(cmd)
    }

    /// The sandbox that [`Child::exec`] uses: this one's restrictions, nothing it creates.
    pub(crate) fn exec_template(&self) -> Sandbox {
        Sandbox {
            ns: [None; Namespace::ALL.len()],
            user_ns: None,
            net: NetChoice::Host,
            hostname: None,
            time_offsets: None,
            uid: self.uid,
            gid: self.gid,
            keep_caps: self.keep_caps,
            rlimits: self.rlimits.clone(),
            umask: self.umask,
            timeout: None,
            die_with_parent: self.die_with_parent,
            new_session: self.new_session,
            fs: FsConfig::default(),
            fs_compat: None,
            seccomp: self.seccomp.clone(),
            landlock: self.landlock.clone(),
            cgroup: CgroupConfig::default(),
            cgroup_compat: Default::default(),
            cwd: self.cwd.clone(),
            learning: self.learning,
            report_refusals: self.report_refusals,
            join: None,
            cache: self.cache.clone(),
            compat: self.compat,
        }
    }

    /// Start `cmd` in a new instance of this sandbox.
    ///
    /// Returns when the program has been `execve`d (or with the error that prevented it — in
    /// which case nothing of the sandbox is left behind).
    pub fn spawn(&self, cmd: &Command) -> Result<Child> {
        crate::spawn::spawn(self, cmd)
    }

    /// Run `cmd` to completion and collect its output: stdout and stderr are captured (unless
    /// the command set them otherwise) and stdin is `/dev/null` (unless set).
    pub fn output(&self, cmd: &Command) -> Result<Outcome> {
        self.spawn(&for_output(cmd))?.wait_with_output()
    }

    /// Do now, once, everything that does not depend on the command — compile the seccomp
    /// profile, create the Landlock ruleset, check the filesystem configuration and turn it
    /// into C strings, validate the rest — and return the [`Prepared`](crate::Prepared)
    /// sandbox that spawns with only the per-command work left. Configuration errors show here.
    pub fn prepare(&self) -> Result<crate::Prepared> {
        crate::warm::Prepared::new(self)
    }

    /// Start a warm sandbox for many short runs: `self.prepare()?.warm()` (see
    /// [`Prepared::warm_with`](crate::Prepared::warm_with) and [`Warm`](crate::Warm)).
    pub fn warm(&self) -> Result<crate::Warm> {
        self.prepare()?.warm()
    }
}

/// `cmd` as [`Sandbox::output`] runs it: inherited stdout and stderr are captured, an
/// inherited stdin is empty.
pub(crate) fn for_output(cmd: &Command) -> Command {
    let mut cmd = cmd.clone();
    if matches!(cmd.stdin, Stdio::Inherit) {
        cmd.stdin(Stdio::Null);
    }
    if matches!(cmd.stdout, Stdio::Inherit) {
        cmd.stdout(Stdio::Piped);
    }
    if matches!(cmd.stderr, Stdio::Inherit) {
        cmd.stderr(Stdio::Piped);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_applies_to_later_layers_and_stricter_wins() {
        assert_eq!(
            Sandbox::new().pid_ns().ns[Namespace::Pid.index()],
            Some(Compat::Required)
        );
        let sb = Sandbox::new()
            .compat(Compat::BestEffort)
            .ipc_ns()
            .compat(Compat::Required)
            .pid_ns()
            .compat(Compat::BestEffort)
            .pid_ns()
            .uts_ns();
        assert_eq!(sb.ns[Namespace::Ipc.index()], Some(Compat::BestEffort));
        assert_eq!(sb.ns[Namespace::Pid.index()], Some(Compat::Required));
        assert_eq!(sb.ns[Namespace::Uts.index()], Some(Compat::BestEffort));
        assert_eq!(sb.ns[Namespace::Net.index()], None);
    }

    #[test]
    fn net_choice_replaces_the_previous_one() {
        let sb = Sandbox::new().net(Net::New);
        assert!(sb.requests(Namespace::Net));
        let sb = sb.net(Net::Host);
        assert!(!sb.requests(Namespace::Net));
    }

    #[test]
    fn hostname_implies_uts() {
        assert!(Sandbox::new().hostname("x").requests(Namespace::Uts));
    }

    #[test]
    fn sandbox_is_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Sandbox>();
    }
}
