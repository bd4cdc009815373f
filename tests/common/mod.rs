//! Helpers for the end-to-end tests: run the real `capsa` binary, build the samples, run a
//! program inside an extracted bundle tree with nothing from the host (`unshare -r -R`).
//!
//! `CAPSA_BIN` and `CAPSA_SRC` override the binary and the source tree, so `.ci/run` can run the
//! same compiled tests as an unprivileged user from a copy. With `CAPSA_REQUIRE_SANDBOX=1` (CI)
//! a missing user namespace fails the tests instead of skipping them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn capsa_bin() -> PathBuf {
    std::env::var_os("CAPSA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_capsa")))
}

pub fn src() -> PathBuf {
    std::env::var_os("CAPSA_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `capsa ARGS` with a clean environment for reproducibility-sensitive variables.
pub fn capsa(args: &[&str]) -> Command {
    let mut c = Command::new(capsa_bin());
    c.args(args).env_remove("SOURCE_DATE_EPOCH");
    c
}

/// Runs `capsa ARGS` and returns its output.
pub fn run(args: &[&str]) -> Output {
    capsa(args).output().expect("run capsa")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "capsa {args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts failure (exit 1) and returns stdout+stderr.
pub fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "capsa {args:?} should fail with 1: {}",
        text(&o)
    );
    text(&o)
}

/// A temporary directory that lives for the whole test binary.
pub fn shared_tmp() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("capsa-e2e-")
            .tempdir()
            .unwrap()
    })
    .path()
}

/// Copies the hello sample into `dir` and builds it there; returns the recipe path.
pub fn build_hello(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["hello.c", "capsa.toml", "build.sh"] {
        std::fs::copy(src().join("samples/hello").join(f), dir.join(f)).unwrap();
    }
    let st = Command::new("sh")
        .arg(dir.join("build.sh"))
        .status()
        .expect("run build.sh");
    assert!(st.success(), "building the hello sample failed");
    dir.join("capsa.toml")
}

/// The hello sample packed once per test binary.
pub fn hello_bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let recipe = build_hello(&shared_tmp().join("hello"));
        let out = shared_tmp().join("hello.capsa");
        ok(&[
            "pack",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        out
    })
}

/// The python3 sample packed once per test binary, at the default level like the hello sample
/// (layers are shared only between bundles packed at the same level).
pub fn python_bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let out = shared_tmp().join("python3.capsa");
        let recipe = src().join("samples/python3/capsa.toml");
        ok(&[
            "pack",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        out
    })
}

/// Whether unprivileged user namespaces work here; fails the test when CI requires them.
pub fn userns() -> bool {
    static U: OnceLock<bool> = OnceLock::new();
    let available = *U.get_or_init(|| {
        Command::new("unshare")
            .args(["-r", "true"])
            .status()
            .is_ok_and(|s| s.success())
    });
    if !available {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_SANDBOX").is_none(),
            "user namespaces are required (CAPSA_REQUIRE_SANDBOX) but unavailable"
        );
        eprintln!("skipped: no unprivileged user namespaces");
    }
    available
}

/// Runs `argv` with `root` as `/` in a new user and mount namespace: the program sees only the
/// extracted bundle, not one file of the host.
pub fn run_in_root(root: &Path, argv: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("unshare");
    c.arg("-r")
        .arg("-R")
        .arg(root)
        .arg("--")
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run unshare")
}

/// Extracts `bundle` into a new directory under the shared temp dir.
pub fn extract(bundle: &Path, name: &str) -> PathBuf {
    let dir = shared_tmp().join(name);
    ok(&["extract", bundle.to_str().unwrap(), dir.to_str().unwrap()]);
    dir
}

pub fn inspect_json(bundle: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&["inspect", "--json", bundle.to_str().unwrap()]))
        .expect("inspect --json is JSON")
}

/// Lists every file below `dir`, recursively, relative to it.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}
