//! Per-app state: `$XDG_DATA_HOME/capsa/state/<id>@<publisher>/` (see [`crate::identity`])
//! holds `upper/` and `work/` (the root's writable overlay layer) and `home/` (the private
//! home), all private (0700).
//!
//! Two locks, both `flock`s that die with their holder:
//! - `instances.lock`: every running instance holds it shared for its whole life; store
//!   commands that walk the state (reset, diff, delete) take it exclusively and refuse when
//!   they can't, so they never act on files a running app can change under them.
//! - `lock`: one run at a time owns `upper/` (overlayfs refuses an upper directory in use)
//!   and holds this exclusively. A concurrent run gets a tmpfs upper with the persistent upper
//!   stacked read-only below; the private home is shared.

use std::fs::{self, File};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::dirs::{check_overlay_path, data_dir, private_dir};
use crate::error::{prep, DataError};
use crate::identity::Identity;

/// `$XDG_DATA_HOME/capsa/state`.
pub fn state_root() -> PathBuf {
    data_dir().join("state")
}

/// The state directory of `who`.
pub fn state_dir(who: &Identity) -> PathBuf {
    state_root().join(who.dir_name())
}

/// Opens (creating) a lock file without following a symlink planted in its place.
pub fn open_lock(path: &Path) -> Result<File, DataError> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(path)
        .map_err(prep(path))
}

const fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_CLOEXEC.bits()
}

fn same_file(f: &File, p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::symlink_metadata(p)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// An app's state directories, and the locks this run holds.
#[derive(Debug)]
pub struct AppState {
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub home: PathBuf,
    /// Held (shared) for the run's lifetime: an instance is running.
    pub instance: File,
    /// Held for the run's lifetime when this run owns `upper`.
    pub upper_lock: Option<File>,
}

impl AppState {
    /// Opens the state of `who` for a run (waits while a store command holds it).
    pub fn open(who: &Identity) -> Result<Self, DataError> {
        Self::open_at(state_dir(who))
    }

    pub fn open_at(dir: PathBuf) -> Result<Self, DataError> {
        let (upper, work, home) = (dir.join("upper"), dir.join("work"), dir.join("home"));
        for d in [&upper, &work, &home] {
            private_dir(d)?;
            check_overlay_path(d)?;
        }
        let lock_path = dir.join("instances.lock");
        let instance = loop {
            let f = open_lock(&lock_path)?;
            if f.try_lock().is_ok() {
                // No other instance: tidy what a killed run left, then share.
                crate::tidy::remove_recorded(&dir);
            }
            f.lock_shared().map_err(prep(&lock_path))?;
            // A store command may have deleted the state (lock file included) while we
            // waited: then lock the new one.
            if same_file(&f, &lock_path) {
                break f;
            }
            for d in [&upper, &work, &home] {
                private_dir(d)?;
            }
        };
        let lock_path = dir.join("lock");
        let f = open_lock(&lock_path)?;
        let upper_lock = match f.try_lock() {
            Ok(()) => Some(f),
            Err(fs::TryLockError::WouldBlock) => None,
            Err(fs::TryLockError::Error(e)) => return Err(prep(&lock_path)(e)),
        };
        Ok(Self {
            dir,
            upper,
            work,
            home,
            instance,
            upper_lock,
        })
    }

    /// Once the app has ended: the instance lock, now exclusive, when no other instance
    /// runs (so this run may tidy the state), else `None`. (Converting a flock is not atomic,
    /// so this is only for a run whose app is gone.)
    pub fn last_out(self) -> Option<File> {
        drop(self.upper_lock);
        self.instance.try_lock().ok().map(|()| self.instance)
    }
}

/// Records, beside `upper`, the mount points the launcher creates in the app's root (in
/// `mountpoints.json`, which the sandbox cannot write), so `capsa diff` can tell them from the
/// app's own changes.
pub fn record_mountpoints<'a>(
    upper: &Path,
    dsts: impl Iterator<Item = &'a Path>,
) -> Result<(), DataError> {
    let file = upper.with_file_name("mountpoints.json");
    let mut all: std::collections::BTreeSet<String> = fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let before = all.len();
    for dst in dsts {
        let mut p = Some(dst);
        while let Some(d) = p.filter(|d| *d != Path::new("/")) {
            all.insert(d.display().to_string());
            p = d.parent();
        }
    }
    if all.len() != before || !file.exists() {
        fs::write(&file, serde_json::to_vec(&all).expect("serializes")).map_err(prep(&file))?;
    }
    Ok(())
}
