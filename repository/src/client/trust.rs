//! What the client trusts about a repository, kept by the pinned key's id (not by the remote's
//! name, so removing and re-adding a remote keeps it):
//! `$XDG_STATE_HOME/capsa/trust/<key id>.json`
//! `{"root":{"version":N,"keys":[..],"threshold":T,"expires":E},"index_version":V,"floors":{"<app>":SEQ}}`.
//!
//! Refreshing a remote: start from the kept root (or, the first time, from a root signed by
//! the pinned key: `root.json` when the pinned key signed it, else `roots/1.json`), walk
//! `roots/<v+1>.json` until it is missing (each signed by the previous root's keys and its
//! own), refuse an expired root; then fetch `index.json` and refuse it unless signed by the
//! root's keys, naming no newer root, of a version at least the kept one (rollback) and not
//! expired (freeze). Only then is the state written, under a lock, with the higher versions.
//!
//! Invariants: versions kept here never go down; a floor goes down only by an install the
//! user allowed to downgrade.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bundle_format::PublicKey;
use serde::{Deserialize, Serialize};

use super::error::ClientError;
use super::files::{lock, read_json, write_json, Dirs, Lock};
use super::remote::Remote;
use super::source::Source;
use super::text::{now, utc};
use crate::layout;
use crate::meta::{
    self, next_root, open_index, open_root, DocKind, Index, KeySet, Root, MAX_INDEX, MAX_ROOT,
    MAX_ROOT_STEPS, ROOT_CONTEXT,
};

/// The kept root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptRoot {
    pub version: u64,
    pub keys: Vec<String>,
    pub threshold: u32,
    pub expires: u64,
}

impl KeptRoot {
    fn of(r: &Root) -> Self {
        Self {
            version: r.version,
            keys: r.signers.keys.clone(),
            threshold: r.signers.threshold,
            expires: r.expires,
        }
    }

    fn root(&self) -> Root {
        Root {
            kind: DocKind::Root,
            version: self.version,
            expires: self.expires,
            signers: KeySet {
                keys: self.keys.clone(),
                threshold: self.threshold,
            },
        }
    }
}

/// One repository's trust state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustState {
    pub root: Option<KeptRoot>,
    pub index_version: u64,
    /// The seq of each app's release installed from this repository.
    pub floors: BTreeMap<String, u64>,
}

fn path(dirs: &Dirs, key_id: &str) -> PathBuf {
    dirs.trust().join(format!("{key_id}.json"))
}

/// The trust state of the key `key_id` (a hex key id, never repository data), locked until
/// the returned lock is dropped.
pub(crate) fn load(dirs: &Dirs, key_id: &str) -> Result<(TrustState, Lock), ClientError> {
    let held = lock(&dirs.trust().join(format!("{key_id}.lock")))?;
    let state = read_json(&path(dirs, key_id))?.unwrap_or_default();
    Ok((state, held))
}

/// Writes the trust state (the caller holds its lock).
pub(crate) fn save(
    dirs: &Dirs,
    key_id: &str,
    state: &TrustState,
    _held: &Lock,
) -> Result<(), ClientError> {
    write_json(&path(dirs, key_id), state)
}

/// The trust state kept for the key `key_id` (for `capsa remote list`).
pub fn state(dirs: &Dirs, key_id: &str) -> Result<TrustState, ClientError> {
    Ok(load(dirs, key_id)?.0)
}

/// Refreshes `remote` from `src`: the newest root, then the index, every check of the module
/// docs; the kept state moves forward.
pub fn refresh(dirs: &Dirs, remote: &Remote, src: &dyn Source) -> Result<Index, ClientError> {
    let key_id = remote.key_id();
    let (mut state, held) = load(dirs, &key_id)?;
    let root = walk(remote, src, state.root.as_ref().map(KeptRoot::root))?;
    state.root = Some(KeptRoot::of(&root));
    let result = index(remote, src, &root, state.index_version);
    if let Ok(ix) = &result {
        state.index_version = state.index_version.max(ix.version);
    }
    // A root that passed its checks is kept even when the index did not.
    save(dirs, &key_id, &state, &held)?;
    result
}

fn meta_err(remote: &Remote, file: &str) -> impl FnOnce(meta::MetaError) -> ClientError {
    let (remote, file) = (remote.name.clone(), file.to_owned());
    move |source| ClientError::Meta {
        remote,
        file,
        source,
    }
}

/// The newest root, from `kept` or from the first root the pinned key vouches for.
fn walk(remote: &Remote, src: &dyn Source, kept: Option<Root>) -> Result<Root, ClientError> {
    let mut trusted = match kept {
        Some(r) => r,
        None => first_root(remote, src)?,
    };
    for _ in 0..MAX_ROOT_STEPS {
        let file = layout::root(trusted.version + 1);
        let Some(bytes) = src.meta(&file, MAX_ROOT)? else {
            break;
        };
        trusted = next_root(&trusted, &bytes).map_err(meta_err(remote, &file))?;
    }
    if trusted.expires <= now() {
        return Err(ClientError::RootExpired {
            remote: remote.name.clone(),
            version: trusted.version,
            date: utc(trusted.expires),
        });
    }
    Ok(trusted)
}

/// The first root of a remote: `root.json` when the pinned key signed it (a key given after
/// a rotation), else `roots/1.json` signed by the pinned key and its own keys.
fn first_root(remote: &Remote, src: &dyn Source) -> Result<Root, ClientError> {
    let pinned = remote.public_key();
    if let Some(bytes) = src.meta(layout::ROOT, MAX_ROOT)? {
        if let Some(r) = root_signed_by(&bytes, &pinned) {
            return Ok(r);
        }
    }
    let genesis = Root {
        kind: DocKind::Root,
        version: 0,
        expires: u64::MAX,
        signers: KeySet::single(&pinned),
    };
    let file = layout::root(1);
    match src.meta(&file, MAX_ROOT)? {
        Some(bytes) => next_root(&genesis, &bytes).map_err(|e| match e {
            meta::MetaError::Signature { .. } => ClientError::Untrusted {
                remote: remote.name.clone(),
                key_id: pinned.key_id(),
            },
            other => meta_err(remote, &file)(other),
        }),
        None => Err(ClientError::Missing {
            remote: remote.name.clone(),
            file,
        }),
    }
}

/// A root valid and signed by its own keys and by `pinned`.
fn root_signed_by(bytes: &[u8], pinned: &PublicKey) -> Option<Root> {
    let root = open_root(bytes).ok()?;
    let opened: meta::Opened<Root> = meta::open(bytes, MAX_ROOT).ok()?;
    opened
        .signed_by(&KeySet::single(pinned), ROOT_CONTEXT)
        .then_some(root)
}

/// `index.json`, checked against `root` and the kept version.
fn index(remote: &Remote, src: &dyn Source, root: &Root, kept: u64) -> Result<Index, ClientError> {
    let file = layout::INDEX;
    let bytes = src
        .meta(file, MAX_INDEX)?
        .ok_or_else(|| ClientError::Missing {
            remote: remote.name.clone(),
            file: file.into(),
        })?;
    let ix = open_index(root, &bytes).map_err(meta_err(remote, file))?;
    if ix.root > root.version {
        return Err(ClientError::IndexRoot {
            remote: remote.name.clone(),
            index_root: ix.root,
            root: root.version,
        });
    }
    if ix.version < kept {
        return Err(ClientError::Rollback {
            remote: remote.name.clone(),
            got: ix.version,
            kept,
        });
    }
    if ix.expires <= now() {
        return Err(ClientError::Expired {
            remote: remote.name.clone(),
            date: utc(ix.expires),
        });
    }
    Ok(ix)
}

/// The downgrade floor of `app` in the repository of `key_id`.
pub fn floor(dirs: &Dirs, key_id: &str, app: &str) -> Result<Option<u64>, ClientError> {
    let (state, _held) = load(dirs, key_id)?;
    Ok(state.floors.get(app).copied())
}

/// Records that release `seq` of `app` was installed from the repository of `key_id`.
pub fn set_floor(dirs: &Dirs, key_id: &str, app: &str, seq: u64) -> Result<(), ClientError> {
    let (mut state, held) = load(dirs, key_id)?;
    state.floors.insert(app.into(), seq);
    save(dirs, key_id, &state, &held)
}
