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
            let data = vec![b'x'; num(2) as usize];
            std::io::stdout().write_all(&data).unwrap();
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
