//! Every byte of a bundle is covered by some check: flipping any single byte (header, manifest,
//! blob table, zero padding, TOC and layer blobs, signature block, trailer), truncating the file
//! at any length, or appending anything makes `Bundle::open` + `verify` fail.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use bundle_format::container::{Header, HEADER_LEN};
use bundle_format::{Bundle, SecretKey};
use common::*;

/// Whether the bundle at `path` is refused; a panic counts as a test failure.
fn refused(path: &Path) -> bool {
    match Bundle::open(path) {
        Err(_) => true,
        Ok(b) => b.verify(None, &mut |_| {}).is_err(),
    }
}

/// A signed two-layer bundle (a signature block, two TOCs, two layers, padding in between).
fn small_bundle(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join("small.capsa");
    write(&path, &sample_tree(), &[SecretKey::generate().unwrap()], 1);
    let bytes = fs::read(&path).unwrap();
    assert!(!refused(&path), "the untouched bundle must verify");
    (path, bytes)
}

/// Byte ranges of the zero padding (between the blob table and the blob region, and between
/// blobs), read from the bundle's own header and table.
fn padding(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let h = Header::decode(bytes[..64].try_into().unwrap()).unwrap();
    let table_at = (HEADER_LEN + h.manifest_len) as usize;
    let region = h.blobs_offset().unwrap() as usize;
    let mut gaps = Vec::new();
    gaps.push(table_at + h.table_len as usize..region);
    let mut end = region;
    for row in bytes[table_at..table_at + h.table_len as usize].chunks(48) {
        let off = region + u64::from_le_bytes(row[32..40].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(row[40..48].try_into().unwrap()) as usize;
        gaps.push(end..off);
        end = off + len;
    }
    gaps.retain(|g| !g.is_empty());
    for g in &gaps {
        assert!(
            bytes[g.clone()].iter().all(|&b| b == 0),
            "padding {g:?} is not zero"
        );
    }
    gaps
}

#[test]
fn every_flipped_byte_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, bytes) = small_bundle(tmp.path());
    let pad = padding(&bytes);
    let in_pad = |i: usize| pad.iter().any(|g| g.contains(&i));
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    let start = Instant::now();
    let mut checked = 0;
    for (i, &orig) in bytes.iter().enumerate() {
        // Every byte with all bits flipped; outside padding also with the low bit flipped.
        let flips: &[u8] = if in_pad(i) { &[0xff] } else { &[0xff, 0x01] };
        for &x in flips {
            f.write_all_at(&[orig ^ x], i as u64).unwrap();
            assert!(
                refused(&path),
                "flipping byte {i} of {} with {x:#04x} went unnoticed",
                bytes.len()
            );
            checked += 1;
        }
        f.write_all_at(&[orig], i as u64).unwrap();
    }
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert!(!refused(&path));
    eprintln!(
        "{checked} flips of a {}-byte bundle checked in {:?}",
        bytes.len(),
        start.elapsed()
    );
}

#[test]
fn truncation_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, bytes) = small_bundle(tmp.path());
    let cut = tmp.path().join("cut.capsa");
    fs::write(&cut, &bytes).unwrap();
    // Shrink one file step by step (rewriting it with O_TRUNC each time makes ext4 flush it).
    let f = OpenOptions::new().write(true).open(&cut).unwrap();
    for len in (0..bytes.len()).rev() {
        f.set_len(len as u64).unwrap();
        assert!(
            refused(&cut),
            "truncated to {len} of {} bytes and accepted",
            bytes.len()
        );
    }
    // Cutting into the payload from the front fails too.
    for skip in [1, 2, 8, 63, 64, 65, 4096] {
        fs::write(&cut, &bytes[skip..]).unwrap();
        assert!(refused(&cut), "first {skip} bytes removed and accepted");
    }
}

#[test]
fn appended_bytes_are_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, bytes) = small_bundle(tmp.path());
    let trailer = bytes[bytes.len() - 64..].to_vec();
    let junk: Vec<Vec<u8>> = vec![
        vec![0],
        vec![0; 64],
        vec![0; 4096],
        b"garbage".to_vec(),
        trailer.clone(),
        [vec![0; 4096], trailer.clone()].concat(),
        bytes[..bytes.len() - 1].to_vec(),
    ];
    let out = tmp.path().join("longer.capsa");
    for j in junk {
        fs::write(&out, [&bytes[..], &j].concat()).unwrap();
        assert!(refused(&out), "{} appended bytes accepted", j.len());
    }
    // By design a payload may follow a launcher stub, so a whole second bundle appended is a
    // valid bundle (the first copy being its stub); only the last payload counts.
    fs::write(&out, [&bytes[..], &bytes].concat()).unwrap();
    assert_eq!(Bundle::open(&out).unwrap().stub_len(), bytes.len() as u64);
    // A byte slipped in anywhere in the payload is caught too (in front of it, it is a stub).
    for at in [
        1,
        63,
        64,
        100,
        4096,
        8192,
        bytes.len() - 200,
        bytes.len() - 64,
    ] {
        let mut grown = bytes.clone();
        grown.insert(at, 0);
        fs::write(&out, &grown).unwrap();
        assert!(refused(&out), "zero byte inserted at {at} accepted");
    }
}
