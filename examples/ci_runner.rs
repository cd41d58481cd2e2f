//! A CI job with a service next to it, the way CI runners start a job container and its
//! service containers: both run in one pod, so they talk over the pod's own `127.0.0.1` — and
//! nothing else: the pod has no route to the host's network. The job runs in the pod with a
//! timeout; when it ends, dropping the pod ends the service too.
//!
//! ```sh
//! cargo run --example ci_runner
//! ```
//!
//! The "service" is a tiny key-value server and the "job" its test suite, both Python, so the
//! example needs `python3`. As an ordinary user the pod lives in a user namespace; its memory
//! limit needs cgroups and is skipped (reported) where they cannot be created.

use std::path::Path;
use std::time::Duration;

use ringfence::{Command, Compat, Layer, Pod, Sandbox, Size, Stdio};

/// A key-value service on 127.0.0.1:6380: `SET k v`, `GET k`, one command per connection.
const SERVICE: &str = r#"
import socket
store = {}
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 6380))
s.listen(16)
while True:
    c, _ = s.accept()
    words = c.recv(1024).decode().split()
    if words[:1] == ["SET"]:
        store[words[1]] = words[2]
        c.sendall(b"OK")
    elif words[:1] == ["GET"]:
        c.sendall(store.get(words[1], "nil").encode())
    c.close()
"#;

/// The job: waits for the service, tests it, then checks that the host is out of reach.
const JOB: &str = r#"
import socket, sys, time
def call(line):
    for _ in range(500):
        try:
            c = socket.create_connection(("127.0.0.1", 6380), timeout=1)
            break
        except ConnectionRefusedError:
            time.sleep(0.01)
    c.sendall(line.encode())
    return c.recv(1024).decode()
assert call("SET build green") == "OK"
assert call("GET build") == "green"
print("service test: passed")
try:
    socket.create_connection(("1.1.1.1", 53), timeout=1)
    print("the internet is reachable")
    sys.exit(1)
except OSError as e:
    print("outside network: unreachable (%s)" % e.strerror)
"#;

fn python(code: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", code]);
    cmd
}

/// Run the service and the job in one pod and report how the job went.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !Path::new("/usr/bin/python3").exists() {
        println!("SKIPPED: python3 is not installed, and the service and job are Python");
        return Ok(());
    }
    let pod = Pod::new()
        .hostname("ci")
        .memory_limit(Size::mib(512))
        .pids_limit(256)
        // A pod's limits need a cgroup of its own: without one, start anyway and say so.
        .compat(Compat::BestEffort)
        .spawn()?;
    if !pod.report().is_enforced(Layer::Cgroup) {
        println!("note: no cgroup for the pod here; its memory and pids limits are not enforced");
    }
    let member = || Sandbox::isolated().pod(&pod);

    let mut service = python(SERVICE);
    service.stdout(Stdio::Null);
    let mut service = member().spawn(&service)?;
    println!("service started (pid {})", service.id());

    let job = member()
        .timeout(Duration::from_secs(60))
        .output(&python(JOB))?;
    print!("{}", String::from_utf8_lossy(&job.stdout));
    eprint!("{}", String::from_utf8_lossy(&job.stderr));
    println!(
        "job: {} after {:.0?} ({} ms of CPU)",
        if job.success() { "passed" } else { "FAILED" },
        job.usage.wall,
        (job.usage.user_cpu + job.usage.sys_cpu).as_millis()
    );
    if let Some(u) = pod.usage() {
        println!(
            "pod: peak memory {} KiB",
            u.peak_memory.map_or("?".into(), |b| (b / 1024).to_string())
        );
    }
    // Dropping the pod kills the service (and anything else left in the pod).
    drop(pod);
    let ended = service.wait()?;
    println!("service ended with the pod: {:?}", ended.status);
    if !job.success() {
        return Err("the CI job failed".into());
    }
    if ended.success() {
        return Err("the service was still running when the pod ended".into());
    }
    Ok(())
}
