//! An app's state (its writable layer and private home): `reset`, `delete_data` and `diff`,
//! which lists what the app changed in its own root, App-V style, from the overlay upper
//! directory (whiteouts are deletions, opaque directories replaced ones).
//!
//! The app writes these trees itself, so they are walked and deleted only through
//! [`userdata::fsx`] (fd-relative, never following a symlink), and never while it runs: every
//! running instance holds a shared `flock` on `state/<id>/instances.lock` for its whole life,
//! and these operations take it exclusively, without waiting, for their whole duration
//! ([`lock`]); a busy lock is [`StoreError::Running`]. The older `state/<id>/lock`, held
//! exclusively by the run that owns `upper/`, is honoured the same way.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Serialize;

use crate::error::StoreError;
use crate::layout::Layout;
use crate::recover::remove_tree;
use crate::release::Release;
use userdata::fsx::{self, Kind};
use userdata::Identity;

/// One change the app made to its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `added`, `changed`, `deleted` or `replaced` (a directory made opaque).
    pub kind: &'static str,
    pub path: String,
}

/// Proof that no instance of an app is running, held until dropped.
#[derive(Debug)]
pub struct StateGuard {
    _instances: Option<File>,
    _owner: Option<File>,
}

/// Opens the lock file `p` (creating it, mode 0600, when `create`); `None` when it (or, with
/// `create`, the state directory) does not exist.
fn open_lock(p: &Path, create: bool) -> Result<Option<File>, StoreError> {
    let r = fs::OpenOptions::new()
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(p);
    match r {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::StateLock {
            path: p.to_path_buf(),
            source,
        }),
    }
}

/// Takes `f` exclusively without waiting: busy means an instance of `id` is running.
fn try_exclusive(f: &File, p: &Path, id: &str) -> Result<(), StoreError> {
    match f.try_lock() {
        Ok(()) => Ok(()),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Running { app: id.into() }),
        Err(fs::TryLockError::Error(source)) => Err(StoreError::StateLock {
            path: p.to_path_buf(),
            source,
        }),
    }
}

/// Makes sure no instance of `id` runs, and that none starts until the guard is dropped (an
/// instance takes its shared lock before it touches its state). Without a state directory
/// nothing runs and there is nothing to lock.
pub fn lock(layout: &Layout, who: &Identity) -> Result<StateGuard, StoreError> {
    let id = who.id.as_str();
    crate::layout::check_id(id)?;
    let dir = layout.state(who);
    // A sandbox whose app has ended may still be flushing and unmounting: not running.
    userdata::state::wait_teardown(&dir, userdata::state::TEARDOWN_LIMIT);
    let instances_path = dir.join("instances.lock");
    let instances = open_lock(&instances_path, true)?;
    if let Some(f) = &instances {
        try_exclusive(f, &instances_path, id)?;
    }
    let owner_path = dir.join("lock");
    let owner = open_lock(&owner_path, false)?;
    if let Some(f) = &owner {
        try_exclusive(f, &owner_path, id)?;
    }
    Ok(StateGuard {
        _instances: instances,
        _owner: owner,
    })
}

/// Drops the app's writable layer and private home: back to "freshly installed".
pub fn reset(layout: &Layout, who: &Identity) -> Result<(), StoreError> {
    let _held = lock(layout, who)?;
    for d in ["upper", "work", "home"] {
        remove_tree(&layout.state(who).join(d))?;
    }
    Ok(())
}

/// Deletes all the app's state and its permission overrides.
pub fn delete_data(layout: &Layout, who: &Identity) -> Result<(), StoreError> {
    let held = lock(layout, who)?;
    delete_data_held(layout, who, held)
}

/// [`delete_data`] with the guard taken earlier (e.g. before an uninstall changes anything, so
/// a running app refuses the whole command).
pub fn delete_data_held(
    layout: &Layout,
    who: &Identity,
    held: StateGuard,
) -> Result<(), StoreError> {
    remove_tree(&layout.state(who))?;
    drop(held);
    let _ = fs::remove_file(crate::overrides::path(layout, who));
    let _ = fs::remove_file(userdata::consent::path(who));
    Ok(())
}

/// What the app changed in its root, sorted by path.
pub fn diff(layout: &Layout, id: &str) -> Result<Vec<Change>, StoreError> {
    let rel = Release::current(layout, id)?;
    let who = rel.identity();
    let _held = lock(layout, &who)?;
    let tocs = rel.tocs()?;
    let in_layers = |p: &str| {
        tocs.iter()
            .any(|t| t.entries.iter().any(|e| e.path.as_str() == p))
    };
    let mountpoints: BTreeSet<String> = fs::read(layout.state(&who).join("mountpoints.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let is_mountpoint =
        |p: &str, e: &fsx::Entry| mountpoints.contains(p) && (e.kind == Kind::Dir || e.size == 0);
    let mut out = Vec::new();
    fsx::walk(&layout.state(&who).join("upper"), |e| {
        let rel_path = e.path.to_string_lossy().into_owned();
        let whiteout = (e.kind == Kind::CharDevice && e.rdev == 0) || e.whiteout_xattr;
        let kind = if whiteout {
            "deleted"
        } else if e.kind == Kind::Dir {
            if e.opaque_xattr {
                "replaced"
            } else if in_layers(&rel_path) {
                return true;
            } else {
                "added"
            }
        } else if in_layers(&rel_path) {
            "changed"
        } else {
            "added"
        };
        let abs = format!("/{rel_path}");
        if !(kind == "added" && is_mountpoint(&abs, e)) {
            out.push(Change { kind, path: abs });
        }
        !whiteout
    })?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
