//! Ready-made profiles.

use super::profile::{Action, Cond, Profile, Syscall};

/// Clone and unshare flags that create namespaces: `CLONE_NEWNS | CLONE_NEWCGROUP |
/// CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET` (0x7e020000,
/// the mask Docker's profile uses).
pub const CLONE_NS_FLAGS: u64 = 0x7e02_0000;
/// `USERFAULTFD_IOC_NEW` (`_IO(0xAA, 0x00)`): the `/dev/userfaultfd` request that returns a
/// new userfaultfd, refused by [`Profile::default_container`] like `userfaultfd(2)`.
const USERFAULTFD_IOC_NEW: u64 = 0xAA00;
/// `CLONE_NEWTIME`: only `unshare` and `clone3` can use it (in `clone` it overlaps the exit
/// signal).
pub const CLONE_NEWTIME: u64 = 0x80;

/// Syscalls [`Profile::default_container`] refuses with `EPERM`, and why.
///
/// | syscalls | why they are refused |
/// | --- | --- |
/// | `settimeofday`, `stime`, `clock_settime`, `clock_adjtime`, `adjtimex` | the clock is not namespaced: setting it changes the host's time. `adjtimex`/`clock_adjtime` read or write depending on a field in memory (`modes`), which a seccomp filter cannot see, so both are refused |
/// | `keyctl`, `add_key`, `request_key` | the kernel keyring is not namespaced (secrets of other users, a long CVE history) |
/// | `init_module`, `finit_module`, `delete_module`, `create_module`, `get_kernel_syms`, `query_module` | loading or unloading kernel code |
/// | `kexec_load`, `kexec_file_load`, `reboot` | replacing or stopping the running kernel |
/// | `bpf`, `perf_event_open`, `userfaultfd`; `ioctl(USERFAULTFD_IOC_NEW)` on `/dev/userfaultfd` (the request compared on its low 32 bits) | large kernel attack surface; perf also leaks host data; userfaultfd makes kernel races easy to win |
/// | `io_uring_setup`, `io_uring_enter`, `io_uring_register` | bypasses seccomp (io_uring operations are not syscalls) and has had many privilege escalations |
/// | `mount`, `umount`, `umount2`, `pivot_root`, `chroot`, `fsopen`, `fsconfig`, `fsmount`, `fspick`, `move_mount`, `open_tree`, `open_tree_attr`, `mount_setattr` | changing the file system view the sandbox built |
/// | `setns`; `unshare` and `clone` with a namespace flag ([`CLONE_NS_FLAGS`], and [`CLONE_NEWTIME`] for `unshare`) | new namespaces (user namespaces above all) open kernel code normally reserved to root; `clone`'s flags are a register the filter checks (`clone3` passes them in memory, so the guard makes it fail with `ENOSYS` and libc falls back to `clone`) |
/// | `open_by_handle_at`, `name_to_handle_at` | file handles open files outside a bind mount or chroot ("shocker" escape) |
/// | `ptrace`, `process_vm_readv`, `process_vm_writev`, `process_madvise`, `kcmp`, `pidfd_getfd` | inspecting or controlling other processes |
/// | `personality` with any bit other than `PER_LINUX32` (8) and `UNAME26` (0x20000) | other personalities disable ASLR (`ADDR_NO_RANDOMIZE`), make data executable (`READ_IMPLIES_EXEC`) or re-enable old, less tested kernel paths |
/// | `socket` with `AF_ALG` (38), `AF_VSOCK` (40), `AF_KCM` (41) | crypto, host-guest and kernel-connection-multiplexor sockets: rarely needed, frequent CVEs; compared on 32 bits since `domain` is an `int` |
/// | `acct`, `swapon`, `swapoff`, `syslog`, `vhangup` | host-wide accounting, swap, kernel log and terminals |
/// | `lookup_dcookie`, `quotactl`, `quotactl_fd`, `nfsservctl`, `sysfs`, `_sysctl`, `ustat`, `uselib` | obsolete or host-wide interfaces |
/// | `vm86`, `vm86old`, `iopl`, `ioperm` | direct hardware / legacy CPU modes |
/// | `fanotify_init` | watches file systems beyond the sandbox's view |
/// | `move_pages`, `migrate_pages`, `mbind`, `set_mempolicy`, `set_mempolicy_home_node` | NUMA placement of memory, host-wide effect and info leaks |
pub const DEFAULT_CONTAINER_DENIED: &[&str] = &[
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "open_tree_attr",
    "mount_setattr",
    "setns",
    "open_by_handle_at",
    "name_to_handle_at",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "kcmp",
    "pidfd_getfd",
    "acct",
    "swapon",
    "swapoff",
    "syslog",
    "vhangup",
    "lookup_dcookie",
    "quotactl",
    "quotactl_fd",
    "nfsservctl",
    "sysfs",
    "_sysctl",
    "ustat",
    "uselib",
    "vm86",
    "vm86old",
    "iopl",
    "ioperm",
    "fanotify_init",
    "move_pages",
    "migrate_pages",
    "mbind",
    "set_mempolicy",
    "set_mempolicy_home_node",
];

/// `personality` bits [`Profile::default_container`] allows: `PER_LINUX32` (8) and `UNAME26`
/// (0x20000), so the values 0, 8, 0x20000 and 0x20008 of Docker's list. Docker also allows the
/// query `0xffffffff`; ringfence refuses every other bit, the query included (its all-ones
/// value cannot be told apart without order-dependent rules).
pub const PERSONALITY_FLAGS_ALLOWED: u64 = 0x0002_0008;

/// Socket families [`Profile::default_container`] refuses.
pub const SOCKET_FAMILIES_DENIED: &[u64] = &[38, 40, 41];

/// Syscalls [`Profile::strict`] allows: enough for a statically or dynamically linked
/// program, or `python3 -c`, that computes on stdin, stdout and already reachable files.
pub const STRICT_ALLOWED: &[&str] = &[
    // process start (execve runs after the filter is installed) and exit
    "execve",
    "exit",
    "exit_group",
    // the dynamic loader and libc start-up
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "madvise",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "uname",
    // files and fds
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "lseek",
    "open",
    "openat",
    "close",
    "fstat",
    "stat",
    "lstat",
    "newfstatat",
    "statx",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "getdents64",
    "getcwd",
    "fcntl",
    "dup",
    "dup2",
    "dup3",
    "pipe",
    "pipe2",
    "ftruncate",
    "fsync",
    "fdatasync",
    "fadvise64",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    // signals, threads' synchronisation, time
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "futex",
    "sched_yield",
    "sched_getaffinity",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "time",
    // identity
    "getpid",
    "gettid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
];

impl Profile {
    fn deny_present(self, names: &[&str]) -> Profile {
        let Some(arch) = self.arch else { return self };
        let present = names
            .iter()
            .filter(|n| Syscall::named_for(arch, n).is_ok())
            .collect::<Vec<_>>();
        self.deny(present)
    }

    fn allow_present(self, names: &[&str]) -> Profile {
        let Some(arch) = self.arch else { return self };
        let present = names
            .iter()
            .filter(|n| Syscall::named_for(arch, n).is_ok())
            .collect::<Vec<_>>();
        self.allow(present)
    }

    fn syscall(&self, name: &str) -> Option<Syscall> {
        self.arch.and_then(|a| Syscall::named_for(a, name).ok())
    }

    /// The intent of Docker's default profile as a deny-list: everything is allowed except the
    /// calls in [`DEFAULT_CONTAINER_DENIED`], namespace-creating `clone`/`unshare`, unusual
    /// `personality` values and the socket families in [`SOCKET_FAMILIES_DENIED`], which fail
    /// with `EPERM`. Together with the guard (installed with every profile): other
    /// architectures and x32 are killed, `clone3` fails with `ENOSYS`, `TIOCSTI`/`TIOCLINUX`
    /// are refused.
    ///
    /// A deny-list lets through syscalls added to the kernel later; [`Profile::strict`] is the
    /// allow-list alternative.
    pub fn default_container() -> Profile {
        // Each refusal is one rule per flag bit ("this bit is set"), not "allow if no bit is set,
        // else deny": rules that do not depend on their order mean the same to libseccomp-based
        // runtimes (runc, crun) when the profile is exported to OCI JSON.
        let mut p = Profile::allow_all();
        let bits = |mask: u64| (0..32).map(|b| 1u64 << b).filter(move |b| mask & b != 0);
        if let Some(clone) = p.syscall("clone") {
            // clone's flags are the first argument on x86_64 and aarch64; the kernel only uses
            // their low 32 bits.
            for b in bits(CLONE_NS_FLAGS) {
                p = p.rule(clone, [Cond::arg32(0).masked_eq(b, b)], Action::EPERM);
            }
        }
        if let Some(unshare) = p.syscall("unshare") {
            for b in bits(CLONE_NS_FLAGS | CLONE_NEWTIME) {
                p = p.rule(unshare, [Cond::arg32(0).masked_eq(b, b)], Action::EPERM);
            }
        }
        if let Some(pers) = p.syscall("personality") {
            // `personality(unsigned int)`: refuse any bit outside PER_LINUX32 | UNAME26.
            for b in bits(0xffff_ffff & !PERSONALITY_FLAGS_ALLOWED) {
                p = p.rule(pers, [Cond::arg32(0).masked_eq(b, b)], Action::EPERM);
            }
        }
        if let Some(socket) = p.syscall("socket") {
            for f in SOCKET_FAMILIES_DENIED {
                p = p.rule(socket, [Cond::arg32(0).eq(*f)], Action::EPERM);
            }
        }
        if let Some(ioctl) = p.syscall("ioctl") {
            // /dev/userfaultfd hands out what userfaultfd(2) would. The request is compared on
            // its low 32 bits (the kernel's `cmd` is an unsigned int), like TIOCSTI.
            p = p.rule(
                ioctl,
                [Cond::arg32(1).eq(USERFAULTFD_IOC_NEW)],
                Action::EPERM,
            );
        }
        p.deny_present(DEFAULT_CONTAINER_DENIED)
    }

    /// A short allow-list for plugins that compute on stdin/stdout and files
    /// ([`STRICT_ALLOWED`]), plus `ioctl` for `TCGETS` and `TIOCGWINSZ` only (terminal checks)
    /// and `FIOCLEX`/`FIONCLEX` (close-on-exec, which interpreters such as Python set on the
    /// script they open).
    ///
    /// Everything else fails with `EPERM` rather than killing the process: language runtimes
    /// probe optional calls at start-up and handle a failure, so a harmless probe does not
    /// turn into a crash, and the error names the refusal. Add
    /// `.default_action(Action::KillProcess)` for a hard stop instead.
    pub fn strict() -> Profile {
        let mut p = Profile::deny_all().allow_present(STRICT_ALLOWED);
        if let Some(ioctl) = p.syscall("ioctl") {
            // TCGETS, TIOCGWINSZ, FIONCLEX, FIOCLEX; the request is an unsigned int: compare
            // 32 bits.
            for req in [0x5401, 0x5413, 0x5450, 0x5451] {
                p = p.rule(ioctl, [Cond::arg32(1).eq(req)], Action::Allow);
            }
        }
        p
    }
}

impl Profile {
    /// Allows everything but `names`, which fail with `EPERM` (plus the guard).
    /// Short for `Profile::allow_all().deny(names)`.
    pub fn deny_only(names: &[&str]) -> Profile {
        Profile::allow_all().deny(names)
    }
}

#[test]
fn presets_compile() {
    for p in [
        Profile::default_container(),
        Profile::strict(),
        Profile::deny_only(&["keyctl"]),
    ] {
        p.check().unwrap();
        let c = p.compile().unwrap();
        assert_eq!(c.programs().count(), 1);
    }
    assert_eq!(
        Profile::unconfined().compile().unwrap().programs().count(),
        0
    );
}
