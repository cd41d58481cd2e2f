//! Pods: members share the pod's network (they reach each other over 127.0.0.1, not the
//! host), hostname and SysV IPC; the pod's memory limit bounds their sum; killing the pod
//! leaves no process and no cgroup; conflicting options fail clearly. Run as root and,
//! through `rootless_test!`, as uid 65534.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use ringfence::{Command, ConfigError, Error, Net, Pod, Sandbox, Stdio};

fn can_isolate() -> bool {
    common::is_root() || common::userns_available()
}

/// The network and memory tests run Python in the members (`.ci/run` installs it).
fn has_python() -> bool {
    let found = std::path::Path::new("/usr/bin/python3").exists();
    if !found {
        common::skip("python3 is not installed in /usr/bin");
    }
    found
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c.stdout(Stdio::Piped).stderr(Stdio::Piped);
    c
}

fn python(code: &str) -> Command {
    let mut c = Command::new("python3");
    c.args(["-c", code]);
    c.stdout(Stdio::Piped).stderr(Stdio::Piped);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn members_share_network_hostname_and_ipc() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    if !has_python() {
        return;
    }
    // A listener on the host's loopback, which the pod must not reach.
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host.local_addr().unwrap().port();

    let pod = Pod::new().hostname("podhost").spawn().unwrap();
    let member = || Sandbox::isolated().pod(&pod);

    // A server in one member, a client in another, over the pod's 127.0.0.1.
    let server = member()
        .spawn(&python(
            "import socket\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('127.0.0.1', 7000)); s.listen(1)\n\
             print('listening', flush=True)\n\
             c, _ = s.accept(); c.sendall(b'hello from the other member'); c.close()",
        ))
        .unwrap();
    let client = member()
        .output(&python(
            "import socket, time\n\
             for i in range(500):\n\
             \x20   try:\n\
             \x20       s = socket.create_connection(('127.0.0.1', 7000)); break\n\
             \x20   except ConnectionRefusedError:\n\
             \x20       time.sleep(0.01)\n\
             print(s.recv(100).decode())",
        ))
        .unwrap();
    assert!(client.success(), "{}", text(&client.stderr));
    assert_eq!(text(&client.stdout).trim(), "hello from the other member");
    let server = server.wait_with_output().unwrap();
    assert!(server.success(), "{}", text(&server.stderr));

    // The host's loopback listener is not reachable from the pod, whose network has only lo.
    let out = member()
        .output(&python(&format!(
            "import socket\n\
             try:\n\
             \x20   socket.create_connection(('127.0.0.1', {host_port}), timeout=2); print('connected')\n\
             except OSError as e:\n\
             \x20   print('refused', e.errno)"
        )))
        .unwrap();
    assert!(
        text(&out.stdout).starts_with("refused"),
        "{}",
        text(&out.stdout)
    );

    // One hostname, one IPC namespace: a SysV segment made by one member is seen by another.
    let out = member().output(&sh("hostname; ipcmk -M 4096")).unwrap();
    assert!(out.success(), "{}", text(&out.stderr));
    let made = text(&out.stdout);
    assert!(made.starts_with("podhost\n"), "{made}");
    let id = made
        .split_whitespace()
        .last()
        .expect("ipcmk printed an id")
        .to_owned();
    let out = member().output(&sh("hostname; ipcs -m")).unwrap();
    let seen = text(&out.stdout);
    assert!(seen.starts_with("podhost\n"), "{seen}");
    assert!(
        seen.contains(&id),
        "segment {id} not seen by the other member: {seen}"
    );
    // ... and not by the host.
    let host_ipcs = std::process::Command::new("ipcs")
        .arg("-m")
        .output()
        .unwrap();
    assert!(!text(&host_ipcs.stdout).contains(&format!(" {id} ")));

    // Members keep their own pid namespaces (the pod does not share one here).
    let a = member().output(&sh("echo $$")).unwrap();
    assert_eq!(text(&a.stdout).trim(), "2");
}

#[test]
fn members_share_network_hostname_and_ipc_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    members_share_network_hostname_and_ipc();
}

rootless_test! {
    fn members_share_network_hostname_and_ipc_rootless() {
        members_share_network_hostname_and_ipc();
    }
}

fn shared_pid_namespace() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    let pod = Pod::new().pid_ns().spawn().unwrap();
    let mut sleeper = Sandbox::isolated()
        .pod(&pod)
        .spawn(&sh("exec sleep 30"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let out = Sandbox::isolated()
            .pod(&pod)
            .output(&sh("ps -e -o comm="))
            .unwrap();
        let seen = text(&out.stdout);
        if seen.contains("sleep") || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        seen.contains("sleep"),
        "the other member is not visible: {seen}"
    );
    assert!(
        seen.contains("ringfence-pod"),
        "the holder is not pid 1: {seen}"
    );
    sleeper.kill().unwrap();
}

#[test]
fn shared_pid_namespace_root() {
    if !common::is_root() {
        return common::skip("needs root (the rootless variant runs separately)");
    }
    shared_pid_namespace();
}

rootless_test! {
    fn shared_pid_namespace_rootless() {
        shared_pid_namespace();
    }
}

#[test]
fn killing_the_pod_ends_every_member_root() {
    if !common::is_root() {
        return common::skip("needs root (cgroups)");
    }
    let mut pod = Pod::new().pids_limit(64).spawn().unwrap();
    let dir = pod.pod_ref().cgroup.expect("the pod has a cgroup");
    let member = || Sandbox::isolated().pod(&pod);
    let mut a = member().spawn(&sh("sleep 60")).unwrap();
    // A member that daemonises a process out of its session.
    let mut b = member()
        .spawn(&sh(
            "setsid sh -c 'sleep 60' </dev/null >/dev/null 2>&1 & sleep 60",
        ))
        .unwrap();
    // The members' cgroups are below the pod's.
    let below = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ringfence-"))
        .count();
    assert_eq!(below, 2, "members' cgroups are not below the pod's");
    let holder = pod.id();
    pod.kill().unwrap();
    for m in [&mut a, &mut b] {
        let out = m
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("a member outlived its pod");
        assert!(!out.success());
    }
    assert!(!common::alive(holder as i32), "the holder is still there");
    assert!(!dir.exists(), "the pod's cgroup was left behind");
}

#[test]
fn dropping_the_pod_ends_members_without_cgroups() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    let pod = Pod::new().spawn().unwrap();
    let mut a = Sandbox::isolated()
        .pod(&pod)
        .spawn(&sh("sleep 60"))
        .unwrap();
    drop(pod);
    let out = a
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("a member outlived its pod");
    assert!(!out.success());
}

#[test]
fn pod_memory_limit_bounds_the_sum_root() {
    if !common::is_root() {
        return common::skip("needs root (cgroups)");
    }
    if !has_python() {
        return;
    }
    let pod = Pod::new()
        .memory_limit(96 << 20)
        .memory_swap(96 << 20)
        .spawn()
        .unwrap();
    // Two members of 64 MiB each cannot both live in 96 MiB.
    let hog = python(
        "import time\n\
         b = bytearray(64 << 20)\n\
         for i in range(0, len(b), 4096): b[i] = 1\n\
         print('allocated', flush=True)\n\
         time.sleep(5)",
    );
    let a = Sandbox::isolated().pod(&pod).spawn(&hog).unwrap();
    let b = Sandbox::isolated().pod(&pod).spawn(&hog).unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        !(a.success() && b.success()),
        "both members got 64 MiB under a 96 MiB pod limit"
    );
    let usage = pod.usage().expect("the pod has a cgroup");
    assert!(usage.peak_memory.is_none_or(|p| p <= 96 << 20), "{usage:?}");
}

fresh_process_test! {
    fn conflicting_options_fail() {
    if !can_isolate() {
        return common::skip("needs root or user namespaces");
    }
    let pod = Pod::new().spawn().unwrap();
    let fds = common::open_fds();
    let e = Sandbox::isolated()
        .pod(&pod)
        .net(Net::New)
        .spawn(&sh("true"))
        .unwrap_err();
    assert!(matches!(e, Error::Config(ConfigError::Conflict { .. })), "{e}");
    assert!(e.to_string().contains("pod"), "{e}");
    let e = Sandbox::isolated()
        .pod(&pod)
        .hostname("mine")
        .spawn(&sh("true"))
        .unwrap_err();
    assert!(matches!(e, Error::Config(ConfigError::Conflict { .. })), "{e}");
    assert_eq!(common::open_fds(), fds, "descriptors left behind");
    // Set on the pod instead, the same wishes work.
    let out = Sandbox::isolated().pod(&pod).output(&sh("true")).unwrap();
    assert!(out.success());
}
}
