//! Syscall overhead of seccomp filters: a tight loop of `getppid()`, `ioctl(pipe, FIONREAD)`
//! and `socket(AF_UNIX, SOCK_STREAM)` + `close`, each
//!
//! - `unfiltered`;
//! - under `allow-1insn`: one filter of one instruction, `ret ALLOW` (the floor: what any
//!   filter costs when the kernel's action cache lets every call through);
//! - under `ringfence-default`: [`Profile::default_container`] compiled by ringfence (one
//!   filter: the profile with ringfence's guard merged in);
//! - under `default-libseccomp`: the same preset's rules compiled by libseccomp, after
//!   ringfence's guard as a filter of its own (the same rules, another compiler);
//! - under `docker-libseccomp`: Docker's default profile (`docker-default.json` in the shared
//!   profile directory), compiled by libseccomp through its Python binding (Debian's
//!   python3-seccomp, driven by `tests/data/libseccomp_bpf.py`): one filter, as runc installs
//!   it; both libseccomp variants are skipped with a message when no python3 can
//!   `import seccomp`;
//! - under `docker-ringfence`: the same profile compiled by ringfence
//!   ([`Profile::from_oci_json_with`]; one filter, the guard merged in).
//!
//! Both Docker variants get the same rules: ringfence's importer resolves the JSON (for Docker's
//! default capability set, the running kernel and this architecture) and both compilers build
//! a filter from that rule list, so the comparison is between the compilers.
//!
//! A seccomp filter cannot be removed, so each variant has a worker thread of its own that sets
//! `no_new_privs` and installs the filter on itself only (no `TSYNC`), then runs the timed
//! loops it is asked for and sends the elapsed time back (criterion's `iter_custom`). All
//! workers are pinned to the same CPU.
//!
//! Everything is in one criterion group (`syscalls`). After it, a full run (no criterion
//! arguments) times every variant again in interleaved rounds (each round runs each variant
//! once, so drift in the machine's speed hits all alike) and prints a table: criterion's
//! median and its ratio to `unfiltered`, the interleaved ratios to `unfiltered` and to the
//! same profile compiled by libseccomp (for the two ringfence-compiled stacks), the number of BPF instructions the kernel runs for one iteration, and
//! whether the kernel's action cache (Linux ≥ 5.11) lets the call skip the filters altogether.
//! See docs/BENCHMARKS.md.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion};
use ringfence::seccomp::Insn;
use ringfence::{Arch, CmpOp, Profile, Syscall};

/// The syscalls timed, one loop each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// `getppid()`: no argument to check; allowed by every profile here.
    Getppid,
    /// `ioctl(fd, FIONREAD, &n)` on a pipe: ringfence's guard checks `ioctl`'s request.
    Ioctl,
    /// `socket(AF_UNIX, SOCK_STREAM, 0)` then `close`: both profiles check the family.
    Socket,
}

impl Call {
    const ALL: [Call; 3] = [Call::Getppid, Call::Ioctl, Call::Socket];

    fn name(self) -> &'static str {
        match self {
            Call::Getppid => "getppid",
            Call::Ioctl => "ioctl-fionread",
            Call::Socket => "socket-close",
        }
    }

    /// The syscalls one iteration makes, with the arguments the filter sees.
    fn made(self, fd: i32) -> Vec<(&'static str, [u64; 6])> {
        match self {
            Call::Getppid => vec![("getppid", [0; 6])],
            Call::Ioctl => vec![("ioctl", [fd as u64, libc::FIONREAD, 0, 0, 0, 0])],
            Call::Socket => vec![
                (
                    "socket",
                    [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
                ),
                ("close", [3, 0, 0, 0, 0, 0]),
            ],
        }
    }
}

/// A filter stack to benchmark under.
struct Variant {
    name: &'static str,
    /// Programs in installation order (empty: unfiltered).
    programs: Vec<Vec<Insn>>,
}

fn data_dir() -> PathBuf {
    std::env::var_os("RINGFENCE_SECCOMP_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/seccomp"),
        PathBuf::from,
    )
}

/// Raw `struct sock_filter` bytes (native endianness) as instructions.
fn insns(bytes: &[u8]) -> Vec<Insn> {
    bytes
        .chunks_exact(8)
        .map(|b| Insn {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect()
}

/// A profile compiled by ringfence, through the raw bytes it exports.
fn ringfence_programs(p: &Profile) -> Result<Vec<Vec<Insn>>, String> {
    let compiled = p.compile().map_err(|e| e.to_string())?;
    Ok(compiled.to_bytes().iter().map(|b| insns(b)).collect())
}

/// Docker's default capabilities (moby's `oci/caps/defaults.go`): the profile's
/// `includes`/`excludes` are resolved for a container that has these, not for the caller.
#[cfg(feature = "serde")]
const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

#[cfg(feature = "serde")]
fn docker_profile() -> Result<Profile, String> {
    use ringfence::seccomp::ImportOptions;
    let path = data_dir().join("docker-default.json");
    let json = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {}: {e} (set RINGFENCE_SECCOMP_DATA)",
            path.display()
        )
    })?;
    let opts = ImportOptions::running_system().caps(DOCKER_DEFAULT_CAPS.iter().copied());
    Profile::from_oci_json_with(&json, &opts).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(not(feature = "serde"))]
fn docker_profile() -> Result<Profile, String> {
    Err("built without the `serde` feature (no OCI import)".into())
}

/// A python3 that can `import seccomp`.
fn python_with_seccomp() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import seccomp"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The input of `tests/data/libseccomp_bpf.py` for `p` (see that script), with ringfence's
/// 32-bit comparisons given as `MASKED_EQ` on the low 32 bits, as the differential test does.
fn libseccomp_spec(p: &Profile) -> Result<String, String> {
    let mut rules = Vec::new();
    for r in p.rules() {
        let mut args = Vec::new();
        for c in r.conds() {
            let (op, value, datum) = match (c.op(), c.is_32bit()) {
                (CmpOp::Eq, true) => ("MASKED_EQ", 0xffff_ffff, c.value()),
                (CmpOp::MaskedEq(m), true) => ("MASKED_EQ", m & 0xffff_ffff, c.value()),
                (_, true) => return Err(format!("no libseccomp equivalent for {c:?}")),
                (CmpOp::Eq, _) => ("EQ", c.value(), 0),
                (CmpOp::Ne, _) => ("NE", c.value(), 0),
                (CmpOp::Lt, _) => ("LT", c.value(), 0),
                (CmpOp::Le, _) => ("LE", c.value(), 0),
                (CmpOp::Gt, _) => ("GT", c.value(), 0),
                (CmpOp::Ge, _) => ("GE", c.value(), 0),
                (CmpOp::MaskedEq(m), _) => ("MASKED_EQ", m, c.value()),
                (op, _) => return Err(format!("no libseccomp equivalent for {op:?}")),
            };
            args.push(format!(
                r#"{{"index":{},"op":"{op}","value":{value},"datum":{datum}}}"#,
                c.index()
            ));
        }
        rules.push(format!(
            r#"{{"nr":{},"action":{},"args":[{}]}}"#,
            r.syscall().nr(),
            r.action().to_ret(),
            args.join(",")
        ));
    }
    Ok(format!(
        r#"{{"default":{},"rules":[{}]}}"#,
        p.get_default_action().to_ret(),
        rules.join(",")
    ))
}

/// `p` compiled by libseccomp: one program.
fn libseccomp_program(python: &str, p: &Profile) -> Result<Vec<Insn>, String> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/libseccomp_bpf.py");
    let out = std::env::temp_dir().join(format!(
        "ringfence-bench-syscalls-{}.bpf",
        std::process::id()
    ));
    let spec = libseccomp_spec(p)?;
    let mut child = std::process::Command::new(python)
        .arg(&script)
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(spec.as_bytes())
        .map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&out);
    let _ = std::fs::remove_file(&out);
    if !status.success() {
        return Err(format!("{} failed: {status}", script.display()));
    }
    Ok(insns(&bytes.map_err(|e| e.to_string())?))
}

/// Sets `no_new_privs` on the calling thread and installs `programs` on it, in order.
fn install_on_this_thread(programs: &[Vec<Insn>]) -> Result<(), String> {
    if programs.is_empty() {
        return Ok(());
    }
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only; it affects this thread.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "PR_SET_NO_NEW_PRIVS: {}",
            std::io::Error::last_os_error()
        ));
    }
    for (i, p) in programs.iter().enumerate() {
        let filter: Vec<libc::sock_filter> = p
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        let len = u16::try_from(filter.len()).map_err(|_| "program too long".to_string())?;
        let fprog = libc::sock_fprog {
            len,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points to `filter`, alive for the call; the kernel copies the program.
        // Flags 0: this thread only (no TSYNC), no listener.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(format!(
                "seccomp(SET_MODE_FILTER) of program {i}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// One timed loop of `iters` iterations of `call`.
fn run_loop(call: Call, fd: i32, iters: u64) -> Duration {
    let start = Instant::now();
    match call {
        Call::Getppid => {
            for _ in 0..iters {
                // SAFETY: getppid takes no argument and cannot fail.
                black_box(unsafe { libc::syscall(libc::SYS_getppid) });
            }
        }
        Call::Ioctl => {
            let mut n: libc::c_int = 0;
            for _ in 0..iters {
                // SAFETY: FIONREAD writes one int through the pointer, which is valid.
                black_box(unsafe {
                    libc::syscall(
                        libc::SYS_ioctl,
                        black_box(fd),
                        libc::FIONREAD,
                        &mut n as *mut libc::c_int,
                    )
                });
            }
        }
        Call::Socket => {
            for _ in 0..iters {
                // SAFETY: plain integer arguments; the new descriptor is closed right away.
                unsafe {
                    let s = libc::syscall(
                        libc::SYS_socket,
                        black_box(libc::AF_UNIX),
                        libc::SOCK_STREAM,
                        0,
                    );
                    black_box(libc::syscall(libc::SYS_close, s));
                }
            }
        }
    }
    start.elapsed()
}

/// Checks once that every call succeeds on this (filtered) thread.
fn check_calls(fd: i32) -> Result<(), String> {
    let err = |what: &str| format!("{what} fails here: {}", std::io::Error::last_os_error());
    // SAFETY: as in `run_loop`.
    unsafe {
        if libc::syscall(libc::SYS_getppid) <= 0 {
            return Err(err("getppid"));
        }
        let mut n: libc::c_int = -1;
        if libc::syscall(
            libc::SYS_ioctl,
            fd,
            libc::FIONREAD,
            &mut n as *mut libc::c_int,
        ) != 0
            || n != 0
        {
            return Err(err("ioctl(FIONREAD)"));
        }
        let s = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0);
        if s < 0 {
            return Err(err("socket(AF_UNIX)"));
        }
        if libc::syscall(libc::SYS_close, s) != 0 {
            return Err(err("close"));
        }
    }
    Ok(())
}

/// The CPU every worker runs on: the last one this process may use. On one CPU, the variants
/// share its caches and its share of the machine, and interleaved rounds compare like with
/// like.
fn bench_cpu() -> Option<usize> {
    // SAFETY: `set` is a plain bitmask the kernel fills; the size passed is its own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|&c| libc::CPU_ISSET(c, &set))
    }
}

/// Pins the calling thread to `cpu`.
fn pin_this_thread(cpu: usize) {
    // SAFETY: as in `bench_cpu`; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A thread with a variant's filters installed, running timed loops on request.
struct Worker {
    requests: mpsc::Sender<(Call, u64)>,
    results: mpsc::Receiver<Duration>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(v: &Variant, cpu: Option<usize>) -> Result<Worker, String> {
        let programs = v.programs.clone();
        let (req_tx, req_rx) = mpsc::channel::<(Call, u64)>();
        let (res_tx, res_rx) = mpsc::channel::<Duration>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name(format!("bench-{}", v.name))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin_this_thread(cpu);
                }
                let mut fds = [0i32; 2];
                // SAFETY: `fds` has room for the two descriptors.
                if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                    let _ = ready_tx.send(Err("pipe2 failed".into()));
                    return;
                }
                let ready = install_on_this_thread(&programs).and_then(|()| check_calls(fds[0]));
                let ok = ready.is_ok();
                let _ = ready_tx.send(ready);
                if ok {
                    while let Ok((call, iters)) = req_rx.recv() {
                        if res_tx.send(run_loop(call, fds[0], iters)).is_err() {
                            break;
                        }
                    }
                }
                // SAFETY: both descriptors are ours and closed once.
                unsafe {
                    libc::close(fds[0]);
                    libc::close(fds[1]);
                }
            })
            .map_err(|e| e.to_string())?;
        let ready = ready_rx
            .recv()
            .map_err(|_| "worker ended early".to_string())?;
        let w = Worker {
            requests: req_tx,
            results: res_rx,
            thread: Some(thread),
        };
        ready.map(|()| w)
    }

    fn time(&self, call: Call, iters: u64) -> Duration {
        self.requests.send((call, iters)).expect("worker alive");
        self.results.recv().expect("worker alive")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the request channel ends the worker's loop.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.requests, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the kernel does with one filter program for one syscall: the instructions it runs,
/// its result, and whether the program is constant ALLOW for that syscall in the sense of the
/// kernel's action cache (`seccomp_is_const_allow`: only `nr`/`arch` loads, `AND K`, jumps
/// with K operands and `RET K` on the path, ending in ALLOW).
struct Path1 {
    executed: usize,
    ret: u32,
    const_allow: bool,
}

/// A small cBPF interpreter for the instructions seccomp compilers emit.
fn trace(prog: &[Insn], nr: u32, arch: u32, args: &[u64; 6]) -> Option<Path1> {
    let word = |off: u32| -> Option<u32> {
        match off {
            0 => Some(nr),
            4 => Some(arch),
            8 | 12 => Some(0),
            16..=63 if off % 4 == 0 => {
                let a = args[((off - 16) / 8) as usize];
                Some(if (off - 16) % 8 == 0 {
                    a as u32
                } else {
                    (a >> 32) as u32
                })
            }
            _ => None,
        }
    };
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let (mut pc, mut executed, mut const_ok) = (0usize, 0usize, true);
    loop {
        let i = *prog.get(pc)?;
        executed += 1;
        let c = i.code;
        pc += 1;
        match c {
            0x20 => {
                // ld [k]
                const_ok &= i.k == 0 || i.k == 4;
                a = word(i.k)?;
            }
            0x00 => {
                const_ok = false;
                a = i.k;
            }
            0x60 => {
                const_ok = false;
                a = *mem.get(i.k as usize)?;
            }
            0x02 => {
                const_ok = false;
                *mem.get_mut(i.k as usize)? = a;
            }
            0x54 => a &= i.k, // and #k
            0x44 => {
                const_ok = false;
                a |= i.k;
            }
            0x07 => {
                const_ok = false;
                x = a;
            }
            0x87 => {
                const_ok = false;
                a = x;
            }
            0x05 => pc += i.k as usize, // ja
            0x15 | 0x25 | 0x35 | 0x45 => {
                let taken = match c {
                    0x15 => a == i.k,
                    0x25 => a > i.k,
                    0x35 => a >= i.k,
                    _ => a & i.k != 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            0x06 => {
                return Some(Path1 {
                    executed,
                    ret: i.k,
                    const_allow: const_ok && i.k == libc::SECCOMP_RET_ALLOW,
                });
            }
            _ => return None,
        }
    }
}

/// For one iteration of `call` under `v`: BPF instructions run (all filters, all syscalls of
/// the iteration) and whether every syscall of it skips the filters through the action cache.
fn cost(v: &Variant, call: Call, arch: Arch) -> Option<(usize, bool)> {
    let mut total = 0;
    let mut cached = true;
    for (name, args) in call.made(3) {
        let nr = Syscall::named_for(arch, name).ok()?.nr();
        let mut all_const = true;
        for p in &v.programs {
            let path = trace(p, nr, arch.audit_arch(), &args)?;
            assert_eq!(
                path.ret & libc::SECCOMP_RET_ACTION_FULL,
                libc::SECCOMP_RET_ALLOW,
                "{}: {name} is not allowed",
                v.name
            );
            total += path.executed;
            all_const &= path.const_allow;
        }
        cached &= all_const;
    }
    // With every filter constant ALLOW for a syscall, the kernel runs none of them.
    Some((if cached { 0 } else { total }, cached))
}

fn variants(arch: Arch) -> Vec<Variant> {
    let mut out = vec![Variant {
        name: "unfiltered",
        programs: Vec::new(),
    }];
    match ringfence_programs(&Profile::default_container()) {
        Ok(programs) => out.push(Variant {
            name: "ringfence-default",
            programs,
        }),
        Err(e) => println!("skipping ringfence-default: {e}"),
    }
    // The floor: a filter that allows everything in one instruction. Every syscall is in the
    // kernel's action cache, so this is what having any filter at all costs.
    out.push(Variant {
        name: "allow-1insn",
        programs: vec![vec![Insn {
            code: 0x06, // BPF_RET | BPF_K
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        }]],
    });
    let python = python_with_seccomp();
    if python.is_none() {
        println!(
            "skipping default-libseccomp and docker-libseccomp: no python3 can `import seccomp` \
             (Debian: apt-get install python3-seccomp)"
        );
    }
    if let Some(py) = python {
        // ringfence's own preset compiled by libseccomp, after ringfence's guard: the same
        // filter stack, another compiler for the profile part.
        let preset = Profile::default_container();
        match libseccomp_program(py, &preset) {
            Ok(p) => out.push(Variant {
                name: "default-libseccomp",
                programs: vec![ringfence::seccomp::guard(arch), p],
            }),
            Err(e) => println!("skipping default-libseccomp: {e}"),
        }
    }
    let docker = match docker_profile() {
        Ok(p) => Some(p),
        Err(e) => {
            println!("skipping docker-libseccomp and docker-ringfence: {e}");
            None
        }
    };
    if let Some(docker) = &docker {
        if let Some(py) = python {
            match libseccomp_program(py, docker) {
                Ok(p) => out.push(Variant {
                    name: "docker-libseccomp",
                    programs: vec![p],
                }),
                Err(e) => println!("skipping docker-libseccomp: {e}"),
            }
        }
        match ringfence_programs(docker) {
            Ok(programs) => out.push(Variant {
                name: "docker-ringfence",
                programs,
            }),
            Err(e) => println!("skipping docker-ringfence: {e}"),
        }
    }
    out
}

/// Medians (ns per iteration) from rounds that run every variant once each, one after the
/// other, with the same number of iterations: drift in the machine's speed (other load, CPU
/// frequency) then hits every variant alike, which criterion's one-benchmark-after-the-other
/// order does not give.
fn interleaved(workers: &[(&'static str, Worker)], call: Call) -> Vec<f64> {
    const ROUNDS: usize = 400;
    // About 1 ms per sample.
    let probe = workers[0].1.time(call, 1000);
    let iters = (1_000_000 * 1000 / probe.as_nanos().max(1)).clamp(100, 1_000_000) as u64;
    let mut samples = vec![Vec::with_capacity(ROUNDS); workers.len()];
    for round in 0..ROUNDS {
        for k in 0..workers.len() {
            // Rotate the order so that no variant always runs first.
            let j = (k + round) % workers.len();
            let d = workers[j].1.time(call, iters);
            samples[j].push(d.as_nanos() as f64 / iters as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect()
}

/// The variant with the same profile compiled by the other compiler.
fn counterpart(name: &str) -> Option<&'static str> {
    match name {
        "ringfence-default" => Some("default-libseccomp"),
        "docker-ringfence" => Some("docker-libseccomp"),
        _ => None,
    }
}

/// Criterion's directory for this run's results.
fn criterion_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(h));
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(t).join("criterion"));
    }
    // <target>/release/deps/syscalls-<hash>
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// The median (ns) criterion wrote for `id` during this run.
fn median_ns(dir: &Path, call: Call, variant: &str, since: SystemTime) -> Option<f64> {
    let p = dir
        .join("syscalls")
        .join(call.name())
        .join(variant)
        .join("new/estimates.json");
    if std::fs::metadata(&p).ok()?.modified().ok()? < since {
        return None;
    }
    let text = std::fs::read_to_string(&p).ok()?;
    let rest = &text[text.find("\"median\"")?..];
    let rest = &rest[rest.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

fn report(
    variants: &[Variant],
    arch: Arch,
    since: SystemTime,
    paired: &[(Call, Vec<(&'static str, f64)>)],
) {
    let Some(dir) = criterion_dir() else {
        return;
    };
    let paired_of = |call: Call, name: &str| {
        paired
            .iter()
            .find(|(c, _)| *c == call)
            .and_then(|(_, v)| v.iter().find(|(n, _)| *n == name).map(|(_, m)| *m))
    };
    println!("\nsyscalls: medians per iteration (one syscall; socket-close: two)");
    println!(
        "| call | variant | median | vs unfiltered | overhead | interleaved: vs unfiltered | vs libseccomp, same profile | BPF insns run | action cache |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for call in Call::ALL {
        let base = median_ns(&dir, call, "unfiltered", since);
        let p_base = paired_of(call, "unfiltered");
        for v in variants {
            let m = median_ns(&dir, call, v.name, since);
            let ratio = |b: Option<f64>| match (m, b) {
                (Some(m), Some(b)) => format!("{:.3}×", m / b),
                _ => "–".into(),
            };
            let overhead = match (m, base) {
                (Some(m), Some(b)) => format!("{:+.1} ns", m - b),
                _ => "–".into(),
            };
            let median = m.map_or("–".into(), |m| format!("{m:.1} ns"));
            let p = paired_of(call, v.name);
            let p_ratio = |b: Option<f64>| match (p, b) {
                (Some(p), Some(b)) => format!("{:.3}×", p / b),
                _ => "–".into(),
            };
            let (insns, cache) = match cost(v, call, arch) {
                _ if v.programs.is_empty() => ("–".to_string(), "–"),
                Some((n, true)) => (n.to_string(), "all cached"),
                Some((n, false)) => (n.to_string(), "filters run"),
                None => ("?".to_string(), "?"),
            };
            println!(
                "| {} | {} | {median} | {} | {overhead} | {} | {} | {insns} | {cache} |",
                call.name(),
                v.name,
                ratio(base),
                p_ratio(p_base),
                counterpart(v.name).map_or("–".into(), |c| p_ratio(paired_of(call, c))),
            );
        }
    }
    println!();
    for v in variants.iter().filter(|v| !v.programs.is_empty()) {
        let lens: Vec<String> = v.programs.iter().map(|p| p.len().to_string()).collect();
        println!(
            "{}: {} program(s), {} instructions",
            v.name,
            v.programs.len(),
            lens.join(" + ")
        );
    }
}

fn syscalls(c: &mut Criterion) {
    let arch = Arch::native().expect("a supported architecture");
    let variants = variants(arch);
    let cpu = bench_cpu();
    println!(
        "every variant runs on CPU {}",
        cpu.map_or("(not pinned)".into(), |c| c.to_string())
    );
    let mut workers = Vec::new();
    for v in &variants {
        match Worker::start(v, cpu) {
            Ok(w) => workers.push((v.name, w)),
            Err(e) => println!("skipping {}: {e}", v.name),
        }
    }
    let since = SystemTime::now();
    let mut group = c.benchmark_group("syscalls");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    for call in Call::ALL {
        for (name, worker) in &workers {
            group.bench_function(BenchmarkId::new(call.name(), name), |b| {
                b.iter_custom(|iters| worker.time(call, iters))
            });
        }
    }
    group.finish();
    // Skipped when a filter given on the command line leaves criterion nothing to run here
    // (or when criterion only checks that the benchmarks run, `--test`).
    let full = std::env::args().skip(1).all(|a| a == "--bench");
    let mut paired = Vec::new();
    if full && !workers.is_empty() {
        for call in Call::ALL {
            let medians = interleaved(&workers, call);
            paired.push((call, workers.iter().map(|(n, _)| *n).zip(medians).collect()));
        }
    }
    drop(workers);
    report(&variants, arch, since, &paired);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    syscalls(&mut c);
    c.final_summary();
}
