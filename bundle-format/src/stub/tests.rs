//! Unit tests of the stub note: round trips, what a signature covers, strict decoding.

use super::*;

fn note() -> StubNote {
    StubNote::new(5000, Digest::of(b"elf"), Digest::of(b"meta"), "0.1.0").unwrap()
}

#[test]
fn round_trips_signed_and_unsigned() {
    let n = note();
    assert_eq!(n.region_len(), Some(8192));
    assert_eq!(StubNote::decode(&n.encode(), 8192).unwrap(), n);
    let mut s = n.clone();
    let (a, b) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    s.sign(&a).unwrap();
    s.sign(&b).unwrap();
    s.sign(&a).unwrap();
    assert_eq!(s.signatures.len(), 2, "a key signs once");
    let back = StubNote::decode(&s.encode(), 8192).unwrap();
    assert_eq!(back, s);
    assert_eq!(
        back.check_signatures(Some(&b.public())).unwrap(),
        SignatureState::Trusted {
            key_id: b.public().key_id()
        }
    );
    assert!(matches!(
        back.check_signatures(None).unwrap(),
        SignatureState::Untrusted { key_ids } if key_ids.len() == 2
    ));
    let other = SecretKey::generate().unwrap().public();
    assert!(matches!(
        back.check_signatures(Some(&other)),
        Err(StubError::NotSignedBy { .. })
    ));
    assert_eq!(n.check_signatures(None).unwrap(), SignatureState::Unsigned);
}

#[test]
fn a_signature_covers_every_field() {
    let key = SecretKey::generate().unwrap();
    let mut s = note();
    s.sign(&key).unwrap();
    for edit in [
        |n: &mut StubNote| n.elf_sha256 = Digest::of(b"other"),
        |n: &mut StubNote| n.payload_digest = Digest::of(b"other"),
        |n: &mut StubNote| n.elf_len += 1,
        |n: &mut StubNote| n.reads_format = 9,
        |n: &mut StubNote| n.capsa_version = "6.6.6".into(),
    ] {
        let mut t = s.clone();
        edit(&mut t);
        assert!(matches!(
            t.check_signatures(None),
            Err(StubError::BadSignature { .. })
        ));
    }
    // Signed with the manifest context, a signature does not pass as a stub's.
    let mut t = s.clone();
    let entry = key.sign(&s.signed_bytes());
    t.signatures[0].signature = entry.signature_bytes().unwrap();
    assert!(t.check_signatures(None).is_err());
}

#[test]
fn rejects_every_malformed_field() {
    let good = note().encode();
    let reject = |edit: &dyn Fn(&mut [u8; NOTE_LEN as usize]), len: u64| {
        let mut b = good;
        edit(&mut b);
        StubNote::decode(&b, len).unwrap_err()
    };
    assert_eq!(reject(&|b| b[0] = b'X', 8192), NoteProblem::Version(1));
    assert_eq!(reject(&|b| b[8] = 2, 8192), NoteProblem::Version(2));
    assert_eq!(reject(&|b| b[10] = 1, 8192), NoteProblem::Reserved);
    assert_eq!(reject(&|b| b[14] = 1, 8192), NoteProblem::Reserved);
    assert_eq!(reject(&|b| b[93] = 1, 8192), NoteProblem::Reserved);
    assert!(matches!(reject(&|_| {}, 4096), NoteProblem::ElfLen { .. }));
    assert!(matches!(reject(&|_| {}, 12288), NoteProblem::ElfLen { .. }));
    assert!(matches!(
        reject(&|_| {}, 8191),
        NoteProblem::RegionLen { .. }
    ));
    assert!(matches!(reject(&|_| {}, 0), NoteProblem::RegionLen { .. }));
    assert!(matches!(
        reject(&|b| b[16..24].copy_from_slice(&0u64.to_le_bytes()), 4096),
        NoteProblem::ElfLen { .. }
    ));
    assert!(matches!(
        reject(
            &|b| b[16..24].copy_from_slice(&u64::MAX.to_le_bytes()),
            8192
        ),
        NoteProblem::ElfLen { .. }
    ));
    assert_eq!(
        reject(&|b| b[88..90].fill(0), 8192),
        NoteProblem::ReadsFormat
    );
    assert_eq!(
        reject(&|b| b[96..160].fill(0), 8192),
        NoteProblem::CapsaVersion
    );
    assert_eq!(reject(&|b| b[159] = b'x', 8192), NoteProblem::CapsaVersion);
    assert_eq!(reject(&|b| b[97] = b' ', 8192), NoteProblem::CapsaVersion);
    assert_eq!(reject(&|b| b[97] = 0xff, 8192), NoteProblem::CapsaVersion);
    assert_eq!(
        reject(&|b| b[COUNT_AT] = 5, 8192),
        NoteProblem::SignatureCount(5)
    );
    assert_eq!(reject(&|b| b[543] = 1, 8192), NoteProblem::SignatureSlot(3));
    // A counted slot whose public key is not a curve point.
    let not_a_point = (0..=255u8)
        .find(|&x| PublicKey::from_hex(&hex::encode([x; 32])).is_none())
        .unwrap();
    assert_eq!(
        reject(
            &|b| {
                b[COUNT_AT] = 1;
                b[SIGNED_LEN..SIGNED_LEN + 32].fill(not_a_point);
            },
            8192
        ),
        NoteProblem::SignatureSlot(0)
    );
}

#[test]
fn regions_are_aligned_and_versions_checked() {
    assert_eq!(region_len(1), Some(4096));
    assert_eq!(region_len(4096 - NOTE_LEN), Some(4096));
    assert_eq!(region_len(4097 - NOTE_LEN), Some(8192));
    assert_eq!(region_len(u64::MAX - 10), None);
    assert!(StubNote::new(1, Digest::of(b""), Digest::of(b""), "").is_err());
    assert!(StubNote::new(1, Digest::of(b""), Digest::of(b""), &"9".repeat(65)).is_err());
    assert!(StubNote::new(1, Digest::of(b""), Digest::of(b""), &"9".repeat(64)).is_ok());
}
