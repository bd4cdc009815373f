//! Recovery and garbage collection, run under the store lock at the start of every command
//! that changes the store: whatever a killed command left behind is finished or undone here.
//!
//! The store is *clean* when the file `clean` is in its root: recovery ran to its end and no
//! command changed the store since without finishing. A changing command removes it (and
//! syncs the root, so a crash cannot bring it back) before recovering and changing anything,
//! and writes it again only when it succeeded; a reading command (`list`, `info`) runs the
//! whole recovery only when the store is not clean, so with a hundred apps it visits none of
//! them. A missing `clean` only ever costs one recovery.
//!
//! Garbage collection deletes every layer no kept release references, except those an
//! install about to use them names ([`begin_change_keeping`]): a repository update builds the
//! trees of new layers in the store before it installs the bundle file that needs them (which
//! has holes in their place). A command that runs between the two collects those trees; the
//! install then refuses the bundle (a digest mismatch of the hole), and the update can build
//! them again.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use bundle_format::Digest;

use crate::error::{io, StoreError};
use crate::export;
use crate::layout::Layout;
use crate::release::Release;

/// Deletes a directory tree, even one with read-only directories in it, never following a
/// symlink or leaving the tree ([`userdata::fsx::remove_tree`]).
pub(crate) fn remove_tree(p: &Path) -> Result<(), StoreError> {
    Ok(userdata::fsx::remove_tree(p)?)
}

/// Removes `.`-prefixed staging and trash entries directly inside `dir`.
fn remove_leftovers(dir: &Path) -> Result<(), StoreError> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                remove_tree(&p)?;
            } else {
                fs::remove_file(&p).map_err(io(&p))?;
            }
        }
    }
    Ok(())
}

/// Removes capsa's own temporary files (`.capsa-*`) in a directory other programs share.
fn remove_temp_files(dir: &Path) -> Result<(), StoreError> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(".capsa-")
            && e.file_type().is_ok_and(|t| t.is_file())
        {
            let p = e.path();
            fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    Ok(())
}

/// The file whose presence says the store is clean.
const CLEAN: &str = "clean";

fn is_clean(layout: &Layout) -> bool {
    fs::symlink_metadata(layout.root.join(CLEAN)).is_ok_and(|m| m.is_file())
}

/// Marks the store clean (not synced: a lost mark costs one recovery, nothing else).
pub fn mark_clean(layout: &Layout) -> Result<(), StoreError> {
    let p = layout.root.join(CLEAN);
    fs::write(&p, b"").map_err(io(&p))
}

/// For a command about to change the store: not clean from now on (durably), then recovered.
pub fn begin_change(layout: &Layout, exe: &Path) -> Result<(), StoreError> {
    begin_change_keeping(layout, exe, &[])
}

/// [`begin_change`] for a command about to use the layers `keep` (an install of a bundle
/// whose layer trees were built in the store beforehand): the recovery's garbage collection
/// leaves them, referenced or not.
pub fn begin_change_keeping(
    layout: &Layout,
    exe: &Path,
    keep: &[Digest],
) -> Result<(), StoreError> {
    layout.create()?;
    let p = layout.root.join(CLEAN);
    match fs::remove_file(&p) {
        Ok(()) => fs::File::open(&layout.root)
            .and_then(|d| d.sync_all())
            .map_err(io(&layout.root))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&p)(e)),
    }
    recover_keeping(layout, exe, keep)
}

/// For a command that only reads: the whole recovery only when the store is not clean.
pub fn recover_if_unclean(layout: &Layout, exe: &Path) -> Result<(), StoreError> {
    if is_clean(layout) {
        return Ok(());
    }
    recover(layout, exe)?;
    mark_clean(layout)
}

/// Brings the store back to a consistent state.
pub fn recover(layout: &Layout, exe: &Path) -> Result<(), StoreError> {
    recover_keeping(layout, exe, &[])
}

/// [`recover`], its garbage collection leaving the layers `keep`.
fn recover_keeping(layout: &Layout, exe: &Path, keep: &[Digest]) -> Result<(), StoreError> {
    layout.create()?;
    remove_leftovers(&layout.layers())?;
    remove_leftovers(&layout.apps())?;
    for e in fs::read_dir(layout.apps())
        .map_err(io(&layout.apps()))?
        .flatten()
    {
        let app = e.path();
        remove_leftovers(&app.join("releases"))?;
        let _ = fs::remove_file(app.join(".current.new"));
        let _ = fs::remove_file(app.join(".previous.new"));
        remove_temp_files(&app)?;
        // A switch killed half-way is rolled forward: its intent names both links.
        crate::install::finish_switch(&app)?;
        // An install killed before its first `current`: it never happened.
        if app.join("current").symlink_metadata().is_err() {
            remove_tree(&app)?;
        }
    }
    // Temporary files of atomic writes killed before their rename.
    let data = export::data_home(layout);
    let mut dirs = vec![
        data.join("applications"),
        data.join("mime/packages"),
        export::config_home(),
        layout.root.join("overrides"),
    ];
    if let Ok(sizes) = fs::read_dir(data.join("icons/hicolor")) {
        dirs.extend(sizes.flatten().map(|s| s.path().join("apps")));
    }
    for d in dirs {
        remove_temp_files(&d)?;
    }
    let installed = layout.installed()?;
    export::remove_stale(layout, &installed)?;
    for id in &installed {
        if let Ok(rel) = Release::current(layout, id) {
            export::sync_app(layout, &rel, exe)?;
        }
    }
    gc_keeping(layout, keep)
}

/// Deletes releases other than `current` and `previous`, and layers no release references.
pub fn gc(layout: &Layout) -> Result<(), StoreError> {
    gc_keeping(layout, &[])
}

/// [`gc`], leaving the layers `keep` too.
fn gc_keeping(layout: &Layout, keep: &[Digest]) -> Result<(), StoreError> {
    let mut used: HashSet<String> = keep.iter().map(Digest::hex).collect();
    for id in layout.installed()? {
        let app = layout.app(&id);
        let keep: Vec<_> = ["current", "previous"]
            .iter()
            .filter_map(|l| fs::read_link(app.join(l)).ok())
            .map(|t| app.join(t))
            .collect();
        let releases = app.join("releases");
        for e in fs::read_dir(&releases).map_err(io(&releases))?.flatten() {
            let p = e.path();
            if !keep.contains(&p) {
                remove_tree(&p)?;
                continue;
            }
            match Release::read(&p, &id) {
                Ok(r) => used.extend(r.manifest.layers.iter().map(|l| l.digest.hex())),
                // A damaged release keeps everything: never delete what might be needed.
                Err(_) => return Ok(()),
            }
        }
    }
    for e in fs::read_dir(layout.layers())
        .map_err(io(&layout.layers()))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !used.contains(&name) {
            remove_tree(&e.path())?;
        }
    }
    Ok(())
}
