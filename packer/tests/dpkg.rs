//! The dpkg reader on a fake root (merged /usr, a diversion, Multi-Arch lists, a virtual
//! package, broken status files) and on this host's real database when it has one.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use packer::dpkg::{Dpkg, DpkgError};

const STATUS: &str = "\
Package: base-files
Status: install ok installed
Essential: yes
Priority: required
Version: 12
Depends: libc6

Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Version: 2.36-9

Package: app
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1.0
Depends: libfoo1 (>= 1) | libfoo-alt, mail-transport-agent, libc6 (>= 2.34), base-files
Pre-Depends: helper

Package: libfoo1
Status: install ok installed
Architecture: amd64
Version: 1.2
Depends: libbar2:any

Package: libbar2
Status: install ok installed
Architecture: amd64
Version: 2

Package: helper
Status: install ok installed
Architecture: all
Version: 3

Package: postfix-like
Status: install ok installed
Architecture: amd64
Version: 4
Provides: mail-transport-agent

Package: removed
Status: deinstall ok config-files
Version: 9
";

/// A fake root with merged /usr and the database above.
fn fake_root() -> tempfile::TempDir {
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let r = t.path();
    for d in ["usr/bin", "usr/lib/x86_64-linux-gnu", "var/lib/dpkg/info"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    symlink("usr/bin", r.join("bin")).unwrap();
    symlink("usr/lib", r.join("lib")).unwrap();
    let info = r.join("var/lib/dpkg/info");
    fs::write(r.join("var/lib/dpkg/status"), STATUS).unwrap();
    let lists = [
        ("base-files.list", "/.\n/etc\n/etc/debian_version\n"),
        (
            "libc6:amd64.list",
            "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n",
        ),
        (
            "app.list",
            "/.\n/bin\n/bin/app\n/usr/share/doc/app/copyright\n/bin/sh\n",
        ),
        ("helper.list", "/usr/bin/helper\n"),
        ("postfix-like.list", "/bin/sh\n"),
    ];
    for (name, text) in lists {
        fs::write(info.join(name), text).unwrap();
    }
    // postfix-like's /bin/sh is diverted aside by app, which owns the real one.
    fs::write(
        r.join("var/lib/dpkg/diversions"),
        "/bin/sh\n/bin/sh.distrib\napp\n",
    )
    .unwrap();
    t
}

#[test]
fn owners_are_found_by_canonical_path_with_diversions() {
    let t = fake_root();
    let db = Dpkg::open(t.path()).unwrap();
    let owner = |p: &str| db.owner(Path::new(p)).map(str::to_owned);
    assert_eq!(owner("/usr/bin/app").as_deref(), Some("app"));
    assert_eq!(owner("/bin/app").as_deref(), Some("app"));
    assert_eq!(
        owner("/usr/lib/x86_64-linux-gnu/libc.so.6").as_deref(),
        Some("libc6")
    );
    assert_eq!(owner("/usr/bin/sh").as_deref(), Some("app"));
    assert_eq!(
        owner("/usr/bin/sh.distrib").as_deref(),
        Some("postfix-like")
    );
    assert_eq!(owner("/usr/bin/nothing"), None);
    assert_eq!(db.version("libc6"), Some("2.36-9"));
    assert_eq!(db.version("removed"), None);
    let files: Vec<PathBuf> = db.files("postfix-like").unwrap();
    assert_eq!(files, vec![PathBuf::from("/bin/sh.distrib")]);
    assert!(matches!(db.files("removed"), Err(DpkgError::NotInstalled(n)) if n == "removed"));
}

#[test]
fn the_closure_takes_first_alternatives_and_providers_and_stops_at_the_base() {
    let t = fake_root();
    let db = Dpkg::open(t.path()).unwrap();
    let base = db.base_packages();
    assert!(
        base.contains("base-files") && base.contains("libc6"),
        "{base:?}"
    );
    let deps = db.depends_closure(&["app".into()]).unwrap();
    assert_eq!(deps, ["helper", "libfoo1", "postfix-like", "libbar2"]);
    assert!(matches!(
        db.depends_closure(&["nope".into()]),
        Err(DpkgError::NotInstalled(n)) if n == "nope"
    ));
}

#[test]
fn broken_databases_are_errors_naming_the_file() {
    let t = fake_root();
    let status = t.path().join("var/lib/dpkg/status");
    fs::write(&status, format!("{STATUS}\nnot a field line\n")).unwrap();
    let e = Dpkg::open(t.path()).unwrap_err();
    let line = STATUS.lines().count() + 2;
    assert!(
        e.to_string()
            .contains(&format!("{}:{line}", status.display())),
        "{e}"
    );
    fs::write(&status, STATUS).unwrap();
    let div = t.path().join("var/lib/dpkg/diversions");
    fs::write(&div, "/a\n/b\n").unwrap();
    let e = Dpkg::open(t.path()).unwrap_err();
    assert!(e.to_string().contains(&div.display().to_string()), "{e}");
    let empty = tempfile::tempdir_in("/var/tmp").unwrap();
    let e = Dpkg::open(empty.path()).unwrap_err();
    assert!(matches!(e, DpkgError::NoDatabase { .. }), "{e}");
    assert!(e.to_string().contains("var/lib/dpkg/status"), "{e}");
}

/// Random damage to a real-looking status file never panics.
#[test]
fn mangled_status_files_never_panic() {
    let t = fake_root();
    let status = t.path().join("var/lib/dpkg/status");
    let bytes = STATUS.as_bytes();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..300 {
        let mut b = bytes.to_vec();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % b.len();
            b[at] = (seed >> 32) as u8;
        }
        fs::write(&status, &b).unwrap();
        if let Err(e) = Dpkg::open(t.path()) {
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn the_host_database_knows_merged_usr_paths() {
    if !Path::new("/var/lib/dpkg/status").is_file() {
        eprintln!("skipped: no dpkg database on this host");
        return;
    }
    let db = Dpkg::open(Path::new("/")).unwrap();
    let libc = fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6");
    if let Ok(libc) = libc {
        assert_eq!(db.owner(&libc), Some("libc6"), "{}", libc.display());
    }
    if Path::new("/usr/bin/less").exists() {
        assert_eq!(db.owner(Path::new("/usr/bin/less")), Some("less"));
        assert!(db.version("less").is_some());
    }
    let base = db.base_packages();
    assert!(base.contains("dpkg"), "{} base packages", base.len());
    eprintln!("host base system: {} packages", base.len());
}
