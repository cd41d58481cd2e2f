//! Terminals: a terminal reaches a sandboxed program only through a pseudo-terminal that
//! ringfence owns.
//!
//! With `-t`, the program's stdin, stdout and stderr are the slave side of a new
//! pseudo-terminal, its controlling terminal (so job control works); ringfence copies between
//! its own stdio and the master side, with the caller's terminal in raw mode, and passes on
//! window size changes. Without `-t`, a stdio stream of ringfence's that is a terminal is
//! given to the program as a pipe that ringfence copies (stdin only with `-i`; else
//! `/dev/null`). Either way, when the sandbox ends ringfence closes its side: a process that
//! kept the descriptor (or reopened it through `/proc/PID/fd`) holds a dead pipe or a hung-up
//! pseudo-terminal, never the caller's terminal.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty on a descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// The window size of the caller's terminal, if one of its stdio streams is one.
fn window_size() -> Option<libc::winsize> {
    (0..3).find_map(|fd| {
        // SAFETY: winsize is plain data; TIOCGWINSZ fills it.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: ioctl TIOCGWINSZ with a pointer to a winsize.
        (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
    })
}

/// A new pseudo-terminal: the master stays with ringfence, the slave goes to the program.
pub struct Pty {
    /// ringfence's side.
    pub master: OwnedFd,
    /// The program's side.
    pub slave: OwnedFd,
}

/// Open a pseudo-terminal with the caller's window size.
pub fn open_pty() -> io::Result<Pty> {
    let ws = window_size().map(|w| nix::pty::Winsize {
        ws_row: w.ws_row,
        ws_col: w.ws_col,
        ws_xpixel: w.ws_xpixel,
        ws_ypixel: w.ws_ypixel,
    });
    let p = nix::pty::openpty(ws.as_ref(), None).map_err(io::Error::from)?;
    for fd in [&p.master, &p.slave] {
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(Pty {
        master: p.master,
        slave: p.slave,
    })
}

/// A pipe with both ends close-on-exec: (read, write).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here only.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Write all of `buf` to `fd`.
fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: write from a valid buffer.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// What a copy does when its source ends.
#[derive(Clone, Copy)]
enum AtEnd {
    /// Nothing (the destination is closed when the copy's owner drops it).
    Nothing,
    /// Write the terminal's end-of-file character (`^D`): the source was the caller's stdin,
    /// the destination a pseudo-terminal that stays open.
    SendEof,
}

/// Copy from `from` to `to` until `from` ends (end of file, or `EIO` from a pseudo-terminal
/// master whose slave is closed) or `stop` becomes readable.
fn copy(from: RawFd, to: RawFd, stop: RawFd, at_end: AtEnd) {
    let mut buf = [0u8; 16384];
    loop {
        // SAFETY: the descriptors stay open until the copy's thread is joined.
        let (f, s) = unsafe { (BorrowedFd::borrow_raw(from), BorrowedFd::borrow_raw(stop)) };
        let mut fds = [
            PollFd::new(f, PollFlags::POLLIN),
            PollFd::new(s, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        if fds[1].any().unwrap_or(true) {
            return;
        }
        // SAFETY: read into a valid buffer.
        let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            if let AtEnd::SendEof = at_end {
                write_all(to, &[4]);
            }
            return;
        }
        if !write_all(to, &buf[..n as usize]) {
            return;
        }
    }
}

/// Copies between ringfence's stdio and the sandbox's side (pipes or a pseudo-terminal
/// master), stopped and closed by [`Relay::finish`].
pub struct Relay {
    /// Copies of the sandbox's output, which end by themselves when every writer is gone.
    outputs: Vec<JoinHandle<()>>,
    /// Copies of ringfence's input, stopped at the end.
    inputs: Vec<JoinHandle<()>>,
    /// Readable once the copies are to stop.
    stop: (OwnedFd, OwnedFd),
    /// The caller's terminal settings, restored at the end.
    restore: Option<Termios>,
}

impl Relay {
    /// A relay without copies yet.
    pub fn new() -> io::Result<Relay> {
        Ok(Relay {
            outputs: Vec::new(),
            inputs: Vec::new(),
            stop: pipe()?,
            restore: None,
        })
    }

    /// Start a copy; `keep` (the sandbox's side) is closed when the copy ends.
    fn start(
        &mut self,
        from: RawFd,
        to: RawFd,
        at_end: AtEnd,
        output: bool,
        keep: std::sync::Arc<OwnedFd>,
    ) -> io::Result<()> {
        let stop = self.stop.0.as_raw_fd();
        let handle = std::thread::Builder::new()
            .name("stdio-copy".into())
            .spawn(move || {
                copy(from, to, stop, at_end);
                drop(keep);
            })?;
        if output {
            self.outputs.push(handle);
        } else {
            self.inputs.push(handle);
        }
        Ok(())
    }

    /// Copy what the sandbox writes to the pipe `r` to ringfence's `fd` (1 or 2).
    pub fn output(&mut self, r: OwnedFd, fd: RawFd) -> io::Result<()> {
        let r = std::sync::Arc::new(r);
        self.start(r.as_raw_fd(), fd, AtEnd::Nothing, true, r.clone())
    }

    /// Copy ringfence's stdin to the pipe `w`.
    pub fn input(&mut self, w: OwnedFd) -> io::Result<()> {
        // Closed when stdin ends, so that the program sees the end too.
        let w = std::sync::Arc::new(w);
        self.start(0, w.as_raw_fd(), AtEnd::Nothing, false, w.clone())
    }

    /// Relay a pseudo-terminal's master: ringfence's stdin to it when `input` (the caller's
    /// terminal, if stdin is one, in raw mode until the end; else an end-of-file character
    /// follows the end of stdin), its output to ringfence's stdout, and the caller's window
    /// size changes (SIGWINCH, blocked by [`block_winch`]) to it.
    pub fn terminal(&mut self, master: OwnedFd, input: bool) -> io::Result<()> {
        let master = std::sync::Arc::new(master);
        // SAFETY: fd 0 stays open for the life of the process.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        if input && is_terminal(0) {
            let saved = tcgetattr(stdin).map_err(io::Error::from)?;
            let mut raw = saved.clone();
            cfmakeraw(&mut raw);
            tcsetattr(stdin, SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
            self.restore = Some(saved);
        }
        let m = master.as_raw_fd();
        if input {
            self.start(0, m, AtEnd::SendEof, false, master.clone())?;
        }
        self.start(m, 1, AtEnd::Nothing, true, master.clone())?;
        // Weak: the master is closed at the end whatever this thread does.
        let winch_master = std::sync::Arc::downgrade(&master);
        std::thread::Builder::new()
            .name("winch".into())
            .spawn(move || {
                let set = winch_set();
                loop {
                    let mut sig = 0;
                    // SAFETY: `set` is initialised; sigwait stores the signal number.
                    if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                        continue;
                    }
                    let Some(master) = winch_master.upgrade() else {
                        return;
                    };
                    if let Some(ws) = window_size() {
                        // SAFETY: TIOCSWINSZ with a valid winsize on our master; the kernel
                        // sends SIGWINCH to the terminal's foreground process group.
                        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                    }
                }
            })?;
        Ok(())
    }

    /// Once the sandbox has ended: let the output copies drain what is left (at most `grace`:
    /// a process that kept the pipe or the terminal open does not hold ringfence up), stop every
    /// copy, close the sandbox's sides and restore the caller's terminal.
    pub fn finish(mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while self.outputs.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        write_all(self.stop.1.as_raw_fd(), b"x");
        for h in self.outputs.drain(..).chain(self.inputs.drain(..)) {
            let _ = h.join();
        }
        self.restore_terminal();
    }

    fn restore_terminal(&mut self) {
        if let Some(saved) = self.restore.take() {
            // SAFETY: fd 0 stays open for the life of the process.
            let stdin = unsafe { BorrowedFd::borrow_raw(0) };
            let _ = tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &saved);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        write_all(self.stop.1.as_raw_fd(), b"x");
        self.restore_terminal();
    }
}

fn winch_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid set and signal number.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGWINCH);
    }
    set
}

/// Block SIGWINCH in this thread and every thread it starts later, for [`Relay::terminal`]'s
/// thread to take it. Call before any other thread starts.
pub fn block_winch() {
    let set = winch_set();
    // SAFETY: `set` is initialised; the old mask is not needed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// The streams for a sandboxed program, by the rule above: `(stdin, stdout, stderr, relay)`.
/// With `tty`, a pseudo-terminal; else, for each of ringfence's stdio streams that is a
/// terminal, a pipe (stdin only with `interactive`, else `/dev/null`); streams that are not
/// terminals are inherited.
pub fn streams(tty: bool, interactive: bool) -> io::Result<([ringfence::Stdio; 3], Option<Relay>)> {
    use ringfence::Stdio;
    if tty {
        let pty = open_pty()?;
        let slave = std::sync::Arc::new(pty.slave);
        let mut relay = Relay::new()?;
        // Input is relayed from a terminal, or from anything else with -i (`-it` with a
        // pipe feeds it to the program as typed input).
        relay.terminal(pty.master, interactive || is_terminal(0))?;
        let s = || Stdio::Fd(slave.clone());
        return Ok(([s(), s(), s()], Some(relay)));
    }
    if !(0..3).any(is_terminal) {
        return Ok(([Stdio::Inherit, Stdio::Inherit, Stdio::Inherit], None));
    }
    let mut relay = Relay::new()?;
    let stdin = if !is_terminal(0) {
        Stdio::Inherit
    } else if interactive {
        let (r, w) = pipe()?;
        relay.input(w)?;
        Stdio::from(r)
    } else {
        Stdio::Null
    };
    let mut out = |fd: RawFd| -> io::Result<Stdio> {
        if !is_terminal(fd) {
            return Ok(Stdio::Inherit);
        }
        let (r, w) = pipe()?;
        relay.output(r, fd)?;
        Ok(Stdio::from(w))
    };
    let stdout = out(1)?;
    let stderr = out(2)?;
    Ok(([stdin, stdout, stderr], Some(relay)))
}
