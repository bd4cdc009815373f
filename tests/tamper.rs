//! End to end: a damaged or tampered bundle is refused by `capsa verify` and `capsa extract`
//! with exit 1, and `extract` leaves nothing behind. Bytes are flipped across the whole file
//! (every part: header, manifest, blob table, padding, TOCs, layers, report, trailer).

mod common;

use std::path::Path;

use common::*;

fn flipped(src: &Path, at: u64, name: &str) -> std::path::PathBuf {
    let mut bytes = std::fs::read(src).unwrap();
    bytes[at as usize] ^= 0x20;
    let p = shared_tmp().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn flipped_bytes_anywhere_are_caught() {
    let src = hello_bundle();
    let len = std::fs::metadata(src).unwrap().len();
    // Every part boundary region densely, the rest on a stride.
    let mut positions: Vec<u64> = (0..4200).step_by(7).collect();
    positions.extend((0..len).step_by((len / 150).max(1) as usize));
    positions.extend(len.saturating_sub(200)..len);
    positions.sort_unstable();
    positions.dedup();
    for (i, at) in positions.iter().enumerate() {
        let p = flipped(src, *at, &format!("flip-{}.capsa", i % 4));
        let o = run(&["verify", p.to_str().unwrap()]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "flip at {at} of {len} not caught: {}",
            text(&o)
        );
    }
}

#[test]
fn truncated_or_padded_files_are_refused() {
    let bytes = std::fs::read(hello_bundle()).unwrap();
    let p = shared_tmp().join("cut.capsa");
    for cut in [0, 10, 64, 4096, bytes.len() - 1] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        fails(&["verify", p.to_str().unwrap()]);
    }
    let mut more = bytes.clone();
    more.extend_from_slice(b"garbage");
    std::fs::write(&p, more).unwrap();
    let err = fails(&["inspect", p.to_str().unwrap()]);
    assert!(err.contains("not a capsa bundle"), "{err}");
}

#[test]
fn a_damaged_layer_extracts_nothing() {
    let src = hello_bundle();
    let len = std::fs::metadata(src).unwrap().len();
    // A byte in the middle of the largest blob (the libc layer).
    let p = flipped(src, len / 2, "damaged-layer.capsa");
    let parent = shared_tmp().join("extract-target");
    std::fs::create_dir_all(&parent).unwrap();
    let dest = parent.join("out");
    let err = fails(&["extract", p.to_str().unwrap(), dest.to_str().unwrap()]);
    assert!(
        err.contains("damaged") || err.contains("does not match"),
        "{err}"
    );
    assert!(!dest.exists(), "destination created for a damaged bundle");
    assert!(
        std::fs::read_dir(&parent).unwrap().next().is_none(),
        "staging left behind"
    );
}

#[test]
fn stub_in_front_keeps_the_bundle_valid() {
    // A launcher stub may be put in front of the payload: the trailer finds it. One without a
    // stub note (not made by `capsa pack --self-exec`) is an unrecorded stub: the payload
    // opens, but verify refuses the file, since nothing vouches for the stub.
    let mut bytes = b"#!/bin/sh\necho stub\nexit 0\n".to_vec();
    bytes.extend(std::fs::read(hello_bundle()).unwrap());
    let p = shared_tmp().join("stubbed.capsa");
    std::fs::write(&p, bytes).unwrap();
    assert_eq!(inspect_json(&p)["stub_size"], 27);
    assert_eq!(inspect_json(&p)["stub"]["state"], "unrecorded");
    let out = fails(&["verify", p.to_str().unwrap()]);
    assert!(
        out.contains("27-byte launcher stub in front of the payload has no note"),
        "{out}"
    );
}
