//! Hostile manifests and signature blocks (threats.md BND-15): the container is assembled by
//! hand around manifest bytes `write_bundle` would refuse to write (duplicate keys, white
//! space, unknown fields, deep nesting, over 1 MiB, bad or confusable app ids, other schemas),
//! with a correct meta digest so that the manifest parser is reached; plus blob tables that
//! disagree with the manifest and malformed or forged signature blocks.

mod common;

use bundle_format::sign::SignatureEntry;
use bundle_format::{Bundle, Digest, LayerRole, SecretKey};
use common::*;

struct Base {
    manifest: String,
    blobs: Vec<(Digest, Vec<u8>)>,
}

fn base() -> Base {
    let tar = raw_tar(&[rfile(b"x", b"hi")]);
    let built = RawLayer::new(tar, vec![toc_entry("x", "file", 0o644, Some(b"hi"), None)])
        .built(LayerRole::App);
    let blobs = built
        .blobs
        .iter()
        .map(|(d, b)| match b {
            bundle_format::BlobData::Bytes(b) => (*d, b.clone()),
            bundle_format::BlobData::File(_) => unreachable!(),
        })
        .collect();
    let bytes = manifest(vec![built.layer]).to_bytes().unwrap();
    Base {
        manifest: String::from_utf8(bytes).unwrap(),
        blobs,
    }
}

/// Writes the assembled bytes and checks the refusal; returns the error.
fn refused_bytes(bytes: &[u8]) -> String {
    let (root, _, path) = scratch();
    std::fs::write(&path, bytes).unwrap();
    let (v, x) = refused_file(root.path(), &path, false);
    assert_eq!(v, x);
    v
}

#[test]
fn the_hand_assembled_container_matches_the_writer() {
    let b = base();
    let (_root, _, path) = scratch();
    let m: bundle_format::Manifest = serde_json::from_str(&b.manifest).unwrap();
    let blobs: Vec<_> = b
        .blobs
        .iter()
        .map(|(d, v)| (*d, bundle_format::BlobData::Bytes(v.clone())))
        .collect();
    let key = SecretKey::generate().unwrap();
    let sigs = bundle_format::writer::sign_all(&m, std::slice::from_ref(&key)).unwrap();
    bundle_format::write_bundle(&path, &m, &blobs, &sigs).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        assemble(b.manifest.as_bytes(), &b.blobs, &sigs)
    );
    Bundle::open(&path)
        .unwrap()
        .verify(Some(&key.public()), &mut |_| {})
        .unwrap();
}

#[test]
fn hostile_manifests_are_refused() {
    let b = base();
    let m = &b.manifest;
    let nested = format!(
        "\"env\":{{\"A\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(String, &str)> = vec![
        (
            m.replacen('{', "{\"arch\":\"x86_64\",", 1),
            "duplicate field",
        ),
        (
            m.replacen("\"id\"", "\"id\":\"org.evil.App\",\"id\"", 1),
            "canonical JSON",
        ),
        (m.replacen(',', ", ", 1), "not in canonical form"),
        (format!("{m}\n"), "canonical JSON"),
        (format!(" {m}"), "canonical JSON"),
        (m.replacen('{', "{\"aaa\":1,", 1), "canonical JSON"),
        (m.replacen("\"env\":{}", &nested, 1), "canonical JSON"),
        (
            m.replacen(&format!("\"created\":{MTIME}"), "\"created\":1.5", 1),
            "canonical JSON",
        ),
        (
            m.replacen("\"schema\":1", "\"schema\":2", 1),
            "field `schema`",
        ),
        (m.replacen("org.example.Test", "../x", 1), "field `id`"),
        (m.replacen("org.example.Test", "a/b.c.d", 1), "field `id`"),
        (
            m.replacen("org.example.Test", "org.example", 1),
            "field `id`",
        ),
        (
            m.replacen("org.example.Test", "org.\u{435}xample.Test", 1),
            "field `id`",
        ),
        (
            m.replacen("org.example.Test", "org.example.Test\u{202e}", 1),
            "field `id`",
        ),
        (
            m.replacen(
                "org.example.Test",
                &format!("org.example.{}", "a".repeat(300)),
                1,
            ),
            "field `id`",
        ),
        (
            m.replacen("\"name\":\"Test\"", "\"name\":\"\\u001b[2J\"", 1),
            "field `name`",
        ),
        (m.replacen("/usr/bin/hello", "hello", 1), "field `command`"),
        (m.replacen("x86_64", "pdp11", 1), "field `arch`"),
        (
            m.replacen("tar+zstd", "tar+gzip", 1),
            "unsupported media type",
        ),
        (
            m.replacen(
                "\"name\":\"Test\"",
                &format!("\"name\":\"{}\"", "n".repeat(2 << 20)),
                1,
            ),
            "larger than 1 MiB",
        ),
    ];
    for (text, want) in cases {
        let e = refused_bytes(&assemble(text.as_bytes(), &b.blobs, &[]));
        assert!(e.contains(want), "{e:?} should say {want:?}");
        assert!(
            !e.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{e:?}"
        );
    }
}

#[test]
fn blob_tables_must_match_the_manifest() {
    let b = base();
    let m = b.manifest.as_bytes();
    let junk = (Digest::of(b"junk"), b"junk".to_vec());
    let tables = [
        vec![b.blobs[0].clone()],
        vec![b.blobs[0].clone(), b.blobs[1].clone(), junk.clone()],
        vec![b.blobs[0].clone(), junk],
    ];
    for (i, blobs) in tables.iter().enumerate() {
        let e = refused_bytes(&assemble(m, blobs, &[]));
        assert!(e.contains("blob table"), "table {i}: {e}");
    }
    // A table row whose length differs from what the manifest says.
    let mut short = b.blobs.clone();
    short[1].1.pop();
    let e = refused_bytes(&assemble(m, &short, &[]));
    assert!(e.contains("blob table"), "{e}");
}

#[test]
fn forged_or_malformed_signatures_are_refused() {
    let b = base();
    let m = b.manifest.as_bytes();
    let key = SecretKey::generate().unwrap();
    let other = SecretKey::generate().unwrap();
    let good = key.sign(m);
    let forged: Vec<(SignatureEntry, &str)> = vec![
        // Another key's public key claimed for the signature.
        (
            SignatureEntry {
                public_key: other.public().to_hex(),
                ..good.clone()
            },
            "does not verify",
        ),
        (
            SignatureEntry {
                key_id: other.public().key_id(),
                ..good.clone()
            },
            "does not verify",
        ),
        // A signature over other bytes.
        (
            SignatureEntry {
                signature: key.sign(b"{}").signature,
                ..good.clone()
            },
            "does not verify",
        ),
        (
            SignatureEntry {
                signature: "00".repeat(64),
                ..good.clone()
            },
            "does not verify",
        ),
        (
            SignatureEntry {
                signature: "zz".into(),
                ..good.clone()
            },
            "malformed",
        ),
        (
            SignatureEntry {
                public_key: "00".repeat(32),
                ..good.clone()
            },
            "does not verify",
        ),
        (
            SignatureEntry {
                public_key: "zz".into(),
                ..good.clone()
            },
            "malformed public key",
        ),
    ];
    // Signatures are `verify`'s business (extraction is only done after it succeeded).
    let (_root, _, path) = scratch();
    for (sig, want) in forged {
        std::fs::write(&path, assemble(m, &b.blobs, &[sig, good.clone()])).unwrap();
        let bundle = Bundle::open(&path).unwrap();
        for trusted in [None, Some(key.public())] {
            let e = chain(&bundle.verify(trusted.as_ref(), &mut |_| {}).unwrap_err());
            assert!(e.contains(want), "{e:?} should say {want:?}");
        }
    }
    // A valid signature is only "untrusted" without a key, and refused with another key.
    std::fs::write(&path, assemble(m, &b.blobs, std::slice::from_ref(&good))).unwrap();
    let bundle = Bundle::open(&path).unwrap();
    assert!(bundle.verify(None, &mut |_| {}).is_ok());
    assert!(bundle.verify(Some(&other.public()), &mut |_| {}).is_err());

    // Signature blocks that are not canonical JSON of the expected shape.
    for block in [
        &b"{}"[..],
        b"{\"signatures\":[]}",
        b"[]",
        b"{\"signatures\":[{}]}",
        b"\0",
    ] {
        let mut bytes = assemble(m, &b.blobs, std::slice::from_ref(&good));
        let sig = bundle_format::sign::SignatureBlock {
            signatures: vec![good.clone()],
        }
        .to_bytes();
        let at = bytes.len() - 64 - sig.len();
        bytes.truncate(at);
        let text = String::from_utf8_lossy(block).into_owned();
        bytes.extend_from_slice(block);
        fix_up(&mut bytes, block.len());
        let e = refused_bytes(&bytes);
        assert!(e.contains("signature block is not valid"), "{text}: {e}");
    }
}

/// Rewrites the header's signature length and appends a trailer for the bytes so far (a
/// signature block of `sig_len` bytes at the end).
fn fix_up(bytes: &mut Vec<u8>, sig_len: usize) {
    bytes[40..48].copy_from_slice(&(sig_len as u64).to_le_bytes());
    let h = bundle_format::container::Header::decode(bytes[..64].try_into().unwrap()).unwrap();
    let parts_end = 64 + (h.manifest_len + h.table_len) as usize;
    let meta = [&bytes[..parts_end], &bytes[bytes.len() - sig_len..]].concat();
    let t = bundle_format::container::Trailer {
        payload_len: bytes.len() as u64 + 64,
        meta_digest: Digest::of(&meta),
    };
    bytes.extend_from_slice(&t.encode());
}
