//! A bundle file as a repository stores it: its head (bytes 0 up to the blob region: header,
//! manifest, blob table, zero padding), its blobs (each by digest), and its tail (signature
//! block and trailer). `head ‖ blobs at their offsets, zero gaps ‖ tail` is the file.
//!
//! [`Parts::parse`] checks a head and a tail against each other exactly as a bundle reader
//! checks the file's fixed parts (header, lengths, table, zero padding, the trailer's digest of
//! header, manifest, table and signature block), so the blob offsets it gives are those of the
//! one file whose manifest the head holds. [`Parts::assemble`] streams the file, checking every
//! blob against its digest and size while it copies it. Clients use the same two calls to
//! rebuild a bundle from a repository.

use std::io::{self, Read, Write};

use bundle_format::container::{
    decode_table, BlobEntry, Header, Trailer, ALIGN, HEADER_LEN, TRAILER_LEN,
};
use bundle_format::digest::{Hasher, HashingReader};
use bundle_format::manifest::MAX_MANIFEST_LEN;
use bundle_format::sign::SignatureBlock;
use bundle_format::{BlobRef, Digest, Manifest};

/// Why a head, a tail or a blob does not make a bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartsError {
    #[error("bundle head: {0}")]
    Head(String),
    #[error("bundle tail: {0}")]
    Tail(String),
    #[error("blob {digest}: {problem}")]
    Blob { digest: Digest, problem: String },
    #[error("cannot read blob {digest}")]
    ReadBlob {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the bundle")]
    Write(#[source] io::Error),
}

/// The checked layout of one bundle file.
#[derive(Debug, Clone)]
pub struct Parts {
    pub header: Header,
    /// The manifest's exact bytes (what the signatures cover).
    pub manifest_bytes: Vec<u8>,
    /// The blobs by ascending offset; offsets are relative to the blob region.
    pub table: Vec<BlobEntry>,
    pub signatures: SignatureBlock,
    /// `head.len()`: where the blob region starts in the file.
    pub head_len: u64,
    pub tail_len: u64,
}

impl Parts {
    /// Checks `head` and `tail` against each other (see the module doc).
    pub fn parse(head: &[u8], tail: &[u8]) -> Result<Self, PartsError> {
        let bad_head = |s: &str| PartsError::Head(s.to_owned());
        let first: &[u8; 64] = head
            .get(..HEADER_LEN as usize)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad_head("shorter than a header"))?;
        let header = Header::decode(first).map_err(|e| PartsError::Head(e.0))?;
        if header.manifest_len > MAX_MANIFEST_LEN as u64 {
            return Err(bad_head("manifest is larger than 1 MiB"));
        }
        let region = header
            .blobs_offset()
            .ok_or_else(|| bad_head("lengths overflow"))?;
        if head.len() as u64 != region {
            return Err(PartsError::Head(format!(
                "{} bytes where the header puts the blob region at {region}",
                head.len()
            )));
        }
        let m_end = (HEADER_LEN + header.manifest_len) as usize;
        let t_end = m_end
            .checked_add(usize::try_from(header.table_len).unwrap_or(usize::MAX))
            .filter(|&e| e <= head.len())
            .ok_or_else(|| bad_head("manifest and table do not fit"))?;
        let manifest_bytes = head[HEADER_LEN as usize..m_end].to_vec();
        let table = decode_table(&head[m_end..t_end], header.blobs_len)
            .map_err(|e| PartsError::Head(format!("blob table: {}", e.0)))?;
        if head[t_end..].iter().any(|&b| b != 0) {
            return Err(bad_head("padding after the blob table is not zero"));
        }
        let want_tail = header.signatures_len.checked_add(TRAILER_LEN);
        if want_tail != Some(tail.len() as u64) {
            return Err(PartsError::Tail(format!(
                "{} bytes where the header gives {} of signatures and a trailer",
                tail.len(),
                header.signatures_len
            )));
        }
        let (sigs, trailer) = tail.split_at(tail.len() - TRAILER_LEN as usize);
        let trailer = Trailer::decode(trailer.try_into().expect("64 bytes"))
            .map_err(|e| PartsError::Tail(e.0))?;
        if header.payload_len() != Some(trailer.payload_len) {
            return Err(PartsError::Tail(
                "payload length differs from the header's".into(),
            ));
        }
        let mut h = Hasher::default();
        for part in [first.as_slice(), &manifest_bytes, &head[m_end..t_end], sigs] {
            h.update(part);
        }
        if h.finish() != trailer.meta_digest {
            return Err(PartsError::Tail(
                "the trailer's digest does not cover this head and signature block".into(),
            ));
        }
        let signatures = SignatureBlock::from_bytes(sigs)
            .map_err(|e| PartsError::Tail(format!("signature block: {e}")))?;
        Ok(Self {
            header,
            manifest_bytes,
            table,
            signatures,
            head_len: region,
            tail_len: tail.len() as u64,
        })
    }

    /// The manifest (parsed and validated), and a check that the table lists exactly its blobs.
    pub fn manifest(&self) -> Result<Manifest, PartsError> {
        let m = Manifest::from_bytes(&self.manifest_bytes)
            .map_err(|e| PartsError::Head(format!("manifest: {e}")))?;
        let wanted = m.blobs();
        let same = wanted.len() == self.table.len()
            && wanted.iter().all(|r| {
                self.table
                    .iter()
                    .any(|e| e.digest == r.digest && e.len == r.size)
            });
        if !same {
            return Err(PartsError::Head(
                "the blob table does not list exactly the manifest's blobs".into(),
            ));
        }
        Ok(m)
    }

    /// The whole file's length.
    pub fn file_len(&self) -> u64 {
        self.head_len + self.header.blobs_len + self.tail_len
    }

    /// Where blob `e` starts in the file.
    pub fn offset(&self, e: &BlobEntry) -> u64 {
        self.head_len + e.offset
    }

    /// The blobs as references, in file order.
    pub fn blobs(&self) -> impl Iterator<Item = BlobRef> + '_ {
        self.table.iter().map(|e| BlobRef {
            digest: e.digest,
            size: e.len,
        })
    }

    /// Streams the file to `out`: the head, each blob from `open_blob` (checked against its
    /// digest and size while copied, never more than its size read), zero gaps, the tail.
    /// Returns the file's sha256 and length.
    pub fn assemble(
        &self,
        head: &[u8],
        tail: &[u8],
        mut open_blob: impl FnMut(&BlobRef) -> io::Result<Box<dyn Read + '_>>,
        out: &mut dyn Write,
    ) -> Result<(Digest, u64), PartsError> {
        let mut w = bundle_format::digest::HashingWriter::new(out);
        w.write_all(head).map_err(PartsError::Write)?;
        let mut at = 0u64;
        let zeros = [0u8; ALIGN as usize];
        for e in &self.table {
            write_zeros(&mut w, e.offset - at, &zeros)?;
            let r = BlobRef {
                digest: e.digest,
                size: e.len,
            };
            let src = open_blob(&r).map_err(|source| PartsError::ReadBlob {
                digest: e.digest,
                source,
            })?;
            let mut src = HashingReader::new(src.take(e.len));
            io::copy(&mut src, &mut w).map_err(|source| PartsError::ReadBlob {
                digest: e.digest,
                source,
            })?;
            let (_, digest, len) = src.into_parts();
            if digest != e.digest || len != e.len {
                return Err(PartsError::Blob {
                    digest: e.digest,
                    problem: format!("{len} bytes of sha256 {digest}"),
                });
            }
            at = e.offset + e.len;
        }
        write_zeros(&mut w, self.header.blobs_len - at, &zeros)?;
        w.write_all(tail).map_err(PartsError::Write)?;
        let (_, digest, len) = w.into_parts();
        Ok((digest, len))
    }
}

fn write_zeros(w: &mut dyn Write, mut n: u64, zeros: &[u8]) -> Result<(), PartsError> {
    while n > 0 {
        let k = n.min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..k]).map_err(PartsError::Write)?;
        n -= k as u64;
    }
    Ok(())
}
