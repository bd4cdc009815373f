//! End to end: packing is reproducible. The same inputs give a byte-identical bundle whatever
//! the thread count; `SOURCE_DATE_EPOCH` sets `created` and clamps mtimes, and is itself
//! reproducible.

mod common;

use common::*;

#[test]
fn same_inputs_give_identical_bytes_whatever_the_thread_count() {
    let recipe = build_hello(&shared_tmp().join("repro"));
    let r = recipe.to_str().unwrap();
    let a = shared_tmp().join("a.capsa");
    let b = shared_tmp().join("b.capsa");
    ok(&["pack", r, "-o", a.to_str().unwrap(), "--threads", "1"]);
    ok(&["pack", r, "-o", b.to_str().unwrap(), "--threads", "4"]);
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "bundles differ"
    );
}

#[test]
fn python_sample_is_reproducible() {
    let a = python_bundle();
    let b = shared_tmp().join("python-again.capsa");
    let recipe = src().join("samples/python3/capsa.toml");
    ok(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        b.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert!(
        std::fs::read(a).unwrap() == std::fs::read(&b).unwrap(),
        "python bundles differ"
    );
}

#[test]
fn source_date_epoch_sets_created_and_clamps_mtimes() {
    let recipe = build_hello(&shared_tmp().join("sde"));
    let pack = |name: &str| {
        let out = shared_tmp().join(name);
        let o = capsa(&[
            "pack",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .env("SOURCE_DATE_EPOCH", "1000000000")
        .output()
        .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        out
    };
    let a = pack("sde-a.capsa");
    let b = pack("sde-b.capsa");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(inspect_json(&a)["manifest"]["created"], 1000000000);
    let root = extract(&a, "sde-root");
    for f in tree(&root) {
        let m = std::fs::symlink_metadata(root.join(&f)).unwrap();
        use std::os::unix::fs::MetadataExt;
        if m.is_file() {
            assert!(
                m.mtime() <= 1000000000,
                "{f} has mtime {} after SOURCE_DATE_EPOCH",
                m.mtime()
            );
        }
    }
}
