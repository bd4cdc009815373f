//! The fast mode's lookups: the tracer checks a read-only call's path itself at the seccomp
//! stop (`stat`/`lstat` from the tracer) instead of stopping again at the call's exit.
//!
//! What this is, honestly: the outcome is the tracer's check at entry, not the kernel's
//! result. A file the tracee may not read (EACCES) is seen as present when the tracer may
//! read it; a file created or removed between the check and the call is seen as it was at the
//! check. The errno recorded is the tracer's (`ENOENT`, `ENOTDIR`, `ELOOP`...).
//!
//! The lookup is made in the tracee's file-system view: a task whose mount namespace or root
//! differs from the tracer's is looked up under `/proc/TID/root` (an absolute symlink inside
//! the path is then followed from the tracer's root: a limit of this prefix).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

/// The prefix under which `tid`'s paths are looked up: `None` when it sees the tracer's
/// tree (same mount namespace, root `/`), else `/proc/TID/root`. A task whose namespace
/// cannot be read is taken to share the tracer's (the launcher traces in its own).
pub(crate) fn root_of(tid: Pid) -> Option<PathBuf> {
    let ns = |p: String| fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let theirs = ns(format!("/proc/{tid}/ns/mnt"))?;
    let same_ns = ns("/proc/self/ns/mnt".to_string()) == Some(theirs);
    let root = format!("/proc/{tid}/root");
    let same_root = fs::read_link(&root).is_ok_and(|r| r == Path::new("/"));
    (!same_ns || !same_root).then(|| PathBuf::from(root))
}

/// The tracer's lookup of `path` (absolute) as `tid` would see it: `None` when it exists,
/// else the errno.
pub(crate) fn lookup(root: Option<&Path>, path: &Path, follow: bool) -> Option<i32> {
    let under;
    let path = match root {
        Some(r) => {
            under = r.join(path.strip_prefix("/").unwrap_or(path));
            &under
        }
        None => path,
    };
    let r = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    match r {
        Ok(_) => None,
        Err(e) => Some(e.raw_os_error().unwrap_or(libc::ENOENT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_like_the_kernel_would() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("capsa-check-probe");
        fs::write(&f, "x").expect("write");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("none"), &dangling).expect("symlink");
        assert_eq!(lookup(None, &f, true), None);
        assert_eq!(
            lookup(None, &dir.path().join("none"), true),
            Some(libc::ENOENT)
        );
        assert_eq!(lookup(None, &f.join("under"), true), Some(libc::ENOTDIR));
        assert_eq!(lookup(None, &dangling, true), Some(libc::ENOENT));
        assert_eq!(lookup(None, &dangling, false), None, "lstat sees the link");
        // Under a root prefix: the path is taken inside it.
        let inner = Path::new("/capsa-check-probe");
        assert_eq!(lookup(Some(dir.path()), inner, true), None);
        assert_eq!(lookup(None, inner, true), Some(libc::ENOENT));
        assert_eq!(root_of(nix::unistd::getpid()), None, "we see our own tree");
        assert_eq!(root_of(Pid::from_raw(i32::MAX)), None, "no such task");
    }
}
