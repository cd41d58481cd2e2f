//! Prepares `cli/src/run.rs` for `include!` in `src/lib.rs` (see there why it is included
//! rather than loaded with `#[path]`): inner doc comments and inner attributes are only
//! allowed at the top of a real module file, so they are dropped from the copy.

use std::path::PathBuf;

fn main() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cli/src/run.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    let text = std::fs::read_to_string(&src).expect("read cli/src/run.rs");
    let kept: String = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("//!") || t.starts_with("#!["))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("cli_run.rs");
    std::fs::write(out, kept).expect("write the copy of run.rs");
}
