//! The parent's side of a spawn: prepare everything the sandboxed process needs as plain data,
//! `clone3` it into its namespaces, do the parent's part of the setup (id maps), release it, and
//! read the error pipe until the program has been executed.
//!
//! ```text
//!  parent                                   sandboxed process (src/inside, no allocation)
//!  ──────                                   ─────────────────────────────────────────────
//!  decide namespaces, build Plan
//!  block signals, clone3(CLONE_PIDFD|NEW*) ─► PDEATHSIG
//!  write uid_map / setgroups / gid_map  ◄────  "armed" (error pipe), reset signal handlers,
//!                                              wait for release ◄──── sync pipe
//!  release (once armed) ───────────────────►   setsid, setns, time ns, hostname, lo up
//!                                              [pid ns: fork payload, stay as init]
//!                                              stdio, fds, rlimits, ids, caps, cwd, NNP,
//!                                              close fds, execve
//!  read error pipe: EOF = exec'd  ◄──────────  or (stage, errno) and _exit(127)
//! ```

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nix::errno::Errno;

use crate::child::Child;
use crate::command::{Command, Stdio};
use crate::error::{ConfigError, Error, Result, Stage};
use crate::fs::FsPlan;
use crate::ns::{Namespace, NetChoice, check_netns};
use crate::probe::{Compat, Enforcement, HostInfo, Layer, Report, Unavailable, probe};
use crate::sandbox::Sandbox;

/// Everything the sandboxed process reads, built before the clone. The child only reads it
/// (in its copy of the parent's memory); it borrows from [`Prepared`], which outlives the clone.
pub(crate) struct Plan<'a> {
    pub die_with_parent: bool,
    pub sync_fd: RawFd,
    /// The child's copy of the parent's end of the sync pipe, closed first thing (else a
    /// parent that died early would leave the child waiting on a pipe it holds open itself).
    pub sync_w_fd: RawFd,
    /// A pidfd of the parent process, readable once it has died; -1 if there is none.
    pub parent_fd: RawFd,
    /// Cgroup files opened by the parent, to each of which the child writes `0` (itself)
    /// before anything else: on v1 each hierarchy's `tasks` file of its cgroup (a thread
    /// moving itself skips the kernel's thread-group lock, whose first use after a quiet while
    /// waits for an RCU grace period: 5-20 ms), or the files of a joined sandbox's cgroup.
    pub cgroup_tasks: &'a [RawFd],
    pub err_fd: RawFd,
    /// Write end of the pipe on which the init process reports the program's wait status;
    /// -1 without a pid namespace.
    pub status_fd: RawFd,
    pub setsid: bool,
    /// Make stdin the controlling terminal of the new session (`TIOCSCTTY`).
    pub ctty: bool,
    /// A pidfd whose namespaces to enter (`Child::exec`, pods), or -1.
    pub join_fd: RawFd,
    /// The `CLONE_NEW*` flags to enter through `join_fd`.
    pub join_flags: libc::c_int,
    /// Namespaces created with `unshare` after joining (a pod member's own).
    pub unshare_flags: libc::c_int,
    /// Fork after joining: a joined or unshared pid namespace only applies to children.
    pub relay: bool,
    /// Hold the namespaces instead of executing a program (a pod's holder).
    pub hold: bool,
    pub join_net: RawFd,
    pub mount_private: bool,
    pub time_ns: bool,
    pub time_offsets: Option<&'a CStr>,
    pub hostname: Option<&'a CStr>,
    pub lo_up: bool,
    /// Netlink `RTM_NEWROUTE` requests sent after `lo` is up (a `Net::User` network's
    /// `prohibit` routes); empty for none.
    pub net_routes: &'a [u8],
    pub init: bool,
    /// Source descriptors for stdin, stdout, stderr; -1 to inherit.
    pub stdio: [RawFd; 3],
    /// (source, target) pairs; every source is above every target.
    pub pass: &'a [(RawFd, RawFd)],
    /// Sorted targets of `pass`: the descriptors that survive exec besides 0-2.
    pub keep: &'a [RawFd],
    pub rlimits: &'a [(libc::__rlimit_resource_t, libc::rlimit)],
    pub umask: Option<libc::mode_t>,
    pub uid: Option<libc::uid_t>,
    pub gid: Option<libc::gid_t>,
    /// Whether `setgroups(2)` may be called (not after `setgroups` was denied in a userns).
    pub setgroups_allowed: bool,
    pub keep_caps: u64,
    pub cap_last_cap: u32,
    pub cwd: Option<&'a CStr>,
    pub program: &'a CStr,
    pub argv: &'a CStringArray,
    pub envp: &'a CStringArray,
    /// The new root to build, if any.
    pub fs: Option<&'a FsPlan>,
    /// With a new root, a program name without `/` is looked up inside it: these are the
    /// `PATH` candidates, tried in order (as `execvp` does).
    pub candidates: &'a [CString],
    /// The Landlock ruleset to restrict the program with, or -1.
    pub landlock_fd: RawFd,
    /// The ruleset of the domain every sandboxed process enters even without rules
    /// (`landlock::baseline`), or -1 when the kernel has no Landlock.
    pub landlock_base_fd: RawFd,
    /// Where the caller's command line and environment strings lie in this process's memory
    /// (the clone is a copy of it): processes that outlive the setup (init, relay, holder,
    /// zygote) and a process joining a sandbox overwrite them in their own copy.
    pub caller_strings: Option<CallerStrings>,
    /// Per-user limits (`/proc/sys/user/max_*`, value) to write in the sandbox's new user
    /// namespace, so that the sandbox cannot use up its owner's share (the kernel charges each
    /// user namespace up the chain). Empty without a new user namespace.
    pub user_limits: &'a [(CString, CString)],
    /// For a process joining a sandbox: the only descriptors it keeps (sorted) once it has
    /// entered the sandbox's namespaces, before it enters its pid namespace. Empty otherwise.
    pub join_keep: &'a [RawFd],
    /// The Landlock ruleset standing in for the filesystem view without a mount namespace
    /// (applied with `landlock_fd`: both hold), or -1.
    pub view_fd: RawFd,
    /// The seccomp filters, installed last.
    pub seccomp: Option<&'a crate::seccomp::CompiledProfile>,
    /// Whether the filter has a listener, whose descriptor number is reported to the parent.
    pub seccomp_notify: bool,
    /// For a warm sandbox: the process becomes its zygote instead of executing a program.
    pub zygote: Option<&'a crate::inside::zygote::ZygotePlan<'a>>,
    /// One slot per filesystem step, for this spawn (see `inside::mount::View`).
    pub fs_slots: &'a [std::sync::atomic::AtomicI32],
    /// Whether this process shares the parent's memory (`CLONE_VM`, see `clone_shared`).
    pub shared_vm: bool,
    /// With `shared_vm` and a pid namespace: the stack of the program's process (lowest
    /// address, size).
    pub payload_stack: (usize, usize),
}

/// The caller's `argv` and `environ` strings: `[arg_start, arg_end)` and
/// `[env_start, env_end)` of `/proc/self/stat`, the ranges the kernel shows as
/// `/proc/PID/cmdline` and `/proc/PID/environ`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallerStrings {
    pub arg: (usize, usize),
    pub env: (usize, usize),
}

/// The caller's [`CallerStrings`], found once per process: only when both ranges lie in
/// the main thread's stack mapping (where the kernel put them at exec), so that overwriting
/// them in a copy of this process is safe.
fn caller_strings() -> Option<CallerStrings> {
    static STRINGS: std::sync::OnceLock<Option<CallerStrings>> = std::sync::OnceLock::new();
    *STRINGS.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces and parentheses): the first
        // is field 3; arg_start .. env_end are fields 48 to 51.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<usize> = rest
            .split_whitespace()
            .skip(45)
            .take(4)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let [a0, a1, e0, e1] = <[usize; 4]>::try_from(fields).ok()?;
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        let stack = maps.lines().find(|l| l.ends_with("[stack]"))?;
        let (lo, hi) = stack.split_whitespace().next()?.split_once('-')?;
        let lo = usize::from_str_radix(lo, 16).ok()?;
        let hi = usize::from_str_radix(hi, 16).ok()?;
        let inside = |a: usize, b: usize| lo <= a && a <= b && b <= hi;
        (inside(a0, a1) && inside(e0, e1)).then_some(CallerStrings {
            arg: (a0, a1),
            env: (e0, e1),
        })
    })
}

/// The per-user counters a sandbox with its own user namespace gets half of: the kernel counts
/// them per user in every user namespace up the chain, so a sandbox could otherwise use up
/// its owner's whole share (128 inotify instances by default) and starve the owner's other
/// programs. Namespace counts are left alone (the default profile refuses new namespaces).
pub(crate) const USER_LIMITS: [&str; 4] = [
    "max_inotify_instances",
    "max_inotify_watches",
    "max_fanotify_groups",
    "max_fanotify_marks",
];

/// `(path, value)` for each of [`USER_LIMITS`] this kernel has: half of this process's own
/// limit (at least 1). Read once per process.
fn user_limits() -> &'static [(CString, CString)] {
    static LIMITS: std::sync::OnceLock<Vec<(CString, CString)>> = std::sync::OnceLock::new();
    LIMITS.get_or_init(|| {
        USER_LIMITS
            .iter()
            .filter_map(|name| {
                let path = format!("/proc/sys/user/{name}");
                let own: u64 = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
                let value = (own / 2).max(1);
                Some((
                    CString::new(path).ok()?,
                    CString::new(value.to_string()).ok()?,
                ))
            })
            .collect()
    })
}

/// An owned, NULL-terminated array of C strings, ready for `execve` (std's `CStringArray`).
pub(crate) struct CStringArray {
    _items: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CStringArray {
    pub fn new(items: Vec<CString>) -> CStringArray {
        let mut ptrs: Vec<*const libc::c_char> = items.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CStringArray {
            _items: items,
            ptrs,
        }
    }
    pub fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

/// What the parent decided about namespaces for one spawn.
#[derive(Default)]
struct Decision {
    flags: u64,
    /// Namespaces entered through the joined process's pidfd.
    join_flags: libc::c_int,
    /// Namespaces unshared after joining.
    unshare_flags: libc::c_int,
    /// Whether the first process forks into a joined or unshared pid namespace.
    relay: bool,
    user_maps: Option<(String, String)>,
    setgroups_deny: bool,
    report: Report,
    hostname: bool,
    lo_up: bool,
    time_ns: bool,
    pid_ns: bool,
    mount_ns: bool,
    fs: bool,
    /// The filesystem view held through Landlock, without a mount namespace.
    view: Option<crate::degrade::ViewPlan>,
}

/// Decide which namespaces this spawn gets. `refused` is set when the kernel has already
/// refused to create namespaces for this spawn (then none are created, or spawn fails if one
/// is required).
fn decide(
    sb: &Sandbox,
    host: &HostInfo,
    refused: Option<&Unavailable>,
    zygote: bool,
) -> Result<Decision> {
    if let Some(join) = &sb.join {
        return decide_join(sb, join.as_ref().as_ref().map_err(Error::from)?);
    }
    let requested: Vec<(Namespace, Compat)> = Namespace::ALL
        .into_iter()
        .filter_map(|ns| sb.ns[ns.index()].map(|c| (ns, c)))
        .collect();
    let explicit_user = sb.user_ns.is_some();
    let any_other = requested.iter().any(|(ns, _)| *ns != Namespace::User);
    // Without CAP_SYS_ADMIN every namespace needs a user namespace to own it.
    let need_user = explicit_user || (any_other && !host.privileged);

    if let NetChoice::Join(_) = sb.net {
        if explicit_user && host.privileged {
            return Err(ConfigError::Conflict {
                what: "Net::Join cannot be combined with a new user namespace: the sandbox would hold no capability over the joined network namespace, so joining it would fail; drop .user_ns(..) (root needs none)",
            }
            .into());
        }
    }

    // Why the namespaces cannot be had, if they cannot: refused by the kernel for this spawn,
    // or (when a user namespace is needed) unavailable according to the probe.
    let problem: Option<Unavailable> = match (refused, need_user) {
        (Some(r), _) => Some(r.clone()),
        (None, true) => host.user_ns.clone().err(),
        (None, false) => None,
    };

    let mut d = Decision::default();

    if let Some(p) = problem {
        // Without a user namespace, a caller without privileges gets no namespace at all.
        let via_user = need_user;
        // The filesystem view held through Landlock instead of a mount namespace, where it
        // can be (not for a warm sandbox's zygote, whose runs restrict themselves).
        let view = if sb.fs.is_empty() {
            None
        } else {
            let plan = crate::degrade::ViewPlan::of(&sb.fs);
            let compat = sb.fs_compat.unwrap_or_default();
            match plan.refusal(compat) {
                None if !zygote => Some(plan.because(p.reason.clone())),
                None => None,
                Some(why) if compat == Compat::Required => {
                    return Err(Error::Unsupported {
                        layer: Layer::Filesystem,
                        reason: format!("it needs a mount namespace, and {}; {why}", p.reason),
                        hint: p.hint,
                    });
                }
                Some(_) => None,
            }
        };
        if let Some((ns, _)) = requested
            .iter()
            .find(|(ns, c)| *c == Compat::Required && !(*ns == Namespace::Mount && view.is_some()))
        {
            return Err(Error::Unsupported {
                layer: Layer::Namespace(*ns),
                reason: if via_user {
                    format!("it needs a user namespace, and {}", p.reason)
                } else {
                    p.reason.clone()
                },
                hint: p.hint,
            });
        }
        if via_user && !explicit_user {
            d.report.push(
                Layer::Namespace(Namespace::User),
                Enforcement::NotEnforced {
                    reason: p.reason.clone(),
                    hint: p.hint,
                },
            );
        }
        for (ns, _) in &requested {
            let reason = if via_user && *ns != Namespace::User {
                format!("needs a user namespace: {}", p.reason)
            } else {
                p.reason.clone()
            };
            if *ns == Namespace::Mount && view.is_some() {
                d.report.push(
                    Layer::Namespace(*ns),
                    Enforcement::Substituted {
                        substitute: "Landlock (see the filesystem view)".into(),
                        reason,
                    },
                );
                continue;
            }
            d.report.push(
                Layer::Namespace(*ns),
                Enforcement::NotEnforced {
                    reason,
                    hint: p.hint,
                },
            );
        }
        push_dependents(sb, &mut d.report, view.is_some(), false, false);
        d.view = view;
        return Ok(d);
    }

    if need_user {
        let map = sb.user_ns.clone().unwrap_or_default();
        d.user_maps = Some(map.map_files(host.euid, host.egid)?);
        d.setgroups_deny = !host.privileged;
        d.flags |= Namespace::User.clone_flag();
        d.report
            .push(Layer::Namespace(Namespace::User), Enforcement::Enforced);
    }

    for (ns, compat) in requested {
        if ns == Namespace::User {
            continue;
        }
        if !host.supports(ns) {
            let reason = format!("this kernel has no {} namespaces", ns.name());
            let hint = "use a kernel with this namespace type enabled (CONFIG_*_NS)";
            if compat == Compat::Required {
                return Err(Error::Unsupported {
                    layer: Layer::Namespace(ns),
                    reason,
                    hint,
                });
            }
            d.report.push(
                Layer::Namespace(ns),
                Enforcement::NotEnforced { reason, hint },
            );
            continue;
        }
        match ns {
            // Entered with unshare + setns after the clone, so offsets can be written first.
            Namespace::Time => d.time_ns = true,
            Namespace::Pid => {
                d.pid_ns = true;
                d.flags |= ns.clone_flag();
            }
            Namespace::Mount => {
                d.mount_ns = true;
                d.flags |= ns.clone_flag();
            }
            _ => d.flags |= ns.clone_flag(),
        }
        d.report.push(Layer::Namespace(ns), Enforcement::Enforced);
    }
    d.fs = !sb.fs.is_empty() && d.mount_ns;
    d.hostname = sb.hostname.is_some() && d.report.is_enforced(Layer::Namespace(Namespace::Uts));
    d.lo_up = d.report.is_enforced(Layer::Namespace(Namespace::Net));
    push_dependents(sb, &mut d.report, d.fs, d.hostname, d.time_ns);
    Ok(d)
}

/// The namespaces of a spawn that enters a running sandbox (`exec`) or a pod: no clone flags;
/// `setns` through the target's pidfd, then (pod members) `unshare` of the member's own.
fn decide_join(sb: &Sandbox, spec: &crate::join::JoinSpec) -> Result<Decision> {
    let requested = |ns: Namespace| sb.ns[ns.index()].is_some();
    let conflict =
        |what: &'static str| -> Result<Decision> { Err(ConfigError::Conflict { what }.into()) };
    let mut d = Decision {
        join_flags: spec.flags(),
        setgroups_deny: !spec.setgroups_allowed,
        ..Decision::default()
    };
    if sb.user_ns.is_some() {
        return conflict(
            "a sandbox that joins another (join, exec, pod) uses the user namespace of what it joins: drop .user_ns(..)",
        );
    }
    match &spec.pod {
        None => {
            if Namespace::ALL.into_iter().any(requested) || !sb.fs.is_empty() {
                return conflict(
                    "join (exec) enters the namespaces and filesystem view of the running sandbox: drop the namespace and filesystem options (they would create new ones)",
                );
            }
            if sb.hostname.is_some()
                || !matches!(sb.net, NetChoice::Host)
                || sb.time_offsets.is_some()
            {
                return conflict(
                    "join (exec) enters the running sandbox's network, hostname and clock: drop .net(..), .hostname(..) and .time_offsets(..)",
                );
            }
            if !sb.cgroup.is_empty() {
                return conflict(
                    "join (exec) runs in the running sandbox's cgroup, under its limits: drop the cgroup limits",
                );
            }
        }
        Some(pod) => {
            if !matches!(sb.net, NetChoice::Host)
                || sb.hostname.is_some()
                || requested(Namespace::Net)
                || requested(Namespace::Ipc)
                || requested(Namespace::Uts)
            {
                return conflict(
                    "a pod member uses the pod's network, IPC and UTS namespaces: set .net(..) and .hostname(..) on the pod, not after .pod(..)",
                );
            }
            // The member's own namespaces, inside the pod's user namespace. Time is entered as
            // usual (unshare + setns after writing the offsets); a pid namespace the pod
            // shares is the pod's.
            let own = [
                Namespace::Mount,
                Namespace::Cgroup,
                Namespace::Pid,
                Namespace::Time,
            ];
            for ns in own.into_iter().filter(|ns| requested(*ns)) {
                match ns {
                    Namespace::Pid if pod.pid_ns => continue,
                    Namespace::Time => d.time_ns = true,
                    _ => d.unshare_flags |= ns.clone_flag() as libc::c_int,
                }
                d.report.push(Layer::Namespace(ns), Enforcement::Enforced);
            }
            d.mount_ns = requested(Namespace::Mount);
            d.pid_ns = requested(Namespace::Pid) && !pod.pid_ns;
        }
    }
    for ns in &spec.entered {
        d.report.push(Layer::Namespace(*ns), Enforcement::Enforced);
    }
    d.relay = spec.enters(Namespace::Pid) || d.pid_ns;
    d.fs = !sb.fs.is_empty() && d.mount_ns;
    push_dependents(sb, &mut d.report, d.fs, false, d.time_ns);
    Ok(d)
}

/// Report the layers that live in a namespace: the filesystem view (mount), the hostname
/// (uts), the clock offsets (time), each enforced only if its namespace is.
fn push_dependents(sb: &Sandbox, report: &mut Report, fs: bool, hostname: bool, time: bool) {
    let entries = [
        (
            !sb.fs.is_empty(),
            fs,
            Layer::Filesystem,
            "the mount namespace is not available; the program sees the host's filesystem",
            "see the mount namespace entry",
        ),
        (
            sb.hostname.is_some(),
            hostname,
            Layer::Hostname,
            "the UTS namespace is not available; the host's hostname is left alone",
            "see the UTS namespace entry",
        ),
        (
            sb.time_offsets.is_some(),
            time,
            Layer::TimeOffsets,
            "the time namespace is not available",
            "see the time namespace entry",
        ),
    ];
    for (requested, enforced, layer, reason, hint) in entries {
        if !requested {
            continue;
        }
        report.push(
            layer,
            if enforced {
                Enforcement::Enforced
            } else {
                Enforcement::NotEnforced {
                    reason: reason.into(),
                    hint,
                }
            },
        );
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::io("create a pipe", e))
}

/// Move `fd` to a number >= `floor` (close-on-exec), so that placing the passed descriptors in
/// the child cannot overwrite it.
fn above(fd: OwnedFd, floor: RawFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() >= floor {
        Ok(fd)
    } else {
        dup_above(&fd, floor)
    }
}

/// A close-on-exec duplicate of `fd` numbered `floor` or above.
fn dup_above(fd: impl std::os::fd::AsFd, floor: RawFd) -> Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid descriptor returns a new descriptor we then own.
    let new = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor.max(3)) };
    if new < 0 {
        return Err(Error::io("duplicate a file descriptor", Errno::last()));
    }
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The parent's ends of the stdio pipes.
#[derive(Default)]
pub(crate) struct ParentStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// `clone3` args (`struct clone_args`, up to `cgroup`: 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

static NO_CLONE3: AtomicBool = AtomicBool::new(false);

/// Fork-like clone into new namespaces, returning a pidfd. Returns `Ok(None)` in the child.
///
/// # Safety
/// The child must only run async-signal-safe code (it is a copy of a possibly multi-threaded
/// process) and must end with `execve` or `_exit`.
unsafe fn clone_pidfd(
    ns_flags: u64,
    cgroup: Option<RawFd>,
) -> Result<Option<(libc::pid_t, OwnedFd, bool)>, Errno> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut pidfd: libc::c_int = -1;
    let into_cgroup = cgroup.is_some() && !NO_CLONE3.load(Ordering::Relaxed);
    let rc = if !NO_CLONE3.load(Ordering::Relaxed) {
        let args = CloneArgs {
            flags: ns_flags
                | libc::CLONE_PIDFD as u64
                | if into_cgroup { CLONE_INTO_CGROUP } else { 0 },
            pidfd: &mut pidfd as *mut libc::c_int as u64,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cgroup.map_or(0, |fd| fd as u64),
            ..Default::default()
        };
        // SAFETY: `args` is a valid clone_args of the size given; no CLONE_VM, so the child
        // gets its own copy of this stack.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if rc < 0 && Errno::last() == Errno::ENOSYS {
            // No clone3 (old kernel, or a seccomp filter around us hides it, as Docker's does).
            NO_CLONE3.store(true, Ordering::Relaxed);
            None
        } else {
            Some(rc)
        }
    } else {
        None
    };
    let rc = match rc {
        Some(rc) => rc,
        None => {
            // clone(flags, stack, parent_tid, ...): with CLONE_PIDFD the pidfd is stored at
            // parent_tid (the third argument on every architecture).
            let flags = ns_flags | libc::CLONE_PIDFD as u64 | libc::SIGCHLD as u64;
            // SAFETY: fork-like clone (no CLONE_VM, no new stack); `pidfd` outlives the call.
            unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    flags as libc::c_ulong,
                    0usize,
                    &mut pidfd as *mut libc::c_int,
                    0usize,
                    0usize,
                )
            }
        }
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    if rc == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel stored a new pidfd that nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let born_in_cgroup = into_cgroup && !NO_CLONE3.load(Ordering::Relaxed);
    Ok(Some((rc as libc::pid_t, pidfd, born_in_cgroup)))
}

/// Clone the sandboxed process into new namespaces *sharing this process's memory*
/// (`CLONE_VM`), on its own stack from `stacks`, running `inside::run_shared` with a copy of
/// `plan` kept at the top of that mapping. Nothing of this process's page tables is copied,
/// so the cost does not grow with the caller's memory (a fork-like clone of a parent holding
/// 1 GiB copies 2 MiB of page tables and takes tens of milliseconds).
///
/// The child's thread pointer is the calling thread's: until its release it makes raw system
/// calls only (see `inside::sys`), and from its release until its exec the caller only waits
/// for it, every signal blocked, as with `vfork`.
///
/// # Safety
/// Everything `plan` borrows stays alive and unchanged until the error pipe has reached EOF
/// (the program was executed or the child ended) or the child has been reaped; `stacks` until
/// the child (with a pid namespace: its init) has been reaped.
unsafe fn clone_shared(
    ns_flags: u64,
    cgroup: Option<RawFd>,
    stacks: &crate::inside::sys::Stacks,
    plan: &Plan<'_>,
) -> Result<(libc::pid_t, OwnedFd, bool), Errno> {
    use crate::inside::sys;
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let (room, room_len) = stacks.plan_room();
    assert!(std::mem::size_of::<Plan<'_>>() <= room_len);
    let kept = room.cast::<Plan<'_>>();
    // SAFETY: the room is inside the mapping, page-aligned and large enough (checked above);
    // `Plan` has no destructor, so a bitwise copy is a copy.
    unsafe { std::ptr::copy_nonoverlapping(plan as *const Plan<'_>, kept, 1) };
    let mut pidfd: libc::c_int = -1;
    let (stack, stack_size) = stacks.main();
    let legacy = NO_CLONE3.load(Ordering::Relaxed);
    let into_cgroup = cgroup.is_some() && !legacy;
    let mut args = sys::CloneArgs {
        flags: ns_flags
            | (libc::CLONE_VM | libc::CLONE_PIDFD) as u64
            | if into_cgroup { CLONE_INTO_CGROUP } else { 0 },
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack as u64,
        stack_size: stack_size as u64,
        cgroup: if into_cgroup {
            cgroup.map_or(0, |fd| fd as u64)
        } else {
            0
        },
        ..Default::default()
    };
    let entry = crate::inside::run_shared;
    // SAFETY: see the function's contract; `run_shared` never returns.
    let mut rc = unsafe { sys::clone_on_stack(&args, legacy, entry, kept as usize) };
    let mut legacy = legacy;
    if !legacy && rc == -(libc::ENOSYS as isize) {
        // No clone3 (old kernel, or a seccomp filter around us hides it, as Docker's does).
        NO_CLONE3.store(true, Ordering::Relaxed);
        legacy = true;
        args.flags &= !CLONE_INTO_CGROUP;
        // SAFETY: as above.
        rc = unsafe { sys::clone_on_stack(&args, legacy, entry, kept as usize) };
    }
    let pid = sys::check(rc)?;
    // SAFETY: the kernel stored a new pidfd that nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok((pid as libc::pid_t, pidfd, into_cgroup && !legacy))
}

/// Blocks every signal in the calling thread until dropped (so no handler of the parent runs
/// in the child between clone and exec; the child resets handlers before unblocking).
struct SignalsBlocked(libc::sigset_t);

impl SignalsBlocked {
    fn new() -> SignalsBlocked {
        // SAFETY: sigset_t is plain data; the calls only fill it.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            SignalsBlocked(old)
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

pub(crate) fn pidfd_kill(pidfd: &OwnedFd, sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Kill and reap a child that failed during setup.
fn abort_child(pidfd: &OwnedFd) {
    let _ = pidfd_kill(pidfd, libc::SIGKILL);
    let _ = crate::child::waitid(pidfd, libc::WEXITED);
}

fn write_proc(pid: libc::pid_t, file: &str, data: &str) -> Result<(), Errno> {
    let path = format!("/proc/{pid}/{file}");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    f.write_all(data.as_bytes())
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// The record the child writes on failure: stage (u32), errno (i32) and a detail (u32: the
/// failed filesystem step), native endian.
pub(crate) const ERR_MSG_LEN: usize = 12;

/// What a spawn prepares once, whatever namespaces it ends up with.
struct Prepared {
    program: CString,
    argv: CStringArray,
    envp: CStringArray,
    cwd: Option<CString>,
    hostname: Option<CString>,
    rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    floor: RawFd,
    err_r: OwnedFd,
    err_w: OwnedFd,
    sync_r: OwnedFd,
    sync_w: OwnedFd,
    parent_stdio: ParentStdio,
    child_stdio: [Option<OwnedFd>; 3],
    pass_owned: Vec<OwnedFd>,
    pass: Vec<(RawFd, RawFd)>,
    keep: Vec<RawFd>,
    join_net: Option<OwnedFd>,
    fs: Option<Arc<FsPlan>>,
    candidates: Vec<CString>,
    seccomp: Option<Arc<crate::seccomp::CompiledProfile>>,
    landlock: Option<Arc<crate::landlock::PreparedLandlock>>,
    landlock_fd: Option<OwnedFd>,
    /// A duplicate of `landlock::baseline`'s ruleset (see `Plan::landlock_base_fd`).
    landlock_base_fd: Option<OwnedFd>,
    cgroup: Option<crate::cgroup::SandboxCgroup>,
    /// The cgroup limits that could not be had, and why.
    cgroup_problem: Option<(crate::cgroup::CgroupConfig, crate::cgroup::CgroupError)>,
    /// A pidfd of this process (see `Plan::parent_fd`), where pidfds are available.
    parent_fd: Option<OwnedFd>,
    /// See `Plan::cgroup_tasks`; the descriptors are owned by `cgroup_tasks_owned`.
    cgroup_tasks: Vec<RawFd>,
    cgroup_tasks_owned: Vec<OwnedFd>,
    /// `Net::User`: the stack and its program, whether the sandbox gets IPv6, its routes.
    usernet: Option<(crate::usernet::Stack, std::path::PathBuf, bool)>,
    net_routes: Vec<u8>,
}

fn prepare(sb: &Sandbox, cmd: &Command) -> Result<Prepared> {
    // With a new root, a bare program name is looked up inside it (by the sandboxed process).
    let argv = cmd.argv()?;
    // So is it when entering a running sandbox's mount namespace.
    let joined = sb.join.as_ref().and_then(|j| j.as_ref().as_ref().ok());
    let own_root = !sb.fs.is_empty() || joined.is_some_and(|j| j.enters(Namespace::Mount));
    let (program, candidates) = if own_root && cmd.is_bare_name() {
        // Not executed: with candidates the child tries each of them instead.
        (argv[0].clone(), cmd.path_candidates()?)
    } else {
        (cmd.resolve_program()?, Vec::new())
    };
    let argv = CStringArray::new(argv);
    let envp = CStringArray::new(cmd.envp()?);
    let cwd = match cmd.cwd_cstring()? {
        Some(dir) => Some(dir),
        None => sb
            .cwd
            .as_ref()
            .map(|d| {
                use std::os::unix::ffi::OsStrExt;
                CString::new(d.as_os_str().as_bytes()).map_err(|_| ConfigError::InteriorNul {
                    what: "working directory",
                })
            })
            .transpose()?,
    };
    let hostname = match &sb.hostname {
        Some(h) => {
            use std::os::unix::ffi::OsStrExt;
            if h.is_empty() || h.len() > 64 {
                return Err(ConfigError::InvalidHostname { len: h.len() }.into());
            }
            Some(
                CString::new(h.as_bytes())
                    .map_err(|_| ConfigError::InteriorNul { what: "hostname" })?,
            )
        }
        None => None,
    };
    let mut rlimits = Vec::with_capacity(sb.rlimits.len());
    for (r, soft, hard) in &sb.rlimits {
        if soft > hard {
            return Err(ConfigError::InvalidRlimit { resource: r.name() }.into());
        }
        let lim = |v: u64| {
            if v == u64::MAX {
                libc::RLIM_INFINITY
            } else {
                v as libc::rlim_t
            }
        };
        rlimits.push((
            r.resource(),
            libc::rlimit {
                rlim_cur: lim(*soft),
                rlim_max: lim(*hard),
            },
        ));
    }
    if let NetChoice::Join(fd) = &sb.net {
        check_netns(fd)?;
    }
    let (usernet, net_routes) = match &sb.net {
        NetChoice::User(u) => {
            let (stack, program) = u.resolve()?;
            let ipv6 = !u.no_ipv6 && crate::usernet::host_has_ipv6();
            (Some((stack, program, ipv6)), u.route_messages(ipv6))
        }
        _ => (None, Vec::new()),
    };

    // Every descriptor the child reads is placed above every passed target, so that putting
    // the passed descriptors in place cannot overwrite one of them.
    let floor = cmd
        .pass_fds()
        .iter()
        .map(|(_, t)| *t + 1)
        .max()
        .unwrap_or(3)
        .max(3);
    let (err_r, err_w) = pipe()?;
    let err_w = above(err_w, floor)?;
    let (sync_r, sync_w) = pipe()?;
    let sync_r = above(sync_r, floor)?;

    let mut parent_stdio = ParentStdio::default();
    let mut child_stdio: [Option<OwnedFd>; 3] = [None, None, None];
    for (i, s) in [&cmd.stdin, &cmd.stdout, &cmd.stderr]
        .into_iter()
        .enumerate()
    {
        child_stdio[i] = match s {
            Stdio::Inherit => None,
            Stdio::Null => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .map_err(|e| Error::io("open /dev/null", e))?;
                Some(above(f.into(), floor)?)
            }
            Stdio::Piped => {
                let (r, w) = pipe()?;
                let (ours, theirs) = if i == 0 { (w, r) } else { (r, w) };
                *[
                    &mut parent_stdio.stdin,
                    &mut parent_stdio.stdout,
                    &mut parent_stdio.stderr,
                ][i] = Some(ours);
                Some(above(theirs, floor)?)
            }
            Stdio::Fd(fd) => Some(dup_above(fd, floor)?),
        };
    }
    let mut pass_owned = Vec::with_capacity(cmd.pass_fds().len());
    let mut pass = Vec::with_capacity(cmd.pass_fds().len());
    for (fd, target) in cmd.pass_fds() {
        let d = dup_above(fd, floor)?;
        pass.push((d.as_raw_fd(), *target));
        pass_owned.push(d);
    }
    let mut keep: Vec<RawFd> = pass.iter().map(|(_, t)| *t).collect();
    keep.sort_unstable();
    let join_net = match &sb.net {
        NetChoice::Join(fd) => Some(dup_above(fd, floor)?),
        _ => None,
    };
    // A pod member's cgroup goes below the pod's.
    let pod_cgroup = joined
        .and_then(|j| j.pod.as_ref())
        .and_then(|p| p.cgroup_parent.clone())
        .map(|parent| crate::cgroup::CgroupConfig {
            parent: Some(parent),
            ..sb.cgroup.clone()
        });
    let cgroup_cfg = pod_cgroup.as_ref().unwrap_or(&sb.cgroup);
    let (cgroup, cgroup_problem) = if cgroup_cfg.is_empty() {
        (None, None)
    } else {
        match sb.cgroup_pool().take(cgroup_cfg, pod_cgroup.is_none()) {
            Ok(c) => (Some(c), None),
            // Substitutes or a refusal, once the namespaces are decided.
            Err(e) if crate::degrade::substitutable(&e) => (None, Some((cgroup_cfg.clone(), e))),
            Err(e) => return Err(Error::Cgroup(e)),
        }
    };
    let seccomp = sb.compiled_seccomp()?;
    let landlock = sb.prepared_landlock()?;
    let landlock_fd = match landlock.as_ref().and_then(|l| l.raw_fd()) {
        // SAFETY: the ruleset descriptor is owned by `landlock`, alive for this call.
        Some(fd) => Some(dup_above(
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            floor,
        )?),
        None => None,
    };
    let landlock_base_fd = match crate::landlock::baseline() {
        Ok(fd) => Some(above(fd, floor)?),
        Err((Errno::ENOSYS | Errno::EOPNOTSUPP, _)) => None,
        Err((e, _)) => return Err(Error::io("create the sandbox's Landlock ruleset", e)),
    };
    let fs = sb.prepared_fs()?;
    // The cgroup files the child moves itself with: its own cgroup's (v1), or those of the
    // running sandbox it joins (`tasks` on v1, `cgroup.procs` on v2).
    let mut attach_files = cgroup
        .as_ref()
        .map(|c| c.self_attach_files())
        .transpose()
        .map_err(Error::Cgroup)?
        .unwrap_or_default();
    for dir in joined.map_or(&[][..], |j| &j.cgroup[..]) {
        let tasks = dir.join("tasks");
        let path = if tasks.exists() {
            tasks
        } else {
            dir.join("cgroup.procs")
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open the running sandbox's cgroup", e))?;
        attach_files.push(file.into());
    }
    let mut cgroup_tasks_owned = Vec::with_capacity(attach_files.len());
    for f in attach_files {
        cgroup_tasks_owned.push(above(f, floor)?);
    }
    let cgroup_tasks = cgroup_tasks_owned.iter().map(|f| f.as_raw_fd()).collect();
    // Per spawn (one system call), so that no descriptor stays open between spawns and a
    // forked copy of this process never uses its parent's.
    let parent_fd = match crate::join::pidfd_open(std::process::id() as libc::pid_t) {
        Ok(fd) => Some(above(fd, floor)?),
        Err(_) => None,
    };
    Ok(Prepared {
        program,
        argv,
        envp,
        cwd,
        hostname,
        rlimits,
        floor,
        err_r,
        err_w,
        sync_r,
        sync_w,
        parent_stdio,
        child_stdio,
        pass_owned,
        pass,
        keep,
        join_net,
        fs,
        candidates,
        seccomp,
        landlock,
        landlock_fd,
        landlock_base_fd,
        cgroup,
        cgroup_problem,
        parent_fd,
        cgroup_tasks,
        cgroup_tasks_owned,
        usernet,
        net_routes,
    })
}

pub(crate) fn spawn(sb: &Sandbox, cmd: &Command) -> Result<Child> {
    spawn_as(sb, cmd, false, None)
}

/// Start a warm sandbox's zygote: the sandbox's setup, then, instead of a program, the zygote
/// (see `inside::zygote`).
pub(crate) fn spawn_zygote(
    sb: &Sandbox,
    zygote: &crate::inside::zygote::ZygotePlan<'_>,
) -> Result<Child> {
    spawn_as(sb, &Command::new("/ringfence-zygote"), false, Some(zygote))
}

/// Start a pod's holder: the sandbox's setup, then, instead of a program, a process that only
/// holds the namespaces (see `inside::init::hold`).
pub(crate) fn spawn_holder(sb: &Sandbox) -> Result<Child> {
    spawn_as(sb, &Command::new("/ringfence-pod-holder"), true, None)
}

fn spawn_as(
    sb: &Sandbox,
    cmd: &Command,
    hold: bool,
    zygote: Option<&crate::inside::zygote::ZygotePlan<'_>>,
) -> Result<Child> {
    let started = Instant::now();
    let host = probe();
    let prep = prepare(sb, cmd)?;
    // The ordinary spawn shares this process's memory until the exec (no page table is
    // copied, whatever the caller's size); a zygote, a pod's holder and a joining process
    // (with its relay) run long and use more of libc, and are fork-like copies. So is a
    // sandbox with a time namespace: the kernel lets no process share its memory across time
    // namespaces (their vDSO data differs), and `setns` into one wants a process alone in its
    // memory.
    let shared = crate::inside::sys::AVAILABLE
        && zygote.is_none()
        && !hold
        && sb.join.is_none()
        && sb.ns[Namespace::Time.index()].is_none()
        // A change of ids makes the kernel reset the dumpability of the memory map (the
        // caller's, if shared) to fs.suid_dumpable.
        && sb.uid.is_none()
        && sb.gid.is_none()
        // A pid namespace's init lives in the sandbox's cgroup for the sandbox's whole life.
        // Under a memory limit, the OOM killer picks the task with the largest memory map and
        // kills every process that shares it: sharing the caller's, the init would take the
        // caller down with it. The init of a memory-limited sandbox is a copy.
        && !(sb.ns[Namespace::Pid.index()].is_some()
            && (sb.cgroup.memory.is_some() || sb.cgroup.swap.is_some()));
    let stacks = if shared {
        Some(
            crate::inside::sys::Stacks::take()
                .map_err(|e| Error::io("map the sandboxed process's stack", e))?,
        )
    } else {
        None
    };
    let fs_slots: Box<[std::sync::atomic::AtomicI32]> =
        (0..prep.fs.as_ref().map_or(0, |f| f.steps.len()))
            .map(|_| std::sync::atomic::AtomicI32::new(-1))
            .collect();

    // Clone; if the kernel refuses the namespaces and none is required, once more without.
    let mut refused: Option<Unavailable> = None;
    let (d, pid, pidfd, status_r, born_in_cgroup, limits, _offsets, blocked, view_kept) = loop {
        let d = decide(sb, host, refused.as_ref(), zygote.is_some())?;
        // The filesystem view through Landlock: its ruleset, private /tmp and environment.
        let view = match &d.view {
            Some(v) => Some(v.prepare()?),
            None => None,
        };
        let view_fd = match view.as_ref().and_then(|v| v.landlock.raw_fd()) {
            // SAFETY: the ruleset descriptor is owned by `view`, alive for this call.
            Some(fd) => Some(dup_above(
                unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                prep.floor,
            )?),
            None => None,
        };
        let view_envp = match &view {
            Some(v) if v.tmpdir.is_some() => Some(CStringArray::new(v.environment(cmd.envp()?))),
            _ => None,
        };
        let view_cwd = view.as_ref().and_then(|v| v.working_dir(prep.cwd.as_ref()));
        let limits = match &prep.cgroup_problem {
            Some((cfg, e)) => Some(crate::degrade::limits(
                cfg,
                e,
                &sb.cgroup_compat,
                d.flags & Namespace::User.clone_flag() != 0,
                host,
                &prep.rlimits,
            )?),
            None => None,
        };
        let (status_r, status_w) = if d.pid_ns || d.relay {
            let (r, w) = pipe()?;
            (Some(r), Some(above(w, prep.floor)?))
        } else {
            (None, None)
        };
        // A process joining a sandbox keeps nothing of the caller but what it was given.
        let join_keep = match join_spec(sb) {
            Some(_) if prep.fs.is_none() => {
                let mut keep: Vec<RawFd> = (0..3)
                    .filter(|&i| prep.child_stdio[i as usize].is_none())
                    .chain(prep.child_stdio.iter().flatten().map(|f| f.as_raw_fd()))
                    .chain(prep.pass.iter().map(|(src, _)| *src))
                    .chain([prep.err_w.as_raw_fd()])
                    .chain(status_w.as_ref().map(|f| f.as_raw_fd()))
                    .chain(prep.landlock_fd.as_ref().map(|f| f.as_raw_fd()))
                    .chain(prep.landlock_base_fd.as_ref().map(|f| f.as_raw_fd()))
                    .chain(view_fd.as_ref().map(|f| f.as_raw_fd()))
                    .chain(prep.join_net.as_ref().map(|f| f.as_raw_fd()))
                    .collect();
                keep.sort_unstable();
                keep.dedup();
                keep
            }
            _ => Vec::new(),
        };
        let plan = Plan {
            die_with_parent: sb.die_with_parent,
            sync_fd: prep.sync_r.as_raw_fd(),
            sync_w_fd: prep.sync_w.as_raw_fd(),
            parent_fd: prep.parent_fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            cgroup_tasks: &prep.cgroup_tasks,
            err_fd: prep.err_w.as_raw_fd(),
            status_fd: status_w.as_ref().map_or(-1, |f| f.as_raw_fd()),
            setsid: sb.new_session,
            ctty: sb.new_session && cmd.controlling_terminal && prep.child_stdio[0].is_some(),
            join_fd: join_spec(sb).map_or(-1, |j| j.pidfd.as_raw_fd()),
            join_flags: d.join_flags,
            unshare_flags: d.unshare_flags,
            relay: d.relay,
            hold,
            join_net: prep.join_net.as_ref().map_or(-1, |f| f.as_raw_fd()),
            mount_private: d.mount_ns,
            time_ns: d.time_ns,
            time_offsets: None,
            hostname: prep.hostname.as_deref().filter(|_| d.hostname),
            lo_up: d.lo_up,
            net_routes: if d.lo_up { &prep.net_routes } else { &[] },
            init: d.pid_ns,
            stdio: [0, 1, 2]
                .map(|i: usize| prep.child_stdio[i].as_ref().map_or(-1, |f| f.as_raw_fd())),
            pass: &prep.pass,
            keep: &prep.keep,
            rlimits: limits.as_ref().map_or(&prep.rlimits, |l| &l.rlimits),
            umask: sb.umask.map(|m| m as libc::mode_t),
            uid: sb.uid,
            gid: sb.gid,
            setgroups_allowed: !d.setgroups_deny,
            keep_caps: sb.keep_caps,
            cap_last_cap: host.cap_last_cap,
            cwd: view_cwd.as_deref().or(prep.cwd.as_deref()),
            program: &prep.program,
            argv: &prep.argv,
            envp: view_envp.as_ref().unwrap_or(&prep.envp),
            fs: prep.fs.as_deref().filter(|_| d.fs),
            candidates: &prep.candidates,
            landlock_fd: prep.landlock_fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            landlock_base_fd: prep.landlock_base_fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            caller_strings: caller_strings().filter(|_| stacks.is_none()),
            join_keep: &join_keep,
            user_limits: if d.user_maps.is_some() {
                user_limits()
            } else {
                &[]
            },
            view_fd: view_fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            seccomp: prep.seccomp.as_deref(),
            seccomp_notify: prep.seccomp.as_ref().is_some_and(|c| c.uses_notify()),
            zygote,
            fs_slots: &fs_slots,
            shared_vm: stacks.is_some(),
            payload_stack: stacks.as_ref().map_or((0, 0), |s| s.payload()),
        };
        let offsets = match (&sb.time_offsets, d.time_ns) {
            (Some(t), true) => {
                Some(CString::new(t.render()).map_err(|_| Error::Protocol("NUL in offsets"))?)
            }
            _ => None,
        };
        let plan = Plan {
            time_offsets: offsets.as_deref(),
            ..plan
        };

        let blocked = SignalsBlocked::new();
        let cgroup_fd = prep
            .cgroup
            .as_ref()
            .and_then(|c| c.clone_into_fd())
            .map(|f| f.as_raw_fd());
        let cloned = match &stacks {
            // SAFETY: the child runs `inside::run_shared` on its own stack, with raw system
            // calls while this thread runs (see `inside::setup`); the plan is copied into the
            // stacks' mapping, and everything it borrows stays alive until the error pipe has
            // said the program was executed, or the child has been reaped.
            Some(stacks) => unsafe { clone_shared(d.flags, cgroup_fd, stacks, &plan) }.map(Some),
            // SAFETY: the child runs only `inside::run`, which is async-signal-safe and never
            // returns; `plan` and everything it borrows stay alive in the child's copy.
            None => unsafe { clone_pidfd(d.flags, cgroup_fd) },
        };
        match cloned {
            Ok(None) => crate::inside::run(&plan),
            Ok(Some((pid, pidfd, born_in_cgroup))) => {
                // A child sharing our memory gets the vfork treatment: this thread takes no
                // signal until it has executed the program (a handler here could change the
                // errno the child reads).
                let blocked = if stacks.is_some() {
                    Some(blocked)
                } else {
                    drop(blocked);
                    None
                };
                drop(status_w);
                // The child has its own descriptor table (no CLONE_FILES); what the plan
                // borrows (environment, working directory) stays until the exec.
                drop(view_fd);
                break (
                    d,
                    pid,
                    pidfd,
                    status_r,
                    born_in_cgroup,
                    limits,
                    offsets,
                    blocked,
                    (view, view_envp, view_cwd),
                );
            }
            Err(e) => {
                drop(blocked);
                let ns_refused = matches!(
                    e,
                    Errno::EPERM | Errno::ENOSPC | Errno::EUSERS | Errno::EINVAL
                );
                if d.flags == 0 || !ns_refused || refused.is_some() {
                    return Err(Error::setup(Stage::Clone, e));
                }
                tracing::debug!(errno = %e, "the kernel refused to create namespaces; trying without");
                refused = Some(Unavailable {
                    reason: format!("the kernel refused to create namespaces ({e})"),
                    hint: if d.flags & Namespace::User.clone_flag() != 0 {
                        "allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, kernel.apparmor_restrict_unprivileged_userns=0), or lift the seccomp filter or LSM policy that blocks clone with namespace flags"
                    } else {
                        "lift the seccomp filter or LSM policy that blocks clone with namespace flags"
                    },
                });
            }
        }
    };

    // Kept until the end: the sandboxed process may read them until its exec (`clone_shared`).
    let (view, _view_envp, _view_cwd) = view_kept;

    // Parent: close the child's ends, so that the error pipe reaches EOF at exec.
    let Prepared {
        err_r,
        err_w,
        sync_r,
        sync_w,
        parent_stdio,
        child_stdio,
        pass_owned,
        join_net,
        fs,
        seccomp,
        landlock,
        landlock_fd,
        landlock_base_fd,
        cgroup,
        cgroup_tasks_owned,
        usernet,
        ..
    } = prep;
    let self_attached = !cgroup_tasks_owned.is_empty();
    drop((
        err_w,
        sync_r,
        child_stdio,
        pass_owned,
        join_net,
        landlock_fd,
        landlock_base_fd,
        cgroup_tasks_owned,
    ));
    let descriptions = fs.as_deref().map_or(&[][..], |f| &f.descriptions[..]);

    // The parent's part of the setup: id maps.
    if let Some((uid_map, gid_map)) = &d.user_maps {
        let steps = [
            (Stage::UidMap, "uid_map", uid_map.as_str()),
            (
                Stage::SetgroupsDeny,
                "setgroups",
                if d.setgroups_deny { "deny" } else { "allow" },
            ),
            (Stage::GidMap, "gid_map", gid_map.as_str()),
        ];
        for (stage, file, data) in steps {
            if let Err(e) = write_proc(pid, file, data) {
                abort_child(&pidfd);
                return Err(Error::setup(stage, e));
            }
        }
    }

    // Into our own cgroup before anything of the program runs (v2 without clone3; on v1, and
    // into a joined sandbox's cgroup, the child moves itself).
    if let Some(cg) = &cgroup {
        if !born_in_cgroup && !self_attached {
            if let Err(e) = cg.attach(pid) {
                abort_child(&pidfd);
                return Err(Error::Cgroup(e));
            }
        }
    }

    // The user-mode network stack, for the new network namespace, before the program starts.
    let mut stack = None;
    let mut stack_report = None;
    if let (NetChoice::User(cfg), Some((kind, program, ipv6))) = (&sb.net, &usernet) {
        if d.lo_up {
            let userns = d.flags & Namespace::User.clone_flag() != 0;
            match crate::usernet::start(cfg, *kind, program, pid, userns, *ipv6) {
                Ok(s) => {
                    tracing::debug!(stack = %kind, pid = s.pid(), "user-mode network started");
                    stack_report = Some((Layer::UserNet(s.stack()), Enforcement::Enforced));
                    stack = Some(s);
                }
                Err(e) => {
                    abort_child(&pidfd);
                    return Err(e.into());
                }
            }
        } else {
            stack_report = Some((
                Layer::UserNet(*kind),
                Enforcement::NotEnforced {
                    reason:
                        "the network namespace is not available; the program has the host's network"
                            .into(),
                    hint: "see the network namespace entry",
                },
            ));
        }
    }

    // Release the child — with a death signal, once it says the signal is armed (see
    // `inside::setup`) — then wait until it has executed the program (or failed).
    // A raw write: the child may already run when it returns (see `inside::sys`).
    let release = || loop {
        match crate::inside::sys::write(sync_w.as_raw_fd(), &[1]) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::io("release the sandboxed process", e)),
        }
    };
    if !sb.die_with_parent {
        if let Err(e) = release() {
            abort_child(&pidfd);
            return Err(e);
        }
    }
    let mut supervisor = None;
    let mut take_listener = |number: i32| -> Result<()> {
        let depth = u32::from(d.relay) + u32::from(d.pid_ns);
        let target = crate::supervise::installer(pid, &pidfd, depth)?;
        let listener = crate::supervise::take_listener(&target, number)?;
        let mode = if sb.learning {
            crate::supervise::Mode::Learn
        } else {
            crate::supervise::Mode::Enforce(
                seccomp
                    .clone()
                    .ok_or(Error::Protocol("a seccomp listener without a filter"))?,
            )
        };
        let arch = crate::seccomp::Arch::native().ok_or(Error::Protocol("unknown architecture"))?;
        supervisor = Some(crate::supervise::Supervisor::start(listener, mode, arch));
        Ok(())
    };
    let mut release = release;
    if let Err(e) = read_error_pipe(err_r, descriptions, &mut release, &mut take_listener) {
        abort_child(&pidfd);
        return Err(e);
    }
    drop(blocked);
    drop(sync_w);
    // The program runs: the stacks are no longer used, but by a pid namespace's init, which
    // keeps running on its stack until it is reaped.
    let stacks = match stacks {
        Some(s) if !d.pid_ns => {
            s.give_back();
            None
        }
        s => s,
    };

    let mut report = d.report;
    if let Some((layer, e)) = stack_report {
        report.push(layer, e);
    }
    if let (Some(plan), Some(v)) = (&d.view, &view) {
        report.set(
            Layer::Filesystem,
            Enforcement::Substituted {
                substitute: plan.describe(v.scratch.as_ref().map(|s| s.path())),
                reason: format!("no mount namespace: {}", plan.reason),
            },
        );
    }
    push_hygiene(sb, &mut report);
    if seccomp.is_some() {
        report.push(Layer::Seccomp, Enforcement::Enforced);
    }
    for (part, e) in landlock.iter().flat_map(|l| l.report()) {
        report.push(Layer::Landlock(*part), e.clone());
    }
    if !hold {
        report.push(
            Layer::LandlockDomain,
            match crate::landlock::baseline_available() {
                Ok(()) => Enforcement::Enforced,
                Err(reason) => Enforcement::NotEnforced {
                    reason: reason.to_owned(),
                    hint: crate::landlock::unavailable_hint(),
                },
            },
        );
    }
    if cgroup.is_some() {
        report.push(Layer::Cgroup, Enforcement::Enforced);
    } else if let Some(l) = limits {
        report.push(Layer::Cgroup, l.enforcement);
    }
    if let Some(pod) = join_spec(sb).and_then(|j| j.pod.as_ref()) {
        if let Ok(fd) = pidfd.try_clone() {
            let mut members = pod.members.lock().unwrap_or_else(|e| e.into_inner());
            members.retain(|m| pidfd_kill(m, 0).is_ok());
            members.push(fd);
        }
    }
    tracing::debug!(pid, "sandbox started");
    let mut child = Child::new(
        pid,
        pidfd,
        parent_stdio,
        status_r,
        report,
        started,
        sb.timeout.map(|t| started + t),
        sb.new_session && (d.relay || !d.pid_ns),
        cgroup,
        supervisor,
    )
    .with_usernet(stack);
    if let Some(stacks) = stacks {
        child.keep_stacks(stacks);
    }
    // Without namespaces there is nothing to enter: `Child::exec` refuses such a sandbox, so
    // the view's ruleset is needed by no later process.
    let child = child.with_scratch(view.and_then(|v| v.scratch));
    Ok(if hold {
        child
    } else {
        child.with_exec_template(Arc::new(sb.exec_template()))
    })
}

/// The running sandbox or pod the spawn enters, if any (`decide` has checked it is usable).
fn join_spec(sb: &Sandbox) -> Option<&crate::join::JoinSpec> {
    sb.join.as_ref().and_then(|j| j.as_ref().as_ref().ok())
}

fn push_hygiene(sb: &Sandbox, report: &mut Report) {
    report.push(Layer::NoNewPrivs, Enforcement::Enforced);
    report.push(Layer::Capabilities, Enforcement::Enforced);
    report.push(Layer::CloseFds, Enforcement::Enforced);
    if sb.new_session {
        report.push(Layer::NewSession, Enforcement::Enforced);
    }
    if sb.die_with_parent {
        report.push(Layer::DieWithParent, Enforcement::Enforced);
    }
    if !sb.rlimits.is_empty() {
        report.push(Layer::Rlimits, Enforcement::Enforced);
    }
}

/// A record with this stage is no failure: its detail is the descriptor number the seccomp
/// listener will get in the sandboxed process (see `supervise.rs`).
pub(crate) const LISTENER_RECORD: u32 = u32::MAX;

/// A record with this stage is no failure: the sandboxed process has set its death signal and
/// waits to be released.
pub(crate) const ARMED_RECORD: u32 = u32::MAX - 1;

/// Read the error pipe until EOF (the program was executed) or a failure record.
/// `steps` names the filesystem steps, for failures of [`Stage::Mount`]; `on_armed` and
/// `on_listener` take the records that are no failure.
fn read_error_pipe(
    err_r: OwnedFd,
    steps: &[String],
    on_armed: &mut dyn FnMut() -> Result<()>,
    on_listener: &mut dyn FnMut(i32) -> Result<()>,
) -> Result<()> {
    let mut buf = [0u8; ERR_MSG_LEN];
    let mut got = 0;
    loop {
        match crate::inside::sys::read(err_r.as_raw_fd(), &mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(()),
            Ok(0) => return Err(Error::Protocol("short failure record on the error pipe")),
            Ok(n) => {
                got += n;
                if got == ERR_MSG_LEN {
                    let word = |i: usize| [buf[i], buf[i + 1], buf[i + 2], buf[i + 3]];
                    let stage = u32::from_ne_bytes(word(0));
                    let errno = Errno::from_raw(i32::from_ne_bytes(word(4)));
                    let detail = u32::from_ne_bytes(word(8));
                    let no_failure = match stage {
                        ARMED_RECORD => on_armed().map(|()| true)?,
                        LISTENER_RECORD => on_listener(detail as i32).map(|()| true)?,
                        _ => false,
                    };
                    if no_failure {
                        got = 0;
                        continue;
                    }
                    let stage = Stage::from_u32(stage)
                        .ok_or(Error::Protocol("unknown stage on the error pipe"))?;
                    if stage == Stage::Mount {
                        let step = match detail {
                            crate::inside::AT_ROOT => "the new root".to_owned(),
                            crate::inside::AT_PIVOT => "pivot_root into the new root".to_owned(),
                            i => steps
                                .get(i as usize)
                                .cloned()
                                .unwrap_or_else(|| format!("step {i}")),
                        };
                        return Err(Error::Mount { step, errno });
                    }
                    return Err(Error::setup(stage, errno));
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::io("read the error pipe", e)),
        }
    }
}
