//! Attacks on files of the host: the binaries, kernel settings in /proc/sys and /sys, symlinks
//! and renames racing the mount setup, setuid and file-capability binaries, Landlock's
//! refer rules.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Host, Results, attack, isolated, run, run_in};
use crate::common;
use libc::{EACCES, ENOENT, EPERM, EROFS, EXDEV};
use ringfence::landlock::{Landlock, LandlockPart};
use ringfence::{Error, Layer, Size, Stdio};

/// A scratch directory of the host, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("ringfence-escape-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Size, mode, modification time and content of a file.
fn fingerprint(p: &Path) -> (u64, u32, i64, Vec<u8>) {
    let m = std::fs::metadata(p).unwrap();
    (m.len(), m.mode(), m.mtime(), std::fs::read(p).unwrap())
}

attack! {
    /// Writing the running binary (`/proc/self/exe`, "CVE-2019-5736"), the binary of the
    /// sandbox's init (`/proc/1/exe` — the host program that spawned the sandbox), and the
    /// host binary bound in.
    fn host_binaries() {
        let inspect = common::inspect();
        let exe = std::env::current_exe().unwrap();
        let before = (fingerprint(&inspect), fingerprint(&exe));
        // A host binary: wherever this host keeps `true` (not merged-/usr hosts have /bin).
        let host_bin = ["/usr/bin/true", "/bin/true"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("a true(1) binary on the host");
        let r = run("exe", &["/rf-inspect", host_bin, "/etc/passwd"]);
        // A running binary (ETXTBSY), on a read-only bind (EROFS); as non-root, the file's
        // mode may say no first.
        r.refused_any("self_exe_write", &[libc::ETXTBSY, EROFS, EACCES]);
        r.refused_any("self_exe_rdwr", &[libc::ETXTBSY, EROFS, EACCES]);
        r.refused_any("path0_write", &[libc::ETXTBSY, EROFS, EACCES]);
        // A host binary (which may be running elsewhere on the host), and a host file that
        // is surely not running: the read-only bind.
        r.refused_any("path1_write", &[libc::ETXTBSY, EROFS, EACCES]);
        r.refused_any("path2_write", &[EROFS, EACCES]);
        // The init keeps what the program dropped: its /proc entries are closed to it.
        r.refused("init_exe_write", EACCES);
        r.refused("init_exe_read", EACCES);
        assert!(before == (fingerprint(&inspect), fingerprint(&exe)), "a binary changed");
    }
}

fn kernel_settings(sb: ringfence::Sandbox, sys: &[i32]) {
    let core = std::fs::read("/proc/sys/kernel/core_pattern").unwrap();
    let (out, r) = run_in(sb, "sysfiles", &[]);
    assert!(out.status.success(), "{:?}", out.status);
    // /proc/sys and /proc/sysrq-trigger are read-only in the sandbox's /proc.
    r.refused("core_pattern_read", 0);
    for key in ["core_pattern", "proc_hostname", "panic"] {
        r.refused_any(key, &[EROFS, EACCES]);
    }
    if Path::new("/proc/sysrq-trigger").exists() {
        r.refused_any("sysrq_trigger", &[EROFS, EACCES]);
    } else {
        r.refused("sysrq_trigger", ENOENT);
    }
    for (key, path) in [
        ("sys_profiling", "/sys/kernel/profiling"),
        ("sys_rcu_expedited", "/sys/kernel/rcu_expedited"),
    ] {
        if Path::new(path).exists() {
            r.refused_any(key, sys);
        } else {
            r.refused(key, ENOENT);
        }
    }
    assert_eq!(
        std::fs::read("/proc/sys/kernel/core_pattern").unwrap(),
        core
    );
}

attack! {
    /// Writing kernel settings through /proc/sys and /sys.
    fn proc_sys_and_sys_writes() {
        // isolated() has no /sys at all.
        kernel_settings(isolated(), &[ENOENT]);
        // With the host's /sys bound read-only, still nothing can be written.
        kernel_settings(isolated().bind_ro("/sys", "/sys"), &[EROFS, EACCES]);
    }
}

attack! {
    /// Capabilities after exec: a program that was exec'd by the sandboxed program (a second
    /// exec) has none, and cannot raise any.
    fn capabilities_after_exec() {
        let r = run("caps", &[]);
        check_no_caps(&r);
        let out = isolated()
            .output(&crate::rf_in(&["exec", "/rf-inspect", "attack", "caps"]))
            .unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        check_no_caps(&Results::parse(&out));
    }
}

fn check_no_caps(r: &Results) {
    for key in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(r.get(key), "0000000000000000", "{key}: {r:?}");
    }
    assert_eq!(r.get("NoNewPrivs"), "1");
    r.refused("ambient_raise", EPERM);
    r.refused("capset_all", EPERM);
    r.refused("clear_no_new_privs", libc::EINVAL);
    if r.get("euid") != "0" {
        // EINVAL: uid 0 is not even mapped in the sandbox's user namespace.
        r.refused_any("setuid0", &[EPERM, libc::EINVAL]);
    }
}

attack! {
    /// Symlinks prepared in a bind source that point at host paths: reading through them
    /// reaches only the sandbox's view, and mounts or files placed through them never land
    /// on the host. Then the race: a sandboxed program swaps a directory with such a symlink
    /// (`RENAME_EXCHANGE`) while other sandboxes mount into that directory.
    fn symlink_and_rename_races() {
        let work = Scratch::new("work");
        let target = Scratch::new("target");
        let secret = target.0.join("secret");
        std::fs::write(&secret, "host secret").unwrap();
        std::fs::set_permissions(&work.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::symlink(&secret, work.0.join("secret")).unwrap();
        std::os::unix::fs::symlink(&target.0, work.0.join("escape")).unwrap();
        let before = std::fs::read_dir(&target.0).unwrap().count();

        // Reading: the link resolves inside the sandbox, where the host path does not exist.
        let out = isolated()
            .bind_rw(&work.0, "/job")
            .output(&crate::rf_in(&["exec", "/bin/cat", "/job/secret"]))
            .unwrap();
        assert!(!out.status.success());
        assert!(!String::from_utf8_lossy(&out.stdout).contains("host secret"));

        // Mounting, making a directory, writing a file through the link: refused, naming the step.
        for sb in [
            isolated().bind_rw(&work.0, "/job").mount_tmpfs_sized("/job/escape/m", Size::mib(1)),
            isolated().bind_rw(&work.0, "/job").mkdir("/job/escape/d"),
            isolated().bind_rw(&work.0, "/job").write_file("/job/escape/f", "x"),
            isolated().bind_rw(&work.0, "/job").bind_ro("/etc/hostname", "/job/escape/b"),
        ] {
            let host = Host::now();
            match sb.spawn(&crate::rf_in(&["sleep", "0"])) {
                Err(Error::Mount { .. }) => {}
                other => panic!("expected a mount error: {other:?}"),
            }
            host.assert_unchanged();
        }
        assert_eq!(std::fs::read_dir(&target.0).unwrap().count(), before);

        // The race.
        let host = Host::now();
        let mut attacker = isolated()
            .bind_rw(&work.0, "/job")
            .spawn(
                crate::rf_in(&[
                    "attack",
                    "swap",
                    "/job/flip",
                    target.0.to_str().unwrap(),
                    "100000000",
                ])
                .stdout(Stdio::piped()),
            )
            .unwrap();
        let mut line = String::new();
        BufReader::new(attacker.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready=1\n");
        let (mut ran, mut refused) = (0, 0);
        for i in 0..40 {
            let sb = isolated()
                .bind_rw(&work.0, "/job")
                .mount_tmpfs_sized(format!("/job/flip/m{i}"), Size::mib(1))
                .mkdir(format!("/job/flip/d{i}"))
                .write_file(format!("/job/flip/f{i}"), "x");
            match sb.spawn(&crate::rf_in(&["sleep", "0"])) {
                Ok(mut c) => {
                    assert!(c.wait().unwrap().success());
                    ran += 1;
                }
                Err(Error::Mount { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        attacker.kill().unwrap();
        attacker.wait().unwrap();
        drop(attacker);
        host.assert_unchanged();
        eprintln!("race: {ran} sandboxes mounted into the real directory, {refused} refused");
        assert_eq!(ran + refused, 40);
        // Nothing reached the host path the symlink names.
        assert_eq!(std::fs::read_dir(&target.0).unwrap().count(), before);
        assert_eq!(std::fs::read(&secret).unwrap(), b"host secret");
    }
}

attack! {
    /// Landlock's refer rules: moving or linking files between a read-write directory and a
    /// read-only one (both bound read-write, so that only Landlock stands in the way).
    fn landlock_refer_and_rename() {
        if ringfence::landlock::abi() < 2 {
            return common::skip("Landlock ABI 2 (refer) is not available here");
        }
        let dir = Scratch::new("landlock");
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (rw, ro) = (dir.0.join("rw"), dir.0.join("ro"));
        for d in [&rw, &ro] {
            std::fs::create_dir(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        std::fs::write(ro.join("file"), "original").unwrap();
        std::fs::set_permissions(ro.join("file"), std::fs::Permissions::from_mode(0o666)).unwrap();
        let system = ["/usr", "/bin", "/lib", "/lib64", "/etc"];
        let rules = Landlock::new()
            .read_only(system.iter().filter(|p| Path::new(p).exists()))
            .read_only([common::inspect(), ro.clone()])
            .read_write([rw.clone()]);
        // Best effort: the file rules hold on kernels without the truncate and ioctl parts.
        let sb = isolated()
            .bind_rw(&dir.0, "/job")
            .compat(ringfence::Compat::BestEffort)
            .landlock(rules);
        let (out, r) = run_in(sb, "landlock", &["/job/rw", "/job/ro"]);
        assert!(out.status.success(), "{:?}", out.status);
        assert!(
            out.report.is_enforced(Layer::Landlock(LandlockPart::Filesystem)),
            "{}",
            out.report
        );
        r.refused("write_rw", 0);
        r.refused("write_ro", EACCES);
        for key in [
            "rename_rw_to_ro",
            "rename_ro_to_rw",
            "link_rw_to_ro",
            "link_ro_to_rw",
            "rename_dir_rw_to_ro",
            "exchange_rw_ro",
        ] {
            r.refused_any(key, &[EACCES, EXDEV]);
        }
        assert_eq!(r.get("ro_unchanged"), "1");
        // On the host: the read-only directory holds only its file, unchanged.
        let names: Vec<_> = std::fs::read_dir(&ro)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["file"]);
        assert_eq!(std::fs::read(ro.join("file")).unwrap(), b"original");
        assert!(!rw.join("stolen").exists() && !rw.join("linked").exists());
    }
}

/// Where the prepared binaries are, for the re-run as uid 65534.
const SUID_DIR: &str = "RINGFENCE_ESCAPE_SUID_DIR";

/// A setuid-root copy of rf-inspect and a copy with file capabilities (`cap_net_raw+ep`),
/// prepared by root on a tmpfs mounted without `nosuid` (in a mount namespace private to the
/// test's thread, so the host never sees it). Outside a sandbox they grant root and the
/// capability to uid 65534 (checked first: otherwise the test would prove nothing); inside
/// the sandbox they grant nothing.
fn setuid_binaries(test: &str, rootless: bool) {
    if let Ok(dir) = std::env::var(SUID_DIR) {
        return check_setuid(Path::new(&dir), true);
    }
    if !common::in_child() {
        if !common::is_root() {
            return common::skip("preparing a setuid-root binary needs root");
        }
        let _g = super::serial();
        return common::rerun(test, false);
    }
    let dir = std::env::temp_dir().join(format!("ringfence-escape-suid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cdir = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    let (tmpfs, root) = (c"tmpfs", c"/");
    // SAFETY: a mount namespace of this thread only (CLONE_NEWNS implies an unshared
    // CLONE_FS), propagation made private, a tmpfs mounted in it; C strings are valid.
    unsafe {
        assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0);
        let none = std::ptr::null();
        assert_eq!(
            libc::mount(
                none,
                root.as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                none.cast()
            ),
            0
        );
        let opts = c"mode=0755,size=64m";
        assert_eq!(
            libc::mount(
                tmpfs.as_ptr(),
                cdir.as_ptr(),
                tmpfs.as_ptr(),
                0,
                opts.as_ptr().cast()
            ),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
    }
    let suid = dir.join("suid");
    let caps = dir.join("caps");
    std::fs::copy(common::inspect(), &suid).unwrap();
    std::fs::copy(common::inspect(), &caps).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::set_permissions(&caps, std::fs::Permissions::from_mode(0o755)).unwrap();
    // struct vfs_cap_data, revision 2, effective: permitted = CAP_NET_RAW (13).
    let mut xattr = Vec::new();
    for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        xattr.extend_from_slice(&word.to_le_bytes());
    }
    let ccaps = std::ffi::CString::new(caps.to_str().unwrap()).unwrap();
    // SAFETY: setxattr with valid C strings and a buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            ccaps.as_ptr(),
            c"security.capability".as_ptr(),
            xattr.as_ptr().cast(),
            xattr.len(),
            0,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());

    // The control: outside a sandbox, both work for uid 65534.
    let control = |prog: &Path| {
        use std::os::unix::process::CommandExt;
        let out = std::process::Command::new(prog)
            .args(["attack", "caps"])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (c1, c2) = (control(&suid), control(&caps));
    if !c1.contains("euid=0\n") || !c2.contains("CapEff=0000000000002000\n") {
        return common::skip(&format!(
            "setuid or file capabilities do not work on this host's tmpfs: {c1} {c2}"
        ));
    }
    if rootless {
        common::rerun_env(test, true, &[(SUID_DIR, dir.to_str().unwrap())]);
    } else {
        check_setuid(&dir, false);
    }
    // SAFETY: unmounting the tmpfs mounted above, in this thread's namespace.
    unsafe { libc::umount2(cdir.as_ptr(), libc::MNT_DETACH) };
    let _ = std::fs::remove_dir(&dir);
}

fn check_setuid(dir: &Path, rootless: bool) {
    let mut sb = isolated().bind_ro(dir, "/suid");
    if !rootless {
        sb = sb.uid(65534).gid(65534);
    }
    for prog in ["/suid/suid", "/suid/caps"] {
        let out = sb
            .output(ringfence::Command::new(prog).args(["attack", "caps"]))
            .unwrap();
        assert!(out.status.success(), "{prog}: {:?}", out.status);
        let r = Results::parse(&out);
        assert_eq!(r.get("euid"), "65534", "{prog}: {r:?}");
        check_no_caps(&r);
    }
}

mod setuid_binaries {
    #[test]
    fn root() {
        super::setuid_binaries("files::setuid_binaries::root", false);
    }

    #[test]
    fn rootless() {
        super::setuid_binaries("files::setuid_binaries::rootless", true);
    }
}

attack! {
    /// A symlink planted by one sandbox in a directory bound read-write, named (through its
    /// directory) as a bind source of a later sandbox: symlinks in bind sources are not
    /// followed, so the later sandbox fails to start instead of binding the link's target on
    /// the host. Also when the link replaces the source after the sandbox's first spawn (its
    /// mount plan is kept): the sandboxed process resolves the source without symlinks too.
    fn planted_symlink_bind_source() {
        let shared = Scratch::new("planted-shared");
        let secret = Scratch::new("planted-secret");
        std::fs::set_permissions(&shared.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&secret.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(secret.0.join("secret"), "host secret\n").unwrap();
        std::fs::create_dir(shared.0.join("data")).unwrap();
        std::fs::set_permissions(shared.0.join("data"), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(shared.0.join("data/file"), "sandbox data\n").unwrap();

        // A later sandbox's view, spawned once while "data" is a directory.
        let later = isolated().bind_ro(shared.0.join("data"), "/data");
        let cat = crate::rf_in(&["exec", "/bin/cat", "/data/file"]);
        let mut cat = cat;
        cat.stdout(Stdio::piped());
        let out = later.output(&cat).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "sandbox data\n");

        // The attacker's sandbox replaces "data" with a symlink to the secret directory, and
        // plants another one beside it.
        let plant = format!(
            "rm -rf /shared/data && ln -s {0} /shared/data && ln -s {0} /shared/link",
            secret.0.display()
        );
        let out = isolated()
            .bind_rw(&shared.0, "/shared")
            .output(&crate::rf_in(&["exec", "/bin/sh", "-c", &plant]))
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(shared.0.join("link").is_symlink());

        // The kept plan: the sandboxed process refuses the link.
        let mut cat = crate::rf_in(&["exec", "/bin/cat", "/data/secret"]);
        cat.stdout(Stdio::piped());
        match later.output(&cat) {
            Err(Error::Mount { errno, .. }) => assert_eq!(errno, nix::errno::Errno::ELOOP),
            Err(e) => panic!("{e}"),
            Ok(out) => panic!(
                "the planted link was followed: {:?}",
                String::from_utf8_lossy(&out.stdout)
            ),
        }
        // A new sandbox naming a path through the link: refused when it is prepared.
        for src in [shared.0.join("link"), shared.0.join("link/secret")] {
            let sb = isolated().bind_ro(&src, "/data");
            match sb.output(&cat) {
                Err(Error::Config(ringfence::ConfigError::InvalidPath { path, .. })) => {
                    assert_eq!(path, src)
                }
                Err(e) => panic!("{e}"),
                Ok(out) => panic!(
                    "the planted link was followed: {:?}",
                    String::from_utf8_lossy(&out.stdout)
                ),
            }
        }
        assert_eq!(std::fs::read_to_string(secret.0.join("secret")).unwrap(), "host secret\n");
    }
}
