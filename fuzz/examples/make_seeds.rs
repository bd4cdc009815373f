//! Writes seed corpora for the fuzz targets, built with the integration tests' helpers:
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds -- fuzz/corpus`
//! (the corpus directory is not committed). `bundle_parts` seeds are the `bundle_open` bundles
//! taken apart, under each flag, plus hand-made hostile layers and numbers.

#[path = "../../bundle-format/tests/common/mod.rs"]
mod common;
#[path = "../fuzz_targets/parts.rs"]
mod parts;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use bundle_format::{BlobRef, Bundle};
use common::*;
use parts::{LayerParts, Parts, KEEP_NUMBERS, MIRROR_TOC, RAW_TOC};

/// A bundle file taken apart: its manifest bytes and each layer's TOC JSON and tar stream.
fn take_apart(path: &Path) -> Parts {
    let b = Bundle::open(path).unwrap();
    let layers = b
        .manifest()
        .layers
        .iter()
        .map(|l| {
            let toc = b.checked_blob(&l.toc, "toc").unwrap();
            let toc = bundle_format::layer::decompress_meta(toc, "toc", u64::MAX).unwrap();
            let blob = BlobRef {
                digest: l.digest,
                size: l.size,
            };
            let mut tar = Vec::new();
            zstd::stream::read::Decoder::new(b.checked_blob(&blob, "layer").unwrap())
                .unwrap()
                .read_to_end(&mut tar)
                .unwrap();
            LayerParts { toc, tar }
        })
        .collect();
    Parts {
        flags: 0,
        manifest: b.manifest_bytes().to_vec(),
        layers,
    }
}

/// Writes `parts` under each flag combination that makes sense for a seed.
fn write_parts(dir: &Path, name: &str, parts: &Parts) {
    for flags in [0, MIRROR_TOC, KEEP_NUMBERS, RAW_TOC] {
        let p = Parts {
            flags,
            ..parts.clone()
        };
        fs::write(dir.join(format!("{name}-{flags}")), p.encode()).unwrap();
    }
}

/// A `layer_read` input: flags, declared tar size, TOC JSON, body.
fn layer_input(flags: u8, tar_size: u32, toc: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = vec![flags];
    v.extend_from_slice(&tar_size.to_le_bytes());
    v.extend_from_slice(&(toc.len() as u16).to_le_bytes());
    v.extend_from_slice(toc);
    v.extend_from_slice(body);
    v
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let open = out.join("bundle_open");
    let layer = out.join("layer_read");
    let parts_dir = out.join("bundle_parts");
    fs::create_dir_all(&open).unwrap();
    fs::create_dir_all(&layer).unwrap();
    fs::create_dir_all(&parts_dir).unwrap();

    let key = bundle_format::SecretKey::generate().unwrap();
    write(&open.join("sample.capsa"), &sample_tree(), &[], 1);
    write(&open.join("signed.capsa"), &sample_tree(), &[key], 1);
    write(&open.join("tiny.capsa"), &[vec![file("x", b"hi")]], &[], 1);
    let honest = vec![
        rdir(b"a/"),
        rsym(b"a/s", b"x"),
        rfile(b"a/x", b"hi"),
        rfile(&[b"a/".to_vec(), b"y".repeat(120)].concat(), b"long"),
        rlink(b"a/z", b"a/x"),
    ];
    let raw = RawLayer::new(raw_tar(&honest), mirror_toc(&honest));
    write_raw(&open.join("raw.capsa"), &[raw]);
    for name in ["sample", "signed", "tiny", "raw"] {
        let parts = take_apart(&open.join(format!("{name}.capsa")));
        write_parts(&parts_dir, name, &parts);
    }
    // A template manifest for the hand-made layers below (its layer fields are fixed up).
    let template = take_apart(&open.join("tiny.capsa")).manifest;

    let layers: Vec<(&str, Vec<Raw>)> = vec![
        ("honest", honest.clone()),
        ("file", vec![rfile(b"x", b"hi")]),
        ("climb", vec![rfile(b"../evil", b"pwned")]),
        (
            "through-symlink",
            vec![rsym(b"a", b"/etc"), rfile(b"a/passwd", b"x")],
        ),
        (
            "hardlink-out",
            vec![rfile(b"a", b"1"), rlink(b"h", b"../../x")],
        ),
        ("pax", vec![rfile(b"x", b"hi").pax("path", b"../evil")]),
        (
            "device",
            vec![Raw::new(tar::EntryType::Char, b"dev", 0o644)],
        ),
        ("long-name", vec![rfile(&b"n".repeat(300), b"hi")]),
    ];
    let numbers: Vec<(&str, Vec<Raw>)> = vec![
        ("mtime-max", vec![rfile(b"x", b"hi").mtime(u64::MAX)]),
        (
            "mtime-9999",
            vec![rfile(b"x", b"hi").mtime(253_402_300_799)],
        ),
        (
            "dirs",
            vec![rdir(b"a/"), rdir(b"a/b/"), rfile(b"a/b/c", b"hi")],
        ),
    ];
    for (name, entries) in layers.iter().chain(&numbers) {
        let tar = raw_tar(entries);
        let toc = RawLayer::new(tar.clone(), mirror_toc(entries)).toc_json;
        let parts = Parts {
            flags: 0,
            manifest: template.clone(),
            layers: vec![LayerParts { toc, tar }],
        };
        write_parts(&parts_dir, name, &parts);
    }
    for (name, entries) in layers {
        let tar = raw_tar(&entries);
        let toc = RawLayer::new(tar.clone(), mirror_toc(&entries)).toc_json;
        let blob = zstd::bulk::compress(&tar, 3).unwrap();
        let n = tar.len() as u32;
        fs::write(
            layer.join(format!("{name}-tar")),
            layer_input(1, n, &toc, &tar),
        )
        .unwrap();
        fs::write(
            layer.join(format!("{name}-extract")),
            layer_input(3, n, &toc, &tar),
        )
        .unwrap();
        fs::write(
            layer.join(format!("{name}-blob")),
            layer_input(0, n, &toc, &blob),
        )
        .unwrap();
    }
    println!("seeds written to {}", out.display());
}
