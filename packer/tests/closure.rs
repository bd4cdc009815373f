//! The resolver against the real dynamic loader: for real programs and libraries of this
//! machine, every object `ld.so --list` maps (it resolves without running the program's code)
//! must be in the capture set at its real path, and the capture set must hold the program
//! interpreter. Also: the python3 sample's extension modules all have their closure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use packer::capture::ItemKind;
use packer::Recipe;

fn loader() -> Option<PathBuf> {
    ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Real paths of the objects the loader maps for `target`.
fn loader_list(ld: &Path, target: &Path) -> BTreeSet<PathBuf> {
    let out = Command::new(ld)
        .arg("--list")
        .arg(target)
        .output()
        .expect("run ld.so --list");
    assert!(
        out.status.success(),
        "ld.so --list {} failed: {}",
        target.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once(" => ") {
                Some((_, rest)) => rest.split(" (").next()?,
                None => l.split(" (").next()?,
            };
            path.starts_with('/')
                .then(|| std::fs::canonicalize(path).expect("listed path exists"))
        })
        .collect()
}

fn recipe(dir: &Path, binaries: &[&str], paths: &[&str]) -> Recipe {
    let q = |v: &[&str]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "[app]\nid = \"org.capsa.Test\"\nname = \"t\"\nversion = \"1\"\ncommand = [{:?}]\n[capture]\nbinaries = [{}]\npaths = [{}]\n",
        binaries.first().or(paths.first()).unwrap(),
        q(binaries),
        q(paths)
    );
    let p = dir.join("capsa.toml");
    std::fs::write(&p, text).unwrap();
    Recipe::load(&p).unwrap()
}

fn captured_files(r: &Recipe) -> BTreeSet<PathBuf> {
    let (set, _) = packer::pack::capture(r, false, Path::new("/etc/ld.so.cache")).expect("capture");
    set.items
        .iter()
        .filter(|(_, i)| matches!(i.kind, ItemKind::File { .. }))
        .map(|(k, _)| k.to_absolute())
        .collect()
}

#[test]
fn closure_contains_everything_the_loader_maps() {
    let Some(ld) = loader() else {
        eprintln!("skipped: no known dynamic loader");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for bin in [
        "/usr/bin/python3.11",
        "/usr/bin/sqlite3",
        "/bin/ls",
        "/usr/bin/ssh",
        "/usr/bin/curl",
        "/usr/bin/git",
        "/usr/bin/gdb",
    ] {
        if !Path::new(bin).exists() {
            continue;
        }
        let files = captured_files(&recipe(dir.path(), &[bin], &[]));
        let want = loader_list(&ld, Path::new(bin));
        let missing: Vec<_> = want.difference(&files).collect();
        assert!(
            missing.is_empty(),
            "{bin}: the loader maps {missing:?}, which the capture lacks"
        );
        assert!(
            files.contains(&std::fs::canonicalize(&ld).unwrap()),
            "{bin}: no interpreter captured"
        );
        checked += 1;
    }
    assert!(checked >= 3, "too few programs to compare on this machine");
}

#[test]
fn python_extension_modules_have_their_closure() {
    let (Some(ld), true) = (
        loader(),
        Path::new("/usr/lib/python3.11/lib-dynload").is_dir(),
    ) else {
        eprintln!("skipped: no python3.11 stdlib");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files = captured_files(&recipe(
        dir.path(),
        &["/usr/bin/python3.11"],
        &["/usr/lib/python3.11/lib-dynload"],
    ));
    let mut checked = 0;
    for e in std::fs::read_dir("/usr/lib/python3.11/lib-dynload").unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "so") {
            let missing: Vec<_> = loader_list(&ld, &p)
                .into_iter()
                .filter(|f| !files.contains(f))
                .collect();
            assert!(missing.is_empty(), "{}: needs {missing:?}", p.display());
            checked += 1;
        }
    }
    assert!(checked > 20);
}
