//! Launcher stubs in files (SPEC.md §2.1): a self-executable file keeps its payload byte for
//! byte and verifies; stripping gives the plain bundle back; every change to the stub region
//! (ELF, padding, note) or a note from another payload is refused by `verify_stub`; bytes
//! prepended without a note are an unrecorded stub; a bundle of a newer format version says so.

mod common;

use std::fs;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bundle_format::stub::{self, ElfSource, NOTE_LEN};
use bundle_format::{Bundle, Digest, Error, SecretKey, SignatureState, StubError, StubState};
use common::*;

/// A stand-in for the stub ELF: the magic, then bytes that do not end on a 4 KiB boundary.
fn fake_elf(dir: &Path, len: usize, seed: u8) -> PathBuf {
    let mut b: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    b[..4].copy_from_slice(b"\x7fELF");
    let p = dir.join(format!("elf-{seed}"));
    fs::write(&p, b).unwrap();
    p
}

fn self_exec(dir: &Path, plain: &Path, elf: &Path, keys: &[SecretKey]) -> PathBuf {
    let out = dir.join("app.capsa");
    let b = Bundle::open(plain).unwrap();
    let f = fs::File::open(elf).unwrap();
    let len = f.metadata().unwrap().len();
    let src = ElfSource {
        file: &f,
        len,
        expected: None,
    };
    stub::write_self_exec(&out, src, &b, keys, "0.1.0").unwrap();
    out
}

fn stub_error(path: &Path) -> StubError {
    match Bundle::open(path).unwrap().verify_stub(None) {
        Err(Error::Stub(e)) => e,
        other => panic!("{}: expected a stub error, got {other:?}", path.display()),
    }
}

fn patch(path: &Path, at: u64, bytes: &[u8]) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, at).unwrap();
}

#[test]
fn a_self_exec_file_keeps_the_payload_and_strips_back_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain.capsa");
    write(&plain, &sample_tree(), &[], 1);
    let elf = fake_elf(tmp.path(), 10_000, 1);
    let key = SecretKey::generate().unwrap();
    let out = self_exec(tmp.path(), &plain, &elf, std::slice::from_ref(&key));
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let (bytes, plain_bytes) = (fs::read(&out).unwrap(), fs::read(&plain).unwrap());
    let p = bytes.len() - plain_bytes.len();
    assert_eq!(p, 12288, "10000 + {NOTE_LEN} rounded up to 4096");
    assert_eq!(&bytes[p..], &plain_bytes[..]);
    assert_eq!(&bytes[..10_000], &fs::read(&elf).unwrap()[..]);
    let b = Bundle::open(&out).unwrap();
    b.verify(None, &mut |_| {}).unwrap();
    let check = b.verify_stub(Some(&key.public())).unwrap().unwrap();
    assert_eq!(check.note.elf_len, 10_000);
    assert_eq!(check.note.elf_sha256, Digest::of(&bytes[..10_000]));
    assert_eq!(
        check.signature,
        SignatureState::Trusted {
            key_id: key.public().key_id()
        }
    );
    let other = SecretKey::generate().unwrap().public();
    assert!(matches!(
        b.verify_stub(Some(&other)),
        Err(Error::Stub(StubError::NotSignedBy { .. }))
    ));
    let back = tmp.path().join("back.capsa");
    stub::write_plain(&back, &b).unwrap();
    assert_eq!(fs::read(&back).unwrap(), plain_bytes);
    assert_eq!(
        Bundle::open(&plain).unwrap().stub().unwrap(),
        StubState::None
    );
    let elf_out = tmp.path().join("capsa");
    stub::write_stub_elf(&elf_out, &b, &check.note).unwrap();
    assert_eq!(fs::read(&elf_out).unwrap(), fs::read(&elf).unwrap());
}

#[test]
fn every_change_to_the_stub_region_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain.capsa");
    write(&plain, &sample_tree(), &[], 1);
    let elf = fake_elf(tmp.path(), 5000, 2);
    let out = self_exec(tmp.path(), &plain, &elf, &[SecretKey::generate().unwrap()]);
    let good = fs::read(&out).unwrap();
    let p = (good.len() - fs::read(&plain).unwrap().len()) as u64;
    let note_at = p - NOTE_LEN;
    let restore = || fs::write(&out, &good).unwrap();
    // One flipped byte anywhere in the ELF, padding or note.
    for at in [
        0,
        4,
        2500,
        4999,
        5000,
        6000,
        note_at - 1,
        note_at + 30,
        note_at + 100,
        p - 1,
    ] {
        patch(&out, at, &[good[at as usize] ^ 0x40]);
        let e = stub_error(&out);
        let what = e.to_string();
        assert!(
            what.contains("changed after") || matches!(e, StubError::Unrecorded { .. }),
            "byte {at}: {what}"
        );
        Bundle::open(&out)
            .unwrap()
            .verify(None, &mut |_| {})
            .unwrap();
        restore();
    }
    // Another ELF of the same length under the note.
    let swapped = fs::read(fake_elf(tmp.path(), 5000, 3)).unwrap();
    patch(&out, 0, &swapped);
    assert!(matches!(stub_error(&out), StubError::ElfChanged { .. }));
    restore();
    // The region of a stub made for another payload in front of this one.
    let plain2 = tmp.path().join("plain2.capsa");
    let mut tree = sample_tree();
    tree[0].push(file("usr/lib/other", b"other"));
    write(&plain2, &tree, &[], 1);
    let mut spliced = good[..p as usize].to_vec();
    spliced.extend(fs::read(&plain2).unwrap());
    fs::write(&out, spliced).unwrap();
    assert!(matches!(stub_error(&out), StubError::OtherPayload { .. }));
    // Bytes prepended without a note: the payload opens, the stub is unrecorded.
    let mut catted = fs::read(&elf).unwrap();
    catted.extend(fs::read(&plain).unwrap());
    fs::write(&out, catted).unwrap();
    let b = Bundle::open(&out).unwrap();
    assert_eq!(b.stub().unwrap(), StubState::Unrecorded { len: 5000 });
    assert!(matches!(
        stub_error(&out),
        StubError::Unrecorded { len: 5000 }
    ));
}

#[test]
fn a_stub_must_be_an_elf_and_at_most_four_keys_sign_it() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain.capsa");
    write(&plain, &sample_tree(), &[], 1);
    let b = Bundle::open(&plain).unwrap();
    let not_elf = tmp.path().join("script");
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&not_elf)
        .unwrap();
    fs::write(&not_elf, b"#!/bin/sh\necho hi\n").unwrap();
    let f = fs::File::open(&not_elf).unwrap();
    let out = tmp.path().join("out.capsa");
    let src = |f| ElfSource {
        file: f,
        len: 18,
        expected: None,
    };
    let e = stub::write_self_exec(&out, src(&f), &b, &[], "0.1.0").unwrap_err();
    assert!(matches!(e, Error::Stub(StubError::NotElf)), "{e}");
    let elf = fs::File::open(fake_elf(tmp.path(), 100, 4)).unwrap();
    let keys: Vec<_> = (0..5).map(|_| SecretKey::generate().unwrap()).collect();
    let e = stub::write_self_exec(&out, src(&elf), &b, &keys, "0.1.0").unwrap_err();
    assert!(matches!(e, Error::Stub(StubError::TooManyKeys(5))), "{e}");
    assert!(!out.exists(), "a refused stub left {}", out.display());
    assert_eq!(listing(tmp.path()).len(), 3, "{:?}", listing(tmp.path()));
}

#[test]
fn a_newer_format_version_is_named_with_the_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("v2.capsa");
    write(&path, &sample_tree(), &[], 1);
    let len = fs::metadata(&path).unwrap().len();
    // The header's version alone is a damaged header (a flipped byte, not a newer format:
    // its trailer says version 1); the trailer's is a newer format, checked before the meta
    // digest, so nothing else needs recomputing to reach it.
    patch(&path, 8, &2u16.to_le_bytes());
    let e = Bundle::open(&path).unwrap_err();
    assert!(matches!(e, Error::Layout { part: "header", .. }), "{e}");
    patch(&path, len - 64 + 8, &2u16.to_le_bytes());
    let e = Bundle::open(&path).unwrap_err();
    assert!(
        matches!(e, Error::FormatTooNew { needs: 2, reads: 1 }),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "this bundle needs bundle format version 2; this capsa ({}) reads up to version 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{e}"
    );
}
