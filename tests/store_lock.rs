//! Concurrent store commands: two installs started at the same time (of different apps, and of
//! the same app) both succeed and leave a consistent store, because every command that changes
//! the store serializes on its lock; a command started while another holds the lock (the test
//! itself, or a real install busy unpacking) waits for it instead of failing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

const PY: &str = "org.python.Python3";
const HELLO: &str = "org.capsa.Hello";

fn start(env: &StoreEnv, args: &[&str]) -> Child {
    env.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start capsa")
}

fn install(env: &StoreEnv, bundle: &Path) -> Child {
    start(env, &["install", "--yes", bundle.to_str().unwrap()])
}

/// Waits for `child` and asserts it succeeded; returns its stdout.
fn succeeds(child: Child, what: &str) -> String {
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{what}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// No leftovers, exactly the layers the releases use, and every app runs.
fn consistent(env: &StoreEnv, apps: &[(&str, &str)]) {
    let want: BTreeMap<String, String> = apps
        .iter()
        .map(|(id, v)| (id.to_string(), v.to_string()))
        .collect();
    assert_eq!(env.list(), want);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
    assert_eq!(env.layer_dirs(), env.referenced_layers());
    for (id, _) in apps {
        assert_eq!(env.names(&format!("apps/{id}/releases")).len(), 1, "{id}");
    }
    if userns() {
        for (id, _) in apps {
            let args: &[&str] = if *id == PY {
                &["run", PY, "--", "-c", "import ssl; print('ok')"]
            } else {
                &["run", HELLO]
            };
            assert!(!env.ok(args).is_empty(), "{id}");
        }
    }
}

#[test]
fn concurrent_installs_both_succeed() {
    let env = StoreEnv::new();
    let (a, b) = (
        install(&env, python_bundle()),
        install(&env, hello_bundle()),
    );
    succeeds(a, "python next to hello");
    succeeds(b, "hello next to python");
    consistent(&env, &[(PY, "3.11"), (HELLO, "1.0")]);
    assert!(env.desktop(PY).is_file());

    env.ok(&["uninstall", "--delete-data", PY]);
    env.ok(&["uninstall", "--delete-data", HELLO]);
    consistent(&env, &[]);
    assert!(env.layer_dirs().is_empty());

    let (a, b) = (
        install(&env, python_bundle()),
        install(&env, python_bundle()),
    );
    succeeds(a, "python next to python");
    succeeds(b, "python next to python");
    consistent(&env, &[(PY, "3.11")]);
    assert!(env.info(PY)["previous_version"].is_null());
    assert!(env.desktop(PY).is_file());
}

#[test]
fn a_command_waits_for_the_store_lock() {
    let env = StoreEnv::new();
    env.ok(&["list"]);
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(env.store().join("store.lock"))
        .expect("list creates the store lock");
    lock.lock().unwrap();
    let mut inst = install(&env, hello_bundle());
    let mut list = start(&env, &["list", "--json"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        inst.try_wait().unwrap().is_none(),
        "install did not wait for the lock"
    );
    assert!(
        list.try_wait().unwrap().is_none(),
        "list did not wait for the lock"
    );
    assert!(
        !env.app_dir(HELLO).exists(),
        "install changed the store without the lock"
    );
    drop(lock);
    let t = Instant::now();
    succeeds(inst, "install after the lock was released");
    succeeds(list, "list after the lock was released");
    assert!(t.elapsed() < Duration::from_secs(30));
    consistent(&env, &[(HELLO, "1.0")]);

    // A real holder: a `capsa list` started while a python install unpacks (its staging
    // directory is there, under the lock) waits, then sees python installed.
    let mut inst = install(&env, python_bundle());
    let staging = loop {
        if let Some(s) = env
            .layer_dirs()
            .into_iter()
            .find(|n| n.starts_with(".tmp-"))
        {
            break s;
        }
        assert!(
            inst.try_wait().unwrap().is_none(),
            "install ended before it was seen unpacking"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let o = env.run(&["list", "--json"]);
    assert!(o.status.success(), "list while installing: {}", text(&o));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        listed.as_array().unwrap().iter().any(|a| a["id"] == PY),
        "list ran while the install held the lock (saw {staging}): {listed}"
    );
    succeeds(inst, "the python install list waited for");
    consistent(&env, &[(PY, "3.11"), (HELLO, "1.0")]);
}
