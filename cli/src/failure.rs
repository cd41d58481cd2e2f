//! [`Failure`]: why ringfence could not run the program, and the exit status that says so.

use std::fmt;

use ringfence::{Error, Stage};

/// Exit status for an error of ringfence itself (bad flags, setup failure), like `env(1)`,
/// `timeout(1)` and `docker run`.
pub const EXIT_FAILURE: i32 = 125;
/// Exit status when the program was found but could not be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit status when the program was not found.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status when the sandbox was killed at its `--timeout`, like `timeout(1)`.
pub const EXIT_TIMEOUT: i32 = 124;

/// An error that stopped ringfence from running (or waiting for) the program.
///
/// It wraps an [`anyhow::Error`] whose chain may hold a [`ringfence::Error`]; that one decides
/// the exit status and provides the stage, errno and hint.
#[derive(Debug)]
pub struct Failure(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.into())
    }
}

impl Failure {
    /// The library error behind this failure, if there is one.
    fn sandbox_error(&self) -> Option<&Error> {
        self.0.downcast_ref::<Error>()
    }

    /// The exit status: 127 when the program does not exist, 126 when it cannot be executed,
    /// 125 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self.sandbox_error() {
            Some(Error::ProgramNotFound { .. }) => EXIT_NOT_FOUND,
            Some(e) if e.stage() == Some(Stage::Exec) => {
                if e.errno().is_some_and(|n| n as i32 == libc::ENOENT) {
                    EXIT_NOT_FOUND
                } else {
                    EXIT_CANNOT_EXECUTE
                }
            }
            _ => EXIT_FAILURE,
        }
    }

    /// The setup stage that failed, for a setup failure.
    pub fn stage(&self) -> Option<Stage> {
        self.sandbox_error().and_then(Error::stage)
    }

    /// The errno behind the failure, where there is one.
    pub fn errno(&self) -> Option<i32> {
        if let Some(e) = self.sandbox_error() {
            return e.errno().map(|n| n as i32);
        }
        self.0
            .chain()
            .find_map(|c| c.downcast_ref::<std::io::Error>()?.raw_os_error())
    }

    /// What the user can do about it, when the library knows.
    pub fn hint(&self) -> Option<&'static str> {
        let e = self.sandbox_error()?;
        e.hint().or(match e {
            Error::Cgroup(c) => c.hint(),
            Error::Landlock(l) => l.hint(),
            _ => None,
        })
    }

    /// The message, without the hint (which some library errors append to their `Display`).
    pub fn message(&self) -> String {
        // The context chain down to the library's error, whose `Display` already includes
        // its own sources.
        let mut parts = Vec::new();
        for cause in self.0.chain() {
            parts.push(cause.to_string());
            if cause.downcast_ref::<Error>().is_some() {
                break;
            }
        }
        let full = parts.join(": ");
        let Some(hint) = self.hint() else {
            return full;
        };
        for suffix in [format!("; hint: {hint}"), format!("; {hint}")] {
            if let Some(m) = full.strip_suffix(&suffix) {
                return m.to_owned();
            }
        }
        full
    }
}

impl fmt::Display for Failure {
    /// `ringfence: <message>`, and the hint on its own line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ringfence: {}", self.message())?;
        if let Some(hint) = self.hint() {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}
