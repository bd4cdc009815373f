//! Helpers shared by the integration tests. This module builds bundles with the crate's own
//! writer (`LayerWriter` + `write_bundle`); `raw` makes hand-made tar streams, zstd frames, TOC
//! JSON and containers with correct digests (so an attack gets past the digest checks and
//! reaches the parsers); `harness` checks that hostile bundles are refused without side effects.
#![allow(dead_code, unused_imports)]

pub mod harness;
pub mod raw;

pub use harness::*;
pub use raw::*;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bundle_format::manifest::LAYER_MEDIA_TYPE;
use bundle_format::{canonical, layer, writer};
use bundle_format::{
    BlobData, BlobRef, BundlePath, Compression, Digest, Layer, LayerRole, LayerWriter, Manifest,
    Permissions, Requires, SecretKey,
};

/// Every entry's mtime in the test bundles.
pub const MTIME: u64 = 1_700_000_000;

/// One entry of a layer built with the crate's writer.
#[derive(Debug, Clone)]
pub enum Ent {
    Dir(String),
    File(String, Vec<u8>, bool),
    Symlink(String, String),
    Hardlink(String, String),
}

pub fn dir(p: &str) -> Ent {
    Ent::Dir(p.into())
}
pub fn file(p: &str, content: &[u8]) -> Ent {
    Ent::File(p.into(), content.to_vec(), false)
}
pub fn exe(p: &str, content: &[u8]) -> Ent {
    Ent::File(p.into(), content.to_vec(), true)
}
pub fn symlink(p: &str, target: &str) -> Ent {
    Ent::Symlink(p.into(), target.into())
}
pub fn hardlink(p: &str, target: &str) -> Ent {
    Ent::Hardlink(p.into(), target.into())
}

fn bp(p: &str) -> BundlePath {
    BundlePath::new(p).unwrap_or_else(|e| panic!("{p:?}: {e}"))
}

/// A layer ready to go into a manifest, with the bytes of its blobs.
pub struct Built {
    pub layer: Layer,
    pub blobs: Vec<(Digest, BlobData)>,
}

pub(crate) fn roles(n: usize) -> Vec<LayerRole> {
    match n {
        1 => vec![LayerRole::App],
        2 => vec![LayerRole::Deps, LayerRole::App],
        _ => (0..n)
            .map(|i| [LayerRole::Libc, LayerRole::Deps, LayerRole::App][i.min(2)])
            .collect(),
    }
}

pub(crate) fn layer_record(
    role: LayerRole,
    blob: &[u8],
    diff_id: Digest,
    tar_size: u64,
    toc_json: &[u8],
    entries: u64,
    unpacked: u64,
) -> Built {
    let toc_blob = layer::compress_meta(toc_json);
    let toc = BlobRef {
        digest: Digest::of(&toc_blob),
        size: toc_blob.len() as u64,
    };
    let layer = Layer {
        role,
        media_type: LAYER_MEDIA_TYPE.into(),
        digest: Digest::of(blob),
        size: blob.len() as u64,
        diff_id,
        tar_size,
        entries,
        unpacked_size: unpacked,
        toc,
    };
    let blobs = vec![
        (toc.digest, BlobData::Bytes(toc_blob)),
        (layer.digest, BlobData::Bytes(blob.to_vec())),
    ];
    Built { layer, blobs }
}

/// Builds one layer with `LayerWriter`.
pub fn build_layer(role: LayerRole, entries: &[Ent], threads: u32) -> Built {
    let out = tempfile::tempfile().unwrap();
    let mut w = LayerWriter::new(out, Compression { level: 3, threads }, MTIME).unwrap();
    for e in entries {
        match e {
            Ent::Dir(p) => w.add_dir(&bp(p)).unwrap(),
            Ent::File(p, c, x) => w.add_file(&bp(p), *x, c.len() as u64, &c[..]).unwrap(),
            Ent::Symlink(p, t) => w.add_symlink(&bp(p), t).unwrap(),
            Ent::Hardlink(p, t) => w.add_hardlink(&bp(p), &bp(t)).unwrap(),
        }
    }
    let (mut f, stats, toc) = w.finish().unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut blob = Vec::new();
    f.read_to_end(&mut blob).unwrap();
    assert_eq!(blob.len() as u64, stats.size);
    let toc_json = canonical::to_vec(&toc).unwrap();
    let n = toc.entries.len() as u64;
    layer_record(
        role,
        &blob,
        stats.diff_id,
        stats.tar_size,
        &toc_json,
        n,
        toc.content_size(),
    )
}

/// A valid manifest around `layers`.
pub fn manifest(layers: Vec<Layer>) -> Manifest {
    Manifest {
        schema: bundle_format::manifest::SCHEMA,
        id: "org.example.Test".into(),
        name: "Test".into(),
        version: "1.0".into(),
        arch: "x86_64".into(),
        created: MTIME,
        command: vec!["/usr/bin/hello".into()],
        env: BTreeMap::new(),
        workdir: None,
        permissions: Permissions::default(),
        desktop: None,
        requires: Requires::default(),
        layers,
        report: None,
        generator: "capsa tests".into(),
    }
}

/// Writes a bundle of `built` layers, signed by `keys`; returns its manifest.
pub fn write_built(out: &Path, built: Vec<Built>, keys: &[SecretKey]) -> Manifest {
    let blobs: Vec<_> = built.iter().flat_map(|b| b.blobs.clone()).collect();
    let m = manifest(built.into_iter().map(|b| b.layer).collect());
    let sigs = writer::sign_all(&m, keys).unwrap();
    bundle_format::write_bundle(out, &m, &blobs, &sigs).unwrap();
    m
}

/// Builds a bundle of one layer per entry list with `LayerWriter` and writes it to `out`.
pub fn write(out: &Path, layers: &[Vec<Ent>], keys: &[SecretKey], threads: u32) -> Manifest {
    let built = roles(layers.len())
        .into_iter()
        .zip(layers)
        .map(|(r, es)| build_layer(r, es, threads))
        .collect();
    write_built(out, built, keys)
}

/// A small tree with every entry kind, used by several tests.
pub fn sample_tree() -> Vec<Vec<Ent>> {
    vec![
        vec![
            dir("usr"),
            dir("usr/lib"),
            symlink("usr/lib/libx.so", "libx.so.1"),
            file("usr/lib/libx.so.1", b"\x7fELF not really"),
        ],
        vec![
            dir("usr"),
            dir("usr/bin"),
            exe("usr/bin/hello", b"#!/bin/sh\necho hello\n"),
            hardlink("usr/bin/hello-again", "usr/bin/hello"),
            symlink("usr/bin/hi", "/usr/bin/hello"),
            dir("usr/share"),
            file("usr/share/empty", b""),
            file("usr/share/readme", &b"read me\n".repeat(300)),
        ],
    ]
}

/// The error and its sources, joined with ": ".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Every path below `dir` (relative, sorted), without following symlinks.
pub fn listing(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if p.symlink_metadata().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

pub fn read(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    File::open(p).unwrap().read_to_end(&mut v).unwrap();
    v
}

/// Peak resident memory of this process so far, in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}
