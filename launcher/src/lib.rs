//! Capsa's launcher: runs a bundle in an unprivileged sandbox, as if installed.
//!
//! The parent ([`run`]) opens the bundle as hostile input, unpacks its layers once into a
//! per-user cache ([`cache`]), and turns the manifest and the user's overrides into a validated
//! [`spec::SandboxSpec`] and then a [`plan::Plan`] of plain data; it compiles the seccomp
//! filters ([`seccomp`]). The child after clone ([`child`]) only walks the plan, in bubblewrap's
//! order: uid/gid maps, rslave, overlay root and mounts, pivot_root, pid-1 reaper, capabilities,
//! no_new_privs, Landlock, close-on-exec, seccomp, exec. `--report` prints what each layer
//! really enforces ([`report`]). All unsafe code is in [`sys`].

pub mod cache;
pub mod child;
pub mod error;
pub mod host;
pub mod landlock;
pub mod mounts;
pub mod plan;
pub mod report;
pub mod run;
pub mod seccomp;
pub mod spec;
pub mod state;
mod sys;

pub use error::{ChildError, LaunchError};
pub use report::Report;
pub use run::{Child, Command, ExitStatus};
pub use spec::Overrides;
