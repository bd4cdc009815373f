//! The fixed binary parts of a bundle file: header, blob table and trailer (see `SPEC.md`).
//!
//! ```text
//! [stub]  P: header(64) manifest blob-table zero-pad-to-4KiB blobs(each 4 KiB aligned) signatures trailer(64)
//! ```
//! The trailer, found in the last 64 bytes, gives the payload length (so `P = file_len - payload_len`
//! and a launcher stub may precede the payload) and the sha256 of header, manifest, blob table and
//! signature block. Blobs are covered by their own digests, padding must be zero: every byte of
//! the payload is covered by some check.

use crate::digest::Digest;

pub const HEADER_MAGIC: [u8; 8] = *b"\x89CAPSA\r\n";
pub const TRAILER_MAGIC: [u8; 8] = *b"CAPSAEND";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: u64 = 64;
pub const TRAILER_LEN: u64 = 64;
pub const TABLE_ENTRY_LEN: u64 = 48;
/// Alignment of the blob region and of every blob, relative to the payload start.
pub const ALIGN: u64 = 4096;
pub const MAX_BLOBS: u64 = 1024;
pub const MAX_SIGNATURES_LEN: u64 = 64 * 1024;

/// A fixed part that does not parse; the text says which field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LayoutError(pub String);

fn bad(s: impl Into<String>) -> LayoutError {
    LayoutError(s.into())
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The header at the payload start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub manifest_len: u64,
    pub table_len: u64,
    pub blobs_len: u64,
    pub signatures_len: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&HEADER_MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.manifest_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.table_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.blobs_len.to_le_bytes());
        b[40..48].copy_from_slice(&self.signatures_len.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; 64]) -> Result<Self, LayoutError> {
        if b[0..8] != HEADER_MAGIC {
            return Err(bad("header magic is wrong"));
        }
        let version = u16_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {version} is not supported (this capsa reads {FORMAT_VERSION})"
            )));
        }
        if u16_at(b, 10) != 0 || u32_at(b, 12) != 0 || b[48..64].iter().any(|&x| x != 0) {
            return Err(bad("header flags or reserved bytes are not zero"));
        }
        Ok(Self {
            manifest_len: u64_at(b, 16),
            table_len: u64_at(b, 24),
            blobs_len: u64_at(b, 32),
            signatures_len: u64_at(b, 40),
        })
    }

    /// Offset of the blob region from the payload start.
    pub fn blobs_offset(&self) -> Option<u64> {
        let end = HEADER_LEN
            .checked_add(self.manifest_len)?
            .checked_add(self.table_len)?;
        end.checked_next_multiple_of(ALIGN)
    }

    /// Total payload length this header implies, trailer included.
    pub fn payload_len(&self) -> Option<u64> {
        self.blobs_offset()?
            .checked_add(self.blobs_len)?
            .checked_add(self.signatures_len)?
            .checked_add(TRAILER_LEN)
    }
}

/// The trailer in the last 64 bytes of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub payload_len: u64,
    /// sha256(header ‖ manifest ‖ blob table ‖ signature block).
    pub meta_digest: Digest,
}

impl Trailer {
    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&TRAILER_MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.payload_len.to_le_bytes());
        b[24..56].copy_from_slice(self.meta_digest.as_bytes());
        b
    }

    pub fn decode(b: &[u8; 64]) -> Result<Self, LayoutError> {
        if b[0..8] != TRAILER_MAGIC {
            return Err(bad("no capsa trailer at the end of the file"));
        }
        let version = u16_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {version} is not supported (this capsa reads {FORMAT_VERSION})"
            )));
        }
        if u16_at(b, 10) != 0 || u32_at(b, 12) != 0 || b[56..64].iter().any(|&x| x != 0) {
            return Err(bad("trailer flags or reserved bytes are not zero"));
        }
        let digest: [u8; 32] = b[24..56].try_into().expect("32 bytes");
        Ok(Self {
            payload_len: u64_at(b, 16),
            meta_digest: Digest::from_bytes(digest),
        })
    }
}

/// One blob table row: where a blob sits inside the blob region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry {
    pub digest: Digest,
    pub offset: u64,
    pub len: u64,
}

/// Encodes the table.
pub fn encode_table(entries: &[BlobEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TABLE_ENTRY_LEN as usize);
    for e in entries {
        out.extend_from_slice(e.digest.as_bytes());
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
    }
    out
}

/// Decodes and checks the table: blobs in increasing, aligned, non-overlapping order, each
/// inside the region of `blobs_len` bytes (so no offset arithmetic on them overflows), the last
/// ending exactly at its end, each digest once.
pub fn decode_table(b: &[u8], blobs_len: u64) -> Result<Vec<BlobEntry>, LayoutError> {
    if !(b.len() as u64).is_multiple_of(TABLE_ENTRY_LEN)
        || b.len() as u64 / TABLE_ENTRY_LEN > MAX_BLOBS
    {
        return Err(bad("blob table length is wrong"));
    }
    let mut out: Vec<BlobEntry> = Vec::new();
    let mut end = 0u64;
    for chunk in b.chunks_exact(TABLE_ENTRY_LEN as usize) {
        let digest = Digest::from_bytes(chunk[0..32].try_into().expect("32 bytes"));
        let e = BlobEntry {
            digest,
            offset: u64_at(chunk, 32),
            len: u64_at(chunk, 40),
        };
        if !e.offset.is_multiple_of(ALIGN) || e.offset < end {
            return Err(bad(format!("blob {digest} is misplaced in the table")));
        }
        // Checked before rounding up, so `end` cannot overflow: the region ends at
        // `blobs_len`, which the header check bounded by the file's length.
        end = e
            .offset
            .checked_add(e.len)
            .filter(|&blob_end| blob_end <= blobs_len)
            .ok_or_else(|| {
                bad(format!(
                    "blob {digest} (offset {}, length {}) ends past the blob region of {blobs_len} bytes",
                    e.offset, e.len
                ))
            })?
            .checked_next_multiple_of(ALIGN)
            .unwrap_or(u64::MAX);
        if out.iter().any(|o| o.digest == digest) {
            return Err(bad(format!("blob {digest} is listed twice")));
        }
        out.push(e);
    }
    let last_end = out.last().map_or(0, |e| e.offset + e.len);
    if last_end != blobs_len {
        return Err(bad("blob region length does not match the table"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_trailer_round_trip() {
        let h = Header {
            manifest_len: 10,
            table_len: 96,
            blobs_len: 5000,
            signatures_len: 0,
        };
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        assert_eq!(h.blobs_offset(), Some(4096));
        let t = Trailer {
            payload_len: 99,
            meta_digest: Digest::of(b"m"),
        };
        assert_eq!(Trailer::decode(&t.encode()).unwrap(), t);
        let mut raw = t.encode();
        raw[60] = 1;
        assert!(Trailer::decode(&raw).is_err());
    }

    #[test]
    fn table_rejects_overlap_and_misalignment() {
        let a = BlobEntry {
            digest: Digest::of(b"a"),
            offset: 0,
            len: 5000,
        };
        let b = BlobEntry {
            digest: Digest::of(b"b"),
            offset: 8192,
            len: 10,
        };
        assert_eq!(
            decode_table(&encode_table(&[a, b]), 8202).unwrap(),
            vec![a, b]
        );
        let overlap = BlobEntry { offset: 4096, ..b };
        assert!(decode_table(&encode_table(&[a, overlap]), 4106).is_err());
        let unaligned = BlobEntry { offset: 8193, ..b };
        assert!(decode_table(&encode_table(&[a, unaligned]), 8203).is_err());
        assert!(decode_table(&encode_table(&[a, a]), 5000).is_err());
        assert!(decode_table(&encode_table(&[a]), 5001).is_err());
    }

    #[test]
    fn table_offsets_near_the_top_of_u64_are_refused() {
        // Before the bound, rounding offset + len up to the alignment overflowed (a panic with
        // overflow checks on).
        let top = BlobEntry {
            digest: Digest::of(b"a"),
            offset: u64::MAX - (ALIGN - 1),
            len: 1,
        };
        let e = decode_table(&encode_table(&[top]), 4096).unwrap_err();
        assert!(
            e.0.contains("ends past the blob region of 4096 bytes"),
            "{e}"
        );
        let wrap = BlobEntry { len: ALIGN, ..top };
        let e = decode_table(&encode_table(&[wrap]), 4096).unwrap_err();
        assert!(e.0.contains("ends past the blob region"), "{e}");
    }
}
