//! Arbitrary filesystem options (paths with `..`, `.`, `//`, NUL bytes, relative paths, paths
//! longer than PATH_MAX, host paths that exist and that do not) → `FsConfig::prepare`, the
//! validation the parent runs before a sandbox starts: never a panic, and no escape:
//!
//! - an option whose destination is relative, contains `..` or a NUL byte, or is 4096 bytes
//!   or longer, makes it fail (unless it is an optional bind whose source is missing, which is
//!   skipped altogether);
//! - a bind or root whose source is relative or contains a NUL byte makes it fail;
//! - every step of an accepted plan has a destination relative to the new root without `..`,
//!   and every bind source is absolute.
//!
//! Lives in the helper library because `FsConfig` and its steps are `pub(crate)` there.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use arbitrary::Arbitrary;
use crate::fs::{FsConfig, FsOp, Root, RootStep, Size, Step};

/// Names that make existing host paths likely.
const NAMES: [&str; 16] = [
    "usr", "bin", "etc", "passwd", "tmp", "dev", "null", "proc", "self", "lib", "sys", "root",
    "..", ".", "", "a,b:c",
];

#[derive(Arbitrary, Debug)]
pub enum FPart {
    Name(u8),
    Raw(Vec<u8>),
    Long(u16),
}

#[derive(Arbitrary, Debug)]
pub struct FPath {
    absolute: bool,
    parts: Vec<FPart>,
    trailing_slash: bool,
}

impl FPath {
    fn get(&self) -> PathBuf {
        let mut b: Vec<u8> = Vec::new();
        if self.absolute {
            b.push(b'/');
        }
        for (i, p) in self.parts.iter().take(12).enumerate() {
            if i > 0 {
                b.push(b'/');
            }
            match p {
                FPart::Name(n) => b.extend_from_slice(NAMES[usize::from(*n) % NAMES.len()].as_bytes()),
                FPart::Raw(r) => b.extend(r.iter().take(64)),
                FPart::Long(n) => b.extend(std::iter::repeat_n(b'x', usize::from(*n) % 5000)),
            }
        }
        if self.trailing_slash {
            b.push(b'/');
        }
        PathBuf::from(OsStr::from_bytes(&b))
    }
}

#[derive(Arbitrary, Debug)]
pub enum FRoot {
    Empty,
    Dir(FPath),
    Layers(Vec<FPath>, FPath, FPath),
    /// No root chosen: the host's filesystem, read-only (or empty with the host system dirs).
    Auto,
}

#[derive(Arbitrary, Debug)]
pub enum FOp {
    Bind { src: FPath, dst: FPath, write: bool, dev: bool, optional: bool },
    Tmpfs { dst: FPath, size: u64, inodes: Option<u64>, mode: u32 },
    Proc { dst: FPath },
    Dev { dst: FPath },
    Mkdir { dst: FPath, mode: u32 },
    Symlink { target: FPath, link: FPath },
    File { dst: FPath, data: Vec<u8>, mode: u32 },
    HostSystem,
}

/// One fuzz input: the root and the options, in order, and a hostname.
#[derive(Arbitrary, Debug)]
pub struct Input {
    root: FRoot,
    ops: Vec<FOp>,
    hostname: Option<Vec<u8>>,
}

/// Whether `prepare` must refuse this destination.
fn bad_dst(p: &Path) -> bool {
    let bytes = p.as_os_str().as_bytes();
    if !p.is_absolute() || bytes.contains(&0) || p.components().any(|c| c == Component::ParentDir) {
        return true;
    }
    let clean: PathBuf = p
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    clean.as_os_str().len() >= 4096
}

fn bad_src(p: &Path) -> bool {
    !p.is_absolute() || p.as_os_str().as_bytes().contains(&0)
}

/// A destination as the sandboxed process receives it: relative to the new root, no `..`.
fn check_dst(d: &std::ffi::CStr, step: &str) {
    let b = d.to_bytes();
    assert!(!b.starts_with(b"/"), "{step}: absolute destination {d:?}");
    assert!(
        !b.split(|&c| c == b'/').any(|c| c == b".."),
        "{step}: `..` in destination {d:?}"
    );
    assert!(b.len() < 4096 + 64, "{step}: destination too long");
}

/// Checks one input (see the module documentation).
pub fn check(input: Input) {
    if input.ops.len() > 24 {
        return;
    }
    let root = match &input.root {
        FRoot::Empty => Root::Empty,
        FRoot::Auto => Root::Auto,
        FRoot::Dir(d) => Root::Dir(d.get()),
        FRoot::Layers(l, u, w) => Root::Layers {
            lowers: l.iter().take(4).map(FPath::get).collect(),
            upper: u.get(),
            work: w.get(),
        },
    };
    let ops: Vec<FsOp> = input
        .ops
        .iter()
        .map(|o| match o {
            FOp::Bind { src, dst, write, dev, optional } => FsOp::Bind {
                src: src.get(),
                dst: dst.get(),
                write: *write,
                dev: *dev,
                optional: *optional,
                // A source the caller names goes through no symlink.
                follow: false,
            },
            FOp::Tmpfs { dst, size, inodes, mode } => FsOp::Tmpfs {
                dst: dst.get(),
                size: Size(*size),
                inodes: *inodes,
                mode: *mode,
            },
            FOp::Proc { dst } => FsOp::Proc { dst: dst.get() },
            FOp::Dev { dst } => FsOp::Dev { dst: dst.get() },
            FOp::Mkdir { dst, mode } => FsOp::Mkdir { dst: dst.get(), mode: *mode },
            FOp::Symlink { target, link } => FsOp::Symlink { target: target.get(), link: link.get() },
            FOp::File { dst, data, mode } => FsOp::File {
                dst: dst.get(),
                data: data.iter().take(256).copied().collect(),
                mode: *mode,
            },
            FOp::HostSystem => FsOp::HostSystem,
        })
        .collect();

    // What must make `prepare` fail.
    let mut must_fail = match &root {
        Root::Auto | Root::Empty => false,
        Root::Dir(d) => bad_src(d),
        Root::Layers { lowers, upper, work } => {
            lowers.is_empty() || lowers.iter().chain([upper, work]).any(|p| bad_src(p))
        }
    };
    for op in &ops {
        must_fail |= match op {
            FsOp::Bind { src, dst, optional, .. } => {
                bad_src(src) || ((!optional || std::fs::metadata(src).is_ok()) && bad_dst(dst))
            }
            FsOp::Tmpfs { dst, size, inodes, .. } => {
                bad_dst(dst) || size.0 == 0 || *inodes == Some(0)
            }
            FsOp::Proc { dst } | FsOp::Dev { dst } | FsOp::Mkdir { dst, .. } => bad_dst(dst),
            FsOp::Symlink { target, link } => {
                bad_dst(link) || target.as_os_str().as_bytes().contains(&0)
            }
            FsOp::File { dst, .. } => bad_dst(dst),
            FsOp::HostSystem => false,
        };
    }

    let config = FsConfig { root, ops };
    let hostname = input.hostname.as_deref().map(OsStr::from_bytes);
    let plan = match config.prepare(hostname) {
        Ok(plan) => plan,
        Err(e) => {
            // Every refusal is a configuration error with a message.
            assert!(matches!(e, ringfence::Error::Config(_)), "{e:?}");
            let _ = e.to_string();
            return;
        }
    };
    assert!(!must_fail, "accepted an invalid configuration: {config:#?}");
    assert_eq!(plan.steps.len(), plan.descriptions.len());
    match &plan.root {
        RootStep::Tmpfs | RootStep::Host => {}
        RootStep::Bind { src } => assert!(src.to_bytes().starts_with(b"/")),
        RootStep::Overlay { options } => {
            for (k, v) in options {
                let v = v.to_bytes();
                assert!(v.starts_with(b"/"), "{k:?}");
                if k.to_bytes() != b"lowerdir" {
                    assert!(!v.contains(&b':'), "{k:?}");
                }
                assert!(!v.contains(&b','), "{k:?}");
            }
        }
    }
    for (step, what) in plan.steps.iter().zip(&plan.descriptions) {
        match step {
            Step::Bind { src, dst, .. } => {
                assert!(src.to_bytes().starts_with(b"/"), "{what}: relative source");
                check_dst(dst, what);
            }
            Step::Fs { dst, .. }
            | Step::Mkdir { dst, .. }
            | Step::Symlink { dst, .. }
            | Step::File { dst, .. }
            | Step::InitFile { dst, .. }
            | Step::ReadOnly { dst }
            | Step::Mask { dst } => check_dst(dst, what),
        }
    }
}
