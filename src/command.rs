//! [`Command`]: what to run inside a sandbox, in the style of [`std::process::Command`].

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{ConfigError, Error, Result};

/// Where a standard stream of the sandboxed process goes.
#[derive(Clone, Debug, Default)]
pub enum Stdio {
    /// The parent's own stream (the default).
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A new pipe; the other end is in [`Child::stdin`](crate::Child::stdin) /
    /// `stdout` / `stderr`.
    Piped,
    /// This file descriptor (a file, a socket, one end of a pipe, ...).
    Fd(Arc<OwnedFd>),
}

impl Stdio {
    /// The parent's own stream.
    pub fn inherit() -> Stdio {
        Stdio::Inherit
    }
    /// `/dev/null`.
    pub fn null() -> Stdio {
        Stdio::Null
    }
    /// A new pipe to the parent.
    pub fn piped() -> Stdio {
        Stdio::Piped
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio::Fd(Arc::new(fd))
    }
}

impl From<std::fs::File> for Stdio {
    fn from(f: std::fs::File) -> Stdio {
        Stdio::from(OwnedFd::from(f))
    }
}

#[derive(Clone, Debug)]
enum EnvValue {
    Set(OsString),
    Inherit,
    Remove,
}

/// A program to run in a sandbox, with its arguments, environment, working directory and
/// standard streams.
///
/// It mirrors [`std::process::Command`] with one deliberate difference: **the environment is
/// empty by default**. Secrets in the parent's environment (tokens, keys, `SSH_AUTH_SOCK`) must
/// not reach untrusted code by accident; pass what the program needs with [`Command::env`],
/// [`Command::env_inherit`] or, knowingly, [`Command::inherit_env`].
///
/// A program name without `/` is looked up in `PATH` by the parent before the sandbox starts:
/// the command's own `PATH` if it sets one, else the parent's.
///
/// ```
/// use ringfence::{Command, Stdio};
/// let mut cmd = Command::new("sh");
/// cmd.arg("-c").arg("echo $GREETING").env("GREETING", "hi").stdout(Stdio::piped());
/// ```
#[derive(Clone, Debug)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    env: BTreeMap<OsString, EnvValue>,
    inherit_env: bool,
    cwd: Option<PathBuf>,
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
    pass_fds: Vec<(Arc<OwnedFd>, RawFd)>,
    pub(crate) controlling_terminal: bool,
}

impl Command {
    /// A command running `program` with no arguments, an empty environment, the parent's
    /// working directory and inherited standard streams.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: BTreeMap::new(),
            inherit_env: false,
            cwd: None,
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            pass_fds: Vec::new(),
            controlling_terminal: false,
        }
    }

    /// Append an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Append arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Set an environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.env.insert(
            key.as_ref().to_owned(),
            EnvValue::Set(val.as_ref().to_owned()),
        );
        self
    }

    /// Set several environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Copy a variable from the parent's environment at spawn time (if it is set there).
    pub fn env_inherit(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.insert(key.as_ref().to_owned(), EnvValue::Inherit);
        self
    }

    /// Remove a variable set with [`Command::env`], or hide one of the parent's when
    /// [`Command::inherit_env`] is on.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.insert(key.as_ref().to_owned(), EnvValue::Remove);
        self
    }

    /// Clear the environment: drop every variable set so far and stop inheriting the parent's.
    /// (The environment starts empty; this undoes [`Command::env`] and
    /// [`Command::inherit_env`].)
    pub fn env_clear(&mut self) -> &mut Command {
        self.env.clear();
        self.inherit_env = false;
        self
    }

    /// Start from the parent's whole environment, like [`std::process::Command`] does.
    /// Think twice: it passes every secret in it to the sandboxed program.
    pub fn inherit_env(&mut self) -> &mut Command {
        self.inherit_env = true;
        self
    }

    /// The working directory inside the sandbox (checked after privileges are dropped).
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Make stdin — a terminal given with [`Command::stdin`], such as the slave side of a
    /// pseudo-terminal the caller opened and reads — the controlling terminal of the sandbox's
    /// new session, so that interactive programs get job control (`bash -i`, `^C`, `^Z`).
    /// Only with a new session ([`Sandbox::new_session`](crate::Sandbox::new_session), on by
    /// default). Never give it the caller's own terminal: a program holding it could read
    /// what is typed there after the sandbox ends; `ringfence run -t` gives a pseudo-terminal
    /// of its own, closed when the sandbox ends.
    pub fn controlling_terminal(&mut self, on: bool) -> &mut Command {
        self.controlling_terminal = on;
        self
    }

    /// Where stdin comes from.
    pub fn stdin(&mut self, s: impl Into<Stdio>) -> &mut Command {
        self.stdin = s.into();
        self
    }

    /// Where stdout goes.
    pub fn stdout(&mut self, s: impl Into<Stdio>) -> &mut Command {
        self.stdout = s.into();
        self
    }

    /// Where stderr goes.
    pub fn stderr(&mut self, s: impl Into<Stdio>) -> &mut Command {
        self.stderr = s.into();
        self
    }

    /// Keep `fd` open in the sandboxed process under the same number. Every other descriptor
    /// but stdin, stdout and stderr is closed before the program starts.
    ///
    /// The descriptor is duplicated now, so the caller may close its own.
    pub fn pass_fd(&mut self, fd: impl AsFd) -> Result<&mut Command> {
        let target = std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd());
        self.pass_fd_as(fd, target)
    }

    /// Make `fd` available in the sandboxed process as number `target` (>= 3).
    pub fn pass_fd_as(&mut self, fd: impl AsFd, target: RawFd) -> Result<&mut Command> {
        if target < 3 || self.pass_fds.iter().any(|(_, t)| *t == target) {
            return Err(ConfigError::InvalidPassFd { target }.into());
        }
        let dup = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("duplicate a file descriptor to pass", e))?;
        self.pass_fds.push((Arc::new(dup), target));
        Ok(self)
    }

    /// The program as given.
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments (without the program).
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.args.iter().map(|a| a.as_os_str())
    }

    /// The working directory, if set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    pub(crate) fn pass_fds(&self) -> &[(Arc<OwnedFd>, RawFd)] {
        &self.pass_fds
    }

    /// The environment the program gets, as `KEY=VALUE` C strings.
    pub(crate) fn envp(&self) -> Result<Vec<CString>> {
        let mut vars: BTreeMap<OsString, OsString> = BTreeMap::new();
        if self.inherit_env {
            vars.extend(std::env::vars_os());
        }
        for (k, v) in &self.env {
            match v {
                EnvValue::Remove => {
                    vars.remove(k);
                }
                EnvValue::Set(v) => {
                    vars.insert(k.clone(), v.clone());
                }
                EnvValue::Inherit => {
                    if let Some(v) = std::env::var_os(k) {
                        vars.insert(k.clone(), v);
                    }
                }
            }
        }
        vars.into_iter()
            .map(|(k, v)| {
                if k.is_empty() || k.as_bytes().contains(&b'=') {
                    return Err(ConfigError::InvalidEnvName {
                        name: k.to_string_lossy().into_owned(),
                    }
                    .into());
                }
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                cstring(kv, "environment")
            })
            .collect()
    }

    /// The value of `PATH` the program will see, if any.
    pub(crate) fn env_path(&self) -> Option<OsString> {
        match self.env.get(OsStr::new("PATH")) {
            Some(EnvValue::Set(v)) => Some(v.clone()),
            Some(EnvValue::Remove) => None,
            Some(EnvValue::Inherit) => std::env::var_os("PATH"),
            None if self.inherit_env => std::env::var_os("PATH"),
            None => None,
        }
    }

    /// `argv`, with the program as given as `argv[0]`.
    pub(crate) fn argv(&self) -> Result<Vec<CString>> {
        if self.program.is_empty() {
            return Err(ConfigError::EmptyProgram.into());
        }
        std::iter::once(cstring(self.program.as_bytes().to_vec(), "program"))
            .chain(
                self.args
                    .iter()
                    .map(|a| cstring(a.as_bytes().to_vec(), "argument")),
            )
            .collect()
    }

    /// The working directory as a C string.
    pub(crate) fn cwd_cstring(&self) -> Result<Option<CString>> {
        self.cwd
            .as_ref()
            .map(|d| cstring(d.as_os_str().as_bytes().to_vec(), "working directory"))
            .transpose()
    }

    /// Whether the program is a bare name (looked up in `PATH`).
    pub(crate) fn is_bare_name(&self) -> bool {
        !self.program.is_empty() && !self.program.as_bytes().contains(&b'/')
    }

    /// `dir/program` for every directory of the `PATH` the program sees (or the default one),
    /// for a lookup inside the sandbox's own root.
    pub(crate) fn path_candidates(&self) -> Result<Vec<CString>> {
        let path = self.env_path().unwrap_or_else(|| {
            OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        });
        std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .map(|d| cstring(d.join(&self.program).into_os_string().into_vec(), "program"))
            .collect()
    }

    /// Resolve the program to the path `execve` gets.
    pub(crate) fn resolve_program(&self) -> Result<CString> {
        if self.program.is_empty() {
            return Err(ConfigError::EmptyProgram.into());
        }
        if self.program.as_bytes().contains(&b'/') {
            return cstring(self.program.as_bytes().to_vec(), "program");
        }
        let path = self
            .env_path()
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
        for dir in std::env::split_paths(&path) {
            let candidate = if dir.as_os_str().is_empty() {
                PathBuf::from(&self.program)
            } else {
                dir.join(&self.program)
            };
            if is_executable(&candidate) {
                return cstring(candidate.into_os_string().into_vec(), "program");
            }
        }
        Err(Error::ProgramNotFound {
            program: PathBuf::from(&self.program),
            path: path.to_string_lossy().into_owned(),
        })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) => m.is_file() && m.permissions().mode() & 0o111 != 0,
        Err(_) => false,
    }
}

fn cstring(bytes: Vec<u8>, what: &'static str) -> Result<CString> {
    CString::new(bytes).map_err(|_| ConfigError::InteriorNul { what }.into())
}

impl From<&std::process::Command> for Command {
    /// Take the program, arguments, explicitly set environment variables and working directory
    /// of a [`std::process::Command`]. Its stdio settings cannot be read and are not taken,
    /// and the parent's environment is not inherited (see [`Command`]).
    fn from(c: &std::process::Command) -> Command {
        let mut cmd = Command::new(c.get_program());
        cmd.args(c.get_args());
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        if let Some(d) = c.get_current_dir() {
            cmd.current_dir(d);
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_empty_by_default() {
        let c = Command::new("true");
        assert!(c.envp().unwrap().is_empty());
    }

    #[test]
    fn env_set_inherit_remove() {
        let mut c = Command::new("true");
        c.env("A", "1").env("B", "2").env_remove("B");
        assert_eq!(c.envp().unwrap(), vec![CString::new("A=1").unwrap()]);
        c.env_inherit("PATH");
        let envp = c.envp().unwrap();
        assert_eq!(envp.len(), 2);
        assert!(envp[1].to_bytes().starts_with(b"PATH="));
        c.env_clear();
        assert!(c.envp().unwrap().is_empty());
        c.inherit_env().env_remove("PATH");
        assert!(
            !c.envp()
                .unwrap()
                .iter()
                .any(|v| v.to_bytes().starts_with(b"PATH="))
        );
    }

    #[test]
    fn bad_env_names_and_nuls_are_refused() {
        let mut c = Command::new("true");
        c.env("A=B", "1");
        assert!(matches!(
            c.envp(),
            Err(Error::Config(ConfigError::InvalidEnvName { .. }))
        ));
        let mut c = Command::new("true");
        c.arg("a\0b");
        assert!(matches!(
            c.argv(),
            Err(Error::Config(ConfigError::InteriorNul { what: "argument" }))
        ));
        assert!(matches!(
            Command::new("").resolve_program(),
            Err(Error::Config(ConfigError::EmptyProgram))
        ));
    }

    #[test]
    fn program_lookup_uses_the_commands_path() {
        let mut c = Command::new("sh");
        c.env("PATH", "/nonexistent:/bin:/usr/bin");
        let p = c.resolve_program().unwrap();
        assert!(p.to_bytes().ends_with(b"/sh"), "{p:?}");
        let mut c = Command::new("definitely-not-a-program-ringfence");
        c.env("PATH", "/bin");
        match c.resolve_program() {
            Err(Error::ProgramNotFound { path, .. }) => assert_eq!(path, "/bin"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn from_std_command() {
        let mut s = std::process::Command::new("/bin/echo");
        s.arg("x").env("K", "V").current_dir("/tmp");
        let c = Command::from(&s);
        assert_eq!(c.get_program(), "/bin/echo");
        assert_eq!(c.get_args().collect::<Vec<_>>(), vec!["x"]);
        assert_eq!(c.envp().unwrap(), vec![CString::new("K=V").unwrap()]);
        assert_eq!(c.get_current_dir(), Some(Path::new("/tmp")));
    }

    #[test]
    fn pass_fd_targets_are_checked() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let mut c = Command::new("true");
        assert!(c.pass_fd_as(&f, 2).is_err());
        c.pass_fd_as(&f, 10).unwrap();
        assert!(c.pass_fd_as(&f, 10).is_err());
    }
}
