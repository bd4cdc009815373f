//! Structure-aware: the input is a bundle taken apart (see `parts.rs`); the target puts it back
//! together with correct digests, sizes and offsets, then runs `Bundle::open`, `verify`, the
//! capture report and `extract` into a temporary directory, as `capsa extract` does.
//!
//! Invariants checked beyond "no panic": nothing appears in the temporary directory but the
//! bundle and, on success only, the destination; `verify` and `extract` agree (the bundle is
//! unsigned, its padding zero and its report valid, so what one accepts the other must); and an
//! extracted tree holds every TOC entry with its type and size.
#![no_main]

mod parts;

use std::path::Path;

use bundle_format::{Bundle, EntryKind};
use libfuzzer_sys::fuzz_target;

/// Checks the extracted tree against the TOCs: each path exists with its kind (and size).
fn check_tree(bundle: &Bundle, out: &Path) {
    let tocs = bundle.tocs().expect("extract accepted these TOCs");
    for e in tocs.iter().flat_map(|t| &t.entries) {
        let md = e
            .path
            .under(out)
            .symlink_metadata()
            .unwrap_or_else(|err| panic!("{} is missing after extract: {err}", e.path));
        let ok = match e.kind {
            EntryKind::Dir => md.is_dir(),
            EntryKind::File | EntryKind::Hardlink => md.is_file(),
            EntryKind::Symlink => md.file_type().is_symlink(),
        };
        assert!(ok, "{} was extracted as {:?}", e.path, md.file_type());
        if e.kind == EntryKind::File {
            assert_eq!(md.len(), e.size, "{} has the wrong size", e.path);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes = parts::Parts::decode(data).assemble();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("in.capsa");
    std::fs::write(&path, &bytes).expect("write input");
    let Ok(bundle) = Bundle::open(&path) else {
        return;
    };
    let verified = bundle.verify(None, &mut |_| {});
    let _ = bundle.report();
    let out = dir.path().join("out");
    let extracted = bundle_format::extract(&bundle, &out, &mut |_| {});
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    match (&verified, &extracted) {
        (Ok(_), Ok(_)) => {
            assert_eq!(names.len(), 2, "stray files: {names:?}");
            check_tree(&bundle, &out);
        }
        (Err(_), Err(_)) => assert_eq!(names.len(), 1, "extract left files: {names:?}"),
        // A valid bundle path of up to 4096 bytes can exceed PATH_MAX once below the
        // destination: an error, not a disagreement.
        (Ok(_), Err(bundle_format::Error::Extract { source, .. }))
            if source.kind() == std::io::ErrorKind::InvalidFilename =>
        {
            assert_eq!(names.len(), 1, "extract left files: {names:?}")
        }
        (v, x) => panic!("verify and extract disagree: verify {v:?}, extract {x:?}"),
    }
});
