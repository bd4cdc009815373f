//! The merge against a small reference model (proptest), and the cases the issue reproduced.

use super::*;
use proptest::prelude::*;

fn p(s: &str) -> Permission {
    s.parse().unwrap()
}
fn k(s: &str) -> Key {
    s.parse().unwrap()
}
fn ch(allow: &[&str], deny: &[&str]) -> Changes {
    Changes {
        allow: allow.iter().map(|s| p(s)).collect(),
        deny: deny.iter().map(|s| k(s)).collect(),
    }
}
fn names(g: &Grants) -> Vec<String> {
    g.iter().map(|p| p.to_string()).collect()
}

#[test]
fn a_run_deny_beats_a_stored_allow() {
    // `capsa override APP --allow network=tcp:443`, then `capsa run APP --deny network`.
    let stored = ch(&["network=tcp:443"], &[]);
    let run = ch(&[], &["network"]);
    assert!(merge(&[], &[&stored, &run]).is_empty());
    // A stored `filesystem=home:ro` and `--deny filesystem=home`.
    let stored = ch(&["filesystem=home:ro"], &[]);
    let run = ch(&[], &["filesystem=home"]);
    assert!(merge(&[p("filesystem=home")], &[&stored, &run]).is_empty());
}

#[test]
fn one_level_can_narrow_a_kind() {
    let run = ch(&["network=tcp:443"], &["network"]);
    assert_eq!(names(&merge(&[p("network")], &[&run])), ["network=tcp:443"]);
    let run = ch(&["filesystem=home:ro"], &["filesystem=home"]);
    assert_eq!(
        names(&merge(&[p("filesystem=home")], &[&run])),
        ["filesystem=home:ro"]
    );
}

#[test]
fn stronger_access_wins_within_a_key() {
    let m = [p("filesystem=home:ro"), p("network=tcp:443")];
    let run = ch(&["filesystem=home", "network=tcp:80"], &[]);
    assert_eq!(
        names(&merge(&m, &[&run])),
        ["network=tcp:80,tcp:443", "filesystem=home"]
    );
    let run = ch(&["network"], &[]);
    assert!(merge(&m, &[&run]).network_all());
}

#[test]
fn beyond_lists_what_an_update_adds() {
    let old = Grants::from_list(&[p("network=tcp:443"), p("filesystem=home:ro")]);
    let new = Grants::from_list(&[p("network=tcp:443"), p("filesystem=home"), p("socket=x11")]);
    let added: Vec<String> = new.beyond(&old).iter().map(|p| p.to_string()).collect();
    assert_eq!(added, ["filesystem=home", "socket=x11"]);
    assert!(old.beyond(&new).is_empty());
}

// ---- the reference model ----

/// Grants as a plain bag of permissions, normalized only at the end.
fn reference(manifest: &[Permission], levels: &[Changes]) -> Vec<String> {
    let mut bag: Vec<Permission> = manifest.to_vec();
    for l in levels {
        bag.retain(|g| !l.deny.contains(&g.key()));
        bag.extend(l.allow.iter().cloned());
    }
    let mut by_key: BTreeMap<Key, Vec<Permission>> = BTreeMap::new();
    for g in bag {
        by_key.entry(g.key()).or_default().push(g);
    }
    let mut out = Vec::new();
    for (key, gs) in by_key {
        let g = match key {
            Key::Network if gs.contains(&Permission::Network) => Permission::Network,
            Key::Network => {
                let mut ports: Vec<u16> = gs
                    .iter()
                    .flat_map(|g| match g {
                        Permission::NetworkTcp(p) => p.clone(),
                        _ => vec![],
                    })
                    .collect();
                ports.sort_unstable();
                ports.dedup();
                Permission::NetworkTcp(ports)
            }
            Key::Filesystem(target) => Permission::Filesystem {
                target,
                read_only: gs.iter().all(|g| {
                    matches!(
                        g,
                        Permission::Filesystem {
                            read_only: true,
                            ..
                        }
                    )
                }),
            },
            _ => gs[0].clone(),
        };
        out.push(g.to_string());
    }
    out
}

fn any_permission() -> impl Strategy<Value = Permission> {
    prop_oneof![
        Just(p("network")),
        prop::collection::vec(prop_oneof![Just(80u16), Just(443), Just(53)], 1..3).prop_map(|v| {
            let mut v = v;
            v.sort_unstable();
            v.dedup();
            Permission::NetworkTcp(v)
        }),
        (
            prop_oneof![
                Just("home"),
                Just("~/a"),
                Just("/srv"),
                Just("xdg-download")
            ],
            any::<bool>()
        )
            .prop_map(|(t, ro)| p(&format!("filesystem={t}{}", if ro { ":ro" } else { "" }))),
        prop_oneof![Just(p("socket=x11")), Just(p("socket=wayland"))],
        prop_oneof![Just(p("device=dri")), Just(p("device=all"))],
    ]
}

fn any_changes() -> impl Strategy<Value = Changes> {
    (
        prop::collection::vec(any_permission(), 0..4),
        prop::collection::vec(any_permission(), 0..3),
    )
        .prop_map(|(allow, deny)| Changes {
            allow,
            deny: deny.iter().map(Permission::key).collect(),
        })
}

proptest! {
    #[test]
    fn merge_matches_the_reference(
        m in prop::collection::vec(any_permission(), 0..5),
        levels in prop::collection::vec(any_changes(), 0..4),
    ) {
        let refs: Vec<&Changes> = levels.iter().collect();
        prop_assert_eq!(names(&merge(&m, &refs)), reference(&m, &levels));
    }

    #[test]
    fn a_deny_removes_the_kind_from_every_earlier_level(
        m in prop::collection::vec(any_permission(), 0..5),
        levels in prop::collection::vec(any_changes(), 1..4),
    ) {
        let refs: Vec<&Changes> = levels.iter().collect();
        let g = merge(&m, &refs);
        for (i, l) in levels.iter().enumerate() {
            for key in &l.deny {
                let re_allowed = levels[i..].iter().any(|x| x.allow.iter().any(|a| &a.key() == key));
                if !re_allowed {
                    prop_assert!(g.get(key).is_none(), "{key} survived a deny");
                }
            }
        }
    }

    #[test]
    fn levels_compose(
        m in prop::collection::vec(any_permission(), 0..5),
        a in any_changes(),
        b in any_changes(),
    ) {
        prop_assert_eq!(merge(&m, &[&a, &b]), merge(&m, &[&a.then(&b)]));
    }
}
