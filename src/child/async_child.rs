//! [`AsyncChild`]: waiting for a sandbox on a Tokio runtime (the `tokio` feature).
//!
//! Only the waiting is asynchronous: the end of the sandbox is learnt from its pidfd through
//! the runtime's reactor ([`AsyncFd`]), the deadline through its timer, and the piped
//! streams are Tokio pipes. Once the pidfd is readable, the blocking [`Child`]'s own reaping
//! runs (it returns at once then), so the [`Outcome`] is the same as with [`Child::wait`].

use std::future::{Future, poll_fn};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;
use ::tokio::net::unix::pipe;
use nix::errno::Errno;

use super::{Child, Outcome, poll_readable};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::probe::Report;
use crate::sandbox::Sandbox;

/// A running sandbox whose end is awaited on a Tokio runtime: the asynchronous twin of
/// [`Child`], in the style of [`tokio::process::Child`](https://docs.rs/tokio/1/tokio/process/struct.Child.html).
/// Available with the `tokio` feature.
///
/// Get one from [`Sandbox::spawn_async`] or [`Child::into_async`]. [`wait`](Self::wait)
/// and [`wait_with_output`](Self::wait_with_output) give the same [`Outcome`] as their
/// blocking counterparts and kill the sandbox at its [`timeout`](Sandbox::timeout). Both are
/// cancel safe: dropping the future (in a `select!`, under `tokio::time::timeout`) leaves the
/// sandbox running and this handle usable, so a later `wait` or [`kill`](Self::kill) finishes
/// the job.
///
/// Dropping an `AsyncChild` kills the whole sandbox, as dropping a [`Child`] does (unless
/// [`keep_running`](Self::keep_running)).
///
/// It needs a runtime with its IO and time drivers (`enable_all()`, which `#[tokio::main]`
/// and `#[tokio::test]` give); creating one outside such a runtime panics, as Tokio's own
/// IO types do. Reaping the ended sandbox removes its cgroup and stops its seccomp
/// supervisor on the calling task: short steps, the same as the blocking path takes.
///
/// The death signal of a sandbox is tied to the thread that spawned it
/// ([`Sandbox::die_with_parent`]): spawn from a runtime thread, not from a `spawn_blocking`
/// closure (whose thread ends after a while idle), or turn the signal off.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> ringfence::Result<()> {
/// use ringfence::{Command, Sandbox, Stdio};
/// use std::time::Duration;
///
/// let sandbox = Sandbox::new().pid_ns().timeout(Duration::from_secs(10));
///
/// // Many sandboxes at once on one thread: each wait is a pidfd in the runtime's reactor.
/// let mut children = Vec::new();
/// for i in 0..3 {
///     let mut cmd = Command::new("/bin/sh");
///     cmd.args(["-c", &format!("echo {i}; exit {i}")]).stdout(Stdio::piped());
///     children.push(sandbox.spawn_async(&cmd)?);
/// }
/// let mut codes = Vec::new();
/// for child in children {
///     let out = child.wait_with_output().await?;
///     assert_eq!(out.stdout, format!("{}\n", out.shell_code()).as_bytes());
///     codes.push(out.shell_code());
/// }
/// assert_eq!(codes, [0, 1, 2]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncChild {
    // Declared before `inner`, so that the pidfd leaves the reactor before it is closed.
    ready: AsyncFd<RawFd>,
    inner: Child,
    /// The write end of the program's stdin, when it was [`Stdio::Piped`](crate::Stdio::Piped).
    pub stdin: Option<pipe::Sender>,
    /// The read end of the program's stdout, when piped.
    pub stdout: Option<pipe::Receiver>,
    /// The read end of the program's stderr, when piped.
    pub stderr: Option<pipe::Receiver>,
}

/// What ended a wait for readiness.
enum Event {
    /// The sandbox's first process has ended.
    Ended,
    /// The deadline passed.
    Deadline,
}

fn register(e: std::io::Error) -> Error {
    Error::io("register the sandbox with the Tokio runtime", e)
}

impl Child {
    /// Turn this handle into an [`AsyncChild`], to be awaited on the current Tokio runtime
    /// (the piped streams become Tokio pipes). Available with the `tokio` feature.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime with its IO driver enabled.
    pub fn into_async(mut self) -> Result<AsyncChild> {
        // SAFETY: the pidfd stays open as long as the `AsyncFd`: both end up in the same
        // `AsyncChild`, whose `ready` field is dropped before its `inner` (declaration order),
        // and nothing closes or replaces a `Child`'s pidfd before the `Child` is dropped.
        let ready =
            unsafe { AsyncFd::register_with_interest(self.pidfd.as_raw_fd(), Interest::READABLE) }
                .map_err(|e| register(e.into()))?;
        let stdin = self
            .stdin
            .take()
            .map(|s| pipe::Sender::from_owned_fd(OwnedFd::from(s)))
            .transpose()
            .map_err(register)?;
        let stdout = self
            .stdout
            .take()
            .map(|s| pipe::Receiver::from_owned_fd(OwnedFd::from(s)))
            .transpose()
            .map_err(register)?;
        let stderr = self
            .stderr
            .take()
            .map(|s| pipe::Receiver::from_owned_fd(OwnedFd::from(s)))
            .transpose()
            .map_err(register)?;
        Ok(AsyncChild {
            ready,
            inner: self,
            stdin,
            stdout,
            stderr,
        })
    }
}

impl Sandbox {
    /// Start `cmd` in a new instance of this sandbox, as an [`AsyncChild`] for the current
    /// Tokio runtime. The start itself is synchronous and quick (it returns once the program
    /// has been `execve`d), like [`tokio::process::Command::spawn`](https://docs.rs/tokio/1/tokio/process/struct.Command.html#method.spawn).
    /// Available with the `tokio` feature.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime with its IO driver enabled.
    pub fn spawn_async(&self, cmd: &Command) -> Result<AsyncChild> {
        self.spawn(cmd)?.into_async()
    }

    /// [`Sandbox::output`] on a Tokio runtime: run `cmd` to completion and collect its
    /// output (stdout and stderr captured and stdin `/dev/null`, unless the command set them).
    /// Available with the `tokio` feature.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime with its IO and time drivers enabled.
    pub async fn output_async(&self, cmd: &Command) -> Result<Outcome> {
        self.spawn_async(&crate::sandbox::for_output(cmd))?
            .wait_with_output()
            .await
    }
}

impl AsyncChild {
    /// The pid of the sandbox's first process (see [`Child::id`]).
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// A pidfd of the sandbox's first process.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.inner.pidfd()
    }

    /// What this sandbox got, layer by layer.
    pub fn report(&self) -> &Report {
        self.inner.report()
    }

    /// When the sandbox will be killed, if it has a timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline()
    }

    /// Do not kill the sandbox when this handle is dropped.
    pub fn keep_running(&mut self) {
        self.inner.keep_running();
    }

    /// Send a signal to the sandbox's first process (see [`Child::signal`]).
    pub fn signal(&self, signal: crate::Signal) -> Result<()> {
        self.inner.signal(signal)
    }

    /// Kill the whole sandbox with `SIGKILL` (see [`Child::kill`]) without waiting for its
    /// end; [`wait`](Self::wait) then gives the outcome.
    pub fn start_kill(&mut self) -> Result<()> {
        self.inner.kill()
    }

    /// Kill the whole sandbox and wait for its end. A sandbox that has already ended is not an
    /// error; the outcome stays available from [`wait`](Self::wait).
    pub async fn kill(&mut self) -> Result<()> {
        self.start_kill()?;
        self.wait().await.map(drop)
    }

    /// Check whether the sandbox has ended, without waiting (see [`Child::try_wait`]).
    pub fn try_wait(&mut self) -> Result<Option<Outcome>> {
        self.inner.try_wait()
    }

    /// Wait for the sandbox to end, killing it at its deadline (the outcome then says
    /// `timed_out`). Closes stdin first, so that a program reading it sees its end. Cancel
    /// safe; once the sandbox has ended, every call returns the same outcome.
    pub async fn wait(&mut self) -> Result<Outcome> {
        drop(self.stdin.take());
        loop {
            if let Some(o) = &self.inner.outcome {
                return Ok(o.clone());
            }
            match self.next_event().await? {
                Event::Ended => return self.inner.reap(),
                Event::Deadline => {
                    self.inner.timed_out = true;
                    self.inner.kill()?;
                }
            }
        }
    }

    /// Close stdin, collect stdout and stderr while waiting (each when piped), and wait for
    /// the end, killing the sandbox at its deadline — [`Child::wait_with_output`] on the
    /// runtime. When the sandbox's first process has ended, what is left in the pipes is read
    /// and the collection stops, so a leftover process holding a pipe cannot make it hang.
    pub async fn wait_with_output(mut self) -> Result<Outcome> {
        drop(self.stdin.take());
        let mut pipes = [self.stdout.take(), self.stderr.take()];
        let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let outcome = {
            let mut wait = pin!(self.wait());
            poll_fn(|cx| {
                for (pipe, buf) in pipes.iter_mut().zip(bufs.iter_mut()) {
                    if let Some(p) = pipe {
                        match read_ready(p, buf, cx) {
                            Ok(true) => *pipe = None,
                            Ok(false) => {}
                            Err(e) => return Poll::Ready(Err(e)),
                        }
                    }
                }
                wait.as_mut().poll(cx)
            })
            .await
        };
        let mut outcome = outcome?;
        // Whatever the program wrote before it ended is in the pipes now.
        for (pipe, buf) in pipes.iter().zip(bufs.iter_mut()) {
            if let Some(p) = pipe {
                read_left(p.as_fd(), buf)?;
            }
        }
        let [out, err] = bufs;
        outcome.stdout = out;
        outcome.stderr = err;
        Ok(outcome)
    }

    /// Wait until the sandbox's first process ends or the deadline (unless already acted on)
    /// passes.
    async fn next_event(&self) -> Result<Event> {
        let deadline = self.inner.deadline.filter(|_| !self.inner.timed_out);
        let mut sleep = pin!(deadline.map(|d| ::tokio::time::sleep_until(d.into())));
        poll_fn(|cx| {
            if let Poll::Ready(r) = self.poll_ended(cx) {
                return Poll::Ready(r.map(|()| Event::Ended));
            }
            match sleep.as_mut().as_pin_mut().map(|s| s.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Ok(Event::Deadline)),
                _ => Poll::Pending,
            }
        })
        .await
    }

    /// Ready once the pidfd is readable, that is, once the first process has ended.
    fn poll_ended(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            let mut guard = ready!(self.ready.poll_read_ready(cx))
                .map_err(|e| Error::io("wait for the sandbox", e))?;
            // The reactor's readiness can be stale: ask the pidfd itself.
            if poll_readable(&[self.inner.pidfd.as_fd()], 0)?[0] {
                return Poll::Ready(Ok(()));
            }
            guard.clear_ready();
        }
    }
}

/// Read what `pipe` has now into `buf`, registering for more. `Ok(true)` at its end.
fn read_ready(pipe: &pipe::Receiver, buf: &mut Vec<u8>, cx: &mut Context<'_>) -> Result<bool> {
    let mut chunk = [0u8; 65536];
    loop {
        match pipe.poll_read_ready(cx) {
            Poll::Pending => return Ok(false),
            Poll::Ready(Err(e)) => return Err(Error::io("wait for the sandbox's output", e)),
            Poll::Ready(Ok(())) => {}
        }
        match pipe.try_read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read the sandbox's output", e)),
        }
    }
}

/// Read what is left in a (non-blocking) pipe, without waiting for more.
fn read_left(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> Result<()> {
    let mut chunk = [0u8; 65536];
    loop {
        match nix::unistd::read(fd, &mut chunk) {
            Ok(0) | Err(Errno::EAGAIN) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::io("read the sandbox's output", e)),
        }
    }
}
