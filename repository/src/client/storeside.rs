//! Every call the client makes into the store side (crates `store` and `userdata`), in one
//! place, so the lead adapts only this file when the store side's new API lands.
//!
//! Real calls: [`layer_sealed`] (`LayerCache::sealed`), [`current`] (`Release::current`).
//! TEMPORARY local equivalents, to be replaced by the store side's functions of the same
//! purpose, marked `TEMPORARY` below:
//! - [`local_files`] stands for `store::local_files(layout)`;
//! - [`build_layer`] stands for `userdata::cache::LayerCache::build(layer, toc, source)`.
//!
//! Invariant kept by both: a file is reused only if its content hashes to the TOC's sha256
//! while it is copied, and a built tree is sealed only after every entry matched its TOC.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use bundle_format::digest::HashingReader;
use bundle_format::extract::{check_free_space, write_entry};
use bundle_format::{Digest, EntryKind, Layer, Manifest, Toc, TocEntry};
use store::{Layout, Release};
use userdata::cache::{seal, verify, LayerCache};
use userdata::DataError;

use super::error::ClientError;

/// Whether the store has `layer`'s tree, sealed (so `store::install` need not read its blob).
pub fn layer_sealed(layout: &Layout, layer: &Layer) -> bool {
    LayerCache::new(layout.layers()).is_ok_and(|c| c.sealed(layer).is_ok())
}

/// The manifest digest and manifest of `app`'s current release, if installed.
pub fn current(layout: &Layout, app: &str) -> Option<(Digest, Manifest)> {
    Release::current(layout, app)
        .ok()
        .map(|r| (r.digest, r.manifest))
}

/// TEMPORARY (stands for `store::local_files`): sha256 → a regular file with that content in
/// a sealed layer tree of an installed release (`current` or `previous`). The caller hashes
/// what it reads.
pub fn local_files(layout: &Layout) -> Result<HashMap<Digest, PathBuf>, ClientError> {
    let mut out = HashMap::new();
    for id in layout.installed()? {
        let app = layout.app(&id);
        for link in ["current", "previous"] {
            let Ok(target) = fs::read_link(app.join(link)) else {
                continue;
            };
            let Ok(rel) = Release::read(&app.join(target), &id) else {
                continue;
            };
            let tocs = rel.tocs()?;
            for (layer, toc) in rel.manifest.layers.iter().zip(tocs) {
                if !layer_sealed(layout, layer) {
                    continue;
                }
                let tree = layout.layers().join(layer.digest.hex()).join("tree");
                for e in &toc.entries {
                    if let (EntryKind::File, Some(d)) = (e.kind, e.sha256) {
                        out.entry(d).or_insert_with(|| e.path.under(&tree));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A reader for each regular file of a layer being built.
pub type FileSource<'s> = dyn FnMut(&TocEntry) -> Result<Box<dyn Read + 'static>, DataError> + 's;

/// TEMPORARY (stands for `LayerCache::build`): builds `layer`'s tree in the store's layer
/// cache from per-file sources, every file hashed against `toc` while it is written, then
/// seals it and renames it into place. Returns the tree.
pub fn build_layer(
    layout: &Layout,
    layer: &Layer,
    toc: &Toc,
    source: &mut FileSource<'_>,
) -> Result<PathBuf, ClientError> {
    let cache = LayerCache::new(layout.layers())?;
    let entry = layout.layers().join(layer.digest.hex());
    if cache.sealed(layer).is_ok() {
        return Ok(entry.join("tree"));
    }
    if entry.symlink_metadata().is_ok() {
        cache.discard(&entry)?;
    }
    check_free_space(cache.dir(), layer.unpacked_size)
        .map_err(|e| DataError::Space(Box::new(e)))?;
    let prep = |p: &std::path::Path| {
        let p = p.to_path_buf();
        move |source| DataError::Prepare { path: p, source }
    };
    let staging = tempfile::Builder::new()
        .prefix(&format!(".tmp-{}-", layer.digest.short()))
        .tempdir_in(cache.dir())
        .map_err(prep(cache.dir()))?;
    let stree = staging.path().join("tree");
    fs::create_dir(&stree).map_err(prep(&stree))?;
    for e in &toc.entries {
        let dst = e.path.under(&stree);
        if e.kind != EntryKind::File {
            write_entry(&stree, e, &mut io::empty()).map_err(prep(&dst))?;
            continue;
        }
        let mut content = HashingReader::new(source(e)?.take(e.size + 1));
        write_entry(&stree, e, &mut content).map_err(prep(&dst))?;
        let (_, got, len) = content.into_parts();
        if len != e.size || Some(got) != e.sha256 {
            return Err(DataError::Damaged { path: dst }.into());
        }
    }
    fs::set_permissions(&stree, fs::Permissions::from_mode(0o755)).map_err(prep(&stree))?;
    let survey = verify::survey(&stree, toc).map_err(prep(&stree))?;
    let usage = staging.path().join(userdata::cache::DISK_USAGE);
    fs::write(&usage, format!("{}\n", survey.disk_bytes)).map_err(prep(&usage))?;
    seal::write(
        staging.path(),
        layer.digest,
        layer.entries,
        survey.max_ctime,
    )
    .map_err(prep(staging.path()))?;
    match fs::rename(staging.path(), &entry) {
        Ok(()) => {
            let _ = staging.keep();
            Ok(entry.join("tree"))
        }
        Err(_) if cache.sealed(layer).is_ok() => Ok(entry.join("tree")),
        Err(e) => Err(DataError::Prepare {
            path: entry,
            source: e,
        }
        .into()),
    }
}
