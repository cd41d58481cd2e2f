//! ringfence: run untrusted commands in a sandbox built from Linux kernel primitives.
