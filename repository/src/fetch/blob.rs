//! Blobs: streamed to `<dest>.part`, hashed while written, renamed to `dest` once checked.
//!
//! Invariants:
//! - `dest` is only ever the result of `rename(<dest>.part, dest)` after the `.part` held
//!   exactly `size` bytes whose sha256 is the signed digest, fsynced (and the directory
//!   fsynced after the rename).
//! - The `.part` is opened `O_NOFOLLOW` (a link there is refused, never written through),
//!   created `0600`, and must be a regular file; its mode is set to `0600` when it was kept.
//! - The in-memory hash always covers exactly the `.part`'s bytes `0..len`: a kept `.part`
//!   is re-hashed before anything is appended, and every reset truncates it to zero.
//! - A transfer that stops early (a transport error, a stall, a short body) keeps the `.part`
//!   for the next source or the next call, which resumes with `Range: bytes=len-`. A `200`
//!   answer to that (the server ignores ranges) starts over from zero; a `416`, a `206` that
//!   starts at another byte, or a kept `.part` longer than `size` or of the full size but
//!   another digest, starts over too.
//! - Content past `size` (cut at one byte more) or of another digest empties the `.part`;
//!   a `.part` left empty when the call fails is removed.
//! - A resumed transfer whose result has another digest is tried once more from byte zero on
//!   the same source: the kept bytes (from another source, or an earlier command that a
//!   damaging server cut short) may be what was wrong, so a damaged `.part` never makes a
//!   good source fail.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bundle_format::digest::Hasher;
use bundle_format::Digest;
use nix::fcntl::OFlag;

use super::source::{RelPath, Source};
use super::{next_read_len, Fail, Fetcher, CHUNK};
use crate::error::{FetchError, Problem};

/// `dest` with `.part` appended to its file name.
pub(crate) fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// See [`Fetcher::get_blob`].
pub(crate) fn get(
    fetcher: &Fetcher,
    rel: &RelPath<'_>,
    digest: &Digest,
    size: u64,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), FetchError> {
    let want = Want { digest, size };
    let mut part = Part::open(part_path(dest))?;
    if part.len > size || (part.len == size && part.digest() != *digest) {
        part.reset()?;
    }
    let fetched = if part.len == size {
        Ok(())
    } else {
        fetcher.each_source(rel, |source| {
            part.fill(fetcher, source, rel, &want, progress)
        })
    };
    match fetched {
        Ok(()) => part.commit(dest),
        Err(e) => {
            part.remove_if_empty()?;
            Err(e)
        }
    }
}

/// The signed size and digest of the blob.
struct Want<'a> {
    digest: &'a Digest,
    size: u64,
}

/// The `.part` file, its length and the hash of its bytes.
struct Part {
    path: PathBuf,
    file: File,
    len: u64,
    hasher: Hasher,
    /// Whether the last transfer appended to bytes kept from before it.
    resumed: bool,
}

impl Part {
    /// Opens (or creates) the `.part` and hashes what it already holds.
    fn open(path: PathBuf) -> Result<Part, FetchError> {
        let open_err = |source| FetchError::OpenPart {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
            .open(&path)
            .map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if !meta.file_type().is_file() {
            return Err(open_err(io::Error::other("not a regular file")));
        }
        if meta.permissions().mode() & 0o7777 != 0o600 {
            file.set_permissions(PermissionsExt::from_mode(0o600))
                .map_err(open_err)?;
        }
        let mut part = Part {
            path,
            file,
            len: 0,
            hasher: Hasher::default(),
            resumed: false,
        };
        part.rehash()?;
        Ok(part)
    }

    /// Hashes the kept bytes and leaves the file positioned after them.
    fn rehash(&mut self) -> Result<(), FetchError> {
        let read_err = |source| FetchError::ReadPart {
            path: self.path.clone(),
            source,
        };
        self.file.seek(SeekFrom::Start(0)).map_err(read_err)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.hasher.update(&buf[..n]);
                    self.len += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            }
        }
        // Anything appended meanwhile by someone else is dropped: len is what was hashed.
        self.file.set_len(self.len).map_err(read_err)?;
        self.file
            .seek(SeekFrom::Start(self.len))
            .map_err(read_err)?;
        Ok(())
    }

    fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    /// Empties the `.part`: the next transfer starts from byte zero.
    fn reset(&mut self) -> Result<(), FetchError> {
        let write_err = |source| FetchError::WritePart {
            path: self.path.clone(),
            source,
        };
        self.file.set_len(0).map_err(write_err)?;
        self.file.seek(SeekFrom::Start(0)).map_err(write_err)?;
        self.len = 0;
        self.hasher = Hasher::default();
        Ok(())
    }

    /// One try at one source; a resumed transfer that ends in another digest is made again
    /// from byte zero (see the module doc).
    fn fill(
        &mut self,
        fetcher: &Fetcher,
        source: &Source,
        rel: &RelPath<'_>,
        want: &Want<'_>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), Fail> {
        match self.transfer(fetcher, source, rel, want, progress) {
            Err(Fail::Next(Problem::DigestMismatch { .. })) if self.resumed => {
                self.transfer(fetcher, source, rel, want, progress)
            }
            other => other,
        }
    }

    /// The rest of the blob from `source`, or the whole of it again.
    fn transfer(
        &mut self,
        fetcher: &Fetcher,
        source: &Source,
        rel: &RelPath<'_>,
        want: &Want<'_>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), Fail> {
        let answer = match fetcher.open(source, rel, self.len) {
            // The server cannot resume, or resumes elsewhere: start over from zero with it.
            Err(Problem::RangeNotSatisfiable { .. } | Problem::BadContentRange { .. })
                if self.len > 0 =>
            {
                self.reset().map_err(Fail::Abort)?;
                fetcher.open(source, rel, 0)
            }
            other => other,
        }
        .map_err(Fail::Next)?;
        if answer.offset != self.len {
            self.reset().map_err(Fail::Abort)?;
        }
        self.resumed = self.len > 0;
        progress(self.len, want.size);
        self.stream(answer.body, want, progress)?;
        if self.len < want.size {
            return Err(Fail::Next(Problem::Short {
                got: self.len,
                size: want.size,
            }));
        }
        let actual = self.digest();
        if actual != *want.digest {
            self.reset().map_err(Fail::Abort)?;
            return Err(Fail::Next(Problem::DigestMismatch {
                expected: *want.digest,
                actual,
            }));
        }
        Ok(())
    }

    /// Appends the body, cut one byte past the size. Everything received before a transport
    /// error stays in the `.part`.
    fn stream(
        &mut self,
        mut body: impl Read,
        want: &Want<'_>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), Fail> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match body.read(&mut buf[..next_read_len(self.len, want.size)]) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fail::Next(Problem::Read(e))),
            };
            if self.len + n as u64 > want.size {
                self.reset().map_err(Fail::Abort)?;
                return Err(Fail::Next(Problem::TooLong { size: want.size }));
            }
            self.file.write_all(&buf[..n]).map_err(|source| {
                Fail::Abort(FetchError::WritePart {
                    path: self.path.clone(),
                    source,
                })
            })?;
            self.hasher.update(&buf[..n]);
            self.len += n as u64;
            progress(self.len, want.size);
        }
    }

    /// fsync, rename to `dest`, fsync the directory.
    fn commit(self, dest: &Path) -> Result<(), FetchError> {
        let commit_err = |source| FetchError::CommitPart {
            from: self.path.clone(),
            to: dest.to_path_buf(),
            source,
        };
        self.file.sync_all().map_err(commit_err)?;
        std::fs::rename(&self.path, dest).map_err(commit_err)?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(commit_err)
    }

    fn remove_if_empty(self) -> Result<(), FetchError> {
        if self.len > 0 {
            return Ok(());
        }
        drop(self.file);
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FetchError::RemovePart {
                path: self.path,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}
