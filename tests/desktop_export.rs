//! Desktop exports from hostile bundles: the packer refuses control and bidi characters, `;` in
//! categories, path-like ids, malformed MIME names and globs, and unusable icons, each with an
//! error naming the field; what it accepts (Exec-injection text, `$(id)`, `%f`, `/../x`, XML
//! markup) is escaped so that the exported entry is `<app-id>.desktop`, passes
//! `desktop-file-validate`, has one group, only the generated keys, exactly one `Exec` (ours) and
//! no `TryExec`; a 2048x2048 icon is refused with a warning and the app installs without one;
//! apps cannot define well-known MIME types; updates drop stale exports, and uninstall removes
//! every exported file and every `mimeapps.list` default naming the app, keeping the rest.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const ID: &str = "org.example.Hostile";

/// Writes a recipe for a one-file app (a shell script, never run) with `name` and `extra`
/// appended (TOML, so control characters are written as escapes); returns its path.
fn recipe(dir: &Path, name: &str, extra: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("app.sh"), "#!/bin/sh\necho hostile\n").unwrap();
    let p = dir.join("capsa.toml");
    let text = format!(
        "[app]\nid = \"{ID}\"\nname = {name}\nversion = \"1\"\ncommand = [\"/usr/bin/hostile\"]\n\
         [capture]\nfiles = {{ \"/usr/bin/hostile\" = \"app.sh\", \"/usr/share/icons/h.png\" = \"icon.png\" }}\n{extra}\n"
    );
    fs::write(&p, text).unwrap();
    if !dir.join("icon.png").exists() {
        fs::write(dir.join("icon.png"), png(32, 32)).unwrap();
    }
    p
}

fn pack(recipe: &Path) -> PathBuf {
    let out = recipe.with_extension("capsa");
    ok(&[
        "pack",
        "--level",
        "1",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    out
}

/// Undoes the desktop entry escapes (`\s \n \t \r \\`).
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// Checks the shape of an exported entry and returns its keys and (unescaped) values.
fn check_entry(data: &Path, id: &str, takes_files: bool) -> Vec<(String, String)> {
    let path = data.join("applications").join(format!("{id}.desktop"));
    let text = fs::read_to_string(&path).expect("the entry is <app-id>.desktop");
    assert_valid_desktop_entry(&path);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("[Desktop Entry]"), "{text}");
    let allowed = [
        "Type",
        "Name",
        "Comment",
        "Exec",
        "Icon",
        "Terminal",
        "Categories",
        "MimeType",
        "X-Capsa-App",
    ];
    let mut keys = Vec::new();
    for l in lines {
        let (k, v) = l
            .split_once('=')
            .unwrap_or_else(|| panic!("not a key: {l:?}\n{text}"));
        assert!(
            allowed.contains(&k) && !keys.iter().any(|(x, _)| x == k),
            "unexpected or repeated key {k:?} in\n{text}"
        );
        keys.push((k.to_owned(), unescape(v)));
    }
    let exe = fs::canonicalize(capsa_bin()).unwrap().display().to_string();
    let tail = if takes_files {
        format!(" run --open-files {id} -- %F")
    } else {
        format!(" run {id}")
    };
    // Every line is a key of the one group (checked above), so this is the only Exec.
    let exec_line = text.lines().find(|l| l.starts_with("Exec=")).unwrap();
    if exe
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._+-".contains(c))
    {
        assert_eq!(exec_line, format!("Exec={exe}{tail}"));
    } else {
        assert!(exec_line.ends_with(&tail), "{exec_line}");
    }
    let get = |k: &str| keys.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    assert_eq!(get("X-Capsa-App").as_deref(), Some(id));
    assert_eq!(get("Type").as_deref(), Some("Application"));
    keys
}

#[test]
fn the_packer_refuses_control_characters_and_malformed_desktop_fields() {
    let env = XdgHome::new("capsa-export-");
    let dir = env.path().join("refused");
    let huge = dir.join("huge.png");
    fs::create_dir_all(&dir).unwrap();
    let mut big = png(64, 64);
    big.resize((1 << 20) + 1, 0);
    fs::write(&huge, big).unwrap();
    for (name, extra, want) in [
        (
            r#""Hostile""#,
            r#"[desktop]
name = "x\nExec=/bin/sh""#,
            "desktop.name` : control characters",
        ),
        (
            r#""Hostile""#,
            "[desktop]\ncomment = \"ok\\u001b]0;owned\\u0007\"",
            "desktop.comment` : control characters",
        ),
        (
            r#""Hostile""#,
            "[desktop]\nname = \"evil\\u202egnp.exe\"",
            "desktop.name` : control characters",
        ),
        (
            "\"A\\rExec=/bin/sh\"",
            "",
            "field `name` : control characters",
        ),
        (
            r#""Hostile""#,
            "[desktop]\ncategories = [\"Utility;Exec=/bin/sh\"]",
            "desktop.categories : Utility;Exec : not a registered category",
        ),
        (
            r#""Hostile""#,
            "[desktop]\nmime-types = [\"text/x-a;Exec=/bin/sh\"]",
            "desktop.mime-types : is not a MIME type",
        ),
        (
            r#""Hostile""#,
            "[desktop]\n[[desktop.mime-definitions]]\ntype = \"text/x-a\"\nglobs = [\"*.a\\\"/><magic\"]",
            "desktop.mime_definitions` : globs are *.ext",
        ),
        (
            r#""Hostile""#,
            "[desktop]\nicon = \"/../../etc/passwd\"",
            "desktop.icon /../../etc/passwd : not a captured file",
        ),
        (
            r#""Hostile""#,
            "[desktop]\nicon = \"/usr/bin/hostile\"",
            "/usr/bin/hostile : not a PNG (.png) or SVG",
        ),
        (
            r#""Hostile""#,
            "[desktop]\nicon = \"h.png\"",
            "desktop.icon : absolute path inside the bundle",
        ),
    ] {
        let r = recipe(&dir, name, extra);
        let out = r.with_extension("capsa");
        let e = fails(&["pack", r.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        for w in want.split(" : ") {
            assert!(e.contains(w), "{extra}: {e:?} should mention {w:?}");
        }
        assert!(!out.exists(), "no bundle is written for {extra}");
    }
    // A path-like app id, and an icon over 1 MiB.
    let r = recipe(&dir, r#""Hostile""#, "");
    let text = fs::read_to_string(&r).unwrap();
    fs::write(&r, text.replace(ID, "org.example/../../x")).unwrap();
    assert!(fails(&["pack", r.to_str().unwrap(), "-o", "/dev/null/x"]).contains("app.id"));
    fs::copy(&huge, dir.join("icon.png")).unwrap();
    let r = recipe(
        &dir,
        r#""Hostile""#,
        "[desktop]\nicon = \"/usr/share/icons/h.png\"",
    );
    assert!(
        fails(&["pack", r.to_str().unwrap(), "-o", "/dev/null/x"]).contains("larger than 1 MiB")
    );
}

#[test]
fn injection_attempts_are_escaped_and_the_only_exec_is_capsas() {
    let name = r#" ;rm -rf ~ $(id) `id` %f %F %u %k /../x \ Exec=/bin/sh [Desktop Action x]"#;
    let comment = r#"Exec=/bin/sh\nExec=/bin/sh "q" 'q' <b>&amp; ${HOME} | > /tmp/x"#;
    let toml_str = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let env = XdgHome::new("capsa-export-");
    let r = recipe(
        &env.path().join("escaped"),
        &toml_str("Hostile $(id)"),
        &format!(
            "[desktop]\nname = {}\ncomment = {}\nicon = \"/usr/share/icons/h.png\"\n\
             categories = [\"Utility\", \"X-Exec-sh\"]\n\
             mime-types = [\"application/x-capsa-hostile\", \"text/plain\"]\n\
             [[desktop.mime-definitions]]\ntype = \"application/x-capsa-hostile\"\n\
             comment = \"Hostile <magic priority=\\\"100\\\"/> & more\"\nglobs = [\"*.capsahostile\"]\n\
             [[desktop.mime-definitions]]\ntype = \"text/plain\"\nglobs = [\"*.txt\"]\n\
             [[desktop.mime-definitions]]\ntype = \"application/x-shellscript\"\nglobs = [\"*.sh\"]",
            toml_str(name),
            toml_str(comment)
        ),
    );
    let bundle = pack(&r);
    let out = env.ok(&["install", "--yes", bundle.to_str().unwrap()]);
    // x-shellscript is an x- type, refused because shared-mime-info already defines it.
    let known = Path::new("/usr/share/mime/application/x-shellscript.xml").exists();
    for t in ["text/plain", "application/x-shellscript"]
        .into_iter()
        .take(1 + usize::from(known))
    {
        assert!(
            out.contains(&format!("warning: MIME type {t} not defined")),
            "{out}"
        );
    }
    let keys = check_entry(&env.data(), ID, true);
    let get = |k: &str| keys.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    assert_eq!(get("Name"), Some(name), "the name reads back as plain text");
    assert_eq!(get("Comment"), Some(comment));
    assert_eq!(get("Icon"), Some(ID));
    assert_eq!(get("Categories"), Some("Utility;X-Exec-sh;"));
    assert_eq!(
        get("MimeType"),
        Some("application/x-capsa-hostile;text/plain;")
    );
    let icon = env
        .data()
        .join(format!("icons/hicolor/32x32/apps/{ID}.png"));
    assert_eq!(fs::read(&icon).unwrap(), png(32, 32));
    let xml = fs::read_to_string(env.data().join(format!("mime/packages/{ID}.xml"))).unwrap();
    assert!(
        xml.contains("type=\"application/x-capsa-hostile\"")
            && xml.contains("Hostile &lt;magic priority=&quot;100&quot;/&gt; &amp; more")
            && xml.contains("<glob pattern=\"*.capsahostile\" weight=\"5\"/>"),
        "{xml}"
    );
    let refused = ["<magic", "text/plain", "*.txt", "shellscript", "*.sh\""];
    for bad in refused.into_iter().take(if known { 5 } else { 3 }) {
        assert!(!xml.contains(bad), "{bad} in {xml}");
    }
    // Nothing in the desktop directories is named after anything but the id.
    for (d, f) in [
        ("applications", format!("{ID}.desktop")),
        ("mime/packages", format!("{ID}.xml")),
    ] {
        let names: Vec<String> = fs::read_dir(env.data().join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".cache"))
            .collect();
        assert_eq!(names, [f]);
    }
}

#[test]
fn an_oversized_icon_is_refused_with_a_warning_and_the_app_installs_without_one() {
    let env = XdgHome::new("capsa-export-");
    let dir = env.path().join("big-icon");
    fs::create_dir_all(&dir).unwrap();
    let big = png(2048, 2048);
    assert!(big.len() < 1 << 20, "under the packer's 1 MiB limit");
    fs::write(dir.join("icon.png"), &big).unwrap();
    let r = recipe(
        &dir,
        r#""Big Icon""#,
        "[desktop]\nicon = \"/usr/share/icons/h.png\"\ncategories = [\"Utility\"]",
    );
    let bundle = pack(&r);
    let out = env.ok(&["install", "--yes", bundle.to_str().unwrap()]);
    assert!(
        out.contains("warning: icon refused: a 2048x2048 PNG"),
        "{out}"
    );
    let keys = check_entry(&env.data(), ID, false);
    assert!(!keys.iter().any(|(k, _)| k == "Icon"), "{keys:?}");
    assert!(
        !env.data().join("icons").exists(),
        "no icon is exported: {:?}",
        tree(&env.data())
    );
}

#[test]
fn updates_drop_stale_exports_and_uninstall_removes_every_export_and_default() {
    let env = XdgHome::new("capsa-export-");
    let dir = env.path().join("uninstall");
    let desktop = "[desktop]\nicon = \"/usr/share/icons/h.png\"\n\
        mime-types = [\"application/x-capsa-hostile\"]\n\
        [[desktop.mime-definitions]]\ntype = \"application/x-capsa-hostile\"\nglobs = [\"*.capsahostile\"]";
    let v1 = pack(&recipe(&dir.join("v1"), r#""Hostile""#, desktop));
    let list = env.config().join("mimeapps.list");
    let others = "[Added Associations]\napplication/x-capsa-hostile=other.desktop;\n\
        [Default Applications]\ntext/plain=gedit.desktop;\nimage/png=org.example.Hostile.desktop.bak;\n";
    fs::write(&list, others).unwrap();
    env.ok(&[
        "install",
        "--yes",
        v1.to_str().unwrap(),
        "--default-for",
        "application/x-capsa-hostile",
    ]);
    let entry = env.data().join(format!("applications/{ID}.desktop"));
    let icon = env
        .data()
        .join(format!("icons/hicolor/32x32/apps/{ID}.png"));
    let xml = env.data().join(format!("mime/packages/{ID}.xml"));
    for f in [&entry, &icon, &xml] {
        assert!(f.is_file(), "{} exported", f.display());
    }
    check_entry(&env.data(), ID, true);
    let defaults = fs::read_to_string(&list).unwrap();
    assert!(defaults.contains(&format!("application/x-capsa-hostile={ID}.desktop;")));
    if have("update-mime-database") {
        let db = env.data().join("mime/application/x-capsa-hostile.xml");
        assert!(db.is_file(), "install updates the MIME database");
    }

    // Version 2 has no icon and defines no type: the old icon and MIME package go.
    let r2 = recipe(
        &dir.join("v2"),
        r#""Hostile""#,
        "[desktop]\nmime-types = [\"application/x-capsa-hostile\"]",
    );
    fs::write(
        &r2,
        fs::read_to_string(&r2)
            .unwrap()
            .replace("version = \"1\"", "version = \"2\""),
    )
    .unwrap();
    let v2 = pack(&r2);
    env.ok(&["install", "--yes", v2.to_str().unwrap()]);
    assert!(!icon.exists() && !xml.exists(), "{:?}", tree(&env.data()));
    assert!(!fs::read_to_string(&entry).unwrap().contains("Icon="));

    let out = env.ok(&["uninstall", ID]);
    assert!(out.contains(&format!("uninstalled {ID}")), "{out}");
    assert!(!entry.exists() && !icon.exists() && !xml.exists());
    let leftovers: Vec<String> = tree(&env.data())
        .into_iter()
        .filter(|p| p.contains(ID) && !p.starts_with("capsa/state"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    for cache in ["applications/mimeinfo.cache", "mime/globs2"] {
        if let Ok(t) = fs::read_to_string(env.data().join(cache)) {
            assert!(
                !t.contains(ID) && !t.contains("capsahostile"),
                "{cache}: {t}"
            );
        }
    }
    let after = fs::read_to_string(&list).unwrap();
    assert!(!after.contains(&format!("={ID}.desktop;")), "{after}");
    for kept in [
        "[Added Associations]",
        "application/x-capsa-hostile=other.desktop;",
        "text/plain=gedit.desktop;",
        "image/png=org.example.Hostile.desktop.bak;",
    ] {
        assert!(after.contains(kept), "{kept} kept in {after}");
    }
    assert!(!env.ok(&["list"]).contains(ID));
}
