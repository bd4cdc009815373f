//! The collector against a cache built by hand: locks held keep entries, installed digests
//! keep layers, leftovers go, and hardlinked files count once and only when all links go.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use super::{collect, hold, Kind, Why};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn entry(root: &Path, name: &str, bytes: usize) {
    let tree = root.join("layers").join(name).join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("f"), vec![7u8; bytes]).unwrap();
}

#[test]
fn held_entries_stay_free_ones_go() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    entry(root, A, 100_000);
    entry(root, B, 10);
    fs::create_dir_all(root.join("layers/.gc-old/x/tree")).unwrap();
    let installed: HashSet<String> = [B.to_owned()].into();
    let held = hold(root, [A.to_owned()]).unwrap();
    let c = collect(root, &installed, false).unwrap();
    assert!(root.join("layers").join(A).is_dir(), "in use");
    assert!(c
        .kept
        .iter()
        .any(|k| k.name.ends_with(A) && k.why == Why::InUse));
    assert!(c
        .kept
        .iter()
        .any(|k| k.name.ends_with(B) && k.why == Why::Installed));
    assert_eq!(c.removed.len(), 1, "{:?}", c.removed);
    assert_eq!(c.removed[0].kind, Kind::Leftover);
    drop(held);

    let dry = collect(root, &installed, true).unwrap();
    assert_eq!(dry.removed.len(), 1);
    assert!(dry.freed() >= 100_000, "{dry:?}");
    assert!(
        root.join("layers").join(A).is_dir(),
        "a dry run removes nothing"
    );
    let c = collect(root, &installed, false).unwrap();
    assert_eq!(c.freed(), dry.freed());
    assert!(!root.join("layers").join(A).exists());
    assert!(root.join("layers").join(B).is_dir());
    assert!(
        !root.join("locks").join(A).exists(),
        "its lock file goes too"
    );
    let left: Vec<_> = fs::read_dir(root.join("layers"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(left.len(), 1, "no .gc-* left: {left:?}");
    // A run after the collection locks a new lock file.
    let again = hold(root, [A.to_owned()]).unwrap();
    assert!(root.join("locks").join(A).is_file());
    drop(again);
}

#[test]
fn a_file_linked_from_a_kept_entry_frees_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    entry(root, A, 200_000);
    let merged = root.join("merged").join(B).join("tree");
    fs::create_dir_all(&merged).unwrap();
    fs::hard_link(root.join("layers").join(A).join("tree/f"), merged.join("f")).unwrap();
    let installed: HashSet<String> = [A.to_owned()].into();
    let c = collect(root, &installed, true).unwrap();
    assert_eq!(c.removed.len(), 1);
    assert_eq!(c.removed[0].kind, Kind::Merged);
    assert!(c.freed() < 200_000, "the layer keeps the file: {c:?}");
    let c = collect(root, &HashSet::new(), true).unwrap();
    assert_eq!(c.removed.len(), 2);
    assert!(c.freed() >= 200_000, "both links go: {c:?}");
}
