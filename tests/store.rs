//! End to end, the per-user store: two apps sharing the libc layer (python3 and hello) store it
//! once, use less disk than two copies, and `info` names who shares what; uninstalling one app
//! keeps the shared layer and removes its own layers and exports, the last one removes every
//! layer; state and overrides survive uninstall unless `--delete-data`; `capsa run ID` runs the
//! installed app; overrides persist across a reinstall and an upgrade and are enforced (seen from
//! inside the sandbox); an upgrade keeps the old release as `previous`; `diff` shows what the app
//! changed in its own root and `reset` drops it. (Hostile bundles: store_hostile.rs; killed
//! commands: store_crash.rs.)

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

const PY: &str = "org.python.Python3";
const HELLO: &str = "org.capsa.Hello";

/// Layer digests (hex) of an app, from `info --json`.
fn digests(info: &Value) -> Vec<String> {
    info["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap()["sha256:".len()..].to_owned())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Bytes on disk below `p` (what `du` counts).
fn du(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    let own = m.blocks() * 512;
    if !m.is_dir() {
        return own;
    }
    own + std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| du(&e.path()))
        .sum::<u64>()
}

/// The hello sample rebuilt with `version = "2.0"` in its recipe.
fn hello_v2() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let recipe = build_hello(&shared_tmp().join("hello-v2"));
        let text = std::fs::read_to_string(&recipe).unwrap();
        assert!(text.contains("version = \"1.0\""));
        std::fs::write(
            &recipe,
            text.replace("version = \"1.0\"", "version = \"2.0\""),
        )
        .unwrap();
        let out = shared_tmp().join("hello-2.0.capsa");
        ok(&[
            "pack",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        out
    })
}

/// The network interfaces python sees in the installed app's sandbox.
fn interfaces(env: &StoreEnv) -> BTreeSet<String> {
    let code =
        "print(' '.join(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))";
    env.ok(&["run", PY, "--", "-c", code])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn shared_layer_is_stored_once_and_removed_with_its_last_app() {
    let env = StoreEnv::new();
    assert!(env
        .install(python_bundle())
        .contains("installed org.python.Python3 3.11"));
    assert!(env
        .install(hello_bundle())
        .contains("installed org.capsa.Hello 1.0"));
    let (py, hello) = (env.info(PY), env.info(HELLO));
    let (py_layers, hello_layers) = (digests(&py), digests(&hello));
    let shared: BTreeSet<String> = py_layers
        .iter()
        .filter(|d| hello_layers.contains(d))
        .cloned()
        .collect();
    assert_eq!(shared.len(), 1, "python and hello share the libc layer");
    let all: BTreeSet<String> = py_layers.iter().chain(&hello_layers).cloned().collect();
    assert_eq!(env.layer_dirs(), all, "one directory per distinct layer");
    for (info, other) in [(&py, HELLO), (&hello, PY)] {
        for l in info["layers"].as_array().unwrap() {
            let d = &l["digest"].as_str().unwrap()["sha256:".len()..];
            let want: Vec<String> = if shared.contains(d) {
                assert_eq!(l["role"], "libc");
                vec![other.into()]
            } else {
                vec![]
            };
            assert_eq!(strings(&l["shared_with"]), want, "{l}");
        }
    }
    let on_disk = du(&env.store().join("layers"));
    let copies = py["layers_size"].as_u64().unwrap() + hello["layers_size"].as_u64().unwrap();
    assert!(
        on_disk < copies,
        "{on_disk} bytes on disk, {copies} for two copies"
    );
    let exports: Vec<PathBuf> = strings(&py["exports"])
        .into_iter()
        .map(PathBuf::from)
        .collect();
    assert!(exports.contains(&env.desktop(PY)), "{exports:?}");
    assert!(exports.iter().all(|e| e.exists()));
    let text = env.ok(&["info", PY]);
    assert!(text.contains("shared with org.capsa.Hello"), "{text}");

    let sandbox = userns();
    if sandbox {
        assert!(env.ok(&["run", HELLO]).contains("hello from capsa"));
        assert_eq!(
            env.ok(&["run", PY, "--", "-c", "import ssl; print(1)"])
                .trim(),
            "1"
        );
    }
    env.ok(&["override", PY, "--allow", "network"]);
    let out = env.ok(&["uninstall", PY]);
    assert!(out.contains("its data is kept"), "{out}");
    assert_eq!(env.list().into_keys().collect::<Vec<_>>(), [HELLO]);
    assert_eq!(env.layer_dirs(), hello_layers.iter().cloned().collect());
    assert!(!env.app_dir(PY).exists());
    for e in &exports {
        assert!(!e.exists(), "{} is still exported", e.display());
    }
    assert!(env
        .store()
        .join("overrides/org.python.Python3@local.json")
        .exists());
    if sandbox {
        assert!(env
            .store()
            .join("state")
            .join(format!("{PY}@local"))
            .join("upper")
            .is_dir());
        assert!(env.ok(&["run", HELLO]).contains("hello from capsa"));
    }
    assert!(env.fails(&["info", PY]).contains("not installed"));

    env.ok(&["uninstall", HELLO]);
    assert!(env.list().is_empty());
    assert!(env.layer_dirs().is_empty(), "{:?}", env.layer_dirs());
    assert!(env.names("apps").is_empty(), "{:?}", env.names("apps"));
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
    if sandbox {
        assert!(
            env.store()
                .join("state")
                .join(format!("{HELLO}@local"))
                .is_dir(),
            "state is kept"
        );
    }

    // A reinstall finds the kept overrides; --delete-data removes state and overrides.
    env.install(python_bundle());
    assert_eq!(strings(&env.info(PY)["overrides"]["allow"]), ["network"]);
    assert_eq!(strings(&env.info(PY)["permissions"]), ["network"]);
    let out = env.ok(&["uninstall", "--delete-data", PY]);
    assert!(out.contains("and its data"), "{out}");
    assert!(!env
        .store()
        .join("state")
        .join(format!("{PY}@local"))
        .exists());
    assert!(!env
        .store()
        .join("overrides/org.python.Python3@local.json")
        .exists());
    env.install(python_bundle());
    assert!(strings(&env.info(PY)["permissions"]).is_empty());
    assert_eq!(env.info(PY)["state_size"], 0);
}

#[test]
fn network_override_persists_across_reinstall_and_is_enforced() {
    if !userns() {
        return;
    }
    let env = StoreEnv::new();
    env.install(python_bundle());
    let lo: BTreeSet<String> = ["lo".to_owned()].into();
    assert_eq!(interfaces(&env), lo, "no network by default");
    assert!(strings(&env.info(PY)["permissions"]).is_empty());

    let out = env.ok(&["override", PY, "--allow", "network"]);
    assert!(out.contains("network"), "{out}");
    let host_has_more = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .any(|l| l.split(':').next().unwrap().trim() != "lo");
    let check_allowed = |when: &str| {
        let i = env.info(PY);
        assert_eq!(strings(&i["permissions"]), ["network"], "{when}");
        assert_eq!(strings(&i["overrides"]["allow"]), ["network"], "{when}");
        let seen = interfaces(&env);
        assert!(seen.contains("lo"), "{when}: {seen:?}");
        if host_has_more {
            assert!(
                seen.len() > 1,
                "{when}: the host's network is not shared: {seen:?}"
            );
        }
    };
    check_allowed("after override --allow");
    env.install(python_bundle());
    check_allowed("after reinstalling the same bundle");

    let out = env.ok(&["override", PY, "--deny", "network"]);
    assert!(out.contains("no permissions"), "{out}");
    let i = env.info(PY);
    assert!(strings(&i["permissions"]).is_empty(), "{i}");
    assert_eq!(strings(&i["overrides"]["deny"]), ["network"]);
    assert!(strings(&i["overrides"]["allow"]).is_empty());
    assert_eq!(interfaces(&env), lo, "denied");
    env.install(python_bundle());
    assert_eq!(interfaces(&env), lo, "the deny survives a reinstall");

    env.ok(&["override", PY, "--reset"]);
    let i = env.info(PY);
    assert!(
        strings(&i["overrides"]["allow"]).is_empty() && strings(&i["overrides"]["deny"]).is_empty()
    );
    let o = env.run(&["override", PY, "--allow", "bogus"]);
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", text(&o));
    assert!(text(&o).contains("bogus"));
}

#[test]
fn upgrade_keeps_previous_and_the_overrides() {
    let env = StoreEnv::new();
    let dir = env.dir.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    let note = dir.join("note.txt");
    std::fs::write(&note, "capsa-note").unwrap();
    let note = note.to_str().unwrap();
    let grant = format!("filesystem={}:ro", dir.display());
    let sandbox = userns();
    let reads = |expect: bool, when: &str| {
        if !sandbox {
            return;
        }
        let o = env.run(&["run", HELLO, "--", note]);
        if expect {
            assert!(o.status.success(), "{when}: {}", text(&o));
            assert!(text(&o).contains("read 10 bytes"), "{when}: {}", text(&o));
        } else {
            assert_eq!(o.status.code(), Some(3), "{when}: {}", text(&o));
        }
    };

    env.install(hello_bundle());
    reads(false, "without a grant");
    env.ok(&["override", HELLO, "--allow", &grant]);
    assert_eq!(strings(&env.info(HELLO)["permissions"]), [grant.as_str()]);
    reads(true, "with the override");

    let out = env.install(hello_bundle());
    assert!(out.contains("org.capsa.Hello"), "{out}");
    let i = env.info(HELLO);
    assert_eq!(strings(&i["permissions"]), [grant.as_str()]);
    assert!(i["previous_version"].is_null(), "same bundle again: {i}");
    reads(true, "after reinstalling the same bundle");

    let v1_release = std::fs::read_link(env.app_dir(HELLO).join("current")).unwrap();
    let out = env.install(hello_v2());
    assert!(
        out.contains("updated org.capsa.Hello from 1.0 to 2.0"),
        "{out}"
    );
    let i = env.info(HELLO);
    assert_eq!(i["version"], "2.0");
    assert_eq!(i["previous_version"], "1.0");
    assert_eq!(
        strings(&i["permissions"]),
        [grant.as_str()],
        "kept across the upgrade"
    );
    let app = env.app_dir(HELLO);
    let current = std::fs::read_link(app.join("current")).unwrap();
    assert_eq!(
        std::fs::read_link(app.join("previous")).unwrap(),
        v1_release
    );
    assert_ne!(current, v1_release);
    assert!(app.join(&current).join("manifest.json").is_file());
    assert!(app.join(&v1_release).join("manifest.json").is_file());
    assert_eq!(env.names(&format!("apps/{HELLO}/releases")).len(), 2);
    assert_eq!(env.list()[HELLO], "2.0");
    assert!(env.ok(&["info", HELLO]).contains("previous     1.0"));
    reads(true, "after the upgrade");

    env.ok(&[
        "override",
        HELLO,
        "--deny",
        &format!("filesystem={}", dir.display()),
    ]);
    assert!(strings(&env.info(HELLO)["permissions"]).is_empty());
    reads(false, "after --deny");
    assert_eq!(env.referenced_layers(), env.layer_dirs());
}

#[test]
fn diff_shows_the_apps_changes_and_reset_drops_them() {
    if !userns() {
        return;
    }
    let env = StoreEnv::new();
    env.install(python_bundle());
    let lib = "/usr/lib/python3.11";
    let script = format!(
        "import os\n\
         open('{lib}/capsa_added.py', 'w').write('x = 1\\n')\n\
         open('{lib}/this.py', 'a').write('# changed\\n')\n\
         os.remove('{lib}/antigravity.py')\n\
         print('done')"
    );
    assert_eq!(env.ok(&["run", PY, "--", "-c", &script]).trim(), "done");
    let changes: Value = serde_json::from_str(&env.ok(&["diff", "--json", PY])).unwrap();
    let got: Vec<(String, String)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().into(),
                c["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("deleted", "antigravity.py"),
        ("added", "capsa_added.py"),
        ("changed", "this.py"),
    ]
    .iter()
    .map(|(k, p)| (k.to_string(), format!("{lib}/{p}")))
    .collect();
    assert_eq!(got, want);
    let text = env.ok(&["diff", PY]);
    for line in [
        "D /usr/lib/python3.11/antigravity.py",
        "A /usr/lib/python3.11/capsa_added.py",
        "M /usr/lib/python3.11/this.py",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
    let probe = format!(
        "import os; print(os.path.exists('{lib}/antigravity.py'), \
         os.path.exists('{lib}/capsa_added.py'), open('{lib}/this.py').read().endswith('# changed\\n'))"
    );
    assert_eq!(
        env.ok(&["run", PY, "--", "-c", &probe]).trim(),
        "False True True",
        "state persists"
    );
    assert!(env.info(PY)["state_size"].as_u64().unwrap() > 0);

    let out = env.ok(&["reset", PY]);
    assert!(out.contains("reset org.python.Python3"), "{out}");
    assert!(!env
        .store()
        .join("state")
        .join(format!("{PY}@local"))
        .join("upper")
        .exists());
    assert_eq!(env.ok(&["diff", PY]).trim(), "");
    assert_eq!(
        env.ok(&["run", PY, "--", "-c", &probe]).trim(),
        "True False False",
        "back to new"
    );
    assert!(env
        .fails(&["reset", "org.example.Missing"])
        .contains("not installed"));
}

#[test]
fn an_empty_store_says_so() {
    let env = StoreEnv::new();
    let o = env.run(&["list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(o.stdout.is_empty(), "nothing on stdout for scripts");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no apps installed"),
        "{}",
        text(&o)
    );
}

/// A reading command skips recovery while the store is marked clean, and recovers (then marks
/// it clean again) when a changing command did not finish: here, a staging directory left in
/// `layers/` by a killed install, and the mark a killed command removed.
#[test]
fn reading_commands_recover_only_an_unclean_store() {
    let env = StoreEnv::new();
    env.install(hello_bundle());
    let clean = env.store().join("clean");
    assert!(clean.is_file(), "a finished install marks the store clean");
    let leftover = env.store().join("layers/.tmp-killed");
    std::fs::create_dir(&leftover).unwrap();
    env.ok(&["list"]);
    assert!(leftover.exists(), "a clean store is not walked by list");
    // `info` reports the disk use recorded at unpack: the trees, without the stamps beside.
    let info: Value = serde_json::from_str(&env.ok(&["info", "--json", HELLO])).unwrap();
    let walked: u64 = digests(&info)
        .iter()
        .map(|d| du(&env.store().join("layers").join(d).join("tree")))
        .sum();
    assert_eq!(info["layers_size"].as_u64().unwrap(), walked, "{info}");
    std::fs::remove_file(&clean).unwrap();
    env.ok(&["info", HELLO]);
    assert!(!leftover.exists(), "an unclean store is recovered by info");
    assert!(clean.is_file(), "and marked clean again");
    // A changing command recovers whatever the mark says.
    std::fs::create_dir(&leftover).unwrap();
    env.ok(&["uninstall", HELLO]);
    assert!(!leftover.exists(), "uninstall recovers first");
    assert!(clean.is_file());
}
