//! The examples (`examples/*.rs`) run as tests: each is included as a module and its `main`
//! called, so an example that stops working fails the suite.

#[path = "../examples/plugin_host.rs"]
mod plugin_host;

#[test]
fn plugin_host() {
    plugin_host::main().unwrap();
}
