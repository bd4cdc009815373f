//! Signed documents: the envelope, who may sign, and opening a document against the keys a
//! client trusts. A signature covers `CONTEXT ‖ canonical(document)`; since the whole file must
//! be canonical, the decoded document re-encodes to exactly the signed bytes.

use bundle_format::canonical;
use bundle_format::sign::SignatureEntry;
use bundle_format::{PublicKey, SecretKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Index, MetaError, Root, INDEX_CONTEXT, MAX_INDEX, MAX_ROOT, ROOT_CONTEXT};

/// A signed document as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope<T> {
    pub signatures: Vec<SignatureEntry>,
    pub signed: T,
}

/// Who may sign a document: a set of keys and how many of them must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySet {
    /// Public keys, hex.
    pub keys: Vec<String>,
    pub threshold: u32,
}

impl KeySet {
    pub fn single(key: &PublicKey) -> Self {
        Self {
            keys: vec![key.to_hex()],
            threshold: 1,
        }
    }

    fn public_keys(&self) -> Result<Vec<PublicKey>, MetaError> {
        self.keys
            .iter()
            .map(|k| {
                PublicKey::from_hex(k).ok_or_else(|| {
                    MetaError::Invalid(format!("key {k:?} is not an ed25519 public key"))
                })
            })
            .collect()
    }

    pub(super) fn validate(&self) -> Result<(), MetaError> {
        if self.keys.is_empty() || self.keys.len() > 16 {
            return Err(MetaError::Invalid("a root lists 1 to 16 keys".into()));
        }
        if self.threshold == 0 || self.threshold as usize > self.keys.len() {
            return Err(MetaError::Invalid(format!(
                "threshold {} of {} keys",
                self.threshold,
                self.keys.len()
            )));
        }
        let mut seen = self.public_keys()?;
        seen.dedup_by_key(|k| k.to_hex());
        if seen.len() != self.keys.len() {
            return Err(MetaError::Invalid("a key is listed twice".into()));
        }
        Ok(())
    }

    /// Whether `threshold` distinct keys of this set signed `context ‖ bytes`.
    pub fn signed_by(&self, context: &[u8], bytes: &[u8], sigs: &[SignatureEntry]) -> bool {
        let Ok(keys) = self.public_keys() else {
            return false;
        };
        let good = keys
            .iter()
            .filter(|k| {
                sigs.iter().any(|s| {
                    s.public_key == k.to_hex()
                        && s.signature_bytes()
                            .is_some_and(|b| k.verify_in(context, bytes, &b))
                })
            })
            .count();
        good >= self.threshold as usize
    }
}

/// Encodes and signs a document with every key in `keys`.
pub fn seal<T: Serialize>(
    doc: T,
    context: &[u8],
    keys: &[&SecretKey],
) -> Result<Vec<u8>, MetaError> {
    let bytes = canonical::to_vec(&doc).map_err(MetaError::Encode)?;
    let signatures = keys.iter().map(|k| k.sign_in(context, &bytes)).collect();
    canonical::to_vec(&Envelope {
        signatures,
        signed: doc,
    })
    .map_err(MetaError::Encode)
}

/// Decodes a signed document without checking who signed it: the caller checks the
/// signatures against the keys it trusts ([`Opened::signed_by`]).
pub fn open<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    cap: u64,
) -> Result<Opened<T>, MetaError> {
    if bytes.len() as u64 > cap {
        return Err(MetaError::TooLarge { cap });
    }
    let env: Envelope<T> = canonical::from_slice(bytes).map_err(MetaError::Decode)?;
    let signed_bytes = canonical::to_vec(&env.signed).map_err(MetaError::Encode)?;
    Ok(Opened { env, signed_bytes })
}

/// A decoded signed document, with the exact bytes its signatures cover.
#[derive(Debug, Clone)]
pub struct Opened<T> {
    pub env: Envelope<T>,
    pub signed_bytes: Vec<u8>,
}

impl<T> Opened<T> {
    pub fn signed_by(&self, keys: &KeySet, context: &[u8]) -> bool {
        keys.signed_by(context, &self.signed_bytes, &self.env.signatures)
    }
}

/// Decodes a root that its own signers signed: the first root a client trusts, or the one a
/// client checks its pinned key against.
pub fn open_root(bytes: &[u8]) -> Result<Root, MetaError> {
    let o: Opened<Root> = open(bytes, MAX_ROOT)?;
    o.env.signed.validate()?;
    if !o.signed_by(&o.env.signed.signers, ROOT_CONTEXT) {
        return Err(MetaError::Signature { what: "root" });
    }
    Ok(o.env.signed)
}

/// Decodes the root after `trusted`: its version is the next one, and it is signed both by
/// `trusted`'s signers and by its own (so a rotation needs the old keys and the new).
pub fn next_root(trusted: &Root, bytes: &[u8]) -> Result<Root, MetaError> {
    let o: Opened<Root> = open(bytes, MAX_ROOT)?;
    let next = &o.env.signed;
    next.validate()?;
    if next.version != trusted.version + 1 {
        return Err(MetaError::RootVersion {
            expected: trusted.version + 1,
            got: next.version,
        });
    }
    if !o.signed_by(&trusted.signers, ROOT_CONTEXT) {
        return Err(MetaError::Signature {
            what: "root (by the previous root's keys)",
        });
    }
    if !o.signed_by(&next.signers, ROOT_CONTEXT) {
        return Err(MetaError::Signature {
            what: "root (by its own keys)",
        });
    }
    Ok(o.env.signed)
}

/// Decodes `index.json`, signed by `root`'s signers. Versions and expiry are the client's to
/// check against what it kept.
pub fn open_index(root: &Root, bytes: &[u8]) -> Result<Index, MetaError> {
    let o: Opened<Index> = open(bytes, MAX_INDEX)?;
    o.env.signed.validate()?;
    if !o.signed_by(&root.signers, INDEX_CONTEXT) {
        return Err(MetaError::Signature { what: "index" });
    }
    Ok(o.env.signed)
}
