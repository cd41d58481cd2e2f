//! Landlock: unprivileged restrictions on the files and TCP ports the sandboxed program may use.
