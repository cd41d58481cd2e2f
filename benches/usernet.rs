//! `Net::User`: what the user-mode network stack costs.
//!
//! 1. Start-up: a run of `/bin/true` with `Net::New` (a namespace with only `lo`: `--net
//!    none`) against `Net::User` (the same plus the stack, pasta or slirp4netns, started and
//!    stopped with the sandbox: `--net user`). Paired rounds (the variants in turn, the median
//!    of each), so that load drifts on a shared machine affect all alike; the extra cost of
//!    `Net::User` is the difference of the medians.
//! 2. TCP throughput from the sandbox to a listener on the host's loopback: `Net::Host` (the
//!    sandbox connects to 127.0.0.1 directly) against `Net::User` with host loopback (it
//!    connects to the gateway, which the stack maps to the host's 127.0.0.1). The client is
//!    this binary, re-executed inside the sandbox; it writes `BYTES` bytes and the host side
//!    counts them. Loopback only: no traffic leaves the machine.
//!
//! Needs root here (the stacks need `/dev/net/tun`, root's only on this host). Run with
//! `cargo bench --bench usernet`; see docs/BENCHMARKS.md.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ringfence::usernet::GATEWAY_V4;
use ringfence::{Command, Net, Sandbox, Stack, Stdio, UserNet};

const ROUNDS: usize = 21;
const PER_ROUND: u32 = 5;
const BYTES: u64 = 512 << 20;
const CLIENT_ARG: &str = "--usernet-bench-client";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CLIENT_ARG) {
        return client(&args[2], args[3].parse().unwrap(), args[4].parse().unwrap());
    }
    if !args.iter().any(|a| a == "--bench") {
        // Run as a test (`cargo test --benches`): the measurements are for `cargo bench`.
        return;
    }
    let stacks: Vec<Stack> = [Stack::Pasta, Stack::Slirp4netns]
        .into_iter()
        .filter(|s| UserNet::new().stack(*s).check().is_ok())
        .collect();
    if stacks.is_empty() {
        println!("SKIPPED: neither pasta nor slirp4netns is installed");
        return;
    }
    if let Err(e) = Sandbox::new()
        .net(Net::user())
        .output(&Command::new("/bin/true"))
    {
        println!("SKIPPED: Net::User does not start here: {e}");
        return;
    }
    startup(&stacks);
    for s in &stacks {
        throughput(*s);
    }
}

fn quiet(program: &str) -> Command {
    let mut c = Command::new(program);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn startup(stacks: &[Stack]) {
    let mut variants: Vec<(String, Sandbox)> = vec![("none".into(), Sandbox::new().net(Net::New))];
    for s in stacks {
        variants.push((
            format!("user ({s})"),
            Sandbox::new().net(Net::User(UserNet::new().stack(*s))),
        ));
    }
    let cmd = quiet("/bin/true");
    // A warm sandbox starts its stack once, with its zygote; every run shares that network.
    let mut warm = Sandbox::new()
        .net(Net::User(UserNet::new().stack(stacks[0])))
        .warm()
        .expect("a warm Net::User sandbox");
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len() + 1];
    for _ in 0..ROUNDS {
        for (i, (_, sb)) in variants.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                assert!(sb.output(&cmd).unwrap().success());
            }
            times[i].push(t.elapsed() / PER_ROUND);
        }
        let t = Instant::now();
        for _ in 0..PER_ROUND {
            let out = warm.run(&cmd, &ringfence::RunOptions::default()).unwrap();
            assert!(out.success());
        }
        times[variants.len()].push(t.elapsed() / PER_ROUND);
    }
    variants.push((format!("user ({}), warm run", stacks[0]), Sandbox::new()));
    let base = median(&mut times[0].clone());
    println!("start-up, median of {ROUNDS} rounds of {PER_ROUND} runs of /bin/true:");
    for (i, (name, _)) in variants.iter().enumerate() {
        let m = median(&mut times[i]);
        println!(
            "  --net {name:<20} {:>8.2} ms   (+{:.2} ms over --net none)",
            m.as_secs_f64() * 1e3,
            (m.as_secs_f64() - base.as_secs_f64()) * 1e3
        );
    }
}

/// The client inside the sandbox: write `bytes` bytes to `addr:port`.
fn client(addr: &str, port: u16, bytes: u64) {
    let mut s = TcpStream::connect((addr, port)).expect("connect");
    let buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        s.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
}

/// One transfer of `BYTES` from a sandbox with `net` connecting to `addr`; the time from the
/// connection's accept to the last byte.
fn transfer(net: Net, addr: &str) -> Duration {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let exe = std::env::current_exe().unwrap();
    let mut cmd = quiet(exe.to_str().unwrap());
    cmd.args([CLIENT_ARG, addr, &port.to_string(), &BYTES.to_string()]);
    let mut child = Sandbox::new().net(net).spawn(&cmd).unwrap();
    let (mut c, _) = l.accept().unwrap();
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let elapsed = t.elapsed();
    assert_eq!(got, BYTES);
    assert!(child.wait().unwrap().success());
    elapsed
}

fn throughput(stack: Stack) {
    let gw = GATEWAY_V4.to_string();
    let mut host = Vec::new();
    let mut user = Vec::new();
    for _ in 0..5 {
        host.push(transfer(Net::Host, "127.0.0.1"));
        user.push(transfer(
            Net::User(UserNet::new().stack(stack).host_loopback(true)),
            &gw,
        ));
    }
    let mb = BYTES as f64 / (1 << 20) as f64;
    let h = mb / median(&mut host).as_secs_f64();
    let u = mb / median(&mut user).as_secs_f64();
    println!(
        "TCP to a host loopback listener ({} MiB, median of 5): Net::Host {h:.0} MiB/s, Net::User ({stack}) {u:.0} MiB/s, ratio {:.2}",
        BYTES >> 20,
        u / h
    );
}
