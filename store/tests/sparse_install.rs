//! Installing a bundle file with holes where some layer blobs would be (what a repository
//! update assembles): a layer whose tree the store has sealed, for the manifest's layer digest
//! and TOC digest, is not read from the bundle; any other layer's blob is checked by its
//! digest before anything changes, so a hole there is refused as a digest mismatch. A layer
//! built in the store from loose files (`LayerCache::build`) counts as one the store has.

mod support;

use std::fs;

use bundle_format::{Bundle, LayerRole};
use store::StoreError;
use support::*;
use userdata::cache::{seal, verify, LayerCache};

const ID: &str = "org.capsa.Sparse";

/// A libraries layer shared by every release, and one app layer per release.
struct Releases {
    deps: Built,
    apps: Vec<Built>,
}

fn releases(dir: &std::path::Path) -> Releases {
    let deps = layer(
        &dir.join("blobs"),
        LayerRole::Deps,
        &["usr", "usr/lib"],
        &[
            ("usr/lib/libshared.so", &[7u8; 50_000][..]),
            ("usr/lib/README", b"shared by every release\n"),
        ],
    );
    let apps = (1..=3)
        .map(|v| {
            let content = format!("#!/bin/sh\necho release {v}\n");
            layer(
                &dir.join("blobs"),
                LayerRole::App,
                &["usr", "usr/bin"],
                &[("usr/bin/app", content.as_bytes())],
            )
        })
        .collect();
    Releases { deps, apps }
}

fn is_digest_mismatch(r: &Result<store::Installed, StoreError>) -> bool {
    matches!(
        r,
        Err(StoreError::Bundle {
            source: bundle_format::Error::DigestMismatch { .. },
            ..
        })
    )
}

#[test]
fn a_bundle_with_holes_where_the_store_has_sealed_layers_installs() {
    let s = Store::new();
    let r = releases(s.path());
    let b1 = bundle(
        &s.path().join("v1.capsa"),
        ID,
        "1.0",
        &[&r.deps, &r.apps[0]],
    );
    let b2 = bundle(
        &s.path().join("v2.capsa"),
        ID,
        "2.0",
        &[&r.deps, &r.apps[1]],
    );
    s.install(&b1).unwrap();

    // Release 2 with a hole where the shared layer's blob would be: the store has its tree.
    let sparse = with_holes(
        &b2,
        &s.path().join("v2-sparse.capsa"),
        &[r.deps.layer.digest],
    );
    assert!(
        Bundle::open(&sparse)
            .unwrap()
            .verify(None, &mut |_| {})
            .is_err(),
        "the sparse file is no sound bundle by itself"
    );
    let done = s.install(&sparse).unwrap();
    assert_eq!(done.version, "2.0");
    assert_eq!(done.replaced.as_deref(), Some("1.0"));
    assert_eq!(s.version(ID, "current").as_deref(), Some("2.0"));
    let cache = LayerCache::new(s.layout.layers()).unwrap();
    for l in [&r.deps.layer, &r.apps[1].layer] {
        assert_eq!(cache.sealed(l), Ok(()));
    }
    let lib = s
        .layout
        .layers()
        .join(r.deps.layer.digest.hex())
        .join("tree/usr/lib/libshared.so");
    assert_eq!(fs::read(lib).unwrap(), [7u8; 50_000]);
}

#[test]
fn a_hole_where_the_store_has_no_sealed_tree_is_refused() {
    let s = Store::new();
    let r = releases(s.path());
    let b1 = bundle(
        &s.path().join("v1.capsa"),
        ID,
        "1.0",
        &[&r.deps, &r.apps[0]],
    );
    let b3 = bundle(
        &s.path().join("v3.capsa"),
        ID,
        "3.0",
        &[&r.deps, &r.apps[2]],
    );
    s.install(&b1).unwrap();
    let releases_dir = s.layout.app(ID).join("releases");
    let before = fs::read_dir(&releases_dir).unwrap().count();

    // The app layer of release 3 is not in the store: its hole is a digest mismatch.
    let holes = [r.deps.layer.digest, r.apps[2].layer.digest];
    let sparse = with_holes(&b3, &s.path().join("v3-holes.capsa"), &holes);
    let refused = s.install(&sparse);
    assert!(is_digest_mismatch(&refused), "{refused:?}");
    assert_eq!(s.version(ID, "current").as_deref(), Some("1.0"));
    assert_eq!(fs::read_dir(&releases_dir).unwrap().count(), before);
    assert!(!s
        .layout
        .layers()
        .join(r.apps[2].layer.digest.hex())
        .exists());

    // The shared layer's tree sealed for another TOC (as a tree built for another manifest's
    // pairing of that digest would be): no longer one the store has for this manifest.
    let entry = s.layout.layers().join(r.deps.layer.digest.hex());
    let max = verify::max_ctime(&entry.join("tree"), &r.deps.toc).unwrap();
    let other_toc = bundle_format::Digest::of(b"another table of contents");
    let l = &r.deps.layer;
    seal::write(&entry, l.digest, other_toc, l.entries, max).unwrap();
    let only_deps = with_holes(&b3, &s.path().join("v3-deps-hole.capsa"), &holes[..1]);
    let refused = s.install(&only_deps);
    assert!(is_digest_mismatch(&refused), "{refused:?}");
    assert_eq!(s.version(ID, "current").as_deref(), Some("1.0"));

    // The sound bundle is checked in full, and the tree resealed for its TOC.
    s.install(&b3).unwrap();
    let cache = LayerCache::new(s.layout.layers()).unwrap();
    assert_eq!(cache.sealed(l), Ok(()));
}

#[test]
fn a_layer_built_from_loose_files_lets_a_bundle_of_holes_install() {
    // What an update by changed files does: the new app layer's tree is built in the store's
    // cache from its TOC and the files, then the bundle file has no layer blob at all.
    let s = Store::new();
    let r = releases(s.path());
    let b1 = bundle(
        &s.path().join("v1.capsa"),
        ID,
        "1.0",
        &[&r.deps, &r.apps[0]],
    );
    let b2 = bundle(
        &s.path().join("v2.capsa"),
        ID,
        "2.0",
        &[&r.deps, &r.apps[1]],
    );
    s.install(&b1).unwrap();
    let holes = [r.deps.layer.digest, r.apps[1].layer.digest];
    let sparse = with_holes(&b2, &s.path().join("v2-all-holes.capsa"), &holes);
    assert!(
        is_digest_mismatch(&s.install(&sparse)),
        "not yet built: refused"
    );

    let cache = LayerCache::new(s.layout.layers()).unwrap();
    let app = &r.apps[1];
    let mut source = |e: &bundle_format::TocEntry| -> userdata::cache::FileContent<'static> {
        let (_, c) = app
            .files
            .iter()
            .find(|(p, _)| p == e.path.as_str())
            .unwrap();
        Ok(Box::new(std::io::Cursor::new(c.clone())))
    };
    cache.build(&app.layer, &app.toc, &mut source).unwrap();
    let done = s.install(&sparse).unwrap();
    assert_eq!(done.version, "2.0");
    assert_eq!(s.version(ID, "previous").as_deref(), Some("1.0"));
}
