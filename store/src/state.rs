//! An app's state (its writable layer and private home): `reset`, `delete_data` and `diff`,
//! which lists what the app changed in its own root, App-V style, from the overlay upper
//! directory (whiteouts are deletions, opaque directories replaced ones).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde::Serialize;

use crate::error::{io, StoreError};
use crate::layout::Layout;
use crate::recover::remove_tree;
use crate::release::Release;
use userdata::Identity;

/// One change the app made to its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `added`, `changed`, `deleted` or `replaced` (a directory made opaque).
    pub kind: &'static str,
    pub path: String,
}

fn lock_state(layout: &Layout, who: &Identity) -> Result<Option<fs::File>, StoreError> {
    let id = &who.id;
    let p = layout.state(who).join("lock");
    let Ok(f) = fs::OpenOptions::new().write(true).open(&p) else {
        return Ok(None);
    };
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(_) => Err(StoreError::Invalid(format!(
            "{id} is running: stop it first"
        ))),
    }
}

/// Drops the app's writable layer and private home: back to "freshly installed".
pub fn reset(layout: &Layout, who: &Identity) -> Result<(), StoreError> {
    let _held = lock_state(layout, who)?;
    for d in ["upper", "work", "home"] {
        remove_tree(&layout.state(who).join(d))?;
    }
    Ok(())
}

/// Deletes all the app's state and its permission overrides.
pub fn delete_data(layout: &Layout, who: &Identity) -> Result<(), StoreError> {
    let held = lock_state(layout, who)?;
    drop(held);
    remove_tree(&layout.state(who))?;
    let _ = fs::remove_file(crate::overrides::path(layout, who));
    let _ = fs::remove_file(userdata::consent::path(who));
    Ok(())
}

/// What the app changed in its root, sorted by path.
pub fn diff(layout: &Layout, id: &str) -> Result<Vec<Change>, StoreError> {
    let rel = Release::current(layout, id)?;
    let who = rel.identity();
    let in_layers = |p: &str| {
        rel.tocs
            .iter()
            .any(|t| t.entries.iter().any(|e| e.path.as_str() == p))
    };
    let upper = layout.state(&who).join("upper");
    let mountpoints: std::collections::BTreeSet<String> =
        fs::read(layout.state(&who).join("mountpoints.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
    let is_mountpoint =
        |p: &str, m: &fs::Metadata| mountpoints.contains(p) && (m.is_dir() || m.len() == 0);
    let mut out = Vec::new();
    let mut stack = vec![upper.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let rel_path = p
                .strip_prefix(&upper)
                .expect("below upper")
                .to_string_lossy()
                .into_owned();
            let m = fs::symlink_metadata(&p).map_err(io(&p))?;
            let whiteout = (m.file_type().is_char_device() && m.rdev() == 0)
                || xattr_is(&p, "user.overlay.whiteout");
            let kind = if whiteout {
                "deleted"
            } else if m.is_dir() {
                stack.push(p.clone());
                if xattr_is(&p, "user.overlay.opaque") {
                    "replaced"
                } else if in_layers(&rel_path) {
                    continue;
                } else {
                    "added"
                }
            } else if in_layers(&rel_path) {
                "changed"
            } else {
                "added"
            };
            let abs = format!("/{rel_path}");
            if kind == "added" && is_mountpoint(&abs, &m) {
                continue;
            }
            out.push(Change { kind, path: abs });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Whether the extended attribute `name` is set on `p` (not following a symlink). Overlayfs
/// mounted with `userxattr` marks opaque directories and some whiteouts this way.
fn xattr_is(p: &Path, name: &str) -> bool {
    xattr::get(p, name).ok().flatten().is_some()
}
