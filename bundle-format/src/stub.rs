//! The launcher stub of a self-executable bundle (`SPEC.md` §2.1): the bytes in front of the
//! payload, `[0, P)`.
//!
//! ```text
//! 0         stub ELF (elf_len bytes)
//! elf_len   zero padding
//! P-544     stub note (NOTE_LEN bytes), ending exactly at P
//! P         the payload (header ... trailer), byte for byte a plain bundle
//! ```
//!
//! `P` is `elf_len + NOTE_LEN` rounded up to 4096, so blobs stay 4 KiB aligned in the file and
//! one ELF gives exactly one stub region. The note records the ELF's sha256 and the payload's
//! trailer meta digest (binding the stub to this payload) and may carry ed25519 signatures
//! over [`StubNote::signed_bytes`] (context [`STUB_SIGNING_CONTEXT`], never a manifest's).
//! Decoding is strict: every reserved byte, unused signature slot and padding byte is zero.
//! A stub region whose last bytes are not a note is an *unrecorded* stub (`cat stub bundle`):
//! readers open its payload, but `verify` refuses it, since nothing vouches for its bytes.

mod file;

pub use file::{write_plain, write_self_exec, write_stub_elf, ElfSource, StubCheck, StubState};

use crate::digest::Digest;
use crate::reader::SignatureState;
use crate::sign::{PublicKey, SecretKey};

pub const NOTE_MAGIC: [u8; 8] = *b"CAPSASTB";
pub const NOTE_VERSION: u16 = 1;
/// The note's size in bytes.
pub const NOTE_LEN: u64 = 544;
/// Signature slots in a note.
pub const MAX_NOTE_SIGNATURES: usize = 4;
/// Bytes of the NUL-padded capsa version field.
pub const VERSION_FIELD_LEN: usize = 64;
/// Domain separation of a note signature.
pub const STUB_SIGNING_CONTEXT: &[u8] = b"capsa-stub-v1\n";
/// The stub region's alignment (and the payload start's).
pub const STUB_ALIGN: u64 = 4096;

/// Bytes before the signature slots; what a signature covers (with the count byte zeroed).
const SIGNED_LEN: usize = 160;
const COUNT_AT: usize = 90;
const SLOT_LEN: usize = 96;
const _: () = assert!(SIGNED_LEN + MAX_NOTE_SIGNATURES * SLOT_LEN == NOTE_LEN as usize);

/// Why a note does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteProblem {
    #[error("note version {0} is not supported (this capsa reads {NOTE_VERSION})")]
    Version(u16),
    #[error("flags or reserved bytes are not zero")]
    Reserved,
    #[error("the stub region is {stub_len} bytes, not a multiple of 4096 of at least {NOTE_LEN}")]
    RegionLen { stub_len: u64 },
    #[error("an ELF of {elf_len} bytes does not give a stub region of {stub_len} bytes")]
    ElfLen { elf_len: u64, stub_len: u64 },
    #[error("the highest format version it reads is 0")]
    ReadsFormat,
    #[error("the capsa version field is not printable ASCII padded with NUL bytes")]
    CapsaVersion,
    #[error("{0} signatures (at most {MAX_NOTE_SIGNATURES})")]
    SignatureCount(u8),
    #[error("signature slot {0} is malformed or, unused, not zero")]
    SignatureSlot(usize),
}

/// Everything a launcher stub can be refused for, by `verify` or when one is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StubError {
    #[error("the {len}-byte launcher stub in front of the payload has no note: it was not added by `capsa pack --self-exec` (an unrecorded stub, as from `cat stub bundle`), so nothing vouches for it; remove it with `capsa strip-stub` or replace it with `capsa pack --self-exec --from`")]
    Unrecorded { len: u64 },
    #[error("the launcher stub's note is damaged, or the stub was changed after packing: {0}")]
    Note(NoteProblem),
    #[error("the launcher stub was changed after packing: its ELF's sha256 is {actual}, its note records {recorded}")]
    ElfChanged { recorded: Digest, actual: Digest },
    #[error("the launcher stub was changed after packing: non-zero padding at offset {offset}")]
    Padding { offset: u64 },
    #[error("the launcher stub was made for another payload (its note records meta digest {recorded}, this payload's is {actual}): the stub or the payload was changed after packing")]
    OtherPayload { recorded: Digest, actual: Digest },
    #[error("the launcher stub's signature by key {key_id} does not verify: the stub was changed after it was signed")]
    BadSignature { key_id: String },
    #[error("the launcher stub is not signed by the trusted key {key_id}: sign it with `capsa pack --self-exec --from FILE -o OUT --sign KEY`")]
    NotSignedBy { key_id: String },
    #[error("the launcher stub (capsa {capsa_version}) reads bundle format versions up to {reads}, and this bundle is version {needs}: it cannot run it; replace it with `capsa pack --self-exec --from FILE -o OUT`")]
    ReadsOlder {
        capsa_version: String,
        reads: u16,
        needs: u16,
    },
    #[error("at most {MAX_NOTE_SIGNATURES} keys can sign a launcher stub; {0} were given")]
    TooManyKeys(usize),
    #[error("the capsa version {0:?} does not fit the stub note (printable ASCII, 1 to 64 bytes)")]
    VersionText(String),
    #[error("the stub is not an ELF executable (it does not start with \\x7fELF)")]
    NotElf,
}

/// One signature of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub public_key: PublicKey,
    pub signature: [u8; 64],
}

/// The stub note, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubNote {
    pub elf_len: u64,
    pub elf_sha256: Digest,
    /// The payload's trailer meta digest.
    pub payload_digest: Digest,
    /// The highest bundle format version the stub reads.
    pub reads_format: u16,
    /// The stub's capsa version (printable ASCII, 1 to 64 bytes).
    pub capsa_version: String,
    pub signatures: Vec<NoteSignature>,
}

/// The stub region's length for an ELF of `elf_len` bytes: `P`.
pub fn region_len(elf_len: u64) -> Option<u64> {
    elf_len
        .checked_add(NOTE_LEN)?
        .checked_next_multiple_of(STUB_ALIGN)
}

fn valid_version_text(s: &str) -> bool {
    (1..=VERSION_FIELD_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

fn key_bytes(k: &PublicKey) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(k.to_hex(), &mut out).expect("a public key's hex is 32 bytes");
    out
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn digest_at(b: &[u8], at: usize) -> Digest {
    let mut x = [0u8; 32];
    x.copy_from_slice(&b[at..at + 32]);
    Digest::from_bytes(x)
}

impl StubNote {
    /// A new unsigned note; `capsa_version` must be printable ASCII of 1 to 64 bytes.
    pub fn new(
        elf_len: u64,
        elf_sha256: Digest,
        payload_digest: Digest,
        capsa_version: &str,
    ) -> Result<Self, StubError> {
        if !valid_version_text(capsa_version) {
            return Err(StubError::VersionText(capsa_version.into()));
        }
        Ok(Self {
            elf_len,
            elf_sha256,
            payload_digest,
            reads_format: crate::container::FORMAT_VERSION,
            capsa_version: capsa_version.into(),
            signatures: Vec::new(),
        })
    }

    /// The stub region this note ends: `P`.
    pub fn region_len(&self) -> Option<u64> {
        region_len(self.elf_len)
    }

    pub fn encode(&self) -> [u8; NOTE_LEN as usize] {
        let mut b = [0u8; NOTE_LEN as usize];
        b[..SIGNED_LEN].copy_from_slice(&self.signed_bytes());
        b[COUNT_AT] = self.signatures.len() as u8;
        for (i, s) in self.signatures.iter().enumerate() {
            let at = SIGNED_LEN + i * SLOT_LEN;
            b[at..at + 32].copy_from_slice(&key_bytes(&s.public_key));
            b[at + 32..at + SLOT_LEN].copy_from_slice(&s.signature);
        }
        b
    }

    /// What a signature covers (after [`STUB_SIGNING_CONTEXT`]): the note's first 160 bytes
    /// with the signature count 0, i.e. every field but the signatures.
    pub fn signed_bytes(&self) -> [u8; SIGNED_LEN] {
        let mut b = [0u8; SIGNED_LEN];
        b[0..8].copy_from_slice(&NOTE_MAGIC);
        b[8..10].copy_from_slice(&NOTE_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.elf_len.to_le_bytes());
        b[24..56].copy_from_slice(self.elf_sha256.as_bytes());
        b[56..88].copy_from_slice(self.payload_digest.as_bytes());
        b[88..90].copy_from_slice(&self.reads_format.to_le_bytes());
        let v = self.capsa_version.as_bytes();
        b[96..96 + v.len().min(VERSION_FIELD_LEN)]
            .copy_from_slice(&v[..v.len().min(VERSION_FIELD_LEN)]);
        b
    }

    /// Whether `b` starts like a note (its magic): an unrecorded stub when not.
    pub fn has_magic(b: &[u8]) -> bool {
        b.starts_with(&NOTE_MAGIC)
    }

    /// Decodes the note ending a stub region of `stub_len` bytes. Signatures are parsed, not
    /// verified ([`StubNote::check_signatures`]).
    pub fn decode(b: &[u8; NOTE_LEN as usize], stub_len: u64) -> Result<Self, NoteProblem> {
        let version = u16::from_le_bytes([b[8], b[9]]);
        if !Self::has_magic(b) || version != NOTE_VERSION {
            return Err(NoteProblem::Version(version));
        }
        if b[10..16].iter().chain(&b[91..96]).any(|&x| x != 0) {
            return Err(NoteProblem::Reserved);
        }
        if stub_len < NOTE_LEN || !stub_len.is_multiple_of(STUB_ALIGN) {
            return Err(NoteProblem::RegionLen { stub_len });
        }
        let elf_len = u64_at(b, 16);
        if elf_len == 0 || region_len(elf_len) != Some(stub_len) {
            return Err(NoteProblem::ElfLen { elf_len, stub_len });
        }
        let reads_format = u16::from_le_bytes([b[88], b[89]]);
        if reads_format == 0 {
            return Err(NoteProblem::ReadsFormat);
        }
        let field = &b[96..SIGNED_LEN];
        let text_len = field.iter().position(|&x| x == 0).unwrap_or(field.len());
        let capsa_version = std::str::from_utf8(&field[..text_len])
            .ok()
            .filter(|s| valid_version_text(s) && field[text_len..].iter().all(|&x| x == 0))
            .ok_or(NoteProblem::CapsaVersion)?
            .to_owned();
        let count = b[COUNT_AT];
        if count as usize > MAX_NOTE_SIGNATURES {
            return Err(NoteProblem::SignatureCount(count));
        }
        let mut signatures = Vec::new();
        for i in 0..MAX_NOTE_SIGNATURES {
            let slot = &b[SIGNED_LEN + i * SLOT_LEN..SIGNED_LEN + (i + 1) * SLOT_LEN];
            if i >= count as usize {
                if slot.iter().any(|&x| x != 0) {
                    return Err(NoteProblem::SignatureSlot(i));
                }
                continue;
            }
            let public_key = PublicKey::from_hex(&hex::encode(&slot[..32]))
                .ok_or(NoteProblem::SignatureSlot(i))?;
            let mut signature = [0u8; 64];
            signature.copy_from_slice(&slot[32..]);
            signatures.push(NoteSignature {
                public_key,
                signature,
            });
        }
        Ok(Self {
            elf_len,
            elf_sha256: digest_at(b, 24),
            payload_digest: digest_at(b, 56),
            reads_format,
            capsa_version,
            signatures,
        })
    }

    /// Adds a signature by `key` (replacing one by the same key).
    pub fn sign(&mut self, key: &SecretKey) -> Result<(), StubError> {
        let public_key = key.public();
        self.signatures.retain(|s| s.public_key != public_key);
        if self.signatures.len() >= MAX_NOTE_SIGNATURES {
            return Err(StubError::TooManyKeys(self.signatures.len() + 1));
        }
        let entry = key.sign_in(STUB_SIGNING_CONTEXT, &self.signed_bytes());
        let signature = entry
            .signature_bytes()
            .expect("a fresh signature is well formed");
        self.signatures.push(NoteSignature {
            public_key,
            signature,
        });
        Ok(())
    }

    /// Checks every signature; with `trusted`, one by that key is required.
    pub fn check_signatures(
        &self,
        trusted: Option<&PublicKey>,
    ) -> Result<SignatureState, StubError> {
        let signed = self.signed_bytes();
        let mut key_ids = Vec::new();
        for s in &self.signatures {
            let key_id = s.public_key.key_id();
            if !s
                .public_key
                .verify_in(STUB_SIGNING_CONTEXT, &signed, &s.signature)
            {
                return Err(StubError::BadSignature { key_id });
            }
            if trusted == Some(&s.public_key) {
                return Ok(SignatureState::Trusted { key_id });
            }
            key_ids.push(key_id);
        }
        match trusted {
            Some(k) => Err(StubError::NotSignedBy { key_id: k.key_id() }),
            None if key_ids.is_empty() => Ok(SignatureState::Unsigned),
            None => Ok(SignatureState::Untrusted { key_ids }),
        }
    }
}

#[cfg(test)]
mod tests;
