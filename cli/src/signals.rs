//! Forwarding the signals the CLI receives to the sandbox.
//!
//! [`block`] runs first thing in `main`, before any other thread exists: every thread then
//! inherits a mask that blocks the forwarded signals, so none of them kills the CLI and each
//! stays pending until the forwarding thread picks it up with `sigwaitinfo`. Signals that
//! arrive while the sandbox is being set up are forwarded as soon as it runs. The sandboxed
//! process starts with an empty signal mask (ringfence resets it).
//!
//! The thread signals through its own duplicate of the sandbox's pidfd, so a signal can never
//! reach an unrelated process that reused the pid.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// The signals forwarded to the sandbox. A pid namespace's init forwards them to the program.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The forwarded signals as a set.
fn set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        for sig in FORWARDED {
            libc::sigaddset(&mut set, sig);
        }
    }
    set
}

/// Block the forwarded signals in the calling thread (and so in every thread it starts later).
pub fn block() -> io::Result<()> {
    let set = set();
    // SAFETY: `set` is initialised; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Start a thread that forwards every blocked signal to the process behind `pidfd`, for the
/// rest of the CLI's life.
///
/// With `skip_terminal` (the sandbox shares the CLI's session and process group), signals the
/// kernel generated — `^C`, `^\`, a terminal hang-up — are not forwarded: the sandbox's
/// processes received them from the terminal themselves.
pub fn forward(pidfd: OwnedFd, skip_terminal: bool) -> io::Result<()> {
    std::thread::Builder::new()
        .name("signal-forwarder".into())
        .spawn(move || {
            let set = set();
            loop {
                // SAFETY: siginfo_t is plain data, filled by sigwaitinfo.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: `set` is initialised and `info` is writable.
                let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
                if sig < 0 {
                    // EINTR (e.g. after SIGCONT); nothing else can fail with a valid set.
                    continue;
                }
                if skip_terminal && info.si_code == libc::SI_KERNEL {
                    continue;
                }
                // Errors are ignored: ESRCH means the sandbox has already ended.
                // SAFETY: pidfd_send_signal with a pidfd we own, no siginfo and no flags.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd.as_raw_fd(),
                        sig,
                        std::ptr::null::<libc::siginfo_t>(),
                        0u32,
                    );
                }
            }
        })
        .map(drop)
}
