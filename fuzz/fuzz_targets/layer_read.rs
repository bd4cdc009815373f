//! `layer::read_layer` on arbitrary layer bytes. Input layout:
//!
//! ```text
//! flags:u8  tar_size:u32le  toc_len:u16le  toc:[toc_len]  body:[..]
//! ```
//! flags bit 0: `body` is a tar stream that the target compresses (so mutations reach the tar
//! parser), and the layer declares its true size and diff_id; otherwise `body` is the blob and
//! `tar_size` is taken from the input. `toc` is TOC JSON (any spelling); when it does not parse,
//! a fixed one-file TOC is used. bit 1: like real readers, skip TOCs that fail validation and
//! write validated entries into a temporary directory with `extract::write_entry`.
#![no_main]

use std::io::Read;

use bundle_format::layer::{discard, read_layer};
use bundle_format::manifest::LAYER_MEDIA_TYPE;
use bundle_format::{BlobRef, Digest, EntryKind, Layer, LayerRole, Toc, TocEntry};
use libfuzzer_sys::fuzz_target;

fn fixed_toc() -> Toc {
    Toc {
        entries: vec![TocEntry {
            path: bundle_format::BundlePath::new("x").expect("valid path"),
            kind: EntryKind::File,
            mode: 0o644,
            size: 2,
            mtime: 0,
            sha256: Some(Digest::of(b"hi")),
            target: None,
        }],
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 7 {
        return;
    }
    let flags = data[0];
    let declared = u32::from_le_bytes(data[1..5].try_into().expect("4 bytes")) as u64;
    let toc_len = u16::from_le_bytes(data[5..7].try_into().expect("2 bytes")) as usize;
    let rest = &data[7..];
    let (toc_bytes, body) = rest.split_at(toc_len.min(rest.len()));
    let toc: Toc = serde_json::from_slice(toc_bytes).unwrap_or_else(|_| fixed_toc());
    let extract = flags & 2 != 0;
    if extract && toc.validate().is_err() {
        return;
    }
    let (blob, tar_size, diff_id) = if flags & 1 != 0 {
        let blob = zstd::bulk::compress(body, 1).expect("compress");
        (blob, body.len() as u64, Digest::of(body))
    } else {
        (body.to_vec(), declared, Digest::of(b""))
    };
    let layer = Layer {
        role: LayerRole::App,
        media_type: LAYER_MEDIA_TYPE.into(),
        digest: Digest::of(&blob),
        size: blob.len() as u64,
        diff_id,
        tar_size,
        entries: toc.entries.len() as u64,
        unpacked_size: toc.content_size(),
        toc: BlobRef {
            digest: Digest::of(toc_bytes),
            size: toc_bytes.len() as u64,
        },
    };
    if extract {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("root");
        let _ = read_layer(&blob[..], &layer, &toc, |e, r: &mut dyn Read| {
            bundle_format::extract::write_entry(&root, e, r).map(|_| ())
        });
        // Nothing may have been created beside the root.
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(names.len(), 1, "an entry escaped the extraction root");
    } else {
        let _ = read_layer(&blob[..], &layer, &toc, discard);
    }
});
