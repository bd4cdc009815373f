//! Widening units against this host's real folders (each test skips, saying why, when the
//! folder it needs is not installed), plus the unit schema's validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use packer::capture::CaptureSet;
use packer::origin::Origin;
use packer::traced::Places;
use packer::units::hostglob::expand;
use packer::units::widen::{apply, plan, Widening};
use packer::units::{resolve, Take, UnitDef, UnitError};

fn units() -> BTreeMap<String, UnitDef> {
    resolve(&[], &[], &[]).expect("built-in units are valid")
}

/// The first existing path matching `glob`, or a printed skip.
fn host(glob: &str) -> Option<PathBuf> {
    let found = expand(glob).into_iter().next();
    if found.is_none() {
        eprintln!("skipped: nothing on this host matches {glob}");
    }
    found
}

fn plan_for(hit: &Path) -> Vec<Widening> {
    plan(&units(), &[hit.to_path_buf()], &[], &[])
}

fn roots(ws: &[Widening], unit: &str) -> Vec<PathBuf> {
    ws.iter()
        .filter(|w| w.unit == unit)
        .map(|w| w.root.clone())
        .collect()
}

fn places() -> Places {
    Places::new(None, "", vec![])
}

fn unit(name: &str, folders: &[&str], take: Take) -> UnitDef {
    UnitDef {
        name: name.into(),
        why: "test".into(),
        folders: folders.iter().map(|f| f.to_string()).collect(),
        take,
        exclude: vec![],
        also: vec![],
    }
}

#[test]
fn built_in_units_are_valid_and_explained() {
    let u = units();
    assert!(u.len() >= 20, "{}", u.len());
    assert!(u.values().all(|u| !u.why.trim().is_empty()));
    let probes = packer::units::probe_helpers().unwrap();
    assert!(probes.iter().any(|p| p == "pkg-config"));
}

#[test]
fn a_recipe_unit_replaces_a_built_in_and_bad_units_are_refused() {
    let own = unit("zoneinfo", &["/srv/tz"], Take::Whole);
    let u = resolve(std::slice::from_ref(&own), &[], &[]).unwrap();
    assert_eq!(u["zoneinfo"].folders, ["/srv/tz"]);
    let bad = |d: UnitDef| resolve(&[d], &[], &[]).unwrap_err();
    assert!(matches!(
        bad(unit("a b", &["/x"], Take::Whole)),
        UnitError::BadName { .. }
    ));
    for f in ["x/y", "/a/../etc", "/"] {
        assert!(
            matches!(
                bad(unit("u", &[f], Take::Whole)),
                UnitError::BadFolder { .. }
            ),
            "{f}"
        );
    }
    assert!(matches!(
        bad(unit("u", &["/a/[x"], Take::Whole)),
        UnitError::BadGlob { .. }
    ));
    assert!(matches!(
        bad(unit("u", &["/a"], Take::Siblings("/a/*/x".into()))),
        UnitError::BadSiblings { .. }
    ));
    assert!(matches!(
        bad(unit("u", &[], Take::Whole)),
        UnitError::NoFolders { .. }
    ));
    let twice = [
        unit("u", &["/a"], Take::Whole),
        unit("u", &["/b"], Take::Whole),
    ];
    assert!(matches!(
        resolve(&twice, &[], &[]).unwrap_err(),
        UnitError::Duplicate { .. }
    ));
    let e = resolve(&[], &[], &["no-such-unit".into()]).unwrap_err();
    assert!(e.to_string().contains("capture.no-units"), "{e}");
}

#[test]
fn recipes_define_units_in_toml_and_name_them() {
    let d = tempfile::tempdir_in("/var/tmp").unwrap();
    let write = |extra: &str| {
        let p = d.path().join("capsa.toml");
        std::fs::write(
            &p,
            format!(
                "[app]\nid = \"org.example.U\"\nname = \"U\"\nversion = \"1\"\ncommand = [\"/usr/bin/env\"]\n\
                 [capture]\nbinaries = [\"/usr/bin/env\"]\n{extra}"
            ),
        )
        .unwrap();
        packer::Recipe::load(&p)
    };
    let r = write(
        "units = [\"mine\"]\nno-units = [\"zoneinfo\"]\n[[capture.unit]]\nname = \"mine\"\n\
         why = \"w\"\nfolders = [\"/usr/share/mine\"]\ntake = { below = 2 }\n",
    )
    .unwrap();
    assert_eq!(r.capture.unit[0].take, Take::Below(2));
    let e = write("units = [\"nope\"]\n").unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("capsa.toml"), "{e}");
    let e = write(
        "[[capture.unit]]\nname = \"x\"\nwhy = \"w\"\nfolders = [\"rel\"]\ntake = \"whole\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("rel"), "{e}");
}

#[test]
fn gdk_pixbuf_brings_all_loaders_and_their_cache() {
    let Some(loader) = host("/usr/lib/*/gdk-pixbuf-2.0/*/loaders/*.so") else {
        return;
    };
    let dir = loader.parent().unwrap();
    let got = roots(&plan_for(&loader), "gdk-pixbuf");
    assert!(got.contains(&dir.to_path_buf()), "{got:?}");
    assert!(
        got.contains(&dir.with_file_name("loaders.cache")),
        "{got:?}"
    );
}

#[test]
fn gio_modules_come_whole() {
    let Some(m) = host("/usr/lib/*/gio/modules/*.so") else {
        return;
    };
    let got = roots(&plan_for(&m), "gio-modules");
    assert_eq!(got, vec![m.parent().unwrap().to_path_buf()]);
}

#[test]
fn an_icon_theme_comes_without_cursors_unless_one_was_hit() {
    let Some(index) = host("/usr/share/icons/Adwaita/index.theme") else {
        return;
    };
    let ws = plan_for(&index);
    let theme = ws
        .iter()
        .find(|w| w.unit == "icon-theme" && w.root.ends_with("Adwaita"))
        .expect("the theme folder");
    assert!(theme.exclude.iter().any(|e| e.contains("cursors")));
    let mut set = CaptureSet::new(&[]).unwrap();
    apply(&mut set, std::slice::from_ref(theme), &places());
    let keys: Vec<String> = set.items.keys().map(|k| k.to_string()).collect();
    assert!(keys.iter().any(|k| k.ends_with("Adwaita/index.theme")));
    assert!(
        !keys.iter().any(|k| k.contains("/cursors/")),
        "cursors taken"
    );
    if let Some(cursor) = host("/usr/share/icons/Adwaita/cursors/*") {
        let hit = plan_for(&cursor);
        let w = hit.iter().find(|w| w.root.ends_with("Adwaita")).unwrap();
        assert!(w.exclude.is_empty(), "a hit cursor lifts the exclude");
    }
}

#[test]
fn python_stdlib_comes_whole_without_tests_and_dynload_goes_to_the_closure() {
    let Some(os_py) = host("/usr/lib/python3.*/os.py") else {
        return;
    };
    let lib = os_py.parent().unwrap().to_path_buf();
    let ws = plan_for(&os_py);
    let w = ws.iter().find(|w| w.unit == "python-stdlib").unwrap();
    assert_eq!(w.root, lib);
    let mut set = CaptureSet::new(&[]).unwrap();
    apply(&mut set, std::slice::from_ref(w), &places());
    let has = |rel: &str| set.items.keys().any(|k| k.to_absolute() == lib.join(rel));
    assert!(has("json/__init__.py"));
    assert!(!has("test/__init__.py") && !has("tkinter/__init__.py"));
    assert!(
        !has("unittest/test/__init__.py"),
        "nested test suites are left out"
    );
    let item = set
        .items
        .values()
        .find(|i| i.reasons.iter().any(|r| r.contains("os.py")))
        .unwrap();
    assert!(item.origins.contains(&Origin::Unit {
        name: "python-stdlib".into()
    }));
    assert!(
        set.queue
            .iter()
            .any(|p| p.path.starts_with(lib.join("lib-dynload"))),
        "extension modules are queued for the closure"
    );
    let tk = lib.join("tkinter/__init__.py");
    if tk.exists() {
        let ws = plan_for(&tk);
        let w = ws.iter().find(|w| w.unit == "python-stdlib").unwrap();
        assert!(!w.exclude.iter().any(|e| e.starts_with("tkinter")));
        assert!(w.exclude.iter().any(|e| e == "**/test"));
    }
}

#[test]
fn a_python_package_comes_as_its_top_level_folder() {
    let Some(init) = host("/usr/lib/python3/dist-packages/*/__init__.py") else {
        return;
    };
    let got = roots(&plan_for(&init), "python-packages");
    assert_eq!(got, vec![init.parent().unwrap().to_path_buf()]);
}

#[test]
fn a_message_catalogue_comes_in_every_language() {
    let Some(mo) = host("/usr/share/locale/*/LC_MESSAGES/*.mo") else {
        return;
    };
    let name = mo.file_name().unwrap();
    let got = roots(&plan_for(&mo), "locale-messages");
    let all = expand(&format!(
        "/usr/share/locale/*/LC_MESSAGES/{}",
        name.to_str().unwrap()
    ));
    assert_eq!(got, all);
    assert!(got.iter().all(|p| p.file_name() == Some(name)));
}

#[test]
fn a_locale_comes_alone_and_a_font_brings_its_family_and_fontconfig() {
    if let Some(ctype) = host("/usr/lib/locale/*/LC_CTYPE") {
        let got = roots(&plan_for(&ctype), "locale-data");
        assert_eq!(got, vec![ctype.parent().unwrap().to_path_buf()]);
    }
    if let Some(font) = host("/usr/share/fonts/*/*/*.ttf") {
        let got = roots(&plan_for(&font), "fonts");
        assert!(
            got.contains(&font.parent().unwrap().to_path_buf()),
            "{got:?}"
        );
        assert!(
            !got.contains(&PathBuf::from("/usr/share/fonts")),
            "not all fonts: {got:?}"
        );
        if Path::new("/etc/fonts").is_dir() {
            assert!(got.contains(&PathBuf::from("/etc/fonts")));
        }
    }
}

#[test]
fn zoneinfo_comes_whole_without_localtime() {
    let Some(berlin) = host("/usr/share/zoneinfo/Europe/Berlin") else {
        return;
    };
    let ws = plan_for(&berlin);
    let mut set = CaptureSet::new(&[]).unwrap();
    apply(&mut set, &ws, &places());
    let keys: Vec<PathBuf> = set.items.keys().map(|k| k.to_absolute()).collect();
    assert!(keys.contains(&PathBuf::from("/usr/share/zoneinfo/Asia/Tokyo")));
    assert!(!keys.contains(&PathBuf::from("/usr/share/zoneinfo/localtime")));
}

#[test]
fn qt_plugins_and_perl_modules_come_by_folder() {
    if let Some(p) = host("/usr/lib/*/qt5/plugins/imageformats/*.so") {
        let got = roots(&plan_for(&p), "qt-plugins");
        assert_eq!(got, vec![p.parent().unwrap().to_path_buf()]);
    }
    if let Some(spec) = host("/usr/lib/*/perl-base/File/Spec.pm") {
        let got = roots(&plan_for(&spec), "perl");
        assert_eq!(got, vec![spec.parent().unwrap().to_path_buf()]);
        let strict = spec.parent().unwrap().with_file_name("strict.pm");
        if strict.exists() {
            assert_eq!(roots(&plan_for(&strict), "perl"), vec![strict]);
        }
    }
}

#[test]
fn every_unit_installed_here_brings_existing_paths_for_a_real_file() {
    let mut checked = 0;
    for u in units().values() {
        let Some(folder) = u
            .folders
            .iter()
            .flat_map(|f| expand(f))
            .find(|p| p.is_dir())
        else {
            eprintln!("unit {}: not installed here", u.name);
            continue;
        };
        let Some(file) = walkdir::WalkDir::new(&folder)
            .max_depth(4)
            .sort_by_file_name()
            .into_iter()
            .flatten()
            .find(|e| e.file_type().is_file())
        else {
            continue;
        };
        let ws = plan(&units(), &[file.path().to_path_buf()], &[], &[]);
        let own: Vec<&Widening> = ws.iter().filter(|w| w.unit == u.name).collect();
        assert!(
            !own.is_empty(),
            "unit {} ignores {}",
            u.name,
            file.path().display()
        );
        for w in own {
            assert!(w.root.symlink_metadata().is_ok(), "{w:?}");
            assert!(
                w.why.contains(&file.path().display().to_string()) || w.why.starts_with("cache")
            );
        }
        checked += 1;
    }
    eprintln!("{checked} units checked against this host");
}

#[test]
fn named_units_come_whole_and_no_units_turn_them_off() {
    let Some(_) = host("/usr/share/zoneinfo") else {
        return;
    };
    let ws = plan(&units(), &[], &["zoneinfo".into()], &[]);
    assert_eq!(
        roots(&ws, "zoneinfo"),
        vec![PathBuf::from("/usr/share/zoneinfo")]
    );
    assert_eq!(ws[0].why, "capture.units");
    let hit = PathBuf::from("/usr/share/zoneinfo/UTC");
    assert!(plan(
        &units(),
        std::slice::from_ref(&hit),
        &[],
        &["zoneinfo".into()]
    )
    .is_empty());
    assert!(!plan(&units(), &[hit], &[], &[]).is_empty());
}

#[test]
fn a_unit_never_follows_a_link_into_a_home() {
    let d = tempfile::tempdir_in("/var/tmp").unwrap();
    let home = d.path().join("home");
    let tree = d.path().join("share/thing");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(home.join("secret"), b"s").unwrap();
    std::fs::write(tree.join("ok.dat"), b"o").unwrap();
    std::os::unix::fs::symlink(home.join("secret"), tree.join("leak")).unwrap();
    let folder = tree.display().to_string();
    let own = unit("thing", &[&folder], Take::Whole);
    let u = resolve(&[own], &[], &[]).unwrap();
    let ws = plan(&u, &[tree.join("ok.dat")], &[], &[]);
    let places = Places::new(Some(&home), "", vec![d.path().join("share")]);
    let mut set = CaptureSet::new(&[]).unwrap();
    apply(&mut set, &ws, &places);
    let keys: Vec<PathBuf> = set.items.keys().map(|k| k.to_absolute()).collect();
    assert!(keys.contains(&tree.join("ok.dat")), "{keys:?}");
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with(&home) || k.ends_with("leak")),
        "{keys:?}"
    );
    assert!(
        set.warnings.iter().any(|w| w.contains("leak")),
        "{:?}",
        set.warnings
    );
}
