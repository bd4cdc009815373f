//! Fetching only what changed. For each layer of the new release:
//! - the store has its tree sealed: nothing to fetch, a hole in the bundle file;
//! - otherwise its TOC is fetched (by its signed digest) and every regular file is looked up
//!   by sha256 among the installed layers' files ([`storeside::local_files`]); the others are
//!   fetched as objects (decompressed, size- and hash-checked while written); when they are
//!   more than half the layer's bytes, the whole layer blob is fetched instead;
//! - the tree is built in the store's layer cache from local copies and objects, each hashed
//!   against the TOC while written, and sealed ([`storeside::build_layer`]): a hole too. A
//!   build that fails (a damaged local copy) falls back to fetching the whole layer.
//!
//! Invariants: objects are kept only under their verified digest in `downloads/objects/`,
//! and re-hashed before a reuse; a local file is read through a descriptor opened without
//! following a symlink, and only a regular file's.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bundle_format::digest::HashingReader;
use bundle_format::layer::decompress_meta;
use bundle_format::toc::MAX_ENTRY_JSON;
use bundle_format::{Digest, EntryKind, Layer, Toc, TocEntry};
use serde::Serialize;
use store::Layout;
use userdata::DataError;

use super::assemble::{Ctx, Fill, Parts};
use super::error::{write_err, ClientError, ReleaseProblem};
use super::files::private_dir;
use super::resolve::fetch_exact;
use super::source::Source;
use super::storeside;
use crate::layout;

/// What an update did with each layer, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Delta {
    /// Layers the store had sealed already.
    pub layers_kept: usize,
    /// Layers built from local files and fetched objects.
    pub layers_built: usize,
    /// Layers fetched whole (most of their bytes changed, or a build failed).
    pub layers_whole: usize,
    /// Regular files copied from installed layers, and fetched as objects.
    pub files_local: u64,
    pub files_fetched: u64,
}

/// How each blob of the new release is filled, by digest.
pub type Fills = HashMap<Digest, Fill>;

/// Decides, fetches and builds every layer of `parts.manifest` that the store lacks.
pub fn prepare_layers(
    src: &dyn Source,
    ctx: &Ctx,
    parts: &Parts,
    store: &Layout,
    downloads: &Path,
) -> Result<(Fills, Delta), ClientError> {
    let mut fills = Fills::new();
    let mut delta = Delta::default();
    let mut local: Option<HashMap<Digest, PathBuf>> = None;
    for layer in &parts.manifest.layers {
        if storeside::layer_sealed(store, layer) {
            fills.insert(layer.digest, Fill::Hole);
            delta.layers_kept += 1;
            continue;
        }
        let (toc_blob, toc) = fetch_toc(src, ctx, layer)?;
        fills.insert(layer.toc.digest, Fill::Bytes(toc_blob));
        let local = match &mut local {
            Some(l) => l,
            None => local.insert(storeside::local_files(store)?),
        };
        let missing = missing_files(&toc, local);
        let fetch_bytes: u64 = missing.values().sum();
        if fetch_bytes.saturating_mul(2) > layer.unpacked_size {
            delta.layers_whole += 1;
            continue;
        }
        let objects = fetch_objects(src, &missing, downloads)?;
        match build(store, layer, &toc, local, &objects) {
            Ok((from_local, fetched)) => {
                fills.insert(layer.digest, Fill::Hole);
                delta.layers_built += 1;
                delta.files_local += from_local;
                delta.files_fetched += fetched;
            }
            // A local copy that does not match its TOC: the layer is fetched whole.
            Err(_) => delta.layers_whole += 1,
        }
        for p in objects.values() {
            let _ = fs::remove_file(p);
        }
    }
    Ok((fills, delta))
}

/// The layer's TOC blob and the TOC, checked as `Bundle::toc` checks it.
fn fetch_toc(src: &dyn Source, ctx: &Ctx, layer: &Layer) -> Result<(Vec<u8>, Toc), ClientError> {
    let file = layout::blob(&layer.toc.digest);
    let blob = fetch_exact(
        ctx.remote,
        src,
        &file,
        &layer.toc,
        bundle_format::layer::MAX_META_LEN,
    )?;
    let what = format!("table of contents of layer {}", layer.role.as_str());
    let bad = |why: String| ctx.refuse(ReleaseProblem::NotABundle { why });
    let cap = layer
        .entries
        .saturating_mul(MAX_ENTRY_JSON)
        .saturating_add(64);
    let bytes = decompress_meta(&blob[..], &what, cap).map_err(|e| bad(e.to_string()))?;
    let toc = Toc::from_canonical(&bytes).map_err(|e| bad(format!("{what}: {e}")))?;
    toc.validate().map_err(|e| bad(format!("{what}: {e}")))?;
    if toc.entries.len() as u64 != layer.entries || toc.content_size() != layer.unpacked_size {
        return Err(bad(format!(
            "{what}: entry count or size differs from the manifest"
        )));
    }
    Ok((blob, toc))
}

/// The distinct contents of `toc`'s regular files that no local file has: sha256 → size.
fn missing_files(toc: &Toc, local: &HashMap<Digest, PathBuf>) -> BTreeMap<Digest, u64> {
    toc.entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter_map(|e| e.sha256.map(|d| (d, e.size)))
        .filter(|(d, _)| !local.contains_key(d))
        .collect()
}

/// Fetches each object into `downloads/objects/<hex>` (a copy kept from an interrupted run
/// is used when it still hashes right).
fn fetch_objects(
    src: &dyn Source,
    missing: &BTreeMap<Digest, u64>,
    downloads: &Path,
) -> Result<HashMap<Digest, PathBuf>, ClientError> {
    let dir = downloads.join("objects");
    private_dir(&dir)?;
    let mut out = HashMap::new();
    for (d, &size) in missing {
        let dest = dir.join(d.hex());
        if !holds(&dest, d, size) {
            let mut tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(&dir)
                .map_err(write_err(&dir))?;
            src.object(&layout::object(d), d, size, &mut tmp)?;
            tmp.persist(&dest).map_err(|e| write_err(&dest)(e.error))?;
        }
        out.insert(*d, dest);
    }
    Ok(out)
}

/// Whether the regular file `p` has `size` bytes hashing to `d`.
fn holds(p: &Path, d: &Digest, size: u64) -> bool {
    let Ok(f) = store::open_local_file(p) else {
        return false;
    };
    let mut h = HashingReader::new(f.take(size + 1));
    if io::copy(&mut h, &mut io::sink()).is_err() {
        return false;
    }
    let (_, got, n) = h.into_parts();
    got == *d && n == size
}

/// Builds `layer` from local files and fetched objects; returns how many files came from
/// each.
fn build(
    store: &Layout,
    layer: &Layer,
    toc: &Toc,
    local: &HashMap<Digest, PathBuf>,
    objects: &HashMap<Digest, PathBuf>,
) -> Result<(u64, u64), ClientError> {
    let (mut from_local, mut fetched) = (0, 0);
    let mut source = |e: &TocEntry| -> Result<Box<dyn Read + 'static>, DataError> {
        let d = e.sha256.ok_or_else(|| DataError::NotAnEntry {
            path: PathBuf::from(e.path.as_str()),
        })?;
        let p = match local.get(&d) {
            Some(p) => {
                from_local += 1;
                p
            }
            None => {
                fetched += 1;
                objects.get(&d).ok_or_else(|| DataError::NotAnEntry {
                    path: PathBuf::from(e.path.as_str()),
                })?
            }
        };
        let f = store::open_local_file(p).map_err(|source| DataError::Walk {
            path: p.clone(),
            source,
        })?;
        Ok(Box::new(f))
    };
    storeside::build_layer(store, layer, toc, &mut source)?;
    Ok((from_local, fetched))
}
