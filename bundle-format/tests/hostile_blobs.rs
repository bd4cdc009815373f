//! Hostile blobs, TOCs and layer stacks (threats.md BND-14 and the layer/TOC disagreements):
//! a layer blob whose bytes do not match its digest (caught before decompression), truncated
//! or padded zstd streams and tar streams with correct digests, tar entries that disagree with
//! their TOC entry, manifests that misdeclare sizes or digests of the uncompressed stream, TOCs
//! that are not canonical, not valid or too large, and conflicts between layers.

mod common;

use bundle_format::{Bundle, Digest, LayerRole};
use common::*;
use serde_json::Value;

fn fx(p: &str, c: &[u8]) -> Value {
    toc_entry(p, "file", 0o644, Some(c), None)
}

fn honest() -> (Vec<u8>, Vec<Value>) {
    (raw_tar(&[rfile(b"x", b"hi")]), vec![fx("x", b"hi")])
}

fn refused(layer: RawLayer, want: &str) {
    let (v, x) = refused_layers(&[layer]);
    assert!(v.contains(want), "verify: {v:?} should say {want:?}");
    assert!(x.contains(want), "extract: {x:?} should say {want:?}");
}

#[test]
fn blob_bytes_are_checked_before_they_are_decompressed() {
    // Two uncompressed frames of the same length: the manifest describes the harmless one,
    // the file holds the one that climbs out.
    let good = raw_tar(&[rfile(b"x......", b"hi")]);
    let evil = raw_tar(&[rfile(b"../evil", b"hi")]);
    let layer = RawLayer::with_blob(
        &good,
        zstd_frame(20, &[Piece::Bytes(&good)]),
        vec![fx("x......", b"hi")],
    );
    let evil_blob = zstd_frame(20, &[Piece::Bytes(&evil)]);
    assert_eq!(layer.blob.len(), evil_blob.len());
    let (root, _, path) = scratch();
    write_raw(&path, std::slice::from_ref(&layer));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(layer.blob.len())
        .position(|w| w == layer.blob)
        .unwrap();
    bytes[at..at + evil_blob.len()].copy_from_slice(&evil_blob);
    std::fs::write(&path, &bytes).unwrap();
    let (v, x) = refused_file(root.path(), &path, true);
    for e in [v, x] {
        assert!(
            e.starts_with(
                "layer app is damaged: its bytes do not match the recorded digest sha256:"
            ),
            "{e}"
        );
    }
}

#[test]
fn damaged_streams_with_correct_digests_are_refused() {
    let (tar, toc) = honest();
    let z = zstd::bulk::compress(&tar, 3).unwrap();
    // A zstd frame cut short, and one followed by junk.
    refused(
        RawLayer::with_blob(&tar, z[..z.len() - 1].to_vec(), toc.clone()),
        "cannot read layer app",
    );
    refused(
        RawLayer::with_blob(&tar, [&z[..], b"junk"].concat(), toc.clone()),
        "cannot read layer app",
    );
    // An empty blob, and a blob that is not zstd at all.
    refused(
        RawLayer::with_blob(&tar, Vec::new(), toc.clone()),
        "layer app",
    );
    refused(
        RawLayer::with_blob(&tar, tar.clone(), toc.clone()),
        "cannot read layer app",
    );
    // A tar stream cut inside the file's content, and one cut before the entry.
    refused(RawLayer::new(tar[..513].to_vec(), toc.clone()), "layer app");
    refused(RawLayer::new(Vec::new(), toc.clone()), "fewer tar entries");
    // A tar header whose checksum is wrong.
    let mut bad_sum = tar.clone();
    bad_sum[0] = b'y';
    refused(RawLayer::new(bad_sum, toc), "checksum");
}

#[test]
fn entries_that_disagree_with_their_toc_entry_are_refused() {
    let (tar, toc) = honest();
    let one = |f: &dyn Fn(&mut Value)| {
        let mut toc = toc.clone();
        f(&mut toc[0]);
        RawLayer::new(tar.clone(), toc)
    };
    refused(
        one(&|e| e["sha256"] = Digest::of(b"ho").to_string().into()),
        "layer app: /x is damaged",
    );
    refused(
        one(&|e| e["mtime"] = (MTIME + 1).into()),
        "does not match the table of contents",
    );
    refused(
        one(&|e| e["size"] = 3.into()),
        "does not match the table of contents",
    );
    refused(
        one(&|e| e["mode"] = 0o755.into()),
        "does not match the table of contents",
    );
    refused(
        one(&|e| e["path"] = "y".into()),
        "does not match the table of contents",
    );
    let two = RawLayer::new(tar.clone(), vec![fx("x", b"hi"), fx("y", b"")]);
    refused(two, "fewer tar entries than the table of contents lists");
    refused(
        RawLayer::new(tar.clone(), Vec::new()),
        "more tar entries than the table of contents lists",
    );
}

#[test]
fn misdeclared_uncompressed_streams_are_refused() {
    let (tar, toc) = honest();
    let layer = RawLayer::new(tar.clone(), toc.clone());
    refused(
        RawLayer {
            tar_size: layer.tar_size + 512,
            ..layer.clone()
        },
        "manifest says",
    );
    refused(
        RawLayer {
            tar_size: layer.tar_size - 1,
            ..layer.clone()
        },
        "size limit exceeded",
    );
    refused(
        RawLayer {
            diff_id: Digest::of(b"other"),
            ..layer.clone()
        },
        "layer app (uncompressed) is damaged",
    );
    refused(
        RawLayer {
            entries: 2,
            ..layer.clone()
        },
        "entry count or size differs from the manifest",
    );
    refused(
        RawLayer {
            unpacked: 3,
            ..layer.clone()
        },
        "entry count or size differs from the manifest",
    );
    // Extra bytes after the end-of-archive blocks must be declared: they are part of diff_id.
    let padded = [&tar[..], &[0u8; 512][..]].concat();
    let mut sneaky = RawLayer::with_blob(&tar, zstd::bulk::compress(&padded, 3).unwrap(), toc);
    sneaky.diff_id = Digest::of(&padded);
    refused(sneaky, "size limit exceeded");
}

#[test]
fn bad_tables_of_contents_are_refused() {
    let (tar, toc) = honest();
    let canonical = RawLayer::new(tar.clone(), toc.clone()).toc_json;
    let text = String::from_utf8(canonical.clone()).unwrap();
    let with_json = |json: Vec<u8>| RawLayer {
        toc_json: json,
        ..RawLayer::new(tar.clone(), toc.clone())
    };
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (
            text.replacen(",", ", ", 1).into_bytes(),
            "not in canonical form",
        ),
        (
            text.replacen("{\"entries\"", "{\"entries\":[],\"entries\"", 1)
                .into_bytes(),
            "table of contents",
        ),
        (
            text.replacen("\"mode\"", "\"extra\":1,\"mode\"", 1)
                .into_bytes(),
            "invalid JSON",
        ),
        (
            text.replacen("\"mode\":420", "\"mode\":420.0", 1)
                .into_bytes(),
            "table of contents",
        ),
        (
            text.replacen("\"size\":2", "\"size\":-2", 1).into_bytes(),
            "invalid JSON",
        ),
        (
            text.replacen("\"x\"", "\"../x\"", 1).into_bytes(),
            "invalid JSON",
        ),
        (b"not json".to_vec(), "invalid JSON"),
        (Vec::new(), "invalid JSON"),
    ];
    for (json, want) in bad {
        refused(with_json(json), want);
    }

    // A TOC blob that inflates past 256 MiB, and one with a zstd window above the limit.
    let layer = RawLayer::new(tar, toc);
    for blob in [
        zstd_frame(20, &[Piece::Run(b' ', (256 << 20) + 1)]),
        zstd_frame(31, &[Piece::Bytes(&canonical)]),
    ] {
        let mut built = layer.built(LayerRole::App);
        built.layer.toc = bundle_format::BlobRef {
            digest: Digest::of(&blob),
            size: blob.len() as u64,
        };
        built.blobs[0] = (built.layer.toc.digest, bundle_format::BlobData::Bytes(blob));
        let (root, _, path) = scratch();
        write_built(&path, vec![built], &[]);
        let (v, _) = refused_file(root.path(), &path, true);
        assert!(
            v.contains("cannot read table of contents of layer app"),
            "{v}"
        );
    }
}

#[test]
fn layers_may_not_contradict_each_other() {
    let (root, victim, path) = scratch();
    let v = victim.to_str().unwrap();
    let sym = |p: &str, t: &str| toc_entry(p, "symlink", 0o777, None, Some(t));
    let dir = |p: &str| toc_entry(p, "dir", 0o755, None, None);
    let layer = |tar: &[Raw], toc: Vec<Value>| RawLayer::new(raw_tar(tar), toc);
    let a_to_victim = layer(&[rsym(b"a", v.as_bytes())], vec![sym("a", v)]);
    let dir_a_with_x = layer(
        &[rdir(b"a/"), rfile(b"a/x", b"hi")],
        vec![dir("a"), fx("a/x", b"hi")],
    );
    let x_file = layer(&[rfile(b"x", b"1")], vec![fx("x", b"1")]);
    let x_other = layer(&[rfile(b"x", b"2")], vec![fx("x", b"2")]);
    let x_link = layer(&[rsym(b"x", b"y")], vec![sym("x", "y")]);
    let cases = [
        vec![a_to_victim.clone(), dir_a_with_x.clone()],
        vec![dir_a_with_x, a_to_victim],
        vec![x_file.clone(), x_other],
        vec![x_file.clone(), x_link.clone()],
        vec![x_link, x_file],
    ];
    for layers in cases {
        write_raw(&path, &layers);
        let (v, x) = refused_file(root.path(), &path, true);
        assert!(
            v.contains("with different contents") && x.contains("with different contents"),
            "{v}"
        );
    }
    // A hardlink to a file of another layer.
    let lower = layer(&[rfile(b"f", b"1")], vec![fx("f", b"1")]);
    let upper = layer(
        &[rlink(b"h", b"f")],
        vec![toc_entry("h", "hardlink", 0o777, None, Some("f"))],
    );
    write_raw(&path, &[lower, upper]);
    let (v, _) = refused_file(root.path(), &path, true);
    assert!(v.contains("not an earlier regular file"), "{v}");
    assert!(std::fs::read_dir(&victim).unwrap().next().is_none());

    // Directories and identical symlinks may repeat (control).
    let l1 = layer(
        &[rdir(b"d/"), rsym(b"s", b"d")],
        vec![dir("d"), sym("s", "d")],
    );
    let l2 = layer(
        &[rdir(b"d/"), rfile(b"d/f", b"2"), rsym(b"s", b"d")],
        vec![dir("d"), fx("d/f", b"2"), sym("s", "d")],
    );
    write_raw(&path, &[l1, l2]);
    let b = Bundle::open(&path).unwrap();
    b.verify(None, &mut |_| {}).unwrap();
    bundle_format::extract(&b, &root.path().join("ok"), &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(root.path().join("ok/s/f")).unwrap(), b"2");
}
