//! The regular files the store already has, by content: what a repository update copies
//! instead of fetching (`local_files`).
//!
//! The map is made from the installed releases' TOCs (current and previous of every app),
//! for layers whose seal holds (their trees were checked against exactly those TOCs). It is
//! a hint, never a proof: the trees are the user's files, which they can change, and a
//! command running at the same time may collect a layer. Whoever reads from these paths must
//! open them without following a symlink or blocking ([`open_local_file`]) and hash what it
//! reads against the sha256 it looked up; `userdata::cache::LayerCache::build` does the
//! hashing for every file it is given.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bundle_format::{Digest, EntryKind};
use userdata::cache::LayerCache;

use crate::error::StoreError;
use crate::layout::Layout;
use crate::release::Release;

/// sha256 → `layers/<layer digest hex>/tree/<path>` of a regular file with that content (per
/// its TOC), for every file of every sealed layer of every installed app's current and
/// previous release. Takes no lock and changes nothing; a release that cannot be read, or
/// whose TOCs are damaged, is left out. The caller must hash what it reads from these paths.
pub fn local_files(layout: &Layout) -> Result<HashMap<Digest, PathBuf>, StoreError> {
    let mut out = HashMap::new();
    if !layout.layers().is_dir() {
        return Ok(out);
    }
    let cache = LayerCache::new(layout.layers())?;
    for id in layout.installed()? {
        let app = layout.app(&id);
        for link in ["current", "previous"] {
            let Ok(target) = fs::read_link(app.join(link)) else {
                continue;
            };
            let Ok(rel) = Release::read(&app.join(target), &id) else {
                continue;
            };
            let Ok(tocs) = rel.tocs() else {
                continue;
            };
            for (layer, toc) in rel.manifest.layers.iter().zip(tocs) {
                if cache.sealed(layer).is_err() {
                    continue;
                }
                let tree = layout.layers().join(layer.digest.hex()).join("tree");
                for e in toc.entries.iter().filter(|e| e.kind == EntryKind::File) {
                    if let Some(sha) = e.sha256 {
                        out.entry(sha).or_insert_with(|| e.path.under(&tree));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Opens a path of [`local_files`] for reading: its last component not followed if it is a
/// symlink, without blocking on a FIFO, and only if it is a regular file. The content still
/// has to be hashed.
pub fn open_local_file(path: &Path) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(f)
}
