//! The state directory, where named sandboxes and pods are recorded, and its files.
//!
//! The directory is `$RINGFENCE_STATE_DIR`, else `/run/ringfence` for root, else
//! `$XDG_RUNTIME_DIR/ringfence`, else `/tmp/ringfence-UID`. Whichever it is, it is created
//! mode 0700 and used only if it is a real directory (not a symlink), owned by this user and
//! writable by nobody else: another user who pre-creates `/tmp/ringfence-UID` (or plants a
//! symlink there) makes ringfence refuse it instead of writing through it. Once checked it is
//! held open, and every file in it is reached relative to that descriptor without following
//! symlinks; records are created mode 0600, and a record that is not a regular file owned by
//! this user is refused.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::failure::Failure;

/// The largest record read back (records are a few hundred bytes).
const MAX_RECORD: u64 = 1 << 20;

/// This process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Where the records live (not yet checked: see [`Dir::open`]).
pub fn path() -> PathBuf {
    if let Some(d) = std::env::var_os("RINGFENCE_STATE_DIR") {
        return PathBuf::from(d);
    }
    if euid() == 0 {
        return PathBuf::from("/run/ringfence");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Path::new(&d).join("ringfence"),
        _ => std::env::temp_dir().join(format!("ringfence-{}", euid())),
    }
}

/// Why a directory or file in the state directory cannot be trusted, if it cannot.
fn untrusted(st: &FileStat, dir: bool) -> Option<String> {
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if dir && kind != SFlag::S_IFDIR {
        return Some("it is not a directory".into());
    }
    if !dir && kind != SFlag::S_IFREG {
        return Some("it is not a regular file".into());
    }
    if st.st_uid != euid() {
        return Some(format!(
            "it belongs to uid {}, not to you (uid {}): another user may have created it",
            st.st_uid,
            euid()
        ));
    }
    if st.st_mode & 0o022 != 0 {
        return Some(format!(
            "other users can write to it (mode {:o})",
            st.st_mode & 0o7777
        ));
    }
    None
}

/// Open the directory `name` below `at` (creating it mode 0700 if `create`), without following
/// a symlink, and check it; `Ok(None)` if it does not exist and `create` is false.
fn open_dir(
    at: impl AsFd,
    name: &Path,
    shown: &Path,
    create: bool,
) -> Result<Option<OwnedFd>, Failure> {
    if create {
        match mkdirat(&at, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(anyhow!(e)
                    .context(format!(
                        "cannot create the state directory {}",
                        shown.display()
                    ))
                    .into());
            }
        }
    }
    let fd = match openat(
        &at,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) if !create => return Ok(None),
        Err(e) => return Err(refuse(e, shown)),
    };
    let st = fstat(&fd).with_context(|| format!("cannot stat {}", shown.display()))?;
    if let Some(why) = untrusted(&st, true) {
        return Err(anyhow!(
            "refusing the state directory {}: {why}; remove it, or set RINGFENCE_STATE_DIR (or XDG_RUNTIME_DIR) to a directory of your own",
            shown.display()
        )
        .into());
    }
    if st.st_mode & 0o077 != 0 {
        // Made by an older ringfence or by hand: nobody else needs to read it.
        let _ = fchmod(&fd, Mode::from_bits_truncate(0o700));
    }
    Ok(Some(fd))
}

fn refuse(e: Errno, shown: &Path) -> Failure {
    let why = match e {
        Errno::ELOOP | Errno::ENOTDIR => "it is a symlink or not a directory",
        e => e.desc(),
    };
    anyhow!(
        "refusing the state directory {}: {why}; remove it, or set RINGFENCE_STATE_DIR (or XDG_RUNTIME_DIR) to a directory of your own",
        shown.display()
    )
    .into()
}

/// One checked directory of the state directory (`sandboxes` or `pods`), held open.
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Open (creating if `create`) the subdirectory `sub` of the state directory; with
    /// `create` false, a state directory that does not exist yet gives `Ok(None)`.
    pub fn open(sub: &str, create: bool) -> Result<Option<Dir>, Failure> {
        let root = path();
        let root = if root.is_relative() {
            std::env::current_dir()
                .context("cannot read the working directory")?
                .join(root)
        } else {
            root
        };
        let (parent, name) = match (root.parent(), root.file_name()) {
            (Some(p), Some(n)) => (p.to_owned(), PathBuf::from(n)),
            _ => return Err(anyhow!("invalid state directory {}", root.display()).into()),
        };
        if create {
            std::fs::create_dir_all(&parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let parent_fd = match nix::fcntl::open(
            &parent,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(e) => {
                return Err(anyhow!(e)
                    .context(format!("cannot open {}", parent.display()))
                    .into());
            }
        };
        let Some(root_fd) = open_dir(&parent_fd, &name, &root, create)? else {
            return Ok(None);
        };
        let path = root.join(sub);
        let Some(fd) = open_dir(&root_fd, Path::new(sub), &path, create)? else {
            return Ok(None);
        };
        Ok(Some(Dir { fd, path }))
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the file `name`, which must be a regular file of this user's that nobody else can
    /// write; `Ok(None)` if it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, Failure> {
        let fd = match openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => {
                return Err(anyhow!(
                    "refusing {}: {}",
                    self.path.join(name).display(),
                    if e == Errno::ELOOP {
                        "it is a symlink"
                    } else {
                        e.desc()
                    }
                )
                .into());
            }
        };
        let st = fstat(&fd)?;
        if let Some(why) = untrusted(&st, false) {
            return Err(anyhow!("refusing {}: {why}", self.path.join(name).display()).into());
        }
        let mut data = Vec::new();
        std::fs::File::from(fd)
            .take(MAX_RECORD)
            .read_to_end(&mut data)
            .with_context(|| format!("cannot read {}", self.path.join(name).display()))?;
        Ok(Some(data))
    }

    /// Open the file `name` for reading, checked as [`Dir::read`] does; `Ok(None)` if it does
    /// not exist.
    pub fn open_read(&self, name: &str) -> Result<Option<std::fs::File>, Failure> {
        let fd = match openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => {
                return Err(
                    anyhow!("refusing {}: {}", self.path.join(name).display(), e.desc()).into(),
                );
            }
        };
        let st = fstat(&fd)?;
        if let Some(why) = untrusted(&st, false) {
            return Err(anyhow!("refusing {}: {why}", self.path.join(name).display()).into());
        }
        Ok(Some(std::fs::File::from(fd)))
    }

    /// Create the file `name` (mode 0600; failing with `AlreadyExists` if it exists, whatever
    /// it is) and write `data` to it.
    pub fn create(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        let mut f = self.create_file(name)?;
        f.write_all(data)
    }

    /// Create the file `name`, mode 0600, for writing (never through a symlink).
    pub fn create_file(&self, name: &str) -> std::io::Result<std::fs::File> {
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        Ok(std::fs::File::from(fd))
    }

    /// Replace the file `name` by one holding `data`, atomically (a reader sees the old or the
    /// new file, never half of one).
    pub fn replace(&self, name: &str, data: &[u8]) -> Result<(), Failure> {
        // Names never start with '.', so this never collides with a record.
        let tmp = format!(".{name}.{}.tmp", std::process::id());
        let _ = unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        self.create(&tmp, data)
            .with_context(|| format!("cannot write {}", self.path.join(&tmp).display()))?;
        renameat(&self.fd, tmp.as_str(), &self.fd, name)
            .with_context(|| format!("cannot replace {}", self.path.join(name).display()))?;
        Ok(())
    }

    /// Remove the file `name`, if it is there.
    pub fn remove(&self, name: &str) {
        let _ = unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir);
    }

    /// Whether the file `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// The names of the files in the directory.
    pub fn names(&self) -> Vec<String> {
        let Ok(dup) = self.fd.try_clone() else {
            return Vec::new();
        };
        let Ok(mut dir) = nix::dir::Dir::from_fd(dup) else {
            return Vec::new();
        };
        let mut out: Vec<String> = dir
            .iter()
            .flatten()
            .filter_map(|e| {
                OsString::from_vec(e.file_name().to_bytes().to_vec())
                    .into_string()
                    .ok()
            })
            .filter(|n| n != "." && n != "..")
            .collect();
        out.sort();
        out
    }
}
