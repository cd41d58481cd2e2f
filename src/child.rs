//! [`Child`]: a running sandbox, and [`Outcome`]: how it ended.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::command::Command;
use crate::error::{Error, Result};
use crate::probe::Report;
use crate::spawn::{ParentStdio, pidfd_kill};

#[cfg(feature = "tokio")]
pub(crate) mod async_child;

/// Resources a sandbox used, from `wait4`-style accounting of the sandbox's first process and
/// every descendant it (or the init) reaped.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Wall-clock time from the spawn until the end was observed.
    pub wall: Duration,
    /// CPU time spent in user mode.
    pub user_cpu: Duration,
    /// CPU time spent in the kernel.
    pub sys_cpu: Duration,
    /// The largest resident set size of any single process, in bytes.
    pub max_rss: u64,
    /// CPU time of every process of the sandbox, from its cgroup (with cgroup limits only).
    pub cgroup_cpu: Option<Duration>,
    /// The sandbox's peak memory use in bytes, from its cgroup (with cgroup limits only).
    pub peak_memory: Option<u64>,
    /// The most processes and threads at once, from its cgroup (where the kernel counts it).
    pub pids_peak: Option<u64>,
}

/// How a sandbox ended.
///
/// With the `serde` feature (on by default), `Outcome` — and [`Usage`],
/// [`Violation`](crate::Violation) and [`Report`] — implement `serde::Serialize`, in the shape
/// the CLI's `--json` prints: `{"status": {"code", "signal"}, "success", "timed_out",
/// "oom_killed", "usage": {"wall_ms", "user_cpu_ms", "sys_cpu_ms", "max_rss_bytes",
/// "cgroup_cpu_ms", "peak_memory_bytes", "pids_peak"}, "violations": [{"syscall", "nr", "args",
/// "pid"}], "report": [{"layer", "description", "enforced"[, "reason", "hint"][, "substitute"]}],
/// "stdout", "stderr"}` — durations in milliseconds, sizes in bytes, the captured output as
/// UTF-8 (invalid sequences replaced).
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The program's exit status. In a pid namespace this is the program's own status (a
    /// signal stays a signal), not the status of the init in front of it.
    pub status: ExitStatus,
    /// What the program wrote to stdout, when it was piped and collected
    /// ([`Child::wait_with_output`], [`Sandbox::output`](crate::Sandbox::output)).
    pub stdout: Vec<u8>,
    /// What the program wrote to stderr, likewise.
    pub stderr: Vec<u8>,
    /// Time and memory used.
    pub usage: Usage,
    /// Whether the sandbox was killed because it ran past its
    /// [`timeout`](crate::Sandbox::timeout).
    pub timed_out: bool,
    /// Whether the kernel's OOM killer killed a process of the sandbox at its
    /// [`memory_limit`](crate::Sandbox::memory_limit).
    pub oom_killed: bool,
    /// The system calls refused by the profile's [`Notify`](crate::Action::Notify) rules.
    pub violations: Vec<crate::Violation>,
    /// What a learning run saw (see [`Sandbox::learn`](crate::Sandbox::learn)).
    pub(crate) seen: std::collections::BTreeMap<u32, std::collections::BTreeSet<u64>>,
    /// What was enforced (the same as [`Child::report`]).
    pub report: Report,
}

impl Outcome {
    /// Whether the program exited with status 0 in time.
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    /// The status as a shell reports it: the exit code, or 128 + the signal number.
    pub fn shell_code(&self) -> i32 {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 255,
        }
    }
}

/// A running sandbox.
///
/// Dropping it kills the whole sandbox (and reaps it) unless [`Child::keep_running`] was
/// called. Like [`std::process::Child`], the piped standard streams are public fields.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    /// The write end of the program's stdin, when it was [`Stdio::Piped`](crate::Stdio::Piped).
    pub stdin: Option<ChildStdin>,
    /// The read end of the program's stdout, when piped.
    pub stdout: Option<ChildStdout>,
    /// The read end of the program's stderr, when piped.
    pub stderr: Option<ChildStderr>,
    status_pipe: Option<OwnedFd>,
    report: Report,
    started: Instant,
    deadline: Option<Instant>,
    kill_group: bool,
    outcome: Option<Outcome>,
    timed_out: bool,
    keep_running: bool,
    cgroup: Option<crate::cgroup::SandboxCgroup>,
    supervisor: Option<crate::supervise::Supervisor>,
    /// The restrictions of the sandbox this child was spawned in, for [`Child::exec`].
    exec_template: Option<std::sync::Arc<crate::Sandbox>>,
    /// The user-mode network stack of `Net::User`, stopped when the sandbox has ended.
    usernet: Option<crate::usernet::RunningStack>,
    /// The stack its init runs on, in this process's memory (see `spawn::clone_shared`):
    /// unmapped once the init has been reaped, never before.
    stacks: Option<crate::inside::sys::Stacks>,
    /// The private directory standing in for `/tmp` (without a mount namespace), removed
    /// with the child.
    scratch: Option<crate::degrade::ScratchDir>,
}

impl Child {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        pid: libc::pid_t,
        pidfd: OwnedFd,
        stdio: ParentStdio,
        status_pipe: Option<OwnedFd>,
        report: Report,
        started: Instant,
        deadline: Option<Instant>,
        kill_group: bool,
        cgroup: Option<crate::cgroup::SandboxCgroup>,
        supervisor: Option<crate::supervise::Supervisor>,
    ) -> Child {
        Child {
            pid,
            pidfd,
            stdin: stdio.stdin.map(ChildStdin::from),
            stdout: stdio.stdout.map(ChildStdout::from),
            stderr: stdio.stderr.map(ChildStderr::from),
            status_pipe,
            report,
            started,
            deadline,
            kill_group,
            outcome: None,
            timed_out: false,
            keep_running: false,
            cgroup,
            supervisor,
            exec_template: None,
            usernet: None,
            stacks: None,
            scratch: None,
        }
    }

    pub(crate) fn with_scratch(mut self, dir: Option<crate::degrade::ScratchDir>) -> Child {
        self.scratch = dir;
        self
    }

    pub(crate) fn with_usernet(mut self, stack: Option<crate::usernet::RunningStack>) -> Child {
        self.usernet = stack;
        self
    }

    /// The process id of the user-mode network stack of a [`Net::User`](crate::Net::User)
    /// sandbox (pasta or slirp4netns), while the sandbox runs.
    pub fn network_stack_pid(&self) -> Option<u32> {
        self.usernet.as_ref().map(|s| s.pid())
    }

    /// Keep the stacks its init runs on until it has been reaped.
    pub(crate) fn keep_stacks(&mut self, stacks: crate::inside::sys::Stacks) {
        self.stacks = Some(stacks);
    }

    pub(crate) fn with_exec_template(mut self, template: std::sync::Arc<crate::Sandbox>) -> Child {
        self.exec_template = Some(template);
        self
    }

    /// Run another program inside this running sandbox, like `docker exec`: it enters every
    /// namespace of the sandbox and its cgroup, sees the sandbox's files, processes and
    /// network, and runs under the same restrictions (seccomp profile, Landlock rules,
    /// capabilities, identity, rlimits) — [`Sandbox::join`](crate::Sandbox::join) runs it
    /// under the joining sandbox's own. The new process has its own [`Child`] and
    /// [`Outcome`]; it is killed when the sandbox ends.
    ///
    /// Until it executes the program, the new process (a copy of this one) is not dumpable
    /// and keeps none of this process's descriptors, command line or environment; it enters a
    /// Landlock domain of its own, so the sandbox's processes cannot reach it through /proc
    /// before or after — and it cannot ptrace (or, from Linux 6.12, signal) them either.
    ///
    /// Fails with [`Error::Join`] when the sandbox has ended.
    ///
    /// ```no_run
    /// use ringfence::{Command, Sandbox};
    ///
    /// let sandbox = Sandbox::isolated().spawn(Command::new("sleep").arg("60"))?;
    /// let out = sandbox
    ///     .exec(Command::new("cat").arg("/etc/hostname"))?
    ///     .wait_with_output()?;
    /// # Ok::<(), ringfence::Error>(())
    /// ```
    pub fn exec(&self, cmd: &Command) -> Result<Child> {
        if self.outcome.is_some() {
            return Err(Error::Join {
                pid: self.id(),
                reason: "it has ended".into(),
                hint: "start the sandbox again; a sandbox can be joined only while it runs",
            });
        }
        let template = match &self.exec_template {
            Some(t) => crate::Sandbox::clone(t),
            None => crate::Sandbox::new(),
        };
        template.join(self).spawn(cmd)
    }

    /// The pid of the sandbox's first process, as the caller sees it (in a new pid namespace,
    /// this is the init in front of the program).
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// A pidfd of the sandbox's first process (poll it for readability to learn of its end).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// What this sandbox got, layer by layer.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// When the sandbox will be killed, if it has a timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Do not kill the sandbox when this handle is dropped.
    pub fn keep_running(&mut self) {
        self.keep_running = true;
    }

    /// Send a signal to the sandbox's first process. In a new pid namespace the init forwards
    /// SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to the program.
    pub fn signal(&self, signal: crate::Signal) -> Result<()> {
        if self.outcome.is_some() {
            return Ok(());
        }
        pidfd_kill(&self.pidfd, signal as i32).map_err(|e| Error::io("signal the sandbox", e))
    }

    /// Kill the whole sandbox with `SIGKILL`: with cgroup limits every process in its cgroup
    /// (daemons included), with a pid namespace every process in it, otherwise the program and
    /// its process group. A sandbox that has already ended is not an error.
    pub fn kill(&mut self) -> Result<()> {
        if self.outcome.is_some() {
            return Ok(());
        }
        if let Some(cg) = &self.cgroup {
            cg.kill().map_err(Error::Cgroup)?;
        }
        self.kill_group();
        match pidfd_kill(&self.pidfd, libc::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::io("kill the sandbox", e)),
        }
    }

    fn kill_group(&self) {
        if self.kill_group && self.outcome.is_none() {
            // The first process is a session (and group) leader. Until it is reaped, its pid
            // cannot be reused, so this reaches only the sandbox's own processes.
            // SAFETY: kill with a negative pid that names our child's process group.
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        }
    }

    /// Check whether the sandbox has ended, without blocking. Kills it if its deadline passed.
    pub fn try_wait(&mut self) -> Result<Option<Outcome>> {
        self.wait_until(Some(Instant::now()))
    }

    /// Wait for the sandbox to end (killing it at its deadline, if any).
    pub fn wait(&mut self) -> Result<Outcome> {
        Ok(self
            .wait_until(None)?
            .expect("waiting without a limit ends with an outcome"))
    }

    /// Wait at most `limit` for the sandbox to end; `Ok(None)` if it is still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> Result<Option<Outcome>> {
        self.wait_until(Some(Instant::now() + limit))
    }

    fn wait_until(&mut self, until: Option<Instant>) -> Result<Option<Outcome>> {
        if let Some(o) = &self.outcome {
            return Ok(Some(o.clone()));
        }
        loop {
            let now = Instant::now();
            let limit = match (until, self.deadline) {
                (Some(u), Some(d)) => Some(u.min(d)),
                (u, d) => u.or(d),
            };
            let timeout_ms = limit.map(|l| {
                let left = l.saturating_duration_since(now);
                // Round up, so that we do not wake up just before the limit.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
            });
            if poll_readable(&[self.pidfd.as_fd()], timeout_ms.unwrap_or(-1))?[0] {
                return self.reap().map(Some);
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.timed_out = true;
                self.kill()?;
                return self.reap().map(Some);
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return Ok(None);
            }
        }
    }

    /// Close stdin, collect stdout and stderr while waiting (each when piped), and wait for
    /// the end (killing the sandbox at its deadline, if any).
    ///
    /// When the sandbox's first process has ended, what is left in the pipes is read and the
    /// collection stops — a leftover process that still holds a pipe open cannot make this
    /// hang.
    pub fn wait_with_output(mut self) -> Result<Outcome> {
        drop(self.stdin.take());
        let mut pipes: [Option<OwnedFd>; 2] = [
            self.stdout.take().map(OwnedFd::from),
            self.stderr.take().map(OwnedFd::from),
        ];
        let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut outcome = self.outcome.clone();
        while outcome.is_none() {
            let now = Instant::now();
            let timeout_ms = self.deadline.map_or(-1, |d| {
                d.saturating_duration_since(now)
                    .as_micros()
                    .div_ceil(1000)
                    .min(i32::MAX as u128) as i32
            });
            let mut fds = vec![self.pidfd.as_fd()];
            fds.extend(pipes.iter().flatten().map(|p| p.as_fd()));
            let ready = poll_readable(&fds, timeout_ms)?;
            let mut ready = ready.into_iter();
            let exited = ready.next().unwrap_or(false);
            for (pipe, buf) in pipes.iter_mut().zip(bufs.iter_mut()) {
                if pipe.is_some() && ready.next().unwrap_or(false) {
                    let fd = pipe.as_ref().expect("checked");
                    if read_output(fd, buf)? == 0 {
                        *pipe = None;
                    }
                }
            }
            if exited {
                outcome = Some(self.reap()?);
            } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.timed_out = true;
                self.kill()?;
                outcome = Some(self.reap()?);
            }
        }
        // Whatever the program wrote before it ended is in the pipes now.
        for (pipe, buf) in pipes.iter().zip(bufs.iter_mut()) {
            if let Some(fd) = pipe {
                set_nonblocking(fd)?;
                while read_output(fd, buf)? > 0 {}
            }
        }
        let mut outcome = outcome.expect("loop ends with an outcome");
        let [out, err] = bufs;
        outcome.stdout = out;
        outcome.stderr = err;
        Ok(outcome)
    }

    /// Collect the status of the ended (or killed) first process.
    fn reap(&mut self) -> Result<Outcome> {
        self.kill_group();
        let (raw, ru) = loop {
            match waitid(&self.pidfd, libc::WEXITED) {
                Ok(Some(r)) => break r,
                Ok(None) => continue,
                Err(e) => return Err(Error::io("wait for the sandbox", e)),
            }
        };
        let wall = self.started.elapsed();
        // The sandbox has ended: whatever is left in its cgroup goes too; then the account.
        let cg_usage = self.cgroup.take().map(|cg| {
            let _ = cg.kill();
            let usage = cg.usage();
            if let Err(e) = cg.remove() {
                tracing::warn!("could not remove the sandbox's cgroup: {e}");
            }
            usage
        });
        // Nothing is left to use its network: stop the stack (kill and reap).
        self.usernet = None;
        let record = self
            .supervisor
            .take()
            .map(|s| s.finish())
            .unwrap_or_default();
        let mut status = raw;
        if let Some(pipe) = self.status_pipe.take() {
            // The init wrote the program's status before exiting (unless it was killed).
            let mut buf = [0u8; 4];
            set_nonblocking(&pipe)?;
            if let Ok(4) = nix::unistd::read(&pipe, &mut buf) {
                status = i32::from_ne_bytes(buf);
            }
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        let outcome = Outcome {
            status: ExitStatus::from_raw(status),
            stdout: Vec::new(),
            stderr: Vec::new(),
            usage: Usage {
                wall,
                user_cpu: tv(ru.ru_utime),
                sys_cpu: tv(ru.ru_stime),
                max_rss: (ru.ru_maxrss as u64).saturating_mul(1024),
                cgroup_cpu: cg_usage.and_then(|u| u.cpu_time),
                peak_memory: cg_usage.and_then(|u| u.peak_memory),
                pids_peak: cg_usage.and_then(|u| u.pids_peak),
            },
            timed_out: self.timed_out,
            oom_killed: cg_usage.is_some_and(|u| u.oom_killed),
            violations: record.violations,
            seen: record.seen,
            report: self.report.clone(),
        };
        self.outcome = Some(outcome.clone());
        if let Some(stacks) = self.stacks.take() {
            // Reaped: nothing runs on them any more.
            stacks.give_back();
        }
        Ok(outcome)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.outcome.is_none() && !self.keep_running {
            let _ = self.kill();
            let _ = self.reap();
        }
        if self.keep_running {
            // The sandbox goes on: so does its network, until the thread that spawned it
            // ends (the stack's death signal).
            std::mem::forget(self.usernet.take());
        }
        if let Some(stacks) = self.stacks.take() {
            // Not reaped: its init may still run on this stack.
            stacks.leak();
        }
    }
}

const P_PIDFD: libc::idtype_t = 3;

/// `waitid(P_PIDFD, ...)` through the raw system call, which also returns the rusage of the
/// process and its reaped descendants. `Ok(None)` with `WNOHANG` when it has not ended.
pub(crate) fn waitid(
    pidfd: &OwnedFd,
    options: libc::c_int,
) -> Result<Option<(libc::c_int, libc::rusage)>, Errno> {
    // SAFETY: siginfo_t and rusage are plain data, filled by the kernel.
    let (mut info, mut ru): (libc::siginfo_t, libc::rusage) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    loop {
        // SAFETY: raw waitid with pointers to the two structs above.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                P_PIDFD,
                pidfd.as_raw_fd(),
                &mut info as *mut libc::siginfo_t,
                options,
                &mut ru as *mut libc::rusage,
            )
        };
        if rc == 0 {
            break;
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e),
        }
    }
    // SAFETY: for SIGCHLD siginfo, si_pid and si_status are valid.
    let (pid, st) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    let raw = match info.si_code {
        libc::CLD_EXITED => (st & 0xff) << 8,
        libc::CLD_KILLED => st & 0x7f,
        libc::CLD_DUMPED => (st & 0x7f) | 0x80,
        _ => st,
    };
    Ok(Some((raw, ru)))
}

/// Poll `fds` for readability (or hang-up) for at most `timeout_ms` (-1: no limit).
fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `pfds` is a valid array of pollfd.
        let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if rc >= 0 {
            break;
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(Error::io("poll the sandbox", e)),
        }
    }
    Ok(pfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect())
}

/// Read what is there (up to 64 KiB) into `buf`; 0 at the end or, on a non-blocking
/// descriptor, when nothing is there. (Also the warm mode's, `warm.rs`.)
pub(crate) fn read_some(fd: &OwnedFd, buf: &mut Vec<u8>) -> std::result::Result<usize, Errno> {
    let mut chunk = [0u8; 65536];
    loop {
        match nix::unistd::read(fd, &mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}

/// [`read_some`] with the error a caller of `Child` sees.
fn read_output(fd: &OwnedFd, buf: &mut Vec<u8>) -> Result<usize> {
    read_some(fd, buf).map_err(|e| Error::io("read the sandbox's output", e))
}

fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| Error::io("read descriptor flags", e))?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(|e| Error::io("set a descriptor non-blocking", e))?;
    Ok(())
}
