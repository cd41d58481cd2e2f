//! Substitutes for layers this host cannot make (see [`crate::probe`]): the parent decides them
//! before the clone, from what was refused; the sandboxed process only applies plain data
//! (resource limits, one more Landlock ruleset, an environment entry).
//!
//! - **Limits without a writable cgroup**: the process limit becomes `RLIMIT_NPROC` inside the
//!   sandbox's own user namespace (counted per user namespace since Linux 5.14: it caps the
//!   sandbox, not the user); the memory limit becomes `RLIMIT_AS` and `RLIMIT_DATA` of every
//!   process (per process, not in aggregate). The CPU quota and weight, the cpuset and swap
//!   have no substitute.
//! - **A filesystem view without a mount namespace**: one more Landlock ruleset, applied with
//!   the sandbox's own rules (Landlock domains stack: both hold), allowing read and execute
//!   beneath what would have been bound read-only and everything beneath what would have been
//!   bound writable, nothing else. What cannot be remapped without a mount namespace gets the
//!   closest safe substitute, named in the report: the private `/tmp` becomes a private
//!   directory (mode 0700, removed with the sandbox) writable through Landlock and given as
//!   `TMPDIR`, the host's `/tmp` staying unwritable; the new `/proc` becomes the host's `/proc`
//!   read-only (Landlock's ptrace restriction refuses the private files of every process
//!   outside the sandbox); the minimal `/dev` becomes its device files on the host. A bind to
//!   another path, another root, a tmpfs elsewhere and files or directories made in the new
//!   root have no substitute. Weaker than a mount namespace in named ways: Landlock does not
//!   restrict connecting to a unix socket by its path, and the host's process list shows in
//!   `/proc`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cgroup::{CgroupConfig, CgroupError};
use crate::error::{Error, Result};
use crate::fs::{FsConfig, FsOp, Root};
use crate::landlock::{Landlock, LandlockPart, PreparedLandlock};
use crate::probe::{Compat, Enforcement, HostInfo, Layer};

/// What to tell a caller whose cgroup limits cannot all be had.
const CGROUP_HINT: &str = "run as root, or in a delegated cgroup v2 (systemd-run --user --scope -p Delegate=yes, or cgroup_parent on a directory you own); or drop the limits that have no substitute; or choose best effort (Compat::BestEffort, ringfence run --best-effort)";

/// The [`Compat`] level of each cgroup limit, as it was when the limit was set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LimitCompat {
    pub cpu: Compat,
    pub cpu_weight: Compat,
    pub memory: Compat,
    pub swap: Compat,
    pub pids: Compat,
    pub cpuset: Compat,
    pub parent: Compat,
}

/// One resource limit for the sandboxed process, as `setrlimit` takes it.
pub(crate) type RawRlimit = (libc::__rlimit_resource_t, libc::rlimit);

/// The substitutes for cgroup limits that could not be had: the resource limits to add to the
/// sandbox's own, and the report entry.
#[derive(Debug)]
pub(crate) struct LimitSubstitute {
    /// The sandbox's resource limits with the substitutes merged in (the lower value wins).
    pub rlimits: Vec<RawRlimit>,
    /// [`Layer::Cgroup`]'s entry in the report.
    pub enforcement: Enforcement,
}

/// The hard limit this process has for `resource` (a sandboxed process cannot raise it).
fn current_hard(resource: libc::__rlimit_resource_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: getrlimit into a struct on this stack.
    unsafe { libc::getrlimit(resource, &mut lim) };
    lim.rlim_max
}

/// Put `value` (soft and hard) into `rlimits`, keeping a lower value already there and never
/// above this process's own hard limit.
fn merge(rlimits: &mut Vec<RawRlimit>, resource: libc::__rlimit_resource_t, value: u64) {
    let value = (value as libc::rlim_t).min(current_hard(resource));
    match rlimits.iter_mut().find(|(r, _)| *r == resource) {
        Some((_, lim)) => {
            lim.rlim_cur = lim.rlim_cur.min(value);
            lim.rlim_max = lim.rlim_max.min(value);
        }
        None => rlimits.push((
            resource,
            libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            },
        )),
    }
}

/// Substitutes for the limits of `cfg`, which could not be had because of `err`. `own_userns`
/// says whether the sandbox gets a user namespace of its own (where `RLIMIT_NPROC` counts only
/// its processes). Fails when a limit has no substitute and `compat` is required.
pub(crate) fn limits(
    cfg: &CgroupConfig,
    err: &CgroupError,
    compat: &LimitCompat,
    own_userns: bool,
    host: &HostInfo,
    base: &[RawRlimit],
) -> Result<LimitSubstitute> {
    let mut rlimits = base.to_vec();
    let mut held: Vec<String> = Vec::new();
    let mut missing: Vec<(String, Compat)> = Vec::new();
    if let Some(bytes) = cfg.memory {
        merge(&mut rlimits, libc::RLIMIT_AS, bytes);
        merge(&mut rlimits, libc::RLIMIT_DATA, bytes);
        held.push(format!(
            "memory as RLIMIT_AS/RLIMIT_DATA of {bytes} bytes per process (not in aggregate)"
        ));
    }
    if let Some(n) = cfg.pids {
        if !own_userns {
            missing.push((format!(
                "the process limit (without a user namespace of its own RLIMIT_NPROC would count every process of uid {}, not the sandbox's)",
                host.euid
            ), compat.pids));
        } else if host.euid == 0 {
            missing.push((
                "the process limit (RLIMIT_NPROC does not bind root)".into(),
                compat.pids,
            ));
        } else {
            merge(&mut rlimits, libc::RLIMIT_NPROC, n);
            held.push(format!(
                "processes as RLIMIT_NPROC of {n} in the sandbox's user namespace"
            ));
        }
    }
    let none = [
        (cfg.cpu.is_some(), "the CPU quota", compat.cpu),
        (
            cfg.cpu_weight.is_some(),
            "the CPU weight",
            compat.cpu_weight,
        ),
        (cfg.cpuset.is_some(), "the cpuset", compat.cpuset),
        (cfg.swap.is_some(), "the swap limit", compat.swap),
    ];
    missing.extend(
        none.iter()
            .filter(|(asked, _, _)| *asked)
            .map(|(_, what, c)| (what.to_string(), *c)),
    );
    if let (Some(parent), true) = (&cfg.parent, held.is_empty() && missing.is_empty()) {
        missing.push((
            format!("a cgroup below {}", parent.display()),
            compat.parent,
        ));
    }
    let why = first_sentence(err);
    if missing.is_empty() {
        return Ok(LimitSubstitute {
            rlimits,
            enforcement: Enforcement::Substituted {
                substitute: held.join("; "),
                reason: format!("no cgroup: {why}"),
            },
        });
    }
    let names: Vec<&str> = missing.iter().map(|(w, _)| w.as_str()).collect();
    let mut reason = format!("no cgroup ({why}); no substitute for {}", names.join(", "));
    if !held.is_empty() {
        reason.push_str(&format!("; substituted: {}", held.join("; ")));
    }
    if missing.iter().any(|(_, c)| *c == Compat::Required) {
        return Err(Error::Unsupported {
            layer: Layer::Cgroup,
            reason,
            hint: CGROUP_HINT,
        });
    }
    Ok(LimitSubstitute {
        rlimits,
        enforcement: Enforcement::NotEnforced {
            reason,
            hint: CGROUP_HINT,
        },
    })
}

/// A cgroup error's message without its hint (the substitute's report has its own).
fn first_sentence(err: &CgroupError) -> String {
    let text = err.to_string();
    match text.find("; hint:") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Whether a failure to make the cgroup may be met with substitutes: not for a configuration
/// that is wrong in itself.
pub(crate) fn substitutable(err: &CgroupError) -> bool {
    !matches!(
        err,
        CgroupError::InvalidConfig { .. } | CgroupError::NotACgroup { .. }
    )
}

// ─────────────────────────────── the filesystem view through Landlock ───────────────────────────────

/// The host's system directories a [`FsOp::HostSystem`] view binds (when they are directories).
const HOST_SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// The filesystem view of a sandbox as Landlock rules over the host's paths, for a spawn
/// without a mount namespace (pure data, decided before the clone).
#[derive(Clone, Debug, Default)]
pub(crate) struct ViewPlan {
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
    /// A private tmpfs at `/tmp`: a private directory as `TMPDIR` instead.
    private_tmp: bool,
    /// A new `/proc`: the host's, read-only.
    proc: bool,
    /// A minimal `/dev`: its device files on the host.
    dev: bool,
    /// What has no substitute.
    missing: Vec<String>,
    /// Why there is no mount namespace.
    pub reason: String,
}

impl ViewPlan {
    /// The view `fs` describes, as far as Landlock can hold it.
    pub(crate) fn of(fs: &FsConfig) -> ViewPlan {
        let mut v = ViewPlan::default();
        match &fs.root {
            Root::Auto | Root::Empty => {}
            Root::Dir(d) => v.missing.push(format!("the root {}", d.display())),
            Root::Layers { .. } => v.missing.push("the overlay root".into()),
        }
        for op in &fs.ops {
            match op {
                FsOp::Bind {
                    src,
                    dst,
                    write,
                    optional,
                    ..
                } => {
                    if src != dst {
                        v.missing
                            .push(format!("{} at {}", src.display(), dst.display()));
                    } else if *optional && !src.exists() {
                    } else if *write {
                        v.write.push(src.clone());
                    } else {
                        v.read.push(src.clone());
                    }
                }
                FsOp::Tmpfs { dst, .. } if dst == Path::new("/tmp") => v.private_tmp = true,
                FsOp::Tmpfs { dst, .. } => v
                    .missing
                    .push(format!("a private tmpfs at {}", dst.display())),
                FsOp::Proc { dst } if dst == Path::new("/proc") => v.proc = true,
                FsOp::Dev { dst } if dst == Path::new("/dev") => v.dev = true,
                FsOp::Proc { dst } | FsOp::Dev { dst } => v
                    .missing
                    .push(format!("{} elsewhere than its place", dst.display())),
                FsOp::Mkdir { dst, .. } => v.missing.push(format!("directory {}", dst.display())),
                FsOp::Symlink { link, .. } => v.missing.push(format!("symlink {}", link.display())),
                FsOp::File { dst, .. } => v.missing.push(format!("file {}", dst.display())),
                FsOp::HostSystem => {
                    for d in HOST_SYSTEM_DIRS {
                        // A symlink (merged /usr) resolves into a directory already listed.
                        if std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) {
                            v.read.push(d.into());
                        }
                    }
                    for name in crate::fs::HOST_ETC {
                        let p = Path::new("/etc").join(name);
                        if p.exists() {
                            v.read.push(p);
                        }
                    }
                }
            }
        }
        v
    }

    /// The plan, with why there is no mount namespace.
    pub(crate) fn because(mut self, reason: String) -> ViewPlan {
        self.reason = reason;
        self
    }

    /// Why this view cannot be held through Landlock here, if it cannot: no Landlock, or
    /// parts without substitute while the view is required.
    pub(crate) fn refusal(&self, compat: Compat) -> Option<String> {
        if crate::landlock::abi() == 0 {
            return Some("this kernel has no Landlock to hold the filesystem view with".into());
        }
        if compat == Compat::Required && !self.missing.is_empty() {
            return Some(format!(
                "without a mount namespace there is no substitute for {}",
                self.missing.join(", ")
            ));
        }
        None
    }

    /// The report's words for the substitute.
    pub(crate) fn describe(&self, scratch: Option<&Path>) -> String {
        let mut parts = vec![format!(
            "Landlock over the host's paths: read and execute beneath {} path(s), read-write beneath {} (connecting to a unix socket by path is not restricted)",
            self.read.len(),
            self.write.len() + usize::from(self.private_tmp)
        )];
        if self.private_tmp {
            parts.push(match scratch {
                Some(dir) => format!(
                    "private /tmp as {} given in TMPDIR (the host's /tmp is not writable)",
                    dir.display()
                ),
                None => {
                    "private /tmp as a private directory given in TMPDIR (the host's /tmp is not writable)"
                        .into()
                }
            });
        }
        if self.proc {
            parts.push(
                "new /proc as the host's /proc read-only (other processes are listed, their private files refused)"
                    .into(),
            );
        }
        if self.dev {
            parts.push("minimal /dev as the host's null, zero, full, random, urandom, tty".into());
        }
        if !self.missing.is_empty() {
            parts.push(format!("left out: {}", self.missing.join(", ")));
        }
        parts.join("; ")
    }

    /// Build the ruleset (and the private `/tmp` directory) for one spawn. `ruleset_fd` of the
    /// result is what the sandboxed process restricts itself with.
    pub(crate) fn prepare(&self) -> Result<PreparedView> {
        let scratch = if self.private_tmp {
            Some(ScratchDir::create()?)
        } else {
            None
        };
        let mut rules = Landlock::new()
            .read_only(&self.read)
            .read_write(&self.write);
        if let Some(s) = &scratch {
            rules = rules.read_write([s.path()]);
        }
        if self.proc {
            rules = rules.read_only(["/proc"]);
        }
        if self.dev {
            let nodes = crate::fs::DEV_NODES
                .iter()
                .map(|n| Path::new("/dev").join(n))
                .filter(|p| p.exists());
            rules = rules.read_write(nodes);
        }
        let landlock =
            crate::landlock::prepare(&rules, Compat::BestEffort).map_err(Error::Landlock)?;
        let held = landlock
            .report()
            .iter()
            .any(|(p, e)| *p == LandlockPart::Filesystem && *e == Enforcement::Enforced);
        if !held || landlock.raw_fd().is_none() {
            return Err(Error::Unsupported {
                layer: Layer::Filesystem,
                reason: "Landlock refused the file system rules that stand in for the view".into(),
                hint: "use a kernel with Landlock (Linux 5.13 or later, lsm=landlock,...)",
            });
        }
        let tmpdir = match &scratch {
            Some(s) => {
                let mut e = b"TMPDIR=".to_vec();
                e.extend_from_slice(s.path().as_os_str().as_bytes());
                Some(CString::new(e).map_err(|_| Error::Protocol("NUL in the scratch path"))?)
            }
            None => None,
        };
        Ok(PreparedView {
            landlock: Arc::new(landlock),
            scratch,
            tmpdir,
        })
    }
}

/// What one spawn's view substitute needs: the ruleset, the private `/tmp` directory and the
/// `TMPDIR` entry naming it.
#[derive(Debug)]
pub(crate) struct PreparedView {
    pub landlock: Arc<PreparedLandlock>,
    pub scratch: Option<ScratchDir>,
    pub tmpdir: Option<CString>,
}

impl PreparedView {
    /// `envp` with `TMPDIR` naming the private directory (replacing any `TMPDIR` given).
    pub(crate) fn environment(&self, mut envp: Vec<CString>) -> Vec<CString> {
        if let Some(t) = &self.tmpdir {
            envp.retain(|e| !e.as_bytes().starts_with(b"TMPDIR="));
            envp.push(t.clone());
        }
        envp
    }

    /// A working directory below `/tmp` moved into the private directory.
    pub(crate) fn working_dir(&self, cwd: Option<&CString>) -> Option<CString> {
        let (cwd, dir) = (cwd?, self.scratch.as_ref()?);
        let rest = cwd.as_bytes().strip_prefix(b"/tmp")?;
        if !rest.is_empty() && !rest.starts_with(b"/") {
            return None;
        }
        let mut p = dir.path().as_os_str().as_bytes().to_vec();
        p.extend_from_slice(rest);
        CString::new(p).ok()
    }
}

/// A private directory standing in for a sandbox's private `/tmp` (mode 0700 in the caller's
/// temporary directory), removed with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> Result<ScratchDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = base.join(format!(
                "ringfence-tmp-{}-{}-{nanos:08x}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            // mkdir never follows a planted symlink: an existing name is EEXIST, tried again.
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(ScratchDir(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create the private directory for /tmp", e)),
            }
        }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied() -> CgroupError {
        CgroupError::Unsupported {
            controller: "cgroup",
            reason: "/sys/fs/cgroup/x is not writable by uid 1000".into(),
            hint: "h",
        }
    }

    fn host(euid: u32) -> HostInfo {
        let mut h = crate::probe::probe().clone();
        h.euid = euid;
        h
    }

    #[test]
    fn memory_and_pids_are_substituted_in_a_user_namespace() {
        let cfg = CgroupConfig {
            memory: Some(256 << 20),
            pids: Some(128),
            ..CgroupConfig::default()
        };
        let base = [(
            libc::RLIMIT_AS,
            libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: 1 << 30,
            },
        )];
        let required = LimitCompat::default();
        let s = limits(&cfg, &denied(), &required, true, &host(1000), &base).unwrap();
        let get = |r| s.rlimits.iter().find(|(x, _)| *x == r).map(|(_, l)| *l);
        let as_ = get(libc::RLIMIT_AS).unwrap();
        assert_eq!((as_.rlim_cur, as_.rlim_max), (1 << 20, 256 << 20));
        assert_eq!(get(libc::RLIMIT_DATA).unwrap().rlim_cur, 256 << 20);
        assert_eq!(get(libc::RLIMIT_NPROC).unwrap().rlim_max, 128);
        match &s.enforcement {
            Enforcement::Substituted { substitute, reason } => {
                assert!(substitute.contains("RLIMIT_NPROC of 128"), "{substitute}");
                assert!(substitute.contains("per process"), "{substitute}");
                assert!(reason.contains("not writable"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn no_substitute_fails_when_required_and_is_reported_otherwise() {
        let cfg = CgroupConfig {
            cpu: Some(crate::cgroup::Cpu::percent(20)),
            pids: Some(10),
            ..CgroupConfig::default()
        };
        let required = LimitCompat::default();
        let e = limits(&cfg, &denied(), &required, true, &host(1000), &[]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("CPU quota"), "{msg}");
        assert!(e.hint().unwrap().contains("best effort"), "{msg}");
        // Best effort for the CPU quota only: the process limit, required, has no substitute
        // without a user namespace.
        let cpu_only = LimitCompat {
            cpu: Compat::BestEffort,
            ..LimitCompat::default()
        };
        assert!(limits(&cfg, &denied(), &cpu_only, false, &host(1000), &[]).is_err());
        let cpu_ok = limits(&cfg, &denied(), &cpu_only, true, &host(1000), &[]).unwrap();
        assert!(matches!(
            cpu_ok.enforcement,
            Enforcement::NotEnforced { .. }
        ));
        let lax = LimitCompat {
            cpu: Compat::BestEffort,
            pids: Compat::BestEffort,
            ..LimitCompat::default()
        };
        let s = limits(&cfg, &denied(), &lax, false, &host(1000), &[]).unwrap();
        assert!(s.rlimits.is_empty());
        match s.enforcement {
            Enforcement::NotEnforced { reason, .. } => {
                assert!(reason.contains("CPU quota"), "{reason}");
                assert!(reason.contains("uid 1000"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
    }
}
