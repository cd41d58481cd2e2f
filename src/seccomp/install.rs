//! Installing a compiled filter. Runs in the sandbox child after clone.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::compile::Insn;

/// Installs one seccomp filter program on the calling thread.
///
/// # Contract
///
/// - Called in the sandbox child after `clone`, possibly in a copy of a multi-threaded
///   parent: this function does not allocate, lock, format or panic on any path. It only
///   builds a `sock_fprog` on the stack and makes the `seccomp` syscall.
/// - The caller has already set `PR_SET_NO_NEW_PRIVS` (or holds `CAP_SYS_ADMIN` in its user
///   namespace); otherwise the kernel answers `EACCES`.
/// - `prog` is a program from [`super::CompiledProfile`]: not empty and at most
///   [`super::compile::BPF_MAXINSNS`] instructions (`EINVAL` otherwise, checked here before
///   the syscall).
/// - With `listener`, the filter is installed with `SECCOMP_FILTER_FLAG_NEW_LISTENER` and the
///   returned fd is the user-notification fd (close-on-exec). Only one filter of a thread's
///   stack may have a listener (`EBUSY` otherwise).
/// - The filter applies to the calling thread and everything it later runs or creates; it
///   cannot be removed.
#[allow(dead_code)] // called by the spawn core
pub(crate) fn install(prog: &[Insn], listener: bool) -> Result<Option<RawFd>, Errno> {
    if prog.is_empty() || prog.len() > super::compile::BPF_MAXINSNS {
        return Err(Errno::EINVAL);
    }
    let Ok(len) = u16::try_from(prog.len()) else {
        return Err(Errno::EINVAL);
    };
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer (copy_from_user); `Insn` has the layout of
        // `struct sock_filter` (checked at compile time in compile.rs).
        filter: prog.as_ptr().cast_mut().cast::<libc::sock_filter>(),
    };
    let flags: libc::c_ulong = if listener {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    // SAFETY: `fprog` lives on this stack frame for the whole call and points into `prog`,
    // which the caller borrows for the call; the kernel copies the program before returning
    // and keeps no pointer to it. SECCOMP_SET_MODE_FILTER takes exactly these arguments.
    // A raw call (no errno): with a listener, the parent takes it while this runs, and the
    // sandboxed process may share the parent's memory (see `inside::sys`).
    let rc = unsafe {
        crate::inside::sys::call(
            libc::SYS_seccomp,
            &[
                libc::SECCOMP_SET_MODE_FILTER as usize,
                flags as usize,
                &fprog as *const libc::sock_fprog as usize,
            ],
        )
    }?;
    if listener {
        // The kernel returns the new fd; it fits an int.
        Ok(Some(rc as RawFd))
    } else {
        Ok(None)
    }
}
