//! Store errors: one variant per failed operation, naming the app or file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot use {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock the store {path}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot install {path}")]
    Bundle {
        path: PathBuf,
        source: bundle_format::Error,
    },
    #[error("installed app {app} is damaged ({problem}): install it again")]
    Damaged { app: String, problem: String },
    #[error("installation cancelled: nothing changed")]
    Cancelled,
    #[error("{app} is running: close it first (reset, diff and --delete-data never touch a running app's files)")]
    Running { app: String },
    #[error("cannot lock the app state {path}")]
    StateLock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not installed")]
    NotInstalled(String),
    #[error("{0} has no previous release to roll back to (it was installed only once, or its previous release is gone)")]
    NoPrevious(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Data(#[from] userdata::DataError),
    #[error("{id} is installed from another publisher ({installed}); this bundle is from {new}: uninstall it first to replace it")]
    Publisher {
        id: String,
        installed: String,
        new: String,
    },
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
