//! Degrading closed. Many hosts refuse namespaces to ordinary users (Ubuntu >= 23.10 through
//! AppArmor, `user.max_user_namespaces=0`, container runtimes' seccomp filters) and rarely give
//! them a writable cgroup. There a layer is held through a substitute the report names where
//! one exists; where none does, a required layer (the default) fails with a hint, and a best
//! effort sandbox runs with the layers that work and reports exactly what it lacks.
//!
//! Each test runs in a fresh process (as uid 65534 for the rootless ones) that first installs a
//! seccomp filter on itself, like Docker's default profile: `clone3` fails with ENOSYS (so
//! ringfence falls back to `clone`, whose flags a filter can see) and `clone`/`unshare` with
//! namespace flags fail with EPERM.

mod common;

use std::collections::BTreeMap;
use std::fs::File;

use common::{facts, host_ns, rf};
use nix::errno::Errno;
use ringfence::{
    Command, Compat, Enforcement, Error, IdMap, Layer, Namespace, Net, Rlimit, Sandbox, Stage,
    UserNs,
};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch, apply_filter,
};

/// Make the kernel refuse `mask` namespace flags to this thread, as a container runtime would.
fn refuse_namespaces(mask: u64) {
    let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
    let enosys = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .unwrap();
    // One rule per flag bit (rules of a syscall are ORed): "flags & bit == bit" → EPERM.
    let flags = || {
        (0..64)
            .map(|b| 1u64 << b)
            .filter(|bit| mask & bit != 0)
            .map(|bit| {
                SeccompRule::new(vec![
                    SeccompCondition::new(
                        0,
                        SeccompCmpArgLen::Qword,
                        SeccompCmpOp::MaskedEq(bit),
                        bit,
                    )
                    .unwrap(),
                ])
                .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let eperm = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone, flags()), (libc::SYS_unshare, flags())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .unwrap();
    for f in [enosys, eperm] {
        let prog: seccompiler::BpfProgram = f.try_into().unwrap();
        apply_filter(&prog).unwrap();
    }
}

const ALL_NS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP) as u64;

rootless_test! {
    fn without_user_namespaces_best_effort_runs_and_reports() {
        if !common::in_child() {
            return common::skip("runs only in the rootless re-run (needs a root test process)");
        }
        refuse_namespaces(libc::CLONE_NEWUSER as u64);
        let sb = Sandbox::new()
            .compat(Compat::BestEffort)
            .pid_ns()
            .net(Net::New)
            .hostname("box");
        let child = sb.spawn(&rf(&["sleep", "0"])).unwrap();
        let report = child.report().clone();
        drop(child);
        eprintln!("report without user namespaces:\n{report}");
        for ns in [Namespace::User, Namespace::Pid, Namespace::Net, Namespace::Uts] {
            match report.get(Layer::Namespace(ns)) {
                Some(Enforcement::NotEnforced { reason, hint }) => {
                    assert!(reason.contains("refused"), "{reason}");
                    assert!(hint.contains("max_user_namespaces"), "{hint}");
                }
                other => panic!("{ns}: {other:?}"),
            }
        }
        assert!(!report.is_enforced(Layer::Hostname));
        // The layers that need no privileges are still in force.
        for layer in [Layer::NoNewPrivs, Layer::Capabilities, Layer::CloseFds, Layer::NewSession] {
            assert!(report.is_enforced(layer), "{layer}");
        }
        let f = facts(&sb);
        assert_eq!(f.get("ns.pid"), host_ns("pid"));
        assert_eq!(f.get("NoNewPrivs"), "1");
        assert_eq!(f.get("CapEff"), "0000000000000000");
        assert_ne!(f.get("hostname"), "box");
        assert_eq!(f.get("fds").split(',').count(), 3);

        // Required (the default): a clear error naming the layer, with the fix.
        let sb = Sandbox::new().pid_ns();
        match sb.spawn(&rf(&["sleep", "0"])) {
            Err(e @ Error::Unsupported { layer: Layer::Namespace(Namespace::Pid), .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("required"), "{msg}");
                assert!(e.hint().unwrap().contains("max_user_namespaces"), "{msg}");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        assert!(common::children().is_empty());
    }
}

fresh_process_test! {
    fn root_without_namespaces_never_touches_the_host_hostname() {
        if !common::is_root() {
            return common::skip("needs root");
        }
        refuse_namespaces(ALL_NS);
        let before = nix::unistd::gethostname().unwrap();
        // As root, sethostname would succeed on the host itself: it must be skipped.
        let sb = Sandbox::new()
            .compat(Compat::BestEffort)
            .hostname("must-not-leak")
            .ipc_ns();
        let out = sb.output(&rf(&["facts"])).unwrap();
        assert!(out.success());
        assert_eq!(nix::unistd::gethostname().unwrap(), before);
        let f = common::Facts::parse(&out);
        assert_eq!(f.get("hostname"), before.to_string_lossy());
        assert!(!out.report.is_enforced(Layer::Hostname));
        assert!(!out.report.is_enforced(Layer::Namespace(Namespace::Uts)));
        let required = Sandbox::new()
            .compat(Compat::BestEffort)
            .ipc_ns()
            .compat(Compat::Required)
            .hostname("x");
        assert!(matches!(
            required.spawn(&rf(&["sleep", "0"])),
            Err(Error::Unsupported { layer: Layer::Namespace(Namespace::Uts), .. })
        ));
    }
}

/// Spawn, expect an error (this process runs nothing else, so any leftover would show).
fn refused(sb: &Sandbox, cmd: &Command) -> Error {
    let fds = common::open_fds();
    let err = sb.spawn(cmd).expect_err("spawn should fail");
    assert_eq!(common::open_fds(), fds, "descriptors leaked ({err})");
    assert!(common::children().is_empty(), "a process was left ({err})");
    err
}

rootless_test! {
    fn rootless_errors_from_the_kernel_name_their_stage() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        // Mapping ids other than our own needs root.
        let other = UserNs::maps(
            [IdMap { inside: 0, outside: 0, count: 1 }],
            [IdMap { inside: 0, outside: 0, count: 1 }],
        );
        let e = refused(&Sandbox::new().user_ns(other), &Command::new("/bin/true"));
        assert_eq!(e.stage(), Some(Stage::UidMap), "{e}");
        assert_eq!(e.errno(), Some(Errno::EPERM));
        assert!(e.hint().unwrap().contains("own uid"), "{e}");
        // Raising a hard limit needs CAP_SYS_RESOURCE.
        let e = refused(
            &Sandbox::new().rlimit(Rlimit::Nofile, 1 << 30, 1 << 30),
            &Command::new("/bin/true"),
        );
        assert_eq!(e.stage(), Some(Stage::Rlimit), "{e}");
        // Joining a network namespace we hold no capability over.
        let ns = File::open("/proc/self/ns/net").unwrap();
        let e = refused(&Sandbox::new().net(Net::join(ns)), &Command::new("/bin/true"));
        assert_eq!(e.stage(), Some(Stage::JoinNetNs), "{e}");
        assert_eq!(e.errno(), Some(Errno::EPERM));
    }
}

rootless_test! {
    fn limits_without_a_cgroup_hold_through_resource_limits() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        let inspect = common::inspect();
        let sb = Sandbox::isolated()
            .bind_ro(&inspect, "/rf-inspect")
            .memory_limit(256 << 20)
            .pids_limit(16)
            .timeout(std::time::Duration::from_secs(30));
        let out = sb.output(Command::new("/rf-inspect").args(["attack", "forkbomb"])).unwrap();
        eprintln!("report:\n{}", out.report);
        match out.report.get(Layer::Cgroup) {
            Some(Enforcement::Substituted { substitute, reason }) => {
                assert!(substitute.contains("RLIMIT_NPROC of 16"), "{substitute}");
                assert!(substitute.contains("RLIMIT_AS/RLIMIT_DATA of 268435456 bytes per process"), "{substitute}");
                assert!(reason.contains("no cgroup"), "{reason}");
            }
            Some(Enforcement::Enforced) => {
                return common::skip("uid 65534 has a writable cgroup here: no substitute needed");
            }
            other => panic!("cgroup limits: {other:?}\n{}", out.report),
        }
        assert_eq!(out.report.summary().as_deref(), Some("substituted: cgroup limits"));
        // The fork bomb stops at the limit: 16 tasks with the init and the bomb itself.
        let f = common::Facts::parse(&out);
        let forked: u32 = f.get("forked").parse().unwrap();
        assert!((1..=14).contains(&forked), "forked {forked}");
        assert_eq!(f.get("fork_errno"), libc::EAGAIN.to_string());

        // One process cannot touch 1 GiB.
        let out = sb.output(Command::new("/rf-inspect").args(["attack", "hog", "1024"])).unwrap();
        let f = common::Facts::parse(&out);
        assert_eq!(f.get("hog_errno"), libc::ENOMEM.to_string());
        let mib: u32 = f.get("hog_mib").parse().unwrap();
        assert!(mib < 256, "touched {mib} MiB");

        // A limit without a substitute fails, with the reason and the fix...
        let e = refused(&sb.clone().swap_free(), &Command::new("/rf-inspect"));
        assert!(matches!(e, Error::Unsupported { layer: Layer::Cgroup, .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("no substitute for the swap limit"), "{msg}");
        assert!(e.hint().unwrap().contains("Delegate=yes"), "{msg}");
        // ...unless it was asked for best effort: then the report says it is not enforced.
        let lax = sb.clone().compat(Compat::BestEffort).memory_swap(0);
        let out = lax.output(Command::new("/rf-inspect").args(["sleep", "0"])).unwrap();
        assert!(out.success());
        assert!(matches!(out.report.get(Layer::Cgroup), Some(Enforcement::NotEnforced { .. })));
        assert_eq!(out.report.summary().as_deref(), Some("not enforced: cgroup limits"));
        assert!(common::children().is_empty());
    }
}

/// A required swap limit (which has no substitute without a cgroup).
trait SwapFree {
    fn swap_free(self) -> Sandbox;
}

impl SwapFree for Sandbox {
    fn swap_free(self) -> Sandbox {
        self.memory_swap(0)
    }
}

rootless_test! {
    fn without_user_namespaces_the_filesystem_view_holds_through_landlock() {
        if !common::in_child() {
            return common::skip("runs only in the rootless re-run (needs a root test process)");
        }
        if ringfence::landlock::abi() == 0 {
            return common::skip("this kernel has no Landlock");
        }
        // A world-readable host file outside the view, a world-writable host directory.
        let Some(secret) = ["/etc/hostname", "/etc/hosts", "/etc/fstab"]
            .into_iter()
            .find(|p| std::fs::File::open(p).is_ok())
        else {
            return common::skip("no world-readable file outside the view in /etc");
        };
        let shared = ["/var/tmp", "/tmp"]
            .into_iter()
            .map(std::path::Path::new)
            .find(|p| p.is_dir())
            .unwrap();
        let target = shared.join(format!("ringfence-view-{}", std::process::id()));
        refuse_namespaces(libc::CLONE_NEWUSER as u64);

        // Required (the default): the namespaces without substitute refuse the spawn.
        match Sandbox::isolated().spawn(&Command::new("/bin/true")) {
            Err(e @ Error::Unsupported { layer: Layer::Namespace(_), .. }) => {
                assert!(e.hint().unwrap().contains("max_user_namespaces"), "{e}");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }

        // Best effort: the filesystem view still holds, through Landlock.
        let sb = Sandbox::new().compat(Compat::BestEffort).isolate();
        let script = format!(
            "cat {secret} && echo READ-SECRET; echo x > {t} && echo WROTE-SHARED; \
             echo y > /tmp/ringfence-view-{pid} && echo WROTE-HOST-TMP; \
             f=$(mktemp) && echo private > \"$f\" && cat \"$f\" && echo \"TMPDIR=$TMPDIR\"",
            t = target.display(),
            pid = std::process::id(),
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &script]).env("PATH", "/usr/bin:/bin");
        let out = sb.output(&cmd).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("report:\n{}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.report);
        let host_tmp = std::path::PathBuf::from(format!("/tmp/ringfence-view-{}", std::process::id()));
        let wrote = (target.exists(), host_tmp.exists());
        let _ = std::fs::remove_file(&target);
        let _ = std::fs::remove_file(&host_tmp);
        assert_eq!(wrote, (false, false), "wrote to the host's /var/tmp or /tmp");
        assert!(!stdout.contains("READ-SECRET"), "{stdout}");
        assert!(!stdout.contains("WROTE-SHARED"), "{stdout}");
        assert!(!stdout.contains("WROTE-HOST-TMP"), "{stdout}");
        assert!(stderr.contains("Permission denied"), "{stderr}");
        // A program using TMPDIR works, in a private directory that is gone afterwards.
        assert!(stdout.contains("private\n"), "{stdout}");
        let tmpdir = stdout
            .lines()
            .find_map(|l| l.strip_prefix("TMPDIR="))
            .expect("TMPDIR");
        assert!(tmpdir.contains("ringfence-tmp-"), "{tmpdir}");
        assert!(!std::path::Path::new(tmpdir).exists(), "{tmpdir} was left behind");
        match out.report.get(Layer::Filesystem) {
            Some(Enforcement::Substituted { substitute, reason }) => {
                assert!(substitute.contains("Landlock"), "{substitute}");
                assert!(substitute.contains("TMPDIR"), "{substitute}");
                assert!(substitute.contains("/proc"), "{substitute}");
                assert!(reason.contains("refused"), "{reason}");
            }
            other => panic!("filesystem view: {other:?}"),
        }
        // No process can be started inside the running sandbox (Child::exec): it has no
        // namespace to enter, and joining refuses what is not a sandbox.
        let mut sleeper = Command::new("/bin/sh");
        sleeper.args(["-c", "sleep 30"]);
        let running = sb.spawn(&sleeper).unwrap();
        assert!(matches!(
            running.exec(&Command::new("/bin/true")),
            Err(Error::Join { .. })
        ));
        drop(running);

        let summary = out.report.summary().unwrap();
        assert!(summary.starts_with("substituted: mount namespace, filesystem view; not enforced: "), "{summary}");
        assert!(common::children().is_empty());
    }
}
