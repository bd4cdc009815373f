//! Opens a bundle file as hostile input and gives checked access to its parts.
//!
//! [`Bundle::open`] reads only the small fixed parts (trailer, header, manifest, blob table,
//! signatures), bounded in size, and checks their digest and consistency. Blob contents are
//! checked against their digest before they are decompressed ([`Bundle::checked_blob`]);
//! [`Bundle::verify`] checks every byte of the payload.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::container::{
    self, decode_table, BlobEntry, Header, Trailer, HEADER_LEN, MAX_SIGNATURES_LEN, TRAILER_LEN,
};
use crate::digest::{Digest, Hasher, HashingReader};
use crate::error::{read_err, Error, Result};
use crate::layer::{decompress_meta, read_layer};
use crate::manifest::{BlobRef, Layer, Manifest, MAX_MANIFEST_LEN};
use crate::sign::{PublicKey, SignatureBlock, SignatureEntry};
use crate::toc::{EntryKind, Toc, TocEntry};

/// An open bundle whose fixed parts passed their checks.
#[derive(Debug)]
pub struct Bundle {
    file: File,
    path: PathBuf,
    file_len: u64,
    payload_start: u64,
    header: Header,
    meta_digest: Digest,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    blobs: HashMap<Digest, BlobEntry>,
    signatures: SignatureBlock,
}

/// A positional reader over one blob of the bundle file.
pub struct BlobReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf
            .len()
            .min((self.end - self.pos).min(usize::MAX as u64) as usize);
        if max == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..max], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// What the signature check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum SignatureState {
    /// No signature in the bundle.
    Unsigned,
    /// Valid signatures by these keys, none of which the caller trusts (or no key was given).
    Untrusted { key_ids: Vec<String> },
    /// A valid signature by the trusted key.
    Trusted { key_id: String },
}

fn read_exact_at(file: &File, len: u64, at: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, at).map_err(read_err(what))?;
    Ok(buf)
}

/// A trailer of a format version newer than this reader's is [`Error::FormatTooNew`], before
/// any other of its fields is looked at: the trailer is what locates everything else, so a
/// newer format may have moved the rest. The header's version is not asked: a header whose
/// version differs from its trailer's is a damaged header, not a newer format.
fn check_version(part: &[u8; 64], magic: &[u8; 8]) -> Result<()> {
    let version = u16::from_le_bytes([part[8], part[9]]);
    if part[..8] == magic[..] && version > container::FORMAT_VERSION {
        return Err(Error::FormatTooNew {
            needs: version,
            reads: container::FORMAT_VERSION,
        });
    }
    Ok(())
}

impl Bundle {
    /// Opens `path` and checks trailer, header, manifest, blob table and signature block.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|source| Error::Open {
            path: path.into(),
            source,
        })?;
        let file_len = file
            .metadata()
            .map_err(read_err(path.display().to_string()))?
            .len();
        if file_len < HEADER_LEN + TRAILER_LEN {
            return Err(Error::NotABundle(container::LayoutError(
                "file is too short".into(),
            )));
        }
        let trailer_bytes: [u8; 64] =
            read_exact_at(&file, TRAILER_LEN, file_len - TRAILER_LEN, "trailer")?
                .try_into()
                .expect("64");
        check_version(&trailer_bytes, &container::TRAILER_MAGIC)?;
        let trailer = Trailer::decode(&trailer_bytes).map_err(Error::NotABundle)?;
        if trailer.payload_len > file_len || trailer.payload_len < HEADER_LEN + TRAILER_LEN {
            return Err(Error::Layout {
                part: "trailer",
                source: container::LayoutError("payload length is out of range".into()),
            });
        }
        let payload_start = file_len - trailer.payload_len;
        let header_bytes: [u8; 64] = read_exact_at(&file, HEADER_LEN, payload_start, "header")?
            .try_into()
            .expect("64");
        let header = Header::decode(&header_bytes).map_err(|source| Error::Layout {
            part: "header",
            source,
        })?;
        let layout_err = |s: &str| Error::Layout {
            part: "header",
            source: container::LayoutError(s.into()),
        };
        if header.manifest_len > MAX_MANIFEST_LEN as u64 {
            return Err(layout_err("manifest is larger than 1 MiB"));
        }
        if header.table_len > container::MAX_BLOBS * container::TABLE_ENTRY_LEN
            || header.signatures_len > MAX_SIGNATURES_LEN
        {
            return Err(layout_err("blob table or signature block is too large"));
        }
        if header.payload_len() != Some(trailer.payload_len) {
            return Err(layout_err("part sizes do not add up to the payload length"));
        }
        let manifest_bytes = read_exact_at(
            &file,
            header.manifest_len,
            payload_start + HEADER_LEN,
            "manifest",
        )?;
        let table_bytes = read_exact_at(
            &file,
            header.table_len,
            payload_start + HEADER_LEN + header.manifest_len,
            "blob table",
        )?;
        let blobs_offset = header.blobs_offset().expect("checked by payload_len");
        let sig_at = payload_start + blobs_offset + header.blobs_len;
        let sig_bytes = read_exact_at(&file, header.signatures_len, sig_at, "signature block")?;
        let mut meta = Hasher::default();
        for part in [&header_bytes[..], &manifest_bytes, &table_bytes, &sig_bytes] {
            meta.update(part);
        }
        let actual = meta.finish();
        if actual != trailer.meta_digest {
            return Err(Error::DigestMismatch {
                part: "header, manifest, blob table or signature block".into(),
                expected: trailer.meta_digest,
                actual,
            });
        }
        let manifest = Manifest::from_bytes(&manifest_bytes)?;
        let table =
            decode_table(&table_bytes, header.blobs_len).map_err(|source| Error::Layout {
                part: "blob table",
                source,
            })?;
        let wanted = manifest.blobs();
        if table.len() != wanted.len()
            || wanted.iter().any(|r| {
                !table
                    .iter()
                    .any(|e| e.digest == r.digest && e.len == r.size)
            })
        {
            return Err(Error::Layout {
                part: "blob table",
                source: container::LayoutError(
                    "does not list exactly the blobs the manifest references".into(),
                ),
            });
        }
        let signatures = SignatureBlock::from_bytes(&sig_bytes)
            .map_err(|e| Error::Signature(format!("signature block is not valid: {e}")))?;
        let blobs = table.into_iter().map(|e| (e.digest, e)).collect();
        Ok(Self {
            file,
            path: path.into(),
            file_len,
            payload_start,
            header,
            meta_digest: trailer.meta_digest,
            manifest,
            manifest_bytes,
            blobs,
            signatures,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The exact manifest bytes (what signatures cover).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }
    /// The manifest's sha256: the bundle's identity.
    pub fn manifest_digest(&self) -> Digest {
        Digest::of(&self.manifest_bytes)
    }
    pub fn signatures(&self) -> &[SignatureEntry] {
        &self.signatures.signatures
    }
    /// Bytes in front of the payload (a launcher stub), 0 for a plain bundle.
    pub fn stub_len(&self) -> u64 {
        self.payload_start
    }
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
    /// The trailer's meta digest: what a launcher stub's note binds it to.
    pub fn meta_digest(&self) -> Digest {
        self.meta_digest
    }
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    fn entry(&self, d: &Digest) -> Result<BlobEntry> {
        self.blobs
            .get(d)
            .copied()
            .ok_or_else(|| Error::Compose(format!("blob {d} is not in this bundle")))
    }

    fn blob_offset(&self, e: &BlobEntry) -> u64 {
        self.payload_start + self.header.blobs_offset().expect("checked") + e.offset
    }

    /// A reader over a blob's raw bytes, not yet checked. It reads with `pread`, so readers of
    /// different blobs may be used from several threads at once.
    fn raw_blob(&self, d: &Digest) -> Result<BlobReader<'_>> {
        let e = self.entry(d)?;
        let pos = self.blob_offset(&e);
        Ok(BlobReader {
            file: &self.file,
            pos,
            end: pos + e.len,
        })
    }

    /// Hashes a whole blob and compares it with its digest.
    pub fn check_blob(&self, r: &BlobRef, what: &str) -> Result<()> {
        let mut h = HashingReader::new(self.raw_blob(&r.digest)?);
        io::copy(&mut h, &mut io::sink()).map_err(read_err(what))?;
        let (_, actual, len) = h.into_parts();
        if actual != r.digest || len != r.size {
            return Err(Error::DigestMismatch {
                part: what.into(),
                expected: r.digest,
                actual,
            });
        }
        Ok(())
    }

    /// A blob's bytes after its digest was checked (the blob is read twice; both reads are
    /// sequential and the second is served from the page cache).
    pub fn checked_blob(&self, r: &BlobRef, what: &str) -> Result<BlobReader<'_>> {
        self.check_blob(r, what)?;
        self.raw_blob(&r.digest)
    }

    /// The layer's table of contents, digest-checked, size-capped and validated.
    pub fn toc(&self, layer: &Layer) -> Result<Toc> {
        let what = format!("table of contents of layer {}", layer.role.as_str());
        // The manifest's entry count bounds the TOC's size, so a tiny blob cannot inflate into
        // a huge one; the typed decode keeps memory near the TOC's own size.
        let cap = layer
            .entries
            .saturating_mul(crate::toc::MAX_ENTRY_JSON)
            .saturating_add(64);
        let bytes = decompress_meta(self.checked_blob(&layer.toc, &what)?, &what, cap)?;
        let toc = Toc::from_canonical(&bytes).map_err(|e| Error::Damaged {
            part: what.clone(),
            problem: e.to_string(),
        })?;
        toc.validate().map_err(|source| Error::Toc {
            layer: format!("layer {}", layer.role.as_str()),
            source,
        })?;
        let (entries, bytes) = (toc.entries.len() as u64, toc.content_size());
        if entries != layer.entries || bytes != layer.unpacked_size {
            return Err(Error::Damaged {
                part: what,
                problem: format!(
                    "entry count or size differs from the manifest: {entries} entries of {bytes} bytes, the manifest says {} (layers.entries) of {} (layers.unpacked_size)",
                    layer.entries, layer.unpacked_size
                ),
            });
        }
        Ok(toc)
    }

    /// Every layer's TOC, with the cross-layer rule checked: a path in several layers is a
    /// directory or an identical symlink everywhere.
    pub fn tocs(&self) -> Result<Vec<Toc>> {
        let tocs = self
            .manifest
            .layers
            .iter()
            .map(|l| self.toc(l))
            .collect::<Result<Vec<_>>>()?;
        let mut seen: HashMap<&str, (&TocEntry, usize)> = HashMap::new();
        for (i, toc) in tocs.iter().enumerate() {
            for e in &toc.entries {
                if let Some((first, j)) = seen.get(e.path.as_str()) {
                    let same = first.kind == e.kind
                        && first.target == e.target
                        && matches!(e.kind, EntryKind::Dir | EntryKind::Symlink);
                    if !same {
                        return Err(Error::Damaged {
                            part: "layers".into(),
                            problem: format!(
                                "{} is in layers {} and {} with different contents",
                                e.path,
                                self.manifest.layers[*j].role.as_str(),
                                self.manifest.layers[i].role.as_str()
                            ),
                        });
                    }
                } else {
                    seen.insert(e.path.as_str(), (e, i));
                }
            }
        }
        Ok(tocs)
    }

    /// Streams a layer after checking its blob digest; see [`read_layer`].
    pub fn read_layer(
        &self,
        layer: &Layer,
        toc: &Toc,
        sink: impl FnMut(&TocEntry, &mut dyn Read) -> io::Result<()>,
    ) -> Result<()> {
        let blob = self.checked_blob(
            &BlobRef {
                digest: layer.digest,
                size: layer.size,
            },
            &format!("layer {}", layer.role.as_str()),
        )?;
        read_layer(blob, layer, toc, sink)
    }

    /// The capture report stored by the packer, if any.
    pub fn report(&self) -> Result<Option<serde_json::Value>> {
        let Some(r) = self.manifest.report else {
            return Ok(None);
        };
        let bytes = decompress_meta(
            self.checked_blob(&r, "capture report")?,
            "capture report",
            u64::MAX,
        )?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Damaged {
                part: "capture report".into(),
                problem: e.to_string(),
            })
    }

    /// Checks the signatures. With `trusted`, a valid signature by that key is required.
    pub fn check_signatures(&self, trusted: Option<&PublicKey>) -> Result<SignatureState> {
        let mut valid = Vec::new();
        for s in self.signatures() {
            let key = PublicKey::from_hex(&s.public_key).ok_or_else(|| {
                Error::Signature(format!(
                    "signature by key {} carries a malformed public key",
                    s.key_id
                ))
            })?;
            let sig = s.signature_bytes().ok_or_else(|| {
                Error::Signature(format!("signature by key {} is malformed", s.key_id))
            })?;
            if key.key_id() != s.key_id || !key.verify(&self.manifest_bytes, &sig) {
                return Err(Error::Signature(format!(
                    "signature by key {} does not verify",
                    s.key_id
                )));
            }
            if trusted == Some(&key) {
                return Ok(SignatureState::Trusted {
                    key_id: s.key_id.clone(),
                });
            }
            valid.push(s.key_id.clone());
        }
        match trusted {
            Some(k) => Err(Error::Signature(format!(
                "not signed by the trusted key {}",
                k.key_id()
            ))),
            None if valid.is_empty() => Ok(SignatureState::Unsigned),
            None => Ok(SignatureState::Untrusted { key_ids: valid }),
        }
    }

    /// Checks every byte: signatures, zero padding, every blob digest, every TOC, every layer's
    /// content against its TOC. `progress` receives compressed bytes checked so far.
    pub fn verify(
        &self,
        trusted: Option<&PublicKey>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SignatureState> {
        let (state, tocs) = self.verify_all_but_layers(trusted)?;
        let mut done = 0;
        for (layer, toc) in self.manifest.layers.iter().zip(&tocs) {
            self.read_layer(layer, toc, crate::layer::discard)?;
            done += layer.size;
            progress(done);
        }
        Ok(state)
    }

    /// Everything [`Bundle::verify`] checks except the layers' contents: signatures, padding,
    /// tables of contents (and the cross-layer rule) and the report. For callers that stream
    /// every layer through [`Bundle::read_layer`] (or [`Bundle::check_blob`]) anyway, as
    /// installing does, so no layer is decompressed twice.
    pub fn verify_all_but_layers(
        &self,
        trusted: Option<&PublicKey>,
    ) -> Result<(SignatureState, Vec<Toc>)> {
        let state = self.check_signatures(trusted)?;
        self.check_padding()?;
        let tocs = self.tocs()?;
        if let Some(r) = &self.manifest.report {
            self.check_blob(r, "capture report")?;
        }
        Ok((state, tocs))
    }

    /// Every byte between the table and the blob region, and between blobs, must be zero.
    fn check_padding(&self) -> Result<()> {
        let region = self.payload_start + self.header.blobs_offset().expect("checked");
        let mut gaps = vec![(
            self.payload_start + HEADER_LEN + self.header.manifest_len + self.header.table_len,
            region,
        )];
        let mut entries: Vec<&BlobEntry> = self.blobs.values().collect();
        entries.sort_by_key(|e| e.offset);
        for pair in entries.windows(2) {
            gaps.push((
                region + pair[0].offset + pair[0].len,
                region + pair[1].offset,
            ));
        }
        // The table allows gaps of any size: read them in bounded chunks.
        let mut buf = vec![0u8; 64 << 10];
        for (mut from, to) in gaps {
            while from < to {
                let chunk = &mut buf[..(to - from).min(64 << 10) as usize];
                self.file
                    .read_exact_at(chunk, from)
                    .map_err(read_err("padding"))?;
                if let Some(i) = chunk.iter().position(|&b| b != 0) {
                    return Err(Error::Damaged {
                        part: "padding".into(),
                        problem: format!("non-zero bytes at offset {}", from + i as u64),
                    });
                }
                from += chunk.len() as u64;
            }
        }
        Ok(())
    }
}
