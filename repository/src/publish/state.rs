//! A repository opened by a publisher: the lock, the newest root of the chain, the index, and
//! [`Repo::commit`], the one way a command publishes (app documents, then the index copy in
//! the history, then `root.json` when stale, then `index.json`, then `index.html`).
//!
//! Invariants: a `Repo` holds the publisher lock for its whole life, and everything it read
//! was checked (the root chain from `roots/1.json` with [`next_root`], the index signed by the
//! newest root's keys, each app document against the digest and size the index gives), so a
//! command never builds on damaged metadata.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bundle_format::digest::HashingReader;
use bundle_format::{BlobRef, Digest, SecretKey};
use serde::{Deserialize, Serialize};

use super::error::{meta_err, PublishError};
use super::fsio::RepoDir;
use crate::layout;
use crate::meta::{
    self, next_root, open_app_doc, open_index, open_root, AppDoc, Index, Root, INDEX_CONTEXT,
    MAX_APP_DOC, MAX_INDEX, MAX_ROOT, MAX_ROOT_STEPS,
};

/// A copy of every index written, `<version>.json`, for `repo gc`'s grace period.
pub const HISTORY: &str = ".capsa-history";
/// The publisher's settings: the key path last used, the catalog's name and URL.
pub const CONFIG: &str = ".capsa-config.json";
/// Default index expiry.
pub const DEFAULT_EXPIRES_DAYS: u64 = 30;
/// Default root expiry.
pub const DEFAULT_ROOT_EXPIRES_DAYS: u64 = 365;
const DAY: u64 = 86_400;

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `days` from now, in Unix seconds.
pub fn days_from_now(days: u64) -> u64 {
    now().saturating_add(days.saturating_mul(DAY))
}

/// Publisher-side settings (never trusted by clients, never needed by them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The secret key file the last signing command used (its path only, never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The remote name the catalog suggests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The repository's public URL, for the catalog's commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The signing options every publishing command takes.
#[derive(Debug, Clone, Default)]
pub struct SignOpts {
    /// The secret key; `None`: the one in the config.
    pub key: Option<PathBuf>,
    /// Index expiry in days (default 30).
    pub expires_days: Option<u64>,
}

/// Loads a secret key file.
pub fn load_key(path: &Path) -> Result<SecretKey, PublishError> {
    SecretKey::load(path).map_err(|source| PublishError::Key {
        path: path.to_path_buf(),
        source,
    })
}

/// The signers' key ids, for messages.
pub fn key_ids(keys: &[String]) -> String {
    keys.iter()
        .map(|k| bundle_format::PublicKey::from_hex(k).map_or_else(|| k.clone(), |p| p.key_id()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A locked, checked repository.
#[derive(Debug)]
pub struct Repo {
    pub dir: RepoDir,
    _lock: File,
    /// The newest root of the chain.
    pub root: Root,
    /// `root.json` is not the newest root (a rotation was interrupted): rewritten on commit.
    root_stale: bool,
    pub index: Index,
    pub config: Config,
}

impl Repo {
    /// Opens and locks the repository at `path`, removing what a killed publisher left.
    pub fn open(path: &Path) -> Result<Self, PublishError> {
        let dir = RepoDir::open(path)?;
        // Checked before the lock, which would otherwise leave a lock file in any directory.
        if dir.size(layout::INDEX)?.is_none() {
            return Err(PublishError::NotARepository(path.to_path_buf()));
        }
        let lock = dir.lock()?;
        dir.sweep(&["", "roots", "keys", "blobs/sha256", HISTORY])?;
        let (root, root_stale) = load_roots(&dir)?;
        let index_bytes = dir
            .read(layout::INDEX, MAX_INDEX)?
            .ok_or_else(|| PublishError::NotARepository(path.to_path_buf()))?;
        let index = open_index(&root, &index_bytes).map_err(meta_err(format!(
            "{} does not open with root {}'s keys",
            dir.full(layout::INDEX).display(),
            root.version
        )))?;
        let config = match dir.read(CONFIG, 64 * 1024)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| PublishError::Damaged {
                path: CONFIG.into(),
                problem: e.to_string(),
            })?,
            None => Config::default(),
        };
        Ok(Self {
            dir,
            _lock: lock,
            root,
            root_stale,
            index,
            config,
        })
    }

    /// Wraps a freshly initialised directory (`repo init` wrote its files under `lock`).
    pub(super) fn from_parts(
        dir: RepoDir,
        lock: File,
        root: Root,
        index: Index,
        config: Config,
    ) -> Self {
        Self {
            dir,
            _lock: lock,
            root,
            root_stale: false,
            index,
            config,
        }
    }

    /// The signing key of `opts` (or the config's), checked to be one of the root's signers.
    pub fn signer(&self, opts: &SignOpts) -> Result<(SecretKey, PathBuf), PublishError> {
        let path = opts
            .key
            .clone()
            .or_else(|| self.config.key.clone())
            .ok_or(PublishError::NoKey)?;
        let key = load_key(&path)?;
        self.check_signer(&key)?;
        Ok((key, path))
    }

    /// Refuses a key that is not among the root's signers.
    pub fn check_signer(&self, key: &SecretKey) -> Result<(), PublishError> {
        if !self.root.signers.keys.contains(&key.public().to_hex()) {
            return Err(PublishError::NotASigner {
                key_id: key.public().key_id(),
                root: self.root.version,
                signers: key_ids(&self.root.signers.keys),
            });
        }
        Ok(())
    }

    /// The document of `app`, checked against the index; `None` when the index has no `app`.
    pub fn app(&self, app: &str) -> Result<Option<AppDoc>, PublishError> {
        let Some(r) = self.index.apps.get(app) else {
            return Ok(None);
        };
        read_app_doc(&self.dir, app, r).map(Some)
    }

    /// The document of `app`, which must exist.
    pub fn existing_app(&self, app: &str) -> Result<AppDoc, PublishError> {
        self.app(app)?
            .ok_or_else(|| PublishError::NoApp(app.to_owned()))
    }

    /// Every app's document, by id.
    pub fn apps(&self) -> Result<BTreeMap<String, AppDoc>, PublishError> {
        self.index
            .apps
            .iter()
            .map(|(id, r)| Ok((id.clone(), read_app_doc(&self.dir, id, r)?)))
            .collect()
    }

    /// Stores `bytes` as a blob (kept when already there); its directory's fsync is left to
    /// [`RepoDir::sync_dirs`].
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef, PublishError> {
        let r = BlobRef {
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
        };
        let rel = layout::blob(&r.digest);
        if self.dir.size(&rel)? != Some(r.size) {
            self.dir.write_nosync_dir(&rel, |f| f.write_all(bytes))?;
        }
        Ok(r)
    }

    /// Stores the blob `want` from `src`, hashing while writing: a source whose bytes differ
    /// from `want` leaves nothing. Returns whether it was new.
    pub fn put_blob_from(&self, want: &BlobRef, src: impl Read) -> Result<bool, PublishError> {
        let rel = layout::blob(&want.digest);
        if self.dir.size(&rel)? == Some(want.size) {
            return Ok(false);
        }
        self.dir.write_nosync_dir(&rel, |f| {
            let mut h = HashingReader::new(src.take(want.size + 1));
            io::copy(&mut h, f)?;
            let (_, digest, len) = h.into_parts();
            if digest != want.digest || len != want.size {
                return Err(io::Error::other(format!(
                    "its source gave {len} bytes of sha256 {digest}, not {} of {}",
                    want.size, want.digest
                )));
            }
            Ok(())
        })?;
        Ok(true)
    }

    /// Publishes: stores `docs` (new app documents), makes sure every file written so far is
    /// durable, signs a new index (version + 1) with `keys`, keeps its copy in the history,
    /// rewrites a stale `root.json`, writes `index.json`, then the catalog. Returns the new
    /// index version.
    pub fn commit(
        &mut self,
        docs: Vec<AppDoc>,
        keys: &[&SecretKey],
        expires_days: Option<u64>,
    ) -> Result<u64, PublishError> {
        let mut index = self.index.clone();
        for d in &docs {
            d.validate()
                .map_err(meta_err(format!("the new document of {}", d.app)))?;
            let bytes = meta::app_doc_bytes(d).map_err(meta_err("app document"))?;
            if bytes.len() as u64 > MAX_APP_DOC {
                return Err(meta_err(format!("the document of {}", d.app))(
                    meta::MetaError::TooLarge { cap: MAX_APP_DOC },
                ));
            }
            index.apps.insert(d.app.clone(), self.put_blob(&bytes)?);
        }
        self.dir.sync_dirs()?;
        index.version = index
            .version
            .checked_add(1)
            .ok_or(PublishError::IndexVersion(index.version))?;
        index.expires = days_from_now(expires_days.unwrap_or(DEFAULT_EXPIRES_DAYS));
        index.root = self.root.version;
        index.validate().map_err(meta_err("the new index"))?;
        let sealed = meta::seal(&index, INDEX_CONTEXT, keys).map_err(meta_err("the new index"))?;
        self.dir
            .write_bytes(&format!("{HISTORY}/{}.json", index.version), &sealed)?;
        if self.root_stale {
            let bytes = self
                .dir
                .read(&layout::root(self.root.version), MAX_ROOT)?
                .ok_or_else(|| PublishError::Damaged {
                    path: layout::root(self.root.version),
                    problem: "gone".into(),
                })?;
            self.dir.write_bytes(layout::ROOT, &bytes)?;
            self.root_stale = false;
        }
        self.dir.write_bytes(layout::INDEX, &sealed)?;
        self.index = index;
        self.write_catalog()?;
        Ok(self.index.version)
    }

    /// Rewrites `index.html` from the current index.
    pub fn write_catalog(&self) -> Result<(), PublishError> {
        let html = super::catalog_page(self)?;
        self.dir.write_bytes(layout::CATALOG, html.as_bytes())
    }

    /// Installs `root` (already written to `roots/<N>.json`) as the newest root.
    pub(super) fn set_root(&mut self, root: Root) {
        self.root = root;
        self.root_stale = true;
    }

    /// Saves the config.
    pub fn save_config(&self) -> Result<(), PublishError> {
        let bytes = serde_json::to_vec_pretty(&self.config).map_err(|e| PublishError::Damaged {
            path: CONFIG.into(),
            problem: e.to_string(),
        })?;
        self.dir.write_bytes(CONFIG, &bytes)
    }
}

/// Reads and checks one app document.
pub fn read_app_doc(dir: &RepoDir, app: &str, r: &BlobRef) -> Result<AppDoc, PublishError> {
    let rel = layout::blob(&r.digest);
    let damaged = |problem: String| PublishError::Damaged {
        path: rel.clone(),
        problem,
    };
    let bytes = dir
        .read(&rel, MAX_APP_DOC)?
        .ok_or_else(|| damaged(format!("the document of {app} is missing")))?;
    if bytes.len() as u64 != r.size || Digest::of(&bytes) != r.digest {
        return Err(damaged(format!(
            "the document of {app} differs from the index's digest and size"
        )));
    }
    let doc = open_app_doc(&bytes).map_err(|e| damaged(format!("the document of {app}: {e}")))?;
    if doc.app != app {
        return Err(damaged(format!("the document of {app} is {}'s", doc.app)));
    }
    Ok(doc)
}

/// Walks the root chain from `roots/1.json`; returns the newest root and whether `root.json`
/// differs from it.
pub fn load_roots(dir: &RepoDir) -> Result<(Root, bool), PublishError> {
    let missing = || PublishError::NotARepository(dir.path().to_path_buf());
    let first = dir.read(&layout::root(1), MAX_ROOT)?.ok_or_else(missing)?;
    let mut root = open_root(&first).map_err(meta_err(format!(
        "{} does not verify",
        dir.full(&layout::root(1)).display()
    )))?;
    let mut newest = first;
    for _ in 0..MAX_ROOT_STEPS {
        let rel = layout::root(root.version + 1);
        let Some(bytes) = dir.read(&rel, MAX_ROOT)? else {
            break;
        };
        root = next_root(&root, &bytes).map_err(meta_err(format!(
            "{} does not follow root {}",
            dir.full(&rel).display(),
            root.version
        )))?;
        newest = bytes;
    }
    let current = dir.read(layout::ROOT, MAX_ROOT)?.ok_or_else(missing)?;
    Ok((root, current != newest))
}
