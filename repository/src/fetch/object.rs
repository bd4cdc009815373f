//! Objects: one regular file's content as a zstd stream, decompressed into the caller's writer.
//!
//! Invariants:
//! - At most [`compressed_cap`]`(size)` compressed bytes are read (one more is refused):
//!   zstd's own worst case for `size` bytes (`ZSTD_compressBound`: the content stored raw in
//!   128 KiB blocks, with their headers and the frame header and checksum) plus
//!   [`SLACK`] for what another encoder may add (a larger frame header, an empty last block,
//!   a skippable frame). Without this bound, a stream of empty frames would produce no output
//!   and never end.
//! - At most `size + 1` decompressed bytes are produced (one more is refused), so a
//!   decompression bomb stops at the signed size.
//! - The output must be exactly `size` bytes with sha256 `digest` (of the uncompressed
//!   content). The caller's writer sees the bytes as they are checked: on an error it holds a
//!   prefix to throw away. Once it received a byte, no other source is tried (it cannot be
//!   rewound); before that, any problem fails over to the next source.
//! - No resume: objects are single files, fetched whole.

use std::io::{self, BufReader, Read, Write};

use bundle_format::digest::Hasher;
use bundle_format::Digest;

use super::source::{RelPath, Source};
use super::{next_read_len, Fail, Fetcher, CHUNK};
use crate::error::{FetchError, Problem};

/// Bytes allowed past zstd's compress bound (see the module doc).
pub const SLACK: u64 = 4096;

/// The most compressed bytes an object of `size` bytes may take.
pub fn compressed_cap(size: u64) -> u64 {
    // ZSTD_COMPRESSBOUND(s) = s + s/256 + (s < 128 KiB ? (128 KiB - s) / 2048 : 0), computed in
    // u64 and saturating so that no size makes it wrap or zstd's "too large" zero.
    const BLOCK: u64 = 128 * 1024;
    let small = if size < BLOCK {
        (BLOCK - size) >> 11
    } else {
        0
    };
    size.saturating_add(size >> 8)
        .saturating_add(small)
        .saturating_add(SLACK)
}

/// See [`Fetcher::get_object`].
pub(crate) fn get(
    fetcher: &Fetcher,
    rel: &RelPath<'_>,
    digest: &Digest,
    size: u64,
    out: &mut dyn Write,
) -> Result<(), FetchError> {
    fetcher.each_source(rel, |source| once(fetcher, source, rel, digest, size, out))
}

/// One try at one source.
fn once(
    fetcher: &Fetcher,
    source: &Source,
    rel: &RelPath<'_>,
    digest: &Digest,
    size: u64,
    out: &mut dyn Write,
) -> Result<(), Fail> {
    let answer = fetcher.open(source, rel, 0).map_err(Fail::Next)?;
    let cap = compressed_cap(size);
    let capped = Capped {
        inner: answer.body,
        cap,
        read: 0,
        failed: None,
    };
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(CHUNK, capped))
            .map_err(|e| Fail::Next(Problem::Decompress(e)))?;
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; CHUNK];
    // A problem is final once the writer got a byte.
    let fail = |hasher: &Hasher, problem| {
        if hasher.is_empty() {
            Fail::Next(problem)
        } else {
            Fail::Last(problem)
        }
    };
    loop {
        let n = match decoder.read(&mut buf[..next_read_len(hasher.len(), size)]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let problem = decoder
                    .get_mut()
                    .get_mut()
                    .failed
                    .take()
                    .unwrap_or(Problem::Decompress(e));
                return Err(fail(&hasher, problem));
            }
        };
        if hasher.len() + n as u64 > size {
            return Err(fail(&hasher, Problem::TooLong { size }));
        }
        out.write_all(&buf[..n]).map_err(|source| {
            Fail::Abort(FetchError::WriteObject {
                path: rel.as_str().to_owned(),
                source,
            })
        })?;
        hasher.update(&buf[..n]);
    }
    if hasher.len() < size {
        return Err(fail(
            &hasher,
            Problem::Short {
                got: hasher.len(),
                size,
            },
        ));
    }
    let actual = hasher.clone().finish();
    if actual != *digest {
        let problem = Problem::DigestMismatch {
            expected: *digest,
            actual,
        };
        return Err(fail(&hasher, problem));
    }
    Ok(())
}

/// The compressed body, failing past `cap` bytes, and keeping its own failure typed (the zstd
/// decoder passes it on as a bare `io::Error`).
struct Capped<'a> {
    inner: Box<dyn Read + 'a>,
    cap: u64,
    read: u64,
    failed: Option<Problem>,
}

impl Read for Capped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = next_read_len(self.read, self.cap).min(buf.len());
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let message = e.to_string();
                self.failed = Some(Problem::Read(e));
                return Err(io::Error::other(message));
            }
        };
        self.read += n as u64;
        if self.read > self.cap {
            self.failed = Some(Problem::TooLarge { cap: self.cap });
            return Err(io::Error::other("compressed object past its bound"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_is_zstd_bound_plus_slack() {
        for size in [
            0u64,
            1,
            100,
            2047,
            128 * 1024 - 1,
            128 * 1024,
            1 << 20,
            123_456_789,
        ] {
            let bound = zstd::zstd_safe::compress_bound(size as usize) as u64;
            assert_eq!(compressed_cap(size), bound + SLACK, "size {size}");
        }
        assert_eq!(compressed_cap(u64::MAX), u64::MAX);
    }
}
