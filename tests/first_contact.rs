//! First contact: what a new user meets first says what happened, names the file and the real
//! cause, and what to do. Each test drives the real binary and checks the key facts of the
//! message (the file, the cause), not its sentences.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;

use common::*;

/// Hello packed again with another id (and, for `network`, asking for the network, else with
/// one more file, so its app layer differs from hello's while libc and deps are the same).
fn variant(name: &str, id: &str, network: bool) -> PathBuf {
    let dir = shared_tmp().join(name);
    let recipe = build_hello(&dir);
    let mut text = std::fs::read_to_string(&recipe).unwrap();
    text = text.replace("\"org.capsa.Hello\"", &format!("\"{id}\""));
    if network {
        text = text.replace("network = false", "network = true");
    } else {
        std::fs::write(dir.join("note.txt"), "a note\n").unwrap();
        text = text.replace(
            "\"build/capsa-hello\" }",
            "\"build/capsa-hello\", \"/usr/local/share/capsa-note\" = \"note.txt\" }",
        );
    }
    std::fs::write(&recipe, text).unwrap();
    let out = shared_tmp().join(format!("{name}.capsa"));
    ok(&["pack", s(&recipe), "-o", s(&out)]);
    out
}

fn note_bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| variant("note", "org.capsa.HelloNote", false))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `(role, digest hex)` of each layer of `bundle`.
fn layers(bundle: &Path) -> Vec<(String, String)> {
    let v = inspect_json(bundle);
    v["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let d = l["digest"].as_str().unwrap();
            (l["role"].as_str().unwrap().to_owned(), d[7..].to_owned())
        })
        .collect()
}

/// `sh -c SCRIPT` on a pseudo-terminal (`script`), its input `input`: what the terminal showed.
fn iso_terminal(iso: &Isolated, command: &str, input: &str) -> Output {
    let mut c = std::process::Command::new("script");
    c.envs(iso.env()).env_remove("SOURCE_DATE_EPOCH");
    on_terminal(c, command, input)
}

#[test]
fn a_missing_bundle_file_is_said_to_be_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("org.capsa.Hello-1.0.capsa"), b"").unwrap();
    let typo = "org.capsa.Hello-1.1.capsa";
    let iso = Isolated::new();
    for (args, code) in [
        (vec!["run", typo], 125),
        (vec!["install", typo], 1),
        (vec!["install", "org.capsa.Hello.capsa"], 1),
        (vec!["inspect", typo], 1),
        (vec!["verify", typo], 1),
        (vec!["extract", typo, "out"], 1),
        (vec!["strip-stub", typo, "-o", "plain.capsa"], 1),
    ] {
        let o = iso.capsa(&args).current_dir(dir.path()).output().unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {t}");
        assert!(
            t.contains(&format!("no such file: {}", args[1])),
            "{args:?}: {t}"
        );
        assert!(
            t.contains("org.capsa.Hello-1.0.capsa"),
            "the file beside: {t}"
        );
        assert!(!t.contains("app id") && !t.contains("element"), "{t}");
        assert!(!t.contains("remote"), "a .capsa name is a file: {t}");
    }
    let help = ok(&["run", "--help"]);
    assert!(help.contains("ending in .capsa is a bundle file"), "{help}");
}

#[test]
fn installing_a_missing_file_without_a_terminal_says_it_is_missing() {
    let iso = Isolated::new();
    let t = text(&iso.run(&["install", "./gone.capsa"]));
    assert!(t.contains("no such file: ./gone.capsa"), "{t}");
    assert!(!t.contains("terminal"), "the file is checked first: {t}");
}

#[test]
fn a_damaged_bundle_is_blamed_not_the_cache() {
    let mut bytes = std::fs::read(hello_bundle()).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    let p = shared_tmp().join("first-contact-damaged.capsa");
    std::fs::write(&p, bytes).unwrap();
    let iso = Isolated::new();
    let o = iso.run(&["run", s(&p)]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(125), "{t}");
    let (role, digest) = layers(hello_bundle())
        .into_iter()
        .find(|(r, _)| t.contains(&format!("layer {r} is damaged")))
        .unwrap_or_else(|| panic!("no layer named damaged: {t}"));
    assert_eq!(t.matches(&digest).count(), 1, "{role}'s digest once: {t}");
    assert!(!t.contains("sha256 sha256"), "{t}");
    assert!(!t.contains("cache"), "the cache is not to blame: {t}");
    let hint = t
        .lines()
        .find(|l| l.starts_with("capsa: hint:"))
        .unwrap_or("");
    assert!(hint.contains(&format!("{} is damaged", s(&p))), "{t}");
    assert!(hint.contains("capsa verify"), "{t}");
}

#[test]
fn a_file_that_cannot_be_opened_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let looped = dir.path().join("loop.capsa");
    std::os::unix::fs::symlink("loop.capsa", &looped).unwrap();
    let iso = Isolated::new();
    for args in [
        vec!["inspect", s(&looped)],
        vec!["verify", s(&looped)],
        vec!["extract", s(&looped), "out"],
        vec!["run", s(&looped)],
    ] {
        let t = text(&iso.capsa(&args).current_dir(dir.path()).output().unwrap());
        assert_eq!(t.matches("loop.capsa").count(), 1, "{args:?}: {t}");
        assert!(t.contains("symbolic links"), "the cause: {t}");
    }
}

#[test]
fn a_malformed_network_permission_names_what_was_written() {
    let o = run(&["run", "--allow", "network=yes", "x.capsa"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(125), "{t}");
    assert!(
        t.contains("\"network=yes\"") && t.contains("\"yes\" is not"),
        "{t}"
    );
    for form in ["`network`", "network=tcp:PORT", "true, false"] {
        assert!(t.contains(form), "lists {form}: {t}");
    }
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("capsa.toml");
    for (value, says) in [
        ("\"yes\"", "network = \"yes\""),
        ("\"tcp:http\"", "network = \"tcp:http\""),
        ("1", "network must be true, false"),
    ] {
        std::fs::write(
            &recipe,
            format!("[app]\nid = \"org.capsa.Net\"\nname = \"Net\"\nversion = \"1\"\ncommand = [\"/x\"]\n[capture]\nfiles = {{ \"/x\" = \"x\" }}\n[permissions]\nnetwork = {value}\n"),
        )
        .unwrap();
        let t = fails(&["pack", s(&recipe)]);
        assert!(t.contains(says) && t.contains("tcp:443"), "{value}: {t}");
        assert!(!t.contains("untagged"), "{t}");
    }
}

#[test]
fn nothing_installed_and_declining_are_not_errors() {
    let env = StoreEnv::new();
    let o = env.run(&["list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no apps installed"), "{}", text(&o));
    assert_eq!(env.ok(&["list", "--json"]).trim(), "[]");
    assert!(ok(&["install", "--help"]).contains("not installed because you said no"));
    assert!(ok(&["run", "--help"]).contains("Declining is not an error"));
    if !have("script") || !userns() {
        return;
    }
    let net = variant("net", "org.capsa.HelloNet", true);
    let iso = Isolated::new();
    let capsa = capsa_bin();
    let o = iso_terminal(
        &iso,
        &format!("'{}' install '{}'", s(&capsa), s(&net)),
        "n\n",
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("not installed") && !t.contains("error"), "{t}");
    let o = iso_terminal(&iso, &format!("'{}' run '{}'", s(&capsa), s(&net)), "n\n");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("running without network"), "{t}");
    assert!(
        t.contains("hello from capsa") && !t.contains("error"),
        "{t}"
    );
}

#[test]
fn a_socket_the_host_lacks_is_warned_about_before_the_start() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let runtime = tempfile::tempdir().unwrap();
    let o = iso
        .capsa(&["run", "--allow", "socket=x11", "--allow", "socket=wayland"])
        .args([
            "--command",
            "/bin/sh",
            s(hello_bundle()),
            "-c",
            "echo started >&2",
        ])
        .env_remove("DISPLAY")
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let at = |f: &dyn Fn(&str) -> bool| lines.iter().position(|l| f(l)).unwrap_or(usize::MAX);
    let x11 = at(&|l| l.contains("warning") && l.contains("socket=x11") && l.contains("DISPLAY"));
    let wayland = at(&|l| l.contains("socket=wayland") && l.contains(s(runtime.path())));
    let started = at(&|l| l == "started");
    assert!(x11 < started && wayland < started, "warned first: {err}");
}

#[test]
fn options_after_the_app_go_to_the_app() {
    assert!(ok(&["run", "--help"]).contains("Everything after APP goes to the app"));
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let hello = s(hello_bundle());
    let all = ["--version", "--help", "-y", "--report", "-c"];
    let mut argv = vec![
        "run",
        "--command",
        "/bin/sh",
        hello,
        "-c",
        "printf '[%s]' \"$@\"",
        "sh",
    ];
    argv.extend(all);
    assert_eq!(
        stdout(&iso.run(&argv)),
        "[--version][--help][-y][--report][-c]"
    );
    for first in ["--version", "--help", "--"] {
        let o = iso.run(&["run", hello, first]);
        let out = stdout(&o);
        assert!(out.contains("hello from capsa"), "{first}: {}", text(&o));
        assert!(
            !out.contains("Usage") && !out.contains("capsa 0."),
            "{first}: {out}"
        );
    }
    let o = iso.run(&[
        "run",
        "--command",
        "/bin/sh",
        hello,
        "--",
        "-c",
        "echo dashed",
    ]);
    assert_eq!(stdout(&o), "dashed", "the -- is optional: {}", text(&o));
}

/// Bytes of an indicatif size (`1.50 MiB`).
fn bytes_of(n: &str, unit: &str) -> Option<f64> {
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    n.parse::<f64>().ok().map(|v| v * scale)
}

#[test]
fn the_pack_bar_follows_the_compression() {
    if !have("script") {
        return;
    }
    hello_bundle();
    let recipe = shared_tmp().join("hello/capsa.toml");
    let out = shared_tmp().join("first-contact-19.capsa");
    let cmd = format!(
        "'{}' pack --level 19 '{}' -o '{}'",
        s(&capsa_bin()),
        s(&recipe),
        s(&out)
    );
    let o = iso_terminal(&Isolated::new(), &cmd, "");
    assert!(o.status.success(), "{}", text(&o));
    let screen = String::from_utf8_lossy(&o.stdout).replace('\r', "\n");
    // (done, total) of each frame of the bar.
    let frames: Vec<(f64, f64)> = screen
        .lines()
        .filter_map(|l| l.split_once("compressing ["))
        .filter_map(|(_, rest)| {
            let w: Vec<&str> = rest.split_once(']')?.1.split_whitespace().collect();
            let (done, total_n) = w.get(1)?.split_once('/')?;
            Some((bytes_of(w.first()?, done)?, bytes_of(total_n, w.get(2)?)?))
        })
        .filter(|(_, total)| *total > 0.0)
        .collect();
    assert!(frames.len() >= 5, "a bar on the terminal: {screen}");
    let total = frames[0].1;
    let full = frames.iter().filter(|(d, _)| *d >= total).count();
    let mut between: Vec<u64> = frames
        .iter()
        .filter(|(d, _)| *d > 0.0 && *d < total)
        .map(|(d, _)| *d as u64)
        .collect();
    between.dedup();
    assert!(between.len() >= 3, "moves while compressing: {frames:?}");
    assert!(
        full * 2 < frames.len(),
        "not full until the end: {frames:?}"
    );
}

#[test]
fn gc_frees_a_bundle_files_cache_and_keeps_installed_layers() {
    if !userns() {
        return;
    }
    let env = StoreEnv::new();
    let cached = env.dir.path().join("cache/capsa/layers");
    let hello = s(hello_bundle());
    assert!(env.ok(&["run", hello]).contains("hello from capsa"));
    env.install(note_bundle());
    let store_layers = env.layer_dirs();
    let (h, n) = (layers(hello_bundle()), layers(note_bundle()));
    let app = h[2].1.clone();
    assert!(h[..2] == n[..2] && h[2] != n[2], "{h:?} {n:?}");

    let dry = env.ok(&["gc", "--dry-run"]);
    assert!(dry.contains(&app) && dry.contains("would free"), "{dry}");
    assert!(cached.join(&app).is_dir(), "a dry run removes nothing");
    // What a killed gc and a killed unpack leave.
    std::fs::create_dir_all(cached.join(".gc-killed").join(&app).join("tree/usr")).unwrap();
    std::fs::create_dir_all(cached.join(".tmp-0123456789ab-x/tree")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    let names = |k: &str| -> Vec<String> {
        j[k].as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for gone in [
        format!("sha256:{app}"),
        ".gc-killed".into(),
        ".tmp-0123456789ab-x".into(),
    ] {
        assert!(names("removed").contains(&gone), "{gone}: {j}");
    }
    assert!(j["freed_bytes"].as_u64().unwrap() > 0, "{j}");
    for (_, d) in &h[..2] {
        assert!(names("kept").contains(&format!("sha256:{d}")), "{j}");
        assert!(cached.join(d).is_dir());
    }
    assert!(
        j["kept"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["why"] == "installed"),
        "{j}"
    );
    assert!(!cached.join(&app).exists());
    let left: Vec<_> = std::fs::read_dir(&cached)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 2, "only the installed app's layers: {left:?}");
    assert_eq!(
        env.layer_dirs(),
        store_layers,
        "the store's own layers stay"
    );
    assert!(env
        .ok(&["run", "org.capsa.HelloNote"])
        .contains("hello from capsa"));

    // A running sandbox keeps what it uses.
    let mut child = env
        .cmd(&[
            "run",
            "--command",
            "/bin/sh",
            hello,
            "-c",
            "echo up; read x",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "up\n");
    let busy = env.ok(&["gc"]);
    assert!(
        busy.contains("in use by a running app") && cached.join(&app).is_dir(),
        "{busy}"
    );
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());

    env.ok(&["uninstall", "org.capsa.HelloNote"]);
    let freed = env.ok(&["gc"]);
    assert!(freed.contains("freed"), "{freed}");
    assert_eq!(std::fs::read_dir(&cached).unwrap().count(), 0, "{freed}");
    assert!(env.ok(&["gc"]).contains("nothing to free"));
}

#[test]
fn an_unrecorded_creation_time_is_shown_as_such() {
    assert!(
        ok(&["inspect", "--help"]).contains("not\nrecorded")
            || ok(&["inspect", "--help"]).contains("not recorded")
    );
    let b = hello_bundle();
    let line = |t: &str| {
        t.lines()
            .find(|l| l.trim_start().starts_with("created"))
            .unwrap_or("")
            .to_owned()
    };
    assert!(line(&ok(&["inspect", s(b)])).contains("not recorded"));
    assert_eq!(inspect_json(b)["manifest"]["created"], 0);
    let out = shared_tmp().join("first-contact-sde.capsa");
    let recipe = shared_tmp().join("hello/capsa.toml");
    let o = capsa(&["pack", "--level", "1", s(&recipe), "-o", s(&out)])
        .env("SOURCE_DATE_EPOCH", "1704164645")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let shown = line(&ok(&["inspect", s(&out)]));
    assert!(shown.contains("2024-01-02 03:04:05 UTC"), "{shown}");
}
