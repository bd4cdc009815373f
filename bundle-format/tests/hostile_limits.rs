//! Resource limits against hostile layers (threats.md BND-09, BND-10, BND-12): decompression
//! bombs past the declared tar size, zstd windows above the limit, huge GNU long names, long
//! links and PAX headers, endless GNU sparse extension chains, and over-long or over-deep names.
//! Blobs are hand-made zstd frames (RLE blocks), so gigabytes of output cost kilobytes of input
//! and no compression time; every digest the bundle declares is correct. Each refusal must come
//! quickly and with bounded memory: these tests are alone in this binary so that the peak RSS
//! they measure is their own.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use bundle_format::digest::Hasher;
use bundle_format::Digest;
use common::*;
use serde_json::Value;
use tar::EntryType;

const GIB: u64 = 1 << 30;
/// What threats.md BND-10 allows a hostile bundle to make us use.
const RSS_LIMIT: u64 = 256 << 20;

fn file_toc(p: &str, size: u64) -> Value {
    let mut v = toc_entry(p, "file", 0o644, Some(b""), None);
    v["size"] = size.into();
    v
}

/// Checks the refusal, its speed and the memory used; returns the verify error.
fn refused_quickly(layer: RawLayer) -> String {
    let start = Instant::now();
    let (v, _) = refused_layers(&[layer]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}: {v}",
        start.elapsed()
    );
    let rss = peak_rss();
    assert!(rss < RSS_LIMIT, "peak RSS {} MiB refusing: {v}", rss >> 20);
    v
}

#[test]
fn decompression_bombs_stop_at_the_declared_size() {
    let x = tar_block(EntryType::Regular, b"x", 0o644, 16 * GIB, b"", b"");
    // The manifest declares a 1 MiB tar stream; the blob (512 KiB) expands to 16 GiB.
    let mut bomb = RawLayer::pieces(&[Piece::Bytes(&x)], vec![file_toc("x", 16 * GIB)]);
    bomb.blob = zstd_frame(
        20,
        &[
            Piece::Bytes(&x),
            Piece::Run(0, 16 * GIB),
            Piece::Run(0, 1024),
        ],
    );
    bomb.tar_size = 1 << 20;
    let v = refused_quickly(bomb);
    assert!(v.contains("size limit exceeded"), "{v}");

    // An honest little tar, then 16 GiB of zeros after its end-of-archive blocks.
    let tar = raw_tar(&[rfile(b"x", b"hi")]);
    let mut trailing = RawLayer::with_blob(
        &tar,
        Vec::new(),
        vec![toc_entry("x", "file", 0o644, Some(b"hi"), None)],
    );
    trailing.blob = zstd_frame(20, &[Piece::Bytes(&tar), Piece::Run(0, 16 * GIB)]);
    let v = refused_quickly(trailing);
    assert!(v.contains("size limit exceeded"), "{v}");

    // The TOC says 2 bytes, the header 16 GiB: refused at the header.
    let lying = RawLayer::pieces(
        &[Piece::Bytes(&x), Piece::Run(0, 4096), Piece::Run(0, 1024)],
        vec![file_toc("x", 2)],
    );
    let v = refused_quickly(lying);
    assert!(v.contains("does not match the table of contents"), "{v}");
}

#[test]
fn zstd_windows_above_the_limit_are_refused() {
    let tar = raw_tar(&[rfile(b"x", b"hi")]);
    for window_log in [28, 31] {
        let blob = zstd_frame(window_log, &[Piece::Bytes(&tar)]);
        let v = refused_quickly(RawLayer::with_blob(
            &tar,
            blob,
            mirror_toc(&[rfile(b"x", b"hi")]),
        ));
        assert!(v.contains("layer app"), "{v}");
    }
}

#[test]
fn huge_long_names_links_and_pax_headers_are_capped() {
    let size = GIB / 2;
    let x = tar_block(EntryType::Regular, b"x", 0o644, 0, b"", b"");
    for kind in [
        EntryType::GNULongName,
        EntryType::GNULongLink,
        EntryType::XHeader,
    ] {
        let ext = tar_block(kind, b"././@LongLink", 0o644, size, b"", b"");
        let pieces = [
            Piece::Bytes(&ext),
            Piece::Run(b'a', size),
            Piece::Bytes(&x),
            Piece::Run(0, 1024),
        ];
        let v = refused_quickly(RawLayer::pieces(&pieces, vec![file_toc("x", 0)]));
        assert!(v.contains("layer app"), "{kind:?}: {v}");
    }
}

/// A GNU sparse header followed by a chain of extension blocks, each listing 21 empty
/// regions: a parser that collects the regions grows by ~1 KiB per 512 bytes of stream.
#[test]
fn sparse_extension_chains_are_not_parsed() {
    let blocks = 1u64 << 20; // 512 MiB of tar
    let mut head = tar::Header::new_gnu();
    head.set_entry_type(EntryType::GNUSparse);
    head.set_path("x").unwrap();
    head.set_mode(0o644);
    head.set_size(0);
    head.as_gnu_mut().unwrap().set_real_size(0);
    head.as_gnu_mut().unwrap().isextended[0] = 1;
    head.set_cksum();
    let mut ext = [0u8; 512];
    for i in 0..21 {
        ext[i * 24..i * 24 + 11].copy_from_slice(b"00000000000");
        ext[i * 24 + 12..i * 24 + 23].copy_from_slice(b"00000000000");
    }
    ext[504] = 1;
    let mut last = ext;
    last[504] = 0;

    let mut hash = Hasher::default();
    let mut z = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    let mut put = |b: &[u8]| {
        hash.update(b);
        z.write_all(b).unwrap();
    };
    put(head.as_bytes());
    let batch = ext.repeat(2048);
    for _ in 0..blocks / 2048 {
        put(&batch);
    }
    put(&last);
    put(&[0; 1024]);
    let tar_size = hash.len();
    let blob = z.finish().unwrap();
    let layer = RawLayer::from_parts(blob, hash.finish(), tar_size, vec![file_toc("x", 0)]);
    let v = refused_quickly(layer);
    assert!(v.contains("layer app"), "{v}");
}

#[test]
fn over_long_and_over_deep_names_are_refused() {
    let deep = "a/".repeat(10_000) + "x";
    let names: Vec<Vec<u8>> = vec![
        deep.clone().into_bytes(),
        "n".repeat(256).into_bytes(),
        ["d/".repeat(2048), "x".into()].concat().into_bytes(),
        vec![b'x'; 1 << 20],
    ];
    for name in names {
        let raw = [rfile(&name, b"hi").long()];
        for toc in [
            mirror_toc(&raw),
            vec![toc_entry("x", "file", 0o644, Some(b"hi"), None)],
        ] {
            let v = refused_quickly(RawLayer::new(raw_tar(&raw), toc));
            assert!(v.contains("layer app"), "{}-byte name: {v}", name.len());
        }
    }
}

/// The blob table may leave any 4096-aligned gap between blobs (it must be zero); a sparse
/// file with a 1 GiB gap costs no disk, and checking the gap must not cost 1 GiB of memory.
#[test]
fn huge_padding_between_blobs_is_checked_in_bounded_memory() {
    use bundle_format::container::{encode_table, BlobEntry, Header, Trailer, ALIGN};
    use std::os::unix::fs::FileExt;

    let tar = raw_tar(&[rfile(b"x", b"hi")]);
    let built = RawLayer::new(tar, vec![toc_entry("x", "file", 0o644, Some(b"hi"), None)])
        .built(bundle_format::LayerRole::App);
    let blob = |i: usize| match &built.blobs[i].1 {
        bundle_format::BlobData::Bytes(b) => b.clone(),
        bundle_format::BlobData::File(_) => unreachable!(),
    };
    let (toc, layer) = (blob(0), blob(1));
    let layer_at = (toc.len() as u64).next_multiple_of(ALIGN) + GIB;
    let table = encode_table(&[
        BlobEntry {
            digest: built.blobs[0].0,
            offset: 0,
            len: toc.len() as u64,
        },
        BlobEntry {
            digest: built.blobs[1].0,
            offset: layer_at,
            len: layer.len() as u64,
        },
    ]);
    let m = manifest(vec![built.layer.clone()]).to_bytes().unwrap();
    let h = Header {
        manifest_len: m.len() as u64,
        table_len: table.len() as u64,
        blobs_len: layer_at + layer.len() as u64,
        signatures_len: 0,
    };
    let region = h.blobs_offset().unwrap();
    let meta = [&h.encode()[..], &m, &table].concat();
    let t = Trailer {
        payload_len: h.payload_len().unwrap(),
        meta_digest: Digest::of(&meta),
    };

    let (_root, _, path) = scratch();
    let f = std::fs::File::create(&path).unwrap();
    f.write_all_at(&meta, 0).unwrap();
    f.write_all_at(&toc, region).unwrap();
    f.write_all_at(&layer, region + layer_at).unwrap();
    f.write_all_at(&t.encode(), region + h.blobs_len).unwrap();
    drop(f);
    let b = bundle_format::Bundle::open(&path).unwrap();
    b.verify(None, &mut |_| {}).unwrap();
    let rss = peak_rss();
    assert!(
        rss < RSS_LIMIT,
        "peak RSS {} MiB checking a 1 GiB gap",
        rss >> 20
    );

    // The same with one non-zero byte deep inside the gap.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[1], region + layer_at - 4096).unwrap();
    let b = bundle_format::Bundle::open(&path).unwrap();
    let v = chain(&b.verify(None, &mut |_| {}).unwrap_err());
    let at = region + layer_at - 4096;
    assert_eq!(v, format!("damaged padding: non-zero bytes at offset {at}"));
}

#[test]
fn a_toc_larger_than_its_entry_count_allows_is_refused_unread() {
    // 300,000 entries (about 18 MB of JSON, 300 MB once decoded as a tree) behind a manifest
    // that declares one entry: refused once the TOC outgrows what one entry can need.
    let entry = r#"{"mode":493,"mtime":0,"path":"d","size":0,"type":"dir"},"#;
    let mut json = String::with_capacity(entry.len() * 300_000 + 32);
    json.push_str(r#"{"entries":["#);
    for _ in 0..300_000 {
        json.push_str(entry);
    }
    json.pop();
    json.push_str("]}");
    let mut layer = RawLayer::new(
        raw_tar(&[rdir(b"d")]),
        vec![toc_entry("d", "dir", 0o755, None, None)],
    );
    layer.toc_json = json.into_bytes();
    let v = refused_quickly(layer);
    assert!(
        v.contains("table of contents") && v.contains("size limit"),
        "{v}"
    );
}
