//! The filesystem view: read-only binds, private /tmp with a size limit, a /proc and /dev of
//! the sandbox's own, no trace of the host's mount tree, symlink-safe mount setup, overlay
//! layers with an init layer, and bad input that leaves nothing on the host. Root and rootless.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, symlink};
use std::path::{Path, PathBuf};

use ringfence::{Command, ConfigError, Error, Layer, Outcome, Sandbox, Size};

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

fn run(sb: &Sandbox, script: &str) -> Outcome {
    let out = sb.output(&sh(script)).expect("spawn");
    assert!(
        out.report.is_enforced(Layer::Filesystem),
        "the filesystem view is not enforced:\n{}",
        out.report
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn capable() -> bool {
    common::is_root() || common::userns_available()
}

/// A temporary directory removed on drop, readable by uid 65534 for rootless runs.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "ringfence-fs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Overlay leaves a mode-000 `work/work`: make everything enterable first.
        fn open_up(p: &Path) {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::symlink_metadata(p) {
                if m.is_dir() {
                    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
                    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                        open_up(&e.path());
                    }
                }
            }
        }
        open_up(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

fn check_isolated_view() {
    if !capable() {
        return common::skip("needs root or user namespaces");
    }
    let sb = Sandbox::isolated().mount_tmpfs_sized("/tmp", Size::mib(1));
    // Read-only system directories.
    let out = run(
        &sb,
        "touch /usr/ringfence-x 2>&1; touch /etc/ringfence-x 2>&1; echo done",
    );
    let o = text(&out.stdout);
    assert_eq!(o.matches("Read-only file system").count(), 2, "{o}");
    // Nothing of the host but what was bound.
    let out = run(
        &sb,
        "for p in /home /root /var /run /sys /boot /etc/shadow /etc/hostname; do test -e $p && echo visible:$p; done; echo checked",
    );
    assert_eq!(text(&out.stdout), "checked\n");
    // /tmp is private, writable, and limited.
    let out = run(
        &sb,
        "echo hi > /tmp/a && cat /tmp/a; head -c 2097152 /dev/zero > /tmp/big; echo rc=$?; wc -c < /tmp/big",
    );
    let o = text(&out.stdout);
    assert!(o.starts_with("hi\n"), "{o}");
    // The write failed (ENOSPC: "No space left on device", or "I/O error" from busybox) and
    // the file stopped below the 1 MiB limit.
    assert!(o.contains("rc=1"), "{o}");
    let size: u64 = o.lines().last().unwrap().trim().parse().unwrap();
    assert!(size <= 1 << 20, "{size}");
    // /proc shows only the sandbox's processes: the init, sh, ls, and grep if the shell has
    // forked it by the time ls reads the directory (the host has hundreds).
    let out = run(&sb, "ls /proc | grep -c '^[0-9]*$'");
    let n: u32 = text(&out.stdout).trim().parse().unwrap();
    assert!((3..=4).contains(&n), "{n} processes visible");
    let out = run(
        &sb,
        "echo 1 > /proc/sys/kernel/ns_last_pid; wc -c < /proc/keys",
    );
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).trim(), "0", "/proc/keys is not masked");
    // /dev has exactly the minimal set, and no device can be made.
    let out = run(
        &sb,
        "ls /dev | tr '\\n' ' '; mknod /dev/mem2 c 1 1 2>&1 || echo mknod-failed",
    );
    let o = text(&out.stdout);
    assert!(
        o.starts_with("fd full null ptmx pts random shm stderr stdin stdout tty urandom zero "),
        "{o}"
    );
    assert!(o.contains("mknod-failed"), "{o}");
    // The old root is gone: no mount of the host is listed.
    let out = run(
        &sb,
        "cut -d' ' -f5 /proc/self/mountinfo | sort | tr '\\n' ' '",
    );
    let mounts = text(&out.stdout);
    for host in ["/sys", "/run", "/boot", "/home", "/oldroot", "/tmp/"] {
        assert!(!mounts.split(' ').any(|m| m == host), "{host} in {mounts}");
    }
    assert!(mounts.starts_with("/ "), "{mounts}");
    // Bare program names are looked up inside the new root.
    let out = sb
        .output(Command::new("true").env("PATH", "/usr/bin:/bin"))
        .unwrap();
    assert!(out.success(), "{:?}", out);
}

#[test]
fn isolated_view_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    check_isolated_view();
}

rootless_test! {
    fn isolated_view_rootless() {
        check_isolated_view();
    }
}

#[test]
fn binds_read_only_and_read_write() {
    if !capable() {
        return common::skip("needs root or user namespaces");
    }
    let dir = TempDir::new("binds");
    std::fs::write(dir.0.join("in"), "data").unwrap();
    let sb = Sandbox::isolated()
        .chdir("/ro")
        .bind_ro(&dir.0, "/ro")
        .bind_rw(&dir.0, "/rw")
        .write_file("/etc/greeting", "hello\n")
        .symlink("/rw/in", "/link")
        .mkdir("/a/b/c");
    let out = run(
        &sb,
        "cat in; echo; echo x > /ro/new 2>/dev/null || echo ro-refused; echo y > /rw/out; cat /etc/greeting; cat /link; echo; test -d /a/b/c && echo dir-ok",
    );
    assert_eq!(
        text(&out.stdout),
        "data\nro-refused\nhello\ndata\ndir-ok\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(dir.0.join("out")).unwrap(), "y\n");
    assert!(!dir.0.join("new").exists());
}

#[test]
fn a_symlink_in_a_shared_directory_cannot_redirect_a_mount_to_the_host() {
    symlink_attack();
}

rootless_test! {
    fn a_symlink_in_a_shared_directory_cannot_redirect_a_mount_rootless() {
        symlink_attack();
    }
}

fn symlink_attack() {
    if !capable() {
        return common::skip("needs root or user namespaces");
    }
    // A work directory that a previous sandboxed run could have written: it holds symlinks to
    // host paths — one that also exists in the sandbox (/etc), one only on the host, and a
    // relative one climbing out.
    let work = TempDir::new("attack");
    let host_only = TempDir::new("attack-target");
    symlink("/etc", work.0.join("etc")).unwrap();
    symlink(&host_only.0, work.0.join("host")).unwrap();
    symlink("../../../../../../../../..", work.0.join("up")).unwrap();
    let marker = format!("ringfence-attack-{}", std::process::id());
    let before = mountinfo();

    // Through "/etc" and "../..": resolved inside the new root, where the mounts land.
    let sb = Sandbox::isolated()
        .bind_rw(&work.0, "/job")
        .mount_tmpfs_sized(format!("/job/etc/{marker}"), Size::mib(1))
        .mkdir(format!("/job/up/{marker}/sub"));
    let out = run(
        &sb,
        &format!(
            "grep -c ' /etc/{marker} ' /proc/self/mountinfo; test -d /{marker}/sub && echo inside-root"
        ),
    );
    assert_eq!(
        text(&out.stdout),
        "1\ninside-root\n",
        "{}",
        text(&out.stderr)
    );

    // Through a link to a host-only directory: nothing to mount on inside the root, so the
    // spawn fails, naming the step.
    let e = Sandbox::isolated()
        .bind_rw(&work.0, "/job")
        .mount_tmpfs_sized(format!("/job/host/{marker}"), Size::mib(1))
        .spawn(&sh("true"))
        .expect_err("the destination does not exist inside the new root");
    assert!(matches!(e, Error::Mount { .. }), "{e}");

    // Nothing was created or mounted on the host.
    assert!(!Path::new("/etc").join(&marker).exists());
    assert!(!Path::new("/").join(&marker).exists());
    assert!(std::fs::read_dir(&host_only.0).unwrap().next().is_none());
    assert_eq!(mountinfo(), before);
}

#[test]
fn overlay_layers_keep_changes_in_the_upper_dir() {
    overlay_layers();
}

rootless_test! {
    fn overlay_layers_rootless() {
        overlay_layers();
    }
}

fn overlay_layers() {
    if !capable() {
        return common::skip("needs root or user namespaces");
    }
    let base = TempDir::new("overlay");
    let (lower, upper, work) = (
        base.0.join("lower"),
        base.0.join("upper"),
        base.0.join("work"),
    );
    for d in [&lower, &upper, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    // An image: the host's merged-/usr layout, an /etc with the init-layer files, some data.
    // The host's system directories as mount points (or merged-/usr symlinks), whatever the
    // host has, so that binding them adds nothing to the upper layer.
    for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(top);
        match std::fs::read_link(&host) {
            Ok(t) => symlink(t, lower.join(top)).unwrap(),
            Err(_) if host.is_dir() => std::fs::create_dir_all(lower.join(top)).unwrap(),
            Err(_) => {}
        }
    }
    for d in ["usr", "etc", "data", "tmp", "proc", "dev"] {
        std::fs::create_dir_all(lower.join(d)).unwrap();
    }
    for f in ["hostname", "hosts", "resolv.conf"] {
        std::fs::write(lower.join("etc").join(f), "image\n").unwrap();
    }
    std::fs::write(lower.join("data/old.txt"), "old\n").unwrap();
    std::fs::write(lower.join("data/keep.txt"), "keep\n").unwrap();

    let sb = Sandbox::new()
        .unshare_all()
        .hostname("layered")
        .rootfs_layers([&lower], &upper, &work)
        .host_system_ro()
        .mount_proc();
    let out = run(
        &sb,
        "echo new > /data/new.txt; rm /data/old.txt; cat /data/keep.txt; cat /etc/hostname; grep -c layered /etc/hosts",
    );
    assert!(out.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "keep\nlayered\n1\n");
    // The change landed in the upper layer, the deletion as a whiteout, the lower untouched.
    assert_eq!(
        std::fs::read_to_string(upper.join("data/new.txt")).unwrap(),
        "new\n"
    );
    let whiteout = std::fs::symlink_metadata(upper.join("data/old.txt")).unwrap();
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    assert_eq!(
        std::fs::read_to_string(lower.join("data/old.txt")).unwrap(),
        "old\n"
    );
    assert!(!lower.join("data/new.txt").exists());
    // The init-layer files are not committed into the upper layer.
    assert!(!upper.join("etc/hostname").exists());
    assert_eq!(
        std::fs::read_to_string(lower.join("etc/hostname")).unwrap(),
        "image\n"
    );
}

#[test]
fn rootfs_binds_a_directory_read_only() {
    if !capable() {
        return common::skip("needs root or user namespaces");
    }
    let out = run(
        &Sandbox::new()
            .unshare_all()
            .rootfs("/")
            .mount_tmpfs_sized("/tmp", Size::mib(1)),
        "touch /ringfence-x 2>&1; test -e /etc/hostname && echo host-root",
    );
    let o = text(&out.stdout);
    assert!(
        o.contains("Read-only file system") && o.contains("host-root"),
        "{o}"
    );
}

/// Spawn, expect a configuration error, and check that the host's mounts did not change.
fn refused(sb: Sandbox) -> Error {
    let before = mountinfo();
    let e = sb.spawn(&sh("true")).expect_err("spawn should fail");
    assert_eq!(
        mountinfo(),
        before,
        "a failed spawn changed the host's mounts ({e})"
    );
    e
}

#[test]
fn bad_filesystem_input() {
    let e = refused(Sandbox::new().bind_ro("relative/dir", "/x"));
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::InvalidPath {
                why: "must be absolute",
                ..
            })
        ),
        "{e}"
    );
    let e = refused(Sandbox::new().bind_ro("/nonexistent-ringfence", "/x"));
    assert!(
        matches!(e, Error::Config(ConfigError::SourceUnavailable { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("/nonexistent-ringfence"), "{e}");
    let e = refused(Sandbox::new().bind_ro("/usr", "/a/../../etc"));
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::InvalidPath {
                why: "must not contain `..`",
                ..
            })
        ),
        "{e}"
    );
    // Also when the source is optional and missing here: the answer must not depend on the host.
    let e = refused(Sandbox::new().bind_ro_try("/nonexistent-ringfence", "rel/../x"));
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidPath { .. })),
        "{e}"
    );
    let e = refused(Sandbox::new().mount_tmpfs_sized("/tmp", Size::bytes(0)));
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidSize { .. })),
        "{e}"
    );
    let e = refused(Sandbox::new().mount_tmpfs_sized("tmp", Size::mib(1)));
    assert!(
        matches!(e, Error::Config(ConfigError::InvalidPath { .. })),
        "{e}"
    );
    // Overlay: upper and work on different filesystems (/dev/shm is a tmpfs; /var/tmp is not
    // on it here).
    let a = TempDir::new("ovl-lower");
    let up = TempDir::new("ovl-upper");
    let shm = Path::new("/dev/shm");
    let same_fs = std::fs::metadata(shm).map(|m| m.dev()).ok()
        == std::fs::metadata(&up.0).map(|m| m.dev()).ok();
    if shm.is_dir() && !same_fs {
        let work = shm.join(format!("ringfence-work-{}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        let e = refused(Sandbox::new().rootfs_layers([&a.0], &up.0, &work));
        std::fs::remove_dir_all(&work).unwrap();
        assert!(
            matches!(e, Error::Config(ConfigError::Overlay { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("same filesystem"), "{e}");
    } else {
        common::skip("no second filesystem to put an overlay work dir on");
    }
    let e = refused(Sandbox::new().rootfs_layers(Vec::<PathBuf>::new(), &up.0, &a.0));
    assert!(
        matches!(e, Error::Config(ConfigError::Overlay { .. })),
        "{e}"
    );
}

#[test]
fn a_failed_mount_names_its_step() {
    if !capable() {
        return common::skip("needs root or user namespaces");
    }
    // A file bound onto a path below a file: the destination cannot be a directory.
    let before = mountinfo();
    let e = Sandbox::isolated()
        .write_file("/etc/blocker", "x")
        .bind_ro("/usr", "/etc/blocker/usr")
        .spawn(&sh("true"))
        .expect_err("spawn should fail");
    assert!(matches!(e, Error::Mount { .. }), "{e}");
    assert!(
        e.to_string().contains("bind ro /usr -> /etc/blocker/usr"),
        "{e}"
    );
    assert_eq!(mountinfo(), before);
}
