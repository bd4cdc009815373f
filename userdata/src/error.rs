//! Errors of the per-user data: one variant per failed operation, naming the path.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("cannot prepare {path}")]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A layer of a bundle did not match its table of contents while it was unpacked.
    #[error("{bundle} is damaged: layer {layer} does not match its table of contents")]
    Unpack {
        bundle: PathBuf,
        layer: String,
        source: Box<bundle_format::Error>,
    },
    #[error(transparent)]
    Space(Box<bundle_format::Error>),
    #[error("installed layer {path} is missing or was modified: reinstall the app")]
    Damaged { path: PathBuf },
    #[error("{path} cannot hold an overlayfs path (it has ',', ':' or '\\'): set XDG_CACHE_HOME and XDG_DATA_HOME to a plain path")]
    OverlayPath { path: PathBuf },
    #[error("{path} names no directory entry")]
    NotAnEntry { path: PathBuf },
    #[error("cannot remove {path}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    Walk {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} keeps changing while it is being removed: close the app using it and try again"
    )]
    Changing { path: PathBuf },
    #[error("cannot read {path}: {why}")]
    Record { path: PathBuf, why: String },
}

pub(crate) fn prep(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Prepare {
        path: path.to_path_buf(),
        source,
    }
}
