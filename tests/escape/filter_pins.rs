//! The default profile's refusals, made by the kernel's own rules the only thing in the way.
//!
//! The other escape tests run with every capability dropped, so most of the calls the filter
//! refuses would fail anyway: they pass without any filter. Here each call of the default
//! profile's refusal list (`DEFAULT_CONTAINER_DENIED`, the namespace flags of `clone` and
//! `unshare`, `personality`'s bits, `clone3`) is made inside an isolated sandbox that keeps
//! the capabilities which would otherwise refuse it (CAP_SYS_TIME for the clock calls,
//! CAP_SYS_MODULE for the module calls, ...), with arguments that cannot change anything
//! outside the sandbox even when the call runs (a null `settimeofday`, `adjtimex` that only
//! reads, a `reboot` without its magic numbers, paths that do not exist, descriptor -1...).
//!
//! Each call is made twice: under the default profile, where it must fail with the documented
//! errno, and under `Profile::unconfined()`, where it must reach the kernel (any result but
//! EPERM). The second run is what shows the first can tell a missing refusal: a call the host
//! refuses on its own (a sysctl such as `kernel.modules_disabled`, a lockdown) is reported and
//! left out, never counted as pinned.
//!
//! Socket families (`AF_ALG`, `AF_VSOCK`, `AF_KCM`) are not made without the filter here: the
//! kernel would load their modules on the host. The interpreter checks of the library
//! (`seccomp::pins`) and the `sockets` attack cover them.
//!
//! The calls are made by this test binary itself, bound into the sandbox and re-run on
//! [`payload`] (a test that does nothing unless [`PAYLOAD_ENV`] is set); each call runs in a
//! forked child so that one call's effect (a new namespace, a personality) does not change
//! the next.

use std::collections::BTreeMap;

use ringfence::{Capability, Profile, Sandbox, Syscall};

use crate::{common, serial};

const PAYLOAD_ENV: &str = "RINGFENCE_FILTER_PINS";
const MARK: &str = "pin:";
/// A path that exists nowhere: calls that look a path up fail there before any other check
/// (a Landlock hook included), and cannot change anything.
const NOWHERE: &std::ffi::CStr = c"/ringfence-pins-no-such-path";

/// The capabilities the sandbox keeps: each one that some call of the list checks.
const KEPT: [Capability; 15] = [
    Capability::CAP_SYS_TIME,
    Capability::CAP_SYS_MODULE,
    Capability::CAP_SYS_BOOT,
    Capability::CAP_SYS_ADMIN,
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
    Capability::CAP_SYS_PTRACE,
    Capability::CAP_DAC_READ_SEARCH,
    Capability::CAP_SYS_PACCT,
    Capability::CAP_SYSLOG,
    Capability::CAP_SYS_TTY_CONFIG,
    Capability::CAP_SYS_RAWIO,
    Capability::CAP_SYS_NICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_IPC_LOCK,
];

/// How a case is made in its forked child.
#[derive(Clone, Copy)]
enum How {
    /// The call.
    Plain,
    /// `setsid()` first (so that no controlling terminal can be hung up), then the call.
    NoTerminal,
    /// `clone`; the new process exits at once.
    Clone,
}

/// One call: its name in the report, the syscall, how and its arguments.
struct Case {
    key: String,
    nr: i64,
    how: How,
    args: [u64; 6],
}

fn p<T>(v: &T) -> u64 {
    v as *const T as u64
}

fn s(c: &std::ffi::CStr) -> u64 {
    c.as_ptr() as u64
}

/// Storage the cases' pointer arguments point to; lives as long as the cases.
struct Data {
    timex: libc::timex,
    bad_ts: libc::timespec,
}

fn cases(d: &Data) -> Vec<Case> {
    let fd = u64::MAX; // -1 as a descriptor
    let at_fdcwd = libc::AT_FDCWD as i64 as u64;
    let list: Vec<(&str, [u64; 6])> = vec![
        // The clock. settimeofday(NULL, NULL) is "may I set the clock?": with CAP_SYS_TIME it
        // succeeds and changes nothing.
        ("settimeofday", [0; 6]),
        ("stime", [0; 6]),
        // CLOCK_MONOTONIC cannot be set at all, and the time is invalid besides: EINVAL.
        (
            "clock_settime",
            [libc::CLOCK_MONOTONIC as u64, p(&d.bad_ts), 0, 0, 0, 0],
        ),
        // modes == 0: read the clock's state only.
        (
            "clock_adjtime",
            [libc::CLOCK_REALTIME as u64, p(&d.timex), 0, 0, 0, 0],
        ),
        ("adjtimex", [p(&d.timex), 0, 0, 0, 0, 0]),
        // The keyring: an unknown operation, and null key types (EOPNOTSUPP, EFAULT).
        ("keyctl", [0x7fff, 0, 0, 0, 0, 0]),
        ("add_key", [0; 6]),
        ("request_key", [0; 6]),
        // Modules: an empty image (ENOEXEC), descriptor -1 (EBADF), a module that is not
        // loaded (ENOENT); the old calls are gone from the kernel (ENOSYS).
        ("init_module", [0, 0, s(c""), 0, 0, 0]),
        ("finit_module", [fd, s(c""), 0, 0, 0, 0]),
        (
            "delete_module",
            [
                s(c"ringfence_no_such_module"),
                libc::O_NONBLOCK as u64,
                0,
                0,
                0,
                0,
            ],
        ),
        ("create_module", [0; 6]),
        ("get_kernel_syms", [0; 6]),
        ("query_module", [0; 6]),
        // kexec: flags no kernel knows, too many segments, another architecture (EINVAL);
        // reboot without its magic numbers (EINVAL).
        ("kexec_load", [0, 1000, 0, 0xffff_8000, 0, 0]),
        ("kexec_file_load", [fd, fd, 0, 0, 0x8000, 0]),
        ("reboot", [0; 6]),
        // bpf: an unknown command; perf: no attributes; userfaultfd: an unknown flag.
        ("bpf", [0x7fff, 0, 0, 0, 0, 0]),
        ("perf_event_open", [0, 0, fd, fd, 0, 0]),
        ("userfaultfd", [2, 0, 0, 0, 0, 0]),
        // io_uring: no parameters (EFAULT), descriptor -1 (EBADF).
        ("io_uring_setup", [1, 0, 0, 0, 0, 0]),
        ("io_uring_enter", [fd, 0, 0, 0, 0, 0]),
        ("io_uring_register", [fd, 0, 0, 0, 0, 0]),
        // Mounts: a target that does not exist, descriptor -1, an unknown flag.
        ("mount", [s(c"none"), s(NOWHERE), s(c"tmpfs"), 0, 0, 0]),
        ("umount", [s(NOWHERE), 0, 0, 0, 0, 0]),
        ("umount2", [s(NOWHERE), 0, 0, 0, 0, 0]),
        ("pivot_root", [s(NOWHERE), s(NOWHERE), 0, 0, 0, 0]),
        ("chroot", [s(NOWHERE), 0, 0, 0, 0, 0]),
        ("fsopen", [s(c"tmpfs"), 0x8000, 0, 0, 0, 0]),
        ("fsconfig", [fd, 6, 0, 0, 0, 0]),
        ("fsmount", [fd, 0, 0, 0, 0, 0]),
        ("fspick", [at_fdcwd, s(NOWHERE), 0, 0, 0, 0]),
        (
            "move_mount",
            [at_fdcwd, s(NOWHERE), at_fdcwd, s(NOWHERE), 0, 0],
        ),
        ("open_tree", [at_fdcwd, s(NOWHERE), 1, 0, 0, 0]),
        ("open_tree_attr", [at_fdcwd, s(NOWHERE), 1, 0, 0, 0]),
        ("mount_setattr", [fd, s(c""), 0, 0, 0, 0]),
        ("setns", [fd, 0, 0, 0, 0, 0]),
        // File handles: descriptor -1, no handle.
        ("open_by_handle_at", [fd, 0, 0, 0, 0, 0]),
        ("name_to_handle_at", [at_fdcwd, s(c"/"), 0, 0, 0, 0]),
        // Other processes: a pid that does not exist, nothing to copy, descriptor -1.
        (
            "ptrace",
            [libc::PTRACE_PEEKDATA as u64, 0x3fff_ffff, 0, 0, 0, 0],
        ),
        ("process_vm_readv", [0x3fff_ffff, 0, 0, 0, 0, 0]),
        ("process_vm_writev", [0x3fff_ffff, 0, 0, 0, 0, 0]),
        ("process_madvise", [fd, 0, 0, 20, 0, 0]),
        ("kcmp", [0x3fff_ffff, 0x3fff_ffff, 0, 0, 0, 0]),
        ("pidfd_getfd", [fd, 0, 0, 0, 0, 0]),
        // Host-wide switches: a file that does not exist (acct, swap), the size of the
        // kernel log buffer (read only).
        ("acct", [s(NOWHERE), 0, 0, 0, 0, 0]),
        ("swapon", [s(NOWHERE), 0, 0, 0, 0, 0]),
        ("swapoff", [s(NOWHERE), 0, 0, 0, 0, 0]),
        ("syslog", [10, 0, 0, 0, 0, 0]),
        // Obsolete interfaces: gone (ENOSYS), read only, or a path that does not exist.
        ("lookup_dcookie", [0; 6]),
        ("quotactl", [0x8000_0400, s(NOWHERE), 0, 0, 0, 0]),
        ("quotactl_fd", [fd, 0x8000_0400, 0, 0, 0, 0]),
        ("nfsservctl", [0; 6]),
        ("sysfs", [3, 0, 0, 0, 0, 0]),
        ("_sysctl", [0; 6]),
        ("ustat", [0; 6]),
        ("uselib", [s(NOWHERE), 0, 0, 0, 0, 0]),
        // Hardware: levels and port ranges that do not exist (EINVAL).
        ("vm86", [0; 6]),
        ("vm86old", [0; 6]),
        ("iopl", [4, 0, 0, 0, 0, 0]),
        ("ioperm", [0xffff, 0x10, 1, 0, 0, 0]),
        // A notification group with no marks: watches nothing.
        ("fanotify_init", [1, libc::O_RDONLY as u64, 0, 0, 0, 0]),
        // NUMA: no pages, an unknown mode or flag.
        ("move_pages", [0; 6]),
        ("migrate_pages", [0; 6]),
        ("mbind", [0, 0, 99, 0, 0, 0]),
        ("set_mempolicy", [99, 0, 0, 0, 0, 0]),
        ("set_mempolicy_home_node", [0, 0, 0, 1, 0, 0]),
    ];
    let mut out: Vec<Case> = list
        .into_iter()
        .filter_map(|(name, args)| {
            // Names this architecture does not have (stime, vm86...) are left out; the guard
            // kills the other ABIs that have them.
            let nr = Syscall::named(name).ok()?.nr() as i64;
            Some(Case {
                key: name.to_owned(),
                nr,
                how: How::Plain,
                args,
            })
        })
        .collect();
    // The terminal: after setsid() there is none to hang up.
    out.push(Case {
        key: "vhangup".into(),
        nr: libc::SYS_vhangup,
        how: How::NoTerminal,
        args: [0; 6],
    });
    // New namespaces, one flag at a time: in the sandbox's own namespaces, harmless.
    for (flag, name) in NS_FLAGS {
        out.push(Case {
            key: format!("clone_{name}"),
            nr: libc::SYS_clone,
            how: How::Clone,
            args: [flag | libc::SIGCHLD as u64, 0, 0, 0, 0, 0],
        });
        out.push(Case {
            key: format!("unshare_{name}"),
            nr: libc::SYS_unshare,
            how: How::Plain,
            args: [flag, 0, 0, 0, 0, 0],
        });
    }
    out.push(Case {
        key: "unshare_time".into(),
        nr: libc::SYS_unshare,
        how: How::Plain,
        args: [libc::CLONE_NEWTIME as u64, 0, 0, 0, 0, 0],
    });
    // ADDR_NO_RANDOMIZE and READ_IMPLIES_EXEC, for the forked child only.
    for (v, name) in [
        (0x0004_0000u64, "no_randomize"),
        (0x0040_0000, "read_implies_exec"),
    ] {
        out.push(Case {
            key: format!("personality_{name}"),
            nr: libc::SYS_personality,
            how: How::Plain,
            args: [v, 0, 0, 0, 0, 0],
        });
    }
    // The /dev/userfaultfd request that hands out a userfaultfd (USERFAULTFD_IOC_NEW), on
    // descriptor -1: EBADF without the filter.
    out.push(Case {
        key: "ioctl_userfaultfd_new".into(),
        nr: libc::SYS_ioctl,
        how: How::Plain,
        args: [u64::MAX, 0xAA00, 0, 0, 0, 0],
    });
    // clone3's flags are in memory: the guard answers ENOSYS (libc falls back to clone). The
    // argument is null, so without the guard the kernel says EFAULT.
    out.push(Case {
        key: "clone3".into(),
        nr: libc::SYS_clone3,
        how: How::Plain,
        args: [0, 88, 0, 0, 0, 0],
    });
    out
}

const NS_FLAGS: [(u64, &str); 7] = [
    (libc::CLONE_NEWNS as u64, "mnt"),
    (libc::CLONE_NEWCGROUP as u64, "cgroup"),
    (libc::CLONE_NEWUTS as u64, "uts"),
    (libc::CLONE_NEWIPC as u64, "ipc"),
    (libc::CLONE_NEWUSER as u64, "user"),
    (libc::CLONE_NEWPID as u64, "pid"),
    (libc::CLONE_NEWNET as u64, "net"),
];

/// Make one case in a forked child; its result: 0 for success, else the errno, or
/// `1000 + signal` when the child was killed.
fn make(c: &Case) -> i32 {
    // SAFETY: the child makes raw system calls on data prepared before the fork and leaves
    // with _exit; it neither allocates nor takes locks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: raw syscalls with integer arguments or pointers to live data (see above).
        unsafe {
            let a = c.args;
            if let How::NoTerminal = c.how {
                libc::setsid();
            }
            let r = libc::syscall(c.nr, a[0], a[1], a[2], a[3], a[4], a[5]);
            if r < 0 {
                libc::_exit(*libc::__errno_location());
            }
            if let How::Clone = c.how {
                if r == 0 {
                    // The new process.
                    libc::_exit(0);
                }
                libc::waitpid(r as i32, std::ptr::null_mut(), 0);
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        1000 + libc::WTERMSIG(status)
    }
}

/// Run inside the sandbox: make every case and print `pin:KEY=RESULT`.
#[test]
fn payload() {
    if std::env::var_os(PAYLOAD_ENV).is_none() {
        return;
    }
    // SAFETY: an all-zero timex/timespec is a valid value of these C structs.
    let mut d: Data = unsafe { std::mem::zeroed() };
    d.bad_ts.tv_nsec = -1;
    let cases = cases(&d);
    for c in &cases {
        println!("{MARK}{}={}", c.key, make(c));
    }
    println!("{MARK}done={}", cases.len());
}

/// Run the payload in an isolated sandbox with `profile`, keeping [`KEPT`]; the results by
/// key.
fn results(profile: Profile) -> BTreeMap<String, i32> {
    let exe = std::env::current_exe().unwrap();
    let sb = Sandbox::isolated()
        .bind_ro(&exe, "/rf-pins")
        .capabilities(KEPT)
        .seccomp(profile);
    let mut cmd = ringfence::Command::new("/rf-pins");
    cmd.args([
        "--exact",
        "filter_pins::payload",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(PAYLOAD_ENV, "1");
    let out = sb.output(&cmd).expect("spawn the payload");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let map: BTreeMap<String, i32> = text
        .lines()
        // The harness may print "test ... " before the first line on the same line.
        .filter_map(|l| l.find(MARK).map(|i| &l[i + MARK.len()..]))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect();
    assert!(map.contains_key("done"), "{text}");
    map
}

fn errno_name(e: i32) -> String {
    match e {
        0 => "success".into(),
        1000.. => format!("signal {}", e - 1000),
        _ => format!("{:?}", nix::errno::Errno::from_raw(e)),
    }
}

/// Every call of the refusal list, with the capabilities kept: refused by the default
/// profile (EPERM; ENOSYS for clone3), and reaching the kernel without a filter.
#[test]
fn default_profile_refusals_hold_with_the_capabilities_kept_root() {
    if !common::is_root() {
        return common::skip("keeping CAP_SYS_TIME, CAP_SYS_MODULE... needs root");
    }
    let _g = serial();
    let filtered = results(Profile::default_container());
    let open = results(Profile::unconfined());
    assert_eq!(
        filtered.keys().collect::<Vec<_>>(),
        open.keys().collect::<Vec<_>>()
    );
    let mut pinned = Vec::new();
    let mut host_refuses = Vec::new();
    let mut wrong = Vec::new();
    for (key, &got) in filtered.iter().filter(|(k, _)| *k != "done") {
        let want = if key == "clone3" {
            libc::ENOSYS
        } else {
            libc::EPERM
        };
        let without = open[key];
        if got != want {
            wrong.push(format!(
                "{key}: {} under the default profile, expected {}",
                errno_name(got),
                errno_name(want)
            ));
        } else if without == want || without >= 1000 {
            // The host refuses it on its own (a sysctl, a lockdown): this run cannot tell
            // whether the filter does.
            host_refuses.push(format!("{key} ({})", errno_name(without)));
        } else {
            pinned.push(format!("{key} ({})", errno_name(without)));
        }
    }
    eprintln!(
        "pinned ({}): without the filter {}",
        pinned.len(),
        pinned.join(", ")
    );
    if !host_refuses.is_empty() {
        common::skip(&format!(
            "the host itself refuses, so the filter's refusal is not told apart: {}",
            host_refuses.join(", ")
        ));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The card's own example: CAP_SYS_TIME kept, settimeofday(NULL, NULL) is allowed by the
    // kernel and refused only by the filter.
    assert_eq!(open["settimeofday"], 0, "{open:?}");
    assert_eq!(filtered["settimeofday"], libc::EPERM);
    // Most of the list must be told apart on any host this runs on.
    assert!(
        pinned.len() * 10 >= (filtered.len() - 1) * 8,
        "only {} of {} calls pinned; the host refuses {host_refuses:?}",
        pinned.len(),
        filtered.len() - 1
    );
}
