//! Code that runs in the sandboxed process after `clone`, up to `execve`.
//!
//! # The rule of this module
//!
//! The process running this code is a copy of a possibly multi-threaded parent in which only
//! the cloning thread exists. Any lock another thread held at the time of the clone (malloc's,
//! stdio's, the environment's) is held forever here. So this code must be async-signal-safe:
//! **no allocation, no locks, no formatting, no panics, no glibc wrappers that coordinate
//! threads** (`setuid`/`setgid`/`setgroups` broadcast to all threads in glibc: use the raw
//! syscalls). It only reads the [`Plan`] built by the parent and makes system calls. A failure
//! is written to the error pipe as `(stage, errno)` and the process `_exit(127)`s; a successful
//! `execve` closes the (close-on-exec) error pipe, which the parent sees as EOF.
//!
//! The order of the steps is fixed and follows bubblewrap's and std's: die-with-parent first,
//! then the parent's release, namespaces and host-facing setup while privileges are held,
//! then (in a new pid namespace) the fork of the payload, then stdio, identity, capabilities,
//! `no_new_privs`, closing descriptors, and `execve` last.

mod init;
mod mount;
pub(crate) mod sys;
pub(crate) mod zygote;

pub(crate) use mount::{AT_PIVOT, AT_ROOT};

use std::convert::Infallible;

use nix::errno::Errno;

use crate::caps;
use crate::error::Stage;
use crate::ns::CLONE_NEWTIME;
use crate::spawn::{ERR_MSG_LEN, Plan};

/// A failure: the stage, the errno, and a detail (the filesystem step that failed, or 0).
type Step<T = ()> = Result<T, (Stage, Errno, u32)>;

trait At<T> {
    fn at(self, stage: Stage) -> Step<T>;
}

impl<T> At<T> for Result<T, Errno> {
    #[inline]
    fn at(self, stage: Stage) -> Step<T> {
        self.map_err(|e| (stage, e, 0))
    }
}

#[inline]
fn cvt(rc: libc::c_int) -> Result<libc::c_int, Errno> {
    if rc < 0 { Err(Errno::last()) } else { Ok(rc) }
}

#[inline]
fn cvt_long(rc: libc::c_long) -> Result<libc::c_long, Errno> {
    if rc < 0 { Err(Errno::last()) } else { Ok(rc) }
}

/// Ends the process if anything ever unwinds through the child's code: an unwind must never
/// reach the parent's stack frames in this copy of the process.
struct ExitOnUnwind;

impl Drop for ExitOnUnwind {
    fn drop(&mut self) {
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(127) }
    }
}

/// Entry point of a sandboxed process cloned with `CLONE_VM` onto its own stack (see
/// `spawn::clone_shared`): `plan` is the address of its [`Plan`], kept at the top of that stack's
/// mapping.
pub(crate) extern "C" fn run_shared(plan: usize) -> ! {
    // SAFETY: the parent wrote a Plan at this address and keeps it (and what it borrows) until
    // the program has been executed or this process has ended.
    run(unsafe { &*(plan as *const Plan) })
}

/// Entry point of the sandboxed process. Never returns: it ends in `execve` or `_exit`.
pub(crate) fn run(p: &Plan) -> ! {
    let _guard = ExitOnUnwind;
    let Err((stage, errno, detail)) = setup(p);
    fail(p.err_fd, stage, errno, detail)
}

/// Report `(stage, errno, detail)` on the error pipe and exit with 127.
fn fail(err_fd: libc::c_int, stage: Stage, errno: Errno, detail: u32) -> ! {
    record(err_fd, stage as u32, errno as i32, detail);
    sys::exit(127)
}

/// Write one record `(stage word, errno, detail)` to the error pipe: a failure, or one of the
/// records that are none (`spawn::ARMED_RECORD`, `spawn::LISTENER_RECORD`).
fn record(err_fd: libc::c_int, stage: u32, errno: i32, detail: u32) {
    let s = stage.to_ne_bytes();
    let e = errno.to_ne_bytes();
    let d = detail.to_ne_bytes();
    let msg: [u8; ERR_MSG_LEN] = [
        s[0], s[1], s[2], s[3], e[0], e[1], e[2], e[3], d[0], d[1], d[2], d[3],
    ];
    // 12 bytes are below PIPE_BUF, so the write is atomic. A raw write: it may run while the
    // parent does (a record that is no failure).
    let _ = sys::write(err_fd, &msg);
}

fn setup(p: &Plan) -> Step<Infallible> {
    if p.join_fd >= 0 {
        // A process sent into a running sandbox is a copy of the caller: its memory, its
        // environment, its descriptors, and `/proc/self/exe` the caller's binary on the
        // host's mount. From now until `execve`, nothing of it may be reachable from the
        // sandbox through /proc (`mem`, `environ`, `fd/`, `exe`): not dumpable (only a holder
        // of CAP_SYS_PTRACE over the caller's user namespace may look), and the strings the
        // kernel shows as `cmdline` and `environ` overwritten. The clone is fork-like, so
        // this changes this process's own copy only (with `CLONE_VM` it would be the caller's).
        set_dumpable(false).at(Stage::JoinNs)?;
        scrub_caller_strings(p, c"ringfence-exec");
    }
    // Every signal is blocked (the parent blocked them around the clone): no handler of the
    // parent can run here. First make sure we die with the parent, then that no handler of
    // the parent ever runs.
    //
    // Up to the release the parent runs at the same time (id maps, cgroup): in a process that
    // shares its memory (`p.shared_vm`) these steps make raw system calls only, which touch
    // neither the parent thread's `errno` nor its cancellation state. From the release until
    // the exec the parent only waits on the error pipe (with raw reads, every signal
    // blocked), as a `vfork` parent would.
    if p.die_with_parent {
        die_with_parent().at(Stage::ParentDeathSignal)?;
        // The parent releases us only once it has read this. The death signal is sent by the
        // exit of the thread that cloned us, to the children it has *then*: a thread that
        // read this record and dies later kills us. One that died before our `prctl` has sent
        // nothing, and it never releases us (see `wait_release`). Checking for its death
        // afterwards would not do: its process's descriptors, and the pidfd's readiness, can
        // outlive the thread's reparenting of its children while other threads of the process
        // still exit.
        record(p.err_fd, crate::spawn::ARMED_RECORD, 0, 0);
    }
    reset_signal_handlers().at(Stage::Signals)?;
    // The parent writes our id maps, then releases us. If it dies first, its end of the pipe
    // is closed (and its pidfd readable): then we stop here.
    wait_release(p).at(Stage::Release)?;
    for &fd in p.cgroup_tasks {
        // SAFETY: writes one byte from a static string to a cgroup file the parent opened.
        // "0" is this process (this thread, its only one, for a v1 `tasks` file).
        if unsafe { libc::write(fd, c"0".as_ptr().cast(), 1) } != 1 {
            return Err((Stage::CgroupAttach, Errno::last(), 0));
        }
        // SAFETY: our copy is no longer needed.
        unsafe { libc::close(fd) };
    }

    // In a new user namespace (its id maps written), while this process holds every
    // capability in it and still sees the host's /proc.
    set_user_limits(p).at(Stage::Rlimit)?;
    if p.setsid {
        // SAFETY: setsid has no arguments.
        cvt(unsafe { libc::setsid() }).at(Stage::Setsid)?;
        if p.ctty {
            // The session leader takes the terminal; the program (its child behind an init)
            // is in the same session, so it is the program's controlling terminal too.
            // SAFETY: ioctl on a descriptor the parent prepared; 0 is "do not steal".
            cvt(unsafe { libc::ioctl(p.stdio[0], libc::TIOCSCTTY, 0) }).at(Stage::Setsid)?;
        }
    }
    if p.join_fd >= 0 {
        // Every namespace of the sandbox (or pod) at once: the user namespace first, so that
        // the others are entered with the capabilities it gives.
        // SAFETY: setns on a pidfd the parent opened, with CLONE_NEW* flags.
        cvt(unsafe { libc::setns(p.join_fd, p.join_flags) }).at(Stage::JoinNs)?;
        if !p.join_keep.is_empty() {
            // The caller's descriptors are gone before the sandbox's pid namespace is entered
            // (the program gets its stdio and passed descriptors, nothing else).
            close_all_but(p.join_keep).at(Stage::CloseFds)?;
        }
    }
    if p.unshare_flags != 0 {
        // SAFETY: unshare with CLONE_NEW* flags.
        cvt(unsafe { libc::unshare(p.unshare_flags) }).at(Stage::Unshare)?;
    }
    if p.relay {
        relay_fork(p)?;
    }
    if p.join_net >= 0 {
        // SAFETY: setns on a descriptor the parent checked is a network namespace.
        cvt(unsafe { libc::setns(p.join_net, libc::CLONE_NEWNET) }).at(Stage::JoinNetNs)?;
    }
    if p.mount_private {
        // Mount events of this namespace must never propagate to the host's.
        // SAFETY: static C strings and null data.
        cvt(unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        })
        .at(Stage::MountPropagation)?;
    }
    if p.time_ns {
        // Before the new root: it needs the host's /proc.
        enter_time_ns(p).at(Stage::TimeNs)?;
    }
    if let Some(fs) = p.fs {
        let view = mount::View {
            plan: fs,
            slots: p.fs_slots,
        };
        mount::setup(&view).map_err(|(step, e)| (Stage::Mount, e, step))?;
    }
    if let Some(h) = p.hostname {
        // SAFETY: `h` is a C string of at most 64 bytes.
        cvt(unsafe { libc::sethostname(h.as_ptr(), h.count_bytes()) }).at(Stage::Hostname)?;
    }
    if p.lo_up {
        loopback_up().at(Stage::Loopback)?;
    }
    if !p.net_routes.is_empty() {
        add_routes(p.net_routes).at(Stage::Loopback)?;
    }

    if p.hold {
        init::install_forwarding().at(Stage::InitSignals)?;
        init::hold(p);
    }
    if let Some(z) = p.zygote {
        return zygote::run(p, z);
    }
    if p.init {
        // Before the fork, so that the program never sees the init with them: in a fork-like
        // clone this memory is this process's own copy of the caller's (sharing the caller's
        // memory, it leaves them: see `scrub_caller_strings`).
        scrub_caller_strings(p, c"ringfence-init");
        init::install_forwarding().at(Stage::InitSignals)?;
        if p.shared_vm {
            // Still in the parent's memory: a fork would copy its page tables. The program's
            // process shares it too, on a stack of its own, until its exec, and this process
            // (the init) waits for that exec (`CLONE_VFORK`).
            let pid = fork_shared(p).at(Stage::InitFork)?;
            init::run(p, pid);
        }
        let pid = fork().at(Stage::InitFork)?;
        if pid != 0 {
            init::run(p, pid);
        }
        init::uninstall_forwarding().at(Stage::Signals)?;
    }
    payload(p)
}

/// The program's process behind the init of a process that shares the parent's memory: a
/// `clone(CLONE_VM | CLONE_VFORK)` onto the plan's payload stack. Returns the pid once that
/// process has executed the program (or ended).
fn fork_shared(p: &Plan) -> Result<libc::pid_t, Errno> {
    let (stack, stack_size) = p.payload_stack;
    let args = sys::CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack as u64,
        stack_size: stack_size as u64,
        ..Default::default()
    };
    // SAFETY: the stack is the plan's, unused by anyone else; `payload_shared` never returns
    // and this process is suspended until it has executed the program or ended.
    let rc = unsafe { sys::clone_on_stack(&args, true, payload_shared, p as *const Plan as usize) };
    sys::check(rc).map(|pid| pid as libc::pid_t)
}

/// The program's process of `fork_shared`.
extern "C" fn payload_shared(plan: usize) -> ! {
    // SAFETY: the plan of the suspended init, alive until this process executes or ends.
    let p = unsafe { &*(plan as *const Plan) };
    let _guard = ExitOnUnwind;
    let result = init::uninstall_forwarding()
        .at(Stage::Signals)
        .and_then(|()| payload(p));
    let Err((stage, errno, detail)) = result;
    fail(p.err_fd, stage, errno, detail)
}

/// A fork-like `clone` (the raw system call: glibc's `fork` runs atfork handlers). Returns the
/// child's pid in the parent and 0 in the child, which goes on with async-signal-safe code only.
fn fork() -> Result<libc::pid_t, Errno> {
    // SAFETY: clone with SIGCHLD and no stack: a copy of this process, like fork.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    })
    .map(|pid| pid as libc::pid_t)
}

/// Unblock every signal (the parent blocked them all around the clone): last before exec.
/// A raw call: with a seccomp listener, the parent takes it while this runs.
fn unblock_signals() -> Result<(), Errno> {
    sys::set_sigmask(0)
}

/// `PR_SET_PDEATHSIG(SIGKILL)`: killed when the parent thread ends.
fn die_with_parent() -> Result<(), Errno> {
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as usize, 0).map(drop)
}

/// Enter a joined (or newly unshared) pid namespace, which only applies to children: fork.
/// The parent stays outside as a relay: it forwards signals to the child and reports its
/// status like an init (see `init::run`). The child returns and goes on with the setup.
fn relay_fork(p: &Plan) -> Step {
    let mut alive: [libc::c_int; 2] = [-1, -1];
    // SAFETY: pipe2 fills the array on this stack.
    cvt(unsafe { libc::pipe2(alive.as_mut_ptr(), libc::O_CLOEXEC) }).at(Stage::RelayFork)?;
    init::install_forwarding().at(Stage::InitSignals)?;
    let pid = fork().at(Stage::RelayFork)?;
    if pid != 0 {
        // The write end stays open as long as the relay lives.
        init::relay(p, pid, alive[1]);
    }
    // SAFETY: closes our copy of the write end; then plain prctl with integer arguments.
    unsafe { libc::close(alive[1]) };
    init::uninstall_forwarding().at(Stage::Signals)?;
    if p.die_with_parent {
        die_with_parent().at(Stage::ParentDeathSignal)?;
    }
    // If the relay died before the death signal was set, the pipe is already closed.
    let mut pfd = libc::pollfd {
        fd: alive[0],
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll of one descriptor on this stack, without waiting; then close it.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    // SAFETY: closes the read end.
    unsafe { libc::close(alive[0]) };
    if n != 0 {
        return Err((Stage::ParentDeathSignal, Errno::ESRCH, 0));
    }
    Ok(())
}

/// The program's process: stdio, identity, capabilities, descriptors, exec.
fn payload(p: &Plan) -> Step<Infallible> {
    // Until `execve` this process is a copy of the caller: not dumpable, so that no other
    // process of the same user can open its `mem`, `environ` or descriptors through /proc.
    // (After the release: the parent writes the id maps of a new user namespace into
    // /proc/PID, which needs it dumpable.)
    //
    // Dumpability belongs to the memory map: a process sharing the caller's (`p.shared_vm`)
    // leaves it alone, as it is the caller's own — which every process of the same user can
    // already reach as the caller itself, and which the sandbox's Landlock domain keeps out
    // of reach of other sandboxes.
    if !p.shared_vm {
        set_dumpable(false).at(Stage::Capabilities)?;
    }
    for (target, src) in (0..).zip(p.stdio) {
        if src >= 0 {
            // SAFETY: dup2 of a descriptor the parent prepared. dup2 clears close-on-exec.
            cvt(unsafe { libc::dup2(src, target) }).at(Stage::Stdio)?;
        }
    }
    for &(src, target) in p.pass {
        // SAFETY: every source is above every target, so no source is overwritten.
        cvt(unsafe { libc::dup2(src, target) }).at(Stage::PassFds)?;
    }
    for (resource, lim) in p.rlimits {
        // SAFETY: `lim` is a valid rlimit.
        cvt(unsafe { libc::setrlimit(*resource, lim) }).at(Stage::Rlimit)?;
    }
    if let Some(mask) = p.umask {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(mask) };
    }
    drop_privileges(p)?;
    // A change of ids makes the kernel reset dumpability to fs.suid_dumpable, which may be 1.
    // (A spawn that changes ids never shares the caller's memory: see `spawn::spawn_as`.)
    if !p.shared_vm {
        set_dumpable(false).at(Stage::Capabilities)?;
    }
    if let Some(cwd) = p.cwd {
        // After dropping privileges, so the directory is checked as the program's user.
        // SAFETY: `cwd` is a C string.
        cvt(unsafe { libc::chdir(cwd.as_ptr()) }).at(Stage::Chdir)?;
    }
    // SAFETY: plain prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).at(Stage::NoNewPrivs)?;
    // After every mount (a restricted process may not mount) and after no_new_privs: the
    // domain every sandbox has (no access to processes outside it), then the caller's rules.
    if p.landlock_base_fd >= 0 {
        crate::landlock::restrict(p.landlock_base_fd).at(Stage::Landlock)?;
    }
    if p.landlock_fd >= 0 {
        crate::landlock::restrict(p.landlock_fd).at(Stage::Landlock)?;
    }
    if p.view_fd >= 0 {
        // The filesystem view without a mount namespace: a second domain, stacked.
        crate::landlock::restrict(p.view_fd).at(Stage::Landlock)?;
    }
    close_fds(p.keep).at(Stage::CloseFds)?;
    if let Some(filters) = p.seccomp {
        if p.seccomp_notify {
            // The parent takes the listener with pidfd_getfd, a ptrace access: a caller
            // without CAP_SYS_PTRACE needs this process dumpable again. Its privileges are
            // dropped, its Landlock domain entered (no process of the sandbox can reach it
            // unless the kernel has no Landlock) and the descriptors marked close-on-exec.
            if !p.shared_vm {
                set_dumpable(true).at(Stage::Seccomp)?;
            }
            // The kernel gives the listener the lowest free descriptor: tell the parent which
            // one, before the filter is installed (afterwards every call may be notified).
            // SAFETY: F_DUPFD of an open descriptor, closed again at once.
            let n = cvt(unsafe { libc::fcntl(p.err_fd, libc::F_DUPFD, 0) }).at(Stage::Seccomp)?;
            // SAFETY: closes the copy made above.
            unsafe { libc::close(n) };
            record(p.err_fd, crate::spawn::LISTENER_RECORD, 0, n as u32);
        }
        // Last before execve, so that the filters need to allow nothing of the setup
        // (bubblewrap: "should be the last thing before execve").
        filters.install_all().at(Stage::Seccomp)?;
    }

    unblock_signals().at(Stage::Signals)?;
    // Raw execs: with a seccomp listener, the parent takes it while this runs.
    if p.candidates.is_empty() {
        let e = sys::execve(p.program.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
        return Err((Stage::Exec, e, 0));
    }
    // A bare name looked up in the new root, as execvp does: the first candidate that can be
    // executed wins; if none, EACCES if one existed but was not executable, else ENOENT.
    let mut errno = Errno::ENOENT;
    for candidate in p.candidates {
        match sys::execve(candidate.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr()) {
            Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT => {}
            Errno::EACCES => errno = Errno::EACCES,
            other => return Err((Stage::Exec, other, 0)),
        }
    }
    Err((Stage::Exec, errno, 0))
}

/// `PR_SET_DUMPABLE`: whether processes of the same user may ptrace this one or open its
/// `/proc/PID/mem`, `environ`, `fd/` and `exe` (per memory map: this process's own copy).
fn set_dumpable(on: bool) -> Result<(), Errno> {
    // SAFETY: plain prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) }).map(drop)
}

/// Overwrite the caller's command line and environment strings in this process's memory (a
/// copy of the caller's): `/proc/PID/cmdline` then shows `name`, `/proc/PID/environ` nothing.
/// Only for a process with a memory map of its own (a fork-like clone or a fork).
pub(super) fn scrub_caller_strings(p: &Plan, name: &std::ffi::CStr) {
    let Some(s) = p.caller_strings.filter(|_| !p.shared_vm) else {
        // In the caller's own memory these are the caller's strings: a sandbox with its own
        // /proc shows `ringfence-init` as pid 1's command line by a read-only file bound
        // over it instead (`fs::FsView::prepare`).
        return;
    };
    for (start, end) in [s.arg, s.env] {
        // SAFETY: the parent checked that the range lies in the stack mapping of its main
        // thread, which this process has a copy of; nothing here reads those strings.
        unsafe { std::ptr::write_bytes(start as *mut u8, 0, end - start) };
    }
    let name = name.to_bytes_with_nul();
    if name.len() <= s.arg.1 - s.arg.0 {
        // SAFETY: as above; `name` fits in the range.
        unsafe { std::ptr::copy_nonoverlapping(name.as_ptr(), s.arg.0 as *mut u8, name.len()) };
    }
}

/// Write the per-user limits of the sandbox's new user namespace (`/proc/sys/user/max_*`
/// answer for the user namespace of the process that opens them). A file this kernel does not
/// have is left out.
fn set_user_limits(p: &Plan) -> Result<(), Errno> {
    for (path, value) in p.user_limits {
        // SAFETY: open of a C string; the descriptor is closed below.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            match Errno::last() {
                Errno::ENOENT => continue,
                e => return Err(e),
            }
        }
        // SAFETY: writes the bytes of a C string; then closes the descriptor opened above.
        let n = unsafe { libc::write(fd, value.as_ptr().cast(), value.count_bytes()) };
        let err = Errno::last();
        // SAFETY: as above.
        unsafe { libc::close(fd) };
        if n < 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// Close every descriptor but the non-negative ones of `keep` (sorted).
pub(super) fn close_all_but(keep: &[libc::c_int]) -> Result<(), Errno> {
    let close = |first: libc::c_uint, last: libc::c_uint| -> Result<(), Errno> {
        if first > last {
            return Ok(());
        }
        // SAFETY: close_range with integer arguments.
        let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        if rc == 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::ENOSYS => {
                for fd in first..last.min(1 << 16) {
                    // SAFETY: closing descriptor numbers; EBADF is fine.
                    unsafe { libc::close(fd as libc::c_int) };
                }
                Ok(())
            }
            e => Err(e),
        }
    };
    let mut next: libc::c_uint = 0;
    for &k in keep {
        if k < 0 {
            continue;
        }
        let k = k as libc::c_uint;
        if k > next {
            close(next, k - 1)?;
        }
        next = next.max(k.saturating_add(1));
    }
    close(next, libc::c_uint::MAX)
}

/// `struct sigaction` as the kernel's `rt_sigaction` takes it (x86_64 and aarch64 layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Set every signal back to `SIG_DFL`: the parent's handlers must never run here, and the
/// program starts from a known state whatever the parent ignored (Rust programs ignore
/// `SIGPIPE`, `nohup` ignores `SIGHUP`, some runtimes ignore real-time signals).
fn reset_signal_handlers() -> Result<(), Errno> {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut old = KernelSigaction {
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        if rt_sigaction(sig, None, Some(&mut old)).is_err() {
            continue;
        }
        if old.handler != libc::SIG_DFL {
            set_default(sig)?;
        }
    }
    Ok(())
}

fn set_default(sig: libc::c_int) -> Result<(), Errno> {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    rt_sigaction(sig, Some(&dfl), None)
}

/// The raw `rt_sigaction` system call (glibc's wrapper refuses its own internal signals).
fn rt_sigaction(
    sig: libc::c_int,
    new: Option<&KernelSigaction>,
    old: Option<&mut KernelSigaction>,
) -> Result<(), Errno> {
    let new = new.map_or(std::ptr::null(), |n| n as *const KernelSigaction);
    let old = old.map_or(std::ptr::null_mut(), |o| o as *mut KernelSigaction);
    // SAFETY: both pointers are null or point to live structs of the kernel's layout; 8 is the
    // size of the kernel's signal set.
    unsafe {
        sys::call(
            libc::SYS_rt_sigaction,
            &[sig as usize, new as usize, old as usize, 8],
        )
    }
    .map(drop)
}

fn wait_release(p: &Plan) -> Result<(), Errno> {
    let fd = p.sync_fd;
    // Our copy of the parent's end: while we hold it, the pipe never hangs up.
    sys::close(p.sync_w_fd);
    if p.parent_fd >= 0 {
        // Another spawn's child may hold a copy of the parent's end too (it was cloned while
        // our pipe was open): the parent's pidfd tells its death whatever others hold.
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: p.parent_fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            match sys::poll_forever(&mut fds) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            if fds[1].revents != 0 && fds[0].revents & libc::POLLIN == 0 {
                return Err(Errno::EPIPE);
            }
            if fds[0].revents != 0 {
                break;
            }
        }
    }
    let mut b = [0u8; 1];
    loop {
        match sys::read(fd, &mut b) {
            Ok(1) => break,
            Ok(_) => return Err(Errno::EPIPE),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    // Released: with a death signal, the parent read it was armed before releasing us, so
    // its death from then on kills us even if it died just now.
    sys::close(fd);
    Ok(())
}

/// Create a time namespace, write its offsets while no process is in it yet, then enter it
/// (the program, and in a pid namespace also the init, run in it).
fn enter_time_ns(p: &Plan) -> Result<(), Errno> {
    // SAFETY: unshare with a flag.
    cvt(unsafe { libc::unshare(CLONE_NEWTIME) })?;
    if let Some(offsets) = p.time_offsets {
        // SAFETY: static path; the descriptor is closed below.
        let fd = cvt(unsafe {
            libc::open(
                c"/proc/self/timens_offsets".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: writes the bytes of a C string.
        let n = unsafe { libc::write(fd, offsets.as_ptr().cast(), offsets.count_bytes()) };
        let err = Errno::last();
        // SAFETY: closes the descriptor opened above.
        unsafe { libc::close(fd) };
        if n < 0 {
            return Err(err);
        }
    }
    // SAFETY: static path; the descriptor is closed below.
    let fd = cvt(unsafe {
        libc::open(
            c"/proc/self/ns/time_for_children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: setns on the descriptor just opened.
    let rc = unsafe { libc::setns(fd, CLONE_NEWTIME) };
    let err = Errno::last();
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
    if rc < 0 { Err(err) } else { Ok(()) }
}

/// `ip link set lo up` with two ioctls.
fn loopback_up() -> Result<(), Errno> {
    // SAFETY: socket with constant arguments.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: ifreq is plain data; the name "lo" fits; the ioctls read/write this struct.
    let rc = unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
        if rc == 0 {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        rc
    };
    let err = Errno::last();
    // SAFETY: closes the socket opened above.
    unsafe { libc::close(fd) };
    if rc < 0 { Err(err) } else { Ok(()) }
}

/// Send the pre-built netlink route requests in `msgs` (each asks for an acknowledgement) and
/// wait for every acknowledgement; the first refusal is the error.
fn add_routes(msgs: &[u8]) -> Result<(), Errno> {
    const NLMSG_ERROR: u16 = 2;
    // How many requests: walk their headers (lengths written by the parent).
    let mut expected = 0usize;
    let mut off = 0usize;
    while off + 4 <= msgs.len() {
        let len = u32::from_ne_bytes([msgs[off], msgs[off + 1], msgs[off + 2], msgs[off + 3]]);
        if len < 16 {
            return Err(Errno::EINVAL);
        }
        off += (len as usize + 3) & !3;
        expected += 1;
    }
    // SAFETY: socket with constant arguments.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    })?;
    let result = (|| {
        // SAFETY: sends the parent's buffer to the kernel (a zeroed sockaddr_nl: pid 0).
        let sent = unsafe {
            let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
            kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            libc::sendto(
                fd,
                msgs.as_ptr().cast(),
                msgs.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(Errno::last());
        }
        let mut acked = 0usize;
        let mut buf = [0u8; 4096];
        while acked < expected {
            // SAFETY: receives into the buffer on this stack.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = Errno::last();
                if e == Errno::EINTR {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            let mut off = 0usize;
            while off + 20 <= n {
                let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]);
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if kind == NLMSG_ERROR {
                    let err = i32::from_ne_bytes([
                        buf[off + 16],
                        buf[off + 17],
                        buf[off + 18],
                        buf[off + 19],
                    ]);
                    if err != 0 {
                        return Err(Errno::from_raw(-err));
                    }
                    acked += 1;
                }
                if len < 16 {
                    break;
                }
                off += (len as usize + 3) & !3;
            }
        }
        Ok(())
    })();
    // SAFETY: closes the socket opened above.
    unsafe { libc::close(fd) };
    result
}

/// Set uid/gid/groups and drop every capability not kept, from every set.
///
/// Order: the bounding set first (needs `CAP_SETPCAP`), then the ids (with `PR_SET_KEEPCAPS`
/// when capabilities are kept, since changing to a non-zero uid clears them), then
/// effective/permitted/inheritable, then ambient (which keeps kept capabilities across exec for
/// a non-root program).
fn drop_privileges(p: &Plan) -> Step {
    let keep = p.keep_caps;
    // Without CAP_SETPCAP (a caller without privileges and without a user namespace) the
    // bounding set cannot be changed; no_new_privs makes it irrelevant then.
    if caps::effective_has(caps::CAP_SETPCAP).at(Stage::Capabilities)? {
        caps::drop_bounding(keep, p.cap_last_cap).at(Stage::Capabilities)?;
    }
    if p.uid.is_some() || p.gid.is_some() {
        if keep != 0 {
            // SAFETY: plain prctl with integer arguments.
            cvt(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) })
                .at(Stage::Capabilities)?;
        }
        if p.setgroups_allowed {
            // SAFETY: raw setgroups with an empty list (per-thread; this process has one).
            cvt_long(unsafe {
                libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>())
            })
            .at(Stage::Setgroups)?;
        }
        if let Some(gid) = p.gid {
            // SAFETY: raw setresgid with integer arguments.
            cvt_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })
                .at(Stage::Setgid)?;
        }
        if let Some(uid) = p.uid {
            // SAFETY: raw setresuid with integer arguments.
            cvt_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })
                .at(Stage::Setuid)?;
        }
    }
    caps::capset_all(keep).at(Stage::Capabilities)?;
    caps::set_ambient(keep, p.cap_last_cap).at(Stage::Capabilities)?;
    Ok(())
}

const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Mark every descriptor from `first` to `last` close-on-exec (the error pipe must stay open
/// until exec, so nothing is closed outright).
fn cloexec_range(first: libc::c_uint, last: libc::c_uint) -> Result<(), Errno> {
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range with integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    match Errno::last() {
        // Kernels before 5.11: no CLOSE_RANGE_CLOEXEC (EINVAL) or no close_range (ENOSYS).
        Errno::EINVAL | Errno::ENOSYS => {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit into a struct on this stack.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
            let top = (lim.rlim_cur.min(1 << 20) as libc::c_uint).min(last.saturating_add(1));
            for fd in first..top {
                // SAFETY: fcntl on a descriptor number; EBADF for closed ones is fine.
                unsafe { libc::fcntl(fd as libc::c_int, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
            Ok(())
        }
        e => Err(e),
    }
}

/// Every descriptor but 0-2 and `keep` (sorted) is marked close-on-exec.
fn close_fds(keep: &[libc::c_int]) -> Result<(), Errno> {
    let mut next: libc::c_uint = 3;
    for &k in keep {
        let k = k as libc::c_uint;
        if k > next {
            cloexec_range(next, k - 1)?;
        }
        next = k.saturating_add(1);
    }
    cloexec_range(next, libc::c_uint::MAX)
}
