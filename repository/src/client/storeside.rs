//! Every call the client makes into the store side (crates `store` and `userdata`), in one
//! place, so the lead adapts only this file when the store side's new API lands.
//!
//! [`layer_sealed`] (`LayerCache::sealed`), [`current`] (`Release::current`), [`local_files`]
//! (`store::local_files`), [`build_layer`] (`LayerCache::build`).
//!
//! Invariant kept by both of the last two: a file is reused only if its content hashes to the TOC's sha256
//! while it is copied, and a built tree is sealed only after every entry matched its TOC.

use std::collections::HashMap;
use std::path::PathBuf;

use bundle_format::{Digest, Layer, Manifest, Toc, TocEntry};
use store::{Layout, Release};
use userdata::cache::{FileContent, LayerCache};

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

/// sha256 → a regular file with that content in a sealed layer tree of an installed release
/// (`current` or `previous`). The caller hashes what it reads ([`build_layer`] does).
pub fn local_files(layout: &Layout) -> Result<HashMap<Digest, PathBuf>, ClientError> {
    Ok(store::local_files(layout)?)
}

/// A reader for each regular file of a layer being built.
pub type FileSource<'s> = dyn FnMut(&TocEntry) -> FileContent<'static> + 's;

/// Builds `layer`'s tree in the store's layer cache from per-file sources, every file hashed
/// against `toc` while it is written, then sealed and renamed into place. Returns the tree.
pub fn build_layer(
    layout: &Layout,
    layer: &Layer,
    toc: &Toc,
    source: &mut FileSource<'_>,
) -> Result<PathBuf, ClientError> {
    let cache = LayerCache::new(layout.layers())?;
    let (tree, _) = cache.build(layer, toc, source)?;
    Ok(tree)
}
