//! Who an app is: its id together with its publisher. State, private home, overrides and
//! remembered consent belong to that pair, so a bundle that merely carries the id of an
//! installed app (unsigned, or signed by another key) never reaches the installed app's files.
//!
//! - A bundle signed by a key: the publisher is that key (the first valid signature's key in
//!   the bundle's order; anyone can add their own signature, but no one can forge another's).
//! - An unsigned bundle file: the publisher is the bundle itself (its manifest digest), so
//!   its state is its own and no other bundle can reach it, not even a later version.
//! - An unsigned bundle the user installed: `local`, chosen at install; only another unsigned
//!   install replaces it (the store refuses a change of publisher).

use std::fmt;

use bundle_format::{Bundle, Digest, PublicKey, SignatureState};
use serde::{Deserialize, Serialize};

/// The publisher half of an identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Publisher {
    /// An ed25519 public key, hex.
    Key(String),
    /// Installed without a signature, by the user's choice.
    Local,
    /// An unsigned bundle file, known only by its manifest digest.
    Unsigned(Digest),
}

impl Publisher {
    pub fn key(k: &PublicKey) -> Self {
        Self::Key(k.to_hex())
    }

    /// The publisher of a bundle whose signatures `state` says were checked: the trusted key,
    /// else the first valid signature's key; `None` when unsigned.
    pub fn of_bundle(b: &Bundle, state: &SignatureState) -> Option<Self> {
        let key_id = match state {
            SignatureState::Unsigned => return None,
            SignatureState::Trusted { key_id } => key_id,
            SignatureState::Untrusted { key_ids } => key_ids.first()?,
        };
        b.signatures()
            .iter()
            .find(|s| &s.key_id == key_id)
            .and_then(|s| PublicKey::from_hex(&s.public_key))
            .map(|k| Self::key(&k))
    }

    /// A short, path-safe tag: 32 hex digits of the key's digest, `local`, or
    /// `unsigned-` and 32 hex digits of the manifest digest.
    pub fn tag(&self) -> String {
        match self {
            Self::Key(hex) => Digest::of(hex.as_bytes()).hex()[..32].to_owned(),
            Self::Local => "local".into(),
            Self::Unsigned(d) => format!("unsigned-{}", &d.hex()[..32]),
        }
    }
}

impl fmt::Display for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The key id `capsa inspect` and `capsa keygen` show.
            Self::Key(hex) => match PublicKey::from_hex(hex) {
                Some(k) => write!(f, "key {}", k.key_id()),
                None => write!(f, "key {}", &hex[..hex.len().min(16)]),
            },
            Self::Local => f.write_str("unsigned, installed by you"),
            Self::Unsigned(d) => write!(f, "unsigned bundle {}", d.short()),
        }
    }
}

/// An app's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// A validated reverse-DNS id (from a parsed manifest or a checked argument).
    pub id: String,
    pub publisher: Publisher,
}

impl Identity {
    /// The directory name of this identity's state and records: `<id>@<tag>`. Ids never hold
    /// `@` or `/` (manifest validation), so names can't collide or climb.
    pub fn dir_name(&self) -> String {
        format!("{}@{}", self.id, self.publisher.tag())
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.publisher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_of_one_id_never_share_a_directory() {
        let d1 = Digest::of(b"one");
        let d2 = Digest::of(b"two");
        let names: Vec<String> = [
            Publisher::Key("aa".repeat(32)),
            Publisher::Key("bb".repeat(32)),
            Publisher::Local,
            Publisher::Unsigned(d1),
            Publisher::Unsigned(d2),
        ]
        .into_iter()
        .map(|publisher| {
            Identity {
                id: "org.example.App".into(),
                publisher,
            }
            .dir_name()
        })
        .collect();
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(names.iter().all(|n| !n.contains('/')));
    }
}
