//! The structure-aware input of the `bundle_parts` target: a bundle taken apart into what a
//! mutation should change (the manifest JSON, each layer's TOC JSON and tar stream), and put
//! back together with every digest, size and offset recomputed, so that a mutation gets past
//! the digest checks and reaches manifest validation, TOC decoding, tar parsing and extraction.
//!
//! Encoding (lengths little-endian; a length past the end of the input takes what is left, so
//! every input decodes):
//! ```text
//! flags:u8  manifest_len:u32 manifest  { toc_len:u32 toc  tar_len:u32 tar }*
//! ```
//! Flags: [`KEEP_NUMBERS`], [`MIRROR_TOC`], [`RAW_TOC`], [`RAW_MANIFEST`].

// Shared by the fuzz target and the seed generator; each uses only part of it.
#![allow(dead_code)]

use std::io::Read;

use bundle_format::{canonical, Digest};
use serde_json::{json, Value};

/// Keep the manifest's own `tar_size`, `entries` and `unpacked_size` (so hostile numbers reach
/// the bounds) instead of recomputing them from the parts.
pub const KEEP_NUMBERS: u8 = 1;
/// Ignore the TOC given and describe the tar stream as its headers say, so mutated headers
/// reach extraction instead of failing the TOC comparison.
pub const MIRROR_TOC: u8 = 2;
/// Store the TOC bytes as given, not re-encoded canonically (reaches the canonical check).
pub const RAW_TOC: u8 = 4;
/// Store the manifest bytes as given, digests and all (reaches the manifest parser).
pub const RAW_MANIFEST: u8 = 8;

/// Most layers rebuilt (a manifest may list more; the rest keep what they say).
pub const MAX_PART_LAYERS: usize = 8;
/// Most tar entries mirrored into a TOC.
const MAX_MIRRORED: usize = 512;

/// One layer's parts.
#[derive(Debug, Clone, Default)]
pub struct LayerParts {
    pub toc: Vec<u8>,
    pub tar: Vec<u8>,
}

/// A bundle taken apart.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    pub flags: u8,
    pub manifest: Vec<u8>,
    pub layers: Vec<LayerParts>,
}

fn take<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let len = match data.get(..4) {
        Some(b) => u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize,
        None => data.len(),
    };
    *data = &data[data.len().min(4)..];
    let (head, rest) = data.split_at(len.min(data.len()));
    *data = rest;
    head
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

impl Parts {
    pub fn decode(mut data: &[u8]) -> Self {
        let flags = data.first().copied().unwrap_or(0);
        data = &data[data.len().min(1)..];
        let manifest = take(&mut data).to_vec();
        let mut layers = Vec::new();
        while !data.is_empty() && layers.len() < MAX_PART_LAYERS {
            let toc = take(&mut data).to_vec();
            let tar = take(&mut data).to_vec();
            layers.push(LayerParts { toc, tar });
        }
        Self {
            flags,
            manifest,
            layers,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        put(&mut out, &self.manifest);
        for l in &self.layers {
            put(&mut out, &l.toc);
            put(&mut out, &l.tar);
        }
        out
    }

    /// The bundle file: manifest fixed up (unless [`RAW_MANIFEST`]), blobs compressed, table,
    /// padding and trailer computed.
    pub fn assemble(&self) -> Vec<u8> {
        let mut blobs: Vec<(Digest, Vec<u8>)> = Vec::new();
        let manifest = match serde_json::from_slice::<Value>(&self.manifest) {
            Ok(mut m) if self.flags & RAW_MANIFEST == 0 => {
                self.fix_up(&mut m, &mut blobs);
                canonical::to_vec(&m).unwrap_or_else(|_| self.manifest.clone())
            }
            _ => {
                // Blobs as the parts give them, for a manifest that names their digests.
                for l in &self.layers {
                    blobs.push(blob(compress(&l.toc)));
                    blobs.push(blob(compress(&l.tar)));
                }
                self.manifest.clone()
            }
        };
        container(&manifest, &blobs)
    }

    /// Points the manifest's layers (and report) at blobs built from the parts.
    fn fix_up(&self, m: &mut Value, blobs: &mut Vec<(Digest, Vec<u8>)>) {
        let Some(layers) = m.get_mut("layers").and_then(Value::as_array_mut) else {
            return;
        };
        let empty = LayerParts::default();
        for (i, layer) in layers.iter_mut().take(MAX_PART_LAYERS).enumerate() {
            let parts = self.layers.get(i).unwrap_or(&empty);
            let toc = if self.flags & MIRROR_TOC != 0 {
                mirror_toc(&parts.tar)
            } else {
                serde_json::from_slice::<Value>(&parts.toc).unwrap_or(Value::Null)
            };
            let toc_bytes = match &toc {
                Value::Null => parts.toc.clone(),
                _ if self.flags & (RAW_TOC | MIRROR_TOC) == RAW_TOC => parts.toc.clone(),
                v => canonical::to_vec(v).unwrap_or_else(|_| parts.toc.clone()),
            };
            let (toc_digest, toc_blob) = blob(compress(&toc_bytes));
            let (digest, layer_blob) = blob(compress(&parts.tar));
            let Some(l) = layer.as_object_mut() else {
                continue;
            };
            l.insert("digest".into(), json!(digest.to_string()));
            l.insert("size".into(), json!(layer_blob.len()));
            l.insert("diff_id".into(), json!(Digest::of(&parts.tar).to_string()));
            l.insert(
                "toc".into(),
                json!({ "digest": toc_digest.to_string(), "size": toc_blob.len() }),
            );
            if self.flags & KEEP_NUMBERS == 0 {
                let (entries, unpacked) = toc_numbers(&toc);
                l.insert("tar_size".into(), json!(parts.tar.len()));
                l.insert("entries".into(), json!(entries));
                l.insert("unpacked_size".into(), json!(unpacked));
            }
            blobs.push((toc_digest, toc_blob));
            blobs.push((digest, layer_blob));
        }
        if m.get("report").is_some() {
            let (d, b) = blob(compress(br#"{"files":[],"warnings":[]}"#));
            m["report"] = json!({ "digest": d.to_string(), "size": b.len() });
            blobs.push((d, b));
        }
    }
}

fn compress(b: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(b, 1).expect("in-memory zstd compression")
}

fn blob(b: Vec<u8>) -> (Digest, Vec<u8>) {
    (Digest::of(&b), b)
}

/// Entry count and total file size a TOC declares (saturating: the bounds are the reader's
/// business).
fn toc_numbers(toc: &Value) -> (u64, u64) {
    let entries = toc["entries"].as_array().map_or(&[][..], |v| &v[..]);
    let files = entries
        .iter()
        .filter(|e| e["type"] == "file")
        .map(|e| e["size"].as_u64().unwrap_or(0))
        .fold(0u64, u64::saturating_add);
    (entries.len() as u64, files)
}

/// The TOC that describes `tar` as the tar crate reads its headers (lossy paths), so a
/// mutated header reaches the code after the TOC comparison.
pub fn mirror_toc(tar: &[u8]) -> Value {
    let mut entries = Vec::new();
    let mut archive = tar::Archive::new(tar);
    let Ok(iter) = archive.entries() else {
        return json!({ "entries": entries });
    };
    for entry in iter.take(MAX_MIRRORED) {
        let Ok(mut e) = entry else { break };
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            _ => "file",
        };
        let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let path = path.strip_suffix('/').unwrap_or(&path).to_owned();
        let target = e
            .link_name_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let mut content = Vec::new();
        if e.read_to_end(&mut content).is_err() {
            break;
        }
        let mut v = json!({
            "path": path,
            "type": kind,
            "mode": h.mode().unwrap_or(0),
            "mtime": h.mtime().unwrap_or(0),
            "size": e.size(),
        });
        if kind == "file" {
            v["sha256"] = json!(Digest::of(&content).to_string());
        }
        if let Some(t) = target.filter(|_| kind == "symlink" || kind == "hardlink") {
            v["target"] = json!(t);
        }
        entries.push(v);
    }
    json!({ "entries": entries })
}

/// Header, manifest, blob table, zero padding, 4 KiB-aligned blobs, an empty signature block
/// and the trailer (see `SPEC.md`).
pub fn container(manifest: &[u8], blobs: &[(Digest, Vec<u8>)]) -> Vec<u8> {
    use bundle_format::container::{encode_table, BlobEntry, Header, Trailer, ALIGN, HEADER_LEN};
    let sig = bundle_format::sign::SignatureBlock { signatures: vec![] }.to_bytes();
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
        signatures_len: sig.len() as u64,
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(manifest);
    out.extend_from_slice(&table);
    let region_at = header
        .blobs_offset()
        .unwrap_or(HEADER_LEN + manifest.len() as u64);
    out.resize(region_at as usize, 0);
    out.extend_from_slice(&region);
    out.extend_from_slice(&sig);
    let meta = [&out[..HEADER_LEN as usize], manifest, &table, &sig].concat();
    let trailer = Trailer {
        payload_len: out.len() as u64 + 64,
        meta_digest: Digest::of(&meta),
    };
    out.extend_from_slice(&trailer.encode());
    out
}
