//! Making a tracee's path argument absolute: against `/proc/TID/cwd` (`AT_FDCWD`) or the
//! dirfd's `/proc/TID/fd/N`, or naming the dirfd itself for an empty path with
//! `AT_EMPTY_PATH`. Symlinks are not resolved and `..` is kept (it is not lexically safe to
//! drop); `.` components and repeated slashes are. A base that is not a directory path
//! (`pipe:[...]`, a deleted dir) gives `None`: there is no file to name. The cwd is read
//! through a cache the caller owns (the tracer drops it when a call may have moved the cwd).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::unistd::Pid;

/// The directory a relative path is taken from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Base {
    Cwd,
    Fd(i32),
}

impl Base {
    /// From a dirfd argument (an `int` in a register).
    pub(crate) fn from_dirfd(arg: u64) -> Base {
        match arg as i32 {
            libc::AT_FDCWD => Base::Cwd,
            fd => Base::Fd(fd),
        }
    }
}

/// The absolute path `raw` names for thread `tid`. `empty_names_base`: an empty `raw` names
/// the base itself (`AT_EMPTY_PATH`); otherwise an empty path names nothing.
pub(crate) fn resolve(
    tid: Pid,
    base: Base,
    raw: &[u8],
    empty_names_base: bool,
    cwd: &mut Option<PathBuf>,
) -> Option<PathBuf> {
    if raw.first() == Some(&b'/') {
        return Some(clean(Path::new(OsStr::from_bytes(raw))));
    }
    if raw.is_empty() && !empty_names_base {
        return None;
    }
    let joined = match base {
        Base::Cwd => {
            if cwd.is_none() {
                *cwd = base_path(tid, base);
            }
            cwd.as_deref()?.join(OsStr::from_bytes(raw))
        }
        Base::Fd(_) => base_path(tid, base)?.join(OsStr::from_bytes(raw)),
    };
    Some(clean(&joined))
}

/// What a tracee's fd or cwd points to, if it is a path.
pub(crate) fn base_path(tid: Pid, base: Base) -> Option<PathBuf> {
    let link = match base {
        Base::Cwd => format!("/proc/{tid}/cwd"),
        Base::Fd(fd) if fd >= 0 => format!("/proc/{tid}/fd/{fd}"),
        Base::Fd(_) => return None,
    };
    let target = std::fs::read_link(link).ok()?;
    let bytes = target.as_os_str().as_bytes();
    let bytes = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
    if bytes.first() != Some(&b'/') {
        return None;
    }
    Some(PathBuf::from(OsStr::from_bytes(bytes)))
}

/// Drops `.` components and repeated or trailing slashes; keeps `..`.
pub(crate) fn clean(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_against_our_own_cwd_and_fds() {
        let me = nix::unistd::getpid();
        let cwd = std::env::current_dir().expect("cwd");
        let mut cache = None;
        let mut r = |base, raw: &[u8], empty| resolve(me, base, raw, empty, &mut cache);
        assert_eq!(r(Base::Cwd, b"a/./b", false), Some(cwd.join("a/b")));
        assert_eq!(
            r(Base::Cwd, b"/x//y/../z/.", false),
            Some(PathBuf::from("/x/y/../z"))
        );
        assert_eq!(r(Base::Cwd, b"", false), None);
        assert_eq!(r(Base::Cwd, b"", true), Some(cwd.clone()));
        let dir = tempfile::tempdir().expect("tempdir");
        let f = std::fs::File::open(dir.path()).expect("open dir");
        use std::os::fd::AsRawFd;
        let got = r(Base::Fd(f.as_raw_fd()), b"k", false);
        assert_eq!(got, Some(dir.path().join("k")));
        assert_eq!(r(Base::Fd(-5), b"k", false), None);
        assert_eq!(r(Base::Fd(1_000_000), b"k", false), None);
        assert_eq!(cache, Some(cwd.clone()), "the cwd was read once and kept");
        // The cache is what a relative path is taken against.
        let mut stale = Some(PathBuf::from("/elsewhere"));
        assert_eq!(
            resolve(me, Base::Cwd, b"k", false, &mut stale),
            Some(PathBuf::from("/elsewhere/k"))
        );
        assert!(matches!(
            Base::from_dirfd(libc::AT_FDCWD as u32 as u64),
            Base::Cwd
        ));
    }
}
