//! The crate's errors, one enum per area, each variant named for the operation that failed.
//!
//! Areas: `fetch` (reading a repository over HTTP(S) or `file://`), and the areas the other
//! modules add (`meta`, `publish`, `client`) as their own enums, each with a transparent
//! variant in [`Error`]. Messages are lowercase, name the URL or path, and say what to do.
//! A source's problem is a typed [`Problem`], never text to be matched.

use std::fmt;
use std::io;
use std::path::PathBuf;

use bundle_format::Digest;

/// Any error of the crate, by area.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

// ---------------------------------------------------------------------------------------------
// fetch
// ---------------------------------------------------------------------------------------------

/// A failed fetch: a refused URL or path, a file no source has, or a local file operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// A remote's URL has another scheme than `http://`, `https://` or `file://`.
    #[error(
        "repository url {url:?} is not supported: use http://, https:// or file:///ABSOLUTE/PATH"
    )]
    UnsupportedUrl { url: String },
    /// A remote's URL has a supported scheme but cannot be used as it is.
    #[error("repository url {url:?} cannot be used: {reason}")]
    MalformedUrl { url: String, reason: &'static str },
    /// A fetcher was made without any source.
    #[error("no repository url given: a remote needs at least its main url")]
    NoSource,
    /// A path inside the repository (from the caller or a signed document) is refused before
    /// it reaches any URL or file system.
    #[error("refusing repository path {path:?}: {reason}")]
    BadPath { path: String, reason: &'static str },
    /// The source answered that a metadata file does not exist (HTTP 404 or 410, or no such
    /// file below a `file://` directory). Mirrors are not asked (see `fetch`).
    #[error("{url} does not exist")]
    NotFound { url: String },
    /// No source delivered the file; every source tried and its problem, in order.
    #[error("cannot fetch {path}: {}; check the network and the remote's urls", Failures(.failures))]
    Failed {
        path: String,
        failures: Vec<SourceFailure>,
    },
    #[error("cannot open the partial download {path}: remove it if it is not a regular file")]
    OpenPart { path: PathBuf, source: io::Error },
    #[error("cannot read the partial download {path}")]
    ReadPart { path: PathBuf, source: io::Error },
    #[error("cannot write the partial download {path}: check the free space")]
    WritePart { path: PathBuf, source: io::Error },
    #[error("cannot remove the partial download {path}")]
    RemovePart { path: PathBuf, source: io::Error },
    #[error("cannot move the complete download {from} to {to}")]
    CommitPart {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    /// The caller's writer of an object's content failed.
    #[error("cannot write the content of {path}")]
    WriteObject { path: String, source: io::Error },
}

/// What went wrong with one source.
#[derive(Debug)]
pub struct SourceFailure {
    /// The source's base URL, as it prints (`https://host/repo/`, `file:///srv/repo/`).
    pub source: String,
    pub problem: Problem,
}

/// One source's problem with one file. Everything but a metadata file's [`Problem::NotFound`]
/// makes the fetcher try the next source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// Connecting, sending the request or receiving the response head failed (this includes
    /// the connect timeout and a stall).
    #[error("{0}")]
    Transport(Box<ureq::Error>),
    /// Reading the body failed (a stall, a connection closed early, an I/O error).
    #[error("reading failed: {0}")]
    Read(io::Error),
    /// The `file://` directory of the source cannot be opened.
    #[error("cannot open the repository directory: {0}")]
    OpenDir(io::Error),
    /// Opening the file below a `file://` directory failed.
    #[error("cannot open the file: {0}")]
    Open(io::Error),
    #[error("not found")]
    NotFound,
    /// An HTTP status the fetcher does not take as content.
    #[error("http status {0}")]
    Status(u16),
    #[error("redirect to {location:?} refused: only http:// and https:// are followed")]
    RedirectScheme { location: String },
    #[error("redirect from https to {location:?} refused: it would leave https")]
    RedirectDowngrade { location: String },
    #[error("redirect with a bad or missing location {location:?}")]
    BadRedirect { location: String },
    #[error("more than {max} redirects")]
    TooManyRedirects { max: u32 },
    /// A 206 answer that does not start at the byte asked for, or a 206 never asked for (a
    /// resumed blob then starts over from zero on the same source).
    #[error("partial answer {content_range:?} does not start at byte {asked}")]
    BadContentRange { content_range: String, asked: u64 },
    /// A 416 to a resumed download (the fetcher then starts over from zero on the same source).
    #[error("the server cannot resume at byte {from}")]
    RangeNotSatisfiable { from: u64 },
    /// A symbolic link below a `file://` directory (never followed).
    #[error("a symbolic link on the path (refused)")]
    Symlink,
    /// Not a regular file below a `file://` directory.
    #[error("not a regular file")]
    NotRegular,
    /// A metadata body past its cap, or an object's compressed body past its bound.
    #[error("more than {cap} bytes (refused)")]
    TooLarge { cap: u64 },
    /// Content past its signed size (cut at one byte more).
    #[error("longer than its {size} bytes (refused)")]
    TooLong { size: u64 },
    /// Content that ended before its signed size.
    #[error("ended after {got} of its {size} bytes")]
    Short { got: u64, size: u64 },
    #[error("content is {actual}, not the expected {expected} (refused)")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// An object's zstd stream is damaged.
    #[error("cannot decompress: {0}")]
    Decompress(io::Error),
}

impl From<ureq::Error> for Problem {
    fn from(e: ureq::Error) -> Self {
        Problem::Transport(Box::new(e))
    }
}

/// Prints a failure list as `SOURCE: PROBLEM; SOURCE: PROBLEM`.
struct Failures<'a>(&'a [SourceFailure]);

impl fmt::Display for Failures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", failure.source, failure.problem)?;
        }
        Ok(())
    }
}
