//! Pods in a few lines: a pod (a holder process owning a network, IPC and UTS namespace and a
//! parent cgroup) and two sandboxes in it that share its hostname and its SysV IPC, each with
//! its own filesystem view and pid namespace. One member leaves a shared-memory segment; the
//! other finds it. The host sees neither.
//!
//! ```sh
//! cargo run --example pod
//! ```

use ringfence::{Command, Pod, Sandbox};

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

/// Start a pod, run two members in it, end it.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut pod = Pod::new().hostname("podhost").spawn()?;
    println!("pod holder: pid {}", pod.id());
    println!("{}", pod.report());

    let first = Sandbox::isolated()
        .pod(&pod)
        .output(&sh("echo \"first: $(hostname), pid $$\"; ipcmk -M 4096"))?;
    print!("{}", String::from_utf8_lossy(&first.stdout));
    let second = Sandbox::isolated().pod(&pod).output(&sh(
        "echo \"second: $(hostname), pid $$\"; ipcs -m | grep -c 4096",
    ))?;
    print!("{}", String::from_utf8_lossy(&second.stdout));
    if !first.success() || !second.success() {
        return Err(format!(
            "a member failed: {}{}",
            String::from_utf8_lossy(&first.stderr),
            String::from_utf8_lossy(&second.stderr)
        )
        .into());
    }
    if !String::from_utf8_lossy(&second.stdout).ends_with("1\n") {
        return Err("the second member did not see the first one's segment".into());
    }
    // Ends the holder and every member still running; removes the pod's cgroup.
    pod.kill()?;
    println!("pod ended");
    Ok(())
}
