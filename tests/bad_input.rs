//! End to end: bad recipes, missing files and unresolvable libraries are refused with a message
//! naming the file and the problem, exit 1, and no output (no partial bundle, no temporary
//! files); extraction refuses a non-empty destination; garbage is not a bundle.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn write(dir: &Path, name: &str, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

fn assert_no_output(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| {
            n.to_string_lossy().ends_with(".capsa") || n.to_string_lossy().starts_with(".capsa")
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

const HEAD: &str =
    "[app]\nid = \"org.capsa.Bad\"\nname = \"b\"\nversion = \"1\"\ncommand = [\"/usr/bin/true\"]\n";

#[test]
fn bad_recipes_are_refused_with_the_file_and_problem() {
    let dir = shared_tmp().join("bad-recipes");
    for (text, want) in [
        ("[app\n", "capsa.toml"),
        (&format!("{HEAD}[capture]\nbinaries = [\"/usr/bin/true\"]\nbogus = 1\n") as &str, "unknown field `bogus`"),
        (&HEAD.replace("org.capsa.Bad", "Bad"), "app.id"),
        (&format!("{HEAD}[capture]\nbinaries = [\"/nonexistent/prog\"]\n"), "/nonexistent/prog"),
        (&format!("{HEAD}[capture]\nbinaries = [\"/etc/host.conf\"]\n"), "is not an ELF program"),
        (&format!("{HEAD}[capture]\nbinaries = [\"/usr/bin/true\"]\n[permissions]\nsockets = [\"ssh-agent\"]\n"), "ssh-agent"),
        (&format!("{HEAD}[capture]\npaths = [\"/etc/host.conf\"]\n"), "app.command /usr/bin/true is not in the bundle"),
        (&format!("{HEAD}[capture]\nbinaries = [\"/usr/bin/true\"]\npaths = [\"/etc/host.conf\"]\n[desktop]\nicon = \"/etc/host.conf\"\n"), "not a PNG"),
    ] {
        let r = write(&dir, "capsa.toml", text);
        let out = dir.join("out.capsa");
        let err = fails(&["pack", &r, "-o", out.to_str().unwrap()]);
        assert!(err.contains(want), "expected {want:?} in: {err}");
        assert!(err.contains("capsa.toml") || err.contains("/nonexistent") || err.contains("/etc/hostname"), "no file named: {err}");
        assert_no_output(&dir);
    }
}

#[test]
fn unresolved_libraries_are_listed_and_can_be_accepted() {
    let dir = shared_tmp().join("unresolved");
    std::fs::create_dir_all(dir.join("build")).unwrap();
    write(&dir, "lib.c", "int capsa_answer(void) { return 42; }\n");
    write(
        &dir,
        "main.c",
        "int capsa_answer(void);\nint main(void) { return capsa_answer() == 42 ? 0 : 1; }\n",
    );
    let cc = |args: &[&str]| {
        assert!(Command::new("cc")
            .current_dir(&dir)
            .args(args)
            .status()
            .unwrap()
            .success())
    };
    cc(&[
        "-shared",
        "-fPIC",
        "-o",
        "libcapsaanswer.so.1",
        "-Wl,-soname,libcapsaanswer.so.1",
        "lib.c",
    ]);
    cc(&["-o", "build/main", "main.c", "./libcapsaanswer.so.1"]);
    let r = write(&dir, "capsa.toml", "[app]\nid = \"org.capsa.Missing\"\nname = \"m\"\nversion = \"1\"\ncommand = [\"/usr/bin/m\"]\n[capture]\nfiles = { \"/usr/bin/m\" = \"build/main\" }\n");
    let out = dir.join("m.capsa");
    let err = fails(&["pack", &r, "-o", out.to_str().unwrap()]);
    assert!(
        err.contains("libcapsaanswer.so.1 needed by /usr/bin/m"),
        "{err}"
    );
    assert_no_output(&dir);
    let done = ok(&[
        "pack",
        &r,
        "-o",
        out.to_str().unwrap(),
        "--allow-missing",
        "--explain",
    ]);
    assert!(
        done.contains("missing (accepted): libcapsaanswer.so.1"),
        "{done}"
    );
}

#[test]
fn extract_refuses_a_non_empty_destination_and_garbage() {
    let dir = shared_tmp().join("nonempty");
    write(&dir, "keep.txt", "precious");
    let err = fails(&[
        "extract",
        hello_bundle().to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.txt")).unwrap(),
        "precious"
    );
    let junk = write(&shared_tmp().join("junk"), "junk.capsa", &"x".repeat(5000));
    let err = fails(&["verify", &junk]);
    assert!(
        err.contains("junk.capsa") && err.contains("not a capsa bundle"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2_and_completions_work() {
    let o = run(&["pack", "--level", "99"]);
    assert_eq!(o.status.code(), Some(2));
    let bash = ok(&["completions", "bash"]);
    assert!(bash.contains("capsa") && bash.contains("inspect"));
    let json = ok(&["verify", "--json", hello_bundle().to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["ok"], true);
}

#[test]
fn app_ids_from_the_command_line_never_become_paths() {
    let root = shared_tmp().join("ids");
    let data = root.join("data");
    std::fs::create_dir_all(data.join("victim")).unwrap();
    std::fs::write(data.join("victim/keep"), "x").unwrap();
    for args in [
        vec!["uninstall", "../../victim"],
        vec!["info", "../victim"],
        vec!["reset", "../../victim"],
        vec!["diff", "a/b"],
        vec!["override", "../x", "--reset"],
    ] {
        let o = capsa(&args)
            .env("XDG_DATA_HOME", &data)
            .env("XDG_CACHE_HOME", root.join("cache"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("not an app id"), "{args:?}: {}", text(&o));
    }
    assert_eq!(
        std::fs::read_to_string(data.join("victim/keep")).unwrap(),
        "x"
    );
    let o = capsa(&["run", "../../victim"])
        .env("XDG_DATA_HOME", &data)
        .env("XDG_CACHE_HOME", root.join("cache"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
}
