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
    /// A layer of a bundle could not be unpacked: its bytes are damaged
    /// ([`bundle_format::Error::is_damage`]) or the cache could not be written.
    #[error("cannot unpack {bundle}")]
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
    /// A regular file given to `LayerCache::build` is not the file its TOC entry describes.
    #[error(transparent)]
    Content(Box<ContentMismatch>),
    /// Reading a regular file's content from its source failed while building a layer.
    #[error("cannot read the content of {path} for layer {layer}: try again")]
    Source {
        layer: String,
        path: String,
        source: std::io::Error,
    },
    /// `LayerCache::build` was given a TOC that is not the layer's (or not valid).
    #[error("the table of contents given for layer {layer} is not the manifest's: {problem}")]
    NotTheToc { layer: String, problem: String },
}

/// What [`DataError::Content`] found: a file built into a layer's tree whose size or sha256
/// is not its TOC entry's. `actual_size` counts at most one byte past `expected_size` (no
/// more is read from a source).
#[derive(Debug, thiserror::Error)]
#[error("the content of {path} for layer {layer} does not match its table of contents ({expected_size} bytes with {expected}; its source gave {actual_size} bytes with {actual}): that file's source is damaged or is another file; fetch it again")]
pub struct ContentMismatch {
    pub layer: String,
    pub path: String,
    pub expected: bundle_format::Digest,
    pub expected_size: u64,
    pub actual: bundle_format::Digest,
    pub actual_size: u64,
}

pub(crate) fn prep(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Prepare {
        path: path.to_path_buf(),
        source,
    }
}
