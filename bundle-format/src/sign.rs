//! ed25519 signing keys and the signature block.
//!
//! A signature covers `SIGNING_CONTEXT ‖ manifest bytes`; the manifest holds every blob digest,
//! so it covers the whole bundle. Key files are one line of text: `capsa-secret-key ed25519 <hex>`
//! (mode 0600) and `capsa-public-key ed25519 <hex>`. A key id is the first 16 hex digits of the
//! sha256 of the public key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::digest::Digest;

/// Domain separation: what is signed is this prefix followed by the manifest bytes.
pub const SIGNING_CONTEXT: &[u8] = b"capsa-manifest-v1\n";
const SECRET_TAG: &str = "capsa-secret-key ed25519 ";
const PUBLIC_TAG: &str = "capsa-public-key ed25519 ";

/// Errors about keys and signatures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot read key file {path}")]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}")]
    WriteKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not a capsa {kind} key")]
    ParseKey { path: PathBuf, kind: &'static str },
    #[error("cannot get random bytes for a new key")]
    Random(#[source] getrandom::Error),
}

/// A public key that verifies signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A secret key that signs manifests.
pub struct SecretKey(SigningKey);

fn parse_line(text: &str, tag: &str) -> Option<[u8; 32]> {
    let hex_part = text.trim_end_matches('\n').strip_prefix(tag)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

fn read_small(path: &Path) -> Result<String, KeyError> {
    let meta = fs::metadata(path).map_err(|source| KeyError::ReadKey {
        path: path.into(),
        source,
    })?;
    if meta.len() > 4096 {
        return Err(KeyError::ParseKey {
            path: path.into(),
            kind: "(any)",
        });
    }
    fs::read_to_string(path).map_err(|source| KeyError::ReadKey {
        path: path.into(),
        source,
    })
}

impl PublicKey {
    /// From the hex form stored in signature blocks.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).ok()?;
        VerifyingKey::from_bytes(&b).ok().map(Self)
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_small(path)?;
        parse_line(&text, PUBLIC_TAG)
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .map(Self)
            .ok_or_else(|| KeyError::ParseKey {
                path: path.into(),
                kind: "public",
            })
    }

    pub fn key_id(&self) -> String {
        Digest::of(self.0.as_bytes()).hex()[..16].to_owned()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// Verifies `sig` over the manifest bytes (strict: no malleable or small-order forms).
    pub fn verify(&self, manifest: &[u8], sig: &[u8; 64]) -> bool {
        self.verify_in(SIGNING_CONTEXT, manifest, sig)
    }

    /// Verifies `sig` over `context ‖ bytes`: each kind of signed document has its own
    /// context, so a signature made for one can never pass as another's.
    pub fn verify_in(&self, context: &[u8], bytes: &[u8], sig: &[u8; 64]) -> bool {
        let mut msg = context.to_vec();
        msg.extend_from_slice(bytes);
        self.0
            .verify_strict(&msg, &Signature::from_bytes(sig))
            .is_ok()
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(KeyError::Random)?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_small(path)?;
        parse_line(&text, SECRET_TAG)
            .map(|b| Self(SigningKey::from_bytes(&b)))
            .ok_or_else(|| KeyError::ParseKey {
                path: path.into(),
                kind: "secret",
            })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Writes `NAME.key` (0600, never overwriting) and `NAME.pub`.
    pub fn save(&self, base: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        let key_path = base.with_extension("key");
        let pub_path = base.with_extension("pub");
        let write = |path: &Path, mode: u32, text: String| -> Result<(), KeyError> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)
                .map_err(|source| KeyError::WriteKey {
                    path: path.into(),
                    source,
                })?;
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|source| KeyError::WriteKey {
                    path: path.into(),
                    source,
                })
        };
        write(
            &key_path,
            0o600,
            format!("{SECRET_TAG}{}\n", hex::encode(self.0.to_bytes())),
        )?;
        write(
            &pub_path,
            0o644,
            format!("{PUBLIC_TAG}{}\n", self.public().to_hex()),
        )?;
        Ok((key_path, pub_path))
    }

    /// Signs the manifest bytes.
    pub fn sign(&self, manifest: &[u8]) -> SignatureEntry {
        self.sign_in(SIGNING_CONTEXT, manifest)
    }

    /// Signs `context ‖ bytes` (see [`PublicKey::verify_in`]).
    pub fn sign_in(&self, context: &[u8], bytes: &[u8]) -> SignatureEntry {
        let mut msg = context.to_vec();
        msg.extend_from_slice(bytes);
        let sig = self.0.sign(&msg);
        let public = self.public();
        SignatureEntry {
            key_id: public.key_id(),
            public_key: public.to_hex(),
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

/// One signature in the signature block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    pub key_id: String,
    /// The signer's public key (informational: trust comes from the key the verifier holds).
    pub public_key: String,
    pub signature: String,
}

impl SignatureEntry {
    /// Raw signature bytes, when well formed.
    pub fn signature_bytes(&self) -> Option<[u8; 64]> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut out).ok()?;
        Some(out)
    }
}

/// The signature block (canonical JSON; empty bytes when unsigned).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureBlock {
    pub signatures: Vec<SignatureEntry>,
}

impl SignatureBlock {
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.signatures.is_empty() {
            return Vec::new();
        }
        canonical::to_vec(self).expect("signature block serializes")
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, canonical::CanonicalError> {
        if b.is_empty() {
            return Ok(Self::default());
        }
        let block: Self = canonical::from_slice(b)?;
        if block.signatures.is_empty() {
            return Err(canonical::CanonicalError::NotCanonical);
        }
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let k = SecretKey::generate().unwrap();
        let (kp, pp) = k.save(&dir.path().join("me")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&kp).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            k.save(&dir.path().join("me")).is_err(),
            "overwrote an existing key"
        );
        let k2 = SecretKey::load(&kp).unwrap();
        let p = PublicKey::load(&pp).unwrap();
        let e = k2.sign(b"manifest");
        let sig = e.signature_bytes().unwrap();
        assert!(p.verify(b"manifest", &sig));
        assert!(!p.verify(b"manifesT", &sig));
        assert!(
            PublicKey::load(&kp).is_err(),
            "secret key accepted as public"
        );
        let block = SignatureBlock {
            signatures: vec![e],
        };
        assert_eq!(
            SignatureBlock::from_bytes(&block.to_bytes()).unwrap(),
            block
        );
    }
}
