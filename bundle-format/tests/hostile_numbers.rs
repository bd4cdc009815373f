//! Hostile numbers (issue 7, "Hostile numbers and sizes"): every size, count, offset and time a
//! bundle declares is bounded where it is first parsed, so no later arithmetic on it overflows
//! (a panic with overflow checks on, a wrap without). Each bundle here has correct digests
//! everywhere, so the number reaches the code that uses it; each must be refused with a message
//! naming the field, the entry and the bound. Also: a layer cannot unpack to more than its
//! declared size, and extraction refuses to start without room for the bundle.

mod common;

use bundle_format::container::{Header, Trailer, HEADER_LEN, TRAILER_LEN};
use bundle_format::limits::{MAX_LAYER_SIZE, MAX_MTIME};
use bundle_format::{canonical, Bundle, Digest, LayerRole, Toc};
use common::*;
use serde_json::Value;

/// A one-file layer whose header and TOC both carry `mtime`.
fn file_at(mtime: u64) -> RawLayer {
    let raw = [rfile(b"x", b"hi").mtime(mtime)];
    RawLayer::new(raw_tar(&raw), mirror_toc(&raw))
}

#[test]
fn an_mtime_past_the_year_9999_is_refused_not_a_panic() {
    for mtime in [u64::MAX, MAX_MTIME + 1, i64::MAX as u64 + 1] {
        let (root, _, path) = scratch();
        write_raw(&path, &[file_at(mtime)]);
        // Extraction alone first: this used to panic ("overflow when adding duration to
        // instant") in `UNIX_EPOCH + Duration::from_secs(mtime)`.
        let b = Bundle::open(&path).unwrap();
        let x = bundle_format::extract(&b, &root.path().join("first"), &mut |_| {});
        let x = chain(&x.expect_err("extract accepted an mtime past 9999"));
        let (v, x2) = refused_file(root.path(), &path, true);
        for e in [&x, &x2, &v] {
            let want =
                format!("entry /x: mtime {mtime} is after the year 9999 (at most 253402300799)");
            assert!(e.contains(&want), "{e:?} should say {want:?}");
            assert!(e.starts_with("layer app: invalid table of contents"), "{e}");
        }
    }
}

#[test]
fn an_mtime_in_the_year_9999_is_extracted() {
    let (root, _, path) = scratch();
    write_raw(&path, &[file_at(MAX_MTIME)]);
    let b = Bundle::open(&path).unwrap();
    b.verify(None, &mut |_| {}).unwrap();
    let dest = root.path().join("dest");
    bundle_format::extract(&b, &dest, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(dest.join("x")).unwrap(), b"hi");
}

/// The test manifest around one honest layer, as JSON, with its blobs.
fn honest_manifest() -> (Value, Vec<(Digest, Vec<u8>)>) {
    let built = build_layer(LayerRole::App, &[file("x", b"hi")], 1);
    let blobs = built
        .blobs
        .iter()
        .map(|(d, b)| match b {
            bundle_format::BlobData::Bytes(b) => (*d, b.clone()),
            bundle_format::BlobData::File(_) => unreachable!(),
        })
        .collect();
    let m = manifest(vec![built.layer]);
    (serde_json::to_value(&m).unwrap(), blobs)
}

/// Opens a bundle whose manifest is the honest one changed by `change` (digests correct);
/// returns the error of `Bundle::open`.
fn open_refuses(change: impl Fn(&mut Value)) -> String {
    let (mut m, blobs) = honest_manifest();
    change(&mut m);
    let bytes = canonical::to_vec(&m).unwrap();
    let (_root, _, path) = scratch();
    std::fs::write(&path, assemble(&bytes, &blobs, &[])).unwrap();
    match Bundle::open(&path) {
        Ok(_) => panic!("open accepted {m}"),
        Err(e) => chain(&e),
    }
}

/// A change to the manifest's JSON.
type Change = Box<dyn Fn(&mut Value)>;

#[test]
fn manifest_numbers_are_bounded_at_open() {
    let limit = format!("limit of {MAX_LAYER_SIZE} (1.0 PiB)");
    let cases: Vec<(&str, Change, String)> = vec![
        (
            "created",
            Box::new(|m| m["created"] = u64::MAX.into()),
            format!(
                "`created`: {} is after the year 9999 (at most 253402300799)",
                u64::MAX
            ),
        ),
        (
            "tar_size",
            Box::new(|m| m["layers"][0]["tar_size"] = u64::MAX.into()),
            format!(
                "`layers.tar_size`: layer app: {} bytes is more than the {limit}",
                u64::MAX
            ),
        ),
        (
            "unpacked_size",
            Box::new(|m| m["layers"][0]["unpacked_size"] = (MAX_LAYER_SIZE + 1).into()),
            format!(
                "`layers.unpacked_size`: layer app: {} bytes is more than the {limit}",
                MAX_LAYER_SIZE + 1
            ),
        ),
        (
            "size",
            Box::new(|m| m["layers"][0]["size"] = u64::MAX.into()),
            "`layers.size`: layer app".into(),
        ),
        (
            "toc.size",
            Box::new(|m| m["layers"][0]["toc"]["size"] = u64::MAX.into()),
            "`layers.toc.size`: layer app".into(),
        ),
        (
            // Used to panic in the TOC size cap `64 + entries * MAX_ENTRY_JSON`.
            "entries",
            Box::new(|m| m["layers"][0]["entries"] = u64::MAX.into()),
            format!(
                "`layers.entries`: layer app: {} entries is more than the limit of 1048576",
                u64::MAX
            ),
        ),
        (
            "report.size",
            Box::new(|m| {
                m["report"] = serde_json::json!({
                    "digest": Digest::of(b"report").to_string(),
                    "size": u64::MAX,
                })
            }),
            "`report.size`: the capture report".into(),
        ),
    ];
    for (name, change, want) in cases {
        let e = open_refuses(change);
        assert!(e.contains(&want), "{name}: {e:?} should say {want:?}");
        assert!(
            e.starts_with("invalid manifest: manifest field"),
            "{name}: {e}"
        );
    }
}

#[test]
fn unpacked_sizes_over_layers_add_up_without_overflow() {
    let two = [vec![file("a", b"12345")], vec![file("b", b"678")]];
    let (_root, _, path) = scratch();
    let m = write(&path, &two, &[], 1);
    assert_eq!(m.unpacked_size(), 8);
    let mut huge = m.clone();
    for l in &mut huge.layers {
        l.unpacked_size = u64::MAX / 2 + 1;
    }
    assert_eq!(huge.unpacked_size(), u64::MAX, "saturates, never wraps");
    assert!(huge.validate().is_err());
}

/// A layer of one 2-byte file whose TOC declares `sizes` for files `f0`, `f1`, ..., with the
/// manifest's unpacked size set to 2 so that only the TOC's own check can refuse it.
fn toc_sizes(sizes: &[u64]) -> RawLayer {
    let raw = [rfile(b"f0", b"hi")];
    let toc = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut v = f(&format!("f{i}"), b"hi");
            v["size"] = n.into();
            v
        })
        .collect();
    let mut layer = RawLayer::new(raw_tar(&raw), toc);
    layer.unpacked = 2;
    layer.entries = sizes.len() as u64;
    layer
}

#[test]
fn toc_sizes_are_bounded_and_their_sum_checked() {
    let half = 1u64 << 63;
    for (sizes, want) in [
        (
            vec![u64::MAX],
            format!("entry /f0: size {} is more than the limit of {MAX_LAYER_SIZE} bytes (1.0 PiB)", u64::MAX),
        ),
        // 2^63 + 2^63 overflowed the sum of file sizes (a panic with overflow checks on).
        (vec![half, half], format!("entry /f0: size {half} is more")),
        (
            vec![MAX_LAYER_SIZE, 1],
            format!("entry /f1: the layer's files add up to more than the limit of {MAX_LAYER_SIZE} bytes"),
        ),
    ] {
        let (v, x) = refused_layers(&[toc_sizes(&sizes)]);
        for e in [v, x] {
            assert!(e.contains(&want), "{sizes:?}: {e:?} should say {want:?}");
            assert!(e.starts_with("layer app: invalid table of contents"), "{e}");
        }
    }
}

/// Recomputes the trailer's digest of header, manifest, blob table and signatures after a test
/// changed one of them in place.
fn reseal(bytes: &mut [u8]) {
    let h = Header::decode(bytes[..64].try_into().unwrap()).unwrap();
    let meta_end = (HEADER_LEN + h.manifest_len + h.table_len) as usize;
    let sig_at = (h.blobs_offset().unwrap() + h.blobs_len) as usize;
    let sig_end = sig_at + h.signatures_len as usize;
    let meta = [&bytes[..meta_end], &bytes[sig_at..sig_end]].concat();
    let end = bytes.len();
    let t = Trailer::decode(bytes[end - TRAILER_LEN as usize..].try_into().unwrap()).unwrap();
    let t = Trailer {
        meta_digest: Digest::of(&meta),
        ..t
    };
    bytes[end - TRAILER_LEN as usize..].copy_from_slice(&t.encode());
}

#[test]
fn blob_offsets_near_the_top_of_u64_are_refused_at_open() {
    let (m, blobs) = honest_manifest();
    let mbytes = canonical::to_vec(&m).unwrap();
    let mut bytes = assemble(&mbytes, &blobs, &[]);
    // The first table row's offset, aligned, 4 KiB below 2^64: offset + len fits, rounding it
    // up to the alignment used to overflow (a panic with overflow checks on).
    let row = HEADER_LEN as usize + mbytes.len();
    bytes[row + 32..row + 40].copy_from_slice(&(u64::MAX - 4095).to_le_bytes());
    reseal(&mut bytes);
    let (_root, _, path) = scratch();
    std::fs::write(&path, &bytes).unwrap();
    let e = chain(&Bundle::open(&path).unwrap_err());
    assert!(
        e.starts_with("damaged blob table: blob sha256:")
            && e.contains("ends past the blob region"),
        "{e}"
    );
}

/// A layer whose tar (and TOC) hold a 10-byte file, declared in the manifest as 5 bytes.
fn oversized() -> RawLayer {
    let raw = [rfile(b"x", b"0123456789")];
    let mut layer = RawLayer::new(raw_tar(&raw), mirror_toc(&raw));
    layer.unpacked = 5;
    layer
}

#[test]
fn a_layer_holding_more_than_its_declared_size_is_refused() {
    let (v, x) = refused_layers(&[oversized()]);
    for e in [v, x] {
        assert!(
            e.contains("differs from the manifest: 1 entries of 10 bytes, the manifest says 1 (layers.entries) of 5 (layers.unpacked_size)"),
            "{e}"
        );
    }
}

#[test]
fn read_layer_stops_before_writing_past_the_declared_size() {
    // Even with a TOC that the caller did not get from `Bundle::toc` (which compares it with
    // the manifest), the sink never receives more than the layer's declared size.
    let layer = oversized();
    let (_root, _, path) = scratch();
    let m = write_raw(&path, std::slice::from_ref(&layer));
    let toc = Toc::from_canonical(&layer.toc_json).unwrap();
    let b = Bundle::open(&path).unwrap();
    let mut written = 0u64;
    let e = b
        .read_layer(&m.layers[0], &toc, |_, r| {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf)?;
            written += buf.len() as u64;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(written, 0, "bytes past the declared size reached the sink");
    assert_eq!(
        chain(&e),
        "layer app: entry /x: the layer's files exceed its declared unpacked size of 5 bytes (manifest field layers.unpacked_size)"
    );
}

#[test]
fn free_space_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    bundle_format::extract::check_free_space(dir.path(), 0).unwrap();
    bundle_format::extract::check_free_space(dir.path(), 1 << 20).unwrap();
    let e = bundle_format::extract::check_free_space(dir.path(), u64::MAX / 2).unwrap_err();
    let e = chain(&e);
    let want = format!(
        "not enough free space in {}: the bundle unpacks to 8.0 EiB, ",
        dir.path().display()
    );
    assert!(e.starts_with(&want), "{e:?} should start with {want:?}");
    assert!(
        e.ends_with(" available; free some space or choose another directory"),
        "{e}"
    );
    let gone = dir.path().join("missing");
    let e = chain(&bundle_format::extract::check_free_space(&gone, 0).unwrap_err());
    assert!(
        e.starts_with(&format!("cannot read the free space of {}", gone.display())),
        "{e}"
    );
}

/// The TOC and manifest declare a 512 TiB file (more than any test machine has free); the tar
/// holds 2 bytes. Extraction must refuse before writing anything, for lack of space.
#[test]
fn extract_refuses_a_bundle_larger_than_the_free_space() {
    let big = 1u64 << 49;
    let raw = [rfile(b"x", b"hi")];
    let mut toc = mirror_toc(&raw);
    toc[0]["size"] = big.into();
    let layer = RawLayer::new(raw_tar(&raw), toc);
    assert_eq!(layer.unpacked, big);
    let (v, x) = refused_layers(&[layer]);
    assert!(v.contains("does not match the table of contents"), "{v}");
    assert!(x.starts_with("not enough free space in "), "{x}");
    assert!(x.contains("the bundle unpacks to 512.0 TiB"), "{x}");
}
