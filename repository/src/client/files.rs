//! The client's own small files (remotes, trust state, origins, the client id, cached app
//! documents): read without following a symlink and bounded in size; written atomically (a
//! temporary file beside the target, synced, renamed, the directory synced), so a killed
//! command leaves the old file or the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use super::error::{read_err, write_err, ClientError};

/// The largest file of the client's own it reads (a trust state with many floors).
pub(crate) const MAX_FILE: u64 = 16 << 20;

/// The user's directories for the client.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// `$XDG_CONFIG_HOME/capsa`: `remotes/`.
    pub config: PathBuf,
    /// `$XDG_STATE_HOME/capsa`: `trust/`, `origins/`, `client-id`.
    pub state: PathBuf,
    /// `$XDG_CACHE_HOME/capsa`: `repo/` (verified app documents, downloads in progress).
    pub cache: PathBuf,
}

impl Dirs {
    /// From the XDG variables (relative or unset ones fall back to `$HOME/...`).
    pub fn user() -> Self {
        Self {
            config: userdata::dirs::config_dir(),
            state: userdata::dirs::state_dir(),
            cache: userdata::dirs::cache_dir(),
        }
    }

    /// All three below one directory (tests, and tools with their own root).
    pub fn under(root: &Path) -> Self {
        Self {
            config: root.join("config"),
            state: root.join("state"),
            cache: root.join("cache"),
        }
    }

    pub(crate) fn remotes(&self) -> PathBuf {
        self.config.join("remotes")
    }
    pub(crate) fn trust(&self) -> PathBuf {
        self.state.join("trust")
    }
    pub(crate) fn origins(&self) -> PathBuf {
        self.state.join("origins")
    }
    pub(crate) fn docs(&self) -> PathBuf {
        self.cache.join("repo/docs")
    }
    pub(crate) fn downloads(&self) -> PathBuf {
        self.cache.join("repo/downloads")
    }
}

/// Creates `dir` and its parents, private (0700).
pub(crate) fn private_dir(dir: &Path) -> Result<(), ClientError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_err(dir))
}

/// The regular file `path` (not a symlink, not a FIFO), at most `cap` bytes; `None` when it
/// does not exist.
pub(crate) fn read_small(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, ClientError> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(path)(e)),
    };
    if !f.metadata().map_err(read_err(path))?.is_file() {
        return Err(ClientError::BadLocal {
            path: path.into(),
            why: "not a regular file".into(),
        });
    }
    let mut bytes = Vec::new();
    f.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err(path))?;
    if bytes.len() as u64 > cap {
        return Err(ClientError::BadLocal {
            path: path.into(),
            why: format!("larger than {cap} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// Writes `bytes` to `path` atomically, mode 0600.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    private_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(write_err(dir))?;
    tmp.write_all(bytes).map_err(write_err(path))?;
    tmp.as_file().sync_all().map_err(write_err(path))?;
    tmp.persist(path).map_err(|e| write_err(path)(e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err(dir))
}

/// A JSON file of the client's, decoded; `None` when it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, ClientError> {
    let Some(bytes) = read_small(path, MAX_FILE)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ClientError::BadLocal {
            path: path.into(),
            why: e.to_string(),
        })
}

/// Writes a JSON file of the client's atomically.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), ClientError> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("client files serialize");
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Holds an exclusive `flock` on `path` (created) until dropped.
pub(crate) struct Lock {
    _file: File,
}

pub(crate) fn lock(path: &Path) -> Result<Lock, ClientError> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(write_err(path))?;
    f.lock().map_err(write_err(path))?;
    Ok(Lock { _file: f })
}
