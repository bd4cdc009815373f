//! The repository client against repositories on disk (`file://` remotes), written by the
//! tests' own publisher (tests/common): install by name, updates that fetch only what
//! changed, channels, and each refusal of TUF's threat list that the client owns.

mod common;

use std::fs;

use bundle_format::{BlobRef, Bundle, Digest, SecretKey};
use common::{make_bundle, noise, put, two_layers, Repo, User};
use repository::client::{
    origin, remote, storeside, text, trust, Action, ClientError, ReleaseProblem, Request, Why,
};
use repository::layout;
use repository::meta::{seal, MetaError, INDEX_CONTEXT};

const APP: &str = "org.example.Foo";
const OTHER: &str = "org.example.Bar";

fn key() -> SecretKey {
    SecretKey::generate().unwrap()
}

/// A repository with `APP` 1.0 (two layers) on `stable`, and a user with it as remote `main`.
fn setup() -> (User, Repo, tempfile::TempDir) {
    let user = User::new();
    let work = tempfile::tempdir().unwrap();
    let mut repo = Repo::new(&work.path().join("repo"), key());
    let b = work.path().join("foo-1.capsa");
    make_bundle(&b, APP, "1.0", &two_layers("v1", 20, &[]), Some(repo.key()));
    let publisher = key_copy(repo.key());
    repo.add(&b, &publisher, "stable", None);
    repo.publish();
    user.add_remote("main", &repo);
    (user, repo, work)
}

fn key_copy(k: &SecretKey) -> SecretKey {
    let dir = tempfile::tempdir().unwrap();
    let (kp, _) = k.save(&dir.path().join("k")).unwrap();
    SecretKey::load(&kp).unwrap()
}

/// Publishes `APP` at `version`, built by `layers`, signed by the repository's first key.
fn publish(repo: &mut Repo, work: &std::path::Path, version: &str, layers: &[common::LayerSpec]) {
    let b = work.join(format!("foo-{version}.capsa"));
    make_bundle(&b, APP, version, layers, Some(repo.key()));
    let k = key_copy(repo.key());
    repo.add(&b, &k, "stable", None);
    repo.publish();
}

#[test]
fn install_by_name_fetches_the_exact_bundle_and_the_store_installs_it() {
    let (user, repo, work) = setup();
    let mut c = user.client();
    let p = c.prepare_install(APP, &Request::default()).unwrap();
    let original = fs::read(work.path().join("foo-1.capsa")).unwrap();
    assert_eq!(fs::read(&p.bundle_path).unwrap(), original, "byte for byte");
    assert_eq!((p.release.seq, p.why), (1, Why::Channel));
    assert_eq!(p.publisher, repo.key().public());
    user.install(&c, &p);
    let o = origin::load(&user.dirs(), APP).unwrap().unwrap();
    assert_eq!(
        (o.remote.as_str(), o.channel.as_str(), o.seq),
        ("main", "stable", 1)
    );
    assert_eq!(o.key_id, repo.key().public().key_id());
    let plans = user.client().check_updates(&[]);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].as_ref().unwrap().action, Action::UpToDate);
    // The temporary bundle file goes with the prepared install.
    let path = p.bundle_path.to_path_buf();
    drop(p);
    assert!(!path.exists());
}

#[test]
fn search_finds_apps_by_id_name_or_summary() {
    let (user, mut repo, work) = setup();
    let b = work.path().join("bar.capsa");
    make_bundle(
        &b,
        OTHER,
        "3.0",
        &two_layers("bar", 2, &[]),
        Some(repo.key()),
    );
    let k = key_copy(repo.key());
    repo.add(&b, &k, "stable", None);
    repo.publish();
    let mut c = user.client();
    let s = c.search("BAR");
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(s.hits.len(), 1);
    assert_eq!(
        (s.hits[0].app.as_str(), s.hits[0].version.as_deref()),
        (OTHER, Some("3.0"))
    );
    assert_eq!(c.search("for the tests").hits.len(), 2);
    assert!(c.search("nothing like it").hits.is_empty());
}

#[test]
fn an_older_index_is_refused_even_after_the_remote_is_removed_and_added_again() {
    let (user, mut repo, work) = setup();
    let old = fs::read(repo.dir.join(layout::INDEX)).unwrap();
    publish(&mut repo, work.path(), "1.1", &two_layers("v2", 20, &[3]));
    user.client().index("main").unwrap();
    // A replayed index (a mirror serving an old copy, or an attacker).
    fs::write(repo.dir.join(layout::INDEX), &old).unwrap();
    let refused = |c: &mut repository::client::Client, name: &str| match c.index(name) {
        Err(ClientError::Rollback { got, kept, .. }) => assert_eq!((got, kept), (2, 3)),
        other => panic!("{name}: {other:?}"),
    };
    refused(&mut user.client(), "main");
    // Removing and re-adding the remote (same key) keeps what the client knows: the trust
    // state is kept by the key, not by the remote's name.
    remote::remove(&user.dirs(), "main").unwrap();
    user.add_remote("main", &repo);
    refused(&mut user.client(), "main");
    user.add_remote("again", &repo);
    refused(&mut user.client(), "again");
    let st = trust::state(&user.dirs(), &repo.key().public().key_id()).unwrap();
    assert_eq!(st.index_version, 3);
}

#[test]
fn an_expired_index_is_refused_with_its_expiry_date() {
    let (user, mut repo, _work) = setup();
    repo.expires = 1_000_000_000;
    repo.publish();
    let e = user.client().index("main").map(|_| ()).unwrap_err();
    assert!(matches!(e, ClientError::Expired { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("2001-09-09 01:46:40 UTC"), "{msg}");
    assert!(msg.contains("capsa repo refresh"), "{msg}");
}

#[test]
fn an_index_signed_by_another_key_is_refused() {
    let (user, repo, _work) = setup();
    let forged = seal(repo.index_doc(7), INDEX_CONTEXT, &[&key()]).unwrap();
    fs::write(repo.dir.join(layout::INDEX), forged).unwrap();
    match user.client().index("main") {
        Err(ClientError::Meta {
            file,
            source: MetaError::Signature { .. },
            ..
        }) => assert_eq!(file, layout::INDEX),
        other => panic!("{other:?}"),
    }
    // Nothing moved forward: the good index still opens afterwards.
    let st = trust::state(&user.dirs(), &repo.key().public().key_id()).unwrap();
    assert_eq!(st.index_version, 0);
}

#[test]
fn a_remote_whose_key_signed_no_root_is_refused() {
    let (user, repo, _work) = setup();
    remote::add(&user.dirs(), "wrong", &repo.url(), &[], &key().public()).unwrap();
    let e = user.client().index("wrong").map(|_| ()).unwrap_err();
    assert!(matches!(e, ClientError::Untrusted { .. }), "{e:?}");
}

#[test]
fn an_app_document_that_differs_from_the_index_entry_is_refused() {
    let (user, repo, _work) = setup();
    let entry = repo.index_doc(1).apps[APP];
    let path = repo.dir.join(layout::blob(&entry.digest));
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("for the tests", "for the testz")).unwrap();
    match user.client().prepare_install(APP, &Request::default()) {
        Err(ClientError::Digest { expected, .. }) => assert_eq!(expected, entry.digest),
        other => panic!("{other:?}"),
    }
}

#[test]
fn another_apps_document_under_this_apps_entry_is_refused() {
    let (user, mut repo, work) = setup();
    let b = work.path().join("bar.capsa");
    make_bundle(
        &b,
        OTHER,
        "1.0",
        &two_layers("bar", 2, &[]),
        Some(repo.key()),
    );
    let k = key_copy(repo.key());
    repo.add(&b, &k, "stable", None);
    let bar = repo.index_doc(1).apps[OTHER];
    repo.entry_override.insert(APP.into(), bar);
    repo.publish();
    match user.client().prepare_install(APP, &Request::default()) {
        Err(ClientError::MixAndMatch { app, got, .. }) => {
            assert_eq!((app.as_str(), got.as_str()), (APP, OTHER))
        }
        other => panic!("{other:?}"),
    }
}

/// `APP`'s release 1 pointing at `OTHER`'s bundle, with the manifest digest
/// `manifest(mine, theirs)` picks from the two releases' manifest digests.
fn cross_wired(manifest: impl Fn(&Digest, &Digest) -> Digest) -> (User, Repo, tempfile::TempDir) {
    let (user, mut repo, work) = setup();
    let b = work.path().join("bar.capsa");
    make_bundle(
        &b,
        OTHER,
        "1.0",
        &two_layers("bar", 2, &[]),
        Some(repo.key()),
    );
    let k = key_copy(repo.key());
    let bar = repo.add(&b, &k, "stable", None);
    let mine = &mut repo.docs.get_mut(APP).unwrap().releases[0];
    let m = manifest(&mine.manifest, &bar.manifest);
    *mine = repository::meta::ReleaseDoc {
        manifest: m,
        version: mine.version.clone(),
        ..bar
    };
    repo.publish();
    (user, repo, work)
}

/// Why installing `APP` was refused as a release.
fn refused_release(user: &User) -> ReleaseProblem {
    match user.client().prepare_install(APP, &Request::default()) {
        Err(ClientError::Release { problem, .. }) => *problem,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_release_whose_manifest_digest_differs_is_refused() {
    let (user, _repo, _work) = cross_wired(|foo, _| *foo);
    let p = refused_release(&user);
    assert!(matches!(p, ReleaseProblem::ManifestDigest { .. }), "{p:?}");
}

#[test]
fn a_release_whose_manifest_is_another_apps_is_refused() {
    let (user, _repo, _work) = cross_wired(|_, bar| *bar);
    match refused_release(&user) {
        ReleaseProblem::ManifestApp { got } => assert_eq!(got, OTHER),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bundle_not_signed_by_the_documents_publisher_is_refused() {
    let (user, mut repo, work) = setup();
    let b = work.path().join("foo-evil.capsa");
    let evil = key();
    make_bundle(&b, APP, "6.6.6", &two_layers("evil", 20, &[1]), Some(&evil));
    let k = key_copy(repo.key());
    repo.add(&b, &k, "stable", None);
    repo.publish();
    match refused_release(&user) {
        ReleaseProblem::Publisher { key_id } => assert_eq!(key_id, repo.key().public().key_id()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_downgrade_is_refused_without_allow_downgrade_even_after_remove_and_add() {
    let (user, mut repo, work) = setup();
    publish(&mut repo, work.path(), "1.1", &two_layers("v2", 20, &[2]));
    let mut c = user.client();
    let p = c.prepare_install(APP, &Request::default()).unwrap();
    assert_eq!(p.release.seq, 2);
    user.install(&c, &p);
    // The publisher (or whoever holds its key) points stable back at 1.0.
    let ch = repo
        .docs
        .get_mut(APP)
        .unwrap()
        .channels
        .get_mut("stable")
        .unwrap();
    (ch.release, ch.fallback) = (1, None);
    repo.publish();
    let plan = user
        .client()
        .check_updates(&[APP.into()])
        .remove(0)
        .unwrap();
    assert_eq!((plan.action, plan.release.seq), (Action::Downgrade, 1));
    let mut c = user.client();
    let e = c.prepare_update(&plan, false).map(|_| ()).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Downgrade {
                chosen_seq: 1,
                installed_seq: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("--allow-downgrade"), "{e}");
    // The floor is kept by key: a removed and re-added remote, and an app uninstalled in
    // between, still refuse.
    remote::remove(&user.dirs(), "main").unwrap();
    user.add_remote("main", &repo);
    store::uninstall(
        &user.store(),
        APP,
        false,
        std::path::Path::new("/usr/bin/true"),
    )
    .unwrap();
    let e = user
        .client()
        .prepare_install(APP, &Request::default())
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, ClientError::Downgrade { .. }), "{e:?}");
    let allowed = Request {
        allow_downgrade: true,
        ..Request::default()
    };
    let p = user.client().prepare_install(APP, &allowed).unwrap();
    assert_eq!(p.release.seq, 1);
}

#[test]
fn a_halted_rollout_sends_its_clients_back_to_the_fallback() {
    let (user, mut repo, work) = setup();
    let b = work.path().join("foo-2.capsa");
    make_bundle(
        &b,
        APP,
        "2.0",
        &two_layers("v2", 20, &[0]),
        Some(repo.key()),
    );
    let k = key_copy(repo.key());
    repo.add(&b, &k, "stable", Some(100));
    repo.publish();
    let mut c = user.client();
    let p = c.prepare_install(APP, &Request::default()).unwrap();
    assert!(
        matches!(p.why, Why::InRollout { percent: 100, .. }),
        "{:?}",
        p.why
    );
    user.install(&c, &p);
    let ch = repo
        .docs
        .get_mut(APP)
        .unwrap()
        .channels
        .get_mut("stable")
        .unwrap();
    ch.rollout.as_mut().unwrap().halted = true;
    repo.publish();
    let plan = user.client().check_updates(&[]).remove(0).unwrap();
    assert_eq!(
        (plan.action, plan.release.seq, plan.why),
        (Action::PulledBack, 1, Why::Halted)
    );
    assert!(text::why(&plan.why).contains("halted"));
    user.client().prepare_update(&plan, false).unwrap();
}

#[test]
fn a_root_rotation_is_followed_and_a_root_signed_only_by_the_new_key_is_refused() {
    let (user, mut repo, work) = setup();
    user.client().index("main").unwrap();
    // A proper rotation: root 2 signed by the old key and the new one.
    let old = key_copy(repo.key());
    let new = key();
    repo.rotate(key_copy(&new), &[&old, &new]);
    repo.publish();
    user.client().index("main").unwrap();
    let st = trust::state(&user.dirs(), &old.public().key_id()).unwrap();
    assert_eq!(st.root.unwrap().version, 2);

    // Another repository, where root 2 is signed by the new key only.
    let (user2, mut repo2, _w2) = setup();
    let _ = work;
    user2.client().index("main").unwrap();
    let new2 = key();
    repo2.rotate(key_copy(&new2), &[&new2]);
    repo2.publish();
    let refused = |c: &mut repository::client::Client| match c.index("main") {
        Err(ClientError::Meta {
            file,
            source: MetaError::Signature { .. },
            ..
        }) => assert_eq!(file, layout::root(2)),
        other => panic!("{other:?}"),
    };
    refused(&mut user2.client());
    // A client that never saw the repository, pinned to the old key, refuses it too.
    let fresh = User::new();
    remote::add(
        &fresh.dirs(),
        "main",
        &repo2.url(),
        &[],
        &repo2_old_key(&user2),
    )
    .unwrap();
    refused(&mut fresh.client());
}

fn repo2_old_key(user: &User) -> bundle_format::PublicKey {
    remote::get(&user.dirs(), "main").unwrap().public_key()
}

#[test]
fn an_update_fetches_only_the_changed_file_and_builds_the_layer() {
    let (user, mut repo, work) = setup();
    let mut c = user.client();
    let p = c.prepare_install(APP, &Request::default()).unwrap();
    user.install(&c, &p);
    publish(&mut repo, work.path(), "1.1", &two_layers("v2", 20, &[7]));
    let mut c = user.client();
    let plan = c.check_updates(&[]).remove(0).unwrap();
    assert_eq!((plan.action, plan.release.seq), (Action::Update, 2));
    let before = c.bytes_received();
    let p = c.prepare_update(&plan, false).unwrap();
    let fetched = c.bytes_received() - before;
    let d = p.delta.clone().unwrap();
    assert_eq!(
        (d.layers_kept, d.layers_built, d.layers_whole),
        (1, 1, 0),
        "{d:?}"
    );
    assert_eq!((d.files_local, d.files_fetched), (19, 1), "{d:?}");
    let full = p.release.bundle.size;
    // One 16 KiB object, the TOC, the head and the tail: a small part of the bundle.
    assert!(fetched * 10 < full, "fetched {fetched} of {full} bytes");
    // The file is the bundle with holes where the store's sealed layers go.
    let b = Bundle::open(&p.bundle_path).unwrap();
    assert_eq!(b.manifest_digest(), p.release.manifest);
    b.verify_all_but_layers(Some(&p.publisher)).unwrap();
    for l in &b.manifest().layers {
        assert!(storeside::layer_sealed(&user.store(), l), "{:?}", l.role);
        let blob = BlobRef {
            digest: l.digest,
            size: l.size,
        };
        assert!(
            b.check_blob(&blob, "layer").is_err(),
            "a hole, not the blob"
        );
    }
    // The built tree is the layer the signed manifest names, file for file.
    let app = &b.manifest().layers[1];
    let tree = user.store().layers().join(app.digest.hex()).join("tree");
    let toc = b.toc(app).unwrap();
    assert!(userdata::cache::verify::by_content(&tree, &toc).is_some());
    let changed = fs::read(tree.join("usr/share/app/f007")).unwrap();
    assert_eq!(changed, noise("v2-app7", 16 << 10));
    // The store installs the sparse file: it never reads the holes, and 1.1 becomes current
    // with 1.0 kept as the previous release.
    user.install(&c, &p);
    let current = store::Release::current(&user.store(), APP).unwrap();
    assert_eq!(current.manifest.version, "1.1");
    assert_eq!(current.digest, p.release.manifest);
    let back = store::rollback(&user.store(), APP, std::path::Path::new("/usr/bin/true")).unwrap();
    assert_eq!((back.from.as_str(), back.to.as_str()), ("1.1", "1.0"));
}

#[test]
fn an_update_changing_most_of_a_layer_fetches_the_whole_layer() {
    let (user, mut repo, work) = setup();
    let mut c = user.client();
    let p = c.prepare_install(APP, &Request::default()).unwrap();
    user.install(&c, &p);
    let most: Vec<usize> = (0..15).collect();
    publish(&mut repo, work.path(), "2.0", &two_layers("v3", 20, &most));
    let mut c = user.client();
    let plan = c.check_updates(&[]).remove(0).unwrap();
    let p = c.prepare_update(&plan, false).unwrap();
    let d = p.delta.unwrap();
    assert_eq!(
        (d.layers_kept, d.layers_built, d.layers_whole),
        (1, 0, 1),
        "{d:?}"
    );
    let b = Bundle::open(&p.bundle_path).unwrap();
    let app = &b.manifest().layers[1];
    b.check_blob(
        &BlobRef {
            digest: app.digest,
            size: app.size,
        },
        "app layer",
    )
    .unwrap();
}

#[test]
fn a_tampered_object_is_refused_and_nothing_is_built() {
    let (user, mut repo, work) = setup();
    let mut c = user.client();
    let p = c.prepare_install(APP, &Request::default()).unwrap();
    user.install(&c, &p);
    publish(&mut repo, work.path(), "1.1", &two_layers("v2", 20, &[4]));
    let d = Digest::of(&noise("v2-app4", 16 << 10));
    let evil = zstd::bulk::compress(&noise("evil", 16 << 10), 3).unwrap();
    put(&repo.dir, &layout::object(&d), &evil);
    let mut c = user.client();
    let plan = c.check_updates(&[]).remove(0).unwrap();
    match c.prepare_update(&plan, false) {
        Err(ClientError::Digest { file, .. }) => assert_eq!(file, layout::object(&d)),
        other => panic!("{other:?}"),
    }
    let m = Bundle::open(&work.path().join("foo-1.1.capsa")).unwrap();
    assert!(!storeside::layer_sealed(
        &user.store(),
        &m.manifest().layers[1]
    ));
}

#[test]
fn an_update_from_a_remote_with_another_key_is_refused() {
    let (user, repo, _work) = setup();
    let mut c = user.client();
    let p = c.prepare_install(APP, &Request::default()).unwrap();
    user.install(&c, &p);
    remote::remove(&user.dirs(), "main").unwrap();
    remote::add(&user.dirs(), "main", &repo.url(), &[], &key().public()).unwrap();
    let e = user.client().check_updates(&[]).remove(0).unwrap_err();
    assert!(matches!(e, ClientError::KeyChanged { .. }), "{e:?}");
}

#[test]
fn a_dead_main_url_falls_over_to_a_mirror() {
    let (user, repo, work) = setup();
    let dead = format!("file://{}", work.path().join("gone").display());
    remote::add(
        &user.dirs(),
        "mirrored",
        &dead,
        &[repo.url()],
        &repo.key().public(),
    )
    .unwrap();
    let req = Request {
        remote: Some("mirrored".into()),
        ..Request::default()
    };
    let p = user.client().prepare_install(APP, &req).unwrap();
    assert_eq!(p.remote, "mirrored");
}

#[test]
fn remote_names_urls_and_keys_are_checked() {
    let user = User::new();
    let k = key().public();
    let d = user.dirs();
    for bad in ["", "../x", "Main", "-x", "a/b", &"x".repeat(65)] {
        assert!(matches!(
            remote::add(&d, bad, "file:///srv", &[], &k),
            Err(ClientError::RemoteName { .. })
        ));
    }
    for bad in [
        "ftp://x",
        "file://relative",
        "https://",
        "http:///x",
        "https://a b",
    ] {
        assert!(
            matches!(
                remote::add(&d, "r", bad, &[], &k),
                Err(ClientError::Url { .. })
            ),
            "{bad}"
        );
    }
    remote::add(&d, "r", "https://example.org/repo/", &[], &k).unwrap();
    assert!(matches!(
        remote::add(&d, "r", "https://example.org", &[], &k),
        Err(ClientError::RemoteExists { .. })
    ));
    let listed = remote::list(&d).unwrap();
    assert_eq!(listed[0].url, "https://example.org/repo");
    assert_eq!(remote::parse_key(&k.to_hex()).unwrap(), k);
    assert!(matches!(
        remote::parse_key("00"),
        Err(ClientError::Key { .. })
    ));
    // An HTTP remote needs the network fetcher, which this client was not given.
    let e = user.client().index("r").map(|_| ()).unwrap_err();
    assert!(matches!(e, ClientError::Unsupported { .. }), "{e:?}");
}

/// A directory source over one directory holding `rel` with `bytes`.
fn dir_with(rel: &str, bytes: &[u8]) -> (tempfile::TempDir, repository::client::DirSource) {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), rel, bytes);
    let src = repository::client::DirSource::new("t", vec![d.path().to_path_buf()]);
    (d, src)
}

#[test]
fn a_blob_is_checked_while_copied_and_a_longer_body_is_refused() {
    use repository::client::Source;
    let body = noise("blob", 100_000);
    let d = Digest::of(&body);
    let mut longer = body.clone();
    longer.push(0);
    let (dir, src) = dir_with("b", &longer);
    let dest = dir.path().join("out");
    let e = src.blob("b", &d, body.len() as u64, &dest).unwrap_err();
    assert!(matches!(e, ClientError::Digest { .. }), "{e:?}");
    assert!(!dest.exists());
    assert!(!repository::client::source::part_path(&dest).exists());
    // The right body, resumed from a part file that holds its first half.
    let (dir, src) = dir_with("b", &body);
    let dest = dir.path().join("out");
    let part = repository::client::source::part_path(&dest);
    fs::write(&part, &body[..50_000]).unwrap();
    src.blob("b", &d, body.len() as u64, &dest).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), body);
    assert_eq!(
        src.bytes_received(),
        50_000,
        "only the missing half was read"
    );
    assert!(!part.exists());
    // A part file with wrong bytes fails the check, is dropped, and the next try succeeds.
    fs::remove_file(&dest).unwrap();
    fs::write(&part, noise("wrong", 10_000)).unwrap();
    assert!(src.blob("b", &d, body.len() as u64, &dest).is_err());
    assert!(!part.exists());
    src.blob("b", &d, body.len() as u64, &dest).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), body);
}

#[test]
fn metadata_is_capped_and_read_only_from_regular_files() {
    use repository::client::Source;
    let (dir, src) = dir_with("index.json", &[b'x'; 101]);
    assert!(matches!(
        src.meta("index.json", 100),
        Err(ClientError::TooLarge { cap: 100, .. })
    ));
    assert_eq!(src.meta("index.json", 101).unwrap().unwrap().len(), 101);
    assert_eq!(src.meta("root.json", 100).unwrap(), None);
    std::os::unix::fs::symlink(dir.path().join("index.json"), dir.path().join("root.json"))
        .unwrap();
    assert!(matches!(
        src.meta("root.json", 1000),
        Err(ClientError::Fetch { .. })
    ));
    assert!(src.meta("../etc/passwd", 1000).is_err());
}

#[test]
fn an_object_that_inflates_past_its_size_is_refused() {
    use repository::client::Source;
    let content = noise("obj", 5000);
    let d = Digest::of(&content);
    let z = zstd::bulk::compress(&content, 3).unwrap();
    let (_dir, src) = dir_with("o.zst", &z);
    let mut out = Vec::new();
    src.object("o.zst", &d, 5000, &mut out).unwrap();
    assert_eq!(out, content);
    let mut out = Vec::new();
    let e = src.object("o.zst", &Digest::of(&content[..4999]), 4999, &mut out);
    assert!(matches!(e, Err(ClientError::Digest { .. })), "{e:?}");
    assert!(out.len() <= 4999);
}

#[test]
fn the_client_id_is_made_once_and_kept() {
    let user = User::new();
    let id = user.client().client_id().unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(user.client().client_id().unwrap(), id);
    let other = User::new();
    assert_ne!(other.client().client_id().unwrap(), id);
    // A damaged id is replaced.
    fs::write(user.dirs().state.join("client-id"), "junk\n").unwrap();
    let new = user.client().client_id().unwrap();
    assert!(new != id && new.len() == 32);
}
