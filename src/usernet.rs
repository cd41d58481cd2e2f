//! [`Net::User`](crate::Net::User): a private network namespace with outbound access through a
//! user-mode network stack (pasta from the passt project; slirp4netns where pasta is missing).
//!
//! The sandbox gets a new network namespace with `lo` and one interface, `eth0`, addressed
//! like slirp4netns's network (the same with either stack):
//!
//! | address | what |
//! | --- | --- |
//! | `10.0.2.100/24`, `fd00::100/64` | the sandbox |
//! | `10.0.2.2`, `fd00::2` | the default gateway; the host's loopback when [`UserNet::host_loopback`] is on, nothing otherwise |
//! | `10.0.2.3`, `fd00::3` | DNS, forwarded to the host's resolvers (or [`UserNet::dns_upstream`]) |
//!
//! The stack runs outside the sandbox, as the caller's user, as a child of the thread that
//! spawned the sandbox: it opens the sockets the sandbox's connections need on the host's
//! network and copies the data. It is started after the clone, before the sandboxed process is
//! released (the program starts with its network up), and it ends with the sandbox: it is
//! killed and reaped when the sandbox's outcome is collected or its [`Child`](crate::Child) is
//! dropped, and its death signal (`PR_SET_PDEATHSIG`, `SIGKILL`) ends it with the thread that
//! spawned it, as the sandbox itself ends.
//!
//! What the sandbox can reach: every address the host can reach, except the host's loopback
//! (unless asked for) and the destinations refused with [`UserNet::deny`]. Services the host
//! offers on its other addresses are reachable; restrict them with `deny`, or restrict
//! destination ports with [`UserNet::allow_tcp_ports`] (Landlock, Linux 6.7).

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// The sandbox's IPv4 address.
pub const SANDBOX_V4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
/// The gateway's IPv4 address: the host's loopback when [`UserNet::host_loopback`] is on.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The IPv4 address of the DNS forwarder inside the sandbox.
pub const DNS_V4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The sandbox's IPv6 address.
pub const SANDBOX_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
/// The gateway's IPv6 address: the host's loopback when [`UserNet::host_loopback`] is on.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
/// The IPv6 address of the DNS forwarder inside the sandbox.
pub const DNS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);

/// How long the stack may take to set the namespace up before the spawn fails.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The user-mode network stack behind [`Net::User`](crate::Net::User).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stack {
    /// `pasta` (the passt project): port forwards, DNS upstreams, IPv6. Preferred.
    Pasta,
    /// `slirp4netns`: the fallback where pasta is missing; no port forwards and no DNS
    /// upstream choice (it forwards DNS to the host's resolver).
    Slirp4netns,
}

impl Stack {
    /// The program's name, as looked up in `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            Stack::Pasta => "pasta",
            Stack::Slirp4netns => "slirp4netns",
        }
    }

    /// The stack [`UserNet`] uses when none is chosen: pasta if it is installed, else
    /// slirp4netns if that is, else `None`.
    pub fn available() -> Option<Stack> {
        [Stack::Pasta, Stack::Slirp4netns]
            .into_iter()
            .find(|s| find_program(s.program()).is_some())
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

/// A transport protocol of a port forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A port forward from the host into the sandbox: connections to `host_port` on the host
/// (on `host_addr` only, if given; every address otherwise) reach `port` in the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortForward {
    /// The host address to listen on; every address when `None`.
    pub host_addr: Option<IpAddr>,
    /// The port on the host.
    pub host_port: u16,
    /// The port in the sandbox.
    pub port: u16,
    /// TCP or UDP.
    pub proto: Proto,
}

impl PortForward {
    /// TCP `host_port` on every host address to `port` in the sandbox.
    pub fn tcp(host_port: u16, port: u16) -> PortForward {
        PortForward {
            host_addr: None,
            host_port,
            port,
            proto: Proto::Tcp,
        }
    }

    /// UDP `host_port` on every host address to `port` in the sandbox.
    pub fn udp(host_port: u16, port: u16) -> PortForward {
        PortForward {
            proto: Proto::Udp,
            ..PortForward::tcp(host_port, port)
        }
    }

    /// Listen on `addr` only.
    #[must_use]
    pub fn on(mut self, addr: IpAddr) -> PortForward {
        self.host_addr = Some(addr);
        self
    }

    /// pasta's spec: `[ADDR/]HOST_PORT:PORT`.
    fn pasta_spec(&self) -> String {
        match self.host_addr {
            Some(a) => format!("{a}/{}:{}", self.host_port, self.port),
            None => format!("{}:{}", self.host_port, self.port),
        }
    }
}

/// `[HOST_IP:]HOST_PORT:PORT[/tcp|udp]`, as `docker run -p` takes it (an IPv6 host address in
/// brackets: `[::1]:8080:80`).
impl FromStr for PortForward {
    type Err = UserNetError;

    fn from_str(s: &str) -> Result<PortForward, UserNetError> {
        let bad = |what: &'static str| UserNetError::InvalidForward {
            spec: s.to_owned(),
            what,
        };
        let (rest, proto) = match s.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, Proto::Tcp),
            Some((rest, "udp")) => (rest, Proto::Udp),
            Some(_) => return Err(bad("the protocol must be tcp or udp")),
            None => (s, Proto::Tcp),
        };
        let (addr, ports) = if let Some(v6) = rest.strip_prefix('[') {
            let (a, ports) = v6.split_once("]:").ok_or(bad(
                "an IPv6 address goes in brackets: [ADDR]:HOST_PORT:PORT",
            ))?;
            let a: Ipv6Addr = a.parse().map_err(|_| bad("not an IPv6 address"))?;
            (Some(IpAddr::V6(a)), ports)
        } else {
            match rest.split(':').count() {
                2 => (None, rest),
                3 => {
                    let (a, ports) = rest.split_once(':').expect("three parts");
                    let a: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
                    (Some(IpAddr::V4(a)), ports)
                }
                _ => return Err(bad("expected [HOST_IP:]HOST_PORT:PORT[/tcp|udp]")),
            }
        };
        let (h, p) = ports
            .split_once(':')
            .ok_or(bad("expected HOST_PORT:PORT"))?;
        let port = |x: &str| -> Result<u16, UserNetError> {
            match x.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad("a port is a number from 1 to 65535")),
                Ok(n) => Ok(n),
            }
        };
        Ok(PortForward {
            host_addr: addr,
            host_port: port(h)?,
            port: port(p)?,
            proto,
        })
    }
}

impl fmt::Display for PortForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_addr {
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:")?,
            Some(IpAddr::V4(a)) => write!(f, "{a}:")?,
            None => {}
        }
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        write!(f, "{}:{}/{proto}", self.host_port, self.port)
    }
}

/// A range of destination addresses refused inside the sandbox ([`UserNet::deny`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The first address of the range.
    pub addr: IpAddr,
    /// The prefix length (0-32 for IPv4, 0-128 for IPv6).
    pub prefix: u8,
}

impl IpNet {
    /// `addr/prefix`.
    pub fn new(addr: IpAddr, prefix: u8) -> IpNet {
        IpNet { addr, prefix }
    }

    fn max_prefix(&self) -> u8 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

impl From<IpAddr> for IpNet {
    fn from(addr: IpAddr) -> IpNet {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        IpNet { addr, prefix }
    }
}

/// `ADDR` or `ADDR/PREFIX`.
impl FromStr for IpNet {
    type Err = UserNetError;

    fn from_str(s: &str) -> Result<IpNet, UserNetError> {
        let bad = |what: &'static str| UserNetError::InvalidNet {
            spec: s.to_owned(),
            what,
        };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad("not an IP address"))?;
        let mut net = IpNet::from(addr);
        if let Some(p) = p {
            net.prefix = p.parse().map_err(|_| bad("the prefix is a number"))?;
            if net.prefix > net.max_prefix() {
                return Err(bad("the prefix is too long for the address"));
            }
        }
        Ok(net)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The options of [`Net::User`](crate::Net::User): a private network with outbound access.
///
/// ```no_run
/// use ringfence::{Command, Net, Sandbox, UserNet, PortForward};
///
/// let net = UserNet::new()
///     .forward(PortForward::tcp(8080, 80))   // host :8080 -> sandbox :80
///     .allow_tcp_ports([443, 80]);            // outbound TCP only to these ports
/// let sb = Sandbox::new().pid_ns().net(Net::User(net));
/// let out = sb.output(&Command::new("curl").arg("https://example.org"))?;
/// # Ok::<(), ringfence::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserNet {
    pub(crate) forwards: Vec<PortForward>,
    pub(crate) host_loopback: bool,
    pub(crate) dns_upstream: Vec<IpAddr>,
    pub(crate) deny: Vec<IpNet>,
    pub(crate) tcp_ports: Option<Vec<u16>>,
    pub(crate) no_ipv6: bool,
    pub(crate) stack: Option<Stack>,
    pub(crate) program: Option<PathBuf>,
}

impl UserNet {
    /// Outbound access to everything the host reaches but its loopback; no port forwards.
    pub fn new() -> UserNet {
        UserNet::default()
    }

    /// Forward a host port into the sandbox (`-p` of the CLI).
    #[must_use]
    pub fn forward(mut self, fwd: PortForward) -> UserNet {
        self.forwards.push(fwd);
        self
    }

    /// Let the sandbox reach the host's loopback (`127.0.0.1`, `::1`) at the gateway address
    /// ([`GATEWAY_V4`], [`GATEWAY_V6`]). Off by default: then the gateway address is refused
    /// inside the sandbox, and the sandbox's own `127.0.0.1` is its own.
    #[must_use]
    pub fn host_loopback(mut self, on: bool) -> UserNet {
        self.host_loopback = on;
        self
    }

    /// Answer DNS queries sent to [`DNS_V4`] / [`DNS_V6`] with `resolver` (port 53, as the
    /// host reaches it) instead of the resolvers of the host's `/etc/resolv.conf`. pasta only.
    /// (Some pasta versions, e.g. Debian 12's, send the forwarded queries to the host's own
    /// port 53 whatever the resolver; a resolver on `127.0.0.1` works with every version.)
    #[must_use]
    pub fn dns_upstream(mut self, resolver: IpAddr) -> UserNet {
        self.dns_upstream.push(resolver);
        self
    }

    /// Refuse connections to `net` inside the sandbox (a `prohibit` route: `connect` fails
    /// with `EACCES`, datagrams are not sent). The program cannot change the routes: it has
    /// no `CAP_NET_ADMIN` (unless capabilities are kept with `Sandbox::keep_caps`).
    #[must_use]
    pub fn deny(mut self, net: impl Into<IpNet>) -> UserNet {
        self.deny.push(net.into());
        self
    }

    /// Allow outbound TCP connections only to these destination ports (every address): a
    /// Landlock TCP connect rule (ABI 4, Linux 6.7; reported as
    /// [`LandlockPart::Tcp`](crate::LandlockPart::Tcp) and subject to the sandbox's
    /// [`Compat`](crate::Compat)).
    /// Binding ports is not restricted by this. It merges with the sandbox's own
    /// [`Landlock`](crate::Landlock) rules, if any.
    #[must_use]
    pub fn allow_tcp_ports(mut self, ports: impl IntoIterator<Item = u16>) -> UserNet {
        self.tcp_ports.get_or_insert_with(Vec::new).extend(ports);
        self
    }

    /// No IPv6 in the sandbox, even where the host has it (IPv6 is configured when the host
    /// has an IPv6 default route).
    #[must_use]
    pub fn no_ipv6(mut self) -> UserNet {
        self.no_ipv6 = true;
        self
    }

    /// Use this stack ([`Stack::available`] by default).
    #[must_use]
    pub fn stack(mut self, stack: Stack) -> UserNet {
        self.stack = Some(stack);
        self
    }

    /// Run the stack from this file instead of looking its name up in `PATH`.
    #[must_use]
    pub fn program(mut self, path: impl AsRef<Path>) -> UserNet {
        self.program = Some(path.as_ref().to_owned());
        self
    }

    /// Which stack a sandbox with these options would run, checking that it is installed and
    /// supports the options (what `spawn` checks first).
    pub fn check(&self) -> Result<Stack, UserNetError> {
        self.resolve().map(|(stack, _)| stack)
    }

    /// The TCP ports outbound connections are limited to, if any.
    pub(crate) fn tcp_ports(&self) -> Option<&[u16]> {
        self.tcp_ports.as_deref()
    }

    /// Check what can be checked before anything starts: the stack exists and supports the
    /// options asked for. Returns the stack and the program to run.
    pub(crate) fn resolve(&self) -> Result<(Stack, PathBuf), UserNetError> {
        for d in &self.deny {
            if d.prefix > d.max_prefix() {
                return Err(UserNetError::InvalidNet {
                    spec: d.to_string(),
                    what: "the prefix is too long for the address",
                });
            }
        }
        let stack = match self.stack {
            Some(s) => s,
            None => Stack::available().ok_or(UserNetError::NoStack)?,
        };
        let program = match &self.program {
            Some(p) if is_executable(p) => p.clone(),
            Some(_) => return Err(UserNetError::NotFound { stack }),
            None => find_program(stack.program()).ok_or(UserNetError::NotFound { stack })?,
        };
        if stack == Stack::Slirp4netns {
            if !self.forwards.is_empty() {
                return Err(UserNetError::Unsupported {
                    stack,
                    what: "port forwards",
                });
            }
            if !self.dns_upstream.is_empty() {
                return Err(UserNetError::Unsupported {
                    stack,
                    what: "a DNS upstream",
                });
            }
        }
        Ok((stack, program))
    }

    /// The netlink messages that install this configuration's `prohibit` routes: the
    /// [`deny`](Self::deny) list and, without host loopback, the gateway addresses. Sent by
    /// the sandboxed process after the stack has configured the interface.
    pub(crate) fn route_messages(&self, ipv6: bool) -> Vec<u8> {
        let mut nets = self.deny.clone();
        if !self.host_loopback {
            nets.push(IpNet::from(IpAddr::V4(GATEWAY_V4)));
            if ipv6 {
                nets.push(IpNet::from(IpAddr::V6(GATEWAY_V6)));
            }
        }
        let mut out = Vec::new();
        for (seq, net) in nets.iter().enumerate() {
            if net.addr.is_ipv6() && !ipv6 {
                // No IPv6 in the sandbox: nothing to refuse.
                continue;
            }
            prohibit_route(&mut out, seq as u32 + 1, net);
        }
        out
    }
}

/// Append an `RTM_NEWROUTE` message for a `prohibit` route to `net` (main table), asking for an
/// acknowledgement.
fn prohibit_route(out: &mut Vec<u8>, seq: u32, net: &IpNet) {
    const RTM_NEWROUTE: u16 = 24;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_ACK: u16 = 0x4;
    const NLM_F_CREATE: u16 = 0x400;
    const NLM_F_REPLACE: u16 = 0x100;
    const RTA_DST: u16 = 1;
    const RT_TABLE_MAIN: u8 = 254;
    const RTPROT_STATIC: u8 = 4;
    const RT_SCOPE_UNIVERSE: u8 = 0;
    const RTN_PROHIBIT: u8 = 8;
    let (family, addr): (u8, Vec<u8>) = match net.addr {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    let rta_len = 4 + addr.len();
    let len = 16 + 12 + rta_len;
    let start = out.len();
    // struct nlmsghdr
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
    out.extend_from_slice(
        &(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE).to_ne_bytes(),
    );
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    // struct rtmsg
    out.extend_from_slice(&[
        family,
        net.prefix,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_STATIC,
        RT_SCOPE_UNIVERSE,
        RTN_PROHIBIT,
    ]);
    out.extend_from_slice(&0u32.to_ne_bytes());
    // RTA_DST
    out.extend_from_slice(&(rta_len as u16).to_ne_bytes());
    out.extend_from_slice(&RTA_DST.to_ne_bytes());
    out.extend_from_slice(&addr);
    debug_assert_eq!(out.len() - start, len);
    // Messages are 4-byte aligned; these already are (4 or 16 address bytes).
}

/// What went wrong with [`Net::User`](crate::Net::User).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum UserNetError {
    /// Neither pasta nor slirp4netns is installed.
    #[error(
        "no user-mode network stack found in PATH: install pasta (Debian/Ubuntu: apt-get install passt; Fedora: dnf install passt) or slirp4netns"
    )]
    NoStack,
    /// The chosen stack is not installed.
    #[error("{stack} not found in PATH: install it (pasta is in the package passt)")]
    NotFound {
        /// The stack asked for.
        stack: Stack,
    },
    /// The chosen stack cannot do what was asked.
    #[error("{stack} does not support {what}: use pasta (package passt)")]
    Unsupported {
        /// The stack.
        stack: Stack,
        /// The option it lacks.
        what: &'static str,
    },
    /// A port forward could not be parsed.
    #[error("invalid port forward {spec:?}: {what}")]
    InvalidForward {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        what: &'static str,
    },
    /// An address range could not be parsed.
    #[error("invalid address range {spec:?}: {what}")]
    InvalidNet {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        what: &'static str,
    },
    /// Starting the stack failed.
    #[error("could not start {stack}: {source}")]
    Start {
        /// The stack.
        stack: Stack,
        /// Why.
        source: std::io::Error,
    },
    /// The stack exited (or timed out) before the namespace was set up.
    #[error("{stack} failed to set up the sandbox's network: {message}{}", hint(.message))]
    Failed {
        /// The stack.
        stack: Stack,
        /// What it said on its standard error, or how it ended.
        message: String,
    },
}

fn hint(message: &str) -> &'static str {
    if message.contains("tun") {
        "; hint: the stack needs /dev/net/tun, readable and writable by the caller (mode 0666 on most distributions)"
    } else {
        ""
    }
}

/// `name` in the caller's `PATH` (or the usual system directories when there is none).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"));
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the host has an IPv6 default route (pasta needs one to enable IPv6).
pub(crate) fn host_has_ipv6() -> bool {
    // Each line: dest(32 hex) prefix(2 hex) ...; the default route is ::/0.
    std::fs::read_to_string("/proc/net/ipv6_route").is_ok_and(|t| {
        t.lines().any(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some("00000000000000000000000000000000") && f.next() == Some("00")
        })
    })
}

/// A running stack, killed and reaped when dropped.
#[derive(Debug)]
pub(crate) struct RunningStack {
    child: std::process::Child,
    stack: Stack,
    /// slirp4netns's `--exit-fd` pipe: it exits when this end closes.
    exit_w: Option<OwnedFd>,
}

impl RunningStack {
    /// The stack's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Which stack this is.
    pub(crate) fn stack(&self) -> Stack {
        self.stack
    }
}

impl Drop for RunningStack {
    fn drop(&mut self) {
        self.exit_w = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Open `/proc/PID/ns/NAME`.
fn open_ns(pid: libc::pid_t, name: &str) -> std::io::Result<OwnedFd> {
    Ok(std::fs::File::open(format!("/proc/{pid}/ns/{name}"))?.into())
}

/// Start the stack for the network namespace of `pid` (the sandbox's first process, not yet
/// released), whose user namespace it enters too when `userns` is set. Returns once the stack
/// has configured the interface.
pub(crate) fn start(
    cfg: &UserNet,
    stack: Stack,
    program: &Path,
    pid: libc::pid_t,
    userns: bool,
    ipv6: bool,
) -> Result<RunningStack, UserNetError> {
    let io = |source: std::io::Error| UserNetError::Start { stack, source };
    let netns = open_ns(pid, "net").map_err(io)?;
    let user = if userns {
        Some(open_ns(pid, "user").map_err(io)?)
    } else {
        None
    };
    // Readiness: pasta writes its pid file (a pipe here) once the namespace is configured;
    // slirp4netns writes "1" to its ready descriptor.
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| io(std::io::Error::from(e)))?;
    // slirp4netns exits when this pipe's write end (ours) is closed.
    let (exit_r, exit_w) = if stack == Stack::Slirp4netns {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| io(std::io::Error::from(e)))?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    // Its messages, read if it fails (a file, so that it never blocks on a full pipe).
    let log: OwnedFd = nix::sys::memfd::memfd_create(
        c"ringfence-usernet-log",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )
    .map_err(|e| io(std::io::Error::from(e)))?;

    let fdpath = |fd: &OwnedFd| format!("/proc/self/fd/{}", fd.as_raw_fd());
    let mut cmd = std::process::Command::new(program);
    let euid = nix::unistd::geteuid().as_raw();
    match stack {
        Stack::Pasta => {
            cmd.args(["-f", "-q", "--config-net", "-I", "eth0"]);
            if euid == 0 {
                // pasta started by root drops to "nobody" first and then cannot enter the
                // sandbox's namespaces (nor keep its death signal): stay root; it drops its
                // capabilities but those it needs and confines itself (seccomp, namespaces).
                cmd.args(["--runas", "0:0"]);
            }
            cmd.args(["-a", &SANDBOX_V4.to_string(), "-n", "24"]);
            cmd.args(["-g", &GATEWAY_V4.to_string()]);
            cmd.args(["--dns-forward", &DNS_V4.to_string()]);
            if ipv6 {
                cmd.args(["-a", &SANDBOX_V6.to_string()]);
                cmd.args(["-g", &GATEWAY_V6.to_string()]);
                cmd.args(["--dns-forward", &DNS_V6.to_string()]);
            } else {
                cmd.arg("-4");
            }
            for d in &cfg.dns_upstream {
                cmd.args(["-D", &d.to_string()]);
            }
            if !cfg.host_loopback {
                cmd.arg("--no-map-gw");
            }
            // No automatic forwards in either direction: only those asked for.
            let specs = |proto: Proto| -> String {
                let s: Vec<String> = cfg
                    .forwards
                    .iter()
                    .filter(|f| f.proto == proto)
                    .map(PortForward::pasta_spec)
                    .collect();
                if s.is_empty() {
                    "none".to_owned()
                } else {
                    s.join(",")
                }
            };
            cmd.args(["-t", &specs(Proto::Tcp), "-u", &specs(Proto::Udp)]);
            cmd.args(["-T", "none", "-U", "none"]);
            cmd.args(["-P", &fdpath(&ready_w)]);
            match &user {
                Some(u) => {
                    cmd.args(["--userns", &fdpath(u)]);
                    cmd.args(["--netns", &fdpath(&netns)]);
                }
                None => {
                    cmd.args(["--netns", &fdpath(&netns), "--netns-only"]);
                }
            }
        }
        Stack::Slirp4netns => {
            cmd.args(["--configure", "--mtu=65520"]);
            cmd.arg(format!("--ready-fd={}", ready_w.as_raw_fd()));
            if let Some(r) = &exit_r {
                cmd.arg(format!("--exit-fd={}", r.as_raw_fd()));
            }
            if !cfg.host_loopback {
                cmd.arg("--disable-host-loopback");
            }
            if ipv6 {
                cmd.arg("--enable-ipv6");
            }
            cmd.arg("--netns-type=path");
            if let Some(u) = &user {
                cmd.arg(format!("--userns-path={}", fdpath(u)));
            }
            cmd.args([fdpath(&netns), "eth0".to_owned()]);
        }
    }
    let inherit: Vec<RawFd> = [Some(&netns), user.as_ref(), Some(&ready_w), exit_r.as_ref()]
        .into_iter()
        .flatten()
        .map(|f| f.as_raw_fd())
        .collect();
    let log_dup = log.try_clone().map_err(io)?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(log_dup.try_clone().map_err(io)?))
        .stderr(std::process::Stdio::from(log_dup));
    cmd.env_remove("LD_PRELOAD");
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (prctl, getppid, fcntl) on data captured before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The parent died before the death signal was armed.
                libc::_exit(1);
            }
            for &fd in &inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(io)?;
    drop(ready_w);
    drop(exit_r);
    drop(netns);
    drop(user);
    let mut running = RunningStack {
        child,
        stack,
        exit_w: None,
    };
    let failed = |running: &mut RunningStack, why: String| {
        let _ = running.child.kill();
        let status = running.child.wait();
        let mut text = String::new();
        let mut f = std::fs::File::from(log.try_clone().expect("dup the log"));
        use std::io::Seek;
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = f.take(4096).read_to_string(&mut text);
        let text: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("Failed to send") && !l.trim().is_empty())
            .collect();
        let message = if text.is_empty() {
            match status {
                Ok(s) => format!("{why} ({s})"),
                Err(_) => why,
            }
        } else {
            text.join("; ")
        };
        UserNetError::Failed { stack, message }
    };
    match wait_ready(&ready_r, READY_TIMEOUT) {
        Ok(true) => {}
        Ok(false) => return Err(failed(&mut running, "it exited".to_owned())),
        Err(why) => return Err(failed(&mut running, why)),
    }
    running.exit_w = exit_w;
    Ok(running)
}

/// Wait until the stack reports readiness on `ready` (some bytes: `Ok(true)`), or closes it
/// without (`Ok(false)`: it exited), or `timeout` passes.
fn wait_ready(ready: &OwnedFd, timeout: Duration) -> Result<bool, String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("not ready after {} s", timeout.as_secs()));
        }
        let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) => continue,
            Ok(_) => {
                let mut buf = [0u8; 64];
                return match nix::unistd::read(ready, &mut buf) {
                    Ok(0) => Ok(false),
                    Ok(_) => Ok(true),
                    Err(Errno::EINTR) => continue,
                    Err(e) => Err(format!("reading its readiness: {e}")),
                };
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse() {
        let f: PortForward = "8080:80".parse().unwrap();
        assert_eq!(f, PortForward::tcp(8080, 80));
        let f: PortForward = "127.0.0.1:8080:80/udp".parse().unwrap();
        assert_eq!(
            f,
            PortForward::udp(8080, 80).on(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        let f: PortForward = "[::1]:8080:80/tcp".parse().unwrap();
        assert_eq!(f.host_addr, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(f.to_string(), "[::1]:8080:80/tcp");
        assert_eq!(f.pasta_spec(), "::1/8080:80");
        for bad in [
            "",
            "80",
            "0:80",
            "80:70000",
            "x:80",
            "1.2.3:80:80",
            "80:80/sctp",
            "::1:80:80",
            "[::1]80:80",
            "a:b:c:d",
        ] {
            assert!(bad.parse::<PortForward>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn nets_parse() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert_eq!(n.prefix, 8);
        let n: IpNet = "::1".parse().unwrap();
        assert_eq!(n.prefix, 128);
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("10.0.0/8".parse::<IpNet>().is_err());
    }

    #[test]
    fn route_messages_are_well_formed() {
        let m = UserNet::new()
            .deny("192.0.2.0/24".parse::<IpNet>().unwrap())
            .route_messages(true);
        // 192.0.2.0/24, the IPv4 gateway, the IPv6 gateway.
        let lens = [16 + 12 + 8, 16 + 12 + 8, 16 + 12 + 20];
        assert_eq!(m.len(), lens.iter().sum::<usize>());
        let first = u32::from_ne_bytes(m[0..4].try_into().unwrap());
        assert_eq!(first as usize, lens[0]);
        assert_eq!(m[16], libc::AF_INET as u8);
        assert_eq!(m[17], 24);
        assert_eq!(m[23], 8);
        assert!(
            UserNet::new()
                .host_loopback(true)
                .route_messages(false)
                .is_empty()
        );
    }
}
