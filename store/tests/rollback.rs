//! `store::rollback`: the previous release becomes current and the current one previous, in
//! one switch, without the bundle; the exports follow; a second rollback goes forward again.
//! An app that is not installed, one without a previous release, and one whose previous
//! release's layer is damaged are refused, and nothing changes.

mod support;

use std::fs;

use bundle_format::LayerRole;
use store::{rollback, Rolled, StoreError};
use support::*;

const ID: &str = "org.capsa.Rollback";

/// An app installed at 1.0, then updated to 2.0 (each release its own app layer, the
/// libraries shared); the app layers' blobs are returned too.
fn two_releases(s: &Store) -> (Built, Built) {
    let blobs = s.path().join("blobs");
    let deps = layer(
        &blobs,
        LayerRole::Deps,
        &["usr", "usr/lib"],
        &[("usr/lib/libx.so", b"shared")],
    );
    let app = |v: &str| {
        let text = format!("#!/bin/sh\necho {v}\n");
        layer(
            &blobs,
            LayerRole::App,
            &["usr", "usr/bin"],
            &[("usr/bin/app", text.as_bytes())],
        )
    };
    let (a1, a2) = (app("1.0"), app("2.0"));
    let b1 = bundle(&s.path().join("1.capsa"), ID, "1.0", &[&deps, &a1]);
    let b2 = bundle(&s.path().join("2.capsa"), ID, "2.0", &[&deps, &a2]);
    s.install(&b1).unwrap();
    s.install(&b2).unwrap();
    (a1, a2)
}

fn links(s: &Store) -> (Option<String>, Option<String>) {
    (s.version(ID, "current"), s.version(ID, "previous"))
}

#[test]
fn rolling_back_swaps_current_and_previous_and_again_goes_forward() {
    let s = Store::new();
    two_releases(&s);
    assert_eq!(links(&s), (Some("2.0".into()), Some("1.0".into())));
    assert!(s.desktop_entry(ID).contains("Comment=release 2.0\n"));

    let back = rollback(&s.layout, ID, &s.exe()).unwrap();
    let want = Rolled {
        id: ID.into(),
        from: "2.0".into(),
        to: "1.0".into(),
    };
    assert_eq!(back, want);
    assert_eq!(links(&s), (Some("1.0".into()), Some("2.0".into())));
    assert!(s.desktop_entry(ID).contains("Comment=release 1.0\n"));
    let app = s.layout.app(ID);
    assert!(!app.join("switch.json").exists(), "the intent was applied");
    assert!(s.layout.root.join("clean").is_file());
    assert_eq!(fs::read_dir(app.join("releases")).unwrap().count(), 2);
    assert_eq!(store::list(&s.layout, &s.exe()).unwrap()[0].version, "1.0");

    let forward = rollback(&s.layout, ID, &s.exe()).unwrap();
    assert_eq!((forward.from.as_str(), forward.to.as_str()), ("1.0", "2.0"));
    assert_eq!(links(&s), (Some("2.0".into()), Some("1.0".into())));
    assert!(s.desktop_entry(ID).contains("Comment=release 2.0\n"));
}

#[test]
fn a_killed_rollback_is_finished_by_the_next_command() {
    let s = Store::new();
    two_releases(&s);
    rollback(&s.layout, ID, &s.exe()).unwrap();
    // As if killed after the intent was written: recovery applies it.
    let app = s.layout.app(ID);
    let current = fs::read_link(app.join("current")).unwrap();
    let previous = fs::read_link(app.join("previous")).unwrap();
    let intent = serde_json::json!({"current": previous, "previous": current});
    fs::write(app.join("switch.json"), intent.to_string()).unwrap();
    fs::remove_file(s.layout.root.join("clean")).unwrap();
    assert_eq!(store::list(&s.layout, &s.exe()).unwrap()[0].version, "2.0");
    assert_eq!(links(&s), (Some("2.0".into()), Some("1.0".into())));
}

#[test]
fn nothing_to_roll_back_to_is_refused() {
    let s = Store::new();
    let r = rollback(&s.layout, ID, &s.exe());
    assert!(
        matches!(&r, Err(StoreError::NotInstalled(id)) if id == ID),
        "{r:?}"
    );
    let r = rollback(&s.layout, "../evil", &s.exe());
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");

    let blobs = s.path().join("blobs");
    let only = layer(&blobs, LayerRole::App, &["usr"], &[("usr/app", b"1")]);
    s.install(&bundle(&s.path().join("1.capsa"), ID, "1.0", &[&only]))
        .unwrap();
    let r = rollback(&s.layout, ID, &s.exe());
    assert!(
        matches!(&r, Err(StoreError::NoPrevious(id)) if id == ID),
        "{r:?}"
    );
    assert_eq!(links(&s), (Some("1.0".into()), None));
}

#[test]
fn a_damaged_previous_release_is_refused_and_nothing_changes() {
    let s = Store::new();
    let (a1, _) = two_releases(&s);
    // The previous release's own app layer lost a file and its stamp.
    let entry = s.layout.layers().join(a1.layer.digest.hex());
    fs::remove_file(entry.join("sealed")).unwrap();
    fs::remove_file(entry.join("tree/usr/bin/app")).unwrap();
    let r = rollback(&s.layout, ID, &s.exe());
    assert!(
        matches!(
            r,
            Err(StoreError::Data(userdata::DataError::Damaged { .. }))
        ),
        "{r:?}"
    );
    assert_eq!(links(&s), (Some("2.0".into()), Some("1.0".into())));
    assert!(s.desktop_entry(ID).contains("Comment=release 2.0\n"));
}
