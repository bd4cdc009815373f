//! Capsa's launcher: verifies a bundle, unpacks its layers once into a per-user cache, and runs
//! the app in an unprivileged sandbox (user, mount, pid, ipc, uts and net namespaces; overlayfs
//! root; Landlock; seccomp; no capabilities; no_new_privs).
//!
//! Not implemented yet: `capsa run` is tracked by its own issue. This crate is the only one
//! that will hold unsafe code, kept in one small module.
