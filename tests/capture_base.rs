//! End to end: the base every bundle gets (NSS files, C.UTF-8, the loader cache and ldconfig),
//! paths the sandbox provides (zoneinfo's `localtime` link), and `packages = [...]` with the
//! package named by `pack --explain`. Drives the real `capsa` binary; runs as root and as an
//! unprivileged user.

mod common;

use std::path::{Path, PathBuf};

use common::{fails, ok, shared_tmp, stdout, text, userns, Isolated};

/// Writes `body` as a recipe named `name`.toml and packs it; returns the bundle and the
/// `--explain` output.
fn pack(name: &str, body: &str) -> (PathBuf, String) {
    let recipe = shared_tmp().join(format!("{name}.toml"));
    std::fs::write(&recipe, body).unwrap();
    let out = shared_tmp().join(format!("{name}.capsa"));
    let explain = ok(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--explain",
    ]);
    (out, explain)
}

fn recipe(id: &str, command: &str, capture: &str) -> String {
    format!(
        "[app]\nid = \"org.capsa.{id}\"\nname = \"{id}\"\nversion = \"1\"\ncommand = [\"{command}\"]\n\
         [capture]\n{capture}\n"
    )
}

/// Runs the bundle with `args`, asserting success; returns stdout.
fn run_ok(bundle: &Path, args: &[&str]) -> String {
    let env = Isolated::new();
    let mut argv = vec!["run", bundle.to_str().unwrap()];
    argv.extend_from_slice(args);
    let o = env.run(&argv);
    assert!(o.status.success(), "capsa {argv:?}: {}", text(&o));
    stdout(&o)
}

fn user_name() -> String {
    let o = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

#[test]
fn getent_finds_the_running_user_through_the_base_nsswitch() {
    if !userns() {
        return;
    }
    let (b, explain) = pack(
        "getent",
        &recipe(
            "Getent",
            "/usr/bin/getent",
            "binaries = [\"/usr/bin/getent\"]",
        ),
    );
    assert!(
        explain.contains("/etc/nsswitch.conf  <- base: written by capsa"),
        "{explain}"
    );
    let me = user_name();
    let line = run_ok(&b, &["passwd", &me]);
    assert!(line.starts_with(&format!("{me}:")), "{line}");
    let hosts = run_ok(&b, &["hosts", "localhost"]);
    assert!(hosts.contains("localhost"), "{hosts}");
    // The shell and ldconfig of the base work, and ldconfig reads the bundle's cache.
    let env = Isolated::new();
    let o = env.run(&[
        "run",
        "--command",
        "/sbin/ldconfig",
        b.to_str().unwrap(),
        "-p",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("libc.so.6 (libc6,x86-64"),
        "{}",
        text(&o)
    );
    let o = env.run(&[
        "run",
        "--command",
        "/bin/sh",
        b.to_str().unwrap(),
        "-c",
        "echo sh-ok",
    ]);
    assert_eq!(stdout(&o), "sh-ok", "{}", text(&o));
}

#[test]
fn python_sees_the_user_utf8_and_find_library() {
    if !userns() || !Path::new("/usr/bin/python3.11").exists() {
        eprintln!("skipped: no python3.11 or no user namespaces");
        return;
    }
    let b = common::python_bundle();
    let me = user_name();
    let code = "import pwd,os,locale,ctypes.util; print(pwd.getpwuid(os.getuid()).pw_name); \
                print('caf\\u00e9'); print(locale.getpreferredencoding()); \
                print(ctypes.util.find_library('m'))";
    let out = run_ok(b, &["-c", code]);
    // Python spells the codec "UTF-8" or "utf-8" depending on whether LANG is set.
    let lines: Vec<String> = out.lines().map(|l| l.replace("utf-8", "UTF-8")).collect();
    assert_eq!(lines, [me.as_str(), "café", "UTF-8", "libm.so.6"], "{out}");
}

#[test]
fn zoneinfo_packs_without_localtime_and_runs() {
    if !userns() {
        return;
    }
    let (b, explain) = pack(
        "zoneinfo",
        &recipe(
            "Zoneinfo",
            "/usr/bin/head",
            "binaries = [\"/usr/bin/head\"]\npaths = [\"/usr/share/zoneinfo\"]",
        ),
    );
    assert!(
        explain.contains("dropped /usr/share/zoneinfo/localtime: the sandbox provides it"),
        "{explain}"
    );
    assert!(!explain.contains("/etc/localtime  <-"), "{explain}");
    assert_eq!(run_ok(&b, &["-c", "4", "/usr/share/zoneinfo/UTC"]), "TZif");

    let listed = shared_tmp().join("listed-localtime.toml");
    std::fs::write(
        &listed,
        recipe(
            "Lt",
            "/usr/bin/head",
            "binaries = [\"/usr/bin/head\"]\npaths = [\"/etc/localtime\"]",
        ),
    )
    .unwrap();
    let out = shared_tmp().join("listed-localtime.capsa");
    let err = fails(&[
        "pack",
        listed.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("/etc/localtime, which the sandbox provides"),
        "{err}"
    );
}

#[test]
fn packages_capture_less_and_explain_names_it() {
    if !Path::new("/var/lib/dpkg/info/less.list").exists() {
        eprintln!("skipped: the less package is not installed");
        return;
    }
    let (b, explain) = pack(
        "less",
        &recipe("Less", "/usr/bin/less", "packages = [\"less\"]"),
    );
    let line = explain
        .lines()
        .find(|l| l.trim_start().starts_with("/usr/bin/less  <-"))
        .unwrap_or_else(|| panic!("no /usr/bin/less line: {explain}"));
    assert!(line.ends_with("(package less)"), "{line}");
    assert!(!explain.contains("/usr/share/doc/less"), "{explain}");
    let bad = shared_tmp().join("nopkg.toml");
    std::fs::write(
        &bad,
        recipe("Nopkg", "/usr/bin/less", "packages = [\"no-such-pkg\"]"),
    )
    .unwrap();
    let err = fails(&[
        "pack",
        bad.to_str().unwrap(),
        "-o",
        shared_tmp().join("n.capsa").to_str().unwrap(),
    ]);
    assert!(
        err.contains("package no-such-pkg is not installed"),
        "{err}"
    );
    if !userns() {
        return;
    }
    let v = run_ok(&b, &["--", "--version"]);
    assert!(v.starts_with("less "), "{v}");
}
