//! Capsa's per-user app store: `install` keeps apps in `$XDG_DATA_HOME/capsa` with layers
//! shared by digest and immutable releases switched atomically (`rollback` switches back to
//! the previous one); it exports desktop entries, icons and MIME types so the desktop opens
//! files in the sandboxed app; every command is serialized by a file lock and starts by
//! recovering from whatever a killed command left. `local_files` tells a repository update
//! which file contents the store has already. No unsafe code.

#![forbid(unsafe_code)]

pub mod dialog;
pub mod error;
pub mod export;
pub mod gc;
pub mod install;
pub mod layout;
pub mod local;
pub mod overrides;
pub mod recover;
pub mod release;
pub mod rollback;
pub mod state;

use std::fs;
use std::path::Path;

use serde::Serialize;

pub use error::StoreError;
pub use install::{install, uninstall, Asking, InstallOptions, Installed};
pub use layout::Layout;
pub use local::{local_files, open_local_file};
pub use release::Release;
pub use rollback::{rollback, Rolled};

/// One line of `capsa list`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: String,
    pub name: String,
    pub version: String,
    pub publisher: String,
}

/// Installed apps (after recovery).
pub fn list(layout: &Layout, exe: &Path) -> Result<Vec<Listed>, StoreError> {
    let _lock = layout.lock()?;
    recover::recover_if_unclean(layout, exe)?;
    layout
        .installed()?
        .into_iter()
        .map(|id| {
            let r = Release::current(layout, &id)?;
            Ok(Listed {
                publisher: r.publisher.to_string(),
                name: r.manifest.name.clone(),
                version: r.manifest.version.clone(),
                id,
            })
        })
        .collect()
}

/// A layer of an app, and who else uses it.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    pub role: &'static str,
    pub digest: String,
    pub unpacked_size: u64,
    pub shared_with: Vec<String>,
}

/// `capsa info`.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub id: String,
    pub name: String,
    pub version: String,
    pub manifest_digest: String,
    pub previous_version: Option<String>,
    pub layers: Vec<LayerInfo>,
    /// Bytes of the app's layers on disk (shared ones included), and of its state.
    pub layers_size: u64,
    pub state_size: u64,
    /// The permissions `capsa run` enforces: manifest, then the user's overrides.
    pub permissions: Vec<String>,
    pub overrides: userdata::Changes,
    /// Who published the app.
    pub publisher: String,
    pub exports: Vec<String>,
}

fn du(p: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return std::os::unix::fs::MetadataExt::blocks(&m) * 512;
    }
    fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}

pub fn info(layout: &Layout, id: &str, exe: &Path) -> Result<Info, StoreError> {
    let _lock = layout.lock()?;
    recover::recover_if_unclean(layout, exe)?;
    let rel = Release::current(layout, id)?;
    let others: Vec<Release> = layout
        .installed()?
        .into_iter()
        .filter(|o| o != id)
        .filter_map(|o| Release::current(layout, &o).ok())
        .collect();
    let layers = rel
        .manifest
        .layers
        .iter()
        .map(|l| LayerInfo {
            role: l.role.as_str(),
            digest: l.digest.to_string(),
            unpacked_size: l.unpacked_size,
            shared_with: others
                .iter()
                .filter(|o| o.manifest.layers.iter().any(|x| x.digest == l.digest))
                .map(|o| o.manifest.id.clone())
                .collect(),
        })
        .collect();
    let who = rel.identity();
    let stored = overrides::load(layout, &who)?;
    let grants = overrides::effective(
        &rel.manifest.permissions.grants,
        &stored,
        &Default::default(),
    );
    let previous = fs::read_link(layout.app(id).join("previous"))
        .ok()
        .and_then(|t| Release::read(&layout.app(id).join(t), id).ok())
        .map(|r| r.manifest.version);
    let exports: Vec<String> = fs::read(layout.app(id).join("exports.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
        .unwrap_or_default();
    Ok(Info {
        id: id.into(),
        name: rel.manifest.name.clone(),
        version: rel.manifest.version.clone(),
        manifest_digest: rel.digest.to_string(),
        previous_version: previous,
        layers_size: {
            let cache = userdata::cache::LayerCache::new(layout.layers())?;
            rel.manifest
                .layers
                .iter()
                .map(|l| {
                    cache
                        .disk_usage(l)
                        .unwrap_or_else(|| du(&layout.layers().join(l.digest.hex())))
                })
                .sum()
        },
        state_size: du(&layout.state(&who)),
        publisher: who.publisher.to_string(),
        layers,
        permissions: grants.iter().map(|g| g.to_string()).collect(),
        overrides: stored,
        exports,
    })
}
