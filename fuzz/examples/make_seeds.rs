//! Writes seed corpora for the fuzz targets, built with the integration tests' helpers:
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds -- fuzz/corpus`
//! (the corpus directory is not committed).

#[path = "../../bundle-format/tests/common/mod.rs"]
mod common;

use std::fs;
use std::path::PathBuf;

use common::*;

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
    fs::create_dir_all(&open).unwrap();
    fs::create_dir_all(&layer).unwrap();

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
