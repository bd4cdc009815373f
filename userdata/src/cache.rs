//! The per-user layer cache: each layer unpacked once into
//! `$XDG_CACHE_HOME/capsa/layers/<digest>/tree`, then reused by every run and app that shares it.
//!
//! Unpacking streams the (digest-checked) blob, checks every entry against the TOC, writes into
//! a private staging directory and renames it into place, so a crash or a concurrent run never
//! sees half a layer: two runs racing both unpack, the first rename wins, the loser uses the
//! winner's. `complete.json` records the layer digest and the newest inode change time (ctime)
//! after unpacking. Every use re-checks the tree against the TOC (type, size, mode) and that no
//! ctime is newer: ctime cannot be set back by a user, so any change to a cached file, a
//! removed or an added entry (its directory's ctime changes) is caught, and the entry is
//! replaced from the bundle.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bundle_format::extract::write_entry;
use bundle_format::{Bundle, EntryKind, Layer, Toc};
use serde::{Deserialize, Serialize};

use crate::error::{prep, DataError};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Complete {
    digest: String,
    entries: u64,
    /// Newest (ctime seconds, nanoseconds) in the tree right after unpacking.
    max_ctime: (i64, i64),
}

/// What `ensure` did, for the report and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Unpacked,
    /// A cached entry no longer matched and was replaced.
    Repaired,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

fn ctime(m: &fs::Metadata) -> (i64, i64) {
    (m.ctime(), m.ctime_nsec())
}

impl LayerCache {
    pub fn new(dir: PathBuf) -> Result<Self, DataError> {
        fs::create_dir_all(&dir).map_err(prep(&dir))?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// [`LayerCache::ensure`] for every layer of `bundle`, in parallel (the threads end before
    /// this returns); trees and outcomes in manifest order.
    pub fn ensure_all(
        &self,
        bundle: &Bundle,
        tocs: &[Toc],
    ) -> Result<Vec<(PathBuf, CacheOutcome)>, DataError> {
        // What is not cached yet must fit (the declared sizes bound what unpacking writes).
        let need = bundle
            .manifest()
            .layers
            .iter()
            .filter(|l| !self.dir.join(l.digest.hex()).exists())
            .fold(0u64, |n, l| n.saturating_add(l.unpacked_size));
        if need > 0 {
            bundle_format::extract::check_free_space(&self.dir, need)
                .map_err(|e| DataError::Space(Box::new(e)))?;
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = bundle
                .manifest()
                .layers
                .iter()
                .zip(tocs)
                .map(|(layer, toc)| scope.spawn(|| self.ensure(bundle, layer, toc)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("layer unpacking panicked"))
                .collect()
        })
    }

    /// The tree of an installed layer, after checking it is intact (there is no bundle to
    /// repair it from: a damaged installed layer is an error).
    pub fn check(&self, layer: &Layer, toc: &Toc) -> Result<PathBuf, DataError> {
        let entry = self.dir.join(layer.digest.hex());
        if !self.is_intact(&entry, layer, toc) {
            return Err(DataError::Damaged { path: entry });
        }
        Ok(entry.join("tree"))
    }

    /// The unpacked tree of `layer`, unpacking or repairing it first when needed.
    pub fn ensure(
        &self,
        bundle: &Bundle,
        layer: &Layer,
        toc: &Toc,
    ) -> Result<(PathBuf, CacheOutcome), DataError> {
        let entry = self.dir.join(layer.digest.hex());
        let tree = entry.join("tree");
        let mut outcome = CacheOutcome::Unpacked;
        if entry.exists() {
            if self.is_intact(&entry, layer, toc) {
                return Ok((tree, CacheOutcome::Hit));
            }
            self.discard(&entry)?;
            outcome = CacheOutcome::Repaired;
        }
        let staging = tempfile::Builder::new()
            .prefix(&format!(".tmp-{}-", layer.digest.short()))
            .tempdir_in(&self.dir)
            .map_err(prep(&self.dir))?;
        let stree = staging.path().join("tree");
        fs::create_dir(&stree).map_err(prep(&stree))?;
        bundle
            .read_layer(layer, toc, |e, content| {
                write_entry(&stree, e, content).map(|_| ())
            })
            .map_err(|source| DataError::Unpack {
                bundle: bundle.path().to_path_buf(),
                layer: layer.role.as_str().to_owned(),
                source: Box::new(source),
            })?;
        fs::set_permissions(&stree, fs::Permissions::from_mode(0o755)).map_err(prep(&stree))?;
        let max_ctime = self.max_ctime(&stree, toc).map_err(prep(&stree))?;
        let complete = Complete {
            digest: layer.digest.to_string(),
            entries: toc.entries.len() as u64,
            max_ctime,
        };
        let marker = staging.path().join("complete.json");
        fs::write(&marker, serde_json::to_vec(&complete).expect("serializes"))
            .map_err(prep(&marker))?;
        match fs::rename(staging.path(), &entry) {
            Ok(()) => {
                let _ = staging.keep();
                Ok((tree, outcome))
            }
            // Another run finished first: use its copy if it is sound.
            Err(_) if entry.exists() && self.is_intact(&entry, layer, toc) => {
                Ok((tree, CacheOutcome::Hit))
            }
            Err(e) => Err(prep(&entry)(e)),
        }
    }

    fn max_ctime(&self, tree: &Path, toc: &Toc) -> std::io::Result<(i64, i64)> {
        let mut max = ctime(&fs::symlink_metadata(tree)?);
        for e in &toc.entries {
            max = max.max(ctime(&fs::symlink_metadata(e.path.under(tree))?));
        }
        Ok(max)
    }

    fn is_intact(&self, entry: &Path, layer: &Layer, toc: &Toc) -> bool {
        let Ok(text) = fs::read(entry.join("complete.json")) else {
            return false;
        };
        let Ok(c) = serde_json::from_slice::<Complete>(&text) else {
            return false;
        };
        if c.digest != layer.digest.to_string() || c.entries != toc.entries.len() as u64 {
            return false;
        }
        let tree = entry.join("tree");
        let Ok(root) = fs::symlink_metadata(&tree) else {
            return false;
        };
        if ctime(&root) > c.max_ctime {
            return false;
        }
        toc.entries.iter().all(|e| {
            let Ok(m) = fs::symlink_metadata(e.path.under(&tree)) else {
                return false;
            };
            let kind_ok = match e.kind {
                EntryKind::Dir => m.is_dir(),
                EntryKind::File | EntryKind::Hardlink => m.is_file(),
                EntryKind::Symlink => m.file_type().is_symlink(),
            };
            let mode_ok =
                e.kind != EntryKind::File || (m.mode() & 0o7777 == e.mode && m.len() == e.size);
            kind_ok && mode_ok && ctime(&m) <= c.max_ctime
        })
    }

    /// Moves a damaged entry aside and deletes it.
    pub fn discard(&self, entry: &Path) -> Result<(), DataError> {
        let trash = tempfile::Builder::new()
            .prefix(".trash-")
            .tempdir_in(&self.dir)
            .map_err(prep(&self.dir))?;
        let target = trash.path().join("old");
        fs::rename(entry, &target).map_err(prep(entry))?;
        make_writable(&target);
        drop(trash);
        Ok(())
    }
}

/// Gives the owner write access to every directory below `p`, so it can be deleted.
pub fn make_writable(p: &Path) {
    if let Ok(m) = fs::symlink_metadata(p) {
        if m.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}
