//! Launcher errors. `LaunchError` is what `capsa run` reports (exit 125 for launcher failures,
//! 126 for a command that cannot be executed, 127 for one not found, as podman and env do);
//! `ChildError` is what the sandboxed child sends back over its CLOEXEC pipe when a setup step
//! fails, with the failed system call as a [`Call`]. Hints that turn an errno into advice
//! match on those types, here at the edge.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The system call (or file operation) a child step failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    PrctlPdeathsig,
    PrctlNoNewPrivs,
    WriteSetgroups,
    WriteUidMap,
    WriteGidMap,
    MountSlave,
    MountTmpfs,
    MountOverlay,
    MountBind,
    Remount,
    MountProc,
    MountDevpts,
    MountMask,
    Open,
    Stat,
    /// The object opened is not the one checked before the sandbox started.
    Verify,
    Lstat,
    /// A symlink where the launcher must create or cross a directory.
    Symlink,
    Mkdir,
    Create,
    MakeSymlink,
    Write,
    Chdir,
    PivotRoot,
    UmountOldRoot,
    LoopbackUp,
    Fork,
    Sigprocmask,
    Signal,
    Sigwaitinfo,
    Capset,
    Landlock,
    CloseRange,
    Seccomp,
    /// `--trace-missing`: asking to be traced by pid 1.
    PtraceTraceme,
    /// `--trace-missing`: the trace filter, added after the sandbox's own.
    TraceFilter,
    Execve,
}

impl Call {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrctlPdeathsig => "prctl(PR_SET_PDEATHSIG)",
            Self::PrctlNoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Self::WriteSetgroups => "write setgroups",
            Self::WriteUidMap => "write uid_map",
            Self::WriteGidMap => "write gid_map",
            Self::MountSlave => "mount(MS_SLAVE)",
            Self::MountTmpfs => "mount(tmpfs)",
            Self::MountOverlay => "mount(overlay)",
            Self::MountBind => "mount(bind)",
            Self::Remount => "mount(remount)",
            Self::MountProc => "mount(proc)",
            Self::MountDevpts => "mount(devpts)",
            Self::MountMask => "mount(tmpfs, ro)",
            Self::Open => "openat2",
            Self::Stat => "fstat",
            Self::Verify => "fstat (the file changed since it was checked)",
            Self::Lstat => "lstat",
            Self::Symlink => "lstat (the app has a symlink here)",
            Self::Mkdir => "mkdir",
            Self::Create => "create",
            Self::MakeSymlink => "symlink",
            Self::Write => "write",
            Self::Chdir => "chdir",
            Self::PivotRoot => "pivot_root",
            Self::UmountOldRoot => "umount2(old root)",
            Self::LoopbackUp => "ioctl(SIOCSIFFLAGS)",
            Self::Fork => "fork",
            Self::Sigprocmask => "sigprocmask",
            Self::Signal => "signal(SIGPIPE)",
            Self::Sigwaitinfo => "sigwaitinfo",
            Self::Capset => "capset",
            Self::Landlock => "landlock_restrict_self",
            Self::CloseRange => "close_range",
            Self::Seccomp => "seccomp",
            Self::PtraceTraceme => "ptrace(PTRACE_TRACEME)",
            Self::TraceFilter => "seccomp (trace filter)",
            Self::Execve => "execve",
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed step in the child, sent to the parent as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{step}: {call}{} failed: {}", path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(), std::io::Error::from_raw_os_error(*errno))]
pub struct ChildError {
    /// What the child was doing, e.g. `mount the app's root`.
    pub step: String,
    pub call: Call,
    pub path: Option<String>,
    pub errno: i32,
}

impl ChildError {
    pub fn new(step: &str, call: Call, path: Option<&std::path::Path>, errno: i32) -> Self {
        Self {
            step: step.into(),
            call,
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
    #[error("no such file: {0} (a name with a `/` or ending in .capsa is a bundle file)")]
    NoSuchFile(PathBuf),
    #[error("cannot open {path}")]
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
    #[error(transparent)]
    Data(#[from] userdata::DataError),
    #[error("{grant} is refused: {why}")]
    Refused { grant: String, why: String },
    #[error("--open-files: {path}: {why}")]
    OpenFile { path: PathBuf, why: String },
    #[error("{call} failed")]
    Sys {
        call: &'static str,
        source: nix::Error,
    },
    #[error("cannot set up the sandbox: {0}")]
    Child(ChildError),
    #[error("Landlock is required for this app, but {0}")]
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
        let userns = "unprivileged user namespaces are disabled or restricted on this system. On Ubuntu 23.10 and later: \
                      `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0` (or add an AppArmor profile allowing `userns` for capsa); \
                      elsewhere check `sysctl user.max_user_namespaces` (must be > 0) and `kernel.unprivileged_userns_clone` (must be 1)";
        match self {
            Self::Sys { call: "clone", source } => matches!(
                *source,
                nix::Error::EPERM | nix::Error::EINVAL | nix::Error::ENOSPC | nix::Error::EUSERS
            )
            .then(|| userns.into()),
            Self::Child(c) => match (c.call, c.errno) {
                (Call::WriteUidMap | Call::WriteGidMap | Call::WriteSetgroups, libc::EPERM | libc::EACCES) => Some(userns.into()),
                (Call::MountOverlay, libc::EINVAL | libc::EPERM | libc::ENODEV) => Some(
                    "overlayfs cannot be mounted in a user namespace here (it needs Linux 5.11 or later, and a file system for the state directory that supports user xattrs)".into(),
                ),
                (Call::MountProc, libc::EPERM) => Some("a fresh /proc cannot be mounted: is /proc partly hidden by other mounts (as in some containers)?".into()),
                _ => None,
            },
            Self::Data(userdata::DataError::Unpack { bundle, source, .. })
                if source.is_damage() =>
            {
                Some(damaged(bundle))
            }
            Self::Bundle { path, source } if source.is_damage() => Some(damaged(path)),
            _ => None,
        }
    }
}

/// The advice for a bundle file whose bytes are wrong (the layer cache is not to blame).
fn damaged(bundle: &std::path::Path) -> String {
    format!(
        "the bundle file {0} is damaged (a download cut short, a disk error or a changed byte): \
         get it again or pack it again; `capsa verify {0}` checks every byte",
        bundle.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_become_hints_and_exit_codes() {
        let userns = LaunchError::Child(ChildError::new(
            "map the user's ids",
            Call::WriteUidMap,
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
            Call::MountOverlay,
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
