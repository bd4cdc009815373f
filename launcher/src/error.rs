//! Launcher errors. `LaunchError` is what `capsa run` reports (exit 125 for launcher failures,
//! 126 for a command that cannot be executed, 127 for one not found, as podman and env do);
//! `ChildError` is what the sandboxed child sends back over its CLOEXEC pipe when a setup step
//! fails. Hints that turn an errno into advice are made here, at the edge.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A failed step in the child, sent to the parent as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{step}: {call}{} failed: {}", path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(), std::io::Error::from_raw_os_error(*errno))]
pub struct ChildError {
    /// What the child was doing, e.g. `mount the app's root`.
    pub step: String,
    /// The system call, e.g. `mount(overlay)`.
    pub call: String,
    pub path: Option<String>,
    pub errno: i32,
}

impl ChildError {
    pub fn new(step: &str, call: &str, path: Option<&std::path::Path>, errno: i32) -> Self {
        Self {
            step: step.into(),
            call: call.into(),
            path: path.map(|p| p.display().to_string()),
            errno,
        }
    }
}

/// Everything `capsa run` can fail with before or while starting the app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot open bundle {path}")]
    Bundle {
        path: PathBuf,
        source: bundle_format::Error,
    },
    #[error("the bundle is for {bundle} and this machine is {host}")]
    Arch { bundle: String, host: String },
    #[error("cannot prepare {path}")]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("layer cache entry {path} is unusable")]
    Cache {
        path: PathBuf,
        source: bundle_format::Error,
    },
    #[error("{call} failed")]
    Sys {
        call: &'static str,
        source: nix::Error,
    },
    #[error("cannot set up the sandbox: {0}")]
    Child(ChildError),
    #[error("Landlock is required for this app, but the kernel {0}")]
    LandlockRequired(String),
    #[error("cannot compile the seccomp filter")]
    Seccomp(String),
    #[error("{program}: command not found in the app")]
    NotFound { program: String },
    #[error("{program}: cannot execute: {}", std::io::Error::from_raw_os_error(*errno))]
    CannotExecute { program: String, errno: i32 },
}

impl LaunchError {
    /// The exit status `capsa run` ends with (podman/env convention).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotFound { .. } => 127,
            Self::CannotExecute { .. } => 126,
            _ => 125,
        }
    }

    /// Advice for errors a user can fix, if any.
    pub fn hint(&self) -> Option<String> {
        let (call, errno) = match self {
            Self::Child(c) => (c.call.as_str(), c.errno),
            Self::Sys { call, source } => (*call, *source as i32),
            _ => return None,
        };
        let userns = "unprivileged user namespaces are disabled or restricted on this system. On Ubuntu 23.10 and later: \
                      `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0` (or add an AppArmor profile allowing `userns` for capsa); \
                      elsewhere check `sysctl user.max_user_namespaces` (must be > 0) and `kernel.unprivileged_userns_clone` (must be 1)";
        match (call, errno) {
            ("clone", libc::EPERM | libc::EINVAL | libc::ENOSPC | libc::EUSERS) => Some(userns.into()),
            ("write uid_map" | "write gid_map" | "write setgroups", libc::EPERM | libc::EACCES) => Some(userns.into()),
            ("mount(overlay)", libc::EINVAL | libc::EPERM | libc::ENODEV) => Some(
                "overlayfs cannot be mounted in a user namespace here (it needs Linux 5.11 or later, and a file system for the state directory that supports user xattrs)".into(),
            ),
            ("mount(proc)", libc::EPERM) => Some("a fresh /proc cannot be mounted: is /proc partly hidden by other mounts (as in some containers)?".into()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_become_hints_and_exit_codes() {
        let userns = LaunchError::Child(ChildError::new(
            "map the user's ids",
            "write uid_map",
            Some(std::path::Path::new("/proc/self/uid_map")),
            libc::EPERM,
        ));
        assert!(userns
            .hint()
            .unwrap()
            .contains("apparmor_restrict_unprivileged_userns"));
        assert_eq!(userns.exit_code(), 125);
        let clone = LaunchError::Sys {
            call: "clone",
            source: nix::Error::ENOSPC,
        };
        assert!(clone.hint().unwrap().contains("max_user_namespaces"));
        let overlay = LaunchError::Child(ChildError::new(
            "mount",
            "mount(overlay)",
            None,
            libc::EINVAL,
        ));
        assert!(overlay.hint().unwrap().contains("5.11"));
        assert_eq!(
            LaunchError::NotFound {
                program: "/x".into()
            }
            .exit_code(),
            127
        );
        assert_eq!(
            LaunchError::CannotExecute {
                program: "/x".into(),
                errno: libc::EACCES
            }
            .exit_code(),
            126
        );
        assert!(LaunchError::Usage("x".into()).hint().is_none());
    }
}
