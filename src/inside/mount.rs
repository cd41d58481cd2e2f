//! Building the new root and moving into it (post-clone: no allocation, no panics).
//!
//! Every mount is made with the descriptor-based mount API (`open_tree`, `fsopen`/`fsmount`,
//! `mount_setattr`, `move_mount`), onto a destination opened with
//! `openat2(root, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: symlinks met on the way
//! resolve inside the new root, never on the host. Missing directories are created one
//! component at a time, each relative to a descriptor of its (already resolved) parent.
//!
//! Order:
//! 1. every bind source is cloned (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`) into a
//!    detached mount while the caller's mount tree is still intact (host symlinks resolve as on
//!    the host, and nothing covers any path yet), and every new filesystem (proc, tmpfs,
//!    devpts) is created detached — a user namespace may only mount a new proc while the host's
//!    /proc is visible; the descriptors go into slots sized by the parent;
//! 2. the base (a read-only copy of the caller's whole mount tree, an empty tmpfs, a read-only
//!    bind of a directory, or overlay layers) is mounted and attached over `/tmp` of this
//!    private mount namespace;
//! 3. `pivot_root(".", ".")` into it and a lazy unmount of the old root stacked on top (the
//!    runc/LXC recipe): from here on no path walk can reach the host — not even a `..` through
//!    a planted symlink;
//! 4. the steps, in the order the caller gave them, each onto a destination resolved inside the
//!    new root; then an empty-tmpfs root is made read-only.

use std::ffi::CStr;
use std::sync::atomic::Ordering::Relaxed;

use nix::errno::Errno;

use super::{cvt, cvt_long};
use crate::fs::{
    FsPlan, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, RootStep,
    Step,
};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Where a failure happened: the index of the step, or one of these.
pub(crate) const AT_ROOT: u32 = u32::MAX;
pub(crate) const AT_PIVOT: u32 = u32::MAX - 1;

/// A filesystem plan and the slots where one spawn keeps its detached mounts (see
/// `spawn::Plan::fs_slots`): per spawn, since the sandboxed process may share the parent's
/// memory, and one plan serves every spawn of a sandbox, from any thread.
pub(crate) struct View<'a> {
    pub plan: &'a FsPlan,
    pub slots: &'a [std::sync::atomic::AtomicI32],
}

impl std::ops::Deref for View<'_> {
    type Target = FsPlan;
    fn deref(&self) -> &FsPlan {
        self.plan
    }
}

/// A descriptor closed when it goes out of scope (no allocation involved).
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: closes a descriptor this process opened.
        unsafe { libc::close(self.0) };
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn open_tree(dfd: libc::c_int, path: &CStr, flags: libc::c_uint) -> Result<Fd, Errno> {
    // SAFETY: raw open_tree with a C string.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dfd, path.as_ptr(), flags) };
    cvt_long(fd).map(|fd| Fd(fd as libc::c_int))
}

/// A detached copy of the mount tree at `src` (a descriptor of this mount namespace).
fn clone_tree(src: libc::c_int) -> Result<Fd, Errno> {
    open_tree(
        src,
        c"",
        OPEN_TREE_CLONE
            | libc::O_CLOEXEC as libc::c_uint
            | libc::AT_EMPTY_PATH as libc::c_uint
            | AT_RECURSIVE,
    )
}

/// A detached copy of the mount tree at the host path `path`, refused (`ELOOP`) when any
/// component of the path is a symlink: a bind source named by the caller (a symlink there may
/// have been planted by a sandbox since the plan was made).
fn clone_path_nofollow(path: &CStr) -> Result<Fd, Errno> {
    let fd = openat2_with(libc::AT_FDCWD, path, libc::O_PATH, RESOLVE_NO_SYMLINKS)?;
    clone_tree(fd.0)
}

/// A detached copy of the mount tree at the host path `path` (following symlinks).
fn clone_path(path: &CStr) -> Result<Fd, Errno> {
    open_tree(
        libc::AT_FDCWD,
        path,
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE,
    )
}

fn set_attrs(mnt: libc::c_int, set: u64, recursive: bool) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: raw mount_setattr with a struct on this stack.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt,
            c"".as_ptr(),
            flags,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    cvt_long(rc).map(drop)
}

fn move_onto(mnt: libc::c_int, target: libc::c_int) -> Result<(), Errno> {
    // SAFETY: raw move_mount between two descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    cvt_long(rc).map(drop)
}

/// A new filesystem of `fstype` with `options` (an empty value is a flag), as a detached
/// mount with `attrs`.
fn new_fs<'a>(
    fstype: &CStr,
    options: impl IntoIterator<Item = (&'a CStr, &'a CStr)>,
    attrs: u64,
) -> Result<Fd, Errno> {
    // SAFETY: raw fsopen with a C string.
    let fsfd =
        Fd(
            cvt_long(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?
                as libc::c_int,
        );
    for (key, value) in options {
        let (cmd, v) = if value.is_empty() {
            (FSCONFIG_SET_FLAG, std::ptr::null())
        } else {
            (FSCONFIG_SET_STRING, value.as_ptr())
        };
        // SAFETY: raw fsconfig with C strings.
        cvt_long(unsafe { libc::syscall(libc::SYS_fsconfig, fsfd.0, cmd, key.as_ptr(), v, 0) })?;
    }
    // SAFETY: raw fsconfig / fsmount on the context opened above.
    unsafe {
        cvt_long(libc::syscall(
            libc::SYS_fsconfig,
            fsfd.0,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        ))?;
        let mnt = cvt_long(libc::syscall(
            libc::SYS_fsmount,
            fsfd.0,
            FSMOUNT_CLOEXEC,
            attrs,
        ))?;
        Ok(Fd(mnt as libc::c_int))
    }
}

fn pairs(
    options: &[(std::ffi::CString, std::ffi::CString)],
) -> impl Iterator<Item = (&CStr, &CStr)> {
    options.iter().map(|(k, v)| (k.as_c_str(), v.as_c_str()))
}

/// `path` resolved inside the new root `dfd`: symlinks on the way resolve inside it.
fn openat2(dfd: libc::c_int, path: &CStr, flags: libc::c_int) -> Result<Fd, Errno> {
    openat2_with(dfd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
}

/// One name in the directory `dfd`, refused (`ELOOP`) when it is a symlink.
fn open_name(dfd: libc::c_int, name: &CStr) -> Result<Fd, Errno> {
    openat2_with(dfd, name, libc::O_PATH, RESOLVE_NO_SYMLINKS)
}

fn openat2_with(
    dfd: libc::c_int,
    path: &CStr,
    flags: libc::c_int,
    resolve: u64,
) -> Result<Fd, Errno> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // EAGAIN: a rename or mount somewhere on the system raced with the resolution of `..`;
    // openat2(2) asks callers to retry.
    let mut tries = 0;
    loop {
        // SAFETY: raw openat2 with a C string and a struct on this stack.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dfd,
                path.as_ptr(),
                &how,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match cvt_long(fd) {
            Err(Errno::EAGAIN) if tries < 1000 => tries += 1,
            other => return other.map(|fd| Fd(fd as libc::c_int)),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    Nothing,
    Dir(u32),
    File,
}

/// Open `rel` inside `root`, creating what is missing (the last component as `create` says,
/// the ones before as directories). Symlinks resolve inside `root`. Needs no allocation:
/// prefixes are cut in a buffer on the stack.
///
/// The walk goes one component at a time from the directory found so far, refusing symlinks
/// (`RESOLVE_NO_SYMLINKS`): a plain name in a directory resolved inside the root is the same
/// as the whole prefix resolved inside the root, at the cost of one lookup instead of a walk
/// from the root. A component that is a symlink is resolved again as the whole prefix with
/// `RESOLVE_IN_ROOT`, so it is followed inside the new root, never out of it. The result is
/// an `O_PATH` descriptor, or for a file created here the descriptor it was created with
/// (good as a mount target).
fn resolve(root: libc::c_int, rel: &CStr, create: Create) -> Result<Fd, Errno> {
    let path = rel.to_bytes();
    if path.is_empty() {
        // The root itself.
        return openat2(root, c".", libc::O_PATH);
    }
    if create == Create::Nothing {
        return openat2(root, rel, libc::O_PATH);
    }
    let mut buf = [0u8; 4097];
    let Some(dst) = buf.get_mut(..path.len()) else {
        return Err(Errno::ENAMETOOLONG);
    };
    dst.copy_from_slice(path);
    // The directory reached so far; `None` is `root` itself.
    let mut parent: Option<Fd> = None;
    let mut start = 0;
    while start < path.len() {
        let end = path
            .iter()
            .skip(start)
            .position(|&b| b == b'/')
            .map_or(path.len(), |i| start + i);
        let last = end == path.len();
        // The component alone, NUL-terminated in place.
        let saved = buf.get(end).copied().unwrap_or(0);
        if let Some(b) = buf.get_mut(end) {
            *b = 0;
        }
        let comp = buf
            .get(start..=end)
            .and_then(|c| CStr::from_bytes_with_nul(c).ok());
        let Some(comp) = comp else {
            return Err(Errno::EINVAL);
        };
        if !comp.is_empty() {
            let dir = parent.as_ref().map_or(root, |f| f.0);
            let found = match open_name(dir, comp) {
                Err(Errno::ELOOP) => {
                    // A symlink: follow it inside the new root.
                    let prefix = buf
                        .get(..=end)
                        .and_then(|c| CStr::from_bytes_with_nul(c).ok())
                        .ok_or(Errno::EINVAL)?;
                    openat2(root, prefix, libc::O_PATH)
                }
                other => other,
            };
            parent = Some(match found {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => match (last, create) {
                    (true, Create::File) => {
                        // SAFETY: creates one name in a resolved directory, not following links.
                        let fd = cvt(unsafe {
                            libc::openat(
                                dir,
                                comp.as_ptr(),
                                libc::O_CREAT
                                    | libc::O_EXCL
                                    | libc::O_WRONLY
                                    | libc::O_NOFOLLOW
                                    | libc::O_CLOEXEC,
                                0o644,
                            )
                        })?;
                        Fd(fd)
                    }
                    (true, Create::Dir(mode)) => {
                        // SAFETY: creates one name in a resolved directory.
                        cvt(unsafe { libc::mkdirat(dir, comp.as_ptr(), mode) })?;
                        open_name(dir, comp)?
                    }
                    _ => {
                        // SAFETY: creates one name in a resolved directory.
                        cvt(unsafe { libc::mkdirat(dir, comp.as_ptr(), 0o755) })?;
                        open_name(dir, comp)?
                    }
                },
                Err(e) => return Err(e),
            });
        }
        if let Some(b) = buf.get_mut(end) {
            *b = saved;
        }
        start = end + 1;
    }
    match parent {
        Some(fd) => Ok(fd),
        None => openat2(root, c".", libc::O_PATH),
    }
}

/// Split `rel` into the resolved parent directory and the last component's position.
fn parent_and_name(
    root: libc::c_int,
    rel: &CStr,
    buf: &mut [u8; 4097],
) -> Result<(Fd, usize), Errno> {
    let path = rel.to_bytes();
    let dst = buf.get_mut(..path.len()).ok_or(Errno::ENAMETOOLONG)?;
    dst.copy_from_slice(path);
    if let Some(b) = buf.get_mut(path.len()) {
        *b = 0;
    }
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => {
            if let Some(b) = buf.get_mut(i) {
                *b = 0;
            }
            let parent = buf
                .get(..=i)
                .and_then(|c| CStr::from_bytes_with_nul(c).ok())
                .ok_or(Errno::EINVAL)?;
            let fd = resolve(root, parent, Create::Dir(0o755))?;
            Ok((fd, i + 1))
        }
        None => Ok((openat2(root, c".", libc::O_PATH | libc::O_DIRECTORY)?, 0)),
    }
}

fn name_at(buf: &[u8; 4097], at: usize) -> Result<&CStr, Errno> {
    buf.get(at..)
        .and_then(|b| CStr::from_bytes_until_nul(b).ok())
        .ok_or(Errno::EINVAL)
}

fn write_all(fd: libc::c_int, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        // SAFETY: writes from a slice.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return Err(Errno::last());
        }
        data = data.get(n as usize..).unwrap_or(&[]);
    }
    Ok(())
}

/// Build the new root and pivot into it. On failure: `(step index or AT_*, errno)`.
pub(super) fn setup(p: &View<'_>) -> Result<(), (u32, Errno)> {
    let result = build(p);
    // The detached copies are attached (or no longer needed): close our descriptors of them.
    for slot in p.slots.iter() {
        if slot.load(Relaxed) >= 0 {
            drop(Fd(slot.swap(-1, Relaxed)));
        }
    }
    result
}

fn build(p: &View<'_>) -> Result<(), (u32, Errno)> {
    for (i, step) in p.steps.iter().enumerate() {
        let at = |e| (i as u32, e);
        match step {
            Step::Bind { src, follow, .. } => {
                let mnt = if *follow {
                    clone_path(src)
                } else {
                    clone_path_nofollow(src)
                };
                keep(p, i, mnt.map_err(at)?)
            }
            Step::Fs {
                fstype,
                options,
                attrs,
                ..
            } => keep(p, i, new_fs(fstype, pairs(options), *attrs).map_err(at)?),
            Step::Mask { .. } if Some(i) == first_mask(p) => {
                // For masked files: a read-only /dev/null (not nodev: it must stay openable).
                // One copy only: the first masked file gets it, the others a clone of that
                // mount once attached (kernels before 6.15 refuse to clone a detached mount
                // again). A copy nothing uses costs a wait for an RCU grace period when it is
                // dropped, and most masked /proc entries are missing on a given kernel.
                let mnt = clone_path(c"/dev/null").map_err(at)?;
                set_attrs(
                    mnt.0,
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                    false,
                )
                .map_err(at)?;
                keep(p, i, mnt);
            }
            _ => {}
        }
    }
    init_layer(p)?;
    let root = mount_root(p).map_err(|e| (AT_ROOT, e))?;
    pivot(root.0).map_err(|e| (AT_PIVOT, e))?;
    // The first masked file, once /dev/null is mounted on it: the source of the next masks.
    let mut null = None;
    for (i, step) in p.steps.iter().enumerate() {
        apply(root.0, p, i, step, &mut null).map_err(|e| (i as u32, e))?;
    }
    if let RootStep::Tmpfs = p.root {
        // Nothing more may be written to the root itself; mounts on it keep their own flags.
        set_attrs(
            root.0,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            false,
        )
        .map_err(|e| (AT_ROOT, e))?;
    }
    Ok(())
}

/// The init layer's files: written into a private tmpfs, which is attached over `/tmp` of this
/// mount namespace just long enough to clone each file out read-only (kernels before 6.15
/// refuse to clone from a detached mount), then detached again.
fn init_layer(p: &View<'_>) -> Result<(), (u32, Errno)> {
    let mut first = None;
    for (i, step) in p.steps.iter().enumerate() {
        if let Step::InitFile { .. } = step {
            first.get_or_insert(i);
        }
    }
    let Some(first) = first else {
        return Ok(());
    };
    let at = |e| (first as u32, e);
    let stage = new_fs(
        c"tmpfs",
        [(c"mode", c"755"), (c"size", c"1m")],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )
    .map_err(at)?;
    for step in &p.steps {
        if let Step::InitFile { name, data, .. } = step {
            // SAFETY: creates a file in the private staging tmpfs.
            let fd = Fd(cvt(unsafe {
                libc::openat(
                    stage.0,
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                )
            })
            .map_err(at)?);
            write_all(fd.0, data).map_err(at)?;
        }
    }
    // SAFETY: opens a static path.
    let tmp = Fd(cvt(unsafe {
        libc::open(
            c"/tmp".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
    .map_err(at)?);
    move_onto(stage.0, tmp.0).map_err(at)?;
    let mut result = Ok(());
    for (i, step) in p.steps.iter().enumerate() {
        if let Step::InitFile { name, .. } = step {
            let cloned = open_tree(
                stage.0,
                name,
                OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
            )
            .and_then(|mnt| {
                set_attrs(
                    mnt.0,
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                    false,
                )?;
                Ok(mnt)
            });
            match cloned {
                Ok(mnt) => keep(p, i, mnt),
                Err(e) => {
                    result = Err((i as u32, e));
                    break;
                }
            }
        }
    }
    // SAFETY: detaches the staging tmpfs just attached over /tmp (the clones keep the files).
    let rc = unsafe { libc::umount2(c"/tmp".as_ptr(), libc::MNT_DETACH) };
    result?;
    cvt(rc).map(drop).map_err(at)
}

/// Keep a detached mount in slot `i` (taking over its descriptor).
fn keep(p: &View<'_>, i: usize, mnt: Fd) {
    if let Some(slot) = p.slots.get(i) {
        slot.store(mnt.0, Relaxed);
        std::mem::forget(mnt);
    }
}

/// The detached mount kept in slot `i`.
fn slot(p: &View<'_>, i: usize) -> Result<libc::c_int, Errno> {
    p.slots
        .get(i)
        .map(|s| s.load(Relaxed))
        .filter(|fd| *fd >= 0)
        .ok_or(Errno::EBADF)
}

/// Mount the base of the new root over /tmp of this (private) mount namespace.
fn mount_root(p: &View<'_>) -> Result<Fd, Errno> {
    let mnt = match &p.root {
        RootStep::Tmpfs => new_fs(
            c"tmpfs",
            [(c"mode", c"755"), (c"size", c"1m")],
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )?,
        RootStep::Host => {
            let mnt = clone_path(c"/")?;
            set_attrs(mnt.0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, true)?;
            mnt
        }
        RootStep::Bind { src } => {
            let mnt = clone_path(src)?;
            set_attrs(
                mnt.0,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                true,
            )?;
            mnt
        }
        RootStep::Overlay { options } => new_fs(
            c"overlay",
            pairs(options),
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )?,
    };
    // SAFETY: opens a static path.
    let tmp = Fd(cvt(unsafe {
        libc::open(
            c"/tmp".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?);
    move_onto(mnt.0, tmp.0)?;
    Ok(mnt)
}

/// The index of the first mask step, whose slot holds the /dev/null copy.
fn first_mask(p: &View<'_>) -> Option<usize> {
    p.steps.iter().position(|s| matches!(s, Step::Mask { .. }))
}

fn apply(
    root: libc::c_int,
    p: &View<'_>,
    index: usize,
    step: &Step,
    null: &mut Option<Fd>,
) -> Result<(), Errno> {
    match step {
        Step::Bind {
            dst, dir, attrs, ..
        } => {
            let mnt = slot(p, index)?;
            let target = resolve(
                root,
                dst,
                if *dir {
                    Create::Dir(0o755)
                } else {
                    Create::File
                },
            )?;
            set_attrs(mnt, *attrs, true)?;
            move_onto(mnt, target.0)
        }
        Step::Fs { dst, .. } => {
            // Created in the first phase.
            let mnt = slot(p, index)?;
            let target = resolve(root, dst, Create::Dir(0o755))?;
            move_onto(mnt, target.0)
        }
        Step::Mkdir { dst, mode } => resolve(root, dst, Create::Dir(*mode)).map(drop),
        Step::Symlink { target, dst } => {
            let mut buf = [0u8; 4097];
            let (parent, at) = parent_and_name(root, dst, &mut buf)?;
            let name = name_at(&buf, at)?;
            // SAFETY: creates one symlink in a resolved directory.
            match cvt(unsafe { libc::symlinkat(target.as_ptr(), parent.0, name.as_ptr()) }) {
                Err(Errno::EEXIST) => Ok(()),
                other => other.map(drop),
            }
        }
        Step::File { dst, data, mode } => {
            let mut buf = [0u8; 4097];
            let (parent, at) = parent_and_name(root, dst, &mut buf)?;
            let name = name_at(&buf, at)?;
            // SAFETY: creates or truncates one regular file in a resolved directory.
            let fd = Fd(cvt(unsafe {
                libc::openat(
                    parent.0,
                    name.as_ptr(),
                    libc::O_CREAT
                        | libc::O_TRUNC
                        | libc::O_WRONLY
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    *mode,
                )
            })?);
            write_all(fd.0, data)
        }
        Step::InitFile { dst, .. } => {
            // Written and cloned read-only in the first phase.
            let target = resolve(root, dst, Create::File)?;
            move_onto(slot(p, index)?, target.0)
        }
        Step::ReadOnly { dst } => {
            let target = match resolve(root, dst, Create::Nothing) {
                Err(Errno::ENOENT) => return Ok(()),
                other => other?,
            };
            let mnt = clone_tree(target.0)?;
            set_attrs(
                mnt.0,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                true,
            )?;
            move_onto(mnt.0, target.0)
        }
        Step::Mask { dst } => {
            let target = match resolve(root, dst, Create::Nothing) {
                Err(Errno::ENOENT) => return Ok(()),
                other => other?,
            };
            // SAFETY: `stat` is plain data; fstat of an O_PATH descriptor fills it.
            let st = unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                cvt(libc::fstat(target.0, &mut st))?;
                st
            };
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                let mnt = new_fs(
                    c"tmpfs",
                    [(c"mode", c"0"), (c"size", c"4k")],
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                )?;
                move_onto(mnt.0, target.0)
            } else if let Some(src) = null {
                // A copy of the /dev/null mounted on an earlier masked file (read-only, as
                // cloned mounts keep their flags; set again all the same).
                let mnt = clone_tree(src.0)?;
                set_attrs(
                    mnt.0,
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                    false,
                )?;
                move_onto(mnt.0, target.0)
            } else {
                // The read-only /dev/null cloned before leaving the host.
                let first = first_mask(p).ok_or(Errno::EBADF)?;
                move_onto(slot(p, first)?, target.0)?;
                // Attached now: our descriptor of it is no longer needed.
                if let Some(s) = p.slots.get(first) {
                    drop(Fd(s.swap(-1, Relaxed)));
                }
                *null = Some(resolve(root, dst, Create::Nothing)?);
                Ok(())
            }
        }
    }
}

/// Enter the new root with `pivot_root(".", ".")` and detach the old root, which the pivot
/// stacked on top of the new one (the working directory is the new root).
fn pivot(root: libc::c_int) -> Result<(), Errno> {
    // SAFETY: raw calls with static strings and a descriptor of the new root.
    unsafe {
        cvt(libc::fchdir(root))?;
        cvt_long(libc::syscall(
            libc::SYS_pivot_root,
            c".".as_ptr(),
            c".".as_ptr(),
        ))?;
        cvt(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
        cvt(libc::chdir(c"/".as_ptr()))?;
    }
    Ok(())
}

/// For a warm sandbox, between two runs: replace the tmpfs mounts among `steps` (indices into
/// the plan, ascending) with fresh, empty ones, and apply again the other steps listed (the
/// directories, symlinks and files the caller put into them; the parent lists no other kind).
/// Runs in the zygote, inside the new root, with every process of the previous run gone.
pub(super) fn reset(p: &View<'_>, steps: &[u32]) -> Result<(), (u32, Errno)> {
    // SAFETY: static path; the descriptor is owned by `Fd`.
    let root = Fd(cvt(unsafe {
        libc::open(
            c"/".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
    .map_err(|e| (AT_ROOT, e))?);
    for &i in steps {
        let at = |e| (i, e);
        let step = p.steps.get(i as usize).ok_or((i, Errno::EINVAL))?;
        match step {
            Step::Fs {
                fstype,
                dst,
                options,
                attrs,
            } => {
                // The working directory is the new root. Not there any more (detached with an
                // outer tmpfs just reset) or not a mount point: nothing to detach.
                // SAFETY: umount2 of a C string; the last component is not followed.
                match cvt(unsafe {
                    libc::umount2(dst.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW)
                }) {
                    Ok(_) | Err(Errno::ENOENT | Errno::EINVAL) => {}
                    Err(e) => return Err(at(e)),
                }
                let mnt = new_fs(fstype, pairs(options), *attrs).map_err(at)?;
                let target = resolve(root.0, dst, Create::Dir(0o755)).map_err(at)?;
                move_onto(mnt.0, target.0).map_err(at)?;
            }
            Step::Mkdir { .. } | Step::Symlink { .. } | Step::File { .. } => {
                apply(root.0, p, i as usize, step, &mut None).map_err(at)?
            }
            _ => return Err(at(Errno::EINVAL)),
        }
    }
    Ok(())
}
