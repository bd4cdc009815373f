//! Where the store keeps things, and the store-wide lock.
//!
//! ```text
//! $XDG_DATA_HOME/capsa/          (0700)
//!   store.lock                    flock: every command that changes the store holds it
//!   clean                         present while no changing command is unfinished (recover.rs)
//!   layers/<digest>/tree          unpacked layers, shared by every app and release
//!   layers/<digest>/sealed, disk-usage   the seal, and the tree's disk use when unpacked
//!   apps/<id>/releases/<digest>/  immutable: manifest.json, toc-<n>.json, signatures.json
//!   apps/<id>/current, previous   symlinks to releases/<digest>, switched by rename(2)
//!   apps/<id>/publisher.json      who published the app (its identity with the id)
//!   overrides/<id>@<publisher>.json   the user's permission overrides
//!   consent/<id>@<publisher>.json     what the user agreed a bundle file may use
//!   state/<id>@<publisher>/       the app's writable layer and private home (launcher)
//! ```
//! Names starting with `.` are staging or trash and are removed by the next command.

use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{io, StoreError};

/// The store's directories.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

/// The store-wide lock, held until dropped (and by the kernel until the holder dies).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl Layout {
    /// The user's store (`$XDG_DATA_HOME/capsa`).
    pub fn user() -> Self {
        Self {
            root: userdata::dirs::data_dir(),
        }
    }

    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }
    pub fn apps(&self) -> PathBuf {
        self.root.join("apps")
    }
    /// `apps/<id>`; ids are validated by [`check_id`] before they reach a path.
    pub fn app(&self, id: &str) -> PathBuf {
        self.apps().join(id)
    }
    /// `state/<id>@<publisher>`: the app's writable layer and private home.
    pub fn state(&self, who: &userdata::Identity) -> PathBuf {
        self.root.join("state").join(who.dir_name())
    }

    /// Creates the private directories.
    pub fn create(&self) -> Result<(), StoreError> {
        for d in [self.root.clone(), self.layers(), self.apps()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(io(&d))?;
        }
        Ok(())
    }

    /// Takes the store lock, waiting for another command to finish.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        self.create()?;
        let p = self.root.join("store.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io(&p))?;
        f.lock()
            .map_err(|source| StoreError::Lock { path: p, source })?;
        Ok(StoreLock { _file: f })
    }

    /// Ids of installed apps (those with a `current` release), sorted.
    pub fn installed(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let apps = self.apps();
        let Ok(rd) = fs::read_dir(&apps) else {
            return Ok(ids);
        };
        for e in rd {
            let e = e.map_err(io(&apps))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && e.path().join("current").symlink_metadata().is_ok() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".capsa-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Points the symlink `link` at `target` atomically (a new link renamed over the old one).
pub fn switch_link(link: &Path, target: &Path) -> Result<(), StoreError> {
    let tmp = link.with_file_name(format!(
        ".{}.new",
        link.file_name().and_then(|n| n.to_str()).unwrap_or("link")
    ));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(io(&tmp))?;
    fs::rename(&tmp, link).map_err(io(link))
}

/// An app id from the command line must be a valid reverse-DNS id before it names a
/// directory: `../x` must never reach a path.
pub fn check_id(id: &str) -> Result<(), StoreError> {
    bundle_format::manifest::validate_app_id(id)
        .map_err(|e| StoreError::Invalid(format!("not an app id: {e}")))
}
