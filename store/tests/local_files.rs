//! `store::local_files`: every regular file of the sealed layers of the installed apps'
//! current and previous releases, by sha256, pointing at a file with that content; a layer
//! whose seal does not hold is left out; `open_local_file` opens only a regular file, without
//! following a final symlink or blocking on a FIFO.

mod support;

use std::fs;

use bundle_format::{Digest, LayerRole};
use store::{local_files, open_local_file};
use support::*;

const ID: &str = "org.capsa.Local";

#[test]
fn local_files_maps_the_installed_releases_files_by_content() {
    let s = Store::new();
    assert!(local_files(&s.layout).unwrap().is_empty());
    assert!(!s.layout.root.exists(), "reading created no store");

    let blobs = s.path().join("blobs");
    let deps = layer(
        &blobs,
        LayerRole::Deps,
        &["usr", "usr/lib"],
        &[("usr/lib/libx.so", b"shared"), ("usr/lib/empty", b"")],
    );
    let app = |v: &str| {
        let text = format!("#!/bin/sh\necho {v}\n");
        layer(
            &blobs,
            LayerRole::App,
            &["usr", "usr/bin"],
            &[("usr/bin/app", text.as_bytes())],
        )
    };
    let (a1, a2, a3) = (app("1"), app("2"), app("3"));
    for (v, a) in [("1.0", &a1), ("2.0", &a2), ("3.0", &a3)] {
        let b = bundle(&s.path().join(format!("{v}.capsa")), ID, v, &[&deps, a]);
        s.install(&b).unwrap();
    }
    // Current (3.0) and previous (2.0) only: release 1.0 and its layer are gone.
    let map = local_files(&s.layout).unwrap();
    let sha = |c: &[u8]| Digest::of(c);
    let wanted = [
        sha(b"shared"),
        sha(b""),
        sha(b"#!/bin/sh\necho 2\n"),
        sha(b"#!/bin/sh\necho 3\n"),
    ];
    assert_eq!(map.len(), wanted.len(), "{map:?}");
    for d in &wanted {
        let p = &map[d];
        assert!(p.starts_with(s.layout.layers()), "{}", p.display());
        let mut f = open_local_file(p).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut bytes).unwrap();
        assert_eq!(Digest::of(&bytes), *d, "{}", p.display());
    }
    assert!(!map.contains_key(&sha(b"#!/bin/sh\necho 1\n")));
    let a3_path = map[&sha(b"#!/bin/sh\necho 3\n")].clone();
    assert_eq!(
        a3_path,
        s.layout
            .layers()
            .join(a3.layer.digest.hex())
            .join("tree/usr/bin/app")
    );

    // A layer whose seal does not hold is no source.
    let entry = s.layout.layers().join(a2.layer.digest.hex());
    fs::remove_file(entry.join("sealed")).unwrap();
    let map = local_files(&s.layout).unwrap();
    assert!(!map.contains_key(&sha(b"#!/bin/sh\necho 2\n")));
    assert!(map.contains_key(&sha(b"#!/bin/sh\necho 3\n")));
}

#[test]
fn open_local_file_opens_only_a_regular_file() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    fs::write(&file, b"x").unwrap();
    assert!(open_local_file(&file).is_ok());
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    assert!(
        open_local_file(&link).is_err(),
        "a final symlink is not followed"
    );
    let fifo = d.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(
        open_local_file(&fifo).is_err(),
        "a FIFO neither blocks nor opens"
    );
    assert!(open_local_file(d.path()).is_err(), "a directory");
}
