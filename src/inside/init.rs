//! The init process of a new pid namespace (pid 1): it forwards signals to the program, reaps
//! every orphan, and exits with the program's status — which it also reports on the status
//! pipe, so the parent sees the program's real status (a signal, say) rather than the init's
//! `128 + signal` exit code. When it exits, the kernel kills whatever is left in the namespace.
//!
//! Same rule as the rest of `inside`: async-signal-safe code only. More: an init may share the
//! caller's memory for its whole life (`Plan::shared_vm`), running beside the caller's
//! threads with the caller's thread pointer. From the moment it closes the error pipe (which
//! lets the parent go on) it only makes raw system calls (`super::sys`, never `errno` or
//! glibc's cancellation state), reads nothing of the parent's memory but constants, and
//! writes nothing outside its own stack (so it never rewrites its command line either: that
//! memory is the caller's).

use std::ffi::CStr;

use nix::errno::Errno;

use super::sys;
use crate::spawn::Plan;

/// Signals the init forwards to the program.
pub(crate) const FORWARDED: [libc::c_int; 7] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGWINCH,
];

extern "C" fn ignore(_: libc::c_int) {}

/// Install a (never running) handler for each forwarded signal. pid 1 of a namespace only
/// receives signals it has a handler for; the signals stay blocked and are taken with
/// `sigwaitinfo`.
pub(super) fn install_forwarding() -> Result<(), Errno> {
    for sig in FORWARDED {
        // SAFETY: sigaction with a handler that does nothing; the struct lives on this stack.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
            libc::sigfillset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(Errno::last());
            }
        }
    }
    Ok(())
}

/// In the program's process: back to the default dispositions.
pub(super) fn uninstall_forwarding() -> Result<(), Errno> {
    for sig in FORWARDED {
        super::set_default(sig)?;
    }
    Ok(())
}

/// Close every descriptor but the (at most two, -1 for none) in `keep`.
fn close_all_but(keep: [libc::c_int; 2]) {
    let close_range = |first: libc::c_uint, last: libc::c_uint| {
        if first > last {
            return;
        }
        // SAFETY: close_range with integer arguments.
        let rc = unsafe { sys::call(libc::SYS_close_range, &[first as usize, last as usize, 0]) };
        if rc.is_err() {
            for fd in first..last.min(1 << 16) {
                sys::close(fd as libc::c_int);
            }
        }
    };
    let (a, b) = if keep[0] <= keep[1] {
        (keep[0], keep[1])
    } else {
        (keep[1], keep[0])
    };
    let mut next: libc::c_uint = 0;
    for k in [a, b] {
        if k >= 0 && k as libc::c_uint >= next {
            if k > 0 {
                close_range(next, k as libc::c_uint - 1);
            }
            next = k as libc::c_uint + 1;
        }
    }
    close_range(next, libc::c_uint::MAX);
}

/// The init's loop. Never returns.
pub(super) fn run(p: &Plan, payload: libc::pid_t) -> ! {
    // The init keeps its capabilities, which is what protects it from the program: ptrace
    // needs the tracer's permitted set to cover the tracee's, and the program has none. (Making
    // it non-dumpable would also hide /proc/PID/ns from the sandbox's unprivileged owner.)
    // The program can read its `cmdline` though (and would read its `environ` without that):
    // no string of the caller is left in them (overwritten before the fork, `inside::setup`).
    serve(p.status_fd, payload, -1, c"ringfence-init")
}

/// The relay's loop (see `relay_fork`): like the init's, outside the joined pid namespace,
/// holding `alive` open so that its child can tell whether it is still there. Never returns.
pub(super) fn relay(p: &Plan, payload: libc::pid_t, alive: libc::c_int) -> ! {
    super::scrub_caller_strings(p, c"ringfence-relay");
    serve(p.status_fd, payload, alive, c"ringfence-relay")
}

/// Forward signals to `payload`, reap every child, exit with the payload's status.
fn serve(status_fd: libc::c_int, payload: libc::pid_t, alive: libc::c_int, name: &CStr) -> ! {
    // It holds nothing the program could use: no stdio, no pipes but the status pipe.
    // (Closing the error pipe lets the parent go on: raw calls only from here.)
    close_all_but([status_fd, alive]);
    let _ = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0);
    let _ = sys::prctl(libc::PR_SET_NAME, name.as_ptr() as usize, 0);
    let set = wait_set(&FORWARDED);
    loop {
        let sig = wait_signal(set);
        if sig == libc::SIGCHLD {
            loop {
                let (pid, status) = reap_any();
                if pid <= 0 {
                    break;
                }
                if pid == payload {
                    exit_with(status_fd, status);
                }
            }
        } else if sig > 0 {
            // SAFETY: forwards the signal to our own child.
            let _ = unsafe { sys::call(libc::SYS_kill, &[payload as usize, sig as usize]) };
        }
    }
}

/// `sigwaitinfo(set)`: the signal taken, or -1.
fn wait_signal(set: u64) -> libc::c_int {
    // SAFETY: an 8-byte kernel signal set on this stack; no siginfo, no timeout.
    let rc = unsafe {
        sys::call(
            libc::SYS_rt_sigtimedwait,
            &[&set as *const u64 as usize, 0, 0, 8],
        )
    };
    rc.map_or(-1, |sig| sig as libc::c_int)
}

/// `waitpid(-1, WNOHANG)`: (pid or 0 or -1, status).
fn reap_any() -> (libc::pid_t, libc::c_int) {
    let mut status: libc::c_int = 0;
    // SAFETY: wait4 writing the status on this stack.
    let rc = unsafe {
        sys::call(
            libc::SYS_wait4,
            &[
                -1isize as usize,
                &mut status as *mut libc::c_int as usize,
                libc::WNOHANG as usize,
                0,
            ],
        )
    };
    (rc.map_or(-1, |pid| pid as libc::pid_t), status)
}

/// SIGCHLD and `signals`, as a kernel signal set for `sigwaitinfo` (all of them are blocked).
fn wait_set(signals: &[libc::c_int]) -> u64 {
    signals
        .iter()
        .fold(sys::sigbit(libc::SIGCHLD), |set, &sig| {
            set | sys::sigbit(sig)
        })
}

/// A pod's holder: it owns the pod's namespaces and does nothing else — it reaps whatever
/// is reparented to it and exits (0) on SIGTERM, SIGINT or SIGHUP. Closing every descriptor
/// also closes the error pipe, which tells the parent the holder is ready.
pub(super) fn hold(p: &Plan) -> ! {
    super::scrub_caller_strings(p, c"ringfence-pod");
    close_all_but([-1, -1]);
    let _ = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0);
    let _ = sys::prctl(libc::PR_SET_NAME, c"ringfence-pod".as_ptr() as usize, 0);
    let set = wait_set(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
    loop {
        let sig = wait_signal(set);
        if sig == libc::SIGCHLD {
            while reap_any().0 > 0 {}
        } else if sig > 0 {
            sys::exit(0)
        }
    }
}

/// Report the program's wait status and exit with the matching code.
fn exit_with(status_fd: libc::c_int, status: libc::c_int) -> ! {
    let _ = sys::write(status_fd, &status.to_ne_bytes());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    sys::exit(code)
}
