//! A release's bundle file, put together from the repository's pieces: `head ‖ blobs at their
//! offsets (zero gaps) ‖ tail` is the bundle file byte for byte.
//!
//! [`fetch_parts`] fetches the head and the tail (each by its signed digest and size) and
//! checks, before any large download: the parts form a bundle whose sizes add up to the
//! release's; the manifest's sha256 is the release's `manifest` and its id the app's
//! (mix-and-match); the signature block holds a valid signature by the app's publisher.
//! [`assemble`] then writes the file: every blob fetched (checked while downloading, and
//! hashed again while copied) or, for layers whose tree the store has sealed, left as a hole.
//! A file without holes must hash to the release's `bundle` digest; a sparse one is opened as a
//! bundle and its manifest digest checked (its holes are covered by the sealed trees, which
//! `store::install` uses instead of reading them).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::Path;

use bundle_format::container::{decode_table, BlobEntry, Header, Trailer, HEADER_LEN, TRAILER_LEN};
use bundle_format::digest::{Hasher, HashingReader};
use bundle_format::manifest::MAX_MANIFEST_LEN;
use bundle_format::sign::SignatureBlock;
use bundle_format::{BlobRef, Bundle, Digest, Manifest, PublicKey};
use tempfile::TempPath;

use super::error::{read_err, write_err, ClientError, ReleaseProblem};
use super::files::private_dir;
use super::resolve::fetch_exact;
use super::source::Source;
use crate::layout;
use crate::meta::ReleaseDoc;

/// The largest head: a launcher stub of up to 32 MiB, the header, a manifest, a full blob
/// table and the padding.
pub const MAX_HEAD: u64 = (32 << 20) + (MAX_MANIFEST_LEN as u64) + (1 << 20);
/// The largest tail: a full signature block and the trailer.
pub const MAX_TAIL: u64 = bundle_format::container::MAX_SIGNATURES_LEN + TRAILER_LEN;

/// Which release of which app, for errors.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    pub remote: &'a str,
    pub app: &'a str,
    pub release: &'a ReleaseDoc,
}

impl Ctx<'_> {
    pub(crate) fn refuse(&self, problem: ReleaseProblem) -> ClientError {
        ClientError::Release {
            remote: self.remote.into(),
            app: self.app.into(),
            version: self.release.version.clone(),
            problem: Box::new(problem),
        }
    }

    fn not_a_bundle(&self, why: impl Into<String>) -> ClientError {
        self.refuse(ReleaseProblem::NotABundle { why: why.into() })
    }
}

/// The checked head and tail of a release.
#[derive(Debug)]
pub struct Parts {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub manifest: Manifest,
    /// Blob table rows, by offset.
    pub table: Vec<BlobEntry>,
    /// Where the blob region starts in the file (the head's length).
    pub blobs_at: u64,
    /// Where the manifest is in the head.
    manifest_at: std::ops::Range<usize>,
}

impl Parts {
    /// The exact manifest bytes (what the publisher signed, what `manifest` digests).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.head[self.manifest_at.clone()]
    }
}

/// Fetches and checks the head and the tail of `ctx.release` (see the module docs).
pub fn fetch_parts(
    src: &dyn Source,
    ctx: &Ctx,
    publisher: &PublicKey,
) -> Result<Parts, ClientError> {
    let rel = ctx.release;
    let head = fetch_exact(
        ctx.remote,
        src,
        &layout::blob(&rel.head.digest),
        &rel.head,
        MAX_HEAD,
    )?;
    let tail = fetch_exact(
        ctx.remote,
        src,
        &layout::blob(&rel.tail.digest),
        &rel.tail,
        MAX_TAIL,
    )?;
    let parts = parse(ctx, head, tail)?;
    let actual = Digest::of(parts.manifest_bytes());
    if actual != rel.manifest {
        return Err(ctx.refuse(ReleaseProblem::ManifestDigest {
            expected: rel.manifest,
            actual,
        }));
    }
    if parts.manifest.id != ctx.app {
        return Err(ctx.refuse(ReleaseProblem::ManifestApp {
            got: parts.manifest.id.clone(),
        }));
    }
    check_publisher(ctx, &parts, publisher)?;
    Ok(parts)
}

fn header_at(parts_head: &[u8], tail: &[u8], bundle_size: u64) -> Option<(u64, Header, Trailer)> {
    let t: [u8; 64] = tail.get(tail.len().checked_sub(64)?..)?.try_into().ok()?;
    let trailer = Trailer::decode(&t).ok()?;
    let start = bundle_size.checked_sub(trailer.payload_len)?;
    let at = usize::try_from(start).ok()?;
    let h: [u8; 64] = parts_head.get(at..at.checked_add(64)?)?.try_into().ok()?;
    Some((start, Header::decode(&h).ok()?, trailer))
}

/// Checks the fixed parts' shapes and sizes against each other and the release.
fn parse(ctx: &Ctx, head: Vec<u8>, tail: Vec<u8>) -> Result<Parts, ClientError> {
    let size = ctx.release.bundle.size;
    let (start, header, trailer) = header_at(&head, &tail, size)
        .ok_or_else(|| ctx.not_a_bundle("no header or trailer where the sizes put them"))?;
    let blobs_at = header
        .blobs_offset()
        .and_then(|o| o.checked_add(start))
        .ok_or_else(|| ctx.not_a_bundle("part sizes overflow"))?;
    let adds_up = header.payload_len() == Some(trailer.payload_len)
        && header.manifest_len <= MAX_MANIFEST_LEN as u64
        && blobs_at == head.len() as u64
        && tail.len() as u64 == header.signatures_len + TRAILER_LEN
        && blobs_at
            .checked_add(header.blobs_len)
            .and_then(|n| n.checked_add(tail.len() as u64))
            == Some(size);
    if !adds_up {
        return Err(ctx.not_a_bundle(
            "the head, the blob region and the tail do not add up to the bundle's size",
        ));
    }
    let m_at = (start + HEADER_LEN) as usize;
    let m_end = m_at + header.manifest_len as usize;
    let t_end = m_end + header.table_len as usize;
    let table_bytes = head
        .get(m_end..t_end)
        .ok_or_else(|| ctx.not_a_bundle("the blob table is not in the head"))?;
    let manifest = Manifest::from_bytes(&head[m_at..m_end])
        .map_err(|e| ctx.not_a_bundle(format!("manifest: {e}")))?;
    let table = decode_table(table_bytes, header.blobs_len)
        .map_err(|e| ctx.not_a_bundle(format!("blob table: {e}")))?;
    let wanted = manifest.blobs();
    let same = table.len() == wanted.len()
        && wanted.iter().all(|r| {
            table
                .iter()
                .any(|e| e.digest == r.digest && e.len == r.size)
        });
    if !same {
        return Err(ctx.not_a_bundle("the blob table does not list exactly the manifest's blobs"));
    }
    Ok(Parts {
        head,
        tail,
        manifest,
        table,
        blobs_at,
        manifest_at: m_at..m_end,
    })
}

/// A valid signature by `publisher` over the manifest must be in the signature block.
fn check_publisher(ctx: &Ctx, p: &Parts, publisher: &PublicKey) -> Result<(), ClientError> {
    let sigs = &p.tail[..p.tail.len() - TRAILER_LEN as usize];
    let block = SignatureBlock::from_bytes(sigs)
        .map_err(|e| ctx.not_a_bundle(format!("signature block: {e}")))?;
    let m = p.manifest_bytes();
    let signed = block.signatures.iter().any(|s| {
        s.public_key == publisher.to_hex()
            && s.signature_bytes().is_some_and(|b| publisher.verify(m, &b))
    });
    if !signed {
        return Err(ctx.refuse(ReleaseProblem::Publisher {
            key_id: publisher.key_id(),
        }));
    }
    Ok(())
}

/// What goes where a blob belongs.
pub enum Fill {
    /// Fetched from the repository.
    Fetch,
    /// Bytes already fetched and checked (a TOC the update needed).
    Bytes(Vec<u8>),
    /// Left as a hole: the store has the layer's tree sealed.
    Hole,
}

/// Writes the bundle file of `ctx.release` into a temporary file in `downloads`; `fill` says
/// what each blob of the table becomes. Fetched blobs are kept in `downloads/blobs/` until
/// the file is complete, so an interrupted download resumes.
pub fn assemble(
    src: &dyn Source,
    ctx: &Ctx,
    parts: &Parts,
    downloads: &Path,
    fill: &mut dyn FnMut(&BlobEntry) -> Fill,
) -> Result<TempPath, ClientError> {
    let blobs_dir = downloads.join("blobs");
    private_dir(&blobs_dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".bundle-")
        .suffix(".capsa")
        .tempfile_in(downloads)
        .map_err(write_err(downloads))?;
    let path = tmp.path().to_path_buf();
    let file = tmp.as_file().try_clone().map_err(write_err(&path))?;
    file.set_len(ctx.release.bundle.size)
        .map_err(write_err(&path))?;
    let mut w = Writer {
        out: BufWriter::new(file),
        pos: 0,
        whole: Some(Hasher::default()),
        path: &path,
    };
    w.write(&parts.head)?;
    let mut fetched = Vec::new();
    for e in &parts.table {
        let at = parts.blobs_at + e.offset;
        let r = BlobRef {
            digest: e.digest,
            size: e.len,
        };
        match fill(e) {
            Fill::Hole => {
                w.hole_to(at + e.len)?;
                continue;
            }
            Fill::Bytes(b) => {
                w.zeros_to(at)?;
                w.write(&b)?;
            }
            Fill::Fetch => {
                w.zeros_to(at)?;
                let dest = blobs_dir.join(e.digest.hex());
                fetch_blob(src, &r, &dest)?;
                w.copy_checked(ctx, &r, &dest)?;
                fetched.push(dest);
            }
        }
    }
    w.zeros_to(ctx.release.bundle.size - parts.tail.len() as u64)?;
    w.write(&parts.tail)?;
    let whole = w.finish()?;
    check_file(ctx, &path, whole)?;
    for f in fetched {
        let _ = fs::remove_file(f);
    }
    Ok(tmp.into_temp_path())
}

/// The blob `r` at `dest`: kept from an earlier run if it still hashes right, else fetched.
fn fetch_blob(src: &dyn Source, r: &BlobRef, dest: &Path) -> Result<(), ClientError> {
    if let Ok(f) = File::open(dest) {
        let mut h = HashingReader::new(f);
        let ok = io::copy(&mut h, &mut io::sink()).is_ok();
        let (_, d, n) = h.into_parts();
        if ok && d == r.digest && n == r.size {
            return Ok(());
        }
        fs::remove_file(dest).map_err(write_err(dest))?;
    }
    src.blob(&layout::blob(&r.digest), &r.digest, r.size, dest)
}

/// The whole file's digest (when it has no hole) and its manifest, checked.
fn check_file(ctx: &Ctx, path: &Path, whole: Option<Digest>) -> Result<(), ClientError> {
    if let Some(actual) = whole {
        if actual != ctx.release.bundle.digest {
            return Err(ctx.refuse(ReleaseProblem::Assembled {
                expected: ctx.release.bundle.digest,
                actual,
            }));
        }
    }
    let b = Bundle::open(path).map_err(|e| ctx.not_a_bundle(e.to_string()))?;
    if b.manifest_digest() != ctx.release.manifest {
        return Err(ctx.refuse(ReleaseProblem::ManifestDigest {
            expected: ctx.release.manifest,
            actual: b.manifest_digest(),
        }));
    }
    Ok(())
}

/// Sequential writes, hashed while there is no hole.
struct Writer<'p> {
    out: BufWriter<File>,
    pos: u64,
    whole: Option<Hasher>,
    path: &'p Path,
}

impl Writer<'_> {
    fn write(&mut self, b: &[u8]) -> Result<(), ClientError> {
        self.out.write_all(b).map_err(write_err(self.path))?;
        if let Some(h) = &mut self.whole {
            h.update(b);
        }
        self.pos += b.len() as u64;
        Ok(())
    }

    fn zeros_to(&mut self, to: u64) -> Result<(), ClientError> {
        let zeros = [0u8; 4096];
        while self.pos < to {
            let n = (to - self.pos).min(zeros.len() as u64) as usize;
            self.write(&zeros[..n])?;
        }
        Ok(())
    }

    /// Skips to `to`, leaving a hole (the file was sized up front).
    fn hole_to(&mut self, to: u64) -> Result<(), ClientError> {
        self.whole = None;
        self.out
            .seek(io::SeekFrom::Start(to))
            .map_err(write_err(self.path))?;
        self.pos = to;
        Ok(())
    }

    /// Copies the downloaded blob at `from`, hashing it again while copied.
    fn copy_checked(&mut self, ctx: &Ctx, r: &BlobRef, from: &Path) -> Result<(), ClientError> {
        let f = File::open(from).map_err(read_err(from))?;
        let mut h = HashingReader::new(f.take(r.size + 1));
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = h.read(&mut buf).map_err(read_err(from))?;
            if n == 0 {
                break;
            }
            self.write(&buf[..n])?;
        }
        let (_, d, n) = h.into_parts();
        if d != r.digest || n != r.size {
            return Err(ClientError::Digest {
                remote: ctx.remote.into(),
                file: layout::blob(&r.digest),
                expected: r.digest,
                size: r.size,
            });
        }
        Ok(())
    }

    fn finish(self) -> Result<Option<Digest>, ClientError> {
        let path = self.path;
        let f = self
            .out
            .into_inner()
            .map_err(|e| write_err(path)(e.into_error()))?;
        f.sync_all().map_err(write_err(path))?;
        Ok(self.whole.map(Hasher::finish))
    }
}
