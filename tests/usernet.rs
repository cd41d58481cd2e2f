//! `Net::User`: a private network with outbound access through a user-mode network stack
//! (pasta; slirp4netns as the fallback).
//!
//! Traffic goes only to this machine: listeners the tests open on the host's loopback, the
//! sandbox's own addresses, and a DNS stub on the host's loopback. The addresses of the
//! sandbox's network that would lead elsewhere (the gateway without host loopback) are the ones
//! the tests check are refused inside the sandbox before any packet leaves it.
//!
//! The tests need root (the `root_` ones: a DNS stub on port 53, the host's `/dev/net/tun`
//! here is root's only); they skip visibly where the stack is missing. The client inside the
//! sandbox is this test binary ([`usernet_client`]). The rootless test runs where
//! `/dev/net/tun` is usable.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use ringfence::usernet::{DNS_V4, GATEWAY_V4, GATEWAY_V6};
use ringfence::{
    Command, Error, Layer, Net, Pod, PortForward, Sandbox, Stack, Stdio, UserNet, UserNetError,
};

/// Set in the environment of the client: its arguments, separated by spaces.
const CLIENT_ENV: &str = "RINGFENCE_USERNET_CLIENT";
/// What the client prints before its result (after libtest's own output on the line).
const RESULT: &str = "RESULT:";

/// The client run inside the sandbox: this test binary, running [`usernet_client`] with the
/// arguments in [`CLIENT_ENV`]. `connect HOST PORT` prints `ok LINE` (the first line the server
/// sent) or `err ERRNO_NAME`; `serve PORT` says `listening` and answers every connection with
/// a line; `dns SERVER NAME` prints `answer A.B.C.D`, the last four bytes of the answer.
#[test]
fn usernet_client() {
    let Ok(args) = std::env::var(CLIENT_ENV) else {
        return; // an ordinary test run: nothing to do
    };
    let args: Vec<&str> = args.split(' ').collect();
    let errno = |e: std::io::Error| match e.raw_os_error() {
        Some(n) => format!("err {:?}", ringfence::Errno::from_raw(n)),
        None => format!("err {e}"),
    };
    let result = match args[0] {
        "connect" => {
            let addr: IpAddr = args[1].parse().unwrap();
            let port: u16 = args[2].parse().unwrap();
            match TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(5)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut line = String::new();
                    match BufReader::new(s).read_line(&mut line) {
                        Ok(_) => format!("ok {}", line.trim()),
                        Err(e) => errno(e),
                    }
                }
                Err(e) => errno(e),
            }
        }
        "serve" => {
            let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, args[1].parse::<u16>().unwrap()))
                .unwrap();
            println!("{RESULT} listening");
            std::io::stdout().flush().unwrap();
            for c in l.incoming().flatten() {
                let mut c = c;
                let _ = c.write_all(b"hello from inside\n");
            }
            return;
        }
        "dns" => {
            let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            for part in args[2].split('.') {
                q.push(part.len() as u8);
                q.extend_from_slice(part.as_bytes());
            }
            q.extend_from_slice(&[0, 0, 1, 0, 1]);
            let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let server: Ipv4Addr = args[1].parse().unwrap();
            let mut buf = [0u8; 512];
            match s.send_to(&q, (server, 53)).and_then(|_| s.recv(&mut buf)) {
                Ok(n) if n >= 4 => {
                    let a = &buf[n - 4..n];
                    format!("answer {}.{}.{}.{}", a[0], a[1], a[2], a[3])
                }
                Ok(n) => format!("short answer of {n} bytes"),
                Err(e) => errno(e),
            }
        }
        other => panic!("unknown client command {other}"),
    };
    println!("{RESULT} {result}");
}

fn usable(stack: Stack) -> bool {
    if UserNet::new().stack(stack).check().is_err() {
        common::skip(&format!("{stack} is not installed (.ci/run installs it)"));
        return false;
    }
    true
}

fn client(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "usernet_client",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CLIENT_ENV, args.join(" "));
    c
}

/// The client's result in its output.
fn result(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .find_map(|l| l.split_once(RESULT).map(|(_, r)| r.trim().to_owned()))
        .unwrap_or_else(|| panic!("no result from the client: {text}"))
}

/// Run the client in a sandbox with this network; its result.
fn run(net: UserNet, args: &[&str]) -> String {
    let sb = Sandbox::new().pid_ns().net(Net::User(net));
    let out = sb.output(&client(args)).expect("spawn");
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    result(&out.stdout)
}

/// Wait for the serving client's `listening`.
fn wait_listening(child: &mut ringfence::Child) {
    let mut r = BufReader::new(child.stdout.as_mut().unwrap());
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "the server ended");
        if line.contains(RESULT) {
            assert!(line.contains("listening"), "{line}");
            return;
        }
    }
}

/// A listener on the host's 127.0.0.1 that greets every connection; returns its port.
fn greeter(greeting: &'static str) -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut c = c;
            let _ = writeln!(c, "{greeting}");
        }
    });
    port
}

fn gateway() -> String {
    GATEWAY_V4.to_string()
}

#[test]
fn root_host_loopback_is_reachable_only_when_asked() {
    if !common::is_root() {
        return common::skip("needs root (/dev/net/tun)");
    }
    if !usable(Stack::Pasta) {
        return;
    }
    let port = greeter("host loopback").to_string();
    // Asked for: the gateway address is the host's loopback.
    let on = run(
        UserNet::new().host_loopback(true),
        &["connect", &gateway(), &port],
    );
    assert_eq!(on, "ok host loopback");
    // Not asked for: the gateway address is refused inside the sandbox, and the sandbox's
    // own 127.0.0.1 is its own (nothing listens there).
    let off = run(UserNet::new(), &["connect", &gateway(), &port]);
    assert_eq!(off, "err EACCES");
    let own = run(UserNet::new(), &["connect", "127.0.0.1", &port]);
    assert_eq!(own, "err ECONNREFUSED");
    let own = run(
        UserNet::new().host_loopback(true),
        &["connect", "127.0.0.1", &port],
    );
    assert_eq!(own, "err ECONNREFUSED");
}

/// Whether the host has an IPv6 default route (then the sandbox gets IPv6).
fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/ipv6_route").is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("00000000000000000000000000000000 00 "))
    })
}

#[test]
fn root_ipv6_host_loopback_is_reachable_only_when_asked() {
    if !common::is_root() {
        return common::skip("needs root (/dev/net/tun)");
    }
    if !usable(Stack::Pasta) {
        return;
    }
    if !host_has_ipv6() {
        return common::skip("the host has no IPv6 default route: the sandbox gets no IPv6");
    }
    let Ok(l) = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)) else {
        return common::skip("no ::1 on this host");
    };
    let port = l.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut c = c;
            let _ = writeln!(c, "host ::1");
        }
    });
    let gw = GATEWAY_V6.to_string();
    let on = run(UserNet::new().host_loopback(true), &["connect", &gw, &port]);
    assert_eq!(on, "ok host ::1");
    let off = run(UserNet::new(), &["connect", &gw, &port]);
    assert_eq!(off, "err EACCES");
    // Without IPv6 asked for, there is none.
    let none = run(
        UserNet::new().host_loopback(true).no_ipv6(),
        &["connect", &gw, &port],
    );
    assert_eq!(none, "err ENETUNREACH");
}

#[test]
fn root_port_forward_reaches_a_server_inside() {
    if !common::is_root() {
        return common::skip("needs root (/dev/net/tun)");
    }
    if !usable(Stack::Pasta) {
        return;
    }
    // A free port on the host's loopback for the forward.
    let host_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fwd: PortForward = format!("127.0.0.1:{host_port}:8000/tcp").parse().unwrap();
    let sb = Sandbox::new()
        .pid_ns()
        .net(Net::User(UserNet::new().forward(fwd)));
    let mut cmd = client(&["serve", "8000"]);
    cmd.stdout(Stdio::Piped);
    let mut child = sb.spawn(&cmd).expect("spawn");
    wait_listening(&mut child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let mut got = String::new();
        if let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, host_port)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.read_to_string(&mut got);
        }
        if !got.is_empty() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(got, "hello from inside\n");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A DNS stub on the host's loopback answering every A query with 192.0.2.53.
fn dns_stub(addr: Ipv4Addr) -> std::io::Result<()> {
    let s = UdpSocket::bind((addr, 53))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut r = buf[..n].to_vec();
            r[2] = 0x81; // response, recursion desired
            r[3] = 0x80; // recursion available, no error
            r[7] = 1; // one answer
            // Name pointer to the question, type A, class IN, TTL 60, 4 bytes.
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 53]);
            let _ = s.send_to(&r, from);
        }
    });
    Ok(())
}

#[test]
fn root_dns_is_answered_by_the_chosen_resolver() {
    if !common::is_root() {
        return common::skip("needs root (a DNS stub on port 53, /dev/net/tun)");
    }
    if !usable(Stack::Pasta) {
        return;
    }
    // On 127.0.0.1: some pasta versions send forwarded queries to the host itself
    // (0.0.0.0:53, delivered on loopback) whatever the upstream; both reach this stub.
    let stub = Ipv4Addr::LOCALHOST;
    if let Err(e) = dns_stub(stub) {
        return common::skip(&format!("cannot bind a DNS stub on {stub}:53: {e}"));
    }
    let got = run(
        UserNet::new().dns_upstream(IpAddr::V4(stub)),
        &["dns", &DNS_V4.to_string(), "ringfence.test"],
    );
    assert_eq!(got, "answer 192.0.2.53");
}

#[test]
fn root_outbound_tcp_ports_and_destinations_are_restricted() {
    if !common::is_root() {
        return common::skip("needs root (/dev/net/tun)");
    }
    if !usable(Stack::Pasta) {
        return;
    }
    let allowed = greeter("allowed");
    let other = greeter("other");
    let (a, o) = (allowed.to_string(), other.to_string());
    // Destination refused by address: the gateway (here the host's loopback) is denied.
    let denied = UserNet::new()
        .host_loopback(true)
        .deny("10.0.2.0/28".parse::<ringfence::IpNet>().unwrap());
    assert_eq!(run(denied, &["connect", &gateway(), &a]), "err EACCES");

    if ringfence::landlock::abi() < 4 {
        return common::skip("Landlock TCP rules need ABI 4 (Linux 6.7)");
    }
    let net = || {
        UserNet::new()
            .host_loopback(true)
            .allow_tcp_ports([allowed])
    };
    assert_eq!(run(net(), &["connect", &gateway(), &a]), "ok allowed");
    assert_eq!(run(net(), &["connect", &gateway(), &o]), "err EACCES");
    // Binding is not restricted by it: a server inside still listens.
    let sb = Sandbox::new().pid_ns().net(Net::User(net()));
    let mut cmd = client(&["serve", "8000"]);
    cmd.stdout(Stdio::Piped);
    let mut child = sb.spawn(&cmd).unwrap();
    wait_listening(&mut child);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The attack on the refusals: the program deletes the `prohibit` route (`ip route del`), then
/// connects to the refused destination (the gateway, here the host's loopback, so that a
/// connection that got through stays on this machine).
#[test]
fn root_the_program_cannot_remove_a_refusal() {
    if !common::is_root() {
        return common::skip("needs root (/dev/net/tun)");
    }
    if !usable(Stack::Pasta) {
        return;
    }
    let Some(ip) = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        return common::skip("ip (iproute2) is not installed");
    };
    let port = greeter("refusal removed").to_string();
    let net = UserNet::new()
        .host_loopback(true)
        .deny(IpAddr::V4(GATEWAY_V4));
    let sb = Sandbox::new().pid_ns().net(Net::User(net));
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "\"$1\" route del prohibit \"$2\" 2>&1; exec \"$0\" --exact usernet_client --nocapture --test-threads=1",
        exe.to_str().unwrap(),
        ip,
        &gateway(),
    ])
    .env(CLIENT_ENV, format!("connect {} {port}", gateway()));
    let out = sb.output(&cmd).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Operation not permitted"),
        "the route was removed: {text}"
    );
    assert_eq!(result(&out.stdout), "err EACCES");
}

#[test]
fn root_the_stack_ends_with_the_sandbox() {
    if !common::is_root() {
        return common::skip("needs root (/dev/net/tun)");
    }
    if !usable(Stack::Pasta) {
        return;
    }
    let sb = Sandbox::new().pid_ns().net(Net::user());
    // Waited for.
    let mut child = sb.spawn(&Command::new("/bin/true")).unwrap();
    let stack = child.network_stack_pid().expect("a stack") as i32;
    assert!(common::alive(stack));
    assert!(
        child
            .report()
            .iter()
            .any(|(l, _)| l == Layer::UserNet(Stack::Pasta)),
        "{:?}",
        child.report()
    );
    child.wait().unwrap();
    assert!(!common::alive(stack) && !common::children().contains(&stack));
    // Dropped while running.
    let child = sb.spawn(Command::new("/bin/sleep").arg("30")).unwrap();
    let stack = child.network_stack_pid().unwrap() as i32;
    drop(child);
    assert!(!common::alive(stack) && !common::children().contains(&stack));
}

const PIDS_LINE: &str = "RINGFENCE_USERNET_PIDS";

#[test]
fn root_the_stack_dies_when_the_parent_is_killed() {
    if !common::is_root() {
        return common::skip("needs root (/dev/net/tun)");
    }
    if common::in_child() {
        // The parent to be killed: start a sandbox, say the pids, wait. The sandbox itself
        // survives its parent here, so that only the stack's own death signal can end it.
        let sb = Sandbox::new()
            .pid_ns()
            .die_with_parent(false)
            .net(Net::user());
        let child = sb.spawn(Command::new("/bin/sleep").arg("60")).unwrap();
        println!(
            "{PIDS_LINE} {} {}",
            child.network_stack_pid().unwrap(),
            child.id()
        );
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    if !usable(Stack::Pasta) {
        return;
    }
    let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "root_the_stack_dies_when_the_parent_is_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(common::CHILD_ENV, "fresh")
        .env(common::INSPECT_ENV, common::inspect())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pids = None;
    for line in BufReader::new(parent.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // (after libtest's "test NAME ... " on the same line)
        if let Some((_, rest)) = line.split_once(PIDS_LINE) {
            let v: Vec<i32> = rest
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect();
            pids = Some((v[0], v[1]));
            break;
        }
    }
    let (stack, sandbox) = pids.expect("the parent reported its pids");
    assert!(common::alive(stack) && common::alive(sandbox));
    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::alive(stack) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = common::alive(stack);
    // The sandbox (started by the killed parent for this test) is ended here.
    // SAFETY: kill with a pid this test's child started and that still runs `sleep`.
    unsafe { libc::kill(sandbox, libc::SIGKILL) };
    if survived {
        // SAFETY: as above, the stack that test's child started.
        unsafe { libc::kill(stack, libc::SIGKILL) };
    }
    assert!(!survived, "the stack {stack} outlived its parent");
}

#[test]
fn root_a_pod_shares_one_user_network() {
    if !common::is_root() {
        return common::skip("needs root (/dev/net/tun)");
    }
    if !usable(Stack::Pasta) {
        return;
    }
    let port = greeter("pod").to_string();
    let pod = Pod::new()
        .net(Net::User(UserNet::new().host_loopback(true)))
        .spawn()
        .unwrap();
    for _ in 0..2 {
        let out = Sandbox::new()
            .pod(&pod)
            .output(&client(&["connect", &gateway(), &port]))
            .unwrap();
        assert_eq!(result(&out.stdout), "ok pod");
    }
    let stack = pod.network_stack_pid().expect("the pod's stack") as i32;
    assert!(common::alive(stack));
    drop(pod);
    assert!(!common::alive(stack), "the pod's stack outlived it");
}

#[test]
fn root_a_warm_sandbox_shares_one_network_between_its_runs() {
    if !common::is_root() {
        return common::skip("needs root (/dev/net/tun)");
    }
    if !usable(Stack::Pasta) {
        return;
    }
    let port = greeter("warm").to_string();
    let mut warm = Sandbox::new()
        .net(Net::User(UserNet::new().host_loopback(true)))
        .warm()
        .unwrap();
    let mut cmd = client(&["connect", &gateway(), &port]);
    cmd.stdout(Stdio::Piped);
    for _ in 0..3 {
        let out = warm.run(&cmd, &ringfence::RunOptions::new()).unwrap();
        assert_eq!(result(&out.stdout), "ok warm");
    }
}

#[test]
fn root_slirp4netns_is_the_fallback() {
    if !common::is_root() {
        return common::skip("needs root (/dev/net/tun)");
    }
    if !usable(Stack::Slirp4netns) {
        return;
    }
    let port = greeter("via slirp4netns").to_string();
    let net = || UserNet::new().stack(Stack::Slirp4netns);
    assert_eq!(
        run(net().host_loopback(true), &["connect", &gateway(), &port]),
        "ok via slirp4netns"
    );
    assert_eq!(run(net(), &["connect", &gateway(), &port]), "err EACCES");
    // What it cannot do is refused before anything starts.
    let e = Sandbox::new()
        .net(Net::User(net().forward(PortForward::tcp(1, 1))))
        .spawn(&Command::new("/bin/true"))
        .unwrap_err();
    assert!(
        matches!(e, Error::UserNet(UserNetError::Unsupported { .. })),
        "{e}"
    );
}

#[test]
fn a_missing_stack_is_a_clear_error() {
    let e = Sandbox::new()
        .net(Net::User(
            UserNet::new()
                .program("/nonexistent/pasta")
                .stack(Stack::Pasta),
        ))
        .spawn(&Command::new("/bin/true"))
        .unwrap_err();
    assert!(
        matches!(e, Error::UserNet(UserNetError::NotFound { .. })),
        "{e}"
    );
    // Bad input is refused before anything starts.
    assert!("127.0.0.1:80".parse::<PortForward>().is_err());
    assert!("80:80/sctp".parse::<PortForward>().is_err());
}

rootless_test! {
    fn rootless_user_network_works_where_tun_is_usable() {
        if !common::userns_available() {
            return common::skip("user namespaces are not available to this user");
        }
        if std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun").is_err() {
            return common::skip("/dev/net/tun is not readable and writable by this user (the stacks need it)");
        }
        if !usable(Stack::Pasta) {
            return;
        }
        let port = greeter("rootless").to_string();
        assert_eq!(
            run(UserNet::new().host_loopback(true), &["connect", &gateway(), &port]),
            "ok rootless"
        );
        assert_eq!(run(UserNet::new(), &["connect", &gateway(), &port]), "err EACCES");
    }
}
