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

/// A source over `files` that counts its calls.
fn source_of<'f>(
    files: &'f HashMap<String, Vec<u8>>,
    calls: &'f mut usize,
) -> impl FnMut(&TocEntry) -> Result<Box<dyn std::io::Read + 'static>, DataError> + 'f {
    move |e| {
        *calls += 1;
        let bytes = files.get(e.path.as_str()).cloned().unwrap_or_default();
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }
}

/// Every name in the cache directory (entries, staging and trash).
fn names(cache: &LayerCache) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(cache.dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn one_layer() -> (
    tempfile::TempDir,
    LayerCache,
    Toc,
    Layer,
    HashMap<String, Vec<u8>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let cache = LayerCache::new(dir.path().join("layers")).unwrap();
    let (toc, files) = toc_of(b"#!/bin/sh\necho built\n", b"0123456789");
    let l = layer(Digest::of(b"blob"), &toc.to_canonical(), &toc);
    (dir, cache, toc, l, files)
}

#[test]
fn a_tree_built_from_sound_sources_is_sealed_and_then_a_hit() {
    let (_d, cache, toc, l, files) = one_layer();
    let mut calls = 0;
    let (tree, outcome) = cache
        .build(&l, &toc, &mut source_of(&files, &mut calls))
        .unwrap();
    assert_eq!(outcome, super::CacheOutcome::Unpacked);
    assert_eq!(calls, 2, "one call per regular file");
    assert_eq!(tree, cache.entry(&l).join("tree"));
    assert_eq!(cache.sealed(&l), Ok(()));
    assert!(verify::by_content(&tree, &toc).is_some());
    assert!(cache.disk_usage(&l).is_some());
    assert_eq!(names(&cache), [l.digest.hex()], "no staging left");
    // Sealed: nothing is asked for.
    let mut calls = 0;
    let again = cache.build(&l, &toc, &mut source_of(&files, &mut calls));
    assert_eq!(again.unwrap().1, super::CacheOutcome::Hit);
    assert_eq!(calls, 0);
    // A lost stamp over the intact tree: checked in full, sealed again, still nothing asked.
    fs::remove_file(cache.entry(&l).join(seal::STAMP)).unwrap();
    let again = cache.build(&l, &toc, &mut source_of(&files, &mut calls));
    assert_eq!(again.unwrap().1, super::CacheOutcome::Hit);
    assert_eq!((calls, cache.sealed(&l)), (0, Ok(())));
    // A damaged tree under a lost stamp: replaced.
    fs::remove_file(cache.entry(&l).join(seal::STAMP)).unwrap();
    fs::write(tree.join("usr/data"), b"9876543210").unwrap();
    let again = cache.build(&l, &toc, &mut source_of(&files, &mut calls));
    assert_eq!(again.unwrap().1, super::CacheOutcome::Repaired);
    assert_eq!(fs::read(tree.join("usr/data")).unwrap(), b"0123456789");
    assert_eq!(cache.sealed(&l), Ok(()));
}

#[test]
fn a_source_that_is_not_the_tocs_file_is_refused_and_leaves_nothing() {
    let cases: &[(&str, &[u8], u64)] = &[
        ("one byte changed", b"0123456780", 10),
        ("one byte short", b"012345678", 9),
        ("one byte more", b"01234567890", 11),
        ("far more", &[b'x'; 100_000], 11),
        ("empty", b"", 0),
    ];
    for (what, bytes, got) in cases {
        let (_d, cache, toc, l, mut files) = one_layer();
        files.insert("usr/data".into(), bytes.to_vec());
        let mut calls = 0;
        let r = cache.build(&l, &toc, &mut source_of(&files, &mut calls));
        match r {
            Err(DataError::Content(m)) => {
                assert_eq!(m.path, "/usr/data", "{what}");
                assert_eq!((m.expected_size, m.actual_size), (10, *got), "{what}");
                assert_ne!(m.actual, m.expected, "{what}");
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(names(&cache).is_empty(), "{what}: {:?}", names(&cache));
        assert!(cache.sealed(&l).is_err());
    }
}

#[test]
fn a_failing_source_or_a_foreign_toc_leaves_nothing() {
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no byte"))
        }
    }
    let (_d, cache, toc, l, _) = one_layer();
    let r = cache.build(&l, &toc, &mut |_| Ok(Box::new(Failing)));
    match r {
        Err(DataError::Source { path, source, .. }) => {
            assert_eq!(path, "/usr/bin/run.sh");
            assert_eq!(source.kind(), std::io::ErrorKind::TimedOut);
        }
        other => panic!("{other:?}"),
    }
    assert!(names(&cache).is_empty(), "{:?}", names(&cache));
    // The caller's own error comes back as it was.
    let r = cache.build(&l, &toc, &mut |e| {
        Err(DataError::NotAnEntry {
            path: e.path.to_absolute(),
        })
    });
    assert!(matches!(r, Err(DataError::NotAnEntry { .. })), "{r:?}");
    assert!(names(&cache).is_empty());
    // A TOC whose entry count or size is not the manifest's is refused before anything.
    let (other, files) = toc_of(b"#!/bin/sh\n", b"0123456789");
    let mut calls = 0;
    let r = cache.build(&l, &other, &mut source_of(&files, &mut calls));
    assert!(matches!(r, Err(DataError::NotTheToc { .. })), "{r:?}");
    assert_eq!(calls, 0);
    let mut invalid = toc.clone();
    invalid.entries.swap(0, 1);
    let r = cache.build(&l, &invalid, &mut source_of(&files, &mut calls));
    assert!(matches!(r, Err(DataError::NotTheToc { .. })), "{r:?}");
    assert!(names(&cache).is_empty());
}

#[test]
fn a_tree_built_for_another_toc_of_the_same_digest_is_replaced() {
    // The entry holds T''s tree; a build for the manifest pairing the digest with T checks it
    // in full (its stamp is another TOC's), finds other contents and builds T's tree.
    let p = pair();
    let (_, built_files) = toc_of(b"#!/bin/sh\necho good\n", b"0123456789");
    let mut calls = 0;
    let (_, first) = p
        .cache
        .build(
            &p.built.1,
            &p.built.0,
            &mut source_of(&built_files, &mut calls),
        )
        .unwrap();
    assert_eq!(first, super::CacheOutcome::Unpacked);
    let (tree, second) = p
        .cache
        .build(
            &p.other.1,
            &p.other.0,
            &mut source_of(&p.other_files, &mut calls),
        )
        .unwrap();
    assert_eq!(second, super::CacheOutcome::Repaired);
    assert_eq!(fs::read(tree.join("usr/data")).unwrap(), b"9876543210");
    assert_eq!(p.cache.sealed(&p.other.1), Ok(()));
    assert_eq!(p.cache.sealed(&p.built.1), Err(Broken::Toc));
}
