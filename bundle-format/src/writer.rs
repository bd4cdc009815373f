//! Assembles a bundle file from a manifest and its blobs, atomically: written to a temporary
//! file beside the destination, synced, then renamed over it. A failure leaves no file behind.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::container::{encode_table, BlobEntry, Header, Trailer, ALIGN, HEADER_LEN};
use crate::digest::{Digest, Hasher, HashingReader};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::sign::{SecretKey, SignatureBlock, SignatureEntry};

/// Where a blob's bytes come from.
#[derive(Debug, Clone)]
pub enum BlobData {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// Writes `manifest` and `blobs` (one for every blob the manifest references) to `out`.
/// Every blob is re-hashed while copied, so a blob that changed since it was made is caught.
pub fn write_bundle(
    out: &Path,
    manifest: &Manifest,
    blobs: &[(Digest, BlobData)],
    signatures: &[SignatureEntry],
) -> Result<()> {
    let manifest_bytes = manifest.to_bytes()?;
    let sig_bytes = SignatureBlock {
        signatures: signatures.to_vec(),
    }
    .to_bytes();
    let mut table = Vec::new();
    let mut offset = 0u64;
    let mut ordered = Vec::new();
    for r in manifest.blobs() {
        let data = blobs
            .iter()
            .find(|(d, _)| *d == r.digest)
            .map(|(_, b)| b)
            .ok_or_else(|| Error::Compose(format!("no data for blob {}", r.digest)))?;
        offset = offset.next_multiple_of(ALIGN);
        table.push(BlobEntry {
            digest: r.digest,
            offset,
            len: r.size,
        });
        ordered.push((r, data));
        offset += r.size;
    }
    let table_bytes = encode_table(&table);
    let header = Header {
        manifest_len: manifest_bytes.len() as u64,
        table_len: table_bytes.len() as u64,
        blobs_len: offset,
        signatures_len: sig_bytes.len() as u64,
    };
    let header_bytes = header.encode();
    let mut meta = Hasher::default();
    for part in [&header_bytes[..], &manifest_bytes, &table_bytes, &sig_bytes] {
        meta.update(part);
    }
    let trailer = Trailer {
        payload_len: header.payload_len().expect("sizes fit in u64"),
        meta_digest: meta.finish(),
    };

    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let werr = |source: io::Error| Error::Write {
        path: out.to_path_buf(),
        source,
    };
    let tmp = tempfile::Builder::new()
        .prefix(".capsa-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(werr)?;
    let mut w = BufWriter::new(tmp.as_file());
    w.write_all(&header_bytes).map_err(werr)?;
    w.write_all(&manifest_bytes).map_err(werr)?;
    w.write_all(&table_bytes).map_err(werr)?;
    let blobs_offset = header.blobs_offset().expect("sizes fit");
    pad_to(
        &mut w,
        HEADER_LEN + header.manifest_len + header.table_len,
        blobs_offset,
    )
    .map_err(werr)?;
    let mut pos = 0u64;
    for (entry, (r, data)) in table.iter().zip(&ordered) {
        pad_to(&mut w, pos, entry.offset).map_err(werr)?;
        let reader: Box<dyn Read> = match data {
            BlobData::File(p) => Box::new(File::open(p).map_err(|source| Error::Open {
                path: p.clone(),
                source,
            })?),
            BlobData::Bytes(b) => Box::new(&b[..]),
        };
        let mut hashed = HashingReader::new(reader.take(r.size + 1));
        io::copy(&mut hashed, &mut w).map_err(werr)?;
        let (_, actual, len) = hashed.into_parts();
        if actual != r.digest || len != r.size {
            return Err(Error::DigestMismatch {
                part: format!("blob {} while writing", r.digest.short()),
                expected: r.digest,
                actual,
            });
        }
        pos = entry.offset + r.size;
    }
    w.write_all(&sig_bytes).map_err(werr)?;
    w.write_all(&trailer.encode()).map_err(werr)?;
    w.flush().map_err(werr)?;
    drop(w);
    let f = tmp.as_file();
    f.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(werr)?;
    f.sync_all().map_err(werr)?;
    tmp.persist(out).map_err(|e| werr(e.error))?;
    Ok(())
}

fn pad_to(w: &mut impl Write, from: u64, to: u64) -> io::Result<()> {
    io::copy(&mut io::repeat(0).take(to - from), w).map(|_| ())
}

/// Signs `manifest` with every key given.
pub fn sign_all(manifest: &Manifest, keys: &[SecretKey]) -> Result<Vec<SignatureEntry>> {
    let bytes = manifest.to_bytes()?;
    Ok(keys.iter().map(|k| k.sign(&bytes)).collect())
}
