//! Arbitrary filesystem options (paths with `..`, `.`, `//`, NUL bytes, relative paths, paths
//! longer than PATH_MAX, host paths that exist and that do not) → `FsConfig::prepare`, the
//! validation the parent runs before a sandbox starts: never a panic, and no escape:
//!
//! - an option whose destination is relative, contains `..` or a NUL byte, or is 4096 bytes
//!   or longer, makes it fail (unless it is an optional bind whose source is missing, which is
//!   skipped altogether);
//! - a bind or root whose source is relative or contains a NUL byte makes it fail;
//! - every step of an accepted plan has a destination relative to the new root without `..`,
//!   and every bind source is absolute.
//!
//! `src/fs.rs` is compiled into the fuzz helper library (the library has no public
//! validation entry point); the types are its own, the errors the library's public ones.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: ringfence_fuzz::mount_spec::Input| {
    ringfence_fuzz::mount_spec::check(input);
});
