//! Round trips through the public API: bundles built with `LayerWriter` + `write_bundle` open,
//! verify and extract to the same tree (contents, 0644/0755 modes, symlinks, hardlinks, long
//! names); signatures are trusted only for the right key; output is reproducible byte for byte,
//! whatever the number of compression threads.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use bundle_format::{extract, Bundle, LayerRole, SecretKey, SignatureState};
use common::*;

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn extracts_the_tree_it_was_given() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.capsa");
    let m = write(&path, &sample_tree(), &[], 1);
    let b = Bundle::open(&path).unwrap();
    assert_eq!(b.manifest(), &m);
    assert_eq!(b.stub_len(), 0);
    let mut seen = Vec::new();
    assert_eq!(
        b.verify(None, &mut |n| seen.push(n)).unwrap(),
        SignatureState::Unsigned
    );
    let total: u64 = m.layers.iter().map(|l| l.size).sum();
    assert_eq!(seen.last(), Some(&total));
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    let dest = tmp.path().join("out");
    let stats = extract(&b, &dest, &mut |_| {}).unwrap();
    // 4 entries in the first layer, 8 in the second.
    assert_eq!(stats.entries, 12);
    assert_eq!(stats.bytes, 15 + 21 + 2400);
    let want: Vec<&str> = vec![
        "usr",
        "usr/bin",
        "usr/bin/hello",
        "usr/bin/hello-again",
        "usr/bin/hi",
        "usr/lib",
        "usr/lib/libx.so",
        "usr/lib/libx.so.1",
        "usr/share",
        "usr/share/empty",
        "usr/share/readme",
    ];
    assert_eq!(
        listing(&dest),
        want.iter()
            .map(Into::into)
            .collect::<Vec<std::path::PathBuf>>()
    );
    // Nothing else was left beside the destination (no staging directory).
    assert_eq!(
        listing(tmp.path())
            .iter()
            .filter(|p| p.components().count() == 1)
            .count(),
        2
    );

    assert_eq!(
        read(&dest.join("usr/bin/hello")),
        b"#!/bin/sh\necho hello\n"
    );
    assert_eq!(read(&dest.join("usr/lib/libx.so.1")), b"\x7fELF not really");
    assert_eq!(
        read(&dest.join("usr/share/readme")),
        b"read me\n".repeat(300)
    );
    assert_eq!(read(&dest.join("usr/share/empty")), b"");
    assert_eq!(mode(&dest), 0o755);
    for d in ["usr", "usr/bin", "usr/lib", "usr/share"] {
        assert_eq!(mode(&dest.join(d)), 0o755, "{d}");
    }
    assert_eq!(mode(&dest.join("usr/bin/hello")), 0o755);
    for f in ["usr/lib/libx.so.1", "usr/share/empty", "usr/share/readme"] {
        assert_eq!(mode(&dest.join(f)), 0o644, "{f}");
    }
    assert_eq!(
        fs::read_link(dest.join("usr/lib/libx.so")).unwrap(),
        Path::new("libx.so.1")
    );
    assert_eq!(
        fs::read_link(dest.join("usr/bin/hi")).unwrap(),
        Path::new("/usr/bin/hello")
    );
    let a = fs::metadata(dest.join("usr/bin/hello")).unwrap();
    let h = fs::symlink_metadata(dest.join("usr/bin/hello-again")).unwrap();
    assert_eq!(
        (a.dev(), a.ino()),
        (h.dev(), h.ino()),
        "hardlink is not the same inode"
    );
    assert_eq!(a.nlink(), 2);
    // Regular files get the mtime recorded in the TOC back.
    assert_eq!(a.mtime() as u64, MTIME);
    assert_eq!(
        fs::metadata(dest.join("usr/share/readme")).unwrap().mtime() as u64,
        MTIME
    );
}

#[test]
fn extract_wants_a_missing_or_empty_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.capsa");
    write(&path, &sample_tree(), &[], 1);
    let b = Bundle::open(&path).unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    extract(&b, &empty, &mut |_| {}).unwrap();
    assert!(empty.join("usr/bin/hello").is_file());
    let full = tmp.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("keep"), b"mine").unwrap();
    assert!(extract(&b, &full, &mut |_| {}).is_err());
    assert_eq!(listing(&full), vec![Path::new("keep").to_path_buf()]);
    assert!(
        extract(&b, &path, &mut |_| {}).is_err(),
        "extracted over a file"
    );
}

#[test]
fn signatures_are_trusted_only_for_the_signing_key() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SecretKey::generate().unwrap();
    let other = SecretKey::generate().unwrap();
    let signed = tmp.path().join("signed.capsa");
    write(&signed, &sample_tree(), std::slice::from_ref(&key), 1);
    let b = Bundle::open(&signed).unwrap();
    let id = key.public().key_id();
    assert_eq!(b.signatures().len(), 1);
    assert_eq!(
        b.verify(Some(&key.public()), &mut |_| {}).unwrap(),
        SignatureState::Trusted { key_id: id.clone() }
    );
    assert_eq!(
        b.verify(None, &mut |_| {}).unwrap(),
        SignatureState::Untrusted {
            key_ids: vec![id.clone()]
        }
    );
    let e = b.verify(Some(&other.public()), &mut |_| {}).unwrap_err();
    assert!(
        chain(&e).contains("not signed by the trusted key"),
        "{}",
        chain(&e)
    );

    let unsigned = tmp.path().join("unsigned.capsa");
    write(&unsigned, &sample_tree(), &[], 1);
    let b = Bundle::open(&unsigned).unwrap();
    assert!(
        b.verify(Some(&key.public()), &mut |_| {}).is_err(),
        "unsigned bundle trusted"
    );
    assert_eq!(b.check_signatures(None).unwrap(), SignatureState::Unsigned);

    // Two signers: either key is trusted.
    let (kp, op) = (key.public(), other.public());
    let both = tmp.path().join("both.capsa");
    write(&both, &sample_tree(), &[other, key], 1);
    let b = Bundle::open(&both).unwrap();
    assert_eq!(
        b.verify(Some(&kp), &mut |_| {}).unwrap(),
        SignatureState::Trusted { key_id: id }
    );
    assert_eq!(
        b.verify(Some(&op), &mut |_| {}).unwrap(),
        SignatureState::Trusted {
            key_id: op.key_id()
        }
    );
}

#[test]
fn signature_from_another_manifest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SecretKey::generate().unwrap();
    let a = write(&tmp.path().join("a.capsa"), &sample_tree(), &[], 1);
    let mut other = a.clone();
    other.version = "2.0".into();
    let sigs = bundle_format::writer::sign_all(&other, std::slice::from_ref(&key)).unwrap();
    let built = sample_tree()
        .iter()
        .zip([LayerRole::Deps, LayerRole::App])
        .map(|(es, r)| build_layer(r, es, 1))
        .collect::<Vec<_>>();
    let blobs: Vec<_> = built.iter().flat_map(|b| b.blobs.clone()).collect();
    let path = tmp.path().join("replayed.capsa");
    bundle_format::write_bundle(&path, &a, &blobs, &sigs).unwrap();
    let b = Bundle::open(&path).unwrap();
    let e = b.verify(None, &mut |_| {}).unwrap_err();
    assert!(chain(&e).contains("does not verify"), "{}", chain(&e));
    assert!(b.verify(Some(&key.public()), &mut |_| {}).is_err());
}

#[test]
fn output_is_reproducible_across_runs_and_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tree = sample_tree();
    // Enough incompressible-ish data for zstd's multithreaded mode to cut several jobs.
    let mut x = 0x9e3779b97f4a7c15u64;
    let big: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 16) as u8 + b'a'
        })
        .collect();
    tree[1].push(file("usr/share/zbig", &big));
    let key = SecretKey::generate().unwrap();
    let paths = [("one", 1), ("again", 1), ("two", 2)].map(|(n, t)| {
        let p = tmp.path().join(format!("{n}.capsa"));
        write(&p, &tree, std::slice::from_ref(&key), t);
        p
    });
    let bytes = paths.each_ref().map(|p| read(p));
    assert!(bytes[0] == bytes[1], "two runs differ");
    assert!(bytes[0] == bytes[2], "1 and 2 threads differ");
    Bundle::open(&paths[2])
        .unwrap()
        .verify(Some(&key.public()), &mut |_| {})
        .unwrap();
}

/// A path of exactly `len` bytes, with its parent directories.
fn long_path(len: usize, tag: char) -> (Vec<Ent>, String) {
    let mut parts = Vec::new();
    let mut left = len;
    while left > 201 {
        parts.push(tag.to_string().repeat(199));
        left -= 200;
    }
    parts.push("f".repeat(left));
    let mut dirs = Vec::new();
    for i in 1..parts.len() {
        dirs.push(dir(&parts[..i].join("/")));
    }
    let p = parts.join("/");
    assert_eq!(p.len(), len);
    (dirs, p)
}

#[test]
fn long_names_and_link_targets_survive() {
    // Lengths around the 100-byte header field and the 512-byte tar block. (A path near
    // MAX_PATH_LEN is valid but cannot be created below a staging directory: ENAMETOOLONG.)
    let lens = [99, 100, 101, 511, 512, 513, 1024, 2048, 3584];
    let tags = ['a', 'b', 'c', 'd', 'e', 'g', 'h', 'i', 'j'];
    let mut entries = Vec::new();
    let mut expect = Vec::new();
    for (len, tag) in lens.into_iter().zip(tags) {
        let (dirs, p) = long_path(len, tag);
        entries.extend(dirs);
        entries.push(file(&p, p.as_bytes()));
        expect.push(p);
    }
    let target = format!("/{}", "t".repeat(511));
    entries.push(symlink("zlink", &target));
    entries.push(hardlink("zzhard", &expect[4]));
    entries.sort_by(|a, b| name(a).cmp(name(b)));

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("long.capsa");
    write(&path, &[entries], &[], 1);
    let b = Bundle::open(&path).unwrap();
    b.verify(None, &mut |_| {}).unwrap();
    let dest = tmp.path().join("out");
    extract(&b, &dest, &mut |_| {}).unwrap();
    for p in &expect {
        assert_eq!(read(&dest.join(p)), p.as_bytes(), "{}", p.len());
    }
    assert_eq!(
        fs::read_link(dest.join("zlink")).unwrap().as_os_str().len(),
        512
    );
    assert_eq!(read(&dest.join("zzhard")), expect[4].as_bytes());
}

fn name(e: &Ent) -> &str {
    match e {
        Ent::Dir(p) | Ent::File(p, ..) | Ent::Symlink(p, _) | Ent::Hardlink(p, _) => p,
    }
}

#[test]
fn a_launcher_stub_in_front_is_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.capsa");
    write(&path, &sample_tree(), &[], 1);
    let mut with_stub = b"#!/bin/sh\nexec capsa run \"$0\"\n".to_vec();
    with_stub.extend(read(&path));
    let stubbed = tmp.path().join("stubbed");
    fs::write(&stubbed, &with_stub).unwrap();
    let b = Bundle::open(&stubbed).unwrap();
    assert_eq!(b.stub_len(), 30);
    b.verify(None, &mut |_| {}).unwrap();
    extract(&b, &tmp.path().join("out"), &mut |_| {}).unwrap();
}

#[test]
fn the_writer_refuses_unsorted_or_dangling_entries() {
    let bad: Vec<Vec<Ent>> = vec![
        vec![file("b", b"1"), file("a", b"2")],
        vec![file("a/b", b"1")],
        vec![hardlink("h", "nothing")],
        vec![symlink("s", "../../etc")],
    ];
    for entries in bad {
        let mut w = bundle_format::LayerWriter::new(
            tempfile::tempfile().unwrap(),
            bundle_format::Compression {
                level: 3,
                threads: 1,
            },
            MTIME,
        )
        .unwrap();
        for e in &entries {
            let _ = match e {
                Ent::Dir(p) => w.add_dir(&bundle_format::BundlePath::new(p).unwrap()),
                Ent::File(p, c, x) => w.add_file(
                    &bundle_format::BundlePath::new(p).unwrap(),
                    *x,
                    c.len() as u64,
                    &c[..],
                ),
                Ent::Symlink(p, t) => w.add_symlink(&bundle_format::BundlePath::new(p).unwrap(), t),
                Ent::Hardlink(p, t) => w.add_hardlink(
                    &bundle_format::BundlePath::new(p).unwrap(),
                    &bundle_format::BundlePath::new(t).unwrap(),
                ),
            };
        }
        assert!(w.finish().is_err(), "{entries:?} accepted");
    }
}
