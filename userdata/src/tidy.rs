//! Removing the mount points a run created in an app's persistent state (its private home
//! and its writable layer), so that no trace of opened files or grants stays there: the
//! launcher records them in `<state>/created.json` before the app starts, and removes them
//! when the last instance ends (or at the next start, after a killed launcher).
//!
//! The state is the app's to change, so nothing here follows a name: each parent directory
//! is opened beneath the state directory with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
//! | RESOLVE_NO_XDEV)`, and only what still looks like a mount point is removed: an empty
//! regular file, or an empty directory that overlayfs did not mark opaque (removing one would
//! bring back what the app deleted below it).

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::{fstatat, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::fsx::{has_xattr, open_below};

const RECORD: &str = "created.json";

/// `rel` below `dir`, one component at a time, never following a symlink (see [`crate::fsx`]).
fn beneath(dir: &OwnedFd, rel: &Path) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    let mut cur = open_below(dir.as_fd(), c".", flags)?;
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(nix::Error::EINVAL);
        };
        let name = CString::new(name.as_bytes()).map_err(|_| nix::Error::EINVAL)?;
        cur = open_below(cur.as_fd(), &name, flags)?;
    }
    Ok(cur)
}

fn is_opaque(parent: &OwnedFd, name: &Path) -> bool {
    match beneath(parent, name) {
        Ok(fd) => ["user.overlay.opaque", "trusted.overlay.opaque"]
            .iter()
            .any(|n| has_xattr(&fd, n)),
        Err(_) => true, // not a plain directory any more: leave it
    }
}

/// Removes one created entry (absolute, below `state`), if it still is a mount point.
fn remove_one(state: &OwnedFd, state_dir: &Path, p: &Path) {
    let Ok(rel) = p.strip_prefix(state_dir) else {
        return;
    };
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return;
    };
    let Ok(pfd) = beneath(state, parent) else {
        return;
    };
    let Ok(st) = fstatat(&pfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) else {
        return;
    };
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind == SFlag::S_IFREG && st.st_size == 0 {
        let _ = unlinkat(&pfd, name, UnlinkatFlags::NoRemoveDir);
    } else if kind == SFlag::S_IFDIR && !is_opaque(&pfd, Path::new(name)) {
        let _ = unlinkat(&pfd, name, UnlinkatFlags::RemoveDir); // fails unless empty
    }
}

/// Records what a run created (absolute paths below `state_dir`), before the app starts.
pub fn record_created(state_dir: &Path, created: &[PathBuf]) -> std::io::Result<()> {
    let file = state_dir.join(RECORD);
    let tmp = state_dir.join(format!(".{RECORD}.tmp"));
    fs::write(&tmp, serde_json::to_vec(created).expect("serializes"))?;
    fs::rename(&tmp, &file)
}

/// Removes what a run created, deepest first, then the record.
pub fn remove_created(state_dir: &Path, created: &[PathBuf]) {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let Ok(state) = nix::fcntl::open(state_dir, flags, nix::sys::stat::Mode::empty()) else {
        return;
    };
    let mut sorted: Vec<&PathBuf> = created.iter().collect();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in sorted {
        remove_one(&state, state_dir, p);
    }
    let _ = fs::remove_file(state_dir.join(RECORD));
}

/// Removes what a killed run recorded and left behind.
pub fn remove_recorded(state_dir: &Path) {
    let Ok(bytes) = fs::read(state_dir.join(RECORD)) else {
        return;
    };
    let created: Vec<PathBuf> = serde_json::from_slice(&bytes).unwrap_or_default();
    remove_created(state_dir, &created);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_mount_points_but_nothing_else_and_never_follows_links() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let home = state.join("home");
        fs::create_dir_all(home.join("Downloads")).unwrap();
        fs::create_dir_all(home.join("docs/sub")).unwrap();
        fs::write(home.join("docs/sub/a.txt"), "").unwrap();
        fs::write(home.join("kept.txt"), "data").unwrap();
        fs::create_dir_all(home.join("full")).unwrap();
        fs::write(home.join("full/x"), "x").unwrap();
        let outside = t.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim.txt"), "").unwrap();
        std::os::unix::fs::symlink(&outside, home.join("link")).unwrap();
        let created: Vec<PathBuf> = [
            "Downloads",
            "docs",
            "docs/sub",
            "docs/sub/a.txt",
            "kept.txt",
            "full",
            "link",
            "link/victim.txt",
        ]
        .iter()
        .map(|p| home.join(p))
        .collect();
        record_created(&state, &created).unwrap();
        remove_recorded(&state);
        assert!(!home.join("Downloads").exists());
        assert!(!home.join("docs").exists());
        assert!(
            home.join("kept.txt").exists(),
            "a file with data is not a mount point"
        );
        assert!(home.join("full/x").exists());
        assert!(
            outside.join("victim.txt").exists(),
            "a symlink was followed"
        );
        assert!(!state.join(RECORD).exists());
    }
}
