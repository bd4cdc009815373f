//! End to end: `capsa repo ...`, the publisher side of a signed static repository. Two apps
//! (the hello and python3 samples, signed by one key) are published and moved through channels,
//! rollouts, halts, yanks, refreshes, a key rotation and gc; `repo check` must pass after each
//! step and catch damage; a bundle signed by another key under a known id, an unsigned bundle
//! and a version published twice are refused; two publishers at once serialize on the lock;
//! and `repo add` killed with SIGKILL at many points always leaves a valid repository.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const HELLO: &str = "org.capsa.Hello";
const PY: &str = "org.python.Python3";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The test keys: `me` signs the repository and the bundles, `other` is another publisher,
/// `next` replaces `me` in the rotation test.
fn keys() -> &'static Path {
    static K: OnceLock<PathBuf> = OnceLock::new();
    K.get_or_init(|| {
        let dir = shared_tmp().join("repo-keys");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["me", "other", "next"] {
            ok(&["keygen", s(&dir.join(name))]);
        }
        dir
    })
}

fn key(name: &str, ext: &str) -> PathBuf {
    keys().join(format!("{name}.{ext}"))
}

fn key_id(name: &str) -> String {
    let text = std::fs::read_to_string(key(name, "pub")).unwrap();
    let hex = text.trim().rsplit(' ').next().unwrap().to_owned();
    bundle_format::PublicKey::from_hex(&hex).unwrap().key_id()
}

/// Builds the hello sample with `edit` applied to its recipe and packs it signed by `signer`
/// (`None`: unsigned).
fn hello_variant(name: &str, signer: Option<&str>, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = shared_tmp().join(format!("src-{name}"));
    let recipe = build_hello(&dir);
    std::fs::copy(
        src().join("samples/xmessage/icon.png"),
        dir.join("icon.png"),
    )
    .unwrap();
    let text = std::fs::read_to_string(&recipe).unwrap();
    std::fs::write(&recipe, edit(text)).unwrap();
    let out = shared_tmp().join(format!("{name}.capsa"));
    let mut args = vec!["pack", s(&recipe), "-o", s(&out)];
    let k = signer.map(|n| key(n, "key"));
    if let Some(k) = &k {
        args.extend(["--sign", s(k)]);
    }
    ok(&args);
    out
}

fn version(v: &str) -> impl Fn(String) -> String + '_ {
    move |t| t.replace("version = \"1.0\"", &format!("version = \"{v}\""))
}

/// Hello 1.1: an icon, the network, and a hostile name and comment for the catalog.
fn hello_11(t: String) -> String {
    let icon = "/usr/share/icons/hicolor/48x48/apps/org.capsa.Hello.png";
    let t = version("1.1")(t)
        .replace(
            "files = { \"/usr/local/bin/capsa-hello\" = \"build/capsa-hello\" }",
            &format!(
                "files = {{ \"/usr/local/bin/capsa-hello\" = \"build/capsa-hello\", \"{icon}\" = \"icon.png\" }}"
            ),
        )
        .replace("network = false", "network = true");
    format!(
        "{t}\n[desktop]\nname = \"Hello <script>alert(1)</script>\"\ncomment = \"Says \\\"hi\\\" & <b>waves</b>\"\nicon = \"{icon}\"\n"
    )
}

fn signed_hello() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| hello_variant("hello-1.0", Some("me"), |t| t))
}

fn signed_python() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let out = shared_tmp().join("python3-signed.capsa");
        let recipe = src().join("samples/python3/capsa.toml");
        let k = key("me", "key");
        ok(&["pack", s(&recipe), "-o", s(&out), "--sign", s(&k)]);
        out
    })
}

/// A new repository signed by `me` in a fresh directory.
fn new_repo(name: &str) -> PathBuf {
    let dir = shared_tmp().join(name).join("repo");
    remove_all(&dir);
    ok(&["repo", "init", s(&dir), "--key", s(&key("me", "key"))]);
    dir
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn index(repo: &Path) -> Value {
    json(&repo.join("index.json"))["signed"].clone()
}

fn blob_path(repo: &Path, digest: &str) -> PathBuf {
    repo.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn app_doc(repo: &Path, app: &str) -> Value {
    let d = index(repo)["apps"][app]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&blob_path(repo, &d))
}

fn check_ok(repo: &Path) -> String {
    let out = ok(&["repo", "check", s(repo)]);
    assert!(out.contains(": ok ("), "{out}");
    out
}

fn versions(doc: &Value) -> Vec<String> {
    doc["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn publish_two_apps_through_channels_rollouts_yanks_rotation_and_gc() {
    let repo = new_repo("publish");
    let me = key("me", "key");
    let err = fails(&["repo", "init", s(&repo), "--key", s(&me)]);
    assert!(err.contains("already holds a repository"), "{err}");
    assert_eq!(index(&repo)["version"], 1);
    assert!(repo
        .join("keys")
        .join(format!("{}.pub", key_id("me")))
        .exists());

    // Two apps by one key; the python3 sample shares the hello sample's libc layer.
    let out = ok(&["repo", "add", s(&repo), s(signed_hello())]);
    assert!(
        out.contains("added org.capsa.Hello 1.0 (release 1, a new app)"),
        "{out}"
    );
    let out = ok(&["repo", "add", s(&repo), s(signed_python())]);
    assert!(
        out.contains("2 already stored"),
        "libc layer and its TOC shared: {out}"
    );
    assert_eq!(index(&repo)["version"], 3);
    check_ok(&repo);

    // Refusals: unsigned, another publisher under a known id, a version published twice.
    let err = fails(&["repo", "add", s(&repo), s(hello_bundle())]);
    assert!(err.contains("is not signed"), "{err}");
    let theirs = hello_variant("hello-other", Some("other"), version("9.0"));
    let err = fails(&["repo", "add", s(&repo), s(&theirs)]);
    assert!(
        err.contains(&key_id("me")) && err.contains(&key_id("other")),
        "the refusal names both keys: {err}"
    );
    let err = fails(&["repo", "add", s(&repo), s(signed_hello())]);
    assert!(err.contains("already published"), "{err}");
    assert_eq!(index(&repo)["version"], 3, "refusals publish nothing");

    // 1.1 as a 30% canary: 1.0 is the fallback; the icon is stored and shown.
    let h11 = hello_variant("hello-1.1", Some("me"), hello_11);
    ok(&["repo", "add", s(&repo), s(&h11), "--rollout", "30"]);
    let doc = app_doc(&repo, HELLO);
    let stable = &doc["channels"]["stable"];
    assert_eq!(
        (stable["release"].as_u64(), stable["fallback"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(stable["rollout"]["percent"], 30);
    let seed = stable["rollout"]["seed"].as_str().unwrap().to_owned();
    assert_eq!(
        doc["releases"][1]["permissions"],
        serde_json::json!(["network"])
    );
    let icon = doc["icon"]["digest"].as_str().expect("an icon");
    assert_eq!(
        std::fs::read(blob_path(&repo, icon)).unwrap(),
        std::fs::read(src().join("samples/xmessage/icon.png")).unwrap()
    );

    // Widen, halt, resume: the seed never changes.
    let rollout = |args: &[&str]| {
        let mut a = vec!["repo", "rollout", s(&repo), HELLO, "--channel", "stable"];
        a.extend(args);
        ok(&a);
        app_doc(&repo, HELLO)["channels"]["stable"]["rollout"].clone()
    };
    let r = rollout(&["--percent", "60"]);
    assert_eq!(
        (r["percent"].as_u64(), r["halted"].as_bool()),
        (Some(60), Some(false))
    );
    let r = rollout(&["--halt"]);
    assert_eq!(r["halted"], true);
    let r = rollout(&["--percent", "100"]);
    assert_eq!(
        (r["halted"].as_bool(), r["seed"].as_str()),
        (Some(false), Some(seed.as_str()))
    );
    let usage = run(&["repo", "rollout", s(&repo), HELLO, "--channel", "stable"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "--percent or --halt is required"
    );

    // Promote ends the rollout; promote to a new channel.
    ok(&[
        "repo",
        "promote",
        s(&repo),
        HELLO,
        "1.1",
        "--channel",
        "stable",
    ]);
    ok(&[
        "repo",
        "promote",
        s(&repo),
        HELLO,
        "1.0",
        "--channel",
        "beta",
    ]);
    let doc = app_doc(&repo, HELLO);
    assert!(doc["channels"]["stable"]["rollout"].is_null());
    assert_eq!(doc["channels"]["beta"]["release"], 1);
    let err = fails(&[
        "repo",
        "promote",
        s(&repo),
        HELLO,
        "7.7",
        "--channel",
        "beta",
    ]);
    assert!(err.contains("has no version 7.7"), "{err}");

    // Yank 1.1: listed as yanked, the channel keeps its fallback; promoting it is refused.
    ok(&[
        "repo",
        "yank",
        s(&repo),
        HELLO,
        "1.1",
        "--reason",
        "<script>x</script> & \"bad\"",
    ]);
    let doc = app_doc(&repo, HELLO);
    assert_eq!(doc["releases"][1]["yanked"], "<script>x</script> & \"bad\"");
    assert_eq!(doc["channels"]["stable"]["fallback"], 1);
    let err = fails(&[
        "repo",
        "promote",
        s(&repo),
        HELLO,
        "1.1",
        "--channel",
        "beta",
    ]);
    assert!(err.contains("yanked"), "{err}");

    // Refresh: a new version and a later expiry, the same apps.
    let before = index(&repo);
    ok(&["repo", "refresh", s(&repo), "--expires-days", "60"]);
    let after = index(&repo);
    assert_eq!(
        after["version"].as_u64().unwrap(),
        before["version"].as_u64().unwrap() + 1
    );
    assert!(after["expires"].as_u64() > before["expires"].as_u64());
    assert_eq!(after["apps"], before["apps"]);
    check_ok(&repo);
    catalog_is_escaped_and_complete(&repo);

    rotate(&repo);
    collect_garbage(&repo);
    damage_is_found(&repo);
}

/// The catalog: both apps, the icon, channels and rollouts, permissions, commands; every
/// string from a bundle or document escaped.
fn catalog_is_escaped_and_complete(repo: &Path) {
    let page = std::fs::read_to_string(repo.join("index.html")).unwrap();
    assert!(page.contains("name=\"viewport\""));
    assert!(
        page.contains("Hello &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(page.contains("Says &quot;hi&quot; &amp; &lt;b&gt;waves&lt;/b&gt;"));
    assert!(page.contains("yanked: &lt;script&gt;x&lt;/script&gt; &amp; &quot;bad&quot;"));
    assert_eq!(
        page.matches("<script>").count(),
        1,
        "only the page's own script"
    );
    assert!(page.contains("<h2>Python 3</h2>"));
    assert!(page.contains("src=\"data:image/png;base64,"));
    assert!(page.contains("capsa install org.capsa.Hello --remote repo"));
    assert!(page.contains("capsa install org.python.Python3 --remote repo"));
    assert!(page.contains("capsa remote add repo "));
    assert!(page.contains("<b>beta</b>: 1.0"));
    assert!(page.contains("<code>network</code>"));
    for link in page.split("href=\"").skip(1) {
        let target = &link[..link.find('"').unwrap()];
        assert!(target.starts_with("blobs/sha256/"), "{target}");
        assert!(repo.join(target).is_file(), "{target} exists");
    }
    headless_chromium(repo);
}

/// In a real browser (Debian's chromium, when installed): the page renders, the script
/// reveals the copy buttons and puts the page's own address in the commands.
fn headless_chromium(repo: &Path) {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_NGINX").is_none(),
            "chromium is missing (apt-get install chromium) and CAPSA_REQUIRE_NGINX is set"
        );
        eprintln!("skipped the browser check: no chromium");
        return;
    };
    let url = format!("file://{}/index.html", repo.display());
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--user-data-dir",
    ];
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut c = Command::new(chromium);
        c.args(&base[..3])
            .arg(format!("{}={}", base[3], profile.path().display()))
            .args(extra)
            .arg(&url)
            .stderr(Stdio::null());
        c.output().unwrap()
    };
    let dom = String::from_utf8_lossy(&run(&["--dump-dom"]).stdout).into_owned();
    assert!(dom.contains("capsa install org.capsa.Hello"), "{dom}");
    assert!(
        dom.contains(&format!(
            "capsa remote add repo file://{}/ --key",
            repo.display()
        )),
        "the script filled in the page's address: {dom}"
    );
    assert!(
        !dom.contains("class=\"copy\" data-for=\"cmd-remote\" hidden"),
        "copy buttons shown"
    );
    let shot = repo.parent().unwrap().join("catalog.png");
    run(&[
        "--window-size=390,1200",
        &format!("--screenshot={}", shot.display()),
    ]);
    let png = std::fs::read(&shot).unwrap();
    // A copy to look at after the run.
    let _ = std::fs::copy(&shot, std::env::temp_dir().join("capsa-catalog.png"));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5000,
        "a screenshot"
    );
}

/// Rotation: root 2 is signed by the old key and the new; the index by the new one.
fn rotate(repo: &Path) {
    let (me, next) = (key("me", "key"), key("next", "key"));
    let err = fails(&[
        "repo",
        "rotate-key",
        s(repo),
        "--key",
        s(&key("other", "key")),
        "--new-key",
        s(&next),
    ]);
    assert!(err.contains("does not sign this repository"), "{err}");
    ok(&[
        "repo",
        "rotate-key",
        s(repo),
        "--key",
        s(&me),
        "--new-key",
        s(&next),
    ]);
    let r1 =
        repository::meta::open_root(&std::fs::read(repo.join("roots/1.json")).unwrap()).unwrap();
    let r2_bytes = std::fs::read(repo.join("roots/2.json")).unwrap();
    let r2 = repository::meta::next_root(&r1, &r2_bytes).expect("root 2 follows root 1");
    assert_eq!(std::fs::read(repo.join("root.json")).unwrap(), r2_bytes);
    let index_bytes = std::fs::read(repo.join("index.json")).unwrap();
    let idx = repository::meta::open_index(&r2, &index_bytes).expect("signed by the new key");
    assert_eq!(idx.root, 2);
    assert!(
        repository::meta::open_index(&r1, &index_bytes).is_err(),
        "not by the old one"
    );
    // The old key no longer signs; the remembered key is the new one.
    let err = fails(&["repo", "refresh", s(repo), "--key", s(&me)]);
    assert!(err.contains("does not sign this repository"), "{err}");
    ok(&["repo", "refresh", s(repo)]);
    assert!(repo
        .join("keys")
        .join(format!("{}.pub", key_id("next")))
        .exists());
    check_ok(repo);
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_in(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// gc: unreferenced blobs and objects go; what recent indexes reach stays until the grace
/// period is over; what the current index reaches always stays.
fn collect_garbage(repo: &Path) {
    use bundle_format::Digest;
    let junk = b"no index names this".to_vec();
    let junk_blob = repo.join("blobs/sha256").join(Digest::of(&junk).hex());
    std::fs::write(&junk_blob, &junk).unwrap();
    let hex = Digest::of(b"junk object").hex();
    let junk_obj = repo.join(format!("objects/sha256/{}/{hex}.zst", &hex[..2]));
    std::fs::create_dir_all(junk_obj.parent().unwrap()).unwrap();
    std::fs::write(&junk_obj, b"x").unwrap();
    let blobs_before = files_in(&repo.join("blobs")).len();
    let out = ok(&["repo", "gc", s(repo)]);
    assert!(out.contains("removed 1 blobs and 1 objects"), "{out}");
    assert!(!junk_blob.exists() && !junk_obj.exists());
    assert_eq!(
        files_in(&repo.join("blobs")).len(),
        blobs_before - 1,
        "old documents kept: {out}"
    );
    check_ok(repo);
    // Without a grace period the superseded app documents go too.
    let out = ok(&["repo", "gc", s(repo), "--grace-days", "0"]);
    let removed: usize = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(removed >= 5, "old app documents removed: {out}");
    assert_eq!(
        files_in(&repo.join(".capsa-history")).len(),
        1,
        "only the current index's copy"
    );
    check_ok(repo);
    let doc = app_doc(repo, HELLO);
    assert_eq!(versions(&doc), ["1.0", "1.1"]);
    assert_eq!(versions(&app_doc(repo, PY)), ["3.11"]);
}

/// `repo check` catches one flipped byte in a layer blob and in an object.
fn damage_is_found(repo: &Path) {
    let doc = app_doc(repo, HELLO);
    let bundle = doc["releases"][0]["bundle"]["size"].as_u64().unwrap();
    // The largest blob of the hello release is a layer.
    let head = doc["releases"][0]["head"]["digest"].as_str().unwrap();
    let parts = repository::publish::Parts::parse(
        &std::fs::read(blob_path(repo, head)).unwrap(),
        &std::fs::read(blob_path(
            repo,
            doc["releases"][0]["tail"]["digest"].as_str().unwrap(),
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(parts.file_len(), bundle);
    let layer = parts.blobs().max_by_key(|b| b.size).unwrap();
    let path = blob_path(repo, &layer.digest.to_string());
    let flip = |p: &Path| {
        let mut b = std::fs::read(p).unwrap();
        let i = b.len() / 2;
        b[i] ^= 1;
        std::fs::write(p, b).unwrap();
    };
    flip(&path);
    let err = fails(&["repo", "check", s(repo)]);
    assert!(
        err.contains("problem:") && err.contains(&layer.digest.to_string()),
        "{err}"
    );
    flip(&path);
    check_ok(repo);
    let objects = files_in(&repo.join("objects"));
    let obj = objects
        .iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    flip(obj);
    let err = fails(&["repo", "check", s(repo)]);
    assert!(
        err.contains(obj.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
    flip(obj);
    check_ok(repo);
}

/// Two publishers at once: the lock serializes them, so neither's release is lost.
#[test]
fn concurrent_publishers_serialize() {
    let repo = new_repo("concurrent");
    let a = hello_variant("hello-a", Some("me"), version("2.0"));
    let b = hello_variant("hello-b", Some("me"), |t| {
        t.replace(HELLO, "org.capsa.HelloTwo")
    });
    ok(&["repo", "add", s(&repo), s(signed_hello())]);
    let spawn = |bundle: &Path| {
        capsa(&["repo", "add", s(&repo), s(bundle)])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (spawn(&a), spawn(&b));
    for p in [pa, pb] {
        let o = p.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let idx = index(&repo);
    assert_eq!(idx["version"], 4, "three publishes after init");
    assert_eq!(versions(&app_doc(&repo, HELLO)), ["1.0", "2.0"]);
    assert!(idx["apps"]["org.capsa.HelloTwo"].is_object(), "{idx}");
    check_ok(&repo);
}

/// Copies a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Reads `index.json` and `index.html` until `stop`: each must be whole every time (the index
/// verifies with root 1, the page ends). Returns the number of reads.
fn read_while(repo: &Path, root: &repository::meta::Root, stop: &AtomicBool) -> u64 {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let index = std::fs::read(repo.join("index.json")).unwrap();
        if let Err(e) = repository::meta::open_index(root, &index) {
            panic!(
                "a reader saw a damaged index.json ({e}): {:?}",
                String::from_utf8_lossy(&index)
            );
        }
        let page = std::fs::read(repo.join("index.html")).unwrap();
        assert!(
            page.ends_with(b"</html>\n"),
            "a reader saw a half-written index.html"
        );
        n += 1;
    }
    n
}

/// `repo add` killed with SIGKILL at points spread over its whole run (from 0 ms to past its
/// end): the repository always checks, and a later `repo add` of the same bundle either
/// publishes it or says it already was (never anything half).
#[test]
fn add_killed_at_any_point_leaves_the_repository_valid() {
    let base = new_repo("killed");
    ok(&["repo", "add", s(&base), s(signed_hello())]);
    // 1.2 has one new file, so the kills land in objects, blobs, documents and the index.
    let b12 = hello_variant("hello-1.2", Some("me"), |t| {
        version("1.2")(t).replace(
            "files = { \"/usr/local/bin/capsa-hello\" = \"build/capsa-hello\" }",
            "files = { \"/usr/local/bin/capsa-hello\" = \"build/capsa-hello\", \"/usr/share/capsa-hello/icon.png\" = \"icon.png\" }",
        )
    });
    let work = base.parent().unwrap().join("work");
    let fresh = || {
        remove_all(&work);
        copy_tree(&base, &work);
    };
    let add = || capsa(&["repo", "add", s(&work), s(&b12)]);
    // Measure one whole run.
    fresh();
    let t = Instant::now();
    assert!(add().output().unwrap().status.success());
    let mut estimate = t.elapsed();
    let points: u32 = std::env::var("CAPSA_CRASH_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let root1 =
        repository::meta::open_root(&std::fs::read(base.join("roots/1.json")).unwrap()).unwrap();
    let started = Instant::now();
    let (mut killed, mut finished, mut i, mut total_reads) = (0, 0, 0, 0);
    while i < points && started.elapsed() < Duration::from_secs(20) {
        fresh();
        // Points 0, 1, 2 ms, then evenly over 1.2 times the run's duration (re-estimated).
        let delay = match i {
            0..=2 => Duration::from_millis(i.into()),
            _ => estimate.mul_f64(1.2 * f64::from(i - 2) / f64::from(points - 3)),
        };
        let stop = AtomicBool::new(false);
        let reads = std::thread::scope(|sc| {
            // A reader (a web server) meanwhile never sees a half-written index or page.
            let reader = sc.spawn(|| read_while(&work, &root1, &stop));
            let mut child = add()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let t = Instant::now();
            std::thread::sleep(delay);
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                killed += 1;
                // Still running past the estimate: the machine is slower now (it is shared).
                if delay >= estimate {
                    estimate = delay.mul_f64(1.25);
                }
            } else {
                finished += 1;
                estimate = estimate.max(t.elapsed());
            }
            child.wait().unwrap();
            stop.store(true, Ordering::Relaxed);
            reader.join().unwrap()
        });
        total_reads += reads;
        let out = ok(&["repo", "check", s(&work)]);
        assert!(out.contains(": ok ("), "after a kill at {delay:?}: {out}");
        let published = versions(&app_doc(&work, HELLO)).contains(&"1.2".to_string());
        let again = run(&["repo", "add", s(&work), s(&b12)]);
        if published {
            assert!(
                text(&again).contains("already published"),
                "{}",
                text(&again)
            );
        } else {
            assert!(
                again.status.success(),
                "after a kill at {delay:?}: {}",
                text(&again)
            );
        }
        assert_eq!(versions(&app_doc(&work, HELLO)), ["1.0", "1.2"]);
        check_ok(&work);
        i += 1;
    }
    eprintln!(
        "{i} points: {killed} killed, {finished} finished (one run: {estimate:?}); {total_reads} reads of index.json and index.html"
    );
    assert!(killed >= 3, "the loop killed {killed} runs");
    remove_all(&work);
}

/// A launcher stub in front of a bundle is stripped (and said); a damaged bundle is refused
/// and publishes nothing.
#[test]
fn stubs_are_stripped_and_damaged_bundles_refused() {
    use bundle_format::Digest;
    let repo = new_repo("stub");
    let plain = hello_variant("hello-1.3", Some("me"), version("1.3"));
    let bytes = std::fs::read(&plain).unwrap();
    let mut stubbed = b"#!/bin/sh\necho a launcher stub\nexit 1\n".to_vec();
    stubbed.resize(8192, 0);
    stubbed.extend_from_slice(&bytes);
    let with_stub = shared_tmp().join("hello-1.3-stub.capsa");
    std::fs::write(&with_stub, &stubbed).unwrap();
    let o = run(&["repo", "add", s(&repo), s(&with_stub)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("stripped the 8192-byte launcher stub"),
        "{}",
        text(&o)
    );
    let rel = &app_doc(&repo, HELLO)["releases"][0];
    assert_eq!(rel["bundle"]["digest"], Digest::of(&bytes).to_string());
    assert_eq!(rel["bundle"]["size"], bytes.len());
    check_ok(&repo);

    let mut damaged = std::fs::read(signed_hello()).unwrap();
    let i = damaged.len() / 2;
    damaged[i] ^= 0x40;
    let bad = shared_tmp().join("hello-damaged.capsa");
    std::fs::write(&bad, &damaged).unwrap();
    let before = index(&repo);
    let err = fails(&["repo", "add", s(&repo), s(&bad)]);
    assert!(err.contains("failed verification"), "{err}");
    assert_eq!(index(&repo), before, "nothing published");
    check_ok(&repo);
}
