//! `repo init` (root 1, an empty index) and `repo rotate-key` (root N+1, signed by the old key
//! and the new one).
//!
//! A rotation never leaves a client stuck, wherever it is killed: first an index signed by
//! BOTH keys is published (valid under root N and under root N+1), then `roots/<N+1>.json`
//! (clients that walk the chain now move to N+1, and the index they find verifies), then
//! `root.json` and an index signed by the new key alone. (Clients walk `roots/` until a 404
//! and check the index's signatures against their newest root; an index whose `root` field
//! is lower than that root is fine.)

use std::path::{Path, PathBuf};

use bundle_format::SecretKey;

use super::error::{meta_err, PublishError};
use super::fsio::RepoDir;
use super::state::{days_from_now, load_key, Config, Repo, DEFAULT_ROOT_EXPIRES_DAYS, HISTORY};
use crate::layout;
use crate::meta::{self, open_root, DocKind, Index, KeySet, Root, MAX_ROOT, ROOT_CONTEXT};

/// Options of `repo init`.
#[derive(Debug, Clone, Default)]
pub struct InitOpts {
    pub key: PathBuf,
    pub expires_days: Option<u64>,
    pub root_expires_days: Option<u64>,
    /// The remote name and URL the catalog's commands show.
    pub name: Option<String>,
    pub url: Option<String>,
}

fn public_key_file(key: &SecretKey) -> String {
    format!("capsa-public-key ed25519 {}\n", key.public().to_hex())
}

fn new_root(version: u64, key: &SecretKey, days: Option<u64>) -> Root {
    Root {
        kind: DocKind::Root,
        version,
        expires: days_from_now(days.unwrap_or(DEFAULT_ROOT_EXPIRES_DAYS)),
        signers: KeySet::single(&key.public()),
    }
}

/// `repo init DIR --key K`. Returns the key id.
pub fn init(dir: &Path, opts: &InitOpts) -> Result<String, PublishError> {
    let key = load_key(&opts.key)?;
    let d = RepoDir::create(dir)?;
    let lock = d.lock()?;
    if d.size(layout::INDEX)?.is_some() {
        return Err(PublishError::AlreadyARepository(dir.to_path_buf()));
    }
    // An init killed before its index leaves roots/1.json: finish it with the same key only.
    let root = match d.read(&layout::root(1), MAX_ROOT)? {
        Some(bytes) => match open_root(&bytes) {
            Ok(r) if r.signers == KeySet::single(&key.public()) => r,
            _ => return Err(PublishError::AlreadyARepository(dir.to_path_buf())),
        },
        None => {
            let root = new_root(1, &key, opts.root_expires_days);
            let sealed = meta::seal(&root, ROOT_CONTEXT, &[&key]).map_err(meta_err("root 1"))?;
            for sub in ["blobs/sha256", "objects/sha256", "keys", HISTORY] {
                d.mkdirs(sub)?;
            }
            d.write_bytes(
                &layout::key(&key.public().key_id()),
                public_key_file(&key).as_bytes(),
            )?;
            d.write_bytes(&layout::root(1), &sealed)?;
            d.write_bytes(layout::ROOT, &sealed)?;
            root
        }
    };
    let config = Config {
        key: Some(std::path::absolute(&opts.key).unwrap_or_else(|_| opts.key.clone())),
        name: opts.name.clone(),
        url: opts.url.clone(),
    };
    // Version 0 is never written: the commit makes it 1.
    let index = Index {
        kind: DocKind::Index,
        version: 0,
        expires: 0,
        root: root.version,
        apps: Default::default(),
    };
    let mut repo = Repo::from_parts(d, lock, root, index, config);
    repo.save_config()?;
    repo.commit(Vec::new(), &[&key], opts.expires_days)?;
    Ok(key.public().key_id())
}

/// What `repo rotate-key` did.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub root_version: u64,
    pub index_version: u64,
    pub old_key: String,
    pub new_key: String,
    /// The repository already had the new key as its only signer (an interrupted rotation
    /// was finished).
    pub finished_earlier: bool,
}

/// `repo rotate-key DIR --key OLD --new-key NEW`.
pub fn rotate_key(
    dir: &Path,
    old_path: &Path,
    new_path: &Path,
    root_expires_days: Option<u64>,
    expires_days: Option<u64>,
) -> Result<Rotated, PublishError> {
    let mut repo = Repo::open(dir)?;
    let old = load_key(old_path)?;
    let new = load_key(new_path)?;
    let (old_id, new_id) = (old.public().key_id(), new.public().key_id());
    let new_abs = std::path::absolute(new_path).unwrap_or_else(|_| new_path.to_path_buf());
    if repo.root.signers == KeySet::single(&new.public()) && old_id != new_id {
        let index_version = repo.commit(Vec::new(), &[&new], expires_days)?;
        repo.config.key = Some(new_abs);
        repo.save_config()?;
        return Ok(Rotated {
            root_version: repo.root.version,
            index_version,
            old_key: old_id,
            new_key: new_id,
            finished_earlier: true,
        });
    }
    repo.check_signer(&old)?;
    let next = new_root(repo.root.version + 1, &new, root_expires_days);
    // Renewing a root with the same key signs once.
    let signers: Vec<&SecretKey> = if old_id == new_id {
        vec![&new]
    } else {
        vec![&old, &new]
    };
    let sealed = meta::seal(&next, ROOT_CONTEXT, &signers).map_err(meta_err("the new root"))?;
    meta::next_root(&repo.root, &sealed).map_err(meta_err("the new root"))?;
    repo.dir
        .write_bytes(&layout::key(&new_id), public_key_file(&new).as_bytes())?;
    // 1. An index both roots accept.
    repo.commit(Vec::new(), &signers, expires_days)?;
    // 2. The new root, 3. root.json and an index by the new key alone.
    repo.dir.write_bytes(&layout::root(next.version), &sealed)?;
    repo.set_root(next);
    let index_version = repo.commit(Vec::new(), &[&new], expires_days)?;
    repo.config.key = Some(new_abs);
    repo.save_config()?;
    Ok(Rotated {
        root_version: repo.root.version,
        index_version,
        old_key: old_id,
        new_key: new_id,
        finished_earlier: false,
    })
}
