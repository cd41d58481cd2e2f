//! [`Prepared`]: a sandbox with its command-independent work done once; [`Warm`]: a sandbox
//! whose namespaces, mounts and cgroup stay up while a resident process inside (the zygote,
//! `src/inside/zygote.rs`) starts one run of a program after another.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;

use crate::child::{Child, Outcome, Usage, read_some};
use crate::command::{Command, Stdio};
use crate::error::{ConfigError, Error, Result, Stage};
use crate::fs::{FsPlan, MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY, Step};
use crate::inside::zygote::{
    FRAME_MAX, HEADER, MAX_PTRS, MAX_RLIMITS, NO_PROFILE, REPLY_BAD_REQUEST, REPLY_MAGIC,
    REPLY_RAN, REPLY_RESET_FAILED, REPLY_SETUP, REQUEST_MAGIC, Reply, Request, STACK_SIZE,
    WireRlimit, ZygotePlan,
};
use crate::ns::{Namespace, NetChoice};
use crate::probe::{Layer, Report};
use crate::rlimit::Rlimit;
use crate::sandbox::Sandbox;
use crate::seccomp::{CompiledProfile, Profile};

/// What went wrong with a warm sandbox or one of its runs.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    /// A run's strings do not fit in one request.
    #[error(
        "the program, arguments, environment and working directory take {len} bytes, more than one warm run can carry ({max} bytes)"
    )]
    TooLarge {
        /// Bytes needed (NUL terminators included).
        len: usize,
        /// Bytes available.
        max: usize,
    },
    /// Too many arguments and environment variables for one request.
    #[error(
        "{count} arguments, environment variables and program paths, more than one warm run can carry ({max})"
    )]
    TooMany {
        /// How many were given.
        count: usize,
        /// The most one request can carry.
        max: usize,
    },
    /// A run asked for a profile the warm sandbox was not given.
    #[error("run profile {index} was asked for, but the warm sandbox has {count}")]
    NoSuchProfile {
        /// The index asked for.
        index: usize,
        /// How many profiles [`WarmOptions::profile`] added.
        count: usize,
    },
    /// A feature of [`Sandbox::spawn`] that warm runs do not have.
    #[error("{what} is not available in warm mode")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
    },
    /// The zygote has ended (killed from outside, or it exited after a failed tmpfs reset).
    #[error("the warm sandbox's zygote has ended ({status}); start a new warm sandbox")]
    ZygoteGone {
        /// How it ended, as far as known.
        status: String,
    },
}

impl WarmError {
    /// Something a user can do about this error.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            WarmError::TooLarge { .. } | WarmError::TooMany { .. } => Some(
                "pass large data through stdin (RunOptions::input) or a file in the sandbox instead",
            ),
            WarmError::Unsupported { .. } => {
                Some("use Sandbox::spawn for runs that need it (a fresh sandbox per run)")
            }
            WarmError::ZygoteGone { .. } => Some(
                "drop this Warm and create another; a zygote only ends when it is killed or when resetting its tmpfs mounts failed",
            ),
            _ => None,
        }
    }
}

/// A sandbox whose work that does not depend on the command has been done once: the seccomp
/// profile compiled, the Landlock ruleset created, the filesystem plan checked and turned into
/// C strings, the configuration validated. [`spawn`](Prepared::spawn) then only does the
/// per-command part, so its cost does not grow with the size of the profile.
///
/// Made by [`Sandbox::prepare`]; `Clone`, `Send` and `Sync` (clones share the prepared work).
///
/// ```no_run
/// use ringfence::{Command, Sandbox};
/// let prepared = Sandbox::isolated().prepare()?;      // errors in the configuration show here
/// for i in 0..3 {
///     let out = prepared.output(Command::new("/bin/echo").arg(i.to_string()))?;
///     assert!(out.success());
/// }
/// # Ok::<(), ringfence::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Prepared {
    sandbox: Sandbox,
}

impl Prepared {
    pub(crate) fn new(sb: &Sandbox) -> Result<Prepared> {
        // The same checks a spawn makes before it clones, done once.
        if let Some(h) = &sb.hostname {
            if h.is_empty() || h.len() > 64 {
                return Err(ConfigError::InvalidHostname { len: h.len() }.into());
            }
            if h.as_bytes().contains(&0) {
                return Err(ConfigError::InteriorNul { what: "hostname" }.into());
            }
        }
        if let Some((r, ..)) = sb.rlimits.iter().find(|(_, soft, hard)| soft > hard) {
            return Err(ConfigError::InvalidRlimit { resource: r.name() }.into());
        }
        if let NetChoice::Join(fd) = &sb.net {
            crate::ns::check_netns(fd)?;
        }
        // Done now and kept in the sandbox's cache (shared by its clones) for every spawn.
        sb.compiled_seccomp()?;
        sb.prepared_landlock()?;
        sb.prepared_fs()?;
        Ok(Prepared {
            sandbox: sb.clone(),
        })
    }

    /// The sandbox this was prepared from.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Start `cmd` in a new instance of the sandbox (as [`Sandbox::spawn`]).
    pub fn spawn(&self, cmd: &Command) -> Result<Child> {
        self.sandbox.spawn(cmd)
    }

    /// Run `cmd` to completion and collect its output (as [`Sandbox::output`]).
    pub fn output(&self, cmd: &Command) -> Result<Outcome> {
        self.spawn(&crate::sandbox::for_output(cmd))?
            .wait_with_output()
    }

    /// Start a warm sandbox with the default [`WarmOptions`].
    pub fn warm(&self) -> Result<Warm> {
        self.warm_with(WarmOptions::default())
    }

    /// Start a warm sandbox: its namespaces, filesystem and cgroup are created now, once, with
    /// a small resident process inside (the zygote) that starts each [`Warm::run`].
    ///
    /// The zygote is pid 1 of a pid namespace of its own: one is added if the sandbox did not
    /// ask for it (best effort, like the sandbox's other namespaces). It dies with the thread
    /// that called this (like every sandbox, see [`Sandbox::die_with_parent`]), with this
    /// process, and when the [`Warm`] is dropped.
    pub fn warm_with(&self, options: WarmOptions) -> Result<Warm> {
        let mut sb = self.sandbox.clone();
        if sb.learning {
            return Err(WarmError::Unsupported {
                what: "learning (Sandbox::learn)",
            }
            .into());
        }
        if sb.join.is_some() {
            return Err(WarmError::Unsupported {
                what: "a sandbox that joins another (exec, pods)",
            }
            .into());
        }
        if sb.seccomp.uses_notify() || options.profiles.iter().any(Profile::uses_notify) {
            return Err(WarmError::Unsupported {
                what: "a seccomp profile with Notify rules",
            }
            .into());
        }
        if !sb.requests(Namespace::Pid) {
            // Not asked for: the zygote's own, best effort (see the module's notes).
            sb = sb.compat(crate::probe::Compat::BestEffort).pid_ns();
        }
        // No supervisor in warm mode: refusals are not reported.
        sb = sb.report_refusals(false);
        let seccomp = sb.compiled_seccomp()?;
        let extra = options
            .profiles
            .iter()
            .map(|p| p.compile().map_err(Error::Profile))
            .collect::<Result<Vec<_>>>()?;
        let extra_refs: Vec<&CompiledProfile> = extra.iter().collect();
        let fs = sb.prepared_fs()?;
        let reset = match (&fs, options.reset_tmpfs) {
            (Some(plan), true) => reset_steps(plan)?,
            _ => Vec::new(),
        };
        let filter_once =
            reset.is_empty() && seccomp.as_deref().is_some_and(|f| zygote_fits(f, &sb));

        tracing::debug!(filter_once, "starting a zygote");
        let (ours, theirs) = socketpair()?;
        // The zygote's buffers: allocated here, before the clone; it writes into its copy.
        let mut frame = vec![0u64; FRAME_MAX / 8];
        let mut ptrs = vec![std::ptr::null::<libc::c_char>(); MAX_PTRS];
        let mut stack = vec![0u128; STACK_SIZE / 16];
        let plan = ZygotePlan {
            sock: theirs.as_raw_fd(),
            frame: frame.as_mut_ptr().cast(),
            ptrs: ptrs.as_mut_ptr(),
            stack: stack.as_mut_ptr().cast(),
            profiles: &extra_refs,
            reset: &reset,
            filter_once,
        };
        let child = crate::spawn::spawn_zygote(&sb, &plan)?;
        drop(theirs);
        let devnull = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| Error::io("open /dev/null", e))?;
        let report = child.report().clone();
        Ok(Warm {
            new_root: report.is_enforced(Layer::Filesystem),
            fs,
            report,
            child,
            sock: ours,
            devnull: devnull.into(),
            profiles: extra.len(),
            timeout: sb.timeout,
            frame: Vec::with_capacity(FRAME_MAX),
            gone: None,
        })
    }
}

/// Options of a warm sandbox ([`Prepared::warm_with`]).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct WarmOptions {
    reset_tmpfs: bool,
    profiles: Vec<Profile>,
}

impl WarmOptions {
    /// The defaults: writable tmpfs mounts keep their content from run to run; no extra
    /// profiles.
    pub fn new() -> WarmOptions {
        WarmOptions::default()
    }

    /// Replace every writable tmpfs of the sandbox (`/tmp`, `/dev/shm`, those of
    /// [`Sandbox::mount_tmpfs`]) with a fresh, empty one after each run, and create again the
    /// directories, symlinks and files the sandbox put into them — so that no run sees what an
    /// earlier one wrote. A bind mount or another filesystem inside such a tmpfs cannot be
    /// restored and is refused.
    ///
    /// The seccomp profile is then installed by every run rather than once by the zygote
    /// (which must keep the right to mount), which costs the time of one installation per run.
    pub fn reset_tmpfs(mut self, on: bool) -> WarmOptions {
        self.reset_tmpfs = on;
        self
    }

    /// Add a seccomp profile a run can choose with [`RunOptions::profile`] (by its index,
    /// from 0 in the order added). It is compiled once, now, and installed *on top of* the
    /// sandbox's own profile: for each system call the stricter answer wins.
    pub fn profile(mut self, profile: Profile) -> WarmOptions {
        self.profiles.push(profile);
        self
    }
}

/// Per-run settings of a [`Warm::run`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct RunOptions<'a> {
    input: Option<&'a [u8]>,
    timeout: Option<Duration>,
    rlimits: Vec<(Rlimit, u64, u64)>,
    profile: Option<usize>,
}

impl<'a> RunOptions<'a> {
    /// No input, the sandbox's timeout and limits, no extra profile.
    pub fn new() -> RunOptions<'a> {
        RunOptions::default()
    }

    /// Give the program these bytes on stdin (instead of the command's stdin).
    pub fn input(mut self, data: &'a [u8]) -> RunOptions<'a> {
        self.input = Some(data);
        self
    }

    /// Kill the run when it takes longer than this (instead of the sandbox's
    /// [`timeout`](Sandbox::timeout)); [`Outcome::timed_out`] says so.
    pub fn timeout(mut self, limit: Duration) -> RunOptions<'a> {
        self.timeout = Some(limit);
        self
    }

    /// A resource limit for this run, set after the sandbox's own ones (`u64::MAX` is
    /// "unlimited").
    pub fn rlimit(mut self, resource: Rlimit, soft: u64, hard: u64) -> RunOptions<'a> {
        self.rlimits.retain(|(r, _, _)| *r != resource);
        self.rlimits.push((resource, soft, hard));
        self
    }

    /// Install the profile added with [`WarmOptions::profile`] at this index for this run, on
    /// top of the sandbox's own.
    pub fn profile(mut self, index: usize) -> RunOptions<'a> {
        self.profile = Some(index);
        self
    }
}

/// A warm sandbox: namespaces, filesystem and cgroup made once, and a resident process inside
/// (the zygote) that starts each run of a program on request — for fuzz harnesses and test
/// runners that run short programs thousands of times.
///
/// Each run is forked by the zygote and gets the sandbox's hygiene, identity, capabilities,
/// `no_new_privs`, Landlock rules and seccomp profile like a [`Sandbox::spawn`]ed program. When
/// it ends, every process it left is killed (with the sandbox's pid namespace, everything but
/// the zygote), so a run never sees an earlier run's processes; a crash or a kill of one run
/// does not disturb the next. Runs share the sandbox's filesystem: what one writes to a tmpfs,
/// the next sees, unless [`WarmOptions::reset_tmpfs`]. Runs happen one at a time; use one
/// `Warm` per thread to run in parallel.
///
/// Dropping it kills the zygote, its namespaces with it, and removes the sandbox's cgroup.
///
/// ```no_run
/// use ringfence::{Command, RunOptions, Sandbox, Stdio};
/// use std::time::Duration;
///
/// let mut warm = Sandbox::isolated().warm()?;
/// let mut target = Command::new("/usr/bin/wc");
/// target.arg("-c").stderr(Stdio::null());
/// for input in [&b"abc"[..], b"hello"] {
///     let opts = RunOptions::new().input(input).timeout(Duration::from_secs(1));
///     let out = warm.run(&target, &opts)?;
///     println!("{:?} {:?}", out.status, String::from_utf8_lossy(&out.stdout));
/// }
/// # Ok::<(), ringfence::Error>(())
/// ```
#[derive(Debug)]
pub struct Warm {
    child: Child,
    sock: OwnedFd,
    devnull: OwnedFd,
    report: Report,
    new_root: bool,
    /// The filesystem plan (for the names of its steps).
    fs: Option<Arc<FsPlan>>,
    profiles: usize,
    timeout: Option<Duration>,
    frame: Vec<u8>,
    gone: Option<String>,
}

impl Warm {
    /// What the sandbox got, layer by layer (the same for every run).
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The zygote's pid, as this process sees it.
    pub fn zygote_pid(&self) -> u32 {
        self.child.id()
    }

    /// Run `cmd` once, as [`Sandbox::output`] would: stdout and stderr are collected (unless
    /// the command sends them elsewhere) and stdin is empty (unless set).
    pub fn output(&mut self, cmd: &Command) -> Result<Outcome> {
        self.run(cmd, &RunOptions::default())
    }

    /// Run `cmd` once with per-run settings, and wait for it.
    ///
    /// Standard streams: stdin is [`RunOptions::input`] if given, else the command's file
    /// descriptor ([`Stdio::Fd`]) or empty; stdout and stderr are collected into the
    /// [`Outcome`] when inherited or piped, else go to `/dev/null` or the given descriptor.
    /// Descriptors passed with [`Command::pass_fd`] are not available in warm mode.
    ///
    /// A program that cannot be executed is an [`Error::Setup`], as with
    /// [`Sandbox::spawn`]; the zygote stays ready for the next run.
    pub fn run(&mut self, cmd: &Command, opts: &RunOptions<'_>) -> Result<Outcome> {
        if let Some(status) = &self.gone {
            return Err(WarmError::ZygoteGone {
                status: status.clone(),
            }
            .into());
        }
        self.encode(cmd, opts)?;
        let (stdin, outs) = self.stdio(cmd, opts)?;
        let fds = [
            stdin.as_raw().unwrap_or(self.devnull.as_raw_fd()),
            outs[0].as_raw(&self.devnull),
            outs[1].as_raw(&self.devnull),
        ];
        if let Err(e) = send_with_fds(&self.sock, &self.frame, &fds) {
            return Err(self.zygote_gone(e));
        }
        // The run's ends are the zygote's now: keep only the read ends of the pipes.
        drop(stdin);
        let readers = outs.map(|o| match o {
            Out::Pipe(r, _) => Some(r),
            _ => None,
        });
        let (reply, out, err) = match collect(&self.sock, readers) {
            Ok(r) => r,
            Err(e) => return Err(self.zygote_gone(e)),
        };
        match reply.kind {
            REPLY_RAN => {}
            REPLY_SETUP => {
                let stage = Stage::from_u32(reply.stage)
                    .ok_or(Error::Protocol("unknown stage in a warm run's reply"))?;
                return Err(Error::setup(stage, Errno::from_raw(reply.errno)));
            }
            REPLY_RESET_FAILED => {
                self.gone = Some("resetting its tmpfs mounts failed".into());
                let step = self
                    .fs
                    .as_ref()
                    .and_then(|f| f.descriptions.get(reply.detail as usize))
                    .map_or_else(
                        || format!("step {}", reply.detail),
                        |d| format!("reset after a run: {d}"),
                    );
                return Err(Error::Mount {
                    step,
                    errno: Errno::from_raw(reply.errno),
                });
            }
            REPLY_BAD_REQUEST => {
                return Err(Error::Protocol("the zygote refused a warm run's request"));
            }
            _ => return Err(Error::Protocol("unknown reply from the zygote")),
        }
        let us = Duration::from_micros;
        Ok(Outcome {
            status: ExitStatus::from_raw(reply.status),
            stdout: out,
            stderr: err,
            usage: Usage {
                wall: Duration::from_nanos(reply.wall_ns),
                user_cpu: us(reply.user_us),
                sys_cpu: us(reply.sys_us),
                max_rss: reply.maxrss_kib.saturating_mul(1024),
                cgroup_cpu: None,
                peak_memory: None,
                pids_peak: None,
            },
            timed_out: reply.timed_out != 0,
            oom_killed: false,
            violations: Vec::new(),
            seen: Default::default(),
            report: self.report.clone(),
        })
    }

    /// The request for `cmd` into `self.frame`.
    fn encode(&mut self, cmd: &Command, opts: &RunOptions<'_>) -> Result<()> {
        if !cmd.pass_fds().is_empty() {
            return Err(WarmError::Unsupported {
                what: "passing file descriptors (Command::pass_fd)",
            }
            .into());
        }
        let cands = if self.new_root && cmd.is_bare_name() {
            cmd.path_candidates()?
        } else {
            vec![cmd.resolve_program()?]
        };
        let argv = cmd.argv()?;
        let envp = cmd.envp()?;
        let cwd = cmd.cwd_cstring()?;
        let count = cands.len() + argv.len() + envp.len();
        if count + 2 > MAX_PTRS {
            return Err(WarmError::TooMany {
                count,
                max: MAX_PTRS - 2,
            }
            .into());
        }
        // One per resource (RunOptions::rlimit replaces), so they always fit.
        const _: () = assert!(Rlimit::ALL.len() <= MAX_RLIMITS);
        let mut rlimits = [WireRlimit::default(); MAX_RLIMITS];
        for (slot, (r, soft, hard)) in rlimits.iter_mut().zip(&opts.rlimits) {
            if soft > hard {
                return Err(ConfigError::InvalidRlimit { resource: r.name() }.into());
            }
            let lim = |v: u64| {
                if v == u64::MAX {
                    libc::RLIM_INFINITY
                } else {
                    v as libc::rlim_t
                }
            };
            *slot = WireRlimit {
                resource: r.resource(),
                _pad: 0,
                cur: lim(*soft),
                max: lim(*hard),
            };
        }
        let profile = match opts.profile {
            None => NO_PROFILE,
            Some(i) if i < self.profiles => i as u32,
            Some(index) => {
                return Err(WarmError::NoSuchProfile {
                    index,
                    count: self.profiles,
                }
                .into());
            }
        };
        let strings: usize = cands
            .iter()
            .chain(&argv)
            .chain(&envp)
            .chain(&cwd)
            .map(|s| s.as_bytes_with_nul().len())
            .sum();
        if HEADER + strings > FRAME_MAX {
            return Err(WarmError::TooLarge {
                len: strings,
                max: FRAME_MAX - HEADER,
            }
            .into());
        }
        let timeout = opts.timeout.or(self.timeout);
        let req = Request {
            magic: REQUEST_MAGIC,
            ncand: cands.len() as u32,
            argc: argv.len() as u32,
            envc: envp.len() as u32,
            has_cwd: cwd.is_some() as u32,
            profile,
            nrlimits: opts.rlimits.len() as u32,
            strings_len: strings as u32,
            // At least a nanosecond: 0 means none.
            timeout_ns: timeout.map_or(0, |t| (t.as_nanos().min(u64::MAX as u128) as u64).max(1)),
            rlimits,
        };
        self.frame.clear();
        // SAFETY: Request is plain integers (repr(C), no padding left uninitialized: every
        // field is written above and the explicit pads are zero).
        self.frame.extend_from_slice(unsafe {
            std::slice::from_raw_parts((&req as *const Request).cast::<u8>(), HEADER)
        });
        for s in cands.iter().chain(&argv).chain(&envp).chain(&cwd) {
            self.frame.extend_from_slice(s.as_bytes_with_nul());
        }
        Ok(())
    }

    /// The run's standard streams.
    fn stdio(&self, cmd: &Command, opts: &RunOptions<'_>) -> Result<(In, [Out; 2])> {
        let stdin = match (opts.input, &cmd.stdin) {
            (Some(data), _) => In::Owned(input_fd(data)?),
            (None, Stdio::Fd(fd)) => In::Given(fd.as_raw_fd()),
            (None, _) => In::Null,
        };
        let out = |s: &Stdio| -> Result<Out> {
            Ok(match s {
                Stdio::Null => Out::Null,
                Stdio::Fd(fd) => Out::Given(fd.as_raw_fd()),
                Stdio::Inherit | Stdio::Piped => {
                    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                        .map_err(|e| Error::io("create a pipe", e))?;
                    Out::Pipe(r, w)
                }
            })
        };
        Ok((stdin, [out(&cmd.stdout)?, out(&cmd.stderr)?]))
    }

    fn zygote_gone(&mut self, e: Errno) -> Error {
        let status = match self.child.try_wait() {
            Ok(Some(o)) => format!("{:?}", o.status),
            _ => format!("the socket failed: {e}"),
        };
        self.gone = Some(status.clone());
        WarmError::ZygoteGone { status }.into()
    }
}

/// A run's stdin, as the parent holds it until the request is sent.
enum In {
    Null,
    Given(RawFd),
    Owned(OwnedFd),
}

impl In {
    fn as_raw(&self) -> Option<RawFd> {
        match self {
            In::Null => None,
            In::Given(fd) => Some(*fd),
            In::Owned(fd) => Some(fd.as_raw_fd()),
        }
    }
}

/// A run's stdout or stderr.
enum Out {
    Null,
    Given(RawFd),
    /// Read end (kept), write end (sent).
    Pipe(OwnedFd, OwnedFd),
}

impl Out {
    fn as_raw(&self, devnull: &OwnedFd) -> RawFd {
        match self {
            Out::Null => devnull.as_raw_fd(),
            Out::Given(fd) => *fd,
            Out::Pipe(_, w) => w.as_raw_fd(),
        }
    }
}

/// Stdin holding `data`: a pipe when it fits the smallest pipe buffer, else a memfd.
fn input_fd(data: &[u8]) -> Result<OwnedFd> {
    use std::io::{Seek, Write};
    if data.len() <= 4096 {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("create a pipe", e))?;
        let mut w = std::fs::File::from(w);
        w.write_all(data)
            .map_err(|e| Error::io("write a run's input", e))?;
        return Ok(r);
    }
    // SAFETY: memfd_create with a static name; the descriptor is owned below.
    let fd = unsafe { libc::memfd_create(c"ringfence-input".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::io("create a memfd for a run's input", Errno::last()));
    }
    // SAFETY: a descriptor we just created.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(data)
        .and_then(|_| f.rewind())
        .map_err(|e| Error::io("write a run's input", e))?;
    Ok(f.into())
}

fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: socketpair into an array of two ints.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc < 0 {
        return Err(Error::io("create the zygote's socket pair", Errno::last()));
    }
    // SAFETY: two new descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Send one message with three descriptors.
fn send_with_fds(sock: &OwnedFd, data: &[u8], fds: &[RawFd; 3]) -> Result<(), Errno> {
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; the pointers set below outlive the call; the control
    // message is built with the kernel's macros inside `control` (64 bytes, enough for three
    // descriptors).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        let len = libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32);
        msg.msg_controllen = len as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<RawFd>(), fds.len());
        loop {
            let rc = libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
            if rc >= 0 {
                return Ok(());
            }
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
    }
}

/// Wait for the reply, collecting stdout and stderr (the pipes given) meanwhile.
fn collect(
    sock: &OwnedFd,
    mut pipes: [Option<OwnedFd>; 2],
) -> Result<(Reply, Vec<u8>, Vec<u8>), Errno> {
    let mut bufs = [Vec::new(), Vec::new()];
    let reply = loop {
        let mut pfds = [sock.as_raw_fd(), -1, -1].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        for (p, pipe) in pfds[1..].iter_mut().zip(&pipes) {
            p.fd = pipe.as_ref().map_or(-1, |f| f.as_raw_fd());
        }
        // SAFETY: three pollfds on this stack.
        if unsafe { libc::poll(pfds.as_mut_ptr(), 3, -1) } < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
        for ((p, pipe), buf) in pfds[1..].iter().zip(pipes.iter_mut()).zip(bufs.iter_mut()) {
            if p.revents != 0 {
                if let Some(fd) = pipe {
                    if read_some(fd, buf)? == 0 {
                        *pipe = None;
                    }
                }
            }
        }
        if pfds[0].revents != 0 {
            let mut reply = Reply::default();
            // SAFETY: receives at most one Reply into this stack value (plain integers).
            let n = unsafe {
                libc::recv(
                    sock.as_raw_fd(),
                    (&mut reply as *mut Reply).cast(),
                    std::mem::size_of::<Reply>(),
                    0,
                )
            };
            match n {
                n if n as usize == std::mem::size_of::<Reply>() && reply.magic == REPLY_MAGIC => {
                    break reply;
                }
                0 => return Err(Errno::EPIPE),
                n if n < 0 && Errno::last() == Errno::EINTR => continue,
                n if n < 0 => return Err(Errno::last()),
                _ => return Err(Errno::EBADMSG),
            }
        }
    };
    // The run and every process it left are gone (with a pid namespace): what they wrote is
    // in the pipes. Without one, a process that left the run's group may still hold a pipe:
    // read only what is there.
    for (pipe, buf) in pipes.iter().zip(bufs.iter_mut()) {
        if let Some(fd) = pipe {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )?;
            while read_some(fd, buf)? > 0 {}
        }
    }
    let [out, err] = bufs;
    Ok((reply, out, err))
}

/// Whether the compiled profile allows every system call the zygote and a run's setup make
/// after the zygote installed it (so that it can be installed once, by the zygote), checked
/// with the BPF interpreter on the calls and arguments this code makes.
#[cfg(target_arch = "x86_64")]
fn zygote_fits(filters: &CompiledProfile, sb: &Sandbox) -> bool {
    use crate::seccomp::interp::{SeccompData, run_stack};
    let Some(arch) = crate::seccomp::Arch::native() else {
        return false;
    };
    let clone_flags =
        (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD) as u64;
    let prctl = |op: libc::c_int| (libc::SYS_prctl, [op as u64, 0, 0, 0, 0, 0]);
    let mut calls = vec![
        (
            libc::SYS_recvmsg,
            [0, 0, libc::MSG_CMSG_CLOEXEC as u64, 0, 0, 0],
        ),
        (libc::SYS_sendto, [0, 0, 0, libc::MSG_NOSIGNAL as u64, 0, 0]),
        (libc::SYS_ppoll, [0; 6]),
        (libc::SYS_clone, [clone_flags, 0, 0, 0, 0, 0]),
        (libc::SYS_wait4, [0, 0, libc::__WALL as u64, 0, 0, 0]),
        (
            libc::SYS_wait4,
            [
                -1i64 as u64,
                0,
                (libc::__WALL | libc::WNOHANG) as u64,
                0,
                0,
                0,
            ],
        ),
        (
            libc::SYS_kill,
            [-1i64 as u64, libc::SIGKILL as u64, 0, 0, 0, 0],
        ),
        (libc::SYS_close, [0; 6]),
        (libc::SYS_close_range, [3, u32::MAX as u64, 4, 0, 0, 0]),
        (
            libc::SYS_clock_gettime,
            [libc::CLOCK_MONOTONIC as u64, 0, 0, 0, 0, 0],
        ),
        (libc::SYS_exit_group, [0; 6]),
        prctl(libc::PR_SET_PDEATHSIG),
        prctl(libc::PR_CAPBSET_DROP),
        prctl(libc::PR_SET_KEEPCAPS),
        prctl(libc::PR_CAP_AMBIENT),
        prctl(libc::PR_SET_NO_NEW_PRIVS),
        (libc::SYS_setsid, [0; 6]),
        (libc::SYS_setpgid, [0; 6]),
        (
            libc::SYS_fcntl,
            [0, libc::F_DUPFD_CLOEXEC as u64, 3, 0, 0, 0],
        ),
        (
            libc::SYS_fcntl,
            [0, libc::F_SETFD as u64, libc::FD_CLOEXEC as u64, 0, 0, 0],
        ),
        (libc::SYS_dup2, [0; 6]),
        (libc::SYS_prlimit64, [0; 6]),
        (libc::SYS_umask, [0; 6]),
        (libc::SYS_capget, [0; 6]),
        (libc::SYS_capset, [0; 6]),
        (libc::SYS_chdir, [0; 6]),
        (libc::SYS_seccomp, [1, 0, 0, 0, 0, 0]),
        (
            libc::SYS_rt_sigprocmask,
            [libc::SIG_SETMASK as u64, 0, 0, 8, 0, 0],
        ),
        (libc::SYS_execve, [0; 6]),
        (libc::SYS_getrlimit, [0; 6]),
    ];
    if sb.uid.is_some() || sb.gid.is_some() {
        calls.extend([
            (libc::SYS_setgroups, [0; 6]),
            (libc::SYS_setresgid, [0; 6]),
            (libc::SYS_setresuid, [0; 6]),
        ]);
    }
    if sb.landlock.is_some() || crate::landlock::baseline_available().is_ok() {
        calls.push((libc::SYS_landlock_restrict_self, [0; 6]));
    }
    calls.iter().all(|(nr, args)| {
        let data = SeccompData {
            nr: *nr as i32,
            arch: arch.audit_arch(),
            instruction_pointer: 0,
            args: *args,
        };
        run_stack(filters.programs(), &data) == Ok(libc::SECCOMP_RET_ALLOW)
    })
}

/// Elsewhere every run installs the filters itself.
#[cfg(not(target_arch = "x86_64"))]
fn zygote_fits(_: &CompiledProfile, _: &Sandbox) -> bool {
    false
}

/// The filesystem steps the zygote applies again after every run to reset the writable tmpfs
/// mounts: each such tmpfs (not read-only, `nodev` — which leaves out `/dev` itself, whose
/// device binds could not be made again) and the directories, symlinks and files the caller
/// placed below one, in the caller's order.
fn reset_steps(plan: &FsPlan) -> Result<Vec<u32>> {
    fn dst(step: &Step) -> &[u8] {
        match step {
            Step::Bind { dst, .. }
            | Step::Fs { dst, .. }
            | Step::Mkdir { dst, .. }
            | Step::Symlink { dst, .. }
            | Step::File { dst, .. }
            | Step::InitFile { dst, .. }
            | Step::ReadOnly { dst }
            | Step::Mask { dst } => dst.as_bytes(),
        }
    }
    let below =
        |d: &[u8], top: &[u8]| d == top || (d.starts_with(top) && d.get(top.len()) == Some(&b'/'));
    let mut tops: Vec<&[u8]> = Vec::new();
    let mut steps = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let d = dst(step);
        let writable_tmpfs = matches!(step, Step::Fs { fstype, attrs, .. }
            if *fstype == c"tmpfs" && attrs & MOUNT_ATTR_NODEV != 0 && attrs & MOUNT_ATTR_RDONLY == 0);
        if writable_tmpfs {
            tops.push(d);
            steps.push(i as u32);
        } else if tops.iter().any(|t| below(d, t)) {
            match step {
                Step::Mkdir { .. } | Step::Symlink { .. } | Step::File { .. } => {
                    steps.push(i as u32)
                }
                _ => {
                    return Err(ConfigError::Conflict {
                        what: "WarmOptions::reset_tmpfs cannot restore a bind mount or another filesystem placed inside a writable tmpfs; mount it elsewhere, or do without the reset",
                    }
                    .into());
                }
            }
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_has_no_implicit_padding() {
        // Every byte of the header is written by `encode` (the explicit pads are fields).
        assert_eq!(HEADER, 8 * 4 + 8 + MAX_RLIMITS * 24);
        assert_eq!(std::mem::size_of::<Reply>(), 8 * 4 + 4 * 8);
    }

    #[test]
    fn reset_steps_cover_tmpfs_and_what_was_put_in_it() {
        let sb = Sandbox::new()
            .mount_tmpfs_sized("/tmp", crate::Size::mib(1))
            .mkdir("/tmp/a")
            .write_file("/tmp/a/f", "x")
            .mkdir("/etc2")
            .mount_dev();
        let plan = sb.fs.prepare(None).unwrap();
        let steps = reset_steps(&plan).unwrap();
        let names: Vec<&str> = steps
            .iter()
            .map(|&i| plan.descriptions[i as usize].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "tmpfs /tmp (1048576 bytes)",
                "mkdir /tmp/a",
                "file /tmp/a/f",
                "tmpfs /dev/shm"
            ]
        );
        let sb = Sandbox::new()
            .mount_tmpfs_sized("/tmp", crate::Size::mib(1))
            .bind_ro("/usr", "/tmp/usr");
        let plan = sb.fs.prepare(None).unwrap();
        assert!(matches!(
            reset_steps(&plan),
            Err(Error::Config(ConfigError::Conflict { .. }))
        ));
    }
}

#[cfg(test)]
mod fits_tests {
    #[test]
    fn default_profile_lets_the_zygote_hold_it() {
        let sb = crate::Sandbox::new();
        let f = sb.compiled_seccomp().unwrap().unwrap();
        assert!(super::zygote_fits(&f, &sb));
    }
}

#[test]
fn handles_can_move_between_threads() {
    fn shared<T: Send + Sync + Clone>() {}
    fn sent<T: Send>() {}
    shared::<Prepared>();
    sent::<Warm>();
}
