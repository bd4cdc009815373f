//! End to end, hostile numbers (issue 7): a bundle whose table of contents gives a file the
//! mtime 2^64-1, with every digest correct, used to make `capsa extract`, `run` and `install`
//! panic ("overflow when adding duration to instant"). Every command must now refuse it with a
//! message naming the entry, the field and the bound, exit 1, and never panic. Also: `capsa
//! inspect` shows the bundle's total unpacked size.

mod common;

use std::path::Path;
use std::process::Output;

use bundle_format::manifest::{LAYER_MEDIA_TYPE, SCHEMA};
use bundle_format::{
    layer, BlobData, BlobRef, BundlePath, Digest, EntryKind, Layer, LayerRole, Manifest, Toc,
    TocEntry,
};
use common::*;

/// An octal tar header field of `width` bytes, NUL-terminated.
fn octal(field: &mut [u8], n: u64) {
    let width = field.len() - 1;
    field[..width].copy_from_slice(format!("{n:0width$o}").as_bytes());
    field[width] = 0;
}

/// A GNU tar header for a regular file, written by hand (the crate's writer refuses such an
/// mtime); the mtime uses GNU's base-256 form, which holds any `u64`.
fn tar_header(name: &str, size: u64, mtime: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    h[136] = 0x80;
    h[140..148].copy_from_slice(&mtime.to_be_bytes());
    h[156] = b'0';
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

/// Writes a one-layer bundle of regular files (`name`, `content`, `mtime`), with a truthful TOC
/// and correct digests throughout, however hostile the mtimes.
fn write_files(out: &Path, files: &[(&str, &[u8], u64)]) {
    let mut tar = Vec::new();
    let mut entries = Vec::new();
    for &(name, content, mtime) in files {
        tar.extend_from_slice(&tar_header(name, content.len() as u64, mtime));
        tar.extend_from_slice(content);
        tar.resize(tar.len().next_multiple_of(512), 0);
        entries.push(TocEntry {
            mode: 0o644,
            mtime,
            path: BundlePath::new(name).unwrap(),
            sha256: Some(Digest::of(content)),
            size: content.len() as u64,
            target: None,
            kind: EntryKind::File,
        });
    }
    tar.extend_from_slice(&[0; 1024]);
    let toc = Toc { entries };
    let blob = layer::compress_meta(&tar);
    let toc_blob = layer::compress_meta(&toc.to_canonical());
    let toc_ref = BlobRef {
        digest: Digest::of(&toc_blob),
        size: toc_blob.len() as u64,
    };
    let m = Manifest {
        schema: SCHEMA,
        id: "org.capsa.HostileNumbers".into(),
        name: "Hostile numbers".into(),
        version: "1.0".into(),
        arch: std::env::consts::ARCH.into(),
        created: 1_700_000_000,
        command: vec![format!("/{}", files[0].0)],
        env: Default::default(),
        workdir: None,
        permissions: Default::default(),
        desktop: None,
        requires: Default::default(),
        layers: vec![Layer {
            role: LayerRole::App,
            media_type: LAYER_MEDIA_TYPE.into(),
            digest: Digest::of(&blob),
            size: blob.len() as u64,
            diff_id: Digest::of(&tar),
            tar_size: tar.len() as u64,
            entries: toc.entries.len() as u64,
            unpacked_size: toc.content_size(),
            toc: toc_ref,
        }],
        report: None,
        generator: "capsa tests".into(),
    };
    let blobs = [
        (toc_ref.digest, BlobData::Bytes(toc_blob)),
        (m.layers[0].digest, BlobData::Bytes(blob)),
    ];
    bundle_format::write_bundle(out, &m, &blobs, &[]).unwrap();
}

/// Asserts that `capsa` refused the bundle with exit status `code`, said why, and did not panic.
fn refused(what: &str, o: &Output, code: i32) {
    let out = text(o);
    assert!(!out.contains("panicked"), "capsa {what} panicked: {out}");
    assert_eq!(o.status.code(), Some(code), "capsa {what}: {out}");
    let want = format!(
        "entry /x: mtime {} is after the year 9999 (at most 253402300799)",
        u64::MAX
    );
    assert!(
        out.contains(&want),
        "capsa {what}: {out:?} should say {want:?}"
    );
}

#[test]
fn an_mtime_of_u64_max_is_refused_by_every_command_without_a_panic() {
    let dir = shared_tmp().join("hostile-numbers-mtime");
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("mtime.capsa");
    write_files(&bundle, &[("x", b"#!/bin/sh\n", u64::MAX)]);
    let b = bundle.to_str().unwrap();

    refused("verify", &run(&["verify", b]), 1);
    let dest = dir.join("out");
    refused("extract", &run(&["extract", b, dest.to_str().unwrap()]), 1);
    assert!(dest.symlink_metadata().is_err(), "extract left {dest:?}");
    refused("inspect --files", &run(&["inspect", "--files", b]), 1);
    let isolated = Isolated::new();
    // `capsa run` reports its own failures with 125, as podman and env do.
    refused("run", &isolated.run(&["run", b]), 125);
    let store = StoreEnv::new();
    refused("install", &store.run(&["install", "--yes", b]), 1);
    assert!(
        !store.app_dir("org.capsa.HostileNumbers").exists(),
        "install left the app in the store"
    );
}

#[test]
fn inspect_shows_the_total_unpacked_size() {
    let dir = shared_tmp().join("hostile-numbers-inspect");
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("sizes.capsa");
    let t = 1_700_000_000;
    write_files(&bundle, &[("a", &[b'a'; 1500], t), ("b", b"hello", t)]);
    let v = inspect_json(&bundle);
    assert_eq!(v["unpacked_size"], 1505, "{v:#}");
    let out = ok(&["inspect", bundle.to_str().unwrap()]);
    assert!(out.contains("\n  unpacked     1.5 kB\n"), "{out}");
}
