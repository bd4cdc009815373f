//! Which host paths a grant may expose: checked on the path it resolves to, so a symlink
//! cannot smuggle a reserved tree in.

use std::path::{Path, PathBuf};

use crate::error::LaunchError;

/// Host trees a grant may never expose (at or below): kernel interfaces and the system
/// directories the app has its own copies of.
const RESERVED: &[(&str, &str)] = &[
    (
        "/proc",
        "it is the host's process table (every process, their files and memory maps)",
    ),
    ("/sys", "it is the kernel's device and control interface"),
    ("/dev", "devices are given with device=dri or device=all"),
    (
        "/usr",
        "the app has its own system files and never sees the host's",
    ),
    (
        "/bin",
        "the app has its own system files and never sees the host's",
    ),
    (
        "/sbin",
        "the app has its own system files and never sees the host's",
    ),
    (
        "/lib",
        "the app has its own libraries and never sees the host's",
    ),
    (
        "/lib32",
        "the app has its own libraries and never sees the host's",
    ),
    (
        "/lib64",
        "the app has its own libraries and never sees the host's",
    ),
    (
        "/libx32",
        "the app has its own libraries and never sees the host's",
    ),
    (
        "/etc",
        "the app has its own /etc; give it a file or folder elsewhere",
    ),
];

/// A grant's resolved path, refused when it is a kernel or daemon interface or Capsa's own.
pub(super) fn check(
    grant: &str,
    path: &Path,
    run_user: &Path,
    hidden: &[PathBuf],
) -> Result<(), LaunchError> {
    let refuse = |why: &str| {
        Err(LaunchError::Refused {
            grant: grant.to_owned(),
            why: format!("{} {why}", path.display()),
        })
    };
    if path == Path::new("/") {
        return refuse("is the whole host root");
    }
    if let Some((_, why)) = RESERVED.iter().find(|(r, _)| path.starts_with(r)) {
        return refuse(&format!("is refused: {why}"));
    }
    if run_user.starts_with(path) || path.starts_with(run_user) {
        return refuse(
            "holds the session's sockets (the unfiltered session bus); use socket= permissions",
        );
    }
    if hidden.iter().any(|h| path.starts_with(h)) {
        return refuse("is Capsa's own data: no app may see it");
    }
    Ok(())
}
