//! The same hygiene and restrictions on every way a process gets into a sandbox: a spawn, a
//! run of the warm mode (its zygote sets them up with its own calls), `Child::exec` and
//! `Sandbox::join`; with the default profile and with no seccomp filter at all (no_new_privs
//! must not depend on a filter or a Landlock ruleset needing it). And every masked or
//! read-only `/proc` entry that exists on this host, not only `/proc/keys`.
//!
//! Run as root and, through `rootless_test!`, as uid 65534.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use common::{Facts, rf};
use ringfence::{Command, Profile, Sandbox, Stdio};

/// The `/proc` entries a sandbox's own `/proc` hides (a copy of the library's list: a name
/// dropped there fails here, where the host has the entry).
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
/// The `/proc` entries made read-only.
const PROC_READ_ONLY: [&str; 5] = ["sys", "sysrq-trigger", "irq", "bus", "fs"];

const NO_CAPS: &str = "0000000000000000";

fn can_isolate() -> bool {
    if common::is_root() || common::userns_available() {
        true
    } else {
        common::skip("needs root or user namespaces");
        false
    }
}

/// An isolated sandbox with rf-inspect at `/rf-inspect`, under `profile`.
fn isolated(profile: Profile) -> Sandbox {
    Sandbox::isolated()
        .bind_ro(common::inspect(), "/rf-inspect")
        .seccomp(profile)
}

fn inside(args: &[&str]) -> Command {
    let mut c = Command::new("/rf-inspect");
    c.args(args).stdout(Stdio::Piped).stderr(Stdio::Piped);
    c
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.args(["-c", script])
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped);
    c
}

/// How a process gets into the sandbox.
#[derive(Clone, Copy, Debug)]
enum Way {
    Spawn,
    Warm,
    Exec,
    Join,
}

const WAYS: [Way; 4] = [Way::Spawn, Way::Warm, Way::Exec, Way::Join];

/// Run `cmd` in `sb` (built with [`profile`]`(filtered)`) the way `way` says.
fn run(sb: &Sandbox, filtered: bool, way: Way, cmd: &Command) -> ringfence::Outcome {
    let out = match way {
        Way::Spawn => sb.output(cmd).unwrap(),
        Way::Warm => sb.warm().unwrap().output(cmd).unwrap(),
        Way::Exec | Way::Join => {
            let mut sleeper = Command::new("/rf-inspect");
            sleeper.args(["sleep", "30"]);
            let mut target = sb.spawn(&sleeper).unwrap();
            let out = match way {
                Way::Exec => target.exec(cmd).unwrap().wait_with_output().unwrap(),
                // A joining sandbox with the same profile as the target's.
                _ => Sandbox::new()
                    .seccomp(profile(filtered))
                    .join(&target)
                    .output(cmd)
                    .unwrap(),
            };
            target.kill().unwrap();
            let _ = target.wait();
            out
        }
    };
    assert!(
        out.success(),
        "{way:?}: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn profile(filtered: bool) -> Profile {
    if filtered {
        Profile::default_container()
    } else {
        Profile::unconfined()
    }
}

/// The hygiene every process of a sandbox has, however it got in.
fn assert_hygiene(f: &Facts, what: &str, filtered: bool) {
    assert_eq!(f.get("NoNewPrivs"), "1", "{what}: no_new_privs");
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(f.get(set), NO_CAPS, "{what}: {set}");
    }
    if common::is_root() {
        assert_eq!(f.get("CapBnd"), NO_CAPS, "{what}: CapBnd");
    }
    assert_eq!(
        f.get("Seccomp"),
        if filtered { "2" } else { "0" },
        "{what}: seccomp mode"
    );
    let fds: Vec<&str> = f
        .get("fds")
        .split(',')
        .map(|d| d.split(':').next().unwrap())
        .collect();
    assert_eq!(fds, ["0", "1", "2"], "{what}: descriptors {}", f.get("fds"));
    assert_eq!(f.get("env"), "", "{what}: environment");
    // The caller's terminal is the program's stdin, and not its controlling terminal: a
    // session of its own (led by the program, the sandbox's init or the joining relay).
    assert_eq!(
        f.get("ctty"),
        format!("no:{}", libc::ENXIO),
        "{what}: controlling terminal"
    );
    assert_eq!(f.get("SigBlk"), NO_CAPS, "{what}: blocked signals");
    assert_eq!(f.get("hostname"), "sandbox", "{what}: hostname");
}

/// Become a session leader with a pseudo-terminal as controlling terminal (in a re-run test
/// process: never the harness's); the terminal.
fn take_a_terminal() -> OwnedFd {
    // SAFETY: plain libc calls in a fresh, single-purpose test process.
    let slave = unsafe {
        assert!(libc::setsid() > 0);
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0);
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let name = libc::ptsname(master);
        let slave = libc::open(name, libc::O_RDWR);
        assert!(slave >= 0);
        assert_eq!(libc::ioctl(slave, libc::TIOCSCTTY, 0), 0);
        OwnedFd::from_raw_fd(slave)
    };
    assert!(
        std::fs::File::open("/dev/tty").is_ok(),
        "the test needs a controlling terminal"
    );
    slave
}

/// Run as test `name`: re-runs itself in a fresh process, which takes a controlling terminal
/// for the sandboxes to be kept from.
fn hygiene_everywhere(name: &str) {
    if !can_isolate() {
        return;
    }
    if !common::in_child() {
        return common::rerun(name, false);
    }
    let tty = take_a_terminal();
    for filtered in [true, false] {
        let sb = isolated(profile(filtered));
        for way in WAYS {
            let mut facts = inside(&["facts"]);
            facts.stdin(Stdio::from(tty.try_clone().unwrap()));
            let out = run(&sb, filtered, way, &facts);
            let what = format!("{way:?}, filtered={filtered}");
            let f = Facts::parse(&out);
            assert_hygiene(&f, &what, filtered);
            if let Way::Warm = way {
                // A warm run leads a session of its own, not the zygote's (whose session
                // has no terminal either: only this pins the run's own setsid).
                assert_eq!(f.get("sid"), f.get("pid"), "{what}: session");
            }
            // A C program's own signal state: nothing ignored (the Rust runtime of
            // rf-inspect ignores SIGPIPE itself).
            let out = run(
                &sb,
                filtered,
                way,
                &sh("grep -E '^Sig(Blk|Ign)' /proc/self/status"),
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("SigBlk:\t0000000000000000"), "{what}: {text}");
            assert!(text.contains("SigIgn:\t0000000000000000"), "{what}: {text}");
            // The read-only root.
            let out = run(
                &sb,
                filtered,
                way,
                &sh("(echo x > /usr/ringfence-pins) 2>&1 || true"),
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("Read-only file system"), "{what}: {text}");
            if filtered {
                // The default profile itself, not just some filter: every namespace gap
                // rf-inspect tries is refused.
                let out = run(&sb, filtered, way, &inside(&["attacks"]));
                let f = Facts::parse(&out);
                assert!(f.0.len() >= 20, "{what}: {f:?}");
                for (call, errno) in &f.0 {
                    let want = if call == "clone3" {
                        libc::ENOSYS
                    } else {
                        libc::EPERM
                    };
                    assert_eq!(errno, &want.to_string(), "{what}: {call}");
                }
            }
        }
    }
}

#[test]
fn hygiene_is_the_same_however_a_process_gets_in_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    hygiene_everywhere("hygiene_is_the_same_however_a_process_gets_in_root");
}

rootless_test! {
    fn hygiene_is_the_same_however_a_process_gets_in_rootless() {
        hygiene_everywhere("hygiene_is_the_same_however_a_process_gets_in_rootless");
    }
}

/// no_new_privs is set for its own sake: a sandbox without any namespace, filter or Landlock
/// rule has it too.
#[test]
fn no_new_privs_without_filter_or_landlock() {
    let sb = Sandbox::new().seccomp(Profile::unconfined());
    let out = sb.output(&rf(&["facts"])).unwrap();
    assert!(out.success(), "{out:?}");
    let f = Facts::parse(&out);
    assert_eq!(f.get("Seccomp"), "0", "a filter was installed after all");
    assert_eq!(f.get("NoNewPrivs"), "1");
    let mut warm = sb.warm().unwrap();
    let f = Facts::parse(&warm.output(&rf(&["facts"])).unwrap());
    assert_eq!(f.get("Seccomp"), "0");
    assert_eq!(f.get("NoNewPrivs"), "1", "warm run");
}

/// A regular file under `dir` (or `dir` itself) that its owner may write: what a write
/// through a read-only mount is tried on.
fn writable_file_under(dir: &Path, depth: u32) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::symlink_metadata(dir).ok()?;
    if md.is_file() {
        return (md.permissions().mode() & 0o200 != 0).then(|| dir.to_owned());
    }
    if !md.is_dir() || depth == 0 {
        return None;
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        // The network sysctls are the sandbox's own network namespace's.
        .filter(|p| !p.ends_with("net"))
        .collect();
    entries.sort();
    entries
        .into_iter()
        .find_map(|p| writable_file_under(&p, depth - 1))
}

/// Every masked and read-only /proc entry this host has, in each way into the sandbox.
fn proc_entries() {
    if !can_isolate() {
        return;
    }
    let mut script = String::from("sed 's/^/mi /' /proc/self/mountinfo\n");
    let mut masked = Vec::new();
    for name in PROC_MASKED {
        let host = Path::new("/proc").join(name);
        let Ok(md) = std::fs::metadata(&host) else {
            continue;
        };
        masked.push(name);
        if md.is_dir() {
            script += &format!("echo \"list {name}=$(ls -A /proc/{name} 2>/dev/null | wc -l)\"\n");
        } else {
            script +=
                &format!("echo \"read {name}=$(head -c 64 /proc/{name} 2>/dev/null | wc -c)\"\n");
        }
    }
    let mut read_only = Vec::new();
    for name in PROC_READ_ONLY {
        let host = Path::new("/proc").join(name);
        if !host.exists() {
            continue;
        }
        read_only.push(name);
        // As root, open (not write: nothing is written even where the mount would let it)
        // a file its owner may write, for appending.
        if common::is_root() {
            if let Some(f) = writable_file_under(&host, 3) {
                let f = f.display();
                script += &format!("echo \"open {name}=$( (exec 3>>{f}) 2>&1 && echo opened)\"\n");
            }
        }
    }
    eprintln!("masked here: {masked:?}; read-only here: {read_only:?}");
    assert!(
        masked.contains(&"keys") || masked.contains(&"timer_list"),
        "this host has none of the usual masked entries: the test would prove little"
    );
    for filtered in [true, false] {
        let sb = isolated(profile(filtered));
        for way in WAYS {
            let what = format!("{way:?}, filtered={filtered}");
            let out = run(&sb, filtered, way, &sh(&script));
            let text = String::from_utf8_lossy(&out.stdout);
            // mount point -> per-mount options
            let mounts: Vec<(&str, &str)> = text
                .lines()
                .filter_map(|l| l.strip_prefix("mi "))
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    Some((*f.get(4)?, *f.get(5)?))
                })
                .collect();
            let ro_mount = |p: &str| {
                mounts
                    .iter()
                    .rev()
                    .find(|(m, _)| *m == p)
                    .is_some_and(|(_, o)| o.split(',').any(|o| o == "ro"))
            };
            let value = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                    .map(str::trim)
            };
            for name in &masked {
                let p = format!("/proc/{name}");
                assert!(ro_mount(&p), "{what}: {p} is not masked: {mounts:?}");
                let shown = value(&format!("list {name}")).or(value(&format!("read {name}")));
                assert_eq!(shown, Some("0"), "{what}: {p} shows something\n{text}");
            }
            for name in &read_only {
                let p = format!("/proc/{name}");
                assert!(ro_mount(&p), "{what}: {p} is not read-only: {mounts:?}");
                if let Some(v) = value(&format!("open {name}")) {
                    assert!(
                        v.contains("Read-only file system"),
                        "{what}: a file under {p} opened for writing: {v:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_masked_and_read_only_proc_entry_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    proc_entries();
}

rootless_test! {
    fn every_masked_and_read_only_proc_entry_rootless() {
        proc_entries();
    }
}

fresh_process_test! {
    /// The bounding set is emptied when the caller holds CAP_SETPCAP, whatever it holds of the
    /// other capabilities: the check reads CAP_SETPCAP's own bit. This process keeps only
    /// CAP_SETPCAP in its effective set first; then, without CAP_SETPCAP but with every other
    /// capability, the bounding set cannot be emptied (and the sandbox still starts:
    /// no_new_privs makes that set moot).
    fn the_bounding_set_check_reads_cap_setpcap_root() {
        use caps::{CapSet, Capability as Cap};
        if !common::is_root() {
            return common::skip("needs root");
        }
        let all = caps::read(None, CapSet::Effective).unwrap();
        assert!(all.contains(&Cap::CAP_SETPCAP) && all.len() > 30, "{all:?}");
        // Capabilities are per thread: the sandbox is cloned from this one.
        caps::set(None, CapSet::Effective, &[Cap::CAP_SETPCAP].into_iter().collect()).unwrap();
        let f = common::facts(&Sandbox::new());
        assert_eq!(f.get("CapBnd"), NO_CAPS, "CAP_SETPCAP held, bounding set kept");
        let mut others = all.clone();
        others.remove(&Cap::CAP_SETPCAP);
        caps::set(None, CapSet::Effective, &others).unwrap();
        let f = common::facts(&Sandbox::new());
        assert_ne!(f.get("CapBnd"), NO_CAPS, "the bounding set emptied without CAP_SETPCAP?");
        for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
            assert_eq!(f.get(set), NO_CAPS, "{set}");
        }
        assert_eq!(f.get("NoNewPrivs"), "1");
    }
}

/// Kept capabilities from both words of the kernel's sets (CAP_CHOWN 0, CAP_NET_BIND_SERVICE
/// 10, CAP_BPF 39), in every set, for a root and a non-root program, spawned, in a warm run
/// and exec'd; everything else is gone, the bounding set included.
#[test]
fn kept_capabilities_of_both_words_everywhere_root() {
    use ringfence::Capability as Cap;
    if !common::is_root() {
        return common::skip("keeping capabilities without a user namespace needs root");
    }
    let kept = [Cap::CAP_CHOWN, Cap::CAP_NET_BIND_SERVICE, Cap::CAP_BPF];
    let mask = format!("{:016x}", kept.iter().fold(0u64, |m, c| m | 1 << c.index()));
    for uid in [None, Some(65534)] {
        let mut sb = isolated(Profile::default_container()).capabilities(kept);
        if let Some(id) = uid {
            sb = sb.uid(id).gid(id);
        }
        for way in [Way::Spawn, Way::Warm, Way::Exec] {
            let f = Facts::parse(&run(&sb, true, way, &inside(&["facts"])));
            let what = format!("{way:?}, uid {uid:?}");
            // A non-root program keeps them across exec through the ambient set (which needs
            // them inheritable); a root program gets the same sets.
            for set in ["CapPrm", "CapEff", "CapBnd", "CapInh", "CapAmb"] {
                assert_eq!(f.get(set), mask, "{what}: {set}");
            }
            assert_eq!(f.get("NoNewPrivs"), "1", "{what}");
        }
    }
}

/// A uid without a gid, or a gid without a uid, is applied on its own.
#[test]
fn uid_or_gid_alone_applies_root() {
    if !common::is_root() {
        return common::skip("changing ids without a user namespace needs root");
    }
    let f = common::facts(&Sandbox::new().uid(65534));
    assert_eq!((f.get("uid"), f.get("euid")), ("65534", "65534"));
    let f = common::facts(&Sandbox::new().gid(65534));
    assert_eq!((f.get("uid"), f.get("gid")), ("0", "65534"));
}
