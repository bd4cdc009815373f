//! The crate's error type. Variants are named for the operation or check that failed and keep
//! their source; messages are lowercase and name the part of the bundle concerned.

use std::io;
use std::path::PathBuf;

use crate::container::LayoutError;
use crate::digest::Digest;
use crate::limits::human_size;
use crate::manifest::ManifestError;
use crate::sign::KeyError;
use crate::stub::StubError;
use crate::toc::TocError;

/// Everything reading, writing or verifying a bundle can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot open {path}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read {what}")]
    Read { what: String, source: io::Error },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error("not a capsa bundle, or its end is damaged")]
    NotABundle(#[source] LayoutError),
    #[error("damaged {part}")]
    Layout {
        part: &'static str,
        source: LayoutError,
    },
    #[error("damaged {part}: {problem}")]
    Damaged { part: String, problem: String },
    #[error("invalid manifest")]
    Manifest(#[from] ManifestError),
    /// `actual` is kept for callers; the message names the recorded digest once.
    #[error("{part} is damaged: its bytes do not match the recorded digest {expected}")]
    DigestMismatch {
        part: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{layer}: invalid table of contents")]
    Toc { layer: String, source: TocError },
    #[error("{layer}: entry {entry}: {problem}")]
    Entry {
        layer: String,
        entry: String,
        problem: String,
    },
    #[error("{0}")]
    Signature(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot extract {path}")]
    Extract { path: PathBuf, source: io::Error },
    #[error("cannot read the free space of {path}")]
    FreeSpace { path: PathBuf, source: io::Error },
    #[error(
        "not enough free space in {path}: the bundle unpacks to {}, {} available; free some space or choose another directory",
        human_size(*need),
        human_size(*available)
    )]
    NotEnoughSpace {
        path: PathBuf,
        need: u64,
        available: u64,
    },
    #[error("{0}")]
    Compose(String),
    #[error(
        "this bundle needs bundle format version {needs}; this capsa ({}) reads up to version {reads}: install a newer capsa to open it",
        env!("CARGO_PKG_VERSION")
    )]
    FormatTooNew { needs: u16, reads: u16 },
    #[error(transparent)]
    Stub(#[from] StubError),
}

impl Error {
    /// Whether the bundle's own bytes are wrong (a cut download, a disk error, tampering),
    /// as opposed to a failure to read or write them.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            Self::NotABundle(_)
                | Self::Layout { .. }
                | Self::Damaged { .. }
                | Self::Manifest(_)
                | Self::DigestMismatch { .. }
                | Self::Toc { .. }
                | Self::Entry { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn read_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Read { what, source }
}
