//! End to end, hostile input to the store: installing a truncated or tampered bundle (a byte
//! flipped in a layer, the header, the trailer, the metadata), garbage, an empty or a missing
//! file fails with exit status 1 and a message naming the file and the damage, and leaves the
//! store and its exports exactly as they were (every path, mode, size, mtime and link target),
//! both in an empty store and next to installed apps, which still run.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const PY: &str = "org.python.Python3";

/// Bad bundles made from the good python one (truncated, a byte flipped in a layer, the header,
/// the trailer, the metadata), garbage and an empty file, with what the error must say.
fn bad_bundles(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let good = std::fs::read(python_bundle()).unwrap();
    let n = good.len();
    let flip = |at: usize| {
        let mut b = good.clone();
        b[at] ^= 0x20;
        b
    };
    // (file name, contents, what the error must say)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("half", good[..n / 2].to_vec(), "no capsa trailer"),
        ("one-short", good[..n - 1].to_vec(), "no capsa trailer"),
        ("flip-middle", flip(n / 2), "layer app is damaged"),
        ("flip-start", flip(8), "damaged header"),
        ("flip-end", flip(n - 3), "its end is damaged"),
        ("flip-near-end", flip(n - 200), "is damaged"),
        (
            "garbage",
            (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            "not a capsa bundle",
        ),
        ("empty", Vec::new(), "too short"),
    ];
    cases
        .into_iter()
        .map(|(name, bytes, what)| {
            let p = dir.join(format!("{name}.capsa"));
            std::fs::write(&p, bytes).unwrap();
            (p, what)
        })
        .collect()
}

#[test]
fn hostile_bundles_fail_cleanly_and_leave_the_store_as_it_was() {
    let env = StoreEnv::new();
    let bad = bad_bundles(env.dir.path());
    // `installed`: python is in the store already, so a flipped byte inside its app layer is
    // in a blob the install never reads (the store's sealed tree is used): nothing to refuse.
    // Reinstalling the same release re-syncs its exports (new mtimes), so the snapshot is
    // taken again after it; the apps and releases must be the same.
    let try_all = |when: &str, installed: bool| {
        let mut before = env.snapshot();
        for (p, says) in &bad {
            let name = p.file_name().unwrap().to_string_lossy();
            if installed && name == "flip-middle.capsa" {
                let listed = env.list();
                let out = env.ok(&["install", "--yes", p.to_str().unwrap()]);
                assert!(
                    out.contains("is already installed"),
                    "{when}, {name}: {out}"
                );
                assert_eq!(env.list(), listed, "{when}, {name}: the apps changed");
                before = env.snapshot();
                continue;
            }
            let out = env.fails(&["install", "--yes", p.to_str().unwrap()]);
            assert!(
                out.contains(&format!("capsa: error: cannot install {}", p.display()))
                    && out.contains(says),
                "{when}, {name}: {out}"
            );
            assert!(!out.contains("panicked"), "{when}, {name}: {out}");
            assert_eq!(env.snapshot(), before, "{when}, {name}: the store changed");
        }
        let missing = env.fails(&["install", "--yes", "/nonexistent/x.capsa"]);
        assert!(missing.contains("/nonexistent/x.capsa"), "{missing}");
        assert_eq!(env.snapshot(), before, "{when}: the store changed");
    };
    try_all("empty store", false);
    env.install(python_bundle());
    env.install(hello_bundle());
    let listed = env.list();
    try_all("python and hello installed", true);
    assert_eq!(env.list(), listed);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
    if userns() {
        assert_eq!(
            env.ok(&["run", PY, "--", "-c", "import ssl; print(1)"])
                .trim(),
            "1"
        );
    }
}
