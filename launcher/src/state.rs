//! Per-user directories (XDG base directories) and per-app state.
//!
//! State lives in `$XDG_DATA_HOME/capsa/state/<app-id>/`: `upper/` and `work/` (the root's
//! writable overlay layer) and `home/` (the private home), all private (0700). One run at a
//! time owns `upper/` (overlayfs refuses an upper directory in use): it holds an exclusive
//! `flock` on `lock` for its lifetime (the lock dies with it). A concurrent run of the same app
//! gets a tmpfs upper with the persistent upper stacked read-only below it, and the report says
//! so; the private home is shared.

use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::LaunchError;

fn prep(path: &Path) -> impl FnOnce(std::io::Error) -> LaunchError + '_ {
    move |source| LaunchError::Prepare {
        path: path.to_path_buf(),
        source,
    }
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(fallback)
        })
}

/// `$XDG_CACHE_HOME/capsa`.
pub fn cache_dir() -> PathBuf {
    xdg("XDG_CACHE_HOME", ".cache").join("capsa")
}

/// `$XDG_DATA_HOME/capsa`.
pub fn data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("capsa")
}

/// Creates `p` (and parents) with mode 0700 for the directories this creates.
pub fn private_dir(p: &Path) -> Result<(), LaunchError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(prep(p))
}

/// Overlayfs takes paths in a comma- and colon-separated option string.
pub fn check_overlay_path(p: &Path) -> Result<(), LaunchError> {
    let s = p.to_string_lossy();
    if s.contains([',', ':', '\\']) || s.contains('\n') {
        return Err(LaunchError::Prepare {
            path: p.into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "overlayfs cannot use a path with ',', ':' or '\\': set XDG_CACHE_HOME/XDG_DATA_HOME elsewhere"),
        });
    }
    Ok(())
}

/// An app's state directories, and whether this run owns the writable layer.
#[derive(Debug)]
pub struct AppState {
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub home: PathBuf,
    /// Held for the run's lifetime when this run owns `upper`.
    pub lock: Option<File>,
}

impl AppState {
    pub fn open(app_id: &str) -> Result<Self, LaunchError> {
        let dir = data_dir().join("state").join(app_id);
        let (upper, work, home) = (dir.join("upper"), dir.join("work"), dir.join("home"));
        for d in [&upper, &work, &home] {
            private_dir(d)?;
            check_overlay_path(d)?;
        }
        let lock_path = dir.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(prep(&lock_path))?;
        let lock = match f.try_lock() {
            Ok(()) => Some(f),
            Err(fs::TryLockError::WouldBlock) => None,
            Err(fs::TryLockError::Error(e)) => return Err(prep(&lock_path)(e)),
        };
        Ok(Self {
            dir,
            upper,
            work,
            home,
            lock,
        })
    }
}

/// Records, beside `upper`, the mount points the launcher creates in the app's root (in
/// `mountpoints.json`, which the sandbox cannot write), so `capsa diff` can tell them from the
/// app's own changes.
pub fn record_mountpoints(upper: &Path, steps: &[crate::plan::Step]) -> Result<(), LaunchError> {
    let file = upper.with_file_name("mountpoints.json");
    let mut all: std::collections::BTreeSet<String> = fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let before = all.len();
    for s in steps {
        let mut p = Some(s.dst());
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
