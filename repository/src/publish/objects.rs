//! Per-file objects: one `objects/sha256/<hh>/<hex>.zst` per distinct regular file of a
//! bundle's layers, zstd level 19 of the file's content (frame header with the content size),
//! named by the sha256 the layer's TOC gives. Clients fetch only the files they lack.
//!
//! Every layer is streamed once through [`Bundle::read_layer`] (which checks the layer blob's
//! digest and every entry against the TOC); each file not yet stored is hashed again while it
//! is read here, and an object is renamed into place only when its content has the TOC's
//! sha256 and size, so no object ever holds other bytes than its name says. Files up to
//! [`IN_MEMORY`] are compressed by a pool of threads; larger ones are streamed through a
//! multithreaded encoder.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;

use bundle_format::digest::HashingReader;
use bundle_format::{Bundle, Digest, EntryKind, Toc};

use super::error::PublishError;
use super::fsio::RepoDir;
use crate::layout;

/// The zstd level of objects.
pub const LEVEL: i32 = 19;
/// Files up to this size are read into memory and compressed by the pool.
pub const IN_MEMORY: u64 = 16 << 20;

/// What storing the objects of a bundle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectStats {
    /// Objects written by this command, and their compressed bytes.
    pub new: usize,
    pub new_bytes: u64,
    /// Distinct files that already had their object.
    pub shared: usize,
}

fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

fn mismatch(e_path: &str, want: &Digest, got: &Digest, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{e_path}: {len} bytes of sha256 {got}, the table of contents says {want}"),
    )
}

/// Stores the object of every regular file of `bundle`'s layers that the repository lacks.
pub fn store(dir: &RepoDir, bundle: &Bundle, tocs: &[Toc]) -> Result<ObjectStats, PublishError> {
    let n = workers();
    let (tx, rx) = sync_channel::<(Digest, Vec<u8>)>(n * 2);
    let rx = Mutex::new(rx);
    let failed: Mutex<Option<PublishError>> = Mutex::new(None);
    let written: Mutex<(usize, u64)> = Mutex::new((0, 0));
    let mut stats = ObjectStats::default();
    let result = std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| worker(dir, &rx, &failed, &written));
        }
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut out = Ok(());
        for (layer, toc) in bundle.manifest().layers.iter().zip(tocs) {
            let r = bundle.read_layer(layer, toc, |e, content| {
                if failed.lock().map_or(true, |f| f.is_some()) {
                    return Err(io::Error::other("an object could not be written"));
                }
                let (EntryKind::File, Some(want)) = (e.kind, e.sha256) else {
                    return io::copy(content, &mut io::sink()).map(drop);
                };
                if !seen.insert(want) {
                    return io::copy(content, &mut io::sink()).map(drop);
                }
                if exists(dir, &want)? {
                    stats.shared += 1;
                    return io::copy(content, &mut io::sink()).map(drop);
                }
                let path = e.path.as_str();
                if e.size <= IN_MEMORY {
                    let mut h = HashingReader::new(content.take(e.size + 1));
                    let mut buf = Vec::with_capacity(e.size as usize);
                    h.read_to_end(&mut buf)?;
                    let (_, got, len) = h.into_parts();
                    if got != want || len != e.size {
                        return Err(mismatch(path, &want, &got, len));
                    }
                    tx.send((want, buf))
                        .map_err(|_| io::Error::other("the compression threads ended"))
                } else {
                    let bytes = stream(dir, &want, e.size, path, content, n)
                        .map_err(|err| io::Error::other(err.to_string()))?;
                    let mut w = written.lock().unwrap_or_else(|p| p.into_inner());
                    w.0 += 1;
                    w.1 += bytes;
                    Ok(())
                }
            });
            if let Err(e) = r {
                out = Err(PublishError::Bundle {
                    path: bundle.path().to_path_buf(),
                    source: e,
                });
                break;
            }
        }
        drop(tx);
        out
    });
    // Threads have ended: a worker's error explains a producer's "could not be written".
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    result?;
    let (new, new_bytes) = written.into_inner().unwrap_or_else(|p| p.into_inner());
    stats.new = new;
    stats.new_bytes = new_bytes;
    Ok(stats)
}

/// Whether the object of `d` is stored (objects are only ever renamed into place whole).
fn exists(dir: &RepoDir, d: &Digest) -> io::Result<bool> {
    dir.size(&layout::object(d))
        .map(|s| s.is_some())
        .map_err(|e| io::Error::other(e.to_string()))
}

/// One compression thread: takes files off the queue until it closes or something failed.
fn worker(
    dir: &RepoDir,
    rx: &Mutex<Receiver<(Digest, Vec<u8>)>>,
    failed: &Mutex<Option<PublishError>>,
    written: &Mutex<(usize, u64)>,
) {
    let mut z = match zstd::bulk::Compressor::new(LEVEL) {
        Ok(z) => z,
        Err(source) => {
            record(
                failed,
                PublishError::Io {
                    op: "start a zstd compressor for",
                    path: dir.full("objects"),
                    source,
                },
            );
            return;
        }
    };
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((digest, content)) = next else { return };
        let rel = layout::object(&digest);
        let r = z
            .compress(&content)
            .map_err(|source| PublishError::Io {
                op: "compress",
                path: dir.full(&rel),
                source,
            })
            .and_then(|packed| {
                dir.write_nosync_dir(&rel, |f| f.write_all(&packed))?;
                Ok(packed.len() as u64)
            });
        match r {
            Ok(bytes) => {
                let mut w = written.lock().unwrap_or_else(|p| p.into_inner());
                w.0 += 1;
                w.1 += bytes;
            }
            Err(e) => {
                record(failed, e);
                // Keep draining, so the producer never blocks on a full queue.
            }
        }
    }
}

fn record(failed: &Mutex<Option<PublishError>>, e: PublishError) {
    let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
    if f.is_none() {
        *f = Some(e);
    }
}

/// Compresses one large file straight into its object, checking its hash before the rename.
/// Returns the compressed size.
fn stream(
    dir: &RepoDir,
    want: &Digest,
    size: u64,
    path: &str,
    content: &mut dyn Read,
    threads: usize,
) -> Result<u64, PublishError> {
    let rel = layout::object(want);
    let mut packed = 0;
    dir.write_nosync_dir(&rel, |f| {
        let mut enc = zstd::stream::write::Encoder::new(CountingWriter::new(f), LEVEL)?;
        enc.include_contentsize(true)?;
        enc.set_pledged_src_size(Some(size))?;
        enc.multithread(threads as u32)?;
        let mut h = HashingReader::new(content.take(size + 1));
        io::copy(&mut h, &mut enc)?;
        let (_, got, len) = h.into_parts();
        if got != *want || len != size {
            return Err(mismatch(path, want, &got, len));
        }
        packed = enc.finish()?.count;
        Ok(())
    })?;
    Ok(packed)
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W> CountingWriter<W> {
    fn new(inner: W) -> Self {
        Self { inner, count: 0 }
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
