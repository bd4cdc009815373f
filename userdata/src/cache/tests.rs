//! Tests of the cache as a whole: what a seal vouches for (the pair of a layer digest and a
//! TOC digest) and the full check a stamp that vouches for another pair gets.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bundle_format::extract::write_entry;
use bundle_format::{BlobRef, BundlePath, Digest, EntryKind, Layer, LayerRole, Toc, TocEntry};

use super::seal::{self, Broken};
use super::{verify, LayerCache};
use crate::error::DataError;

pub(super) fn entry(path: &str, kind: EntryKind, content: &[u8]) -> TocEntry {
    let file = kind == EntryKind::File;
    TocEntry {
        path: BundlePath::new(path).unwrap(),
        kind,
        mode: if path.ends_with(".sh") || kind == EntryKind::Dir {
            0o755
        } else {
            0o644
        },
        size: if file { content.len() as u64 } else { 0 },
        mtime: 1_700_000_000,
        sha256: file.then(|| Digest::of(content)),
        target: None,
    }
}

/// A TOC of two directories and two files with these contents.
pub(super) fn toc_of(script: &[u8], data: &[u8]) -> (Toc, HashMap<String, Vec<u8>>) {
    let toc = Toc {
        entries: vec![
            entry("usr", EntryKind::Dir, b""),
            entry("usr/bin", EntryKind::Dir, b""),
            entry("usr/bin/run.sh", EntryKind::File, script),
            entry("usr/data", EntryKind::File, data),
        ],
    };
    toc.validate().unwrap();
    let files = [
        ("usr/bin/run.sh".to_owned(), script.to_vec()),
        ("usr/data".to_owned(), data.to_vec()),
    ]
    .into();
    (toc, files)
}

/// The manifest's entry for the layer `digest` whose TOC blob is `toc_blob`.
pub(super) fn layer(digest: Digest, toc_blob: &[u8], toc: &Toc) -> Layer {
    Layer {
        role: LayerRole::App,
        media_type: bundle_format::manifest::LAYER_MEDIA_TYPE.into(),
        digest,
        size: 1,
        diff_id: Digest::of(b"diff"),
        tar_size: 1,
        entries: toc.entries.len() as u64,
        unpacked_size: toc.content_size(),
        toc: BlobRef {
            digest: Digest::of(toc_blob),
            size: toc_blob.len() as u64,
        },
    }
}

/// Writes `toc`'s tree with `files` into `entry/tree` as unpacking does; its newest ctime.
fn write_tree(entry: &Path, toc: &Toc, files: &HashMap<String, Vec<u8>>) -> seal::Ctime {
    let tree = entry.join("tree");
    fs::create_dir_all(&tree).unwrap();
    for e in &toc.entries {
        let mut content = files.get(e.path.as_str()).map_or(&[][..], |c| &c[..]);
        write_entry(&tree, e, &mut content).unwrap();
    }
    fs::set_permissions(&tree, fs::Permissions::from_mode(0o755)).unwrap();
    verify::max_ctime(&tree, toc).unwrap()
}

/// A version 1 stamp (no `toc` line) for the entry as it is now.
fn write_v1_stamp(entry: &Path, digest: &Digest, entries: u64, max: seal::Ctime) {
    let e = fs::metadata(entry).unwrap();
    let t = fs::metadata(entry.join("tree")).unwrap();
    let text = format!(
        "capsa-layer-seal 1\ndigest {digest}\nentries {entries}\nentry {} {}\ntree {} {} {} {}\nmax-ctime {} {}\n",
        e.dev(),
        e.ino(),
        t.dev(),
        t.ino(),
        t.ctime(),
        t.ctime_nsec(),
        max.0,
        max.1
    );
    fs::write(entry.join(seal::STAMP), text).unwrap();
}

fn stamp(entry: &Path) -> String {
    fs::read_to_string(entry.join(seal::STAMP)).unwrap()
}

struct Pair {
    _dir: tempfile::TempDir,
    cache: LayerCache,
    entry: PathBuf,
    /// The TOC the tree was built for (T'), and the layer pairing the digest with it.
    built: (Toc, Layer),
    /// Another TOC (T) with the same paths, kinds, modes and sizes but other contents, and
    /// the layer pairing the same digest with it.
    other: (Toc, Layer),
    other_files: HashMap<String, Vec<u8>>,
}

/// One layer digest, two TOCs that differ only in file contents; the cache entry of the
/// digest holds T''s tree (as a tree built from loose files for T' would).
fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let cache = LayerCache::new(dir.path().join("layers")).unwrap();
    let digest = Digest::of(b"the layer blob both manifests name");
    let (t_built, _) = toc_of(b"#!/bin/sh\necho good\n", b"0123456789");
    let (t_other, other_files) = toc_of(b"#!/bin/sh\necho evil\n", b"9876543210");
    let built = layer(digest, &t_built.to_canonical(), &t_built);
    let other = layer(digest, &t_other.to_canonical(), &t_other);
    assert_ne!(built.toc.digest, other.toc.digest);
    let entry = cache.entry(&built);
    Pair {
        _dir: dir,
        cache,
        entry,
        built: (t_built, built),
        other: (t_other, other),
        other_files,
    }
}

#[test]
fn a_tree_sealed_for_one_toc_is_not_taken_for_another_with_the_same_shape() {
    let p = pair();
    let (_, built_files) = toc_of(b"#!/bin/sh\necho good\n", b"0123456789");
    let max = write_tree(&p.entry, &p.built.0, &built_files);
    let (t, l) = (&p.other.0, &p.other.1);
    seal::write(
        &p.entry,
        p.built.1.digest,
        p.built.1.toc.digest,
        p.built.1.entries,
        max,
    )
    .unwrap();
    assert_eq!(p.cache.sealed(&p.built.1), Ok(()));
    // What the cheap checks see is the same for T: same digest, entry count, kinds, modes and
    // sizes, no newer ctime. Without the TOC in the seal, the start's O(1) check would have
    // taken T''s tree for T (and the ctime check too once the tree's top moved).
    assert!(verify::by_ctime(&p.entry.join("tree"), t, max));
    assert_eq!(p.cache.sealed(l), Err(Broken::Toc));
    let refused = p.cache.check(l, || Ok::<_, DataError>(t));
    assert!(
        matches!(refused, Err(DataError::Damaged { .. })),
        "{refused:?}"
    );
    // Nothing was resealed for T; the entry is still sound for T'.
    assert!(stamp(&p.entry).contains(&format!("toc {}\n", p.built.1.toc.digest)));
    assert_eq!(p.cache.sealed(&p.built.1), Ok(()));

    // The tree's top changed too: another TOC's stamp is still no reference.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(p.entry.join("tree/x"), b"").unwrap();
    fs::remove_file(p.entry.join("tree/x")).unwrap();
    assert!(matches!(
        p.cache.sealed(&p.built.1),
        Err(Broken::Changed { .. })
    ));
    assert_eq!(p.cache.sealed(l), Err(Broken::Toc));
    assert!(p.cache.check(l, || Ok::<_, DataError>(t)).is_err());
}

#[test]
fn a_version_1_stamp_gets_the_full_check_then_a_version_2_seal() {
    // T''s tree under a version 1 stamp of the digest: refused for T (the old cheap check
    // would have passed it: same digest, entry count and shape).
    let p = pair();
    let (_, built_files) = toc_of(b"#!/bin/sh\necho good\n", b"0123456789");
    let max = write_tree(&p.entry, &p.built.0, &built_files);
    let (t, l) = (&p.other.0, &p.other.1);
    write_v1_stamp(&p.entry, &l.digest, l.entries, max);
    assert!(verify::by_ctime(&p.entry.join("tree"), t, max));
    assert_eq!(
        p.cache.sealed(l),
        Err(Broken::Malformed(seal::BadStamp::Version))
    );
    assert!(p.cache.check(l, || Ok::<_, DataError>(t)).is_err());
    assert!(stamp(&p.entry).starts_with("capsa-layer-seal 1\n"));

    // T's own tree under a version 1 stamp: checked in full, then sealed in version 2.
    let p = pair();
    let (t, l) = (&p.other.0, &p.other.1);
    let max = write_tree(&p.entry, t, &p.other_files);
    write_v1_stamp(&p.entry, &l.digest, l.entries, max);
    let tree = p.cache.check(l, || Ok::<_, DataError>(t)).unwrap();
    assert_eq!(tree, p.entry.join("tree"));
    let text = stamp(&p.entry);
    assert!(text.starts_with("capsa-layer-seal 2\n"), "{text}");
    assert!(text.contains(&format!("toc {}\n", l.toc.digest)), "{text}");
    assert_eq!(p.cache.sealed(l), Ok(()));
    assert_eq!(p.cache.sealed(&p.built.1), Err(Broken::Toc));
}
