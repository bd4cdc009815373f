//! Collecting the user's cache (`$XDG_CACHE_HOME/capsa`, `capsa gc`): the unpacked layers of
//! bundle files (`layers/<digest>`) and the read-only roots merged from them
//! (`merged/<manifest digest>`) are removed unless an installed app names the layer or a
//! running sandbox uses the entry; the staging and trash a killed run or collection left go too.
//!
//! In use: a run holds a shared `flock` on `locks/<name>` (a layer digest's hex, or
//! `merged-<hex>`) for every entry it uses, from before it checks or unpacks the entry until it
//! ends ([`hold`]). The collector takes that lock exclusively, without waiting, and keeps an
//! entry whose lock it cannot take. A lock file is unlinked only by the holder of its exclusive
//! lock; a run that locked an unlinked file sees that it is no longer the file at that path,
//! and locks the new one.
//!
//! Crash safety: an entry leaves its place in one rename(2) into a `.gc-*` directory beside
//! it, and is deleted there, so a crash leaves that directory, never part of an entry under
//! its name. Collections run one at a time (`gc.lock`), so a `.gc-*` directory is always a
//! killed collection's, and goes. A layer's staging directory (`.tmp-<short digest>-*`) goes
//! when no run holds the lock of a layer with that short digest (a run locks before it
//! stages); other trash (`.trash-*`) and the merged roots' staging when older than [`STALE`].

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::tally::Tally;
use crate::error::{prep, DataError};
use crate::state::{open_lock, same_file};

#[cfg(test)]
mod tests;

/// Age after which trash and staging that no lock covers are taken for a killed run's.
pub const STALE: Duration = Duration::from_secs(3600);

/// The lock name of a layer's cache entry.
pub fn layer_lock(digest: &bundle_format::Digest) -> String {
    digest.hex()
}

/// The lock name of a bundle's merged read-only root.
pub fn merged_lock(manifest: &bundle_format::Digest) -> String {
    format!("merged-{}", manifest.hex())
}

/// Shared locks on cache entries a run uses, held until dropped.
#[derive(Debug, Default)]
pub struct InUse {
    _locks: Vec<File>,
}

impl InUse {
    /// Adds `other`'s locks to these.
    pub fn extend(&mut self, other: InUse) {
        self._locks.extend(other._locks);
    }
}

/// Takes a shared lock on each named entry of the cache at `root` (waiting while a collection
/// moves one away).
pub fn hold(root: &Path, names: impl IntoIterator<Item = String>) -> Result<InUse, DataError> {
    let dir = root.join("locks");
    crate::dirs::private_dir(&dir)?;
    let mut locks = Vec::new();
    for name in names {
        let path = dir.join(name);
        loop {
            let f = open_lock(&path)?;
            f.lock_shared().map_err(prep(&path))?;
            if same_file(&f, &path) {
                locks.push(f);
                break;
            }
        }
    }
    Ok(InUse { _locks: locks })
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A layer unpacked for a bundle file (`name` is its digest).
    Layer,
    /// A bundle's layers merged into a read-only root (`name` is its manifest digest).
    Merged,
    /// Staging or trash a killed run or collection left (`name` is its file name).
    Leftover,
}

/// An entry removed (or, in a dry run, to be removed), and the bytes that frees.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub kind: Kind,
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Why an entry stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// An installed app's release names the layer.
    Installed,
    /// A running sandbox uses it.
    InUse,
}

/// An entry kept.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub kind: Kind,
    pub name: String,
    pub why: Why,
}

/// What a collection did (or would do).
#[derive(Debug, Default, Serialize)]
pub struct Collected {
    pub removed: Vec<Removed>,
    pub kept: Vec<Kept>,
}

impl Collected {
    pub fn freed(&self) -> u64 {
        self.removed.iter().map(|r| r.bytes).sum()
    }
}

/// Collects the cache at `root`: removes (unless `dry_run`) every layer entry whose digest
/// (hex) is not in `installed` and every merged root, but what a running sandbox uses, and
/// the leftovers. Nothing is created when there is no cache.
pub fn collect(
    root: &Path,
    installed: &HashSet<String>,
    dry_run: bool,
) -> Result<Collected, DataError> {
    if !root.is_dir() {
        return Ok(Collected::default());
    }
    let gc_lock = root.join("gc.lock");
    let lock = open_lock(&gc_lock)?;
    lock.lock().map_err(prep(&gc_lock))?;
    let mut c = Collector {
        root,
        dry_run,
        tally: Tally::default(),
        out: Collected::default(),
    };
    // Listed before the busy locks are read: a staging directory listed was made by a run
    // that had its lock by then, and still has it if it still runs.
    let layers = list(&root.join("layers"))?;
    let merged = list(&root.join("merged"))?;
    let busy = c.busy_locks()?;
    for name in layers {
        c.layer_entry(&name, installed, &busy)?;
    }
    for name in merged {
        c.merged_entry(&name)?;
    }
    c.stale_locks()?;
    let Collector { tally, mut out, .. } = c;
    let mut bytes = vec![0; out.removed.len()];
    tally.finish(&mut bytes);
    for (r, b) in out.removed.iter_mut().zip(bytes) {
        r.bytes = b;
    }
    Ok(out)
}

/// The names in `dir` (none when it does not exist).
fn list(dir: &Path) -> Result<Vec<String>, DataError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(prep(dir)(e)),
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

fn is_digest_hex(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_stale(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE)
}

/// An entry's lock as the collector found it.
enum Lock {
    /// A run holds it.
    Busy,
    /// Held exclusively by the collector (`None`: a dry run found no lock file).
    Free(Option<File>),
}

struct Collector<'a> {
    root: &'a Path,
    dry_run: bool,
    tally: Tally,
    out: Collected,
}

impl Collector<'_> {
    fn locks(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// The names of the locks a run holds now.
    fn busy_locks(&self) -> Result<HashSet<String>, DataError> {
        let mut busy = HashSet::new();
        for name in list(&self.locks())? {
            if matches!(self.try_lock(&name)?, Lock::Busy) {
                busy.insert(name);
            }
        }
        Ok(busy)
    }

    /// The entry's lock, exclusively, if no run holds it. The lock file is made when missing
    /// (so that no run can take it while the entry is moved), except in a dry run.
    fn try_lock(&self, name: &str) -> Result<Lock, DataError> {
        let path = self.locks().join(name);
        if self.dry_run && path.symlink_metadata().is_err() {
            return Ok(Lock::Free(None));
        }
        crate::dirs::private_dir(&self.locks())?;
        let f = open_lock(&path)?;
        match f.try_lock() {
            Ok(()) => Ok(Lock::Free(Some(f))),
            Err(fs::TryLockError::WouldBlock) => Ok(Lock::Busy),
            Err(fs::TryLockError::Error(e)) => Err(prep(&path)(e)),
        }
    }

    fn layer_entry(
        &mut self,
        name: &str,
        installed: &HashSet<String>,
        busy: &HashSet<String>,
    ) -> Result<(), DataError> {
        let dir = self.root.join("layers");
        if name.starts_with(".gc-") {
            return self.leftover(&dir, name);
        }
        if let Some(rest) = name.strip_prefix(".tmp-") {
            let short = rest.split('-').next().unwrap_or_default();
            if short.is_empty() || busy.iter().any(|b| b.starts_with(short)) {
                return Ok(());
            }
            return self.leftover(&dir, name);
        }
        if name.starts_with(".trash-") && is_stale(&dir.join(name)) {
            return self.leftover(&dir, name);
        }
        if !is_digest_hex(name) {
            return Ok(());
        }
        if installed.contains(name) {
            self.keep(Kind::Layer, name, Why::Installed);
            return Ok(());
        }
        self.entry(&dir, name, Kind::Layer, name)
    }

    fn merged_entry(&mut self, name: &str) -> Result<(), DataError> {
        let dir = self.root.join("merged");
        if name.starts_with(".gc-") {
            return self.leftover(&dir, name);
        }
        if name.starts_with('.') && is_stale(&dir.join(name)) {
            return self.leftover(&dir, name);
        }
        if !is_digest_hex(name) {
            return Ok(());
        }
        self.entry(&dir, name, Kind::Merged, &format!("merged-{name}"))
    }

    fn keep(&mut self, kind: Kind, name: &str, why: Why) {
        self.out.kept.push(Kept {
            kind,
            name: format!("sha256:{name}"),
            why,
        });
    }

    /// An entry, removed when its lock (`lock`) can be taken: renamed into a `.gc-*`
    /// directory under the lock, the lock file unlinked, then deleted.
    fn entry(&mut self, dir: &Path, name: &str, kind: Kind, lock: &str) -> Result<(), DataError> {
        let Lock::Free(held) = self.try_lock(lock)? else {
            self.keep(kind, name, Why::InUse);
            return Ok(());
        };
        let path = dir.join(name);
        self.count(kind, &format!("sha256:{name}"), &path)?;
        if self.dry_run {
            return Ok(());
        }
        let trash = tempfile::Builder::new()
            .prefix(".gc-")
            .tempdir_in(dir)
            .map_err(prep(dir))?
            .keep();
        fs::rename(&path, trash.join(name)).map_err(prep(&path))?;
        let lock_path = self.locks().join(lock);
        fs::remove_file(&lock_path).map_err(prep(&lock_path))?;
        drop(held);
        crate::fsx::remove_tree(&trash)
    }

    /// Staging or trash: nothing vouches for it, so it is deleted where it is.
    fn leftover(&mut self, dir: &Path, name: &str) -> Result<(), DataError> {
        let path = dir.join(name);
        self.count(Kind::Leftover, name, &path)?;
        match self.dry_run {
            true => Ok(()),
            false => crate::fsx::remove_tree(&path),
        }
    }

    fn count(&mut self, kind: Kind, name: &str, path: &Path) -> Result<(), DataError> {
        self.tally.walk(path, self.out.removed.len())?;
        self.out.removed.push(Removed {
            kind,
            name: name.to_owned(),
            path: path.to_path_buf(),
            bytes: 0,
        });
        Ok(())
    }

    /// Lock files whose entry is gone and that no run holds.
    fn stale_locks(&mut self) -> Result<(), DataError> {
        for name in list(&self.locks())? {
            let entry = match name.strip_prefix("merged-") {
                Some(hex) => self.root.join("merged").join(hex),
                None => self.root.join("layers").join(&name),
            };
            if self.dry_run || entry.symlink_metadata().is_ok() {
                continue;
            }
            if let Lock::Free(Some(held)) = self.try_lock(&name)? {
                let path = self.locks().join(&name);
                fs::remove_file(&path).map_err(prep(&path))?;
                drop(held);
            }
        }
        Ok(())
    }
}
