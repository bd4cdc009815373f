//! End to end: the samples pack, verify, inspect and extract, and the extracted tree runs on
//! its own files alone (a new root with nothing from the host): python3 with ssl, sqlite3 and
//! ctypes, and the C sample built by the test. The `libc` layer is shared between the two.

mod common;

use common::*;

#[test]
fn python_sample_runs_from_its_own_files() {
    let bundle = python_bundle();
    ok(&["verify", bundle.to_str().unwrap()]);
    let root = extract(bundle, "python-root");
    if !userns() {
        return;
    }
    let o = run_in_root(
        &root,
        &[
            "/usr/bin/python3",
            "-c",
            "import ssl, sqlite3, ctypes, json; print('ok')",
        ],
        &[],
    );
    assert!(
        o.status.success(),
        "python in the bundle root failed: {}",
        text(&o)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
    // The same interpreter really loads the bundle's libraries: sqlite works in memory, and
    // ctypes finds libc through the bundle's loader.
    let o = run_in_root(
        &root,
        &["/usr/bin/python3.11", "-c", "import sqlite3, ctypes, ctypes.util; c=sqlite3.connect(':memory:'); print(c.execute('select 6*7').fetchone()[0], ctypes.CDLL(None).getpid() > 0)"],
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "42 True",
        "{}",
        text(&o)
    );
}

#[test]
fn python_bundle_holds_no_more_than_it_needs() {
    let v = inspect_json(python_bundle());
    let roles: Vec<&str> = v["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["libc", "deps", "app"]);
    assert_eq!(v["manifest"]["arch"], std::env::consts::ARCH);
    assert!(v["manifest"]["requires"]["glibc"]
        .as_str()
        .is_some_and(|g| g.starts_with("2.")));
    let root = extract(python_bundle(), "python-root-2");
    let files = tree(&root);
    assert!(files.iter().any(
        |f| f.ends_with("lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so")
            || f.contains("_ssl.cpython")
    ));
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("home") || f.starts_with("proc") || f.contains("/test/test_")),
        "unexpected files captured"
    );
    assert!(
        !files.iter().any(|f| f.contains("/idlelib/")),
        "excluded tree captured"
    );
    // Symlinks are kept as symlinks: python3 -> python3.11, merged-/usr links.
    let link = std::fs::read_link(root.join("usr/bin/python3")).expect("python3 is a symlink");
    assert_eq!(link.to_str(), Some("python3.11"));
}

#[test]
fn hello_sample_runs_and_passes_its_exit_code() {
    let bundle = hello_bundle();
    let out = ok(&["verify", bundle.to_str().unwrap()]);
    assert!(out.contains("ok"), "{out}");
    let root = extract(bundle, "hello-root");
    if !userns() {
        return;
    }
    let o = run_in_root(
        &root,
        &["/usr/local/bin/capsa-hello"],
        &[("HELLO_EXIT", "7")],
    );
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("sqrt(2)=1.414214"));
}

#[test]
fn two_apps_packed_on_one_system_share_a_byte_identical_libc_layer() {
    let layer = |b: &std::path::Path, role: &str| {
        inspect_json(b)["manifest"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["role"] == role)
            .map(|l| l["digest"].as_str().unwrap().to_owned())
    };
    let a = layer(hello_bundle(), "libc").expect("hello has a libc layer");
    let b = layer(python_bundle(), "libc").expect("python has a libc layer");
    assert_eq!(a, b, "libc layers differ");
    // Beyond glibc, hello's deps layer holds the base (sh, locale, NSS and network files, CA
    // certificates, terminfo) and its closure: nothing hello itself needs.
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "inspect",
        "--report",
        "--json",
        hello_bundle().to_str().unwrap(),
    ]))
    .unwrap();
    let files = report["report"]["files"].as_array().expect("report files");
    let foreign: Vec<&serde_json::Value> =
        files
            .iter()
            .filter(|f| f["layer"] == "deps")
            .filter(|f| {
                !f["origins"].as_array().unwrap().iter().all(|o| {
                    o["kind"] == "base" || o["kind"] == "closure" || o["kind"] == "generated"
                })
            })
            .collect();
    assert!(foreign.is_empty(), "hello needs only glibc: {foreign:?}");
}

#[test]
fn explain_and_report_say_why_each_file_is_in() {
    let recipe = build_hello(&shared_tmp().join("hello-explain"));
    let out_file = shared_tmp().join("hello-explain.capsa");
    let out = ok(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
        "--explain",
    ]);
    assert!(
        out.contains("NEEDED by /usr/local/bin/capsa-hello"),
        "{out}"
    );
    assert!(
        out.contains("program interpreter of /usr/local/bin/capsa-hello"),
        "{out}"
    );
    let report = ok(&["inspect", "--report", out_file.to_str().unwrap()]);
    assert!(
        report.contains("libm.so.6") && report.contains("NEEDED by"),
        "{report}"
    );
    let files = ok(&["inspect", "--files", out_file.to_str().unwrap()]);
    assert!(
        files.contains("/usr/local/bin/capsa-hello") && files.contains("-> "),
        "{files}"
    );
}
