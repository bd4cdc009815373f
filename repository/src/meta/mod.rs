//! The repository's signed metadata: roots, the index, and one document per app.
//!
//! A signed file is the canonical JSON of [`Envelope`]: the signed document and the signatures
//! over `CONTEXT ‖ canonical(document)`. Because the whole file must be canonical, re-encoding
//! the decoded document gives back exactly the signed bytes. Each kind of document has its own
//! signing context, so a signature can never be replayed as another kind's (or a bundle's).
//!
//! Invariants: nothing is decoded before its size is checked against its cap; every decoded
//! document is validated ([`Root::validate`], [`Index::validate`], [`AppDoc::validate`]) before
//! it is returned, so code past this module never sees an id that is not an app id, a channel
//! naming a release that does not exist, or a percentage above 100. No input panics.

use std::collections::BTreeMap;

use bundle_format::canonical;
use bundle_format::{BlobRef, Digest, PublicKey};
use serde::{Deserialize, Serialize};

pub mod check;
pub mod choose;
mod signed;

pub use check::MetaError;
use check::{check_string, check_version_text};
pub use signed::{next_root, open, open_index, open_root, seal, Envelope, KeySet, Opened};

/// Signing contexts, one per document kind.
pub const ROOT_CONTEXT: &[u8] = b"capsa-repo-root-v1\n";
pub const INDEX_CONTEXT: &[u8] = b"capsa-repo-index-v1\n";

/// Size caps, checked before a byte is parsed.
pub const MAX_ROOT: u64 = 64 * 1024;
pub const MAX_INDEX: u64 = 4 * 1024 * 1024;
pub const MAX_APP_DOC: u64 = 4 * 1024 * 1024;
/// The longest chain of roots a client walks in one refresh.
pub const MAX_ROOT_STEPS: u64 = 1024;

/// `roots/<version>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    #[serde(rename = "type")]
    pub kind: DocKind,
    pub version: u64,
    /// Unix seconds.
    pub expires: u64,
    /// Who signs the index and the next root.
    pub signers: KeySet,
}

/// The `type` field of each document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    Root,
    Index,
    App,
}

impl Root {
    pub fn validate(&self) -> Result<(), MetaError> {
        expect_kind(self.kind, DocKind::Root)?;
        if self.version == 0 {
            return Err(MetaError::Invalid("root version 0".into()));
        }
        self.signers.validate()
    }
}

/// `index.json`: the one signed top of the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    #[serde(rename = "type")]
    pub kind: DocKind,
    pub version: u64,
    pub expires: u64,
    /// The root version whose keys signed it.
    pub root: u64,
    /// Each app's document, by digest and size.
    pub apps: BTreeMap<String, BlobRef>,
}

impl Index {
    pub fn validate(&self) -> Result<(), MetaError> {
        expect_kind(self.kind, DocKind::Index)?;
        if self.apps.len() > 100_000 {
            return Err(MetaError::Invalid("more than 100000 apps".into()));
        }
        for (id, r) in &self.apps {
            check_app_id(id)?;
            if r.size > MAX_APP_DOC {
                return Err(MetaError::Invalid(format!(
                    "{id}: app document over the cap"
                )));
            }
        }
        Ok(())
    }
}

/// One app's document (a blob named by the index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppDoc {
    #[serde(rename = "type")]
    pub kind: DocKind,
    pub app: String,
    /// The public key (hex) that signs this app's bundles.
    pub publisher: String,
    pub name: String,
    pub summary: String,
    pub icon: Option<BlobRef>,
    pub releases: Vec<ReleaseDoc>,
    pub channels: BTreeMap<String, Channel>,
}

/// One published release of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseDoc {
    /// 1, 2, 3... in the order releases were added: what "newer" means.
    pub seq: u64,
    pub version: String,
    /// sha256 of the manifest's bytes.
    pub manifest: Digest,
    /// The whole bundle file.
    pub bundle: BlobRef,
    /// Bytes 0 up to the blob region (header, manifest, blob table, padding).
    pub head: BlobRef,
    /// The signature block and the trailer.
    pub tail: BlobRef,
    /// The permissions the manifest asks for, as `capsa info` names them.
    pub permissions: Vec<String>,
    /// Unix seconds.
    pub added: u64,
    pub yanked: Option<String>,
}

/// A channel: which release its clients get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// The seq of the channel's release.
    pub release: u64,
    /// What clients outside a rollout (or after a halt, or a yank) get.
    pub fallback: Option<u64>,
    pub rollout: Option<Rollout>,
}

/// A staged rollout of a channel's release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    pub percent: u8,
    pub seed: String,
    pub halted: bool,
}

impl AppDoc {
    pub fn validate(&self) -> Result<(), MetaError> {
        expect_kind(self.kind, DocKind::App)?;
        check_app_id(&self.app)?;
        if PublicKey::from_hex(&self.publisher).is_none() {
            return Err(MetaError::Invalid(format!(
                "{}: publisher is not a public key",
                self.app
            )));
        }
        check_string("name", &self.name)?;
        check_string("summary", &self.summary)?;
        if self.releases.len() > 10_000 || self.channels.len() > 100 {
            return Err(MetaError::Invalid(format!(
                "{}: too many releases or channels",
                self.app
            )));
        }
        let mut last = 0;
        let mut versions = std::collections::BTreeSet::new();
        for r in &self.releases {
            if r.seq <= last {
                return Err(MetaError::Invalid(format!(
                    "{}: release seqs must increase",
                    self.app
                )));
            }
            last = r.seq;
            check_version_text(&r.version)?;
            if !versions.insert(r.version.as_str()) {
                return Err(MetaError::Invalid(format!(
                    "{}: version {} listed twice",
                    self.app, r.version
                )));
            }
            for p in &r.permissions {
                check_string("permission", p)?;
            }
            if let Some(y) = &r.yanked {
                check_string("yank reason", y)?;
            }
        }
        for (name, c) in &self.channels {
            check_channel_name(name)?;
            for seq in std::iter::once(c.release).chain(c.fallback) {
                if self.release(seq).is_none() {
                    return Err(MetaError::Invalid(format!(
                        "channel {name}: no release {seq}"
                    )));
                }
            }
            if let Some(r) = &c.rollout {
                if r.percent > 100 {
                    return Err(MetaError::Invalid(format!(
                        "channel {name}: rollout over 100%"
                    )));
                }
                check_string("rollout seed", &r.seed)?;
            }
        }
        Ok(())
    }

    pub fn release(&self, seq: u64) -> Option<&ReleaseDoc> {
        self.releases.iter().find(|r| r.seq == seq)
    }

    pub fn by_version(&self, version: &str) -> Option<&ReleaseDoc> {
        self.releases.iter().find(|r| r.version == version)
    }

    pub fn publisher_key(&self) -> Option<PublicKey> {
        PublicKey::from_hex(&self.publisher)
    }
}

fn expect_kind(got: DocKind, want: DocKind) -> Result<(), MetaError> {
    if got != want {
        return Err(MetaError::Invalid(format!(
            "a {want:?} document was expected, this is a {got:?}"
        )));
    }
    Ok(())
}

/// App ids follow the manifest's rule.
pub fn check_app_id(id: &str) -> Result<(), MetaError> {
    bundle_format::manifest::validate_app_id(id)
        .map_err(|e| MetaError::Invalid(format!("not an app id: {e}")))
}

/// Channel names: 1 to 64 of `a-z 0-9 - _ . /` (`stable`, `beta`, `2.x/stable`).
pub fn check_channel_name(name: &str) -> Result<(), MetaError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_./".contains(&b));
    if !ok {
        return Err(MetaError::Invalid(format!(
            "{name:?} is not a channel name (1-64 of a-z, 0-9, - _ . /)"
        )));
    }
    Ok(())
}

/// Decodes an app document (an unsigned blob whose digest the index vouches for).
pub fn open_app_doc(bytes: &[u8]) -> Result<AppDoc, MetaError> {
    if bytes.len() as u64 > MAX_APP_DOC {
        return Err(MetaError::TooLarge { cap: MAX_APP_DOC });
    }
    let doc: AppDoc = canonical::from_slice(bytes).map_err(MetaError::Decode)?;
    doc.validate()?;
    Ok(doc)
}

/// Encodes an app document.
pub fn app_doc_bytes(doc: &AppDoc) -> Result<Vec<u8>, MetaError> {
    canonical::to_vec(doc).map_err(MetaError::Encode)
}

#[cfg(test)]
mod tests;
