//! An installed release: the exact manifest bytes, its tables of contents and signatures, as
//! verified at install time. Immutable once renamed into `releases/<manifest-digest>`.
//!
//! Reading a release reads and checks its manifest; its TOCs (`toc-N.json`, the large part)
//! are read and checked, as strictly, only on first use ([`Release::tocs`]): listing apps,
//! `info` and a start whose layers' seals hold never decode them. A manifest checked once is
//! kept for the rest of the process, by release directory and the identity of its file (a
//! release never changes in place; a file replaced since has another inode or change time and
//! is read and checked again), so a command that visits every app (recovery, garbage
//! collection, then its own work) parses each manifest once.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use bundle_format::sign::SignatureEntry;
use bundle_format::{Digest, Manifest, PublicKey, Toc};
use userdata::{Identity, Publisher};

use crate::error::{io, StoreError};
use crate::layout::Layout;

/// A release read back from the store.
#[derive(Debug, Clone)]
pub struct Release {
    pub dir: PathBuf,
    pub digest: Digest,
    pub manifest: Manifest,
    /// Who published the app: recorded at its first install, the same for every release.
    pub publisher: Publisher,
    /// The app id, named when a TOC turns out damaged.
    app: String,
    tocs: OnceLock<Vec<Toc>>,
}

impl Release {
    /// Reads and re-checks a release directory (the store is the user's, but a release is
    /// still parsed as strictly as a bundle).
    pub fn read(dir: &Path, app: &str) -> Result<Self, StoreError> {
        let damaged = |problem: String| StoreError::Damaged {
            app: app.into(),
            problem,
        };
        let (digest, manifest) = read_manifest(dir).map_err(|e| match e {
            ManifestError::Io(e) => io(dir)(e),
            ManifestError::Damaged(problem) => damaged(problem),
        })?;
        let publisher = read_publisher(dir.parent().and_then(Path::parent).unwrap_or(dir), dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            digest,
            manifest,
            publisher,
            app: app.into(),
            tocs: OnceLock::new(),
        })
    }

    /// The release's TOCs in manifest order, read and checked on first use.
    pub fn tocs(&self) -> Result<&[Toc], StoreError> {
        if let Some(t) = self.tocs.get() {
            return Ok(t);
        }
        let tocs = read_tocs(&self.dir, &self.manifest, &self.app)?;
        Ok(self.tocs.get_or_init(|| tocs))
    }

    /// The current release of `app`.
    pub fn current(layout: &Layout, app: &str) -> Result<Self, StoreError> {
        crate::layout::check_id(app)?;
        let link = layout.app(app).join("current");
        let target = fs::read_link(&link).map_err(|_| StoreError::NotInstalled(app.into()))?;
        Self::read(&layout.app(app).join(target), app)
    }

    /// The app's identity: its id and publisher.
    pub fn identity(&self) -> Identity {
        Identity {
            id: self.manifest.id.clone(),
            publisher: self.publisher.clone(),
        }
    }
}

enum ManifestError {
    Io(std::io::Error),
    Damaged(String),
}

/// What identifies the file a manifest was read from.
type FileKey = (u64, u64, u64, i64, i64, i64, i64);

/// Manifests this process has read and checked: release directory → (file, digest, manifest).
type Checked = HashMap<PathBuf, (FileKey, Digest, Manifest)>;
static CHECKED: Mutex<Option<Checked>> = Mutex::new(None);

/// The manifest of the release in `dir`, checked against the directory's name (its digest)
/// and parsed strictly; from [`CHECKED`] when this very file was checked before.
fn read_manifest(dir: &Path) -> Result<(Digest, Manifest), ManifestError> {
    let mut f = fs::File::open(dir.join("manifest.json")).map_err(ManifestError::Io)?;
    let m = f.metadata().map_err(ManifestError::Io)?;
    let key = (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    );
    let mut memo = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((k, d, man)) = memo.as_ref().and_then(|c| c.get(dir)) {
        if *k == key {
            return Ok((*d, man.clone()));
        }
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(ManifestError::Io)?;
    let digest = Digest::of(&bytes);
    if dir.file_name().and_then(|n| n.to_str()) != Some(digest.hex().as_str()) {
        return Err(ManifestError::Damaged(
            "the manifest does not match its release directory".into(),
        ));
    }
    let manifest =
        Manifest::from_bytes(&bytes).map_err(|e| ManifestError::Damaged(e.to_string()))?;
    memo.get_or_insert_with(HashMap::new)
        .insert(dir.to_path_buf(), (key, digest, manifest.clone()));
    Ok((digest, manifest))
}

/// Reads and checks the TOCs of the release in `dir` (of `app`, whose manifest is `manifest`):
/// each canonical, valid, with the manifest's entry count.
pub fn read_tocs(dir: &Path, manifest: &Manifest, app: &str) -> Result<Vec<Toc>, StoreError> {
    let damaged = |problem: String| StoreError::Damaged {
        app: app.into(),
        problem,
    };
    let mut tocs = Vec::new();
    for (i, layer) in manifest.layers.iter().enumerate() {
        let p = dir.join(format!("toc-{i}.json"));
        let b = fs::read(&p).map_err(io(&p))?;
        let toc = Toc::from_canonical(&b).map_err(|e| damaged(format!("{}: {e}", p.display())))?;
        toc.validate().map_err(|e| damaged(e.to_string()))?;
        if toc.entries.len() as u64 != layer.entries {
            return Err(damaged(format!(
                "{} does not match the manifest",
                p.display()
            )));
        }
        tocs.push(toc);
    }
    Ok(tocs)
}

/// The file in an app's directory naming its publisher.
pub const PUBLISHER: &str = "publisher.json";

/// The publisher recorded for the app at `app`; for apps installed before it was recorded,
/// the release's first signature (checked at install), or `local` when it had none.
fn read_publisher(app: &Path, release: &Path) -> Result<Publisher, StoreError> {
    let p = app.join(PUBLISHER);
    if let Ok(b) = fs::read(&p) {
        return serde_json::from_slice(&b)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", p.display())));
    }
    let sigs: Vec<SignatureEntry> = fs::read(release.join("signatures.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    Ok(sigs
        .first()
        .and_then(|s| PublicKey::from_hex(&s.public_key))
        .map(|k| Publisher::key(&k))
        .unwrap_or(Publisher::Local))
}
