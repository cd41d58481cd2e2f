//! The seccomp supervisor: a thread in the parent that answers the user notifications of a
//! sandbox's filter (`SECCOMP_RET_USER_NOTIF`).
//!
//! - Enforcing, the supervisor runs the profile's own program (the reference, without the
//!   notifications) on each notified call and answers as it says: a call an
//!   [`Action::Notify`] rule caught is recorded as a [`Violation`] and refused with `EPERM`;
//!   with [`Sandbox::report_refusals`](crate::Sandbox::report_refusals), the installed
//!   program notifies every errno and kill-process result too, and the supervisor records the
//!   call and answers the same errno, or kills the process. Allowed calls are never notified
//!   (but `execve`, below).
//! - Learning ([`Sandbox::learn`](crate::Sandbox::learn)), every call is notified, recorded
//!   with the argument values that matter (socket family, clone flags, ioctl request,
//!   personality) and let through; the record becomes a minimal allow-list [`Profile`].
//!
//! The listener comes from the sandboxed process: before installing its filter, the process
//! reports the descriptor number the kernel will give the listener (the lowest free one), and
//! the filter notifies `execve`, so the process waits at its own `execve` until the parent has
//! taken the listener with `pidfd_getfd` and this thread has answered.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::seccomp::{Action, Arch, CompiledProfile, Cond, Profile, Syscall, X32_SYSCALL_BIT};

/// A system call the seccomp filter refused: caught by an [`Action::Notify`] rule, or any
/// refusal when the sandbox reports them
/// ([`Sandbox::report_refusals`](crate::Sandbox::report_refusals)).
///
/// Calls are counted per syscall and result: the fields other than `count` are those of the
/// first such call.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The syscall's name (`"syscall N"` for a number without a name; an x32 call is named
    /// with an ` (x32)` suffix, a call of another architecture with ` (i386)` or
    /// ` (arch 0x...)`).
    pub syscall: String,
    /// Its number, as the calling ABI numbers it.
    pub nr: u32,
    /// Its six arguments (pointers are addresses in the caller).
    pub args: [u64; 6],
    /// The calling process, as the parent sees it.
    pub pid: u32,
    /// What the filter did: `Errno(e)` (the call failed with `e`), `KillProcess` (the process
    /// was killed, by `SIGKILL` as the supervisor does it), or `Notify` (a notify rule: the
    /// call failed with `EPERM`).
    pub action: Action,
    /// How many times the call was refused.
    pub count: u64,
}

/// How the supervisor answers.
pub(crate) enum Mode {
    /// Answer as the compiled profile's reference program says (see
    /// [`CompiledProfile::supervised`](crate::seccomp::CompiledProfile)), recording refusals.
    Enforce(Arc<CompiledProfile>),
    /// Let everything through, recording it.
    Learn,
}

/// What a supervisor saw.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub violations: Vec<Violation>,
    /// Every syscall number seen, with the values of its interesting argument.
    pub seen: BTreeMap<u32, BTreeSet<u64>>,
}

/// Most distinct refusals one run records (each is counted; later new ones are dropped).
const MAX_VIOLATIONS: usize = 1024;

impl Record {
    /// Counts a refused call.
    fn refused(
        &mut self,
        data: &crate::seccomp::interp::SeccompData,
        action: Action,
        pid: u32,
        arch: Arch,
    ) {
        let nr = data.nr as u32;
        let syscall = syscall_name(data.arch, nr, arch);
        if let Some(v) = self
            .violations
            .iter_mut()
            .find(|v| v.nr == nr && v.action == action && v.syscall == syscall)
        {
            v.count += 1;
            return;
        }
        if self.violations.len() >= MAX_VIOLATIONS {
            return;
        }
        self.violations.push(Violation {
            syscall,
            nr,
            args: data.args,
            pid,
            action,
            count: 1,
        });
    }
}

/// A syscall's name for a report: by the calling ABI's table.
fn syscall_name(audit_arch: u32, nr: u32, native: Arch) -> String {
    let of = |a: Arch, n: u32| Syscall::from_nr(a, n).map(|s| s.name().to_owned());
    let name = if audit_arch == native.audit_arch() {
        if native == Arch::X86_64 && nr & X32_SYSCALL_BIT != 0 {
            of(Arch::X86_64, nr & !X32_SYSCALL_BIT).map(|n| format!("{n} (x32)"))
        } else {
            of(native, nr)
        }
    } else if audit_arch == Arch::I386.audit_arch() {
        of(Arch::I386, nr).map(|n| format!("{n} (i386)"))
    } else {
        return format!("syscall {nr} (arch {audit_arch:#x})");
    };
    name.unwrap_or_else(|| format!("syscall {nr}"))
}

/// A running supervisor thread.
#[derive(Debug)]
pub(crate) struct Supervisor {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Record>>,
}

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Notif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub data: SeccompData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct NotifResp {
    pub id: u64,
    pub val: i64,
    pub error: i32,
    pub flags: u32,
}

/// `_IOW('!', 2, __u64)`.
const SECCOMP_IOCTL_NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;

/// `_IOWR('!', 0, struct seccomp_notif)`.
pub(crate) const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
/// `_IOWR('!', 1, struct seccomp_notif_resp)`.
pub(crate) const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// The argument whose values a learned profile pins, per syscall.
fn interesting_arg(name: &str) -> Option<(u8, bool)> {
    // (index, compare the low 32 bits only)
    match name {
        "socket" => Some((0, true)),
        "clone" => Some((0, false)),
        "ioctl" => Some((1, true)),
        "personality" => Some((0, true)),
        _ => None,
    }
}

impl Supervisor {
    pub(crate) fn start(listener: OwnedFd, mode: Mode, arch: Arch) -> Supervisor {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("ringfence-seccomp".into())
            .spawn(move || run(listener, mode, arch, &flag))
            .ok();
        Supervisor { stop, handle }
    }

    /// Stop answering (the sandbox has ended) and return what was seen.
    pub(crate) fn finish(mut self) -> Record {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(listener: OwnedFd, mode: Mode, arch: Arch, stop: &AtomicBool) -> Record {
    let mut record = Record::default();
    let fd = listener.as_raw_fd();
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on this stack.
        let rc = unsafe { libc::poll(&mut pfd, 1, 50) };
        if rc < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            break;
        }
        if rc == 0 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            continue;
        }
        if pfd.revents & libc::POLLIN == 0 {
            // POLLHUP: no process uses the filter any more.
            break;
        }
        let mut req = Notif::default();
        // SAFETY: the kernel fills the zeroed request.
        if unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) } != 0 {
            // ENOENT: the caller died meanwhile.
            continue;
        }
        let nr = req.data.nr as u32;
        let args = req.data.args;
        let name = Syscall::from_nr(arch, nr).map(|s| s.name());
        let mut resp = NotifResp {
            id: req.id,
            ..Default::default()
        };
        match &mode {
            Mode::Learn => {
                let values = record.seen.entry(nr).or_default();
                if let Some((i, low32)) = name.and_then(interesting_arg) {
                    let v = args[usize::from(i)];
                    values.insert(if low32 { v & 0xffff_ffff } else { v });
                }
                resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
            }
            Mode::Enforce(compiled) => {
                let data = crate::seccomp::interp::SeccompData {
                    nr: req.data.nr,
                    arch: req.data.arch,
                    instruction_pointer: req.data.ip,
                    args,
                };
                // The reference is a program ringfence compiled: it runs.
                let ret = crate::seccomp::interp::run(compiled.reference(), &data)
                    .unwrap_or(libc::SECCOMP_RET_KILL_PROCESS);
                let action = Action::from_ret(ret).unwrap_or(Action::KillProcess);
                match action {
                    Action::Allow | Action::Log => {
                        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                    }
                    Action::Errno(e) => resp.error = -i32::from(e),
                    Action::KillProcess => {
                        // Only while the call is still pending: the pid is then that of the
                        // caller (it cannot have exited and been reused).
                        // SAFETY: reads the id from this stack.
                        let valid =
                            unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID as _, &req.id) }
                                == 0;
                        if valid {
                            // SAFETY: signals the process blocked in the notified call.
                            unsafe { libc::kill(req.pid as libc::pid_t, libc::SIGKILL) };
                        }
                        resp.error = -libc::EPERM;
                    }
                    _ => resp.error = -libc::EPERM,
                }
                if !matches!(action, Action::Allow | Action::Log) {
                    let action = match action {
                        Action::Errno(_) | Action::KillProcess => action,
                        _ => Action::Notify,
                    };
                    record.refused(&data, action, req.pid, arch);
                }
            }
        }
        // SAFETY: answers the request read above; ENOENT (the caller died) is fine.
        unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND as _, &resp) };
    }
    record
}

/// The profile actually compiled for a supervised sandbox: `execve` and `execveat` are
/// notified first, so that the sandboxed process waits at its own `execve` until the listener
/// has been taken over.
pub(crate) fn with_notified_exec(profile: &Profile) -> Profile {
    let mut p = profile.clone();
    let mut first = Vec::new();
    for name in ["execve", "execveat"] {
        if let Ok(s) = Syscall::named(name) {
            first.push(crate::seccomp::Rule::new_unchecked(
                s,
                Vec::new(),
                Action::Notify,
            ));
        }
    }
    first.append(&mut p.rules);
    p.rules = first;
    p
}

/// The profile that notifies every call (learning).
pub(crate) fn learning_profile() -> Profile {
    Profile::allow_all().default_action(Action::Notify)
}

/// A minimal allow-list profile from what a learning run saw: every syscall it made is
/// allowed (with the argument values that matter pinned), everything else fails with `EPERM`.
pub(crate) fn learned_profile(seen: &BTreeMap<u32, BTreeSet<u64>>, arch: Arch) -> Profile {
    let mut p = Profile::deny_all();
    for (nr, values) in seen {
        let Some(sys) = Syscall::from_nr(arch, *nr) else {
            continue;
        };
        match interesting_arg(sys.name()) {
            Some((i, low32)) if !values.is_empty() => {
                for v in values {
                    let cond = if low32 {
                        Cond::arg32(i).eq(*v)
                    } else {
                        Cond::arg(i).eq(*v)
                    };
                    p = p.rule(sys, [cond], Action::Allow);
                }
            }
            _ => p = p.rule(sys, [], Action::Allow),
        }
    }
    p
}

/// Take the listener from the sandboxed process `target` (descriptor `number`), waiting until
/// it has installed its filter.
pub(crate) fn take_listener(target: &OwnedFd, number: i32) -> Result<OwnedFd> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // SAFETY: pidfd_getfd on a pidfd we own; returns a new descriptor we then own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, target.as_raw_fd(), number, 0) };
        if fd >= 0 {
            // SAFETY: a new descriptor, owned by nobody else.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = Errno::last();
        if e != Errno::EBADF || Instant::now() >= deadline {
            return Err(Error::io("take the seccomp listener from the sandbox", e));
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// The pidfd of the process that installs the filter: the first process itself (`depth` 0),
/// or its only child (behind an init or a relay), or grandchild (a relay, then an init).
pub(crate) fn installer(pid: libc::pid_t, pidfd: &OwnedFd, depth: u32) -> Result<OwnedFd> {
    if depth == 0 {
        return pidfd
            .try_clone()
            .map_err(|e| Error::io("duplicate a pidfd", e));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut target = pid;
    for _ in 0..depth {
        let path = format!("/proc/{target}/task/{target}/children");
        target = loop {
            let children = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(c) = children
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<libc::pid_t>().ok())
            {
                break c;
            }
            if Instant::now() >= deadline {
                return Err(Error::Protocol("the sandbox's program did not appear"));
            }
            std::thread::sleep(Duration::from_micros(20));
        };
    }
    // SAFETY: pidfd_open of our own descendant; returns a new descriptor we then own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, target as libc::pid_t, 0) };
    if fd < 0 {
        return Err(Error::io(
            "open a pidfd of the sandbox's program",
            Errno::last(),
        ));
    }
    // SAFETY: a new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
