//! Checks that a hostile bundle is refused by both `verify` and `extract`, with one-line
//! errors, and that nothing appears outside the scratch directory.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;

/// Absolute paths an escaping attack would create; checked before and after each hostile case.
pub const SENTINELS: &[&str] = &["/etc/evil", "/evil", "/tmp/evil", "/tmp/x", "/x"];

/// Opens the bundle at `path` (inside the scratch directory `root`) and checks that `verify`
/// and `extract` both refuse it, that the destination does not appear and that nothing below
/// `root` or at a sentinel path changed. Returns both error chains.
pub fn refused_file(root: &Path, path: &Path, must_open: bool) -> (String, String) {
    let before = listing(root);
    let sentinels: Vec<bool> = SENTINELS
        .iter()
        .map(|s| Path::new(s).symlink_metadata().is_ok())
        .collect();
    let b = match bundle_format::Bundle::open(path) {
        Ok(b) => b,
        Err(e) if !must_open => return (chain(&e), chain(&e)),
        Err(e) => panic!("the attack should get past Bundle::open: {}", chain(&e)),
    };
    let v = b
        .verify(None, &mut |_| {})
        .expect_err("verify accepted a hostile bundle");
    let dest = path.with_file_name("dest");
    let x = bundle_format::extract(&b, &dest, &mut |_| {})
        .expect_err("extract accepted a hostile bundle");
    assert!(dest.symlink_metadata().is_err(), "destination appeared");
    assert_eq!(listing(root), before, "files were left behind");
    for (s, existed) in SENTINELS.iter().zip(sentinels) {
        assert_eq!(
            Path::new(s).symlink_metadata().is_ok(),
            existed,
            "{s} was created"
        );
    }
    (chain(&v), chain(&x))
}

/// A scratch tree `root/victim/` (an existing directory, mode 0700, that attacks aim at) and
/// `root/a/b/c/` (where the bundle lives, deep enough that `../../..` stays inside `root`).
pub fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let victim = root.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o700)).unwrap();
    let work = root.path().join("a/b/c");
    std::fs::create_dir_all(&work).unwrap();
    (root, victim, work.join("hostile.capsa"))
}

/// Wraps `layers` in a bundle with correct digests and checks that it is refused.
pub fn refused_layers(layers: &[RawLayer]) -> (String, String) {
    let (root, _, path) = scratch();
    write_raw(&path, layers);
    refused_file(root.path(), &path, true)
}

/// TOC entries as JSON, with the modes a valid TOC has.
pub fn d(p: &str) -> Value {
    toc_entry(p, "dir", 0o755, None, None)
}
pub fn f(p: &str, c: &[u8]) -> Value {
    toc_entry(p, "file", 0o644, Some(c), None)
}
pub fn s(p: &str, t: &str) -> Value {
    toc_entry(p, "symlink", 0o777, None, Some(t))
}
pub fn h(p: &str, t: &str) -> Value {
    toc_entry(p, "hardlink", 0o777, None, Some(t))
}

pub const BAD_PATH: &str = "bad path";
pub const MISMATCH: &str = "does not match the table of contents";
pub const EXTRA: &str = "more tar entries than the table of contents lists";
pub const TYPE: &str = "is not allowed";

/// One hostile tar stream.
pub struct Case {
    pub name: &'static str,
    pub tar: Vec<Raw>,
    /// A valid TOC the attacker would like the tar to be checked against.
    pub lie: Vec<Value>,
    /// What the error must say when checked against `lie`.
    pub want: &'static str,
}

pub fn case(name: &'static str, tar: Vec<Raw>, lie: Vec<Value>, want: &'static str) -> Case {
    Case {
        name,
        tar,
        lie,
        want,
    }
}

/// Runs every case twice, with a TOC that describes its tar faithfully (refused by the TOC
/// checks, each for its own reason) and with its lying TOC (refused with `want`), through
/// `verify` and `extract`, in the scratch directory `root` (see [`scratch`]). With
/// `--nocapture`, prints each refusal for review.
pub fn check_cases(cases: Vec<Case>, root: &Path, path: &Path) {
    for c in cases {
        let tar = raw_tar(&c.tar);
        for (variant, toc) in [("faithful", mirror_toc(&c.tar)), ("lying", c.lie)] {
            write_raw(path, &[RawLayer::new(tar.clone(), toc)]);
            let (v, x) = refused_file(root, path, true);
            let want = if variant == "lying" { c.want } else { "" };
            for e in [&v, &x] {
                assert!(
                    e.contains(want),
                    "{} ({variant}): {e:?} should say {want:?}",
                    c.name
                );
                let control = e.chars().any(char::is_control);
                assert!(
                    !control,
                    "{}: the error echoes control characters: {e:?}",
                    c.name
                );
            }
            if variant == "lying" {
                assert!(
                    v.starts_with("layer app") || v.contains(" layer app"),
                    "{}: {v}",
                    c.name
                );
                eprintln!("{:<34} {v}", c.name);
            }
        }
    }
}
