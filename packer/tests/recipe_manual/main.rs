//! `man/capsa.toml.5` against the recipe parser: the manual documents exactly the keys the
//! serde structs accept (read from the structs, [`keys`]), every key has an example, and every
//! example (the per-key fragments and the complete recipes) is a recipe `Recipe::load`
//! accepts. The manual's claims about `exclude` globs are checked against the capture set.

mod keys;
mod roff;

use std::path::Path;

use packer::capture::CaptureSet;
use packer::Recipe;
use toml::{Table, Value};

const MANUAL: &str = include_str!("../../../man/capsa.toml.5");

/// The smallest recipe that loads: what a table fragment is merged into.
const BASE: &str = r#"
[app]
id = "org.example.Manual"
name = "Manual"
version = "1"
command = ["/usr/bin/true"]
[capture]
binaries = ["/usr/bin/true"]
"#;

fn manual() -> roff::Manual {
    roff::parse(MANUAL)
}

/// Loads `text` as a recipe file, as `capsa pack` does.
fn load(text: &str) -> Result<Recipe, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("capsa.toml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Recipe::load(&path).map_err(|e| e.to_string())
}

/// `over` merged into `base`: tables key by key, anything else replaced.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A table section's example as TOML: with its table's header unless it has its own (its
/// first line that is not a comment starts with `[`).
fn fragment_toml(b: &roff::Block, arrays: &std::collections::BTreeSet<String>) -> String {
    let first = b
        .text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    if first.is_some_and(|l| l.starts_with('[')) {
        return b.text.clone();
    }
    let table = b.table.as_deref().unwrap_or_default();
    match arrays.contains(table) {
        true => format!("[[{table}]]\n{}", b.text),
        false => format!("[{table}]\n{}", b.text),
    }
}

/// Every dotted key path in `t` (array elements at the array's path).
fn paths(prefix: &str, v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Table(t) => {
            for (k, v) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                paths(&p, v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| paths(prefix, v, out)),
        _ => {}
    }
}

#[test]
fn the_key_recorder_reads_the_structs() {
    let s = keys::schema_of::<Recipe>();
    for k in [
        "app.id",
        "capture.trace-timeout",
        "capture.unit.take",
        "desktop.mime-definitions.type",
        "bundle.self-exec",
    ] {
        assert!(s.keys.contains(k), "{k} not recorded: {:?}", s.keys);
    }
    assert!(!s
        .keys
        .iter()
        .any(|k| k.contains("base_dir") || k.ends_with(".file")));
    assert_eq!(
        s.variants["permissions.landlock"],
        ["best-effort", "required"]
    );
}

#[test]
fn the_manual_documents_every_recipe_key_and_no_other() {
    let accepted = keys::schema_of::<Recipe>().keys;
    let documented = manual().keys;
    let undocumented: Vec<_> = accepted.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&accepted).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "man/capsa.toml.5 and packer/src/recipe.rs disagree:\n  accepted, not documented: \
         {undocumented:?}\n  documented, not accepted: {unknown:?}\n(a key is .TP then \\fBkey\\fR \
         under its table's .SH/.SS [table])"
    );
}

#[test]
fn the_manual_names_every_value_of_enum_keys() {
    let m = manual();
    for (key, variants) in keys::schema_of::<Recipe>().variants {
        let entry = m.entries.get(&key).map_or("", String::as_str);
        for v in variants {
            assert!(
                entry.contains(&v),
                "{key}: the manual does not name the value {v:?}"
            );
        }
    }
}

#[test]
fn the_manual_example_recipes_load() {
    let m = manual();
    assert!(
        m.recipes.len() >= 3,
        "EXAMPLES should hold complete recipes"
    );
    for r in &m.recipes {
        if let Err(e) = load(&r.text) {
            panic!(
                "man/capsa.toml.5 line {}: the example recipe does not load: {e}\n{}",
                r.line, r.text
            );
        }
    }
}

#[test]
fn every_key_has_an_example_and_every_example_loads() {
    let m = manual();
    let mut shown = std::collections::BTreeSet::new();
    for b in &m.fragments {
        let text = fragment_toml(b, &m.arrays);
        let over: Table = toml::from_str(&text)
            .unwrap_or_else(|e| panic!("man/capsa.toml.5 line {}: not TOML: {e}\n{text}", b.line));
        paths("", &Value::Table(over.clone()), &mut shown);
        let mut recipe: Table = toml::from_str(BASE).expect("the base recipe is TOML");
        merge(&mut recipe, over);
        let merged = toml::to_string(&recipe).expect("a table serializes");
        if let Err(e) = load(&merged) {
            panic!(
                "man/capsa.toml.5 line {}: the example does not load: {e}\n{text}",
                b.line
            );
        }
    }
    let missing: Vec<_> = m.keys.iter().filter(|k| !shown.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "keys without an example in their table's section: {missing:?}"
    );
}

#[test]
fn the_manual_code_is_escaped_for_copy_and_paste() {
    let problems = manual().problems;
    assert!(problems.is_empty(), "man/capsa.toml.5: {problems:#?}");
}

/// What the manual says `exclude` matches: absolute paths, `*` within one component, `**`
/// across them, `DIR/**` also DIR itself, relative globs nothing.
#[test]
fn exclude_globs_match_as_the_manual_says() {
    let globs = [
        "/usr/lib/python3.11/test/**",
        "/usr/share/locale/*/LC_MESSAGES/*.mo",
        "**/__pycache__",
        "*.pyc",
    ]
    .map(String::from);
    let set = CaptureSet::new(&globs).expect("the globs compile");
    for (path, excluded) in [
        ("/usr/lib/python3.11/test", true),
        ("/usr/lib/python3.11/test/a/b.py", true),
        ("/usr/lib/python3.11/tests", false),
        ("/usr/share/locale/de/LC_MESSAGES/git.mo", true),
        ("/usr/share/locale/de/x/LC_MESSAGES/git.mo", false),
        ("/usr/lib/python3/dist-packages/x/__pycache__", true),
        ("/usr/lib/python3/a.pyc", false),
    ] {
        assert_eq!(set.is_excluded(Path::new(path)), excluded, "{path}");
    }
}
