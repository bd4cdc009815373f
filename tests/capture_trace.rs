//! `capture.trace` end to end with the real `capsa` binary: what only a run shows (a plugin
//! dlopen'd by a computed name, a Python module imported by a computed name) is in the bundle
//! when the recipe traces the app and missing when it does not, proven by running both
//! bundles with nothing of the host; and a file the traced app reads in `$HOME` is named as
//! private and left out.
//!
//! Needs a C compiler, python3 and ptrace: a test skips, saying why, when one is missing,
//! unless `CAPSA_REQUIRE_TRACE` is set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// True when `tool` runs here; a skip reason is printed otherwise (or a failure under
/// `CAPSA_REQUIRE_TRACE`).
fn have(tool: &str, arg: &str) -> bool {
    let ok = Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_TRACE").is_none(),
            "{tool} is required (CAPSA_REQUIRE_TRACE) but does not run"
        );
        eprintln!("skipped: {tool} does not run here");
    }
    ok
}

fn fixture(name: &str) -> PathBuf {
    src().join("tests/fixtures/trace").join(name)
}

fn fresh(name: &str) -> PathBuf {
    let d = shared_tmp().join(name);
    remove_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn recipe(dir: &Path, name: &str, command: &[&str], capture: &str) -> PathBuf {
    let argv: Vec<String> = command.iter().map(|a| format!("{a:?}")).collect();
    let text = format!(
        "[app]\nid = \"org.example.{name}\"\nname = \"{name}\"\nversion = \"1\"\n\
         command = [{}]\n[capture]\n{capture}",
        argv.join(", ")
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Packs `recipe` (with `HOME` set to `home` when given); `None` when tracing is not
/// possible here (skipped, printed).
fn pack(recipe: &Path, home: Option<&Path>) -> Option<(PathBuf, String)> {
    let out = recipe.with_extension("capsa");
    let mut c = capsa(&[
        "pack",
        "--level",
        "1",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    if let Some(h) = home {
        c.env("HOME", h);
    }
    let o = c.output().expect("run capsa pack");
    let t = text(&o);
    if !o.status.success() && t.contains("cannot trace") {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_TRACE").is_none(),
            "tracing is required (CAPSA_REQUIRE_TRACE) but failed: {t}"
        );
        eprintln!("skipped: tracing does not work here: {t}");
        return None;
    }
    assert!(o.status.success(), "capsa pack {}: {t}", recipe.display());
    Some((out, t))
}

/// Runs `argv` inside the extracted `bundle`, with nothing of the host.
fn run_bundle(bundle: &Path, name: &str, argv: &[&str]) -> std::process::Output {
    let root = extract(bundle, name);
    run_in_root(&root, argv, &[])
}

fn cc(args: &[&str]) {
    let st = Command::new("cc").args(args).status().expect("run cc");
    assert!(st.success(), "cc {args:?} failed");
}

#[test]
fn a_plugin_dlopened_by_a_computed_name_comes_only_with_a_trace() {
    if !have("cc", "--version") || !userns() {
        return;
    }
    let p = fresh("trace-dlopen");
    std::fs::create_dir_all(p.join("plugins")).unwrap();
    let plug = p.join("plugins/libplug.so");
    cc(&[
        "-shared",
        "-fPIC",
        "-o",
        plug.to_str().unwrap(),
        fixture("plug.c").to_str().unwrap(),
    ]);
    let app = p.join("app");
    let define = format!("-DPREFIX=\"{}\"", p.display());
    cc(&[
        &define,
        "-o",
        app.to_str().unwrap(),
        fixture("dlopen_main.c").to_str().unwrap(),
    ]);
    let app_s = app.to_str().unwrap();
    let bins = format!("binaries = [{app_s:?}]\n");
    let plain = recipe(&p, "Plain", &[app_s], &bins);
    let traced = recipe(
        &p,
        "Traced",
        &[app_s],
        &format!("{bins}trace = [[{app_s:?}]]\n"),
    );
    let Some((with, _)) = pack(&traced, None) else {
        return;
    };
    let (without, _) = pack(&plain, None).expect("a pack without trace needs no tracer");

    let o = run_bundle(&without, "trace-dlopen-plain", &[app_s]);
    assert!(!o.status.success(), "runs without its plugin: {}", text(&o));
    assert!(text(&o).contains("dlopen failed"), "{}", text(&o));
    let o = run_bundle(&with, "trace-dlopen-traced", &[app_s]);
    assert!(o.status.success(), "traced bundle fails: {}", text(&o));
    assert_eq!(stdout(&o), "plugin says hello");

    let report = &inspect_report(&with);
    let entry = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == plug.to_str().unwrap())
        .expect("the plugin is in the report");
    assert_eq!(entry["origins"][0]["kind"], "trace", "{entry}");
    assert_eq!(report["traces"][0]["exit"]["code"], 0, "{report}");
}

#[test]
fn a_module_imported_by_a_computed_name_comes_only_with_a_trace() {
    let python = PathBuf::from("/usr/bin/python3");
    if !have(python.to_str().unwrap(), "--version") || !userns() {
        return;
    }
    let p = fresh("trace-import");
    std::fs::create_dir_all(p.join("mods")).unwrap();
    std::fs::copy(fixture("dynamic_mod.py"), p.join("mods/dynamic_mod.py")).unwrap();
    let main = p.join("main.py");
    std::fs::copy(fixture("dynamic_import.py"), &main).unwrap();
    let mods = p.join("mods");
    let argv = [
        "/usr/bin/python3",
        main.to_str().unwrap(),
        mods.to_str().unwrap(),
    ];
    let real = std::fs::canonicalize(&python).unwrap();
    let base = format!(
        "binaries = [{:?}]\npaths = [\"/usr/bin/python3\", {:?}]\n",
        real.to_str().unwrap(),
        main.to_str().unwrap()
    );
    let trace: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    // Without a trace the standard library comes by name; with one, from the imports seen.
    let plain = recipe(
        &p,
        "PyPlain",
        &argv,
        &format!("{base}units = [\"python-stdlib\"]\n"),
    );
    let traced = recipe(
        &p,
        "PyTraced",
        &argv,
        &format!("{base}trace = [[{}]]\n", trace.join(", ")),
    );
    let Some((with, _)) = pack(&traced, None) else {
        return;
    };
    let (without, _) = pack(&plain, None).unwrap();

    let o = run_bundle(&without, "trace-import-plain", &argv);
    assert!(
        !o.status.success(),
        "imports without its module: {}",
        text(&o)
    );
    assert!(text(&o).contains("dynamic_mod"), "{}", text(&o));
    let o = run_bundle(&with, "trace-import-traced", &argv);
    assert!(o.status.success(), "traced bundle fails: {}", text(&o));
    assert_eq!(stdout(&o), "module says hello");

    let report = inspect_report(&with);
    let has_unit = report["files"].as_array().unwrap().iter().any(|f| {
        f["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/json/__init__.py"))
            && f["origins"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["kind"] == "unit" && o["name"] == "python-stdlib")
    });
    assert!(has_unit, "the imports seen widen to the standard library");
}

#[test]
fn a_file_read_from_home_is_named_private_and_left_out() {
    let p = fresh("trace-home");
    let home = p.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let secret = home.join("secret.txt");
    std::fs::write(&secret, b"do not pack me").unwrap();
    let r = recipe(
        &p,
        "Home",
        &["/bin/sh"],
        "binaries = [\"/bin/sh\"]\n\
         trace = [[\"/bin/sh\", \"-c\", \"cat \\\"$HOME/secret.txt\\\" /etc/hostname >/dev/null\"]]\n",
    );
    let Some((bundle, out)) = pack(&r, Some(&home)) else {
        return;
    };
    let line = format!("not captured (private, in your home): {}", secret.display());
    assert!(out.contains(&line), "{out}");
    let report = inspect_report(&bundle);
    let skipped = report["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s["path"] == secret.to_str().unwrap() && s["reason"] == "home"),
        "{skipped:?}"
    );
    let tree = extract(&bundle, "trace-home-tree");
    assert!(!tree.join(secret.strip_prefix("/").unwrap()).exists());
    let listed = ok(&["inspect", bundle.to_str().unwrap()]);
    assert!(!listed.contains("secret.txt"), "{listed}");
}

#[test]
fn a_command_that_outlives_the_timeout_is_killed_with_a_warning() {
    let p = fresh("trace-timeout");
    let r = recipe(
        &p,
        "Slow",
        &["/bin/sleep"],
        "binaries = [\"/bin/sleep\"]\ntrace = [[\"/bin/sleep\", \"60\"]]\ntrace-timeout = 1\n",
    );
    let started = std::time::Instant::now();
    let Some((bundle, out)) = pack(&r, None) else {
        return;
    };
    assert!(
        started.elapsed().as_secs() < 30,
        "not killed at the timeout"
    );
    assert!(out.contains("warning"), "{out}");
    let report = inspect_report(&bundle);
    assert_eq!(report["traces"][0]["timed_out"], true, "{report}");
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("trace-timeout"))),
        "{report}"
    );
}

fn inspect_report(bundle: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "inspect",
        "--report",
        "--json",
        bundle.to_str().unwrap(),
    ]))
    .expect("inspect --json is JSON");
    v["report"].clone()
}
