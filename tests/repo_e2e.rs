//! End to end: a repository published with `capsa repo`, served by a real nginx on loopback,
//! used with `capsa remote add`, `search`, `install APP-ID`, `update`, `rollback`. nginx's
//! access log counts the bytes each update really fetched.
//!
//! The python3 sample gets 14 extra real stdlib files (1 % of its files) copied into a private
//! directory captured by the recipe: one of them changes for the one-file update, all 14 for
//! the 1 %-of-files update.

mod common;

use common::nginx::{self, Nginx};
use common::repo::*;
use common::*;

#[test]
fn publish_install_update_and_roll_back_over_nginx() {
    if !nginx::available() {
        return;
    }
    let repo = Repo::new();
    let v1 = repo.python("3.11-1", 0);
    repo.add(&v1, &[]);
    repo.add(&signed_hello(&repo), &[]);
    let web = Nginx::serve(&repo.dir());
    let env = StoreEnv::new();
    env.ok(&["remote", "add", "test", &web.url(), "--key", &repo.pubkey()]);
    assert!(env.ok(&["search", "python"]).contains(PY));
    let hello_id = inspect_json(&repo.path("hello.capsa"))["manifest"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.ok(&["install", "--yes", &hello_id]);

    // Install by name: the whole bundle but the libc layer, which hello brought already.
    let n = web.hits().len();
    env.ok(&["install", "--yes", PY]);
    let full = std::fs::metadata(&v1).unwrap().len();
    let first = web.bytes_since(n);
    let libc = inspect_json(&v1)["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["role"] == "libc")
        .map(|l| l["size"].as_u64().unwrap())
        .unwrap();
    let want = full - libc;
    assert!(
        first <= want + (64 << 10) && first + (64 << 10) >= want,
        "install fetched {first} of {full}, the libc layer {libc} not needed"
    );
    if userns() {
        assert_eq!(marker(&env, &repo, 0), marker_last_line(0));
    }

    // One changed file: at most 1 % of the bundle, metadata included.
    let v2 = repo.python("3.11-2", 1);
    repo.add(&v2, &[]);
    let n = web.hits().len();
    let out = env.ok(&["update", "--yes"]);
    assert!(
        out.contains("updated org.python.Python3 from 3.11-1 to 3.11-2"),
        "{out}"
    );
    let one = web.bytes_since(n);
    assert!(
        one * 100 <= full,
        "the one-file update fetched {one} of {full} bytes: {:?}",
        &web.hits()[n..]
    );
    // 1 % of the files changed: at most 5 %.
    let v3 = repo.python("3.11-3", MARKERS);
    repo.add(&v3, &[]);
    let n = web.hits().len();
    env.ok(&["update", "--yes"]);
    let many = web.bytes_since(n);
    assert!(
        many * 20 <= full,
        "the 1%-of-files update fetched {many} of {full} bytes"
    );
    eprintln!("bundle {full} B; install {first} B; one file {one} B; 1% of files {many} B");
    assert!(env.ok(&["update", "--check"]).contains("up to date"));

    if userns() {
        assert_eq!(marker(&env, &repo, 1), "# edited for 3.11-3");
        // Roll back while 3.11-3 runs in another process: that one keeps its version.
        let running = env
            .cmd(&[
                "run",
                PY,
                "--",
                "-c",
                "import time; time.sleep(3); print(open('/usr/lib/python3.11/os.py').read()[:1])",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let out = env.ok(&["rollback", PY]);
        assert!(out.contains("from 3.11-3 to 3.11-2"), "{out}");
        assert_eq!(marker(&env, &repo, 0), "# edited for 3.11-2");
        assert_eq!(marker(&env, &repo, 1), marker_last_line(1));
        let o = running.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "the running instance survived the rollback"
        );
        // update does not bring back the release rolled back from.
        assert!(env.ok(&["update", "--yes"]).is_empty());
        assert_eq!(
            store_version(&env, PY),
            "3.11-2",
            "a rollback holds until a newer release"
        );
    }
}

#[test]
fn channels_rollouts_halts_and_a_dead_mirror() {
    if !nginx::available() {
        return;
    }
    let repo = Repo::new();
    let v1 = repo.python("3.11-1", 0);
    let v2 = repo.python("3.11-2", 1);
    repo.add(&v1, &[]);
    // beta starts at 3.11-1 (the fallback of its rollout), then 3.11-2 goes to half of it.
    ok(&[
        "repo",
        "promote",
        repo.dir().to_str().unwrap(),
        PY,
        "3.11-1",
        "--channel",
        "beta",
    ]);
    repo.add(&v2, &["--channel", "beta", "--rollout", "50"]);
    let web = Nginx::serve(&repo.dir());
    let env = StoreEnv::new();
    // The main URL is dead (nothing listens there): the mirror serves everything.
    let dead = format!("http://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    env.ok(&[
        "remote",
        "add",
        "test",
        &dead,
        "--key",
        &repo.pubkey(),
        "--mirror",
        &web.url(),
    ]);
    env.ok(&["install", "--yes", PY]);
    assert_eq!(store_version(&env, PY), "3.11-1", "stable has 3.11-1 only");
    env.ok(&["install", "--yes", "--channel", "beta", PY]);
    // 1,000 simulated clients on beta's 50 % rollout.
    let id_file = env.dir.path().join("state/capsa/client-id");
    let mut inside = 0;
    for i in 0..1000 {
        std::fs::write(&id_file, format!("{:032x}\n", i * 7919 + 1)).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["update", "--check", "--json", PY])).unwrap();
        if v[0]["release"]["version"] == "3.11-2" {
            inside += 1;
        }
    }
    assert!(
        (450..=550).contains(&inside),
        "{inside} of 1000 clients got the 50% rollout"
    );
    // Halting sends everyone in it back to the fallback.
    ok(&[
        "repo",
        "rollout",
        repo.dir().to_str().unwrap(),
        PY,
        "--channel",
        "beta",
        "--halt",
    ]);
    for i in 0..50 {
        std::fs::write(&id_file, format!("{:032x}\n", i * 7919 + 1)).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["update", "--check", "--json", PY])).unwrap();
        assert_eq!(v[0]["release"]["version"], "3.11-1", "{v}");
    }
}
