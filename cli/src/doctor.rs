//! `ringfence doctor`: what this host supports, what a sandbox here gets, and how to fix what
//! is missing.

use std::io::Write;
use std::path::{Path, PathBuf};

use ringfence::cgroup::{CgroupBackend, CgroupInfo};
use ringfence::landlock::LandlockPart;
use ringfence::{
    Command, Compat, Enforcement, Errno, Error, HostInfo, Landlock, Namespace, Profile, Sandbox,
    Stage, Stdio, UserNs,
};
use serde_json::{Value, json};

use crate::failure::EXIT_FAILURE;

/// Flags of `ringfence doctor`.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Check what this host supports and what a sandbox here gets: the kernel, privileges, user \
namespaces, namespace kinds, cgroups (version, controllers, whether this user may create \
cgroups), Landlock, seccomp (actions, user notification), overlayfs in a user namespace — and, \
for each missing piece, how to fix it. Finally it runs `true` in an --isolated sandbox with a \
pids limit and Landlock rules (best effort) and prints its enforcement report, and says whether \
`run --isolated` holds here (every layer exactly or through a named substitute).

Exits with 0 when `run --isolated` holds here (whatever else is missing: the output says what); \
125 when it cannot be enforced or the output cannot be written.")]
pub struct DoctorArgs {
    /// Print one JSON object on stdout instead of the checklist.
    #[arg(long)]
    json: bool,
}

/// Whether a check passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Available.
    Ok,
    /// Partly available, or not needed by this user.
    Partial,
    /// Not available.
    Missing,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Partial => "partial",
            Status::Missing => "missing",
        }
    }

    fn mark(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Partial => "~",
            Status::Missing => "✗",
        }
    }
}

/// One line of the checklist.
struct Check {
    /// Stable id for `--json`.
    id: &'static str,
    /// What was checked, for people.
    title: &'static str,
    status: Status,
    /// What was found.
    detail: String,
    /// How to fix it, when it is not ok.
    fix: Option<String>,
}

/// Run `ringfence doctor`; returns the exit status.
pub fn main(args: &DoctorArgs) -> i32 {
    let host = ringfence::probe();
    let cgroup = ringfence::cgroup::cgroup_info();
    let seccomp = SeccompInfo::read();
    let overlay = OverlayInfo::probe(host);
    let landlock = LandlockInfo::read();
    let trial = trial_sandbox();
    let isolated = isolated_sandbox();
    let checks = checks(host, cgroup, &seccomp, &overlay, &landlock);
    let text = if args.json {
        let mut v = to_json(host, cgroup, &seccomp, &overlay, &landlock, &trial, &checks);
        v["isolated"] = match &isolated {
            Ok(report) => json!({"enforced": true, "report": crate::json::report(report)}),
            Err(e) => json!({"enforced": false, "error": e}),
        };
        format!("{v}\n")
    } else {
        let mut out = render(&checks, &trial);
        match &isolated {
            Ok(report) => match report.summary() {
                Some(s) => out.push_str(&format!("\n--isolated holds here ({s})\n")),
                None => out.push_str("\n--isolated holds here\n"),
            },
            Err(e) => out.push_str(&format!("\n--isolated cannot be enforced here: {e}\n")),
        }
        out
    };
    match std::io::stdout().write_all(text.as_bytes()) {
        // Non-zero when `run --isolated` would fail here.
        Ok(()) if isolated.is_err() => EXIT_FAILURE,
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ringfence: cannot write to stdout: {e}");
            EXIT_FAILURE
        }
    }
}

// ───────────────────────────────────────── facts ─────────────────────────────────────────

/// `MAJOR.MINOR` of a kernel release such as `6.1.0-28-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Seccomp as `/proc` shows it.
struct SeccompInfo {
    /// The `Seccomp:` mode of this process (0 none, 1 strict, 2 filtered); `None` when the
    /// line is absent (a kernel without CONFIG_SECCOMP).
    mode: Option<u32>,
    /// `Seccomp_filters:` (filters already installed on this process).
    filters: Option<u32>,
    /// `/proc/sys/kernel/seccomp/actions_avail`.
    actions: Vec<String>,
}

impl SeccompInfo {
    fn read() -> SeccompInfo {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        };
        let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        SeccompInfo {
            mode: field("Seccomp:"),
            filters: field("Seccomp_filters:"),
            actions,
        }
    }

    fn has(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action)
    }

    fn available(&self) -> bool {
        self.mode.is_some() && self.has("kill_process") && self.has("errno")
    }
}

/// Whether overlayfs works, and in a user namespace.
struct OverlayInfo {
    /// `overlay` is listed in `/proc/filesystems` (it may also be a module not yet loaded).
    listed: bool,
    /// The result of mounting an overlay root in a new user namespace: `Ok(())`, or why not.
    user_ns: Result<(), String>,
}

impl OverlayInfo {
    fn probe(host: &HostInfo) -> OverlayInfo {
        let listed = std::fs::read_to_string("/proc/filesystems")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"));
        let user_ns = match &host.user_ns {
            Err(u) => Err(format!("no user namespaces: {}", u.reason)),
            Ok(()) => try_overlay_in_user_ns(),
        };
        OverlayInfo { listed, user_ns }
    }
}

/// A directory of its own, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<ScratchDir> {
        let dir = std::env::temp_dir().join(format!("ringfence-doctor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["lower", "upper", "work"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Overlay leaves a mode-000 `work/work`, which an unprivileged user cannot empty
        // before making it enterable again.
        fn open_up(p: &std::path::Path) {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
                for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                    open_up(&e.path());
                }
            }
        }
        open_up(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Mount an overlay root in a new user namespace and try to run a program that does not
/// exist: failing at `execve` with ENOENT means every mount before it worked.
fn try_overlay_in_user_ns() -> Result<(), String> {
    let dir = ScratchDir::new().map_err(|e| format!("cannot create scratch directories: {e}"))?;
    let sandbox = Sandbox::new()
        .compat(Compat::Required)
        .user_ns(UserNs::current())
        .seccomp(Profile::unconfined())
        .rootfs_layers(
            [dir.0.join("lower")],
            dir.0.join("upper"),
            dir.0.join("work"),
        );
    let mut cmd = Command::new("/ringfence-doctor-no-such-program");
    cmd.stdin(Stdio::Null)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null);
    match sandbox.spawn(&cmd) {
        Err(Error::Setup {
            stage: Stage::Exec,
            errno: Errno::ENOENT,
        }) => Ok(()),
        Err(e) => Err(e.to_string()),
        Ok(mut child) => {
            let _ = child.kill();
            let _ = child.wait();
            Ok(())
        }
    }
}

/// Landlock as the running kernel has it.
struct LandlockInfo {
    abi: u32,
    parts: Vec<(LandlockPart, Enforcement)>,
}

impl LandlockInfo {
    fn read() -> LandlockInfo {
        // Rules that use every part, assessed without opening anything.
        let rules = Landlock::new()
            .connect_tcp(0)
            .scope_signals()
            .scope_abstract_unix();
        LandlockInfo {
            abi: ringfence::landlock::abi(),
            parts: rules.enforcement(),
        }
    }
}

/// What `true` in an isolated sandbox gets here: its report, or why it could not run.
fn trial_sandbox() -> Result<ringfence::Report, String> {
    let program = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("neither /bin/true nor /usr/bin/true exists")?;
    let readable: Vec<&str> = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    let sandbox = Sandbox::new()
        .compat(ringfence::Compat::BestEffort)
        .isolate()
        .landlock(Landlock::new().read_only(readable))
        .pids_limit(1024);
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::Null)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null);
    let outcome = sandbox.output(&cmd).map_err(|e| e.to_string())?;
    if !outcome.success() {
        return Err(format!("`true` ended with {:?}", outcome.status));
    }
    Ok(outcome.report)
}

/// Whether `run --isolated` holds here (every layer exactly or through a substitute): the
/// report of `true` in `Sandbox::isolated()`, or why it refused to run.
fn isolated_sandbox() -> Result<ringfence::Report, String> {
    let program = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("neither /bin/true nor /usr/bin/true exists")?;
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::Null)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null);
    let outcome = Sandbox::isolated()
        .output(&cmd)
        .map_err(|e| e.to_string())?;
    if !outcome.success() {
        return Err(format!("`true` ended with {:?}", outcome.status));
    }
    Ok(outcome.report)
}

// ───────────────────────────────────────── checks ─────────────────────────────────────────

const CGROUP_CONTROLLERS: [&str; 4] = ["cpu", "memory", "pids", "cpuset"];

fn checks(
    host: &HostInfo,
    cgroup: &CgroupInfo,
    seccomp: &SeccompInfo,
    overlay: &OverlayInfo,
    landlock: &LandlockInfo,
) -> Vec<Check> {
    let mut out = Vec::new();
    let version = kernel_version(&host.kernel);
    let at_least = |v: (u32, u32)| version.is_some_and(|k| k >= v);

    out.push(Check {
        id: "kernel",
        title: "kernel",
        status: if at_least((5, 4)) {
            Status::Ok
        } else {
            Status::Missing
        },
        detail: format!("Linux {}", host.kernel),
        fix: (!at_least((5, 4)))
            .then(|| "ringfence needs Linux >= 5.4 (pidfds); upgrade the kernel".into()),
    });

    out.push(Check {
        id: "privileges",
        title: "privileges",
        status: Status::Ok,
        detail: if host.privileged {
            format!(
                "euid {}, CAP_SYS_ADMIN: namespaces need no user namespace",
                host.euid
            )
        } else {
            format!(
                "euid {}, no CAP_SYS_ADMIN: namespaces come with a user namespace",
                host.euid
            )
        },
        fix: None,
    });

    out.push(match &host.user_ns {
        Ok(()) => Check {
            id: "user_namespaces",
            title: "user namespaces",
            status: Status::Ok,
            detail: "available".into(),
            fix: None,
        },
        Err(u) => Check {
            id: "user_namespaces",
            title: "user namespaces",
            // Root needs them only for --unshare-user and --map-root-user.
            status: if host.privileged {
                Status::Partial
            } else {
                Status::Missing
            },
            detail: if host.privileged {
                format!(
                    "unavailable ({}); as root only --unshare-user and --map-root-user need them",
                    u.reason
                )
            } else {
                format!("unavailable: {}; sandboxes get no namespaces", u.reason)
            },
            fix: Some(u.hint.into()),
        },
    });

    let missing_ns: Vec<&str> = Namespace::ALL
        .iter()
        .filter(|n| !host.supports(**n))
        .map(|n| n.name())
        .collect();
    let have_ns: Vec<&str> = host.namespaces.iter().map(|n| n.name()).collect();
    out.push(Check {
        id: "namespaces",
        title: "namespace kinds",
        status: if missing_ns.is_empty() {
            Status::Ok
        } else {
            Status::Partial
        },
        detail: if missing_ns.is_empty() {
            have_ns.join(" ")
        } else {
            format!("{} (missing: {})", have_ns.join(" "), missing_ns.join(" "))
        },
        fix: (!missing_ns.is_empty()).then(|| {
            "a kernel built with every CONFIG_*_NS option (time namespaces need Linux >= 5.6)"
                .into()
        }),
    });

    out.push(cgroup_check(cgroup));

    let seccomp_ok = seccomp.available();
    out.push(Check {
        id: "seccomp",
        title: "seccomp",
        status: if seccomp_ok {
            Status::Ok
        } else {
            Status::Missing
        },
        detail: match seccomp.mode {
            None => "not in this kernel (no Seccomp line in /proc/self/status)".into(),
            Some(mode) => {
                let already = match (mode, seccomp.filters) {
                    (2, Some(n)) => format!(", {n} filter(s) already on this process (they stay)"),
                    (2, None) => ", filters already on this process (they stay)".into(),
                    _ => String::new(),
                };
                format!("actions: {}{already}", seccomp.actions.join(" "))
            }
        },
        fix: (!seccomp_ok).then(|| {
            "a kernel with CONFIG_SECCOMP_FILTER (Linux >= 4.14 for kill_process); without it, run with --seccomp unconfined".into()
        }),
    });
    let notif = seccomp.has("user_notif");
    out.push(Check {
        id: "seccomp_user_notification",
        title: "seccomp user notification",
        status: if notif { Status::Ok } else { Status::Missing },
        detail: if notif {
            "available (notify actions reach a supervisor)".into()
        } else {
            "unavailable: profiles with the notify action cannot be installed".into()
        },
        fix: (!notif).then(|| "Linux >= 5.0 with CONFIG_SECCOMP_FILTER".into()),
    });

    let all_enforced = landlock
        .parts
        .iter()
        .all(|(_, e)| matches!(e, Enforcement::Enforced));
    let missing: Vec<String> = landlock
        .parts
        .iter()
        .filter_map(|(part, e)| match e {
            Enforcement::Enforced => None,
            Enforcement::NotEnforced { .. } => Some(format!("{part} (ABI {})", part.min_abi())),
            _ => None,
        })
        .collect();
    let first_hint = landlock.parts.iter().find_map(|(_, e)| match e {
        Enforcement::NotEnforced { reason, hint } => Some((reason.clone(), *hint)),
        _ => None,
    });
    out.push(Check {
        id: "landlock",
        title: "Landlock",
        status: if landlock.abi == 0 {
            Status::Missing
        } else if all_enforced {
            Status::Ok
        } else {
            Status::Partial
        },
        detail: if landlock.abi == 0 {
            format!(
                "unavailable: {}",
                first_hint
                    .as_ref()
                    .map_or("no Landlock ABI", |(r, _)| r.as_str())
            )
        } else if missing.is_empty() {
            format!(
                "ABI {}: files, TCP ports, signal and abstract unix scopes",
                landlock.abi
            )
        } else {
            format!("ABI {}; not enforced: {}", landlock.abi, missing.join(", "))
        },
        fix: first_hint.map(|(_, hint)| hint.to_owned()),
    });

    out.push(Check {
        id: "overlay",
        title: "overlayfs",
        status: if overlay.listed {
            Status::Ok
        } else {
            Status::Partial
        },
        detail: if overlay.listed {
            "in /proc/filesystems".into()
        } else {
            "not in /proc/filesystems (it may be a module not loaded yet)".into()
        },
        fix: (!overlay.listed)
            .then(|| "modprobe overlay, or a kernel with CONFIG_OVERLAY_FS".into()),
    });
    out.push(Check {
        id: "overlay_user_ns",
        title: "overlay in a user namespace",
        status: match (&overlay.user_ns, host.privileged) {
            (Ok(()), _) => Status::Ok,
            (Err(_), true) => Status::Partial,
            (Err(_), false) => Status::Missing,
        },
        detail: match &overlay.user_ns {
            Ok(()) => "works (tried: an overlay root mounted in a new user namespace)".into(),
            Err(e) if host.privileged => {
                format!("does not work ({e}); as root, --overlay works without a user namespace")
            }
            Err(e) => format!("does not work: {e}; --overlay needs it without root"),
        },
        fix: overlay.user_ns.is_err().then(|| {
            if at_least((5, 11)) {
                "unprivileged overlay needs user namespaces (see above) and upper/work directories on a filesystem that supports it (tmpfs, ext4, xfs, btrfs)".into()
            } else {
                "unprivileged overlay needs Linux >= 5.11; run as root or upgrade the kernel".into()
            }
        }),
    });
    out
}

fn cgroup_check(cgroup: &CgroupInfo) -> Check {
    let fix_write = "run as root, or in a delegated cgroup (systemd-run --user --scope -p Delegate=yes ringfence ...) and pass a cgroup below it with --cgroup-parent; without one, --memory and --pids are held through resource limits, and --best-effort runs without the rest";
    let (version, mount) = match &cgroup.backend {
        CgroupBackend::V2 { mount } => ("v2", mount.display().to_string()),
        CgroupBackend::V1 { .. } => ("v1", "per-controller hierarchies".to_owned()),
        CgroupBackend::Unavailable { reason } => {
            return Check {
                id: "cgroup",
                title: "cgroups",
                status: Status::Missing,
                detail: format!("unavailable: {reason}"),
                fix: Some("mount cgroup2 on /sys/fs/cgroup (or run where it is mounted, e.g. --cgroupns=host containers)".into()),
            };
        }
        _ => ("unknown", String::new()),
    };
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    for name in CGROUP_CONTROLLERS {
        match cgroup.controller(name) {
            None => {
                parts.push(format!("{name} missing"));
                problems.push(format!("{name}: not available to this process"));
            }
            Some(c) if !c.writable => {
                parts.push(format!("{name} not writable"));
                problems.push(format!("{name}: {} is not writable", c.own.display()));
            }
            Some(c) if !c.enabled => {
                parts.push(format!("{name} not enabled"));
                problems.push(format!(
                    "{name}: not in {}/cgroup.subtree_control",
                    c.own.display()
                ));
            }
            Some(_) => parts.push(format!("{name} writable")),
        }
    }
    let status = if problems.is_empty() {
        Status::Ok
    } else if problems.len() < CGROUP_CONTROLLERS.len() {
        Status::Partial
    } else {
        Status::Missing
    };
    let fix = if problems.is_empty() {
        None
    } else if problems.iter().all(|p| p.contains("not available")) {
        Some("enable the controllers in the kernel and mount them (cgroup_enable=memory on the kernel command line for memory)".into())
    } else if problems.iter().any(|p| p.contains("subtree_control")) {
        Some(format!(
            "enable them for child cgroups: echo +cpu +memory +pids +cpuset > .../cgroup.subtree_control of the parent; otherwise {fix_write}"
        ))
    } else {
        Some(fix_write.to_owned())
    };
    Check {
        id: "cgroup",
        title: "cgroups",
        status,
        detail: format!("{version} ({mount}): {}", parts.join(", ")),
        fix,
    }
}

// ───────────────────────────────────────── output ─────────────────────────────────────────

fn render(checks: &[Check], trial: &Result<ringfence::Report, String>) -> String {
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "{} {:<28} {}\n",
            c.status.mark(),
            c.title,
            c.detail
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("  {:<28} fix: {fix}\n", ""));
        }
    }
    out.push_str(
        "\nA sandbox here (--isolated --pids 1024 --landlock-ro /usr ... --best-effort):\n",
    );
    match trial {
        Ok(report) => out.push_str(&report.to_string()),
        Err(e) => out.push_str(&format!("  could not run: {e}\n")),
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn to_json(
    host: &HostInfo,
    cgroup: &CgroupInfo,
    seccomp: &SeccompInfo,
    overlay: &OverlayInfo,
    landlock: &LandlockInfo,
    trial: &Result<ringfence::Report, String>,
    checks: &[Check],
) -> Value {
    let checks_json: Vec<Value> = checks
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "title": c.title,
                "status": c.status.name(),
                "detail": c.detail,
                "fix": c.fix,
            })
        })
        .collect();
    let (version, mount) = match &cgroup.backend {
        CgroupBackend::V2 { mount } => (Some("v2"), Some(mount.display().to_string())),
        CgroupBackend::V1 { .. } => (Some("v1"), None),
        _ => (None, None),
    };
    let controllers: serde_json::Map<String, Value> = cgroup
        .controllers
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                json!({
                    "path": c.own.display().to_string(),
                    "writable": c.writable,
                    "enabled": c.enabled,
                }),
            )
        })
        .collect();
    let landlock_parts: Vec<Value> = landlock
        .parts
        .iter()
        .map(|(part, e)| {
            let mut v = json!({
                "name": part.name(),
                "min_abi": part.min_abi(),
                "enforced": matches!(e, Enforcement::Enforced),
            });
            if let Enforcement::NotEnforced { reason, hint } = e {
                v["reason"] = json!(reason);
                v["hint"] = json!(hint);
            }
            v
        })
        .collect();
    let trial_json = match trial {
        Ok(report) => json!({"ran": true, "report": crate::json::report(report)}),
        Err(e) => json!({"ran": false, "error": e}),
    };
    json!({
        "ok": checks.iter().all(|c| c.status == Status::Ok),
        "checks": checks_json,
        "host": crate::json::host(host),
        "user_namespaces": match &host.user_ns {
            Ok(()) => json!({"available": true}),
            Err(u) => json!({"available": false, "reason": u.reason, "hint": u.hint}),
        },
        "cgroup": {
            "version": version,
            "mount": mount,
            "controllers": controllers,
        },
        "landlock": {
            "abi": landlock.abi,
            "parts": landlock_parts,
        },
        "seccomp": {
            "available": seccomp.available(),
            "mode": seccomp.mode,
            "filters": seccomp.filters,
            "actions": seccomp.actions,
            "user_notification": seccomp.has("user_notif"),
        },
        "overlay": {
            "filesystem": overlay.listed,
            "user_namespace": {
                "works": overlay.user_ns.is_ok(),
                "method": "tried",
                "error": overlay.user_ns.as_ref().err(),
            },
        },
        "sandbox": trial_json,
    })
}
