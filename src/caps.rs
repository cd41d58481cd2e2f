//! Capabilities: which ones a sandbox keeps (by default none), and the raw, allocation-free
//! calls the sandboxed process uses to drop the rest.
//!
//! The `caps` crate's `Capability` enum is the public type. Its set manipulation functions
//! allocate (and format their errors), so the post-clone code uses the raw `capset`/`prctl`
//! calls below instead, which return the errno.

pub use ::caps::Capability;

use nix::errno::Errno;

use crate::probe::{CapData, libc_cap_header};

pub(crate) const CAP_SETPCAP: u32 = 8;

/// Whether `cap` is in the calling thread's effective set. Async-signal-safe.
pub(crate) fn effective_has(cap: u32) -> Result<bool, Errno> {
    let mut hdr = libc_cap_header();
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two `CapData` for version 3; both live on this stack frame.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(Errno::last());
    }
    let word = if cap < 32 { data[0] } else { data[1] };
    Ok(word.effective & (1 << (cap % 32)) != 0)
}

/// Set effective, permitted and inheritable to `keep`. Async-signal-safe.
pub(crate) fn capset_all(keep: u64) -> Result<(), Errno> {
    let mut hdr = libc_cap_header();
    let lo = keep as u32;
    let hi = (keep >> 32) as u32;
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: lo,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: hi,
        },
    ];
    // SAFETY: capset reads two `CapData` for version 3 from this stack frame.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
    if rc != 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Drop every capability not in `keep` from the bounding set, up to `last_cap`.
/// Async-signal-safe. Needs `CAP_SETPCAP`.
pub(crate) fn drop_bounding(keep: u64, last_cap: u32) -> Result<(), Errno> {
    for cap in 0..=last_cap.min(63) {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: plain prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            let e = Errno::last();
            // A capability this kernel does not know.
            if e != Errno::EINVAL {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Clear the ambient set, then raise the capabilities in `keep`. Async-signal-safe.
pub(crate) fn set_ambient(keep: u64, last_cap: u32) -> Result<(), Errno> {
    // SAFETY: plain prctl with integer arguments.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        let e = Errno::last();
        // Kernels before 4.3 have no ambient set: nothing to clear.
        if e != Errno::EINVAL {
            return Err(e);
        }
        return if keep == 0 { Ok(()) } else { Err(e) };
    }
    for cap in 0..=last_cap.min(63) {
        if keep & (1 << cap) == 0 {
            continue;
        }
        // SAFETY: plain prctl with integer arguments.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        if rc != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_indices_fit_the_mask() {
        for c in ::caps::all() {
            assert!(c.index() < 64);
        }
        assert_eq!(Capability::CAP_SETPCAP.index() as u32, CAP_SETPCAP);
    }
}
