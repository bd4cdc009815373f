//! The read-only root for where overlayfs cannot be mounted: the layers merged into one tree
//! of hardlinks beside the layer cache (`merged/<manifest digest>/tree`), built once per
//! bundle (staged, then renamed), with the mount points a run's steps need created in it.
//! The layers' TOCs are asked for only when the merged tree is built.

use std::fs;
use std::path::{Path, PathBuf};

use bundle_format::{Digest, EntryKind, Toc};
use userdata::cache::LayerCache;

use crate::error::LaunchError;
use crate::plan::Step;

fn prep(path: &Path) -> impl FnOnce(std::io::Error) -> LaunchError + '_ {
    move |source| LaunchError::Prepare {
        path: path.to_path_buf(),
        source,
    }
}

/// The merged tree of `trees` (the layers' unpacked trees; `tocs` gives their TOCs, and is
/// called only when the merged tree is not there yet).
pub fn merged<'t>(
    cache: &LayerCache,
    manifest: &Digest,
    trees: &[PathBuf],
    tocs: impl FnOnce() -> Result<&'t [Toc], LaunchError>,
    steps: &[Step],
) -> Result<PathBuf, LaunchError> {
    let root = cache.dir().with_file_name("merged");
    fs::create_dir_all(&root).map_err(prep(&root))?;
    let entry = root.join(manifest.hex());
    if !entry.join("complete").exists() {
        let tocs = tocs()?;
        if entry.exists() {
            cache.discard(&entry)?;
        }
        let staging = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&root)
            .map_err(prep(&root))?;
        let stree = staging.path().join("tree");
        fs::create_dir(&stree).map_err(prep(&stree))?;
        for (layer, toc) in trees.iter().zip(tocs) {
            for e in &toc.entries {
                let dst = e.path.under(&stree);
                let r = match e.kind {
                    EntryKind::Dir if dst.is_dir() => Ok(()),
                    EntryKind::Dir => fs::create_dir(&dst),
                    EntryKind::Symlink if dst.symlink_metadata().is_ok() => Ok(()),
                    EntryKind::Symlink => {
                        std::os::unix::fs::symlink(e.target.as_deref().unwrap_or_default(), &dst)
                    }
                    EntryKind::File | EntryKind::Hardlink => {
                        fs::hard_link(e.path.under(layer), &dst)
                    }
                };
                r.map_err(prep(&dst))?;
            }
        }
        fs::write(staging.path().join("complete"), b"").map_err(prep(staging.path()))?;
        if fs::rename(staging.path(), &entry).is_ok() {
            let _ = staging.keep();
        }
    }
    let tree = entry.join("tree");
    let mut created = Vec::new();
    for s in steps {
        let (dst, dir) = match s {
            Step::Bind { dst, is_dir, .. } => (dst, *is_dir),
            Step::Tmpfs { dst, .. } | Step::Proc { dst } | Step::Devpts { dst } => (dst, true),
            Step::File { dst, .. } => (dst, false),
            Step::Symlink { .. } | Step::Mask { .. } => continue,
        };
        crate::mounts::prepare_target(&tree, dst, dir, "prepare the read-only root", &mut created)
            .map_err(LaunchError::Child)?;
    }
    Ok(tree)
}
