//! Each namespace is really new (compared by `/proc/self/ns/*` inode), and what it isolates is
//! isolated: pid 1 and reaping, hostname, loopback-only network, joining a network namespace,
//! clock offsets. Run as root and, through `rootless_test!`, as uid 65534.

mod common;

use std::fs::File;
use std::time::Duration;

use common::{facts, host_ns, rf};
use ringfence::{Compat, Enforcement, Layer, Namespace, Net, Sandbox, TimeOffsets, UserNs};

fn check_all_new(sb: &Sandbox) {
    let f = facts(sb);
    for ns in ["pid", "net", "ipc", "uts", "cgroup"] {
        assert_ne!(
            f.get(&format!("ns.{ns}")),
            host_ns(ns),
            "{ns} namespace is not new"
        );
    }
    // The payload is pid 2 behind the init (pid 1), in a new session.
    assert_eq!(f.get("pid"), "2");
    assert_eq!(f.get("ppid"), "1");
    assert_eq!(f.get("hostname"), "sandbox");
    assert_eq!(f.get("interfaces"), "lo:UP");
}

#[test]
fn unshare_all_gives_new_namespaces_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    check_all_new(&Sandbox::new().unshare_all().hostname("sandbox"));
}

rootless_test! {
    fn unshare_all_gives_new_namespaces_rootless() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        let sb = Sandbox::new().unshare_all().hostname("sandbox");
        check_all_new(&sb);
        let f = facts(&sb);
        // The user namespace came automatically and maps our own ids.
        assert_ne!(f.get("ns.user"), host_ns("user"));
        assert_eq!(f.get("uid"), "65534");
        assert_eq!(f.get("CapEff"), "0000000000000000");
        let child = sb.spawn(&rf(&["sleep", "0"])).unwrap();
        assert!(child.report().is_enforced(Layer::Namespace(Namespace::User)));
    }
}

rootless_test! {
    fn map_root_user_rootless() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to uid 65534 here");
        }
        let f = facts(&Sandbox::new().user_ns(UserNs::root()));
        assert_eq!(f.get("uid"), "0");
        assert_eq!(f.get("gid"), "0");
        // Root inside, but every capability dropped.
        assert_eq!(f.get("CapEff"), "0000000000000000");
        assert_eq!(f.get("CapBnd"), "0000000000000000");
    }
}

#[test]
fn each_namespace_alone_is_new_and_others_are_shared() {
    if !common::is_root() {
        return common::skip("needs root");
    }
    let cases: [(&str, Sandbox); 6] = [
        ("pid", Sandbox::new().pid_ns()),
        ("net", Sandbox::new().net(Net::New)),
        ("ipc", Sandbox::new().ipc_ns()),
        ("uts", Sandbox::new().uts_ns()),
        ("cgroup", Sandbox::new().cgroup_ns()),
        ("mnt", Sandbox::new().mount_ns()),
    ];
    for (name, sb) in cases {
        let f = facts(&sb);
        for other in ["pid", "net", "ipc", "uts", "cgroup", "mnt", "user", "time"] {
            let inside = f.get(&format!("ns.{other}"));
            if other == name {
                assert_ne!(inside, host_ns(other), "{name}: not new");
            } else {
                assert_eq!(inside, host_ns(other), "{name}: {other} should be shared");
            }
        }
    }
}

#[test]
fn explicit_user_namespace_as_root() {
    if !common::is_root() {
        return common::skip("needs root");
    }
    let f = facts(
        &Sandbox::new()
            .user_ns(UserNs::maps(
                [ringfence::IdMap {
                    inside: 0,
                    outside: 100_000,
                    count: 65536,
                }],
                [ringfence::IdMap {
                    inside: 0,
                    outside: 100_000,
                    count: 65536,
                }],
            ))
            .uid(1000)
            .gid(1000),
    );
    assert_ne!(f.get("ns.user"), host_ns("user"));
    assert_eq!(f.get("uid"), "1000");
    assert_eq!(f.get("gid"), "1000");
}

#[test]
fn hostname_is_set_only_inside() {
    if !common::is_root() && !common::userns_available() {
        return common::skip("needs root or user namespaces");
    }
    let before = nix::unistd::gethostname().unwrap();
    let f = facts(&Sandbox::new().hostname("ringfence-test-box"));
    assert_eq!(f.get("hostname"), "ringfence-test-box");
    assert_eq!(nix::unistd::gethostname().unwrap(), before);
}

#[test]
fn new_net_has_only_loopback_and_it_is_up() {
    if !common::is_root() && !common::userns_available() {
        return common::skip("needs root or user namespaces");
    }
    let f = facts(&Sandbox::new().net(Net::New));
    assert_eq!(f.get("interfaces"), "lo:UP");
}

#[test]
fn net_join_shares_the_given_namespace() {
    if !common::is_root() {
        return common::skip("joining a namespace owned by the host's user namespace needs root");
    }
    // A sandbox holding a new network namespace open...
    let mut holder = Sandbox::new()
        .net(Net::New)
        .spawn(&rf(&["sleep", "30"]))
        .unwrap();
    let ns_file = File::open(format!("/proc/{}/ns/net", holder.id())).unwrap();
    let ns = std::fs::read_link(format!("/proc/{}/ns/net", holder.id())).unwrap();
    // ...joined by another one.
    let f = facts(&Sandbox::new().net(Net::join(ns_file)));
    assert_eq!(f.get("ns.net"), ns.to_string_lossy());
    assert_ne!(f.get("ns.net"), host_ns("net"));
    assert_eq!(f.get("interfaces"), "lo:UP");
    holder.kill().unwrap();
}

#[test]
fn net_host_is_the_default() {
    let f = facts(&Sandbox::new());
    assert_eq!(f.get("ns.net"), host_ns("net"));
}

#[test]
fn time_namespace_offsets_move_monotonic_and_boottime() {
    if !common::is_root() && !common::userns_available() {
        return common::skip("needs root or user namespaces");
    }
    if !ringfence::probe().supports(Namespace::Time) {
        return common::skip("this kernel has no time namespaces");
    }
    let offsets = TimeOffsets {
        monotonic: Duration::from_secs(1_000_000),
        boottime: Duration::from_secs(2_000_000),
    };
    let sb = Sandbox::new().time_offsets(offsets);
    let f = facts(&sb);
    let now = |clock| {
        // SAFETY: timespec is plain data; clock_gettime fills it.
        let ts = unsafe {
            let mut ts: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(clock, &mut ts);
            ts
        };
        ts.tv_sec
    };
    let mono = now(libc::CLOCK_MONOTONIC);
    let boot = now(libc::CLOCK_BOOTTIME);
    let inside_mono: i64 = f.get("monotonic").parse().unwrap();
    let inside_boot: i64 = f.get("boottime").parse().unwrap();
    assert!(
        (inside_mono - mono - 1_000_000).abs() <= 5,
        "{inside_mono} vs {mono}"
    );
    assert!(
        (inside_boot - boot - 2_000_000).abs() <= 5,
        "{inside_boot} vs {boot}"
    );
    assert_ne!(f.get("ns.time"), host_ns("time"));
    let child = sb.spawn(&rf(&["sleep", "0"])).unwrap();
    assert!(child.report().is_enforced(Layer::TimeOffsets));
}

#[test]
fn required_layers_are_enforced_when_available() {
    if !common::is_root() {
        return common::skip("needs root");
    }
    let sb = Sandbox::new()
        .compat(Compat::Required)
        .pid_ns()
        .net(Net::New);
    let child = sb.spawn(&rf(&["sleep", "0"])).unwrap();
    let r = child.report();
    assert!(r.is_fully_enforced(), "{r}");
    assert_eq!(
        r.get(Layer::Namespace(Namespace::Pid)),
        Some(&Enforcement::Enforced)
    );
}
