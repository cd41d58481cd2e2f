//! Attacks through system calls that namespaces do not isolate: the default seccomp profile
//! refuses them (`EPERM`), or a missing capability does.

use super::{attack, run};
use libc::{ENOENT, ENOSYS, EPERM, EROFS};

attack! {
    /// Console injection: `TIOCLINUX` (and `TIOCSTI`) on a terminal of the sandbox's own, also
    /// with bits set above the 32 the kernel looks at.
    fn tioclinux() {
        let r = run("tioclinux", &[]);
        // A real terminal: without the filter these would reach the tty layer (a pty answers
        // TIOCLINUX with EINVAL and accepts TIOCSTI from its owner).
        r.refused("ptmx", 0);
        r.refused("pty", 0);
        for key in [
            "tioclinux",
            "tioclinux_high_bits",
            "tioclinux_stdin",
            "tiocsti_pty",
            "tiocsti_pty_high_bits",
        ] {
            r.refused(key, EPERM);
        }
    }
}

attack! {
    /// io_uring: its operations are not system calls, so the filter could not see them.
    fn io_uring() {
        let r = run("io_uring", &[]);
        for key in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
            r.refused(key, EPERM);
        }
    }
}

attack! {
    /// New namespaces (`unshare`, `clone` with namespace flags, `clone3`, `setns`): the
    /// user namespace above all, which opens kernel code normally reserved to root.
    fn namespace_tricks() {
        let r = run("namespaces", &[]);
        for key in [
            "unshare_user",
            "unshare_mount",
            "unshare_net",
            "unshare_pid",
            "unshare_ipc",
            "unshare_uts",
            "unshare_cgroup",
            "unshare_time",
            "clone_user",
            "clone_net",
            "setns_net",
            "setns_mnt",
            "setns_user",
            "setns_pid",
        ] {
            r.refused(key, EPERM);
        }
        // clone3 passes its flags in memory, where the filter cannot look: ENOSYS makes libc
        // fall back to clone.
        r.refused("clone3_user", ENOSYS);
        assert_eq!(r.get("namespaces_unchanged"), "1");
    }
}

attack! {
    /// Changing the sandbox's own file system view, with the old and the new mount API.
    fn mount_apis() {
        let r = run("mount", &[]);
        for key in [
            "mount_tmpfs",
            "mount_sysfs",
            "remount_usr_rw",
            "umount_proc_sys",
            "fsopen",
            "fspick",
            "open_tree",
            "move_mount",
            "mount_setattr_rw",
            "pivot_root",
            "chroot",
        ] {
            r.refused(key, EPERM);
        }
    }
}

attack! {
    /// "Shocker": opening a file system's root directory by handle, around the mounts.
    fn open_by_handle_at() {
        let r = run("handle", &[]);
        r.refused("name_to_handle_at", EPERM);
        r.refused("open_by_handle_at", EPERM);
    }
}

attack! {
    /// The kernel keyring is not namespaced.
    fn keyctl() {
        let r = run("keyring", &[]);
        for key in [
            "keyctl_describe_session",
            "keyctl_describe_user",
            "add_key_process",
            "request_key",
        ] {
            r.refused(key, EPERM);
        }
    }
}

attack! {
    /// userfaultfd makes kernel races easy to win; neither the call nor the device is there.
    fn userfaultfd() {
        let r = run("userfaultfd", &[]);
        r.refused("userfaultfd", EPERM);
        // The minimal /dev has no such device.
        r.refused("dev_userfaultfd", ENOENT);
    }
}

attack! {
    /// perf_event_open: a software counter of the sandbox's own process.
    fn perf_event_open() {
        let r = run("perf", &[]);
        r.refused("perf_event_open", EPERM);
    }
}

attack! {
    /// bpf: a one-entry map and a two-instruction socket filter.
    fn bpf() {
        let r = run("bpf", &[]);
        r.refused("bpf_map_create", EPERM);
        r.refused("bpf_prog_load", EPERM);
    }
}

attack! {
    /// Loading and unloading kernel modules.
    fn module_loading() {
        let r = run("modules", &[]);
        for key in ["init_module", "finit_module", "delete_module"] {
            r.refused(key, EPERM);
        }
    }
}

attack! {
    /// Socket families with a kernel attack surface, and netlink towards the host.
    fn sockets() {
        let r = run("sockets", &[]);
        // The filter.
        r.refused("af_alg", EPERM);
        r.refused("af_vsock", EPERM);
        r.refused("af_kcm", EPERM);
        // No CAP_NET_RAW (in the sandbox's user namespace, when it has one, it would only
        // reach its own empty network namespace).
        r.refused("af_packet", EPERM);
        r.refused("af_inet_raw", EPERM);
        // Audit belongs to the host's initial namespaces: refused in a new network
        // namespace (EPROTONOSUPPORT) or without CAP_AUDIT_WRITE.
        let audit = r.errno("netlink_audit");
        if audit == 0 {
            assert_ne!(r.errno("netlink_audit_ack"), 0, "{r:?}");
        } else {
            r.refused_any("netlink_audit", &[libc::EPROTONOSUPPORT, EPERM]);
        }
        // uevents and routing sockets open, but only in the sandbox's own network namespace,
        // whose only interface is lo.
        assert_eq!(r.get("interfaces"), "lo:UP");
    }
}

attack! {
    /// Setting the clock (not namespaced), with values that would change nothing: the
    /// host's current tick, the current time.
    fn clock_setting() {
        let mut tx: libc::timex = unsafe_zeroed_timex();
        // SAFETY: adjtimex with modes = 0 only reads.
        assert!(unsafe { libc::adjtimex(&mut tx) } >= 0);
        let tick = tx.tick;
        let before = std::time::SystemTime::now();
        let r = run("clock", &[&tick.to_string()]);
        for key in [
            "settimeofday_null",
            "adjtimex_tick",
            "adjtimex_read",
            "clock_adjtime_tick",
            "clock_settime_now",
        ] {
            r.refused(key, EPERM);
        }
        let mut after: libc::timex = unsafe_zeroed_timex();
        // SAFETY: as above.
        assert!(unsafe { libc::adjtimex(&mut after) } >= 0);
        assert_eq!(after.tick, tick);
        assert!(std::time::SystemTime::now() >= before);
    }
}

fn unsafe_zeroed_timex() -> libc::timex {
    // SAFETY: timex is plain data; all zeroes is a valid value (modes = 0: read only).
    unsafe { std::mem::zeroed() }
}

attack! {
    /// Device nodes: making /dev/mem or /dev/kmsg, or opening them.
    fn device_nodes() {
        let r = run("devices", &[]);
        // No CAP_MKNOD (and /dev is read-only, /tmp nodev).
        r.refused("mknod_mem", EPERM);
        r.refused("mknod_kmsg", EPERM);
        r.refused_any("mknod_dev_mem", &[EPERM, EROFS]);
        // The minimal /dev has none of them, but has the harmless ones.
        for key in ["dev_mem", "dev_kmem", "dev_port", "dev_kmsg", "dev_sda"] {
            r.refused(key, ENOENT);
        }
        r.refused("dev_null", 0);
    }
}

/// The userfaultfd device hands out what `userfaultfd(2)` would: where the device is
/// reachable (as root without a new root of its own), its `USERFAULTFD_IOC_NEW` is refused
/// like the system call.
#[test]
fn dev_userfaultfd_root() {
    if !crate::common::is_root() {
        return crate::common::skip("needs root (only root may open /dev/userfaultfd)");
    }
    if !std::path::Path::new("/dev/userfaultfd").exists() {
        return crate::common::skip("this host has no /dev/userfaultfd");
    }
    let _g = crate::serial();
    let out = ringfence::Sandbox::new()
        .output(&crate::common::rf(&["attack", "dev-userfaultfd"]))
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let r = crate::Results::parse(&out);
    r.refused("open", 0);
    r.refused("ioc_new", EPERM);
    r.refused("ioc_new_high_bits", EPERM);
}
