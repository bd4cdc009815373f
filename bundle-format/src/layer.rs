//! Layer blobs: a deterministic tar stream compressed with zstd (an OCI `tar+zstd` layer),
//! written with its table of contents, and read back with every header and byte checked
//! against that table of contents.
//!
//! Writing is reproducible: entries in the caller's (sorted) order, GNU headers, uid/gid 0, no
//! user or group names, one fixed mtime, normalized modes, and pinned zstd parameters (level,
//! window log 27, long-distance matching, checksums, multithreaded mode, whose output does not
//! depend on the number of worker threads). Reading streams: nothing is held in memory but one
//! buffer, and the decompressed size is capped at the declared `tar_size`.

use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use zstd::zstd_safe::CParameter;

use crate::digest::{Digest, HashingReader, HashingWriter, LimitReader};
use crate::error::{read_err, Error, Result};
use crate::manifest::Layer;
use crate::path::{BundlePath, MAX_PATH_LEN};
use crate::toc::{EntryKind, Toc, TocEntry};

/// zstd window log used for writing and the largest accepted for reading (128 MiB).
pub const WINDOW_LOG: u32 = 27;
/// Largest decompressed TOC or report blob.
pub const MAX_META_LEN: u64 = 256 << 20;

/// The window log for a stream of about `bytes`: `ceil(log2(bytes))`, within 20..=27.
pub fn window_log_for(bytes: u64) -> u32 {
    let need = 64 - bytes.saturating_sub(1).leading_zeros();
    need.clamp(20, WINDOW_LOG)
}

/// Compression settings.
#[derive(Debug, Clone, Copy)]
pub struct Compression {
    /// zstd level, 1..=22.
    pub level: i32,
    /// Worker threads (at least 1; output is identical for any count).
    pub threads: u32,
}

/// Digests and sizes of a finished layer blob.
#[derive(Debug, Clone, Copy)]
pub struct LayerStats {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub tar_size: u64,
}

type Zw = crate::zwrite::Encoder<HashingWriter<BufWriter<File>>>;

/// Writes one layer blob into a file, collecting its TOC.
pub struct LayerWriter {
    tar: tar::Builder<HashingWriter<Zw>>,
    entries: Vec<TocEntry>,
    mtime: u64,
    compressed: Arc<AtomicU64>,
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl LayerWriter {
    /// Starts a layer that will be written to `out`.
    pub fn new(out: File, c: Compression, mtime: u64) -> io::Result<Self> {
        Self::with_window(out, c, mtime, WINDOW_LOG)
    }

    /// Starts a layer whose tar stream will be about `expected` bytes: the zstd window is the
    /// smallest power of two that holds it (between 2^20 and 2^27 bytes). A window larger than
    /// the data finds no more matches but costs its whole size in memory (zstd does not know
    /// the size of a stream up front), so this compresses exactly as well with far less memory.
    /// The window depends only on `expected`, so the output stays reproducible.
    pub fn for_size(out: File, c: Compression, mtime: u64, expected: u64) -> io::Result<Self> {
        Self::with_window(out, c, mtime, window_log_for(expected))
    }

    fn with_window(out: File, c: Compression, mtime: u64, window_log: u32) -> io::Result<Self> {
        let params = [
            CParameter::CompressionLevel(c.level),
            CParameter::NbWorkers(c.threads.max(1)),
            CParameter::EnableLongDistanceMatching(true),
            CParameter::WindowLog(window_log),
            CParameter::ChecksumFlag(true),
            CParameter::ContentSizeFlag(false),
        ];
        let compressed = Arc::new(AtomicU64::new(0));
        let out = HashingWriter::new(BufWriter::new(out));
        let z = crate::zwrite::Encoder::new(out, &params, compressed.clone())?;
        Ok(Self {
            tar: tar::Builder::new(HashingWriter::new(z)),
            entries: Vec::new(),
            mtime,
            compressed,
        })
    }

    /// The bytes of the tar stream compressed so far, for a progress bar on another thread:
    /// in multithreaded mode most are compressed in [`LayerWriter::finish`].
    pub fn compressed(&self) -> Arc<AtomicU64> {
        self.compressed.clone()
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        path: &BundlePath,
        kind: EntryKind,
        mode: u32,
        size: u64,
        mtime: u64,
        sha: Option<Digest>,
        target: Option<String>,
    ) {
        self.entries.push(TocEntry {
            path: path.clone(),
            kind,
            mode,
            size,
            mtime,
            sha256: sha,
            target,
        });
    }

    pub fn add_dir(&mut self, path: &BundlePath) -> io::Result<()> {
        let mut h = header(tar::EntryType::Directory, 0o755, 0, self.mtime);
        self.tar.append_data(&mut h, path.as_str(), io::empty())?;
        self.push(path, EntryKind::Dir, 0o755, 0, self.mtime, None, None);
        Ok(())
    }

    /// Adds a regular file of exactly `size` bytes read from `content`, with the layer's mtime.
    pub fn add_file(
        &mut self,
        path: &BundlePath,
        executable: bool,
        size: u64,
        content: impl Read,
    ) -> io::Result<()> {
        self.add_file_at(path, executable, self.mtime, size, content)
    }

    /// Adds a regular file with its own mtime (kept so that caches keyed on it, such as
    /// Python's `.pyc` files, stay valid).
    pub fn add_file_at(
        &mut self,
        path: &BundlePath,
        executable: bool,
        mtime: u64,
        size: u64,
        content: impl Read,
    ) -> io::Result<()> {
        let mode = if executable { 0o755 } else { 0o644 };
        let mut h = header(tar::EntryType::Regular, mode, size, mtime);
        let mut hashed = HashingReader::new(content.take(size));
        self.tar.append_data(&mut h, path.as_str(), &mut hashed)?;
        if hashed.len() != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path} changed size while being packed"),
            ));
        }
        let (_, digest, _) = hashed.into_parts();
        self.push(path, EntryKind::File, mode, size, mtime, Some(digest), None);
        Ok(())
    }

    pub fn add_symlink(&mut self, path: &BundlePath, target: &str) -> io::Result<()> {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, self.mtime);
        self.tar.append_link(&mut h, path.as_str(), target)?;
        self.push(
            path,
            EntryKind::Symlink,
            0o777,
            0,
            self.mtime,
            None,
            Some(target.to_owned()),
        );
        Ok(())
    }

    pub fn add_hardlink(&mut self, path: &BundlePath, target: &BundlePath) -> io::Result<()> {
        let mut h = header(tar::EntryType::Link, 0o777, 0, self.mtime);
        self.tar
            .append_link(&mut h, path.as_str(), target.as_str())?;
        self.push(
            path,
            EntryKind::Hardlink,
            0o777,
            0,
            self.mtime,
            None,
            Some(target.as_str().to_owned()),
        );
        Ok(())
    }

    /// Ends the tar stream and the zstd frame; checks the TOC invariants.
    pub fn finish(self) -> Result<(File, LayerStats, Toc)> {
        let werr = |source| Error::Write {
            path: "layer blob".into(),
            source,
        };
        let counted = self.tar.into_inner().map_err(werr)?;
        let (z, diff_id, tar_size) = counted.into_parts();
        let (buf, digest, size) = z.finish().map_err(werr)?.into_parts();
        let file = buf.into_inner().map_err(|e| werr(e.into_error()))?;
        let toc = Toc {
            entries: self.entries,
        };
        toc.validate().map_err(|source| Error::Toc {
            layer: "new layer".into(),
            source,
        })?;
        Ok((
            file,
            LayerStats {
                digest,
                size,
                diff_id,
                tar_size,
            },
            toc,
        ))
    }
}

/// Compresses a metadata blob (TOC, report) deterministically.
pub fn compress_meta(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 19).expect("in-memory zstd compression")
}

/// Decompresses a metadata blob with a size cap (at most [`MAX_META_LEN`]).
pub fn decompress_meta(blob: impl Read, what: &str, cap: u64) -> Result<Vec<u8>> {
    let mut d = zstd::stream::read::Decoder::new(blob).map_err(read_err(what))?;
    d.window_log_max(WINDOW_LOG).map_err(read_err(what))?;
    let mut out = Vec::new();
    LimitReader::new(d, cap.min(MAX_META_LEN))
        .read_to_end(&mut out)
        .map_err(read_err(what))?;
    Ok(out)
}

/// Streams a layer blob, checking every tar header and every byte against `toc`, and hands each
/// entry to `sink` (files with a reader over their content; other kinds with an empty reader).
/// The sink never receives more content bytes in total than the layer's `unpacked_size`.
/// Fails on the first mismatch; callers must not keep what the sink saw on failure.
pub fn read_layer(
    blob: impl Read,
    layer: &Layer,
    toc: &Toc,
    mut sink: impl FnMut(&TocEntry, &mut dyn Read) -> io::Result<()>,
) -> Result<()> {
    let name = format!("layer {}", layer.role.as_str());
    let entry_err = |e: &TocEntry, problem: String| Error::Entry {
        layer: name.clone(),
        entry: e.path.to_string(),
        problem,
    };
    let mut d = zstd::stream::read::Decoder::new(blob).map_err(read_err(&name))?;
    d.window_log_max(WINDOW_LOG).map_err(read_err(&name))?;
    let mut archive = tar::Archive::new(HashingReader::new(LimitReader::new(d, layer.tar_size)));
    let mut index = 0usize;
    // Content bytes the manifest still allows: an entry that would take more is refused
    // before its first byte reaches the sink, whatever TOC the caller passed.
    let mut budget = layer.unpacked_size;
    // Raw entries: left to itself, the tar crate reads GNU long names and PAX headers of any
    // size into memory and collects GNU sparse maps of any length before returning an entry.
    // Long names and links are read here with a cap; PAX and sparse entries are refused below.
    let (mut long_name, mut long_link) = (None, None);
    for entry in archive.entries().map_err(read_err(&name))?.raw(true) {
        let mut entry = entry.map_err(read_err(&name))?;
        let t = entry.header().entry_type();
        if t.is_gnu_longname() || t.is_gnu_longlink() {
            let slot = if t.is_gnu_longname() {
                &mut long_name
            } else {
                &mut long_link
            };
            if slot.is_some() || entry.size() > MAX_PATH_LEN as u64 + 1 {
                let problem = format!(
                    "GNU long name or link of {} bytes, or two for one entry",
                    entry.size()
                );
                return Err(Error::Damaged {
                    part: name,
                    problem,
                });
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(read_err(&name))?;
            if bytes.last() == Some(&0) {
                bytes.pop();
            }
            *slot = Some(bytes);
            continue;
        }
        let Some(want) = toc.entries.get(index) else {
            return Err(Error::Damaged {
                part: name,
                problem: "more tar entries than the table of contents lists".into(),
            });
        };
        index += 1;
        let h = entry.header();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Regular => EntryKind::File,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Link => EntryKind::Hardlink,
            other => return Err(entry_err(want, format!("entry type {other:?} is not allowed (devices, fifos, sparse files, pax headers...)"))),
        };
        let path_bytes = long_name
            .take()
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        let path = BundlePath::from_archive_bytes(&path_bytes)
            .map_err(|why| entry_err(want, format!("bad path: {why}")))?;
        let mode = h.mode().map_err(read_err(&name))?;
        let mtime = h.mtime().map_err(read_err(&name))?;
        let link = long_link
            .take()
            .or_else(|| entry.link_name_bytes().map(|b| b.into_owned()));
        let target = link.map(|b| String::from_utf8_lossy(&b).into_owned());
        if path != want.path
            || kind != want.kind
            || mode != want.mode
            || entry.size() != want.size
            || target != want.target
            || mtime != want.mtime
        {
            return Err(entry_err(want, format!("header does not match the table of contents (found {path} {kind:?} {mode:o} size {})", entry.size())));
        }
        if entry.pax_extensions().map_err(read_err(&name))?.is_some() {
            return Err(entry_err(
                want,
                "pax extended headers (xattrs, sizes) are not allowed".into(),
            ));
        }
        budget = budget.checked_sub(want.size).ok_or_else(|| {
            entry_err(
                want,
                format!(
                    "the layer's files exceed its declared unpacked size of {} bytes (manifest field layers.unpacked_size)",
                    layer.unpacked_size
                ),
            )
        })?;
        let mut content = HashingReader::new(&mut entry);
        sink(want, &mut content).map_err(|source| Error::Extract {
            path: want.path.to_absolute(),
            source,
        })?;
        io::copy(&mut content, &mut io::sink()).map_err(read_err(&name))?;
        let (_, digest, len) = content.into_parts();
        if len != want.size {
            return Err(entry_err(want, "content is shorter than declared".into()));
        }
        if let Some(expected) = want.sha256 {
            if digest != expected {
                return Err(Error::DigestMismatch {
                    part: format!("{name}: {}", want.path),
                    expected,
                    actual: digest,
                });
            }
        }
    }
    if index != toc.entries.len() || long_name.is_some() || long_link.is_some() {
        return Err(Error::Damaged {
            part: name,
            problem: "fewer tar entries than the table of contents lists".into(),
        });
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(read_err(&name))?;
    let (_, diff_id, tar_size) = rest.into_parts();
    if tar_size != layer.tar_size {
        return Err(Error::Damaged {
            part: name,
            problem: format!(
                "tar stream is {tar_size} bytes, manifest says {}",
                layer.tar_size
            ),
        });
    }
    if diff_id != layer.diff_id {
        return Err(Error::DigestMismatch {
            part: format!("{name} (uncompressed)"),
            expected: layer.diff_id,
            actual: diff_id,
        });
    }
    Ok(())
}

/// Writes to nothing; used where only validation is wanted.
pub fn discard(_: &TocEntry, r: &mut dyn Read) -> io::Result<()> {
    io::copy(r, &mut io::sink()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::window_log_for;

    #[test]
    fn the_window_holds_the_stream_within_the_limits() {
        assert_eq!(window_log_for(0), 20);
        assert_eq!(window_log_for(1 << 20), 20);
        assert_eq!(window_log_for((1 << 20) + 1), 21);
        assert_eq!(window_log_for(34_056_192), 26);
        assert_eq!(window_log_for(1 << 27), 27);
        assert_eq!(window_log_for(u64::MAX), 27);
    }
}
