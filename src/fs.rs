//! The sandbox's filesystem view: a new root built from binds, tmpfs, proc, a minimal /dev,
//! overlay layers, directories, symlinks and files — as data, prepared by the parent into a
//! plan that the sandboxed process applies with descriptor-based mount calls.
//!
//! Sources are checked by the parent and cloned by the sandboxed process from its copy of the
//! caller's mount tree (`open_tree` only clones mounts of the caller's own namespace).
//! Destinations are resolved by the sandboxed process inside the new root with
//! `openat2(RESOLVE_IN_ROOT)`: a symlink planted in a directory the sandboxed code could write
//! (in a bind of a shared work directory, say) resolves inside the new root and can never
//! redirect a mount onto the host — the class of bugs behind bubblewrap's CVEs.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{ConfigError, Error, Result};

/// A size in bytes: of a tmpfs ([`Sandbox::mount_tmpfs_sized`](crate::Sandbox::mount_tmpfs_sized)),
/// of a memory limit ([`Sandbox::memory_limit`](crate::Sandbox::memory_limit)). Built with
/// [`Size::mib`] and its siblings, or from a plain number of bytes (`u64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    /// `n` bytes.
    pub const fn bytes(n: u64) -> Size {
        Size(n)
    }
    /// `n` KiB.
    pub const fn kib(n: u64) -> Size {
        Size(n << 10)
    }
    /// `n` MiB.
    pub const fn mib(n: u64) -> Size {
        Size(n << 20)
    }
    /// `n` GiB.
    pub const fn gib(n: u64) -> Size {
        Size(n << 30)
    }
}

impl From<u64> for Size {
    /// `n` bytes.
    fn from(n: u64) -> Size {
        Size(n)
    }
}

impl From<Size> for u64 {
    fn from(s: Size) -> u64 {
        s.0
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

/// One step of building the sandbox's filesystem, applied in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FsOp {
    Bind {
        src: PathBuf,
        dst: PathBuf,
        write: bool,
        dev: bool,
        optional: bool,
        /// Follow symlinks in `src`: only for the host's system paths that ringfence binds
        /// itself ([`FsOp::HostSystem`]); a source the caller names may go through no symlink.
        follow: bool,
    },
    Tmpfs {
        dst: PathBuf,
        size: Size,
        inodes: Option<u64>,
        mode: u32,
    },
    Proc {
        dst: PathBuf,
    },
    Dev {
        dst: PathBuf,
    },
    Mkdir {
        dst: PathBuf,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    File {
        dst: PathBuf,
        data: Vec<u8>,
        mode: u32,
    },
    /// The host's `/usr`, `/bin`, `/sbin`, `/lib*` read-only, mirroring merged-`/usr` symlinks,
    /// and the parts of `/etc` that dynamically linked programs need.
    HostSystem,
}

/// The base of the new root.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) enum Root {
    /// Not chosen: the host's filesystem, read-only — or, with [`FsOp::HostSystem`] among the
    /// steps, an empty tmpfs (see [`FsConfig::root_step`]).
    #[default]
    Auto,
    /// An empty tmpfs (made read-only once built).
    Empty,
    /// A directory of the host, bound read-only.
    Dir(PathBuf),
    /// Overlay layers: read-only lowers (first is the top), a writable upper and its work dir,
    /// plus per-sandbox files (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`) that are
    /// mounted over the overlay rather than written into the upper layer.
    Layers {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
}

/// The complete filesystem configuration of a sandbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FsConfig {
    pub root: Root,
    pub ops: Vec<FsOp>,
}

impl FsConfig {
    pub fn is_empty(&self) -> bool {
        self.root == Root::Auto && self.ops.is_empty()
    }
}

// Mount attributes (`MOUNT_ATTR_*` of <linux/mount.h>).
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// A mount step as the sandboxed process applies it. Paths are relative to the new root.
#[derive(Debug)]
pub(crate) enum Step {
    /// Bind the host path `src` (absolute) at `dst`, with these mount attributes.
    Bind {
        src: CString,
        dst: CString,
        dir: bool,
        attrs: u64,
        /// Whether symlinks in `src` are followed: only for paths ringfence chose itself (the
        /// host's system directories and devices), never for a source the caller named.
        follow: bool,
    },
    /// A new filesystem of `fstype` with string options, at `dst`.
    Fs {
        fstype: &'static std::ffi::CStr,
        dst: CString,
        options: Vec<(CString, CString)>,
        attrs: u64,
    },
    /// A directory (and its parents).
    Mkdir { dst: CString, mode: u32 },
    /// A symlink at `dst` pointing to `target`.
    Symlink { target: CString, dst: CString },
    /// A file with this content.
    File {
        dst: CString,
        data: Vec<u8>,
        mode: u32,
    },
    /// An init-layer file: `data` written as `name` in a private staging tmpfs, then bound
    /// read-only over `dst` (created empty if the image lacks it).
    InitFile {
        name: CString,
        dst: CString,
        data: Vec<u8>,
    },
    /// Make the mount at `dst` read-only (e.g. /proc/sys).
    ReadOnly { dst: CString },
    /// Hide `dst` (a file: /dev/null over it; a directory: an empty read-only tmpfs).
    Mask { dst: CString },
}

/// The base of the new root, as the sandboxed process mounts it.
#[derive(Debug)]
pub(crate) enum RootStep {
    Tmpfs,
    /// A recursive copy of the caller's whole mount tree, read-only and nosuid (device nodes
    /// stay usable, as they are without a filesystem view).
    Host,
    Bind {
        src: CString,
    },
    /// `lowerdir`, `upperdir`, `workdir` options.
    Overlay {
        options: Vec<(CString, CString)>,
    },
}

/// What the sandboxed process needs to build the filesystem.
#[derive(Debug)]
pub(crate) struct FsPlan {
    pub root: RootStep,
    pub steps: Vec<Step>,
    /// What each step does, for error messages (same order as `steps`).
    pub descriptions: Vec<String>,
}

/// A mount plan kept by a sandbox for its next spawns, with what it was built from.
#[derive(Debug)]
pub(crate) struct PreparedFs {
    config: FsConfig,
    hostname: Option<std::ffi::OsString>,
    plan: std::sync::Arc<FsPlan>,
}

/// The mount plan for `config`: the one in `cache` when it was built for the same
/// configuration and hostname, otherwise a new one (kept in `cache`). `None` without a
/// filesystem view.
///
/// Building a plan checks every source on the host and allocates a few hundred small
/// strings; a sandbox spawned many times does it once. The sources are then checked at the
/// first spawn only: an optional source missing then stays left out, and a source removed
/// later makes the sandboxed process fail at that step (its own `open_tree` of the path). A
/// root of overlay layers is prepared at every spawn, since its init layer copies the host's
/// current `/etc/resolv.conf`.
pub(crate) fn prepare_cached(
    config: &FsConfig,
    hostname: Option<&OsStr>,
    cache: &mut Option<PreparedFs>,
) -> Result<Option<std::sync::Arc<FsPlan>>> {
    if config.is_empty() {
        return Ok(None);
    }
    if let Some(c) = cache.as_ref()
        && c.config == *config
        && c.hostname.as_deref() == hostname
    {
        return Ok(Some(c.plan.clone()));
    }
    let plan = std::sync::Arc::new(config.prepare(hostname)?);
    if !matches!(config.root, Root::Layers { .. }) {
        *cache = Some(PreparedFs {
            config: config.clone(),
            hostname: hostname.map(OsStr::to_owned),
            plan: plan.clone(),
        });
    }
    Ok(Some(plan))
}

/// Turn an absolute sandbox path into a clean relative one ("/usr/bin" → "usr/bin").
fn rel(path: &Path, what: &'static str) -> Result<CString> {
    if !path.is_absolute() {
        return Err(ConfigError::InvalidPath {
            path: path.to_owned(),
            why: "must be absolute",
            what,
        }
        .into());
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ConfigError::InvalidPath {
                    path: path.to_owned(),
                    why: "must not contain `..`",
                    what,
                }
                .into());
            }
        }
    }
    if out.as_os_str().len() >= 4096 {
        return Err(ConfigError::InvalidPath {
            path: path.to_owned(),
            why: "is too long",
            what,
        }
        .into());
    }
    CString::new(out.into_os_string().into_vec_bytes())
        .map_err(|_| ConfigError::InteriorNul { what }.into())
}

trait IntoVecBytes {
    fn into_vec_bytes(self) -> Vec<u8>;
}

impl IntoVecBytes for std::ffi::OsString {
    fn into_vec_bytes(self) -> Vec<u8> {
        use std::os::unix::ffi::OsStringExt;
        self.into_vec()
    }
}

fn cstr(bytes: &[u8], what: &'static str) -> Result<CString> {
    CString::new(bytes).map_err(|_| ConfigError::InteriorNul { what }.into())
}

/// Check a host path for binding (following symlinks: the caller named it): it must be
/// absolute and exist. Returns it as a C string, and whether it is a directory.
fn check_source(src: &Path, what: &'static str) -> Result<std::io::Result<(CString, bool)>> {
    if !src.is_absolute() {
        return Err(ConfigError::InvalidPath {
            path: src.to_owned(),
            why: "must be absolute",
            what,
        }
        .into());
    }
    let c = cstr(src.as_os_str().as_bytes(), what)?;
    Ok(std::fs::metadata(src).map(|m| (c, m.is_dir())))
}

/// Refuse a bind source that goes through a symlink anywhere on its path.
///
/// The rule: ringfence follows no symlink in a bind source the caller names. A directory
/// that some sandbox could write (a read-write bind, a shared scratch directory) may hold a
/// symlink that sandbox planted; a later sandbox naming a path in that directory would
/// otherwise bind whatever host path the link points at. The caller who means a link's
/// target names the target (`std::fs::canonicalize`); the sandboxed process resolves the
/// source again without symlinks (`openat2(RESOLVE_NO_SYMLINKS)`), so a link that replaces
/// the source after this check fails the spawn (`ELOOP`) instead of being followed. The host
/// system paths ringfence binds itself (`host_system_ro()`, `isolated()`, `/dev` nodes) are
/// followed as they are.
fn check_no_symlinks(src: &Path, c: &CString) -> Result<()> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS,
    };
    let mut tries = 0;
    let rc = loop {
        // SAFETY: raw openat2 with a C string and a struct on this stack; a descriptor it
        // returns is closed below.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                c.as_ptr(),
                &how,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if rc < 0 && nix::errno::Errno::last() == nix::errno::Errno::EAGAIN && tries < 1000 {
            tries += 1;
            continue;
        }
        break rc;
    };
    if rc >= 0 {
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::close(rc as libc::c_int) };
        return Ok(());
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::ELOOP => Err(ConfigError::InvalidPath {
            path: src.to_owned(),
            why: "goes through a symbolic link, and symlinks in bind sources are not followed (a sandbox with a writable bind could have planted it): name the link's target instead (std::fs::canonicalize)",
            what: "bind source",
        }
        .into()),
        e => Err(source_error(
            src,
            std::io::Error::from_raw_os_error(e as i32),
        )),
    }
}

fn opt(k: &str, v: impl fmt::Display) -> (CString, CString) {
    (
        CString::new(k).expect("static key"),
        CString::new(v.to_string()).expect("no NUL in numbers"),
    )
}

/// Files under /proc that are hidden (as Docker and bubblewrap hide them).
const PROC_MASKED: [&str; 9] = [
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "acpi",
    "scsi",
    "asound",
    "firmware",
];
/// Directories and files under /proc that are made read-only.
const PROC_READ_ONLY: [&str; 5] = ["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// Device nodes of the minimal /dev.
pub(crate) const DEV_NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// What dynamically linked programs need from /etc.
pub(crate) const HOST_ETC: [&str; 10] = [
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "passwd",
    "group",
    "nsswitch.conf",
    "localtime",
    "os-release",
    "ssl",
];

impl FsConfig {
    /// Validate everything and check every source: the parent's half of the work.
    pub(crate) fn prepare(&self, hostname: Option<&OsStr>) -> Result<FsPlan> {
        let mut plan = FsPlan {
            root: RootStep::Tmpfs,
            steps: Vec::new(),
            descriptions: Vec::new(),
        };
        plan.root = match &self.root {
            Root::Auto if self.ops.contains(&FsOp::HostSystem) => RootStep::Tmpfs,
            Root::Auto => RootStep::Host,
            Root::Empty => RootStep::Tmpfs,
            Root::Dir(dir) => {
                let (src, is_dir) = check_source(dir, "root")?.map_err(|e| source_error(dir, e))?;
                if !is_dir {
                    return Err(ConfigError::InvalidPath {
                        path: dir.clone(),
                        why: "is not a directory",
                        what: "root",
                    }
                    .into());
                }
                RootStep::Bind { src }
            }
            Root::Layers {
                lowers,
                upper,
                work,
            } => {
                let options = overlay_options(lowers, upper, work)?;
                RootStep::Overlay { options }
            }
        };
        if let Root::Layers { .. } = &self.root {
            // The init layer: per-sandbox files over the image, not committed to the upper dir.
            let name = hostname
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sandbox".into());
            for (path, data) in [
                ("/etc/hostname", format!("{name}\n")),
                (
                    "/etc/hosts",
                    format!(
                        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{name}\n"
                    ),
                ),
                (
                    "/etc/resolv.conf",
                    std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
                ),
            ] {
                self.push_init_file(&mut plan, path, data.into_bytes())?;
            }
        }
        for op in &self.ops {
            self.prepare_op(op, &mut plan)?;
        }
        Ok(plan)
    }

    /// An init-layer file: written into a private, detached tmpfs and bound read-only over the
    /// image's path, so that it never reaches the upper layer.
    fn push_init_file(&self, plan: &mut FsPlan, path: &str, data: Vec<u8>) -> Result<()> {
        let name = cstr(plan.steps.len().to_string().as_bytes(), "init file")?;
        push(
            plan,
            format!("init-layer file {path}"),
            Step::InitFile {
                name,
                dst: rel(Path::new(path), "init file")?,
                data,
            },
        );
        Ok(())
    }

    fn prepare_op(&self, op: &FsOp, plan: &mut FsPlan) -> Result<()> {
        match op {
            FsOp::Bind {
                src,
                dst,
                write,
                dev,
                optional,
                follow,
            } => {
                // The destination is checked first, so that a bad one is refused whether or not an
                // optional source exists on this host.
                let dst_rel = rel(dst, "bind destination")?;
                let dir = match check_source(src, "bind source")? {
                    Ok((_, dir)) => dir,
                    Err(_) if *optional => return Ok(()),
                    Err(e) => return Err(source_error(src, e)),
                };
                let fd = cstr(src.as_os_str().as_bytes(), "bind source")?;
                if !follow {
                    check_no_symlinks(src, &fd)?;
                }
                let mut attrs = MOUNT_ATTR_NOSUID;
                if !write {
                    attrs |= MOUNT_ATTR_RDONLY;
                }
                if !dev {
                    attrs |= MOUNT_ATTR_NODEV;
                }
                let what = format!(
                    "bind {} {} -> {}",
                    if *write { "rw" } else { "ro" },
                    src.display(),
                    dst.display()
                );
                push(
                    plan,
                    what,
                    Step::Bind {
                        src: fd,
                        dst: dst_rel,
                        dir,
                        attrs,
                        follow: *follow,
                    },
                );
            }
            FsOp::Tmpfs {
                dst,
                size,
                inodes,
                mode,
            } => {
                if size.0 == 0 {
                    return Err(ConfigError::InvalidSize {
                        what: "tmpfs size must be above 0",
                    }
                    .into());
                }
                let mut options = vec![opt("size", size.0), opt("mode", format!("{mode:o}"))];
                if let Some(n) = inodes {
                    if *n == 0 {
                        return Err(ConfigError::InvalidSize {
                            what: "tmpfs inode count must be above 0",
                        }
                        .into());
                    }
                    options.push(opt("nr_inodes", n));
                }
                push(
                    plan,
                    format!("tmpfs {} ({})", dst.display(), size),
                    Step::Fs {
                        fstype: c"tmpfs",
                        dst: rel(dst, "tmpfs destination")?,
                        options,
                        attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                    },
                );
            }
            FsOp::Proc { dst } => {
                let base = rel(dst, "proc destination")?;
                push(
                    plan,
                    format!("proc {}", dst.display()),
                    Step::Fs {
                        fstype: c"proc",
                        dst: base.clone(),
                        options: Vec::new(),
                        attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                    },
                );
                // pid 1 of a sandbox's pid namespace is its init, which may share its caller's
                // memory (docs/ARCHITECTURE.md): /proc/1/cmdline would show the caller's command
                // line. A read-only file over it shows the init's name instead.
                self.push_init_file(
                    plan,
                    &dst.join("1/cmdline").to_string_lossy(),
                    b"ringfence-init\0".to_vec(),
                )?;
                for name in PROC_MASKED {
                    let p = dst.join(name);
                    push(
                        plan,
                        format!("mask {}", p.display()),
                        Step::Mask {
                            dst: rel(&p, "proc path")?,
                        },
                    );
                }
                for name in PROC_READ_ONLY {
                    let p = dst.join(name);
                    push(
                        plan,
                        format!("read-only {}", p.display()),
                        Step::ReadOnly {
                            dst: rel(&p, "proc path")?,
                        },
                    );
                }
            }
            FsOp::Dev { dst } => {
                push(
                    plan,
                    format!("tmpfs {} (dev)", dst.display()),
                    Step::Fs {
                        fstype: c"tmpfs",
                        dst: rel(dst, "dev destination")?,
                        options: vec![opt("size", 65536), opt("mode", "755")],
                        attrs: MOUNT_ATTR_NOSUID,
                    },
                );
                for node in DEV_NODES {
                    let host = Path::new("/dev").join(node);
                    let Ok((fd, _)) = check_source(&host, "device")? else {
                        continue;
                    };
                    push(
                        plan,
                        format!("device {}", host.display()),
                        Step::Bind {
                            src: fd,
                            dst: rel(&dst.join(node), "dev node")?,
                            dir: false,
                            attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                            follow: true,
                        },
                    );
                }
                push(
                    plan,
                    format!("devpts {}/pts", dst.display()),
                    Step::Fs {
                        fstype: c"devpts",
                        dst: rel(&dst.join("pts"), "devpts")?,
                        options: vec![
                            opt("newinstance", ""),
                            opt("ptmxmode", "0666"),
                            opt("mode", "0620"),
                        ],
                        attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                    },
                );
                push(
                    plan,
                    format!("tmpfs {}/shm", dst.display()),
                    Step::Fs {
                        fstype: c"tmpfs",
                        dst: rel(&dst.join("shm"), "dev shm")?,
                        options: vec![opt("size", 64 << 20), opt("mode", "1777")],
                        attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                    },
                );
                for (link, target) in [
                    ("ptmx", "pts/ptmx"),
                    ("fd", "/proc/self/fd"),
                    ("stdin", "/proc/self/fd/0"),
                    ("stdout", "/proc/self/fd/1"),
                    ("stderr", "/proc/self/fd/2"),
                ] {
                    push(
                        plan,
                        format!("symlink {}/{link}", dst.display()),
                        Step::Symlink {
                            target: cstr(target.as_bytes(), "symlink")?,
                            dst: rel(&dst.join(link), "dev link")?,
                        },
                    );
                }
            }
            FsOp::Mkdir { dst, mode } => {
                push(
                    plan,
                    format!("mkdir {}", dst.display()),
                    Step::Mkdir {
                        dst: rel(dst, "directory")?,
                        mode: *mode,
                    },
                );
            }
            FsOp::Symlink { target, link } => {
                push(
                    plan,
                    format!("symlink {} -> {}", link.display(), target.display()),
                    Step::Symlink {
                        target: cstr(target.as_os_str().as_bytes(), "symlink target")?,
                        dst: rel(link, "symlink")?,
                    },
                );
            }
            FsOp::File { dst, data, mode } => {
                push(
                    plan,
                    format!("file {}", dst.display()),
                    Step::File {
                        dst: rel(dst, "file")?,
                        data: data.clone(),
                        mode: *mode,
                    },
                );
            }
            FsOp::HostSystem => {
                for dir in [
                    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                ] {
                    let p = Path::new(dir);
                    match std::fs::symlink_metadata(p) {
                        Ok(m) if m.file_type().is_symlink() => {
                            let target = std::fs::read_link(p).map_err(|e| source_error(p, e))?;
                            self.prepare_op(
                                &FsOp::Symlink {
                                    target,
                                    link: p.to_owned(),
                                },
                                plan,
                            )?;
                        }
                        Ok(m) if m.is_dir() => self.prepare_op(
                            &FsOp::Bind {
                                src: p.to_owned(),
                                dst: p.to_owned(),
                                write: false,
                                dev: false,
                                optional: true,
                                follow: true,
                            },
                            plan,
                        )?,
                        _ => {}
                    }
                }
                for name in HOST_ETC {
                    let p = Path::new("/etc").join(name);
                    self.prepare_op(
                        &FsOp::Bind {
                            src: p.clone(),
                            dst: p,
                            write: false,
                            dev: false,
                            optional: true,
                            follow: true,
                        },
                        plan,
                    )?;
                }
            }
        }
        Ok(())
    }
}

fn push(plan: &mut FsPlan, what: String, step: Step) {
    plan.descriptions.push(what);
    plan.steps.push(step);
}

fn source_error(path: &Path, e: std::io::Error) -> Error {
    Error::from(ConfigError::SourceUnavailable {
        path: path.to_owned(),
        errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })
}

/// The `lowerdir`, `upperdir` and `workdir` options, after checking the layers.
fn overlay_options(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<Vec<(CString, CString)>> {
    if lowers.is_empty() {
        return Err(ConfigError::Overlay {
            what: "at least one lower layer is needed".into(),
        }
        .into());
    }
    let mut all: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    all.push(upper);
    all.push(work);
    for p in &all {
        if !p.is_absolute() {
            return Err(ConfigError::InvalidPath {
                path: p.to_path_buf(),
                why: "must be absolute",
                what: "overlay layer",
            }
            .into());
        }
        let s = p.as_os_str().as_bytes();
        if s.iter().any(|b| matches!(b, b',' | b':' | b'\\')) {
            return Err(ConfigError::Overlay {
                what: format!(
                    "{} contains ',', ':' or '\\', which overlay options cannot express",
                    p.display()
                ),
            }
            .into());
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ConfigError::Overlay {
                    what: format!("{} is not a directory", p.display()),
                }
                .into());
            }
            Err(e) => return Err(source_error(p, e)),
        }
    }
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).unwrap_or(0);
    if dev(upper) != dev(work) {
        return Err(ConfigError::Overlay {
            what: format!(
                "the upper dir {} and the work dir {} must be on the same filesystem",
                upper.display(),
                work.display()
            ),
        }
        .into());
    }
    if upper.starts_with(work) || work.starts_with(upper) {
        return Err(ConfigError::Overlay {
            what: "the upper and work dirs must not contain each other".into(),
        }
        .into());
    }
    let lower = lowers
        .iter()
        .map(|l| l.as_os_str().as_bytes())
        .collect::<Vec<_>>()
        .join(&b':');
    Ok(vec![
        (c"lowerdir".to_owned(), cstr(&lower, "overlay layers")?),
        (
            c"upperdir".to_owned(),
            cstr(upper.as_os_str().as_bytes(), "overlay layers")?,
        ),
        (
            c"workdir".to_owned(),
            cstr(work.as_os_str().as_bytes(), "overlay layers")?,
        ),
    ])
}
