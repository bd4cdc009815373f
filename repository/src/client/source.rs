//! Where a repository's files come from. The client logic uses only the [`Source`] trait; the
//! network fetcher (HTTP(S) and mirrors) implements it in the lead's adapter, and
//! [`DirSource`] implements it for repositories on disk (`file://` remotes and their mirrors).
//!
//! Contract of every implementation, which the client relies on:
//! - [`Source::meta`] never returns more than `cap` bytes (a longer file is refused, not cut);
//!   `None` means the file does not exist (404), nothing else;
//! - [`Source::blob`] writes `dest` only when its bytes are exactly `size` bytes hashing to
//!   `digest`, checked while they arrive (a body past `size` is refused); the partial file
//!   is `<dest>.part` and is resumed;
//! - [`Source::object`] writes to `out` the zstd-decompressed object, exactly `size` bytes
//!   hashing to `digest`; on an error `out` holds garbage and the caller discards it.
//!
//! `DirSource` opens each file once, without following a symlink and without blocking on a
//! FIFO, and reads it only when that descriptor is a regular file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bundle_format::digest::{Hasher, HashingReader, LimitReader};
use bundle_format::Digest;
use nix::fcntl::OFlag;

use super::error::{write_err, ClientError};

/// A repository's files, by path relative to its root ([`crate::layout`]).
pub trait Source {
    /// A metadata file of at most `cap` bytes; `None` when it does not exist.
    fn meta(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, ClientError>;
    /// A blob, checked while downloading, into `dest`.
    fn blob(&self, rel: &str, digest: &Digest, size: u64, dest: &Path) -> Result<(), ClientError>;
    /// An object (one file's content, zstd-compressed), decompressed into `out`.
    fn object(
        &self,
        rel: &str,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
    ) -> Result<(), ClientError>;
    /// Bytes received so far (compressed, as they came from the server).
    fn bytes_received(&self) -> u64;
}

/// A repository in local directories: the first is the main copy, the others mirrors, tried
/// in order when a file cannot be had from the one before (missing, unreadable or wrong).
#[derive(Debug)]
pub struct DirSource {
    remote: String,
    dirs: Vec<PathBuf>,
    received: AtomicU64,
}

/// The largest zstd window an object may use (as for layers).
const WINDOW_LOG_MAX: u32 = bundle_format::layer::WINDOW_LOG;

impl DirSource {
    /// `remote` names the remote in errors.
    pub fn new(remote: &str, dirs: Vec<PathBuf>) -> Self {
        Self {
            remote: remote.into(),
            dirs,
            received: AtomicU64::new(0),
        }
    }

    /// From `file://` URLs (the main URL first, then the mirrors); `None` when one is not a
    /// `file://` URL of an absolute path.
    pub fn from_urls(remote: &str, urls: &[String]) -> Option<Self> {
        let dirs = urls
            .iter()
            .map(|u| u.strip_prefix("file://").filter(|p| p.starts_with('/')))
            .map(|p| p.map(PathBuf::from))
            .collect::<Option<Vec<_>>>()?;
        Some(Self::new(remote, dirs))
    }

    fn fetch_err(&self, rel: &str) -> impl FnOnce(io::Error) -> ClientError + '_ {
        let file = rel.to_owned();
        move |source| ClientError::Fetch {
            remote: self.remote.clone(),
            file,
            source,
        }
    }

    fn digest_err(&self, rel: &str, digest: &Digest, size: u64) -> ClientError {
        ClientError::Digest {
            remote: self.remote.clone(),
            file: rel.into(),
            expected: *digest,
            size,
        }
    }

    /// Opens `rel` below `dir`: a regular file, reached without following a final symlink.
    fn open(&self, dir: &Path, rel: &str) -> io::Result<Counted<'_>> {
        if rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a relative path",
            ));
        }
        let f = OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
            .open(dir.join(rel))?;
        if !f.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file",
            ));
        }
        Ok(Counted {
            file: f,
            count: &self.received,
        })
    }

    /// Tries `op` on each directory in turn: the first success wins; `None` when every copy
    /// lacks the file; otherwise the first error.
    fn each<T>(
        &self,
        rel: &str,
        mut op: impl FnMut(Counted<'_>) -> Result<T, ClientError>,
    ) -> Result<Option<T>, ClientError> {
        let mut first_err = None;
        for dir in &self.dirs {
            let r = match self.open(dir, rel) {
                Ok(f) => op(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => Err(self.fetch_err(rel)(e)),
            };
            match r {
                Ok(v) => return Ok(Some(v)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(None), Err)
    }
}

/// A file whose reads are counted as received bytes.
struct Counted<'a> {
    file: File,
    count: &'a AtomicU64,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Source for DirSource {
    fn meta(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, ClientError> {
        self.each(rel, |f| {
            let mut bytes = Vec::new();
            f.take(cap.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(self.fetch_err(rel))?;
            if bytes.len() as u64 > cap {
                return Err(ClientError::TooLarge {
                    remote: self.remote.clone(),
                    file: rel.into(),
                    cap,
                });
            }
            Ok(bytes)
        })?
        .map_or(Ok(None), |b| Ok(Some(b)))
    }

    fn blob(&self, rel: &str, digest: &Digest, size: u64, dest: &Path) -> Result<(), ClientError> {
        let part = part_path(dest);
        let found = self.each(rel, |mut f| {
            let (mut out, mut hasher) = resume(&part, size)?;
            f.file
                .seek(io::SeekFrom::Start(hasher.len()))
                .map_err(self.fetch_err(rel))?;
            // One byte more than is missing: a longer body is refused, not cut.
            let mut body = (&mut f).take(size - hasher.len() + 1);
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.fetch_err(rel)(e)),
                };
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(write_err(&part))?;
            }
            if hasher.len() != size || hasher.finish() != *digest {
                let _ = fs::remove_file(&part);
                return Err(self.digest_err(rel, digest, size));
            }
            out.sync_all().map_err(write_err(&part))?;
            fs::rename(&part, dest).map_err(write_err(dest))
        })?;
        found.ok_or_else(|| ClientError::Missing {
            remote: self.remote.clone(),
            file: rel.into(),
        })
    }

    fn object(
        &self,
        rel: &str,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
    ) -> Result<(), ClientError> {
        // Bytes already written cannot be taken back: only opening falls over to a mirror.
        let opened = self
            .dirs
            .iter()
            .find_map(|d| self.open(d, rel).ok())
            .ok_or_else(|| ClientError::Missing {
                remote: self.remote.clone(),
                file: rel.into(),
            })?;
        let bad = || self.digest_err(rel, digest, size);
        let mut z = zstd::stream::read::Decoder::new(opened).map_err(self.fetch_err(rel))?;
        z.window_log_max(WINDOW_LOG_MAX)
            .map_err(self.fetch_err(rel))?;
        let mut body = HashingReader::new(LimitReader::new(z, size));
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Past the size, or not zstd: the object is not what the TOC names.
                Err(_) => return Err(bad()),
            };
            out.write_all(&buf[..n]).map_err(self.fetch_err(rel))?;
        }
        let (_, got, len) = body.into_parts();
        if len != size || got != *digest {
            return Err(bad());
        }
        Ok(())
    }

    fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// `<dest>.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut p = dest.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

/// Opens `part` for appending and hashes what it holds already (a part file longer than
/// `size`, or not a regular file, is started over).
fn resume(part: &Path, size: u64) -> Result<(File, Hasher), ClientError> {
    if fs::symlink_metadata(part).is_ok_and(|m| !m.is_file() || m.len() > size) {
        fs::remove_file(part).map_err(write_err(part))?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(part)
        .map_err(write_err(part))?;
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok((f, hasher)),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(write_err(part)(e)),
        }
    }
}
