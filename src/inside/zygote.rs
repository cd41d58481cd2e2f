//! The zygote of a warm sandbox: a resident process inside the sandbox's namespaces, mounts and
//! cgroup that starts one run of a program per request.
//!
//! Same rule as the rest of `inside`: the zygote is a copy of the caller's memory made by the
//! sandbox's `clone`, so it allocates nothing, takes no lock and formats nothing. Every buffer
//! it uses was allocated by the parent before the clone ([`ZygotePlan`]); requests have a
//! fixed-size header; everything is done with system calls.
//!
//! ```text
//!  owner (src/warm.rs)                 zygote (pid 1 of the sandbox's pid namespace)
//!  ───────────────────                 ──────────────────────────────────────────────
//!  Request + strings, stdio fds ─────► recvmsg into the frame, argv/envp pointers filled in
//!   (one SOCK_SEQPACKET message,       clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) on its own
//!    SCM_RIGHTS)                         stack: the run's process sets itself up and execs
//!                                      poll(pidfd, socket, timeout); kill at the deadline
//!                                      wait4: status, rusage; kill every leftover process
//!                                      (kill(-1) as pid 1, else the run's process group)
//!                                      [reset the writable tmpfs mounts]
//!  Reply ◄──────────────────────────── send the reply; wait for the next request
//! ```
//!
//! The run's process shares the zygote's memory until it executes the program (vfork-style,
//! as `posix_spawn` does), so no page table is copied per run, and the zygote is suspended
//! meanwhile: the child only writes to its own stack and to the failure slot of [`RunCtx`].
//!
//! The zygote dies with its owner: the death signal of every sandboxed process (armed before
//! the release), and an end-of-file on the socket (also while a run is going on).

use std::convert::Infallible;
use std::ffi::c_void;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;

use super::{At, Step, cvt, cvt_long};
use crate::error::Stage;
use crate::seccomp::CompiledProfile;
use crate::spawn::Plan;

/// First word of a request.
pub(crate) const REQUEST_MAGIC: u32 = 0x7266_7a71;
/// First word of a reply.
pub(crate) const REPLY_MAGIC: u32 = 0x7266_7a72;
/// The largest request: header and strings (program candidates, argv, environment, working
/// directory, each NUL-terminated) in one message.
pub(crate) const FRAME_MAX: usize = 64 * 1024;
/// Slots of the pointer array: candidates, then argv and envp, each with its NULL.
pub(crate) const MAX_PTRS: usize = 4096;
/// Resource limits one request can set.
pub(crate) const MAX_RLIMITS: usize = 16;
/// The stack of a run's process until it executes the program.
pub(crate) const STACK_SIZE: usize = 256 * 1024;
/// `Request::profile` when the run adds no profile of its own.
pub(crate) const NO_PROFILE: u32 = u32::MAX;

/// `Reply::kind`: the program ran; `status` and the usage are valid.
pub(crate) const REPLY_RAN: u32 = 0;
/// The run's setup failed at `stage` with `errno` (the program was not executed).
pub(crate) const REPLY_SETUP: u32 = 1;
/// The request was malformed (`errno` says how); nothing ran.
pub(crate) const REPLY_BAD_REQUEST: u32 = 2;
/// The program ran, but resetting the tmpfs mounts afterwards failed at fs step `detail` with
/// `errno`; the zygote exits after this reply.
pub(crate) const REPLY_RESET_FAILED: u32 = 3;

/// One resource limit of a request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WireRlimit {
    pub resource: u32,
    pub _pad: u32,
    pub cur: u64,
    pub max: u64,
}

/// The fixed-size head of a request; the strings follow it in the same message.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Request {
    pub magic: u32,
    /// Paths to try, in order, to execute the program (one, or the `PATH` candidates of a bare
    /// name inside a new root).
    pub ncand: u32,
    pub argc: u32,
    pub envc: u32,
    /// 1 if a working directory follows the environment.
    pub has_cwd: u32,
    /// Index of a profile of [`ZygotePlan::profiles`], or [`NO_PROFILE`].
    pub profile: u32,
    pub nrlimits: u32,
    /// Bytes of strings after the header.
    pub strings_len: u32,
    /// Nanoseconds; 0 for none.
    pub timeout_ns: u64,
    pub rlimits: [WireRlimit; MAX_RLIMITS],
}

/// Size of the request header.
pub(crate) const HEADER: usize = std::mem::size_of::<Request>();

/// The answer to a request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reply {
    pub magic: u32,
    pub kind: u32,
    pub stage: u32,
    pub errno: i32,
    pub detail: u32,
    /// The raw wait status of the program.
    pub status: i32,
    pub timed_out: u32,
    pub _pad: u32,
    pub wall_ns: u64,
    pub user_us: u64,
    pub sys_us: u64,
    pub maxrss_kib: u64,
}

/// What the zygote needs besides the [`Plan`]: the socket and buffers allocated by the parent
/// before the clone (the zygote writes into its own copy of them).
pub(crate) struct ZygotePlan<'a> {
    /// The zygote's end of the socket pair.
    pub sock: RawFd,
    /// [`FRAME_MAX`] bytes, 8-byte aligned.
    pub frame: *mut u8,
    /// [`MAX_PTRS`] pointers.
    pub ptrs: *mut *const libc::c_char,
    /// [`STACK_SIZE`] bytes, 16-byte aligned.
    pub stack: *mut u8,
    /// Profiles a run can add on top of the sandbox's, by index.
    pub profiles: &'a [&'a CompiledProfile],
    /// Filesystem steps to apply again after every run (see `mount::reset`); empty for none.
    pub reset: &'a [u32],
    /// Install the sandbox's seccomp filters once, in the zygote (every run inherits them),
    /// rather than in every run's process. The parent checked that they allow what the zygote
    /// and a run's setup do.
    pub filter_once: bool,
}

/// The zygote's life: finish its own setup, tell the parent it is ready, serve requests.
/// Returns only with a setup failure (reported by the caller on the error pipe).
pub(super) fn run(p: &Plan, z: &ZygotePlan) -> Step<Infallible> {
    // SAFETY: getpid has no arguments (glibc caches nothing).
    let pid1 = unsafe { libc::getpid() } == 1;
    // SAFETY: plain prctls with integer arguments and a static C string.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"ringfence-zygote".as_ptr(), 0, 0, 0);
        if !pid1 {
            // Without a pid namespace of its own, orphans of a run come back to the zygote,
            // which reaps them.
            cvt(libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)).at(Stage::InitFork)?;
        }
    }
    // Only stdio (what runs inherit by default), the socket, the Landlock ruleset and the
    // error pipe stay open: the zygote must not keep any other descriptor of its parent
    // alive (a pipe would never see its end-of-file).
    let mut keep = [0, 1, 2, z.sock, p.landlock_fd, p.landlock_base_fd, p.err_fd];
    keep.sort_unstable();
    super::close_all_but(&keep).at(Stage::CloseFds)?;
    super::scrub_caller_strings(p, c"ringfence-zygote");
    // SAFETY: plain prctl. Not dumpable: a run (same uid) cannot ptrace the zygote or open
    // its descriptors through /proc.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).at(Stage::Capabilities)?;
    if let (true, Some(filters)) = (z.filter_once, p.seccomp) {
        // SAFETY: plain prctl.
        cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).at(Stage::NoNewPrivs)?;
        filters.install_all().at(Stage::Seccomp)?;
    }
    // Ready: the parent sees the end of the error pipe (as it would at an exec).
    // SAFETY: closes our end of the error pipe.
    unsafe { libc::close(p.err_fd) };
    serve(p, z, pid1)
}

fn serve(p: &Plan, z: &ZygotePlan, pid1: bool) -> ! {
    loop {
        let mut fds = [-1; 3];
        let n = match receive(z, &mut fds) {
            Ok(0) => exit(0),
            Ok(n) => n,
            Err(Errno::EMSGSIZE | Errno::EBADMSG) => {
                close_fds(&fds);
                let reply = Reply {
                    magic: REPLY_MAGIC,
                    kind: REPLY_BAD_REQUEST,
                    errno: Errno::EMSGSIZE as i32,
                    ..Reply::default()
                };
                send_reply(z.sock, &reply);
                continue;
            }
            Err(_) => exit(1),
        };
        let (reply, owner_gone) = handle(p, z, n, fds, pid1);
        close_fds(&fds);
        if owner_gone {
            exit(0);
        }
        send_reply(z.sock, &reply);
        if reply.kind == REPLY_RESET_FAILED {
            // Its mounts are in an unknown state: no run may see them.
            exit(1);
        }
    }
}

fn exit(code: libc::c_int) -> ! {
    // SAFETY: _exit never returns. As pid 1, the kernel kills what is left in the namespace.
    unsafe { libc::_exit(code) }
}

fn close_fds(fds: &[libc::c_int]) {
    for &fd in fds {
        if fd >= 0 {
            // SAFETY: a descriptor received with the request, owned here.
            unsafe { libc::close(fd) };
        }
    }
}

/// Receive one request into the frame and its three stdio descriptors (close-on-exec).
/// `Ok(0)` is the end of the socket: the owner is gone.
fn receive(z: &ZygotePlan, fds: &mut [libc::c_int; 3]) -> Result<usize, Errno> {
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: z.frame.cast(),
        iov_len: FRAME_MAX,
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: recvmsg into the frame (FRAME_MAX bytes) and `control`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_recvmsg,
                z.sock,
                &mut msg as *mut libc::msghdr,
                libc::MSG_CMSG_CLOEXEC,
            )
        };
        match cvt_long(rc) {
            Ok(n) => break n as usize,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    };
    let mut got = 0;
    // SAFETY: walking the control messages the kernel wrote into `control`, with the
    // kernel's own macros; the descriptors they carry are ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const libc::c_int;
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<libc::c_int>();
                for k in 0..count {
                    let fd = std::ptr::read_unaligned(data.add(k));
                    match fds.get_mut(got) {
                        Some(slot) => *slot = fd,
                        None => {
                            libc::close(fd);
                        }
                    }
                    got += 1;
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if n == 0 && got == 0 {
        return Ok(0);
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(Errno::EMSGSIZE);
    }
    if got != 3 || n < HEADER {
        return Err(Errno::EBADMSG);
    }
    Ok(n)
}

fn send_reply(sock: RawFd, reply: &Reply) {
    loop {
        // SAFETY: sends the reply from this stack; MSG_NOSIGNAL: no SIGPIPE if the owner left.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sendto,
                sock,
                (reply as *const Reply).cast::<c_void>(),
                std::mem::size_of::<Reply>(),
                libc::MSG_NOSIGNAL,
                std::ptr::null::<libc::sockaddr>(),
                0,
            )
        };
        if rc >= 0 || Errno::last() != Errno::EINTR {
            return;
        }
    }
}

/// What a run's process needs, on the zygote's stack (shared with it until it executes).
struct RunCtx<'a> {
    p: &'a Plan<'a>,
    z: &'a ZygotePlan<'a>,
    fds: [libc::c_int; 3],
    cands: *const *const libc::c_char,
    ncand: usize,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// Null for the sandbox's working directory.
    cwd: *const libc::c_char,
    rlimits: &'a [WireRlimit],
    profile: Option<&'a CompiledProfile>,
    /// `(stage << 32) | errno` when the setup failed; 0 otherwise.
    failure: AtomicU64,
}

fn bad(errno: Errno) -> Reply {
    Reply {
        magic: REPLY_MAGIC,
        kind: REPLY_BAD_REQUEST,
        errno: errno as i32,
        ..Reply::default()
    }
}

/// Check a request of `n` bytes and lay out its strings as pointer arrays.
fn parse(z: &ZygotePlan, n: usize) -> Result<(Request, *const libc::c_char), Errno> {
    // SAFETY: the frame holds at least HEADER bytes (checked by `receive`); Request is plain
    // integers, valid for any bytes.
    let req = unsafe { std::ptr::read_unaligned(z.frame as *const Request) };
    let (ncand, argc, envc) = (req.ncand as usize, req.argc as usize, req.envc as usize);
    let strings = req.strings_len as usize;
    if req.magic != REQUEST_MAGIC
        || ncand == 0
        || argc == 0
        || req.has_cwd > 1
        || req.nrlimits as usize > MAX_RLIMITS
        || (req.profile != NO_PROFILE && req.profile as usize >= z.profiles.len())
        || strings != n - HEADER
        || ncand
            .saturating_add(argc)
            .saturating_add(envc)
            .saturating_add(2)
            > MAX_PTRS
    {
        return Err(Errno::EINVAL);
    }
    let total = ncand + argc + envc + req.has_cwd as usize;
    // Slots: candidates, argv, NULL, envp, NULL.
    let mut at = HEADER;
    let mut cwd = std::ptr::null();
    for k in 0..total {
        // SAFETY: `at` < n <= FRAME_MAX: inside the frame.
        let start = unsafe { z.frame.add(at) } as *const libc::c_char;
        let mut end = at;
        // SAFETY: reads within the n received bytes.
        while end < n && unsafe { *z.frame.add(end) } != 0 {
            end += 1;
        }
        if end >= n {
            return Err(Errno::EINVAL);
        }
        at = end + 1;
        let slot = if k < ncand + argc {
            k
        } else if k < ncand + argc + envc {
            k + 1
        } else {
            cwd = start;
            continue;
        };
        // SAFETY: slot < ncand + argc + envc + 2 <= MAX_PTRS.
        unsafe { *z.ptrs.add(slot) = start };
    }
    if at != n {
        return Err(Errno::EINVAL);
    }
    // SAFETY: both NULL slots are below MAX_PTRS (checked above).
    unsafe {
        *z.ptrs.add(ncand + argc) = std::ptr::null();
        *z.ptrs.add(ncand + argc + 1 + envc) = std::ptr::null();
    }
    Ok((req, cwd))
}

fn now_ns() -> u64 {
    // SAFETY: clock_gettime into a struct on this stack.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Kill the run: every process of the namespace (the zygote is pid 1, and `kill(-1)` spares
/// it), else the run's process group (whose leader, not yet reaped, pins the id).
fn kill_run(pid: libc::pid_t, pid1: bool) {
    // SAFETY: kill with integer arguments; -1 only as pid 1 of our own pid namespace.
    unsafe {
        if pid1 {
            libc::kill(-1, libc::SIGKILL);
        } else {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Run one request. Returns the reply and whether the owner went away meanwhile.
fn handle(p: &Plan, z: &ZygotePlan, n: usize, fds: [libc::c_int; 3], pid1: bool) -> (Reply, bool) {
    let (req, cwd) = match parse(z, n) {
        Ok(r) => r,
        Err(e) => return (bad(e), false),
    };
    let ncand = req.ncand as usize;
    let ctx = RunCtx {
        p,
        z,
        fds,
        cands: z.ptrs,
        ncand,
        // SAFETY: inside the pointer array (parse checked the counts).
        argv: unsafe { z.ptrs.add(ncand) },
        // SAFETY: likewise.
        envp: unsafe { z.ptrs.add(ncand + req.argc as usize + 1) },
        cwd,
        rlimits: req.rlimits.get(..req.nrlimits as usize).unwrap_or(&[]),
        profile: z.profiles.get(req.profile as usize).copied(),
        failure: AtomicU64::new(0),
    };
    let mut reply = Reply {
        magic: REPLY_MAGIC,
        ..Reply::default()
    };
    let start = now_ns();
    let mut pidfd: libc::c_int = -1;
    let top = (z.stack as usize + STACK_SIZE) & !15;
    // SAFETY: vfork-style clone onto the stack the parent allocated; `ctx` lives on this
    // stack until the child has executed or exited (CLONE_VFORK suspends us until then). The
    // pidfd is stored at the parent_tid argument.
    let pid = unsafe {
        libc::clone(
            run_main,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            &ctx as *const RunCtx as *mut c_void,
            &mut pidfd as *mut libc::c_int,
        )
    };
    if pid < 0 {
        reply.kind = REPLY_SETUP;
        reply.stage = Stage::Clone as u32;
        reply.errno = Errno::last() as i32;
        return (reply, false);
    }
    let failure = ctx.failure.load(Ordering::SeqCst);
    let mut owner_gone = false;
    if failure == 0 {
        let deadline = (req.timeout_ns > 0).then(|| start.saturating_add(req.timeout_ns));
        let mut killed = false;
        loop {
            let mut pfds = [
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if owner_gone { -1 } else { z.sock },
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let left = match deadline {
                Some(d) if !killed => {
                    let left = d.saturating_sub(now_ns());
                    Some(libc::timespec {
                        tv_sec: (left / 1_000_000_000) as libc::time_t,
                        tv_nsec: (left % 1_000_000_000) as libc::c_long,
                    })
                }
                _ => None,
            };
            // SAFETY: ppoll on two pollfds and a timespec on this stack (or none).
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_ppoll,
                    pfds.as_mut_ptr(),
                    2 as libc::nfds_t,
                    left.as_ref()
                        .map_or(std::ptr::null(), |t| t as *const libc::timespec),
                    std::ptr::null::<libc::sigset_t>(),
                    8usize,
                )
            };
            if rc < 0 {
                if Errno::last() == Errno::EINTR {
                    continue;
                }
                // Cannot wait for the deadline: end the run rather than let it go on.
                kill_run(pid, pid1);
                break;
            }
            if pfds[0].revents != 0 {
                break;
            }
            if pfds[1].revents != 0 {
                // A message or the end of the socket while a run goes on: the owner is gone.
                owner_gone = true;
                kill_run(pid, pid1);
                killed = true;
                continue;
            }
            if deadline.is_some_and(|d| now_ns() >= d) && !killed {
                reply.timed_out = 1;
                kill_run(pid, pid1);
                killed = true;
            }
        }
    }
    if !pid1 {
        // The run's process group, while its unreaped leader pins the id.
        // SAFETY: kill of our child's process group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    // SAFETY: rusage is plain data.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: raw wait4 for our child, into this stack.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_wait4,
                pid,
                &mut status as *mut libc::c_int,
                libc::__WALL,
                &mut ru as *mut libc::rusage,
            )
        };
        if rc >= 0 || Errno::last() != Errno::EINTR {
            break;
        }
    }
    reply.wall_ns = now_ns().saturating_sub(start);
    // SAFETY: closes the pidfd the clone gave us.
    unsafe { libc::close(pidfd) };
    reap_leftovers(pid1);
    if failure != 0 {
        reply.kind = REPLY_SETUP;
        reply.stage = (failure >> 32) as u32;
        reply.errno = failure as u32 as i32;
        return (reply, owner_gone);
    }
    reply.kind = REPLY_RAN;
    reply.status = status;
    reply.user_us = ru.ru_utime.tv_sec as u64 * 1_000_000 + ru.ru_utime.tv_usec as u64;
    reply.sys_us = ru.ru_stime.tv_sec as u64 * 1_000_000 + ru.ru_stime.tv_usec as u64;
    reply.maxrss_kib = ru.ru_maxrss as u64;
    if let (false, Some(fs)) = (z.reset.is_empty() || owner_gone, p.fs) {
        if let Err((step, e)) = super::mount::reset(
            &super::mount::View {
                plan: fs,
                slots: &[],
            },
            z.reset,
        ) {
            reply.kind = REPLY_RESET_FAILED;
            reply.detail = step;
            reply.errno = e as i32;
        }
    }
    (reply, owner_gone)
}

/// Kill and reap whatever the run left. As pid 1: everything in the namespace (`kill(-1)`
/// cannot miss a process being forked), waiting until none is left. Otherwise the run's group
/// was killed; reap what is already gone (a process that left the group lives on, as with a
/// sandbox without pid namespace).
fn reap_leftovers(pid1: bool) {
    if pid1 {
        // SAFETY: as pid 1 of our own pid namespace, -1 reaches only its other processes.
        unsafe { libc::kill(-1, libc::SIGKILL) };
    }
    let flags = if pid1 {
        libc::__WALL
    } else {
        libc::__WALL | libc::WNOHANG
    };
    loop {
        // SAFETY: raw wait4 for any child, discarding the status.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_wait4,
                -1,
                std::ptr::null_mut::<libc::c_int>(),
                flags,
                std::ptr::null_mut::<libc::rusage>(),
            )
        };
        if rc > 0 || (rc < 0 && Errno::last() == Errno::EINTR) {
            continue;
        }
        break;
    }
}

/// The run's process, on its own stack in the zygote's memory: set up, then exec.
extern "C" fn run_main(arg: *mut c_void) -> libc::c_int {
    let _guard = super::ExitOnUnwind;
    // SAFETY: `arg` is the RunCtx on the suspended zygote's stack (see `handle`).
    let ctx = unsafe { &*(arg as *const RunCtx) };
    let Err((stage, errno, _)) = setup_run(ctx);
    ctx.failure.store(
        ((stage as u32 as u64) << 32) | (errno as i32 as u32 as u64),
        Ordering::SeqCst,
    );
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(127) }
}

/// A run's setup, in the order of `inside::payload`: session, stdio, rlimits, identity,
/// capabilities, working directory, `no_new_privs`, Landlock, descriptors, seccomp, exec.
fn setup_run(c: &RunCtx) -> Step<Infallible> {
    let p = c.p;
    if p.die_with_parent {
        // Dies with the zygote.
        super::die_with_parent().at(Stage::ParentDeathSignal)?;
    }
    // A process group of its own, which the zygote kills after the run.
    // SAFETY: setsid / setpgid with integer arguments.
    cvt(unsafe {
        if p.setsid {
            libc::setsid()
        } else {
            libc::setpgid(0, 0)
        }
    })
    .at(Stage::Setsid)?;
    let mut fds = c.fds;
    for fd in fds.iter_mut() {
        if (0..3).contains(fd) {
            // Received on 0-2 (the zygote's own were closed): move out of the way first.
            // SAFETY: fcntl on a received descriptor.
            *fd = cvt(unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3) }).at(Stage::Stdio)?;
        }
    }
    for (target, src) in (0..).zip(fds) {
        // SAFETY: dup2 of a received descriptor; clears close-on-exec on the copy.
        cvt(unsafe { libc::dup2(src, target) }).at(Stage::Stdio)?;
    }
    for (resource, lim) in p.rlimits {
        // SAFETY: `lim` is a valid rlimit.
        cvt(unsafe { libc::setrlimit(*resource, lim) }).at(Stage::Rlimit)?;
    }
    for r in c.rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.cur as libc::rlim_t,
            rlim_max: r.max as libc::rlim_t,
        };
        // SAFETY: as above.
        cvt(unsafe { libc::setrlimit(r.resource as libc::__rlimit_resource_t, &lim) })
            .at(Stage::Rlimit)?;
    }
    if let Some(mask) = p.umask {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(mask) };
    }
    super::drop_privileges(p)?;
    let cwd = if c.cwd.is_null() {
        p.cwd.map(|d| d.as_ptr())
    } else {
        Some(c.cwd)
    };
    if let Some(dir) = cwd {
        // SAFETY: a C string of the plan or of the request.
        cvt(unsafe { libc::chdir(dir) }).at(Stage::Chdir)?;
    }
    // SAFETY: plain prctl.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).at(Stage::NoNewPrivs)?;
    if p.landlock_base_fd >= 0 {
        crate::landlock::restrict(p.landlock_base_fd).at(Stage::Landlock)?;
    }
    if p.landlock_fd >= 0 {
        crate::landlock::restrict(p.landlock_fd).at(Stage::Landlock)?;
    }
    super::close_fds(&[]).at(Stage::CloseFds)?;
    if !c.z.filter_once {
        if let Some(filters) = p.seccomp {
            filters.install_all().at(Stage::Seccomp)?;
        }
    }
    if let Some(filters) = c.profile {
        // On top of the sandbox's: the stricter answer wins for every call.
        filters.install_all().at(Stage::Seccomp)?;
    }
    super::unblock_signals().at(Stage::Signals)?;
    // Each candidate in turn, as execvp does (see `inside::payload`).
    let mut errno = Errno::ENOENT;
    for k in 0..c.ncand {
        // SAFETY: NULL-terminated arrays of C strings laid out by `parse`.
        unsafe { libc::execve(*c.cands.add(k), c.argv, c.envp) };
        match Errno::last() {
            e if c.ncand == 1 => return Err((Stage::Exec, e, 0)),
            Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT => {}
            Errno::EACCES => errno = Errno::EACCES,
            other => return Err((Stage::Exec, other, 0)),
        }
    }
    Err((Stage::Exec, errno, 0))
}
