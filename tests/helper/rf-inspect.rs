//! `rf-inspect`: run by the integration tests inside sandboxes to report what the sandboxed
//! process sees, as `key=value` lines, and to act out process-tree scenarios.
//!
//! `rf-inspect facts`         namespaces, ids, pids, fds, capabilities, signals, tty, network...
//! `rf-inspect sleep SECS`    sleep
//! `rf-inspect tree SECS`     fork a grandchild (same process group) that sleeps, print its pid, sleep
//! `rf-inspect daemon SECS`   double-fork + setsid a daemon that sleeps, print its pid, exit
//! `rf-inspect orphans N`     leave N orphans that exit at once, then sleep 1 s
//! `rf-inspect trap`          wait for SIGTERM/SIGUSR1, print which, exit 42
//! `rf-inspect kill-self SIG` kill itself with a signal
//! `rf-inspect write-stdout N` write N bytes to stdout
//! `rf-inspect attacks`       try syscalls a sandbox must refuse, with arguments that would
//!                            change nothing even if allowed; print `name=errno` for each
//! `rf-inspect x32`           call getpid through the x32 ABI (the guard kills the process)
//! `rf-inspect int80`         call getpid through `int 0x80`, the i386 ABI (likewise)
//! `rf-inspect attack NAME [ARGS]`  one escape attempt (see `attack`): prints `key=value`
//!                            lines, mostly `name=errno` (0 when the call succeeded)
//! `rf-inspect exec PROG ARGS`  execve PROG with ARGS (a second exec inside the sandbox)

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let num = |i: usize| arg(i).parse::<u64>().unwrap_or(1);
    match arg(1) {
        "facts" => facts(),
        "sleep" => std::thread::sleep(Duration::from_secs(num(2))),
        "tree" => {
            let secs = num(2);
            // SAFETY: fork in a single-threaded program; the child only sleeps and exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                std::thread::sleep(Duration::from_secs(secs));
                std::process::exit(0);
            }
            println!("grandchild={pid}");
            std::io::stdout().flush().unwrap();
            std::thread::sleep(Duration::from_secs(secs));
        }
        "daemon" => {
            let secs = num(2);
            let (r, w) = pipe();
            // SAFETY: fork in a single-threaded program; children only call async-signal-safe
            // functions and sleep.
            unsafe {
                if libc::fork() == 0 {
                    libc::setsid();
                    if libc::fork() == 0 {
                        let pid = libc::getpid();
                        libc::write(w, (&pid as *const i32).cast(), 4);
                        std::thread::sleep(Duration::from_secs(secs));
                        libc::_exit(0);
                    }
                    libc::_exit(0);
                }
                let mut pid = 0i32;
                libc::read(r, (&mut pid as *mut i32).cast(), 4);
                println!("daemon={pid}");
            }
        }
        "orphans" => {
            for _ in 0..num(2) {
                // SAFETY: as above; the middle process exits at once (and is reaped here), leaving
                // an orphan that exits 50 ms later, to be reaped by whoever adopts it.
                unsafe {
                    let middle = libc::fork();
                    if middle == 0 {
                        if libc::fork() == 0 {
                            std::thread::sleep(Duration::from_millis(50));
                            libc::_exit(0);
                        }
                        libc::_exit(0);
                    }
                    libc::waitpid(middle, std::ptr::null_mut(), 0);
                }
            }
            std::thread::sleep(Duration::from_secs(1));
            println!("done");
        }
        "trap" => {
            // SAFETY: blocking two signals and waiting for them synchronously.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigaddset(&mut set, libc::SIGUSR1);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                println!("ready");
                std::io::stdout().flush().unwrap();
                let sig = libc::sigwaitinfo(&set, std::ptr::null_mut());
                println!("got={sig}");
                std::io::stdout().flush().unwrap();
                std::process::exit(42);
            }
        }
        "kill-self" => {
            // SAFETY: signals this process.
            unsafe { libc::kill(libc::getpid(), num(2) as i32) };
            std::thread::sleep(Duration::from_secs(5));
        }
        "attacks" => attacks(),
        "attack" => attack(arg(2), &args[3.min(args.len())..]),
        "exec" => {
            use std::os::unix::process::CommandExt;
            let e = std::process::Command::new(arg(2)).args(&args[3..]).exec();
            eprintln!("rf-inspect: exec {}: {e}", arg(2));
            std::process::exit(127);
        }
        #[cfg(target_arch = "x86_64")]
        "int80" => {
            // getpid (20) through the i386 entry point; harmless if it were allowed.
            let r: i64;
            // SAFETY: the 32-bit syscall entry with eax = 20 (getpid), which takes no argument.
            unsafe { std::arch::asm!("int 0x80", inlateout("rax") 20i64 => r, options(nostack)) };
            println!("int80=survived:{r}");
        }
        "x32" => {
            // SAFETY: getpid through the x32 syscall number; harmless if it were allowed.
            let r = unsafe { libc::syscall(libc::SYS_getpid | 0x4000_0000) };
            println!("x32=survived:{r}");
        }
        "write-stdout" => {
            // In blocks, so that a flood of any size costs this program little memory.
            let block = vec![b'x'; 1 << 16];
            let mut left = num(2) as usize;
            let mut out = std::io::stdout().lock();
            while left > 0 {
                let n = left.min(block.len());
                out.write_all(&block[..n]).unwrap();
                left -= n;
            }
            out.flush().unwrap();
        }
        other => {
            eprintln!("rf-inspect: unknown command {other:?}");
            std::process::exit(2);
        }
    }
}

/// Each call is made so that it could not change the host even if the filter let it through.
fn attacks() {
    let errno = |r: libc::c_long| {
        if r < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        }
    };
    let tiocsti_high: u64 = libc::TIOCSTI | 0xffff_ffff_0000_0000;
    let c = b'x';
    // SAFETY: every call gets null or invalid pointers and no-op arguments.
    let results: Vec<(&str, i32)> = unsafe {
        vec![
            (
                "settimeofday",
                errno(libc::syscall(libc::SYS_settimeofday, 0usize, 0usize)),
            ),
            (
                "clock_settime",
                errno(libc::syscall(
                    libc::SYS_clock_settime,
                    libc::CLOCK_REALTIME,
                    0usize,
                )),
            ),
            ("adjtimex", errno(libc::syscall(libc::SYS_adjtimex, 0usize))),
            (
                "keyctl",
                errno(libc::syscall(
                    libc::SYS_keyctl,
                    0,  /* KEYCTL_GET_KEYRING_ID */
                    -3, /* session */
                    0,
                )),
            ),
            (
                "add_key",
                errno(libc::syscall(
                    libc::SYS_add_key,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                    0,
                )),
            ),
            (
                "init_module",
                errno(libc::syscall(libc::SYS_init_module, 0usize, 0usize, 0usize)),
            ),
            (
                "finit_module",
                errno(libc::syscall(libc::SYS_finit_module, -1, 0usize, 0)),
            ),
            (
                "kexec_load",
                errno(libc::syscall(
                    libc::SYS_kexec_load,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )),
            ),
            (
                "bpf",
                errno(libc::syscall(
                    libc::SYS_bpf,
                    5, /* PROG_LOAD */
                    0usize,
                    0,
                )),
            ),
            (
                "perf_event_open",
                errno(libc::syscall(
                    libc::SYS_perf_event_open,
                    0usize,
                    0,
                    -1,
                    -1,
                    0,
                )),
            ),
            (
                "userfaultfd",
                errno(libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC)),
            ),
            (
                "io_uring_setup",
                errno(libc::syscall(libc::SYS_io_uring_setup, 0, 0usize)),
            ),
            (
                "unshare_user",
                errno(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)),
            ),
            (
                "unshare_net",
                errno(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNET)),
            ),
            ("setns", errno(libc::syscall(libc::SYS_setns, -1, 0))),
            (
                "mount",
                errno(libc::syscall(
                    libc::SYS_mount,
                    0usize,
                    0usize,
                    0usize,
                    0,
                    0usize,
                )),
            ),
            (
                "open_by_handle_at",
                errno(libc::syscall(libc::SYS_open_by_handle_at, -1, 0usize, 0)),
            ),
            (
                "ptrace",
                errno(libc::syscall(
                    libc::SYS_ptrace,
                    libc::PTRACE_ATTACH,
                    1,
                    0usize,
                    0usize,
                )),
            ),
            (
                "socket_alg",
                errno(libc::syscall(
                    libc::SYS_socket,
                    libc::AF_ALG,
                    libc::SOCK_SEQPACKET,
                    0,
                )),
            ),
            (
                "socket_vsock",
                errno(libc::syscall(
                    libc::SYS_socket,
                    libc::AF_VSOCK,
                    libc::SOCK_STREAM,
                    0,
                )),
            ),
            (
                "clone3",
                errno(libc::syscall(libc::SYS_clone3, 0usize, 0usize)),
            ),
            (
                "tiocsti",
                errno(libc::syscall(
                    libc::SYS_ioctl,
                    0,
                    libc::TIOCSTI,
                    &c as *const u8,
                )),
            ),
            (
                "tiocsti_high_bits",
                errno(libc::syscall(
                    libc::SYS_ioctl,
                    0,
                    tiocsti_high,
                    &c as *const u8,
                )),
            ),
        ]
    };
    for (name, e) in results {
        println!("{name}={e}");
    }
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array.
    unsafe { libc::pipe(fds.as_mut_ptr()) };
    (fds[0], fds[1])
}

fn facts() {
    let mut out = String::new();
    let mut put = |k: &str, v: String| {
        out.push_str(k);
        out.push('=');
        out.push_str(&v);
        out.push('\n');
    };
    if let Ok(dir) = std::fs::read_dir("/proc/self/ns") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(link) = std::fs::read_link(e.path()) {
                put(&format!("ns.{name}"), link.to_string_lossy().into_owned());
            }
        }
    }
    // SAFETY: id and pid getters cannot fail.
    unsafe {
        put("uid", libc::getuid().to_string());
        put("gid", libc::getgid().to_string());
        put("euid", libc::geteuid().to_string());
        put("pid", libc::getpid().to_string());
        put("ppid", libc::getppid().to_string());
        put("sid", libc::getsid(0).to_string());
        put("pgid", libc::getpgrp().to_string());
        put("umask", {
            let m = libc::umask(0);
            libc::umask(m);
            format!("{m:o}")
        });
    }
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    fds.sort_by_key(|f| f.parse::<i32>().unwrap_or(-1));
    // One of them is the directory being read; report each with its target.
    let described: Vec<String> = fds
        .iter()
        .filter_map(|f| {
            std::fs::read_link(format!("/proc/self/fd/{f}"))
                .ok()
                .map(|t| format!("{f}:{}", t.to_string_lossy()))
        })
        .filter(|d| !d.contains("/proc/") || !d.ends_with("/fd"))
        .collect();
    put("fds", described.join(","));
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            for key in [
                "CapInh",
                "CapPrm",
                "CapEff",
                "CapBnd",
                "CapAmb",
                "NoNewPrivs",
                "Seccomp",
                "SigBlk",
                "SigIgn",
                "SigCgt",
            ] {
                if let Some(v) = line.strip_prefix(key).and_then(|v| v.strip_prefix(':')) {
                    put(key, v.trim().to_owned());
                }
            }
        }
    }
    let tty = std::fs::File::open("/dev/tty");
    put(
        "ctty",
        match tty {
            Ok(_) => "yes".into(),
            Err(e) => format!("no:{}", e.raw_os_error().unwrap_or(0)),
        },
    );
    let mut name = [0u8; 128];
    // SAFETY: gethostname into a buffer of the given size.
    unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) };
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    put(
        "hostname",
        String::from_utf8_lossy(&name[..end]).into_owned(),
    );
    put("interfaces", interfaces());
    let env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| {
            format!(
                "{}={}",
                String::from_utf8_lossy(k.as_bytes()),
                String::from_utf8_lossy(v.as_bytes())
            )
        })
        .collect();
    put("env", env.join(";"));
    for (key, clock) in [
        ("monotonic", libc::CLOCK_MONOTONIC),
        ("boottime", libc::CLOCK_BOOTTIME),
    ] {
        // SAFETY: timespec is plain data; clock_gettime fills it.
        let ts = unsafe {
            let mut ts: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(clock, &mut ts);
            ts
        };
        put(key, ts.tv_sec.to_string());
    }
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a struct on the stack.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    put("nofile", format!("{}:{}", rl.rlim_cur, rl.rlim_max));
    put(
        "cwd",
        std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    );
    print!("{out}");
}

/// Every network interface with its flags, e.g. `lo:UP`.
fn interfaces() -> String {
    let mut list = Vec::new();
    // SAFETY: if_nameindex returns an array terminated by a zero entry, freed below; the
    // ioctl reads the flags of a named interface into an ifreq on the stack.
    unsafe {
        let ifs = libc::if_nameindex();
        if ifs.is_null() {
            return String::new();
        }
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        let mut p = ifs;
        while (*p).if_index != 0 {
            let name = std::ffi::CStr::from_ptr((*p).if_name);
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (i, b) in name.to_bytes().iter().take(15).enumerate() {
                ifr.ifr_name[i] = *b as libc::c_char;
            }
            let up = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut ifr) == 0
                && ifr.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short != 0;
            list.push(format!(
                "{}:{}",
                name.to_string_lossy(),
                if up { "UP" } else { "DOWN" }
            ));
            p = p.add(1);
        }
        libc::close(sock);
        libc::if_freenameindex(ifs);
    }
    list.join(",")
}

/// The errno of a raw system call's result (0 when it succeeded).
fn errno_of(r: libc::c_long) -> i32 {
    if r < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

/// A NUL-terminated copy of `s` for system calls.
fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap()
}

/// `open(path, flags)`: the errno (0 when it opened; the descriptor is closed again).
fn try_open(path: &str, flags: i32) -> i32 {
    let p = cstr(path);
    // SAFETY: open on a valid C string; a descriptor we get is closed at once.
    unsafe {
        let fd = libc::open(p.as_ptr(), flags | libc::O_CLOEXEC);
        let e = errno_of(fd as libc::c_long);
        if fd >= 0 {
            libc::close(fd);
        }
        e
    }
}

fn put(key: &str, value: impl std::fmt::Display) {
    println!("{key}={value}");
    let _ = std::io::stdout().flush();
}

/// One escape attempt, named by the tests (tests/escape/). Each is built so that it could not
/// change the host even if it succeeded: read-only subcodes, current values written back, a
/// process that exits at once, signals only inside a pid namespace.
fn attack(name: &str, args: &[String]) {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match name {
        // Console ioctls on a terminal of our own (a new pty): TIOCLINUX with a read-only
        // subcode (6, TIOCL_GETSHIFTSTATE), also with bits above the low 32 set; TIOCSTI
        // pushing a byte into our own pty.
        "tioclinux" => {
            // SAFETY: a pty pair of our own; ioctls on it with pointers to stack bytes.
            unsafe {
                let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
                put("ptmx", errno_of(master as libc::c_long));
                if master < 0 {
                    return;
                }
                libc::unlockpt(master);
                let mut buf = [0 as libc::c_char; 64];
                libc::ptsname_r(master, buf.as_mut_ptr(), buf.len());
                let slave = libc::open(buf.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
                put("pty", errno_of(slave as libc::c_long));
                let mut sub = 6u8;
                let high = libc::TIOCLINUX | 0xffff_ffff_0000_0000;
                for (key, fd, req) in [
                    ("tioclinux", slave, libc::TIOCLINUX),
                    ("tioclinux_high_bits", slave, high),
                    ("tioclinux_stdin", 0, libc::TIOCLINUX),
                ] {
                    sub = 6;
                    put(
                        key,
                        errno_of(libc::syscall(libc::SYS_ioctl, fd, req, &mut sub as *mut u8)),
                    );
                }
                let c = b'x';
                let sti_high = libc::TIOCSTI | 0x1_0000_0000;
                put(
                    "tiocsti_pty",
                    errno_of(libc::syscall(libc::SYS_ioctl, slave, libc::TIOCSTI, &c)),
                );
                put(
                    "tiocsti_pty_high_bits",
                    errno_of(libc::syscall(libc::SYS_ioctl, slave, sti_high, &c)),
                );
                let _ = sub;
            }
        }
        // Another process: a host pid given by the test (not in our pid namespace), and the
        // sandbox's init (pid 1), which holds what we do not.
        "ptrace" => {
            let host: libc::pid_t = arg(0).parse().unwrap_or(0);
            // SAFETY: ptrace, kill with signal 0, pidfd_open and process_vm_readv with a
            // one-byte buffer on the stack: none changes a process.
            unsafe {
                // An attach that worked is undone at once: wait for the tracee's stop, detach.
                let attach = |pid: libc::pid_t, req: libc::c_uint| {
                    let r = libc::syscall(libc::SYS_ptrace, req, pid, 0, 0);
                    if r == 0 {
                        if req == libc::PTRACE_SEIZE {
                            libc::syscall(libc::SYS_ptrace, libc::PTRACE_INTERRUPT, pid, 0, 0);
                        }
                        libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
                        libc::syscall(libc::SYS_ptrace, libc::PTRACE_DETACH, pid, 0, 0);
                    }
                    errno_of(r)
                };
                put("ptrace_host", attach(host, libc::PTRACE_ATTACH));
                put("ptrace_seize_host", attach(host, libc::PTRACE_SEIZE));
                put("ptrace_init", attach(1, libc::PTRACE_ATTACH));
                put("kill0_host", errno_of(libc::kill(host, 0) as libc::c_long));
                put(
                    "pidfd_open_host",
                    errno_of(libc::syscall(libc::SYS_pidfd_open, host, 0)),
                );
                let mut byte = 0u8;
                let local = libc::iovec {
                    iov_base: (&mut byte as *mut u8).cast(),
                    iov_len: 1,
                };
                let remote = libc::iovec {
                    iov_base: 0x40_0000 as *mut libc::c_void,
                    iov_len: 1,
                };
                put(
                    "process_vm_readv_init",
                    errno_of(libc::process_vm_readv(1, &local, 1, &remote, 1, 0) as libc::c_long),
                );
                put(
                    "proc_host",
                    try_open(&format!("/proc/{host}/status"), libc::O_RDONLY),
                );
                // The init may share its memory with the sandbox's caller: writing it would
                // write the caller's. One byte, at an address that is never mapped.
                put("mem_write_init", try_open("/proc/1/mem", libc::O_RDWR));
                let nowhere = libc::iovec {
                    iov_base: 8 as *mut libc::c_void,
                    iov_len: 1,
                };
                put(
                    "process_vm_writev_init",
                    errno_of(libc::process_vm_writev(1, &local, 1, &nowhere, 1, 0) as libc::c_long),
                );
            }
        }
        "io_uring" => {
            let mut params = [0u8; 120];
            // SAFETY: io_uring_setup with a zeroed io_uring_params on the stack (a ring we
            // would own and close); enter/register on an invalid descriptor.
            unsafe {
                let fd = libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr());
                put("io_uring_setup", errno_of(fd));
                if fd >= 0 {
                    libc::close(fd as i32);
                }
                put(
                    "io_uring_enter",
                    errno_of(libc::syscall(libc::SYS_io_uring_enter, -1, 0, 0, 0, 0, 0)),
                );
                put(
                    "io_uring_register",
                    errno_of(libc::syscall(libc::SYS_io_uring_register, -1, 0, 0, 0)),
                );
            }
        }
        "namespaces" => {
            let links = || -> String {
                let mut v: Vec<String> = std::fs::read_dir("/proc/self/ns")
                    .map(|d| {
                        d.flatten()
                            .filter_map(|e| std::fs::read_link(e.path()).ok())
                            .map(|l| l.to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                v.sort();
                v.join(",")
            };
            let before = links();
            for (key, flag) in [
                ("unshare_user", libc::CLONE_NEWUSER),
                ("unshare_mount", libc::CLONE_NEWNS),
                ("unshare_net", libc::CLONE_NEWNET),
                ("unshare_pid", libc::CLONE_NEWPID),
                ("unshare_ipc", libc::CLONE_NEWIPC),
                ("unshare_uts", libc::CLONE_NEWUTS),
                ("unshare_cgroup", libc::CLONE_NEWCGROUP),
                ("unshare_time", 0x80),
            ] {
                // SAFETY: unshare changes only this process's namespaces.
                put(
                    key,
                    errno_of(unsafe { libc::syscall(libc::SYS_unshare, flag) }),
                );
            }
            // clone with a namespace flag: a child, if one were made, exits at once.
            for (key, flag) in [
                ("clone_user", libc::CLONE_NEWUSER),
                ("clone_net", libc::CLONE_NEWNET),
            ] {
                // SAFETY: fork-like clone (no shared memory); the child only calls _exit.
                unsafe {
                    let pid = libc::syscall(
                        libc::SYS_clone,
                        (flag | libc::SIGCHLD) as libc::c_ulong,
                        0,
                        0,
                        0,
                        0,
                    );
                    if pid == 0 {
                        libc::_exit(0);
                    }
                    put(key, errno_of(pid));
                    if pid > 0 {
                        libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
                    }
                }
            }
            // clone3 with a namespace flag in its (memory) arguments.
            let mut cl = [0u64; 11];
            cl[0] = libc::CLONE_NEWUSER as u64;
            cl[4] = libc::SIGCHLD as u64;
            // SAFETY: as above; the clone_args struct lives on the stack.
            unsafe {
                let pid = libc::syscall(libc::SYS_clone3, cl.as_mut_ptr(), 88usize);
                if pid == 0 {
                    libc::_exit(0);
                }
                put("clone3_user", errno_of(pid));
                if pid > 0 {
                    libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
                }
            }
            // setns into namespaces we are already in (a no-op if it were allowed).
            for ns in ["net", "mnt", "user", "pid"] {
                let p = cstr(&format!("/proc/self/ns/{ns}"));
                // SAFETY: open, setns and close on our own descriptor.
                unsafe {
                    let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    put(
                        &format!("setns_{ns}"),
                        if fd < 0 {
                            -errno_of(-1)
                        } else {
                            errno_of(libc::syscall(libc::SYS_setns, fd, 0))
                        },
                    );
                    libc::close(fd);
                }
            }
            put("namespaces_unchanged", (links() == before) as i32);
        }
        // The mount APIs, old and new, on the sandbox's own view (its own mount namespace).
        "mount" => {
            let none = cstr("none");
            let tmp = cstr("/tmp");
            let tmpfs = cstr("tmpfs");
            let sysfs = cstr("sysfs");
            let root = cstr("/");
            let usr = cstr("/usr");
            let procsys = cstr("/proc/sys");
            let empty = cstr("");
            let dot = cstr(".");
            // SAFETY: mount-related calls with valid C strings and attribute structs on the
            // stack; every descriptor we might get is closed.
            unsafe {
                let z = std::ptr::null::<libc::c_void>();
                put(
                    "mount_tmpfs",
                    errno_of(
                        libc::mount(none.as_ptr(), tmp.as_ptr(), tmpfs.as_ptr(), 0, z)
                            as libc::c_long,
                    ),
                );
                put(
                    "mount_sysfs",
                    errno_of(
                        libc::mount(none.as_ptr(), tmp.as_ptr(), sysfs.as_ptr(), 0, z)
                            as libc::c_long,
                    ),
                );
                put(
                    "remount_usr_rw",
                    errno_of(libc::mount(
                        none.as_ptr(),
                        usr.as_ptr(),
                        z.cast(),
                        libc::MS_REMOUNT | libc::MS_BIND,
                        z,
                    ) as libc::c_long),
                );
                put(
                    "umount_proc_sys",
                    errno_of(libc::umount2(procsys.as_ptr(), libc::MNT_DETACH) as libc::c_long),
                );
                let closing = |r: libc::c_long| {
                    if r >= 0 {
                        libc::close(r as i32);
                    }
                    errno_of(r)
                };
                put(
                    "fsopen",
                    closing(libc::syscall(libc::SYS_fsopen, tmpfs.as_ptr(), 0)),
                );
                put(
                    "fspick",
                    closing(libc::syscall(
                        libc::SYS_fspick,
                        libc::AT_FDCWD,
                        tmp.as_ptr(),
                        0,
                    )),
                );
                put(
                    "open_tree",
                    closing(libc::syscall(
                        libc::SYS_open_tree,
                        libc::AT_FDCWD,
                        root.as_ptr(),
                        1, /* OPEN_TREE_CLONE */
                    )),
                );
                put(
                    "move_mount",
                    errno_of(libc::syscall(
                        libc::SYS_move_mount,
                        libc::AT_FDCWD,
                        usr.as_ptr(),
                        libc::AT_FDCWD,
                        tmp.as_ptr(),
                        0,
                    )),
                );
                // mount_attr { attr_set, attr_clr = MOUNT_ATTR_RDONLY, propagation, userns_fd }
                let attr = [0u64, 1, 0, 0];
                put(
                    "mount_setattr_rw",
                    errno_of(libc::syscall(
                        libc::SYS_mount_setattr,
                        libc::AT_FDCWD,
                        usr.as_ptr(),
                        0,
                        attr.as_ptr(),
                        32usize,
                    )),
                );
                put(
                    "pivot_root",
                    errno_of(libc::syscall(
                        libc::SYS_pivot_root,
                        dot.as_ptr(),
                        dot.as_ptr(),
                    )),
                );
                put(
                    "chroot",
                    errno_of(libc::chroot(tmp.as_ptr()) as libc::c_long),
                );
                let _ = empty;
            }
        }
        // The "shocker" escape: a file handle for inode 2 (a file system's root directory)
        // opened without a path.
        "handle" => {
            // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[] }
            let mut h = [0u32; 2 + 32];
            h[0] = 128;
            let mut mount_id = 0i32;
            let p = cstr("/etc/passwd");
            // SAFETY: the handle buffers are on the stack and large enough (128 bytes).
            unsafe {
                put(
                    "name_to_handle_at",
                    errno_of(libc::syscall(
                        libc::SYS_name_to_handle_at,
                        libc::AT_FDCWD,
                        p.as_ptr(),
                        h.as_mut_ptr(),
                        &mut mount_id,
                        0,
                    )),
                );
                let mut root = [0u32; 4];
                root[0] = 8; // handle_bytes
                root[1] = 1; // FILEID_INO32_GEN
                root[2] = 2; // inode 2, generation 0
                let dir = libc::open(cstr("/etc").as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                let fd = libc::syscall(
                    libc::SYS_open_by_handle_at,
                    dir,
                    root.as_mut_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                );
                put("open_by_handle_at", errno_of(fd));
                if fd >= 0 {
                    libc::close(fd as i32);
                }
                libc::close(dir);
            }
        }
        // Writing the binary we run as, the init's binary (a copy of the host's program
        // image), and the path given by the test.
        "exe" => {
            put("self_exe_write", try_open("/proc/self/exe", libc::O_WRONLY));
            put("self_exe_rdwr", try_open("/proc/self/exe", libc::O_RDWR));
            put("init_exe_write", try_open("/proc/1/exe", libc::O_WRONLY));
            put("init_exe_read", try_open("/proc/1/exe", libc::O_RDONLY));
            for (i, path) in args.iter().enumerate() {
                put(&format!("path{i}_write"), try_open(path, libc::O_WRONLY));
            }
        }
        // Descriptors open in this process: everything from 3 up (by fcntl, not by listing
        // a directory, which would open one).
        "fds" => {
            let mut open = Vec::new();
            for fd in 3..65536 {
                // SAFETY: F_GETFD only reads the descriptor flags.
                if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
                    open.push(fd.to_string());
                }
            }
            put("open_fds", open.join(","));
        }
        "keyring" => {
            let mut buf = [0u8; 256];
            let user = cstr("user");
            let desc = cstr("ringfence-escape-test");
            // SAFETY: keyring calls that read (describe) or act on keyrings private to this
            // process (-2: the process keyring); buffers on the stack.
            unsafe {
                put(
                    "keyctl_describe_session",
                    errno_of(libc::syscall(
                        libc::SYS_keyctl,
                        6,
                        -3,
                        buf.as_mut_ptr(),
                        256,
                    )),
                );
                put(
                    "keyctl_describe_user",
                    errno_of(libc::syscall(
                        libc::SYS_keyctl,
                        6,
                        -4,
                        buf.as_mut_ptr(),
                        256,
                    )),
                );
                put(
                    "add_key_process",
                    errno_of(libc::syscall(
                        libc::SYS_add_key,
                        user.as_ptr(),
                        desc.as_ptr(),
                        b"x".as_ptr(),
                        1,
                        -2,
                    )),
                );
                put(
                    "request_key",
                    errno_of(libc::syscall(
                        libc::SYS_request_key,
                        user.as_ptr(),
                        desc.as_ptr(),
                        0,
                        0,
                    )),
                );
            }
        }
        "userfaultfd" => {
            // SAFETY: a descriptor we would close at once.
            let fd =
                unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
            put("userfaultfd", errno_of(fd));
            if fd >= 0 {
                // SAFETY: closing our own descriptor.
                unsafe { libc::close(fd as i32) };
            }
            put(
                "dev_userfaultfd",
                try_open("/dev/userfaultfd", libc::O_RDWR),
            );
        }
        // Per-user kernel counters: make inotify instances until refused (at most ARG 0), say
        // how many, then hold them until stdin ends.
        "inotify-instances" => {
            let max: usize = arg(0).parse().unwrap_or(1024);
            let mut fds = Vec::new();
            let mut err = 0;
            while fds.len() < max {
                // SAFETY: a new descriptor of our own, closed below.
                let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
                if fd < 0 {
                    err = errno_of(-1);
                    break;
                }
                fds.push(fd);
            }
            put("instances", fds.len());
            put("inotify_errno", err);
            let mut b = [0u8; 64];
            while std::io::Read::read(&mut std::io::stdin(), &mut b).is_ok_and(|n| n > 0) {}
            for fd in fds {
                // SAFETY: closing our own descriptors.
                unsafe { libc::close(fd) };
            }
        }
        // The userfaultfd device: open it, then ask it for a userfaultfd with
        // USERFAULTFD_IOC_NEW (_IO(0xAA, 0)), also with bits above the low 32 set.
        "dev-userfaultfd" => {
            const USERFAULTFD_IOC_NEW: u64 = 0xAA00;
            let path = cstr("/dev/userfaultfd");
            // SAFETY: open of a C string; every descriptor is closed below.
            let dev = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
            put("open", errno_of(dev as libc::c_long));
            if dev < 0 {
                return;
            }
            for (key, req) in [
                ("ioc_new", USERFAULTFD_IOC_NEW),
                ("ioc_new_high_bits", USERFAULTFD_IOC_NEW | 0x1_0000_0000),
            ] {
                // SAFETY: an ioctl with an integer argument; a new descriptor is closed.
                let fd = unsafe { libc::syscall(libc::SYS_ioctl, dev, req, libc::O_CLOEXEC) };
                put(key, errno_of(fd));
                if fd >= 0 {
                    // SAFETY: closing our own descriptor.
                    unsafe { libc::close(fd as i32) };
                }
            }
            // SAFETY: closing our own descriptor.
            unsafe { libc::close(dev) };
        }
        "perf" => {
            // struct perf_event_attr, version 0 (64 bytes): a disabled software CPU clock of
            // this process.
            let mut attr = [0u64; 8];
            attr[0] = 1 | (64 << 32); // type PERF_TYPE_SOFTWARE, size 64
            attr[5] = 1; // disabled
            // SAFETY: the attribute struct is on the stack; a descriptor would be closed.
            unsafe {
                let fd = libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0);
                put("perf_event_open", errno_of(fd));
                if fd >= 0 {
                    libc::close(fd as i32);
                }
            }
        }
        "bpf" => {
            // BPF_MAP_CREATE: an array of one 4-byte value; BPF_PROG_LOAD: a socket filter
            // returning 0 (`r0 = 0; exit`).
            let map = [2u32, 4, 4, 1, 0, 0, 0, 0];
            let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
            let license = cstr("GPL");
            let mut prog = [0u64; 16];
            prog[0] = 1; // prog_type BPF_PROG_TYPE_SOCKET_FILTER, insn_cnt 0 (set below)
            prog[0] |= 2 << 32;
            prog[1] = insns.as_ptr() as u64;
            prog[2] = license.as_ptr() as u64;
            // SAFETY: attribute unions on the stack; descriptors we would close.
            unsafe {
                for (key, cmd, attr, size) in [
                    ("bpf_map_create", 0, map.as_ptr().cast::<u8>(), 32usize),
                    ("bpf_prog_load", 5, prog.as_ptr().cast::<u8>(), 128usize),
                ] {
                    let fd = libc::syscall(libc::SYS_bpf, cmd, attr, size);
                    put(key, errno_of(fd));
                    if fd >= 0 {
                        libc::close(fd as i32);
                    }
                }
            }
        }
        "modules" => {
            let empty = cstr("");
            let name = cstr("ringfence_no_such_module");
            // SAFETY: module calls with an empty image, a file that is no module (our own
            // binary) and a module name that does not exist.
            unsafe {
                put(
                    "init_module",
                    errno_of(libc::syscall(
                        libc::SYS_init_module,
                        std::ptr::null::<u8>(),
                        0,
                        empty.as_ptr(),
                    )),
                );
                let fd = libc::open(cstr("/proc/self/exe").as_ptr(), libc::O_RDONLY);
                put(
                    "finit_module",
                    errno_of(libc::syscall(libc::SYS_finit_module, fd, empty.as_ptr(), 0)),
                );
                libc::close(fd);
                put(
                    "delete_module",
                    errno_of(libc::syscall(
                        libc::SYS_delete_module,
                        name.as_ptr(),
                        libc::O_NONBLOCK,
                    )),
                );
            }
        }
        "sockets" => sockets(),
        // The clock, with values that change nothing: settimeofday(NULL, NULL), the tick the
        // host has now (given by the test), and the current time read just before.
        "clock" => {
            let tick: i64 = arg(0).parse().unwrap_or(10_000);
            // SAFETY: timex and timespec structs on the stack.
            unsafe {
                put(
                    "settimeofday_null",
                    errno_of(libc::syscall(libc::SYS_settimeofday, 0, 0)),
                );
                let mut tx: libc::timex = std::mem::zeroed();
                tx.modes = libc::ADJ_TICK;
                tx.tick = tick;
                put(
                    "adjtimex_tick",
                    errno_of(libc::syscall(libc::SYS_adjtimex, &mut tx)),
                );
                let mut tx: libc::timex = std::mem::zeroed();
                put(
                    "adjtimex_read",
                    errno_of(libc::syscall(libc::SYS_adjtimex, &mut tx)),
                );
                let mut tx: libc::timex = std::mem::zeroed();
                tx.modes = libc::ADJ_TICK;
                tx.tick = tick;
                put(
                    "clock_adjtime_tick",
                    errno_of(libc::syscall(
                        libc::SYS_clock_adjtime,
                        libc::CLOCK_REALTIME,
                        &mut tx,
                    )),
                );
                let mut ts: libc::timespec = std::mem::zeroed();
                libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
                put(
                    "clock_settime_now",
                    errno_of(libc::syscall(
                        libc::SYS_clock_settime,
                        libc::CLOCK_REALTIME,
                        &ts,
                    )),
                );
            }
        }
        // Kernel settings: each file is opened for writing, and only if that worked, its
        // current content is written back. sysrq-trigger is never written.
        "sysfiles" => {
            for (key, path) in [
                ("core_pattern", "/proc/sys/kernel/core_pattern"),
                ("proc_hostname", "/proc/sys/kernel/hostname"),
                ("panic", "/proc/sys/kernel/panic"),
                ("sys_profiling", "/sys/kernel/profiling"),
                ("sys_rcu_expedited", "/sys/kernel/rcu_expedited"),
            ] {
                let current = std::fs::read(path);
                put(
                    &format!("{key}_read"),
                    current
                        .as_ref()
                        .map(|_| 0)
                        .unwrap_or_else(|e| e.raw_os_error().unwrap_or(0)),
                );
                let w = std::fs::OpenOptions::new().write(true).open(path);
                put(
                    key,
                    match w {
                        Ok(mut f) => {
                            if let Ok(c) = &current {
                                let _ = f.write_all(c);
                            }
                            0
                        }
                        Err(e) => e.raw_os_error().unwrap_or(0),
                    },
                );
            }
            put(
                "sysrq_trigger",
                try_open("/proc/sysrq-trigger", libc::O_WRONLY),
            );
        }
        "devices" => {
            for (key, path, dev) in [
                ("mknod_mem", "/tmp/ringfence-mem", libc::makedev(1, 1)),
                ("mknod_kmsg", "/tmp/ringfence-kmsg", libc::makedev(1, 11)),
                ("mknod_dev_mem", "/dev/ringfence-mem", libc::makedev(1, 1)),
            ] {
                let p = cstr(path);
                // SAFETY: mknod on a C string; a node we made is removed at once.
                unsafe {
                    let r = libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o600, dev);
                    put(key, errno_of(r as libc::c_long));
                    if r == 0 {
                        put(&format!("{key}_open"), try_open(path, libc::O_RDONLY));
                        libc::unlink(p.as_ptr());
                    }
                }
            }
            put("dev_mem", try_open("/dev/mem", libc::O_RDONLY));
            put("dev_kmem", try_open("/dev/kmem", libc::O_RDONLY));
            put("dev_port", try_open("/dev/port", libc::O_RDONLY));
            put("dev_kmsg", try_open("/dev/kmsg", libc::O_RDONLY));
            put("dev_sda", try_open("/dev/sda", libc::O_RDONLY));
            put("dev_null", try_open("/dev/null", libc::O_RDWR));
        }
        // Capabilities: what this process has, and what it can raise.
        "caps" => {
            if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
                for line in status.lines() {
                    for key in [
                        "CapInh",
                        "CapPrm",
                        "CapEff",
                        "CapBnd",
                        "CapAmb",
                        "NoNewPrivs",
                    ] {
                        if let Some(v) = line.strip_prefix(key).and_then(|v| v.strip_prefix(':')) {
                            put(key, v.trim());
                        }
                    }
                }
            }
            // SAFETY: prctl and capset with structs on the stack.
            unsafe {
                put("euid", libc::geteuid());
                put(
                    "ambient_raise",
                    errno_of(
                        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, 13, 0, 0)
                            as libc::c_long,
                    ),
                );
                // capset: all of the first 32 capabilities, effective and permitted.
                let hdr = [0x2008_0522u32, 0];
                let data = [u32::MAX, u32::MAX, 0, 0, 0, 0];
                put(
                    "capset_all",
                    errno_of(libc::syscall(libc::SYS_capset, hdr.as_ptr(), data.as_ptr())),
                );
                put(
                    "setuid0",
                    errno_of(libc::syscall(libc::SYS_setresuid, 0, 0, 0)),
                );
                put(
                    "clear_no_new_privs",
                    errno_of(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0) as libc::c_long),
                );
            }
        }
        // Fork children that sleep until fork fails; print how many and the errno.
        "forkbomb" => {
            let mut n = 0u32;
            let errno = loop {
                // SAFETY: the child only sleeps and exits.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: async-signal-safe calls only.
                    unsafe {
                        libc::sleep(60);
                        libc::_exit(0);
                    }
                }
                if pid < 0 {
                    break errno_of(-1);
                }
                n += 1;
                if n >= 100_000 {
                    break 0;
                }
            };
            put("forked", n);
            put("fork_errno", errno);
        }
        // Touch memory 1 MiB at a time, up to ARG MiB, reporting progress.
        "hog" => {
            let max: usize = arg(0).parse().unwrap_or(1024);
            for i in 0..max {
                // SAFETY: an anonymous private mapping, written page by page, never unmapped
                // (the point is to hold it).
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        1 << 20,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                if p == libc::MAP_FAILED {
                    put("hog_errno", errno_of(-1));
                    put("hog_mib", i);
                    return;
                }
                for off in (0..1 << 20).step_by(4096) {
                    // SAFETY: inside the mapping just made.
                    unsafe { *(p as *mut u8).add(off) = 1 };
                }
                if i % 8 == 0 {
                    put("mib", i + 1);
                }
            }
            put("hog_mib", max);
        }
        // Write 1 MiB blocks to a file until the file system refuses.
        "fill" => {
            let path = if arg(0).is_empty() {
                "/tmp/fill"
            } else {
                arg(0)
            };
            let block = vec![b'f'; 1 << 20];
            let mut f = std::fs::File::create(path).unwrap();
            let mut written = 0u64;
            let errno = loop {
                match f.write(&block) {
                    Ok(0) => break 0,
                    Ok(n) => written += n as u64,
                    Err(e) => break e.raw_os_error().unwrap_or(0),
                }
                if written > 1 << 34 {
                    break 0;
                }
            };
            put("written", written);
            put("fill_errno", errno);
        }
        // Close stdin, stdout and stderr, then go on for a moment and exit normally.
        "close-stdio" => {
            // SAFETY: closing our own standard descriptors; nothing writes to them after.
            unsafe {
                libc::close(0);
                libc::close(1);
                libc::close(2);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        "spin" => {
            put("spinning", 1);
            #[allow(clippy::empty_loop)]
            loop {}
        }
        // Reach listeners of the host: an abstract unix socket (ARG 0) and TCP on 127.0.0.1
        // (port ARG 1).
        "connect" => {
            use std::os::linux::net::SocketAddrExt;
            let addr =
                std::os::unix::net::SocketAddr::from_abstract_name(arg(0).as_bytes()).unwrap();
            put(
                "abstract_unix",
                match std::os::unix::net::UnixStream::connect_addr(&addr) {
                    Ok(_) => 0,
                    Err(e) => e.raw_os_error().unwrap_or(-1),
                },
            );
            let port: u16 = arg(1).parse().unwrap_or(1);
            put(
                "tcp_loopback",
                match std::net::TcpStream::connect(("127.0.0.1", port)) {
                    Ok(_) => 0,
                    Err(e) => e.raw_os_error().unwrap_or(-1),
                },
            );
            put(
                "tcp_host_ip",
                match arg(2).parse::<std::net::IpAddr>() {
                    Ok(ip) => match std::net::TcpStream::connect((ip, port)) {
                        Ok(_) => 0,
                        Err(e) => e.raw_os_error().unwrap_or(-1),
                    },
                    Err(_) => -1,
                },
            );
        }
        // kill(-1, SIGKILL), only where it cannot reach the host: in a pid namespace other
        // than the host's (ARG 0, e.g. `pid:[4026531836]`), checked first. A victim of our
        // own shows that the signal was really sent.
        "kill-all" => {
            let ours = std::fs::read_link("/proc/self/ns/pid")
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            if ours.is_empty() || ours == arg(0) {
                put("refused", "not-in-a-pid-namespace");
                std::process::exit(3);
            }
            // SAFETY: the victim only sleeps; kill(-1) only after the check above.
            unsafe {
                let victim = libc::fork();
                if victim == 0 {
                    libc::sleep(60);
                    libc::_exit(0);
                }
                put(
                    "kill_all",
                    errno_of(libc::kill(-1, libc::SIGKILL) as libc::c_long),
                );
                let mut status = 0;
                libc::waitpid(victim, &mut status, 0);
                put(
                    "victim_signal",
                    if libc::WIFSIGNALED(status) {
                        libc::WTERMSIG(status)
                    } else {
                        0
                    },
                );
            }
        }
        // The caller of a sandbox without pid namespace, through /proc/$PPID: its memory (opened
        // read-write, nothing written), environment, descriptors and binary.
        "parent-proc" => {
            // SAFETY: getppid has no arguments.
            let ppid = unsafe { libc::getppid() };
            put("ppid", ppid);
            for (key, file, flags) in [
                ("mem_rw", "mem", libc::O_RDWR),
                ("environ", "environ", libc::O_RDONLY),
                ("fd0", "fd/0", libc::O_RDONLY),
                ("exe", "exe", libc::O_PATH),
            ] {
                let path = cstr(&format!("/proc/{ppid}/{file}"));
                // SAFETY: open of a C string; the descriptor is closed at once.
                let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
                put(key, errno_of(fd as libc::c_long));
                if fd >= 0 {
                    // SAFETY: closes the descriptor opened above.
                    unsafe { libc::close(fd) };
                }
            }
            put(
                "fd0_link",
                match std::fs::read_link(format!("/proc/{ppid}/fd/0")) {
                    Ok(_) => 0,
                    Err(e) => e.raw_os_error().unwrap_or(-1),
                },
            );
        }
        // The sandbox's init: what its command line and environment show.
        "init-strings" => {
            let show = |b: Vec<u8>| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_owned()
            };
            match std::fs::read("/proc/1/cmdline") {
                Ok(b) => put("cmdline", show(b)),
                Err(e) => put("cmdline_errno", e.raw_os_error().unwrap_or(0)),
            }
            match std::fs::read("/proc/1/environ") {
                Ok(b) => put("environ", show(b)),
                Err(e) => put("environ_errno", e.raw_os_error().unwrap_or(0)),
            }
        }
        // Watch for processes entering the sandbox (`exec`) until stdin ends, and try to reach
        // each one through /proc: stop it (SIGSTOP, so its setup waits), open its binary
        // (compared with ARG 0 = "dev:ino" of the caller's binary), read its environment
        // (looking for ARG 1, a secret of the caller), open its memory read-write, list its
        // descriptors and open its stdin; then let it go on (SIGCONT). Prints counts.
        "exec-window" => {
            use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
            use std::sync::atomic::{AtomicBool, Ordering};
            static DONE: AtomicBool = AtomicBool::new(false);
            let host_exe = arg(0).to_owned();
            let secret = arg(1).as_bytes().to_vec();
            // SAFETY: getpid has no arguments.
            let me = unsafe { libc::getpid() };
            let pids = || -> Vec<i32> {
                std::fs::read_dir("/proc")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            };
            let mut seen: std::collections::HashSet<i32> = pids().into_iter().collect();
            std::thread::spawn(|| {
                let mut b = [0u8; 64];
                while std::io::Read::read(&mut std::io::stdin(), &mut b).is_ok_and(|n| n > 0) {}
                DONE.store(true, Ordering::SeqCst);
            });
            put("ready", 1);
            let mut counts: std::collections::BTreeMap<&str, u32> = [
                "seen",
                "stopped",
                "exe_host",
                "exe_other",
                "environ_read",
                "environ_secret",
                "mem_rw",
                "fd0_link",
                "fd0",
            ]
            .into_iter()
            .map(|k| (k, 0))
            .collect();
            while !DONE.load(Ordering::SeqCst) {
                for pid in pids() {
                    if pid == me || pid == 1 || !seen.insert(pid) {
                        continue;
                    }
                    *counts.get_mut("seen").unwrap() += 1;
                    // SAFETY: signals a process of this sandbox's pid namespace.
                    let stopped = unsafe { libc::kill(pid, libc::SIGSTOP) } == 0;
                    if stopped {
                        *counts.get_mut("stopped").unwrap() += 1;
                    }
                    let dir = format!("/proc/{pid}");
                    if let Ok(f) = std::fs::File::options()
                        .read(true)
                        .custom_flags(libc::O_PATH)
                        .open(format!("{dir}/exe"))
                    {
                        let m = f.metadata().ok();
                        let id = m
                            .map(|m| format!("{}:{}", m.dev(), m.ino()))
                            .unwrap_or_default();
                        *counts
                            .get_mut(if id == host_exe {
                                "exe_host"
                            } else {
                                "exe_other"
                            })
                            .unwrap() += 1;
                    }
                    if let Ok(env) = std::fs::read(format!("{dir}/environ")) {
                        *counts.get_mut("environ_read").unwrap() += 1;
                        if !secret.is_empty() && env.windows(secret.len()).any(|w| w == secret) {
                            *counts.get_mut("environ_secret").unwrap() += 1;
                        }
                    }
                    if std::fs::File::options()
                        .read(true)
                        .write(true)
                        .open(format!("{dir}/mem"))
                        .is_ok()
                    {
                        *counts.get_mut("mem_rw").unwrap() += 1;
                    }
                    if std::fs::read_link(format!("{dir}/fd/0")).is_ok() {
                        *counts.get_mut("fd0_link").unwrap() += 1;
                    }
                    if std::fs::File::open(format!("{dir}/fd/0")).is_ok() {
                        *counts.get_mut("fd0").unwrap() += 1;
                    }
                    if stopped {
                        // SAFETY: as above.
                        unsafe { libc::kill(pid, libc::SIGCONT) };
                    }
                }
            }
            for (k, v) in counts {
                put(k, v);
            }
        }
        // Every environment this process can read: its own and every /proc/PID/environ.
        "environ" => {
            let env: Vec<String> = std::env::vars_os()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                .collect();
            put("self", env.join(";"));
            for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.parse::<u32>().is_err() {
                    continue;
                }
                match std::fs::read(e.path().join("environ")) {
                    Ok(b) => put(
                        &format!("environ_{name}"),
                        String::from_utf8_lossy(&b).replace('\0', ";"),
                    ),
                    Err(err) => put(
                        &format!("environ_{name}_errno"),
                        err.raw_os_error().unwrap_or(0),
                    ),
                }
            }
        }
        // Landlock: move or link files between a read-write directory (ARG 0) and a
        // read-only one (ARG 1).
        "landlock" => {
            let rw = arg(0);
            let ro = arg(1);
            let io = |r: std::io::Result<()>| match r {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(-1),
            };
            put("write_rw", io(std::fs::write(format!("{rw}/mine"), "x")));
            put(
                "write_ro",
                io(std::fs::write(format!("{ro}/file"), "changed")),
            );
            put(
                "rename_rw_to_ro",
                io(std::fs::rename(format!("{rw}/mine"), format!("{ro}/mine"))),
            );
            put(
                "rename_ro_to_rw",
                io(std::fs::rename(
                    format!("{ro}/file"),
                    format!("{rw}/stolen"),
                )),
            );
            put(
                "link_rw_to_ro",
                io(std::fs::hard_link(
                    format!("{rw}/mine"),
                    format!("{ro}/linked"),
                )),
            );
            put(
                "link_ro_to_rw",
                io(std::fs::hard_link(
                    format!("{ro}/file"),
                    format!("{rw}/linked"),
                )),
            );
            put(
                "rename_dir_rw_to_ro",
                io(std::fs::create_dir(format!("{rw}/d"))
                    .and_then(|_| std::fs::rename(format!("{rw}/d"), format!("{ro}/d")))),
            );
            let a = cstr(&format!("{rw}/mine"));
            let b = cstr(&format!("{ro}/file"));
            // SAFETY: renameat2 on two C strings.
            put(
                "exchange_rw_ro",
                errno_of(unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                }),
            );
            put(
                "ro_unchanged",
                (std::fs::read(format!("{ro}/file")).ok() == Some(b"original".to_vec())) as i32,
            );
        }
        // Swap a directory (ARG 0) with a symlink to a host path (ARG 1) for ARG 2 rounds,
        // racing against sandboxes that mount into it.
        "swap" => {
            let dir = arg(0);
            let rounds: u64 = arg(2).parse().unwrap_or(100_000);
            let real = format!("{dir}.real");
            let link = format!("{dir}.link");
            std::fs::create_dir_all(&real).unwrap();
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(arg(1), &link).unwrap();
            let _ = std::fs::rename(&real, dir);
            put("ready", 1);
            let (a, b) = (cstr(dir), cstr(&link));
            let mut swaps = 0u64;
            for _ in 0..rounds {
                // SAFETY: renameat2 on two C strings.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                if r == 0 {
                    swaps += 1;
                }
            }
            put("swaps", swaps);
        }
        other => {
            eprintln!("rf-inspect: unknown attack {other:?}");
            std::process::exit(2);
        }
    }
}

/// Socket families a sandbox should not reach, and what the netlink ones can do.
fn sockets() {
    // SAFETY: socket/bind/sendto with structs on the stack; descriptors are closed.
    unsafe {
        let open = |family: i32, ty: i32, proto: i32| {
            let fd = libc::socket(family, ty | libc::SOCK_CLOEXEC, proto);
            (errno_of(fd as libc::c_long), fd)
        };
        for (key, family, ty, proto) in [
            ("af_alg", libc::AF_ALG, libc::SOCK_SEQPACKET, 0),
            ("af_vsock", libc::AF_VSOCK, libc::SOCK_STREAM, 0),
            ("af_kcm", 41, libc::SOCK_DGRAM, 0),
            (
                "af_packet",
                libc::AF_PACKET,
                libc::SOCK_RAW,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            ),
            (
                "af_inet_raw",
                libc::AF_INET,
                libc::SOCK_RAW,
                libc::IPPROTO_ICMP,
            ),
        ] {
            let (e, fd) = open(family, ty, proto);
            put(key, e);
            if fd >= 0 {
                libc::close(fd);
            }
        }
        // Netlink audit: a user message to the host's audit log.
        let (e, fd) = open(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT);
        put("netlink_audit", e);
        if fd >= 0 {
            // nlmsghdr (16 bytes) + "ringfence": AUDIT_USER (1005), NLM_F_REQUEST|NLM_F_ACK.
            let mut msg = [0u8; 28];
            let len = msg.len() as u32;
            msg[0..4].copy_from_slice(&len.to_ne_bytes());
            msg[4..6].copy_from_slice(&1005u16.to_ne_bytes());
            msg[6..8].copy_from_slice(&5u16.to_ne_bytes());
            msg[16..25].copy_from_slice(b"ringfence");
            let mut to: libc::sockaddr_nl = std::mem::zeroed();
            to.nl_family = libc::AF_NETLINK as u16;
            let r = libc::sendto(
                fd,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            );
            put("netlink_audit_send", errno_of(r as libc::c_long));
            // The answer (an ack with an error code, when sending worked).
            let mut buf = [0u8; 256];
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT);
            let code = if n >= 20 {
                -i32::from_ne_bytes(buf[16..20].try_into().unwrap())
            } else {
                -1
            };
            put("netlink_audit_ack", code);
            libc::close(fd);
        }
        // Netlink uevents: the host's device events.
        let (e, fd) = open(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM,
            libc::NETLINK_KOBJECT_UEVENT,
        );
        put("netlink_uevent", e);
        if fd >= 0 {
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as u16;
            sa.nl_groups = 1;
            let r = libc::bind(
                fd,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            );
            put("netlink_uevent_bind", errno_of(r as libc::c_long));
            libc::close(fd);
        }
        // Netlink route: allowed, but it only sees the sandbox's own network namespace.
        let (e, fd) = open(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE);
        put("netlink_route", e);
        if fd >= 0 {
            libc::close(fd);
        }
    }
    put("interfaces", interfaces());
}
