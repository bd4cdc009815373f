//! Unit tests of signing, opening and validating repository documents.

use super::*;
use bundle_format::SecretKey;

fn key() -> SecretKey {
    SecretKey::generate().unwrap()
}

fn root(version: u64, k: &SecretKey) -> Root {
    Root {
        kind: DocKind::Root,
        version,
        expires: 4_000_000_000,
        signers: KeySet::single(&k.public()),
    }
}

fn index(version: u64) -> Index {
    Index {
        kind: DocKind::Index,
        version,
        expires: 4_000_000_000,
        root: 1,
        apps: BTreeMap::new(),
    }
}

#[test]
fn a_signed_index_opens_only_with_the_roots_key_and_its_own_context() {
    let (k, other) = (key(), key());
    let r = root(1, &k);
    let bytes = seal(index(3), INDEX_CONTEXT, &[&k]).unwrap();
    assert_eq!(open_index(&r, &bytes).unwrap().version, 3);
    // Another key.
    let forged = seal(index(3), INDEX_CONTEXT, &[&other]).unwrap();
    assert!(matches!(
        open_index(&r, &forged),
        Err(MetaError::Signature { .. })
    ));
    // The right key in the wrong context (a root signature replayed as an index's).
    let replay = seal(index(3), ROOT_CONTEXT, &[&k]).unwrap();
    assert!(matches!(
        open_index(&r, &replay),
        Err(MetaError::Signature { .. })
    ));
    // One byte changed in the signed part.
    let text = String::from_utf8(bytes.clone())
        .unwrap()
        .replace("\"version\":3", "\"version\":4");
    assert!(matches!(
        open_index(&r, text.as_bytes()),
        Err(MetaError::Signature { .. })
    ));
    // Not canonical (white space).
    let mut spaced = bytes.clone();
    spaced.insert(1, b' ');
    assert!(matches!(open_index(&r, &spaced), Err(MetaError::Decode(_))));
    // Over the cap.
    let big = vec![b' '; MAX_INDEX as usize + 1];
    assert!(matches!(
        open_index(&r, &big),
        Err(MetaError::TooLarge { .. })
    ));
}

#[test]
fn a_rotation_needs_the_old_keys_and_the_new() {
    let (old, new) = (key(), key());
    let r1 = root(1, &old);
    assert_eq!(
        open_root(&seal(r1.clone(), ROOT_CONTEXT, &[&old]).unwrap()).unwrap(),
        r1
    );
    let r2 = root(2, &new);
    let only_new = seal(r2.clone(), ROOT_CONTEXT, &[&new]).unwrap();
    assert!(matches!(
        next_root(&r1, &only_new),
        Err(MetaError::Signature { .. })
    ));
    let only_old = seal(r2.clone(), ROOT_CONTEXT, &[&old]).unwrap();
    assert!(matches!(
        next_root(&r1, &only_old),
        Err(MetaError::Signature { .. })
    ));
    let both = seal(r2.clone(), ROOT_CONTEXT, &[&old, &new]).unwrap();
    assert_eq!(next_root(&r1, &both).unwrap(), r2);
    // Skipping a version is refused.
    let r3 = seal(root(3, &new), ROOT_CONTEXT, &[&old, &new]).unwrap();
    assert!(matches!(
        next_root(&r1, &r3),
        Err(MetaError::RootVersion {
            expected: 2,
            got: 3
        })
    ));
}

fn doc(k: &SecretKey) -> AppDoc {
    let d = bundle_format::Digest::of(b"m");
    let blob = BlobRef { digest: d, size: 1 };
    let rel = |seq, v: &str| ReleaseDoc {
        seq,
        version: v.into(),
        manifest: d,
        bundle: blob,
        head: blob,
        tail: blob,
        permissions: vec!["network".into()],
        added: 0,
        yanked: None,
    };
    AppDoc {
        kind: DocKind::App,
        app: "org.example.Foo".into(),
        publisher: k.public().to_hex(),
        name: "Foo".into(),
        summary: "a test".into(),
        icon: None,
        releases: vec![rel(1, "1.0"), rel(2, "1.1")],
        channels: BTreeMap::from([(
            "stable".to_string(),
            Channel {
                release: 2,
                fallback: Some(1),
                rollout: None,
            },
        )]),
    }
}

#[test]
fn app_documents_are_validated_on_decode() {
    let k = key();
    let good = doc(&k);
    assert_eq!(open_app_doc(&app_doc_bytes(&good).unwrap()).unwrap(), good);
    let mut bad = good.clone();
    bad.channels.get_mut("stable").unwrap().release = 9;
    assert!(
        open_app_doc(&app_doc_bytes(&bad).unwrap()).is_err(),
        "a channel naming no release"
    );
    let mut bad = good.clone();
    bad.releases[1].seq = 1;
    assert!(
        open_app_doc(&app_doc_bytes(&bad).unwrap()).is_err(),
        "seqs must increase"
    );
    let mut bad = good.clone();
    bad.name = "Foo\u{1b}]0;owned\u{7}".into();
    assert!(
        open_app_doc(&app_doc_bytes(&bad).unwrap()).is_err(),
        "escape sequences"
    );
    let mut bad = good.clone();
    bad.app = "../etc".into();
    assert!(
        open_app_doc(&app_doc_bytes(&bad).unwrap()).is_err(),
        "not an app id"
    );
    let mut bad = good;
    bad.channels.get_mut("stable").unwrap().rollout = Some(Rollout {
        percent: 101,
        seed: "s".into(),
        halted: false,
    });
    assert!(
        open_app_doc(&app_doc_bytes(&bad).unwrap()).is_err(),
        "over 100%"
    );
}

#[test]
fn channels_choose_by_rollout_halt_and_yank() {
    use choose::{choose, Why};
    let k = key();
    let mut d = doc(&k);
    assert_eq!(
        choose(&d, "stable", "c").map(|(r, w)| (r.seq, w)),
        Some((2, Why::Channel))
    );
    assert!(choose(&d, "beta", "c").is_none());
    d.channels.get_mut("stable").unwrap().rollout = Some(Rollout {
        percent: 50,
        seed: "s".into(),
        halted: false,
    });
    let ids: Vec<String> = (0..1000).map(|i| format!("client-{i}")).collect();
    let new = ids
        .iter()
        .filter(|c| choose(&d, "stable", c).unwrap().0.seq == 2)
        .count();
    assert!((450..=550).contains(&new), "{new}");
    d.channels
        .get_mut("stable")
        .unwrap()
        .rollout
        .as_mut()
        .unwrap()
        .halted = true;
    assert!(ids
        .iter()
        .all(|c| choose(&d, "stable", c).unwrap().0.seq == 1));
    d.channels.get_mut("stable").unwrap().rollout = None;
    d.releases[1].yanked = Some("broken".into());
    assert_eq!(
        choose(&d, "stable", "c").map(|(r, w)| (r.seq, w)),
        Some((1, Why::Yanked))
    );
}
