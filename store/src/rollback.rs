//! `rollback`: switches an app back to its previous release, without a bundle or a network.
//!
//! Every install keeps the release it replaced as `previous` (and garbage collection keeps
//! its layers), so rolling back is the same atomic switch an install makes, with the two
//! links exchanged: under the store lock, after recovery, the intent naming both links is
//! written, then applied ([`crate::install::finish_switch`]; a killed rollback is finished by
//! the next command's recovery), the exports follow the new current release, and the store is
//! marked clean. A second rollback goes forward again.
//!
//! Before anything changes, the previous release is read and checked as strictly as any
//! release, and each of its layers' trees must be intact (its seal holds, or the full check
//! against the release's TOC passes): a rollback never switches to something that cannot run.

use std::fs;
use std::path::Path;

use userdata::cache::LayerCache;

use crate::error::StoreError;
use crate::export;
use crate::install::switch;
use crate::layout::{check_id, Layout};
use crate::recover::{begin_change, mark_clean};
use crate::release::Release;

/// What a rollback did: the app and the versions it switched from and to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rolled {
    pub id: String,
    /// The version that was current, now `previous`.
    pub from: String,
    /// The version that was `previous`, now current.
    pub to: String,
}

/// Makes `id`'s previous release current and its current release previous.
/// [`StoreError::NotInstalled`] when the app is not installed, [`StoreError::NoPrevious`]
/// when it has no previous release; a damaged previous release or layer is refused
/// ([`StoreError::Damaged`], [`userdata::DataError::Damaged`]) and nothing changes.
pub fn rollback(layout: &Layout, id: &str, exe: &Path) -> Result<Rolled, StoreError> {
    check_id(id)?;
    let _lock = layout.lock()?;
    begin_change(layout, exe)?;
    let app = layout.app(id);
    let current =
        fs::read_link(app.join("current")).map_err(|_| StoreError::NotInstalled(id.into()))?;
    let previous = fs::read_link(app.join("previous"))
        .ok()
        .filter(|p| *p != current)
        .ok_or_else(|| StoreError::NoPrevious(id.into()))?;
    let from = Release::read(&app.join(&current), id)?;
    let to = Release::read(&app.join(&previous), id)?;
    check_layers(layout, &to)?;
    switch(&app, &previous, Some(&current))?;
    let rel = Release::current(layout, id)?;
    export::sync_app(layout, &rel, exe)?;
    mark_clean(layout)?;
    export::refresh_databases();
    Ok(Rolled {
        id: id.into(),
        from: from.manifest.version,
        to: to.manifest.version,
    })
}

/// Every layer of `rel` is in the store and intact (its TOCs read only for a broken seal).
fn check_layers(layout: &Layout, rel: &Release) -> Result<(), StoreError> {
    let cache = LayerCache::new(layout.layers())?;
    for (i, layer) in rel.manifest.layers.iter().enumerate() {
        cache.check(layer, || {
            rel.tocs()?.get(i).ok_or_else(|| StoreError::Damaged {
                app: rel.manifest.id.clone(),
                problem: format!("layer {i} has no table of contents"),
            })
        })?;
    }
    Ok(())
}
