//! What a release reaches in the repository: its head and tail (checked against the app
//! document's digests), the bundle blobs its head's table lists, and through each layer's TOC
//! the objects of its files. Shared by `repo check` (which verifies all of it) and `repo gc`
//! (which keeps all of it).

use std::collections::BTreeSet;
use std::io::Read;

use bundle_format::layer::decompress_meta;
use bundle_format::toc::MAX_ENTRY_JSON;
use bundle_format::{BlobRef, Digest, EntryKind, Layer, Manifest, Toc};

use super::fsio::RepoDir;
use super::parts::Parts;
use crate::layout;
use crate::meta::ReleaseDoc;

/// Largest head or tail read (a manifest is at most 1 MiB, a table 48 KiB, signatures 64 KiB).
const MAX_PART: u64 = 2 << 20;

/// A release's fixed parts, checked.
#[derive(Debug)]
pub struct Release {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub parts: Parts,
    pub manifest: Manifest,
}

/// Reads a blob of at most `cap` bytes and checks its digest and size.
pub fn read_blob(dir: &RepoDir, r: &BlobRef, cap: u64) -> Result<Vec<u8>, String> {
    let rel = layout::blob(&r.digest);
    if r.size > cap {
        return Err(format!("{rel}: {} bytes, over the cap of {cap}", r.size));
    }
    let bytes = dir
        .read(&rel, cap)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{rel} is missing"))?;
    if bytes.len() as u64 != r.size || Digest::of(&bytes) != r.digest {
        return Err(format!(
            "{rel} is damaged: {} bytes of sha256 {}, {} of {} expected",
            bytes.len(),
            Digest::of(&bytes),
            r.size,
            r.digest
        ));
    }
    Ok(bytes)
}

/// Reads and checks a release's head and tail, their layout and manifest.
pub fn release(dir: &RepoDir, r: &ReleaseDoc) -> Result<Release, String> {
    let head = read_blob(dir, &r.head, MAX_PART)?;
    let tail = read_blob(dir, &r.tail, MAX_PART)?;
    let parts = Parts::parse(&head, &tail).map_err(|e| e.to_string())?;
    let manifest = parts.manifest().map_err(|e| e.to_string())?;
    if Digest::of(&parts.manifest_bytes) != r.manifest {
        return Err(format!(
            "the head's manifest is not the release's manifest {}",
            r.manifest
        ));
    }
    Ok(Release {
        head,
        tail,
        parts,
        manifest,
    })
}

/// Reads a layer's TOC blob, checked, decompressed (capped by the layer's entry count) and
/// validated.
pub fn toc(dir: &RepoDir, layer: &Layer) -> Result<Toc, String> {
    let what = format!("table of contents {}", layer.toc.digest);
    let packed = read_blob(dir, &layer.toc, 64 << 20)?;
    let cap = layer
        .entries
        .saturating_mul(MAX_ENTRY_JSON)
        .saturating_add(64);
    let bytes = decompress_meta(packed.as_slice(), &what, cap).map_err(|e| e.to_string())?;
    let toc = Toc::from_canonical(&bytes).map_err(|e| format!("{what}: {e}"))?;
    toc.validate().map_err(|e| format!("{what}: {e}"))?;
    Ok(toc)
}

/// The content digests of a TOC's regular files, with their sizes.
pub fn files(toc: &Toc) -> impl Iterator<Item = (Digest, u64)> + '_ {
    toc.entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter_map(|e| e.sha256.map(|d| (d, e.size)))
}

/// Everything a release keeps alive: blobs (head, tail, the bundle's blobs) and objects.
pub fn collect(
    dir: &RepoDir,
    r: &ReleaseDoc,
    blobs: &mut BTreeSet<Digest>,
    objects: &mut BTreeSet<Digest>,
) -> Result<(), String> {
    blobs.insert(r.head.digest);
    blobs.insert(r.tail.digest);
    let rel = release(dir, r)?;
    blobs.extend(rel.parts.blobs().map(|b| b.digest));
    for layer in &rel.manifest.layers {
        objects.extend(files(&toc(dir, layer)?).map(|(d, _)| d));
    }
    Ok(())
}

/// Decompresses an object and checks it holds `size` bytes of sha256 `d`.
pub fn check_object(dir: &RepoDir, d: &Digest, size: u64) -> Result<(), String> {
    let rel = layout::object(d);
    let (f, _) = dir
        .open_file(&rel)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{rel} is missing"))?;
    let dec = zstd::stream::read::Decoder::new(f).map_err(|e| format!("{rel}: {e}"))?;
    let mut h = bundle_format::digest::HashingReader::new(dec.take(size + 1));
    std::io::copy(&mut h, &mut std::io::sink()).map_err(|e| format!("{rel}: {e}"))?;
    let (_, got, len) = h.into_parts();
    if got != *d || len != size {
        return Err(format!(
            "{rel} is damaged: it holds {len} bytes of sha256 {got}, {size} of {d} expected"
        ));
    }
    Ok(())
}
