//! `capsa gc`: frees the user's cache (`$XDG_CACHE_HOME/capsa`) of what nothing needs: the
//! layers unpacked for bundle files that no installed app's release (current or previous)
//! names, the read-only roots merged from them, and leftovers, never what a running sandbox
//! uses ([`userdata::cache::gc`] has the rules). The store itself collects its own layers
//! after every change ([`crate::recover::gc`]).

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use userdata::cache::gc::{self, Collected};

use crate::error::StoreError;
use crate::layout::Layout;
use crate::release::Release;

/// The layer digests (hex) the current and previous releases of every installed app name.
pub fn referenced_layers(layout: &Layout) -> Result<HashSet<String>, StoreError> {
    let mut used = HashSet::new();
    for id in layout.installed()? {
        let app = layout.app(&id);
        for link in ["current", "previous"] {
            let Ok(target) = fs::read_link(app.join(link)) else {
                continue;
            };
            let rel = Release::read(&app.join(target), &id)?;
            used.extend(rel.manifest.layers.iter().map(|l| l.digest.hex()));
        }
    }
    Ok(used)
}

/// Collects the cache at `cache_root` (see the module doc), under the store lock so that the
/// installed apps do not change meanwhile.
pub fn collect_cache(
    layout: &Layout,
    cache_root: &Path,
    dry_run: bool,
) -> Result<Collected, StoreError> {
    let _lock = layout.lock()?;
    let keep = referenced_layers(layout)?;
    Ok(gc::collect(cache_root, &keep, dry_run)?)
}
