//! The examples (`examples/*.rs`) run as tests: each is included as a module and its `main`
//! called, so an example that stops working fails the suite.

#[path = "../examples/plugin_host.rs"]
mod plugin_host;

#[test]
fn plugin_host() {
    plugin_host::main().unwrap();
}

#[path = "../examples/ci_runner.rs"]
mod ci_runner;

#[test]
fn ci_runner() {
    if !ringfence_can_isolate() {
        return;
    }
    ci_runner::main().unwrap();
}

#[path = "../examples/pod.rs"]
mod pod;

#[test]
fn pod() {
    if !ringfence_can_isolate() {
        return;
    }
    pod::main().unwrap();
}

/// Pods need namespaces: root, or user namespaces for an ordinary user.
fn ringfence_can_isolate() -> bool {
    // SAFETY: geteuid cannot fail.
    let ok = unsafe { libc::geteuid() } == 0 || ringfence::probe().user_ns.is_ok();
    if !ok {
        println!("SKIPPED: needs root or user namespaces");
    }
    ok
}

#[path = "../examples/fuzz_harness.rs"]
mod fuzz_harness;

/// 1000 runs (the example's default) through a warm `Sandbox::isolated()`.
#[test]
fn fuzz_harness() {
    if !ringfence_can_isolate() {
        return;
    }
    fuzz_harness::main().unwrap();
}
