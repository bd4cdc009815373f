//! Capsa's launcher: runs an app in an unprivileged sandbox, as if installed.
//!
//! The public API is small and named after `std::process`: [`App`] (a bundle file opened as
//! hostile input, or an installed app), [`Command`] (the app with its grants and options),
//! [`Child`], [`ExitStatus`] and the [`Report`] of what is enforced. Inside, the parent turns
//! the manifest, the grants (merged by [`userdata::policy`]) and the run's options into a
//! validated `spec`, then a complete `plan` of plain data (namespaces, root mode, mounts with
//! their flags, the Landlock rule set), and compiles the `seccomp` filters; the `child` after
//! clone only walks the plan, in bubblewrap's order: uid/gid maps, rslave, overlay root and
//! mounts, pivot_root, pid-1 reaper, capabilities, no_new_privs, Landlock, close-on-exec,
//! seccomp, exec. All unsafe code is in `sys`.

mod app;
mod child;
mod error;
mod fallback;
mod host;
mod landlock;
mod missing;
mod mounts;
mod plan;
mod report;
mod run;
mod seccomp;
mod spec;
mod stdio;
mod sys;
mod wait;

pub use error::{Call, ChildError, LaunchError};
pub use landlock::{Enforced, Kernel, Missing, Outcome};
pub use missing::{Lookup, MissingPath, TraceOutcome};
pub use report::{Claims, Layers, Network, Report, SocketRefusal};
pub use run::{App, Before, Child, Command, ExitStatus, Note, Replaced, Source};
pub use spec::RunOptions;
pub use userdata::policy::{Changes, Grants, Key, Permission};
