//! Policy tests for the trace stage on synthetic traces over real files: what is captured,
//! what is skipped and why, what is reported missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use trace::{Access, Exec, Exit, Op, Trace};

use super::*;

const READ: Op = Op::Open {
    write: false,
    create: false,
};

fn acc(path: &Path, op: Op, errno: Option<i32>, pid: u32) -> Access {
    Access {
        path: path.into(),
        op,
        errno,
        pid,
    }
}

fn trace_of(accesses: Vec<Access>, execs: Vec<Exec>) -> Trace {
    Trace {
        accesses,
        execs,
        connects: Vec::new(),
        exit: Exit::Code(0),
        timed_out: false,
        wall: Duration::from_millis(1),
        stops: 0,
        dropped_signals: 0,
    }
}

fn probes() -> Vec<String> {
    crate::units::probe_helpers().unwrap()
}

fn run(t: &Trace, places: &Places) -> Decision {
    decide(t, "app --x", places, &probes(), &|p: &Path| {
        p.to_str().is_some_and(|s| s.ends_with(".excluded"))
    })
}

fn reasons(d: &Decision) -> Vec<(String, SkipReason)> {
    d.skipped
        .iter()
        .map(|s| (s.path.clone(), s.reason))
        .collect()
}

/// A home with a secret, a recipe folder (in /tmp) with app files, and the two places.
struct World {
    _dir: tempfile::TempDir,
    home: PathBuf,
    app: PathBuf,
    places: Places,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let app = dir.path().join("app");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(app.join("plugins")).unwrap();
    std::fs::write(home.join("secret.txt"), b"s").unwrap();
    std::fs::write(app.join("plugins/libp.so"), b"p").unwrap();
    std::os::unix::fs::symlink(home.join("secret.txt"), app.join("link-to-secret")).unwrap();
    let places = Places::new(Some(&home), "", vec![app.clone()]);
    World {
        _dir: dir,
        home,
        app,
        places,
    }
}

#[test]
fn home_files_are_private_by_name_and_through_links() {
    let w = world();
    let t = trace_of(
        vec![
            acc(&w.home.join("secret.txt"), READ, None, 1),
            acc(&w.app.join("link-to-secret"), Op::Stat, None, 1),
            acc(&w.home.join("absent"), Op::Stat, Some(2), 1),
        ],
        vec![],
    );
    let d = run(&t, &w.places);
    let got = reasons(&d);
    assert!(d.take.is_empty(), "{:?}", d.take);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(_, r)| *r == SkipReason::Home), "{got:?}");
    assert!(
        d.missing.is_empty(),
        "a home path is never listed: {:?}",
        d.missing
    );
}

#[test]
fn recipe_folders_lift_the_tmp_rule_and_system_files_are_taken() {
    let w = world();
    let plugin = w.app.join("plugins/libp.so");
    let t = trace_of(
        vec![
            acc(&plugin, READ, None, 1),
            acc(Path::new("/usr/bin/../bin/env"), Op::Exec, None, 1),
            acc(&w.app.join("plugins"), Op::Stat, None, 1),
            acc(Path::new("/proc/self/status"), READ, None, 1),
            acc(Path::new("/tmp"), Op::Stat, None, 1),
            acc(Path::new("/srv"), Op::Stat, None, 1),
        ],
        vec![],
    );
    let d = run(&t, &w.places);
    assert_eq!(
        d.take,
        vec![plugin, PathBuf::from("/usr/bin/env"), w.app.join("plugins")]
    );
    assert_eq!(
        reasons(&d),
        vec![
            ("/proc/self/status".into(), SkipReason::Virtual),
            ("/tmp".into(), SkipReason::Virtual),
            ("/srv".into(), SkipReason::OutsidePrefixes),
        ]
    );
}

#[test]
fn written_excluded_and_special_paths_are_skipped() {
    let w = world();
    let data = w.app.join("data.db");
    std::fs::write(&data, b"d").unwrap();
    let excluded = w.app.join("x.excluded");
    std::fs::write(&excluded, b"x").unwrap();
    let sock = w.app.join("sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let t = trace_of(
        vec![
            acc(&data, READ, None, 1),
            acc(
                &data,
                Op::Open {
                    write: true,
                    create: false,
                },
                None,
                1,
            ),
            acc(&excluded, READ, None, 1),
            acc(&sock, Op::Stat, None, 1),
        ],
        vec![],
    );
    let d = run(&t, &w.places);
    assert!(d.take.is_empty(), "{:?}", d.take);
    let r: Vec<SkipReason> = reasons(&d).into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        r,
        [
            SkipReason::Written,
            SkipReason::Excluded,
            SkipReason::Special
        ]
    );
}

#[test]
fn probe_helpers_and_what_they_open_are_skipped() {
    let w = world();
    let t = trace_of(
        vec![
            acc(Path::new("/usr/bin/gcc"), Op::Exec, None, 7),
            acc(Path::new("/usr/lib/os-release"), READ, None, 7),
            acc(Path::new("/usr/lib/nothere-for-gcc"), READ, Some(2), 7),
            acc(Path::new("/usr/bin/env"), READ, None, 8),
        ],
        vec![],
    );
    let d = run(&t, &w.places);
    assert_eq!(d.take, vec![PathBuf::from("/usr/bin/env")]);
    assert_eq!(
        reasons(&d),
        vec![
            ("/usr/bin/gcc".into(), SkipReason::ProbeHelper),
            ("/usr/lib/os-release".into(), SkipReason::ProbeHelper),
        ]
    );
    assert!(d.missing.is_empty(), "{:?}", d.missing);
}

#[test]
fn missing_paths_are_listed_once_and_found_ones_are_not() {
    let w = world();
    let t = trace_of(
        vec![
            acc(Path::new("/usr/lib/libnothere.so.9"), READ, Some(2), 1),
            acc(Path::new("/usr/lib/libnothere.so.9"), Op::Stat, Some(2), 1),
            acc(Path::new("/usr/bin/env"), Op::Stat, Some(2), 1),
            acc(Path::new("/usr/bin/env"), READ, None, 1),
            acc(Path::new("/proc/nothere"), READ, Some(2), 1),
            acc(Path::new("/etc/shadow-ish"), READ, Some(13), 1),
        ],
        vec![],
    );
    let d = run(&t, &w.places);
    assert_eq!(d.missing, vec![PathBuf::from("/usr/lib/libnothere.so.9")]);
    assert_eq!(d.take, vec![PathBuf::from("/usr/bin/env")]);
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
}

#[test]
fn the_interpreter_an_exec_ran_is_taken() {
    let w = world();
    let exe = std::fs::canonicalize("/bin/sh").unwrap();
    let t = trace_of(
        vec![],
        vec![Exec {
            path: w.app.join("script"),
            exe: exe.clone(),
            argv0: "script".into(),
            pid: 3,
        }],
    );
    assert_eq!(run(&t, &w.places).take, vec![exe]);
}

#[test]
fn passwd_homes_of_people_count_and_system_users_do_not() {
    let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                  daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                  www-data:x:33:33::/var/www:/usr/sbin/nologin\n\
                  ann:x:1000:1000::/srv/people/ann:/bin/bash\n\
                  odd:x:1001:1001::/:/bin/sh\n\
                  broken line\n\
                  bad:x:notanumber:0::/x:/bin/sh\n";
    let p = Places::new(Some(Path::new("/tmp/h/../h2")), passwd, vec![]);
    assert!(p.homes.contains(&PathBuf::from("/srv/people/ann")));
    assert!(p.homes.contains(&PathBuf::from("/tmp/h2")));
    assert!(!p.homes.iter().any(|h| h == Path::new("/")));
    assert_eq!(p.location(Path::new("/usr/sbin/nologin")), None);
    assert_eq!(
        p.location(Path::new("/srv/people/ann/.ssh/id_ed25519")),
        Some(SkipReason::Home)
    );
    assert_eq!(
        p.location(Path::new("/tmp/h2/x")),
        Some(SkipReason::Home),
        "the home rule comes before the virtual one"
    );
    let above = Places::new(None, passwd, vec![PathBuf::from("/srv")]);
    assert_eq!(
        above.location(Path::new("/srv/people/ann/notes")),
        Some(SkipReason::Home),
        "a recipe folder above a home does not open it"
    );
    assert_eq!(above.location(Path::new("/srv/www/index.html")), None);
}

#[test]
fn summary_counts_reasons_and_names_private_files() {
    let s = |path: &str, reason| Skipped {
        path: path.into(),
        reason,
        command: "app".into(),
    };
    let lines = summary(&[
        s("/root/.gitconfig", SkipReason::Home),
        s("/proc/self/maps", SkipReason::Virtual),
        s("/proc/self/status", SkipReason::Virtual),
        s("/root/.gitconfig", SkipReason::Home),
    ]);
    assert!(lines.contains(&"not captured (private, in your home): /root/.gitconfig".into()));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("trace: 2 paths") && l.contains("virtual")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("trace: 1 paths") && l.contains("home")),
        "{lines:?}"
    );
}

#[test]
fn a_recipe_that_traces_needs_the_helper() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("capsa.toml");
    std::fs::write(
        &p,
        "[app]\nid = \"org.example.T\"\nname = \"T\"\nversion = \"1\"\n\
         command = [\"/usr/bin/env\"]\n[capture]\ntrace = [[\"/usr/bin/env\"]]\n",
    )
    .unwrap();
    let r = crate::Recipe::load(&p).unwrap();
    let mut set = CaptureSet::new(&[]).unwrap();
    let e = stage(&mut set, &r, None).unwrap_err();
    assert!(matches!(e, PackError::NoTraceHelper), "{e}");
    assert!(e.to_string().contains("capsa binary"), "{e}");
    assert!(set.items.is_empty());
}
