//! Fetching a repository's files from its sources: the main URL, then its mirrors.
//!
//! A [`Fetcher`] reads three kinds of files, each checked while it streams:
//! - metadata ([`Fetcher::get_meta`]): the whole body in memory, refused past a cap counted
//!   on the bytes as they arrive (a `Content-Length` is never trusted, nor used to allocate);
//! - blobs ([`Fetcher::get_blob`]): streamed to `<dest>.part` (created `0600`, `O_NOFOLLOW`),
//!   hashed while written, cut one byte past the signed size, and renamed to `dest` only once
//!   every byte matched the signed digest; an interrupted transfer keeps the `.part`, and the
//!   next call re-hashes it and resumes with `Range: bytes=N-` (see `blob`);
//! - objects ([`Fetcher::get_object`]): one file's zstd stream, its compressed size bounded,
//!   decompressed into the caller's writer with its size and digest checked (see `object`).
//!
//! Paths inside the repository are checked ([`RelPath`]) before they reach a URL or a file
//! system. Every source is checked the same way.
//!
//! Failover: sources are tried in order, and a source's [`Problem`] (a transport error or
//! stall, an HTTP status, a redirect refused, content that is too long, short or of another
//! digest) makes the fetcher try the next one; when all fail, the error lists every source with
//! its problem. Two answers are final:
//! - a metadata file's "not found" (404 or 410, or no such file) is returned as
//!   [`FetchError::NotFound`] without asking the mirrors: the root walk stops on it, and mirrors
//!   copy `roots/` before `root.json` and `index.json`, so a mirror cannot be ahead of the
//!   source that answered. (A 404 from a stale CDN then fails this command, and the next one
//!   sees the file; the walk never jumps to a version a mirror made up, because every root is
//!   checked against the one before it.)
//! - blobs and objects are named by a signed digest, so a source that lacks one is stale or
//!   damaged and the next source is asked; only an object whose content already reached the
//!   caller's writer is not retried elsewhere (the writer cannot be rewound).
//!
//! Local failures (the `.part` file, the caller's writer) stop at once.
//!
//! The fetcher counts every body byte it receives from any source ([`Fetcher::received`]).

mod blob;
mod file;
mod http;
mod object;
mod source;

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bundle_format::Digest;

pub use self::http::{MAX_REDIRECTS, USER_AGENT};
pub use self::object::compressed_cap;
pub use self::source::{RelPath, Source};
use crate::error::{FetchError, Problem, SourceFailure};

/// Default time to set up a connection (name lookup, TCP, TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time without a single byte after which a transfer fails.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a repository's files from its sources (main first, then mirrors).
pub struct Fetcher {
    sources: Vec<Source>,
    agent: ureq::Agent,
    received: AtomicU64,
}

/// A source's answer: a body, and where in the file it starts (`0`, or the byte asked for).
pub(crate) struct Answer<'a> {
    pub offset: u64,
    pub body: Box<dyn Read + 'a>,
}

/// What one try at one source came to, when it was not a success.
pub(crate) enum Fail {
    /// This source has a problem: try the next one.
    Next(Problem),
    /// This source has a problem and no other may be tried.
    Last(Problem),
    /// A final error that is not any source's.
    Abort(FetchError),
}

impl Fetcher {
    /// A fetcher with the default timeouts ([`CONNECT_TIMEOUT`], [`STALL_TIMEOUT`]).
    pub fn new(sources: Vec<Source>) -> Result<Fetcher, FetchError> {
        Fetcher::with_timeouts(sources, CONNECT_TIMEOUT, STALL_TIMEOUT)
    }

    /// A fetcher whose connections must be up within `connect` and whose transfers fail after
    /// `stall` without a byte.
    pub fn with_timeouts(
        sources: Vec<Source>,
        connect: Duration,
        stall: Duration,
    ) -> Result<Fetcher, FetchError> {
        if sources.is_empty() {
            return Err(FetchError::NoSource);
        }
        Ok(Fetcher {
            sources,
            agent: http::agent(connect, stall),
            received: AtomicU64::new(0),
        })
    }

    /// A fetcher of a remote's main URL and mirrors, each parsed by [`Source::parse`].
    pub fn from_urls<S: AsRef<str>>(main: &str, mirrors: &[S]) -> Result<Fetcher, FetchError> {
        let mut sources = vec![Source::parse(main)?];
        for mirror in mirrors {
            sources.push(Source::parse(mirror.as_ref())?);
        }
        Fetcher::new(sources)
    }

    /// The sources, main first.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Body bytes received so far from all sources, by every call.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// A metadata file, whole, refused past `cap` bytes. A missing file is
    /// [`FetchError::NotFound`] (mirrors are not asked then; see the module doc).
    pub fn get_meta(&self, rel_path: &str, cap: u64) -> Result<Vec<u8>, FetchError> {
        let rel = RelPath::new(rel_path)?;
        self.each_source(&rel, |source| {
            let answer = match self.open(source, &rel, 0) {
                Ok(answer) => answer,
                Err(Problem::NotFound) => {
                    return Err(Fail::Abort(FetchError::NotFound {
                        url: source.url_of(&rel),
                    }))
                }
                Err(problem) => return Err(Fail::Next(problem)),
            };
            read_capped(answer.body, cap).map_err(Fail::Next)
        })
    }

    /// The blob at `rel_path`, of `size` bytes and sha256 `digest`, into `dest` (replaced),
    /// through `<dest>.part`; `progress(done, size)` follows the transfer. Nothing is at
    /// `dest` unless every byte was checked. See the module doc.
    pub fn get_blob(
        &self,
        rel_path: &str,
        digest: &Digest,
        size: u64,
        dest: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), FetchError> {
        let rel = RelPath::new(rel_path)?;
        blob::get(self, &rel, digest, size, dest, progress)
    }

    /// The zstd object at `rel_path`, decompressed into `out`: exactly `size` bytes whose sha256
    /// is `digest`. On an error, `out` may have received a prefix that must be thrown away.
    pub fn get_object(
        &self,
        rel_path: &str,
        digest: &Digest,
        size: u64,
        out: &mut dyn io::Write,
    ) -> Result<(), FetchError> {
        let rel = RelPath::new(rel_path)?;
        object::get(self, &rel, digest, size, out)
    }

    /// Tries `attempt` on each source in order until one succeeds (see [`Fail`]).
    pub(crate) fn each_source<T>(
        &self,
        rel: &RelPath<'_>,
        mut attempt: impl FnMut(&Source) -> Result<T, Fail>,
    ) -> Result<T, FetchError> {
        let mut failures = Vec::new();
        for source in &self.sources {
            let (problem, last) = match attempt(source) {
                Ok(value) => return Ok(value),
                Err(Fail::Abort(e)) => return Err(e),
                Err(Fail::Next(problem)) => (problem, false),
                Err(Fail::Last(problem)) => (problem, true),
            };
            failures.push(SourceFailure {
                source: source.to_string(),
                problem,
            });
            if last {
                break;
            }
        }
        Err(FetchError::Failed {
            path: rel.as_str().to_owned(),
            failures,
        })
    }

    /// Opens `rel` at `source`, from byte `from` on when the source can, its body counted.
    pub(crate) fn open(
        &self,
        source: &Source,
        rel: &RelPath<'_>,
        from: u64,
    ) -> Result<Answer<'_>, Problem> {
        let answer = match source {
            Source::Http { base } => http::get(&self.agent, base, rel, from)?,
            Source::File { dir } => file::open_below(dir, rel, from)?,
        };
        Ok(Answer {
            offset: answer.offset,
            body: Box::new(Counting {
                inner: answer.body,
                received: &self.received,
            }),
        })
    }
}

/// Counts what passes into the fetcher's total.
struct Counting<'a> {
    inner: Box<dyn Read + 'a>,
    received: &'a AtomicU64,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.received.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The size of one read from a source.
pub(crate) const CHUNK: usize = 64 * 1024;

/// At most `limit` bytes, or how many more the next read may take so that one byte past
/// `limit` (and never more) is read.
pub(crate) fn next_read_len(done: u64, limit: u64) -> usize {
    let left = limit.saturating_sub(done).saturating_add(1);
    usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK))
}

/// The whole body, refused once it passes `cap` (reading at most `cap + 1` bytes).
fn read_capped(mut body: impl Read, cap: u64) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let want = next_read_len(out.len() as u64, cap);
        let n = match body.read(&mut buf[..want]) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Problem::Read(e)),
        };
        if out.len() as u64 + n as u64 > cap {
            return Err(Problem::TooLarge { cap });
        }
        out.extend_from_slice(&buf[..n]);
    }
}
