//! Raw system calls that touch no thread-local state, and the clone of a process that shares
//! the caller's memory.
//!
//! A process cloned with `CLONE_VM` (see `spawn::clone_pidfd`) runs in the caller's address
//! space with the caller's thread pointer: glibc's wrappers would write the caller's `errno`
//! and (for the cancellable calls) its thread's cancellation state, while the caller's thread
//! runs. The steps that run concurrently with the caller (up to the release, the init's loop,
//! the last steps before `execve` when a seccomp listener is handed over) use these instead:
//! the result comes back in a register, `-errno` on failure.

use nix::errno::Errno;

/// `syscall(nr, a0..a5)` without libc: returns the kernel's raw result.
///
/// # Safety
/// As for the system call made: pointer arguments must be valid for it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn raw6(nr: libc::c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 system call convention; rcx and r11 are clobbered by `syscall`.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `syscall(nr, a0..a5)` without libc: returns the kernel's raw result.
///
/// # Safety
/// As for the system call made: pointer arguments must be valid for it.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(crate) unsafe fn raw6(nr: libc::c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the aarch64 system call convention (number in x8, result in x0).
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a[0] as isize => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            in("x4") a[4],
            in("x5") a[5],
            options(nostack),
        );
    }
    ret
}

/// Whether this architecture has the raw calls (and so the memory-sharing clone).
pub(crate) const AVAILABLE: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Fallback for other architectures: never used (`AVAILABLE` is false there).
///
/// # Safety
/// As for the system call made.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) unsafe fn raw6(nr: libc::c_long, a: [usize; 6]) -> isize {
    // SAFETY: as the caller's.
    let rc = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if rc < 0 {
        -(Errno::last() as isize)
    } else {
        rc as isize
    }
}

/// A raw system call's result as `Result`.
#[inline(always)]
pub(crate) fn check(rc: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&rc) {
        Err(Errno::from_raw(-rc as i32))
    } else {
        Ok(rc as usize)
    }
}

/// A system call with up to six integer or pointer arguments.
///
/// # Safety
/// As for the system call made.
#[inline(always)]
pub(crate) unsafe fn call(nr: libc::c_long, a: &[usize]) -> Result<usize, Errno> {
    let mut args = [0usize; 6];
    args[..a.len()].copy_from_slice(a);
    // SAFETY: as the caller's.
    check(unsafe { raw6(nr, args) })
}

/// `write(2)`.
pub(crate) fn write(fd: libc::c_int, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is valid for reading `buf.len()` bytes.
    unsafe {
        call(
            libc::SYS_write,
            &[fd as usize, buf.as_ptr() as usize, buf.len()],
        )
    }
}

/// `read(2)`.
pub(crate) fn read(fd: libc::c_int, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is valid for writing `buf.len()` bytes.
    unsafe {
        call(
            libc::SYS_read,
            &[fd as usize, buf.as_mut_ptr() as usize, buf.len()],
        )
    }
}

/// `close(2)`, whose result nobody needs.
pub(crate) fn close(fd: libc::c_int) {
    // SAFETY: closes a descriptor number of this process.
    let _ = unsafe { call(libc::SYS_close, &[fd as usize]) };
}

/// `ppoll(2)` without a timeout or signal mask (`poll(fds, n, -1)`).
pub(crate) fn poll_forever(fds: &mut [libc::pollfd]) -> Result<usize, Errno> {
    // SAFETY: `fds` is valid for the kernel to read and write.
    unsafe {
        call(
            libc::SYS_ppoll,
            &[fds.as_mut_ptr() as usize, fds.len(), 0, 0, 8],
        )
    }
}

/// `prctl(2)` with integer arguments.
pub(crate) fn prctl(option: libc::c_int, a: usize, b: usize) -> Result<usize, Errno> {
    // SAFETY: the options used here take integers (or a pointer to a static string).
    unsafe { call(libc::SYS_prctl, &[option as usize, a, b, 0, 0]) }
}

/// `rt_sigprocmask(SIG_SETMASK, set)` for the calling thread.
pub(crate) fn set_sigmask(set: u64) -> Result<(), Errno> {
    // SAFETY: an 8-byte signal set on this stack, the kernel's size.
    unsafe {
        call(
            libc::SYS_rt_sigprocmask,
            &[
                libc::SIG_SETMASK as usize,
                &set as *const u64 as usize,
                0,
                8,
            ],
        )
    }
    .map(drop)
}

/// `_exit(2)` of the whole process (`exit_group`).
pub(crate) fn exit(code: libc::c_int) -> ! {
    loop {
        // SAFETY: exit_group does not return.
        let _ = unsafe { call(libc::SYS_exit_group, &[code as usize]) };
    }
}

/// `execve(2)`; returns only on failure.
pub(crate) fn execve(
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> Errno {
    // SAFETY: the caller passes a C string and NULL-terminated arrays of C strings.
    match unsafe {
        call(
            libc::SYS_execve,
            &[path as usize, argv as usize, envp as usize],
        )
    } {
        Ok(_) => Errno::UnknownErrno,
        Err(e) => e,
    }
}

/// The bit of `sig` in a kernel signal set.
pub(crate) const fn sigbit(sig: libc::c_int) -> u64 {
    1u64 << (sig - 1)
}

/// `clone3`/`clone` arguments of a process that shares this address space.
#[repr(C)]
#[derive(Default)]
pub(crate) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// The function a process cloned onto its own stack runs; it must never return.
pub(crate) type Entry = extern "C" fn(usize) -> !;

/// The system call number and first three arguments of [`clone_on_stack`]: `clone3(args,
/// size)`, or with `legacy` `clone(flags | exit_signal, stack top, &pidfd)`.
fn clone_call(args: &CloneArgs, legacy: bool) -> (libc::c_long, usize, usize, usize) {
    if legacy {
        (
            libc::SYS_clone,
            (args.flags | args.exit_signal) as usize,
            (args.stack + args.stack_size) as usize,
            args.pidfd as usize,
        )
    } else {
        (
            libc::SYS_clone3,
            args as *const CloneArgs as usize,
            std::mem::size_of::<CloneArgs>(),
            0,
        )
    }
}

/// `clone3(args)` where the child starts on `args.stack` and calls `entry(arg)`; with
/// `legacy`, `clone(flags | exit_signal, stack top, &pidfd)` instead (no `clone3`).
/// Returns the child's pid (or `-errno`) in the parent; the child never returns from here.
///
/// # Safety
/// `args` describes a valid stack that outlives the child's use of it; `entry` never returns
/// and only makes system calls that touch no thread-local state while the caller runs.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn clone_on_stack(
    args: &CloneArgs,
    legacy: bool,
    entry: Entry,
    arg: usize,
) -> isize {
    let ret: isize;
    let (nr, a0, a1, a2) = clone_call(args, legacy);
    // SAFETY: the child starts with its stack pointer at the (16-byte aligned) top of its
    // stack and calls `entry`, which never returns; the parent returns the result.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") nr as isize => ret,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            in("r10") 0usize,
            in("r8") 0usize,
            in("r12") entry as usize,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// See the x86_64 version.
///
/// # Safety
/// As there.
#[cfg(target_arch = "aarch64")]
pub(crate) unsafe fn clone_on_stack(
    args: &CloneArgs,
    legacy: bool,
    entry: Entry,
    arg: usize,
) -> isize {
    let ret: isize;
    let (nr, a0, a1, a2) = clone_call(args, legacy);
    // SAFETY: as for x86_64; the child clears the frame pointer and link register.
    unsafe {
        std::arch::asm!(
            "svc 0",
            "cbnz x0, 2f",
            "mov x29, xzr",
            "mov x30, xzr",
            "mov x0, x21",
            "blr x20",
            "brk #0",
            "2:",
            in("x8") nr,
            inlateout("x0") a0 as isize => ret,
            in("x1") a1,
            in("x2") a2,
            in("x3") 0usize,
            in("x4") 0usize,
            in("x20") entry as usize,
            in("x21") arg,
        );
    }
    ret
}

/// Never called (`AVAILABLE` is false on other architectures).
///
/// # Safety
/// Never called.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) unsafe fn clone_on_stack(_: &CloneArgs, _: bool, _: Entry, _: usize) -> isize {
    -(libc::ENOSYS as isize)
}

/// Stacks of the processes that share the caller's memory, with guard pages below each, and
/// room for the plan they read: one mapping, unmapped when dropped. Whoever owns it must keep
/// it until the processes running on it have ended (or never unmap it: `leak`).
#[derive(Debug)]
pub(crate) struct Stacks {
    base: *mut u8,
    len: usize,
}

// SAFETY: a plain mapping; nothing in it is shared with the owning thread's data.
unsafe impl Send for Stacks {}
// SAFETY: as above: the owner only unmaps it.
unsafe impl Sync for Stacks {}

const PAGE: usize = 4096;
/// The first process (setup, the init's loop) and the program's process before its exec.
pub(crate) const MAIN_STACK: usize = 256 * 1024;
pub(crate) const PAYLOAD_STACK: usize = 128 * 1024;
/// Room for the plan at the top of the mapping.
const PLAN_ROOM: usize = 2 * PAGE;

impl Stacks {
    /// `[guard][payload stack][guard][main stack][plan room]`.
    pub(crate) fn new() -> Result<Stacks, Errno> {
        let len = PAGE + PAYLOAD_STACK + PAGE + MAIN_STACK + PLAN_ROOM;
        // SAFETY: a new anonymous private mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let s = Stacks {
            base: base.cast(),
            len,
        };
        for guard in [0, PAGE + PAYLOAD_STACK] {
            // SAFETY: a page inside the mapping made above.
            if unsafe { libc::mprotect(s.base.add(guard).cast(), PAGE, libc::PROT_NONE) } != 0 {
                return Err(Errno::last());
            }
        }
        Ok(s)
    }

    /// The first process's stack: (lowest address, size).
    pub(crate) fn main(&self) -> (usize, usize) {
        (self.base as usize + 2 * PAGE + PAYLOAD_STACK, MAIN_STACK)
    }

    /// The program's process's stack (with a pid namespace): (lowest address, size).
    pub(crate) fn payload(&self) -> (usize, usize) {
        (self.base as usize + PAGE, PAYLOAD_STACK)
    }

    /// Where the plan is kept, and how many bytes fit.
    pub(crate) fn plan_room(&self) -> (*mut u8, usize) {
        // SAFETY: inside the mapping.
        (unsafe { self.base.add(self.len - PLAN_ROOM) }, PLAN_ROOM)
    }

    /// Never unmap it (a process may still run on it).
    pub(crate) fn leak(self) {
        std::mem::forget(self);
    }

    /// Stacks from the pool of this process, or new ones: a reused mapping has its pages
    /// already, so the child takes no page fault for them.
    pub(crate) fn take() -> Result<Stacks, Errno> {
        let reused = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.map_or_else(Stacks::new, Ok)
    }

    /// Back into the pool, for the next spawn. Only once no process runs on them any more.
    pub(crate) fn give_back(self) {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(self);
        }
    }
}

/// Free stacks (see `Stacks::take`); a few are enough for the threads that spawn at once.
static POOL: std::sync::Mutex<Vec<Stacks>> = std::sync::Mutex::new(Vec::new());
const POOL_MAX: usize = 16;

impl Drop for Stacks {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, used by no process any more (the owner's duty).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
