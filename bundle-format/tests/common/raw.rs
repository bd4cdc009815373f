//! Hand-made layers: tar streams written header by header (nothing sanitizes them), zstd
//! frames built block by block, TOC JSON with any values, and whole containers assembled
//! around arbitrary manifest bytes. Every digest they declare is correct.

use std::path::Path;

use bundle_format::canonical;
use bundle_format::container::{encode_table, BlobEntry, Header, Trailer, ALIGN, HEADER_LEN};
use bundle_format::sign::{SignatureBlock, SignatureEntry};
use bundle_format::{Digest, LayerRole, Manifest};
use serde_json::{json, Value};

use super::{layer_record, roles, write_built, Built, MTIME};

/// One tar entry, written with raw header bytes so nothing sanitizes it.
#[derive(Debug, Clone)]
pub struct Raw {
    pub path: Vec<u8>,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub data: Vec<u8>,
    pub link: Option<Vec<u8>>,
    /// PAX records written in an `x` header before the entry.
    pub pax: Vec<(String, Vec<u8>)>,
    /// Write the path in a GNU `L` entry even when it would fit the header.
    pub long_name: bool,
    /// The header's mtime (and the mirrored TOC's).
    pub mtime: u64,
}

impl Raw {
    pub fn new(kind: tar::EntryType, path: &[u8], mode: u32) -> Self {
        Self {
            path: path.to_vec(),
            kind,
            mode,
            data: Vec::new(),
            link: None,
            pax: Vec::new(),
            long_name: false,
            mtime: MTIME,
        }
    }
    pub fn mtime(mut self, mtime: u64) -> Self {
        self.mtime = mtime;
        self
    }
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    pub fn pax(mut self, key: &str, value: &[u8]) -> Self {
        self.pax.push((key.into(), value.to_vec()));
        self
    }
    pub fn long(mut self) -> Self {
        self.long_name = true;
        self
    }
}

pub fn rdir(p: &[u8]) -> Raw {
    Raw::new(tar::EntryType::Directory, p, 0o755)
}
pub fn rfile(p: &[u8], data: &[u8]) -> Raw {
    Raw {
        data: data.to_vec(),
        ..Raw::new(tar::EntryType::Regular, p, 0o644)
    }
}
pub fn rsym(p: &[u8], target: &[u8]) -> Raw {
    Raw {
        link: Some(target.to_vec()),
        ..Raw::new(tar::EntryType::Symlink, p, 0o777)
    }
}
pub fn rlink(p: &[u8], target: &[u8]) -> Raw {
    Raw {
        link: Some(target.to_vec()),
        ..Raw::new(tar::EntryType::Link, p, 0o777)
    }
}

/// A 512-byte header plus `data`, padded to a block.
pub fn tar_block(
    kind: tar::EntryType,
    name: &[u8],
    mode: u32,
    size: u64,
    link: &[u8],
    data: &[u8],
) -> Vec<u8> {
    tar_block_at(kind, name, mode, size, MTIME, link, data)
}

/// [`tar_block`] with any mtime (GNU base-256 encoding past 8^11).
pub fn tar_block_at(
    kind: tar::EntryType,
    name: &[u8],
    mode: u32,
    size: u64,
    mtime: u64,
    link: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    let old = h.as_old_mut();
    let n = name.len().min(old.name.len());
    old.name[..n].copy_from_slice(&name[..n]);
    let n = link.len().min(old.linkname.len());
    old.linkname[..n].copy_from_slice(&link[..n]);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

/// The tar stream of `entries`, ended by two zero blocks.
pub fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if !e.pax.is_empty() {
            let mut records = Vec::new();
            for (k, v) in &e.pax {
                let body_len = k.len() + v.len() + 3; // ' ', '=', '\n'
                let mut len = body_len + 1;
                while len != body_len + len.to_string().len() {
                    len = body_len + len.to_string().len();
                }
                records.extend_from_slice(format!("{len} {k}=").as_bytes());
                records.extend_from_slice(v);
                records.push(b'\n');
            }
            out.extend(tar_block(
                tar::EntryType::XHeader,
                b"PaxHeader",
                0o644,
                records.len() as u64,
                b"",
                &records,
            ));
        }
        let long = |kind, bytes: &[u8]| {
            let mut data = bytes.to_vec();
            data.push(0);
            tar_block(kind, b"././@LongLink", 0o644, data.len() as u64, b"", &data)
        };
        if e.long_name || e.path.len() > 100 {
            out.extend(long(tar::EntryType::GNULongName, &e.path));
        }
        let link = e.link.clone().unwrap_or_default();
        if link.len() > 100 {
            out.extend(long(tar::EntryType::GNULongLink, &link));
        }
        out.extend(tar_block_at(
            e.kind,
            &e.path,
            e.mode,
            e.data.len() as u64,
            e.mtime,
            &link,
            &e.data,
        ));
    }
    out.extend([0u8; 1024]);
    out
}

/// A TOC entry as JSON, with whatever values the test wants (valid or not).
pub fn toc_entry(
    path: &str,
    kind: &str,
    mode: u32,
    content: Option<&[u8]>,
    target: Option<&str>,
) -> Value {
    let size = content.map_or(0, |c| c.len());
    let mut v = json!({ "path": path, "type": kind, "mode": mode, "mtime": MTIME, "size": size });
    if let Some(c) = content {
        v["sha256"] = json!(Digest::of(c).to_string());
    }
    if let Some(t) = target {
        v["target"] = json!(t);
    }
    v
}

/// The TOC that describes `entries` exactly as their headers say (paths decoded lossily).
pub fn mirror_toc(entries: &[Raw]) -> Vec<Value> {
    entries
        .iter()
        .map(|e| {
            let path = String::from_utf8_lossy(&e.path);
            let path = path.strip_suffix('/').unwrap_or(&path);
            let (kind, content) = match e.kind {
                tar::EntryType::Directory => ("dir", None),
                tar::EntryType::Regular => ("file", Some(&e.data[..])),
                tar::EntryType::Symlink => ("symlink", None),
                tar::EntryType::Link => ("hardlink", None),
                _ => ("file", Some(&e.data[..])),
            };
            let target = e
                .link
                .as_ref()
                .map(|l| String::from_utf8_lossy(l).into_owned());
            let mut v = toc_entry(path, kind, e.mode, content, target.as_deref());
            v["mtime"] = e.mtime.into();
            v
        })
        .collect()
}

/// A layer made of raw parts; the manifest built around it declares them truthfully unless a
/// test changes a field.
#[derive(Clone)]
pub struct RawLayer {
    pub blob: Vec<u8>,
    pub toc_json: Vec<u8>,
    pub diff_id: Digest,
    pub tar_size: u64,
    pub entries: u64,
    pub unpacked: u64,
}

impl RawLayer {
    /// `tar` compressed with zstd, described by `toc` (canonical JSON of `{"entries": toc}`).
    pub fn new(tar: Vec<u8>, toc: Vec<Value>) -> Self {
        let blob = zstd::bulk::compress(&tar, 3).unwrap();
        Self::with_blob(&tar, blob, toc)
    }

    /// `blob` declared as the compressed form of `tar`.
    pub fn with_blob(tar: &[u8], blob: Vec<u8>, toc: Vec<Value>) -> Self {
        Self::from_parts(blob, Digest::of(tar), tar.len() as u64, toc)
    }

    /// A hand-made zstd frame (window 1 MiB) of `pieces`, declared truthfully.
    pub fn pieces(pieces: &[Piece], toc: Vec<Value>) -> Self {
        let (diff_id, tar_size) = digest_pieces(pieces);
        Self::from_parts(zstd_frame(20, pieces), diff_id, tar_size, toc)
    }

    pub fn from_parts(blob: Vec<u8>, diff_id: Digest, tar_size: u64, toc: Vec<Value>) -> Self {
        let entries = toc.len() as u64;
        let unpacked = toc
            .iter()
            .filter(|e| e["type"] == "file")
            .map(|e| e["size"].as_u64().unwrap_or(0))
            .fold(0u64, u64::saturating_add);
        let toc_json = canonical::to_vec(&json!({ "entries": toc })).unwrap();
        Self {
            blob,
            toc_json,
            diff_id,
            tar_size,
            entries,
            unpacked,
        }
    }

    pub fn built(&self, role: LayerRole) -> Built {
        layer_record(
            role,
            &self.blob,
            self.diff_id,
            self.tar_size,
            &self.toc_json,
            self.entries,
            self.unpacked,
        )
    }
}

/// Writes a bundle of raw layers with correct digests everywhere.
pub fn write_raw(out: &Path, layers: &[RawLayer]) -> Manifest {
    let built = roles(layers.len())
        .into_iter()
        .zip(layers)
        .map(|(r, l)| l.built(r))
        .collect();
    write_built(out, built, &[])
}

/// Container bytes around arbitrary manifest bytes (`write_bundle` would refuse a bad manifest).
pub fn assemble(
    manifest: &[u8],
    blobs: &[(Digest, Vec<u8>)],
    signatures: &[SignatureEntry],
) -> Vec<u8> {
    let sig_bytes = SignatureBlock {
        signatures: signatures.to_vec(),
    }
    .to_bytes();
    let mut table = Vec::new();
    let mut region = Vec::new();
    for (d, b) in blobs {
        region.resize(region.len().next_multiple_of(ALIGN as usize), 0);
        table.push(BlobEntry {
            digest: *d,
            offset: region.len() as u64,
            len: b.len() as u64,
        });
        region.extend_from_slice(b);
    }
    let table = encode_table(&table);
    let header = Header {
        manifest_len: manifest.len() as u64,
        table_len: table.len() as u64,
        blobs_len: region.len() as u64,
        signatures_len: sig_bytes.len() as u64,
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(manifest);
    out.extend_from_slice(&table);
    out.resize(header.blobs_offset().unwrap() as usize, 0);
    out.extend_from_slice(&region);
    out.extend_from_slice(&sig_bytes);
    let meta = [&out[..HEADER_LEN as usize], manifest, &table, &sig_bytes].concat();
    let trailer = Trailer {
        payload_len: out.len() as u64 + 64,
        meta_digest: Digest::of(&meta),
    };
    out.extend_from_slice(&trailer.encode());
    out
}

/// A piece of a hand-made stream: literal bytes, or a byte repeated many times.
#[derive(Clone, Copy)]
pub enum Piece<'a> {
    Bytes(&'a [u8]),
    Run(u8, u64),
}

/// A zstd frame made by hand (no content size, no checksum): literal pieces in raw blocks,
/// runs in RLE blocks (4 bytes of blob per 128 KiB of output), so a bomb of any size costs no
/// compression time.
pub fn zstd_frame(window_log: u8, pieces: &[Piece]) -> Vec<u8> {
    const BLOCK: u64 = 128 << 10;
    let mut blocks: Vec<(u32, u64, Option<u8>, &[u8])> = Vec::new();
    for p in pieces {
        match *p {
            Piece::Bytes(b) => blocks.extend(
                b.chunks(BLOCK as usize)
                    .map(|c| (0, c.len() as u64, None, c)),
            ),
            Piece::Run(byte, n) => {
                let mut left = n;
                while left > 0 {
                    let k = left.min(BLOCK);
                    left -= k;
                    blocks.push((1, k, Some(byte), &[]));
                }
            }
        }
    }
    if blocks.is_empty() {
        blocks.push((0, 0, None, &[]));
    }
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (window_log - 10) << 3];
    let last = blocks.len() - 1;
    for (i, (kind, size, byte, bytes)) in blocks.into_iter().enumerate() {
        let h = (i == last) as u32 | kind << 1 | (size as u32) << 3;
        out.extend_from_slice(&h.to_le_bytes()[..3]);
        out.extend(byte);
        out.extend_from_slice(bytes);
    }
    out
}

/// sha256 and length of the stream `pieces` describe, without materializing it.
pub fn digest_pieces(pieces: &[Piece]) -> (Digest, u64) {
    let mut h = bundle_format::digest::Hasher::default();
    let mut chunk = Vec::new();
    for p in pieces {
        match *p {
            Piece::Bytes(b) => h.update(b),
            Piece::Run(byte, n) => {
                chunk.clear();
                chunk.resize(1 << 20, byte);
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    h.update(&chunk[..k]);
                    left -= k as u64;
                }
            }
        }
    }
    let len = h.len();
    (h.finish(), len)
}
