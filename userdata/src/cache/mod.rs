//! The per-user layer cache: each layer unpacked once into
//! `$XDG_CACHE_HOME/capsa/layers/<digest>/tree`, then reused by every run and app that shares it
//! (the store keeps its installed layers the same way, in `$XDG_DATA_HOME/capsa/layers`).
//!
//! Verify once, then trust cheaply. Unpacking streams the (digest-checked) blob, checks every
//! entry against the TOC, writes into a private staging directory, seals it ([`seal`]: a stamp
//! naming the layer, the TOC it was checked against, its entry count, the identity and ctime of
//! the tree's top directory and the newest ctime in the tree) and renames it into place, so a crash or a concurrent run never
//! sees half a layer or a stamp on one: two runs racing both unpack, the first rename wins, the
//! loser uses the winner's. A tree can also be built without the layer's blob, from its TOC and
//! one source per regular file ([`LayerCache::build`], a repository update): every file is
//! hashed against the TOC while it is written, and staged, sealed and renamed the same way. A start checks only the seal (one open, one small read, two
//! `fstat`s), and needs no TOC for it. When the seal does not hold (missing, unreadable,
//! another layer's or another TOC's, or the tree's top directory replaced or changed), the tree
//! gets the full check ([`verify`]) against the TOC: if it passes it is sealed again and used;
//! if not, a bundle's cached layer is discarded and unpacked again, an installed layer is
//! refused. Only a stamp naming this very layer digest and TOC digest is a reference for the
//! cheap check (`by_ctime`); any other stamp (a version 1 stamp names no TOC) gets the content
//! check (`by_content`): an entry is named by the layer digest alone, and a tree built for one
//! TOC must never pass for another manifest's pairing of that digest with another TOC.
//!
//! A run holds a shared lock on each entry it uses (`$XDG_CACHE_HOME/capsa/locks`, [`gc::hold`]),
//! so `capsa gc` ([`gc`]) never removes an entry in use.
//!
//! Invariants: no TOC is asked for while every seal holds, and then no thread is started
//! (the launcher clones right after); nothing in a tree is ever written after its rename into
//! place, not even a mode.

pub mod gc;
pub mod seal;
mod tally;
#[cfg(test)]
mod tests;
pub mod verify;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use std::io::Read;

use bundle_format::digest::HashingReader;
use bundle_format::extract::write_entry;
use bundle_format::{Bundle, EntryKind, Layer, Toc, TocEntry};

use crate::error::{prep, ContentMismatch, DataError};

/// The stamp file of earlier versions (the newest ctime only), removed on resealing.
const OLD_STAMP: &str = "complete.json";
/// `<entry>/disk-usage`: the bytes the tree took on disk when it was unpacked (decimal, one
/// line), so `capsa info` need not walk the tree. A report, never trusted for a decision.
pub const DISK_USAGE: &str = "disk-usage";

/// What a source of [`LayerCache::build`] gives for one regular file: a reader of its content
/// (checked against the TOC while it is written), or why there is none.
pub type FileContent<'r> = Result<Box<dyn Read + 'r>, DataError>;

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

impl LayerCache {
    pub fn new(dir: PathBuf) -> Result<Self, DataError> {
        fs::create_dir_all(&dir).map_err(prep(&dir))?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, layer: &Layer) -> PathBuf {
        self.dir.join(layer.digest.hex())
    }

    /// The bytes `layer`'s tree took on disk when it was unpacked, if recorded (entries
    /// unpacked by older versions have no record).
    pub fn disk_usage(&self, layer: &Layer) -> Option<u64> {
        use std::os::unix::fs::OpenOptionsExt;
        // Not following a symlink, not waiting on a FIFO: only a regular file is read.
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
            .open(self.entry(layer).join(DISK_USAGE))
            .ok()?;
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        let mut s = String::new();
        f.take(32).read_to_string(&mut s).ok()?;
        s.trim_end().parse().ok()
    }

    /// Whether the seal of `layer`'s entry holds: the O(1) check of a start.
    pub fn sealed(&self, layer: &Layer) -> Result<(), seal::Broken> {
        seal::holds(
            &self.entry(layer),
            &layer.digest,
            &layer.toc.digest,
            layer.entries,
        )
    }

    /// [`LayerCache::ensure`] for every layer of `bundle`; trees and outcomes in manifest
    /// order. The seals are checked first, one after the other; only when one does not hold
    /// are the TOCs asked for (`tocs`, in manifest order) and the layers that need work
    /// checked or unpacked, each on its own thread (which ends before this returns).
    pub fn ensure_all<'t, E: From<DataError>>(
        &self,
        bundle: &Bundle,
        tocs: impl FnOnce() -> Result<&'t [Toc], E>,
    ) -> Result<Vec<(PathBuf, CacheOutcome)>, E> {
        let layers = &bundle.manifest().layers;
        let sealed: Vec<bool> = layers.iter().map(|l| self.sealed(l).is_ok()).collect();
        let hit = |l: &Layer| (self.entry(l).join("tree"), CacheOutcome::Hit);
        if sealed.iter().all(|s| *s) {
            return Ok(layers.iter().map(hit).collect());
        }
        // What is not cached yet must fit (the declared sizes bound what unpacking writes).
        let need = layers
            .iter()
            .filter(|l| !self.entry(l).exists())
            .fold(0u64, |n, l| n.saturating_add(l.unpacked_size));
        if need > 0 {
            bundle_format::extract::check_free_space(&self.dir, need)
                .map_err(|e| DataError::Space(Box::new(e)))?;
        }
        let tocs = tocs()?;
        let results = std::thread::scope(|scope| {
            let handles: Vec<_> = layers
                .iter()
                .zip(tocs)
                .zip(&sealed)
                .map(|((layer, toc), &ok)| {
                    (!ok).then(|| scope.spawn(move || self.check_or_unpack(bundle, layer, toc)))
                })
                .collect();
            layers
                .iter()
                .zip(handles)
                .map(|(l, h)| match h {
                    None => Ok(hit(l)),
                    Some(h) => h.join().expect("layer unpacking panicked"),
                })
                .collect::<Result<Vec<_>, DataError>>()
        });
        Ok(results?)
    }

    /// The tree of an installed layer, after checking it is intact (there is no bundle to
    /// repair it from: a damaged installed layer is an error). `toc` is asked for only when
    /// the seal does not hold.
    pub fn check<'t, E: From<DataError>>(
        &self,
        layer: &Layer,
        toc: impl FnOnce() -> Result<&'t Toc, E>,
    ) -> Result<PathBuf, E> {
        let entry = self.entry(layer);
        if self.sealed(layer).is_err() && !self.check_and_reseal(layer, toc()?) {
            return Err(DataError::Damaged { path: entry }.into());
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
        if self.sealed(layer).is_ok() {
            return Ok((self.entry(layer).join("tree"), CacheOutcome::Hit));
        }
        self.check_or_unpack(bundle, layer, toc)
    }

    /// For an entry whose seal does not hold: the full check, then a new seal or a new copy.
    fn check_or_unpack(
        &self,
        bundle: &Bundle,
        layer: &Layer,
        toc: &Toc,
    ) -> Result<(PathBuf, CacheOutcome), DataError> {
        self.stage(layer, toc, |stree| {
            bundle
                .read_layer(layer, toc, |e, content| {
                    write_entry(stree, e, content).map(|_| ())
                })
                .map_err(|source| DataError::Unpack {
                    bundle: bundle.path().to_path_buf(),
                    layer: layer.role.as_str().to_owned(),
                    source: Box::new(source),
                })
        })
    }

    /// The tree of `layer` built from its TOC and one source per regular file, for when the
    /// layer's blob is not at hand (a repository update fetches only the files it lacks):
    /// the entry as it is when its seal holds; else, as for a bundle's layer, the full check
    /// of an entry that is there, and a new tree when there is none or it fails.
    ///
    /// `toc` must be the table of contents whose blob is `layer.toc` (the caller checked that
    /// blob's digest; its entry count and content size are checked here against the
    /// manifest's, and it is validated again). Directories, symlinks and hardlinks come from
    /// the TOC; `source` is asked for each regular file, in TOC order, and what it gives is
    /// hashed while it is written: a file whose size or sha256 differs from the TOC's is
    /// [`DataError::Content`] (at most one byte past the TOC's size is ever read from a
    /// source). The tree is built in a private `.tmp-*` directory, surveyed, sealed and
    /// renamed into place; on any failure nothing is left, under the entry's name or any
    /// other. A reader may borrow from what the closure captures (`'r`), not from the entry.
    pub fn build<'r>(
        &self,
        layer: &Layer,
        toc: &Toc,
        source: &mut dyn FnMut(&TocEntry) -> FileContent<'r>,
    ) -> Result<(PathBuf, CacheOutcome), DataError> {
        if self.sealed(layer).is_ok() {
            return Ok((self.entry(layer).join("tree"), CacheOutcome::Hit));
        }
        check_toc(layer, toc)?;
        if !self.entry(layer).exists() {
            bundle_format::extract::check_free_space(&self.dir, layer.unpacked_size)
                .map_err(|e| DataError::Space(Box::new(e)))?;
        }
        self.stage(layer, toc, |stree| {
            for e in &toc.entries {
                build_entry(stree, layer, e, source)?;
            }
            Ok(())
        })
    }

    /// For an entry whose seal does not hold: the full check of the entry that is there (a
    /// hit when it passes; discarded when not), else a new tree: `fill` writes it into a
    /// private staging directory, which is then given its mode, surveyed, sealed and renamed
    /// into place (the loser of a race uses the winner's entry when it is sound).
    fn stage(
        &self,
        layer: &Layer,
        toc: &Toc,
        fill: impl FnOnce(&Path) -> Result<(), DataError>,
    ) -> Result<(PathBuf, CacheOutcome), DataError> {
        let entry = self.entry(layer);
        let tree = entry.join("tree");
        let mut outcome = CacheOutcome::Unpacked;
        if entry.symlink_metadata().is_ok() {
            if self.check_and_reseal(layer, toc) {
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
        fill(&stree)?;
        fs::set_permissions(&stree, fs::Permissions::from_mode(0o755)).map_err(prep(&stree))?;
        let survey = verify::survey(&stree, toc).map_err(prep(&stree))?;
        let usage = staging.path().join(DISK_USAGE);
        fs::write(&usage, format!("{}\n", survey.disk_bytes)).map_err(prep(&usage))?;
        seal::write(
            staging.path(),
            layer.digest,
            layer.toc.digest,
            layer.entries,
            survey.max_ctime,
        )
        .map_err(prep(staging.path()))?;
        match fs::rename(staging.path(), &entry) {
            Ok(()) => {
                let _ = staging.keep();
                Ok((tree, outcome))
            }
            // Another run finished first: use its copy if it is sound.
            Err(_) if self.sealed(layer).is_ok() || self.check_and_reseal(layer, toc) => {
                Ok((tree, CacheOutcome::Hit))
            }
            Err(e) => Err(prep(&entry)(e)),
        }
    }

    /// The full check of an entry whose seal does not hold; when the tree passes, it is
    /// sealed again. A seal that cannot be written leaves the entry as it was: the tree is
    /// sound, and the next start checks it again.
    fn check_and_reseal(&self, layer: &Layer, toc: &Toc) -> bool {
        let entry = self.entry(layer);
        let tree = entry.join("tree");
        if toc.entries.len() as u64 != layer.entries {
            return false;
        }
        let reference = match self.sealed(layer) {
            Ok(()) => return true,
            Err(broken) => broken.max_ctime(),
        };
        let max_ctime = match reference {
            Some(max) if verify::by_ctime(&tree, toc, max) => max,
            Some(_) => return false,
            None => match verify::by_content(&tree, toc) {
                Some(max) => max,
                None => return false,
            },
        };
        let sealed = seal::write(
            &entry,
            layer.digest,
            layer.toc.digest,
            layer.entries,
            max_ctime,
        );
        if sealed.is_ok() {
            let _ = fs::remove_file(entry.join(OLD_STAMP));
        }
        true
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

/// Refuses a TOC that is not (or not a valid) table of contents of `layer`.
fn check_toc(layer: &Layer, toc: &Toc) -> Result<(), DataError> {
    let wrong = |problem: String| DataError::NotTheToc {
        layer: layer_name(layer),
        problem,
    };
    toc.validate().map_err(|e| wrong(e.to_string()))?;
    let (entries, bytes) = (toc.entries.len() as u64, toc.content_size());
    if entries != layer.entries || bytes != layer.unpacked_size {
        return Err(wrong(format!(
            "{entries} entries of {bytes} bytes, the manifest says {} of {}",
            layer.entries, layer.unpacked_size
        )));
    }
    Ok(())
}

/// A layer as errors name it: its role and digest.
fn layer_name(layer: &Layer) -> String {
    format!("{} ({})", layer.role.as_str(), layer.digest)
}

/// Writes one TOC entry below `stree`; a regular file's content from `source`, checked.
fn build_entry<'r>(
    stree: &Path,
    layer: &Layer,
    e: &TocEntry,
    source: &mut dyn FnMut(&TocEntry) -> FileContent<'r>,
) -> Result<(), DataError> {
    let dst = e.path.under(stree);
    if e.kind != EntryKind::File {
        return write_entry(stree, e, &mut std::io::empty())
            .map(|_| ())
            .map_err(prep(&dst));
    }
    let reader = source(e)?;
    let mut content = HashingReader::new(Tracked::new(reader).take(e.size.saturating_add(1)));
    let written = write_entry(stree, e, &mut content);
    let (take, actual, actual_size) = content.into_parts();
    if let Some(err) = take.into_inner().error {
        return Err(DataError::Source {
            layer: layer_name(layer),
            path: e.path.to_string(),
            source: err,
        });
    }
    written.map_err(prep(&dst))?;
    if actual_size != e.size || Some(actual) != e.sha256 {
        return Err(DataError::Content(Box::new(ContentMismatch {
            layer: layer_name(layer),
            path: e.path.to_string(),
            expected: e.sha256.unwrap_or(actual),
            expected_size: e.size,
            actual,
            actual_size,
        })));
    }
    Ok(())
}

/// A source's reader that keeps its first read error, so a failed read is told apart from a
/// failed write.
struct Tracked<R> {
    inner: R,
    error: Option<std::io::Error>,
}

impl<R: Read> Tracked<R> {
    fn new(inner: R) -> Self {
        Self { inner, error: None }
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let again = std::io::Error::new(e.kind(), e.to_string());
            self.error.get_or_insert(e);
            again
        })
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
