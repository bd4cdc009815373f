//! Whole bundle files: `Bundle::open`, then `verify`, the capture report and `extract` into a
//! temporary directory (extraction runs even when `verify` fails, since it relies only on the
//! digests). Nothing may panic, and nothing may appear outside the temporary directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("in.capsa");
    std::fs::write(&path, data).expect("write input");
    let Ok(bundle) = bundle_format::Bundle::open(&path) else {
        return;
    };
    let _ = bundle.manifest_digest();
    let _ = bundle.verify(None, &mut |_| {});
    let _ = bundle.report();
    let _ = bundle_format::extract(&bundle, &dir.path().join("out"), &mut |_| {});
});
