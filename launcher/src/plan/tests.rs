//! The planner on a table of host files: what each grant exposes, what is refused, what is
//! masked, and the Landlock rules.

use std::collections::BTreeMap;

use userdata::{Grants, Identity, Publisher};

use super::*;
use crate::host::Resolved;
use crate::spec::OpenFile;

/// A host with symlinks (`from` → `to`, by prefix) and paths that do not exist.
#[derive(Default)]
struct FakeFs {
    links: Vec<(PathBuf, PathBuf)>,
    missing: Vec<PathBuf>,
}

impl HostFs for FakeFs {
    fn resolve(&self, path: &Path) -> Option<Resolved> {
        let mut p = path.to_path_buf();
        for (from, to) in &self.links {
            if let Ok(rest) = p.strip_prefix(from) {
                p = to.join(rest);
            }
        }
        if self.missing.iter().any(|m| p.starts_with(m)) {
            return None;
        }
        Some(Resolved {
            is_dir: p.extension().is_none() && !p.starts_with("/dev"),
            id: FileId {
                dev: 1,
                ino: p.as_os_str().len() as u64,
            },
            path: p,
        })
    }
}

fn host() -> Host {
    let mut env = BTreeMap::new();
    env.insert("DISPLAY".to_owned(), ":0".to_owned());
    env.insert("TERM".to_owned(), "xterm".to_owned());
    env.insert("LD_PRELOAD".to_owned(), "/evil.so".to_owned());
    Host {
        uid: 1000,
        gid: 1000,
        user: "u".into(),
        home: "/home/u".into(),
        cwd: "/home/u/project".into(),
        env,
        runtime_dir: Some("/run/user/1000".into()),
        user_dirs: userdata::dirs::user_dirs(Path::new("/home/u"), None),
        localtime: Some("/usr/share/zoneinfo/UTC".into()),
        hostname: "box".into(),
    }
}

fn dirs() -> Dirs {
    Dirs {
        root: Root {
            lowers: vec!["/c/app".into(), "/c/libc".into()],
            mode: RootMode::Ephemeral,
        },
        root_dirs: vec!["/usr".into(), "/etc".into(), "/tmp".into()],
        private_home: Some("/s/home".into()),
        hidden: vec![
            "/home/u/.local/share/capsa".into(),
            "/home/u/.cache/capsa".into(),
        ],
    }
}

fn spec(grants: &[&str]) -> SandboxSpec {
    let list: Vec<Permission> = grants.iter().map(|g| g.parse().unwrap()).collect();
    SandboxSpec {
        app: Identity {
            id: "org.example.App".into(),
            publisher: Publisher::Local,
        },
        grants: Grants::from_list(&list),
        landlock: Default::default(),
        argv: vec!["/usr/bin/app".into()],
        env: vec![("A".into(), "1".into())],
        workdir: None,
        ephemeral: false,
        open_files: vec![],
        trace_missing: false,
    }
}

fn plan_of(grants: &[&str], fs: &FakeFs) -> Plan {
    plan(&spec(grants), &host(), &dirs(), fs).unwrap()
}

fn binds(p: &Plan) -> Vec<(&Path, &Path)> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::Bind { src, dst, why, .. } if *why != BindWhy::System => {
                Some((src.as_path(), dst.as_path()))
            }
            _ => None,
        })
        .collect()
}

fn masks(p: &Plan) -> Vec<&Path> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::Mask { dst } => Some(dst.as_path()),
            _ => None,
        })
        .collect()
}

#[test]
fn no_grants_means_private_home_no_network_no_host_files() {
    let p = plan_of(&[], &FakeFs::default());
    assert!(p.has(Namespace::Net));
    assert_eq!(binds(&p), [(Path::new("/s/home"), Path::new("/home/u"))]);
    assert_eq!(
        p.cwd,
        Path::new("/home/u"),
        "cwd outside falls back to home"
    );
    assert_eq!(
        p.landlock.tcp_connect, None,
        "the private netns isolates; loopback works"
    );
    let env: BTreeMap<_, _> = p.env.iter().cloned().collect();
    assert_eq!(env["HOME"], "/home/u");
    assert_eq!(env["A"], "1");
    assert_eq!(env["TERM"], "xterm");
    assert!(!env.contains_key("LD_PRELOAD") && !env.contains_key("DISPLAY"));
    // The host name resolves to the app's own loopback, as on a Debian host.
    let hosts = p.steps.iter().find_map(|s| match s {
        Step::File { dst, contents } if dst == Path::new("/etc/hosts") => Some(contents),
        _ => None,
    });
    let hosts = hosts.expect("a generated /etc/hosts");
    assert!(
        hosts.contains("127.0.0.1\tlocalhost\n") && hosts.contains("127.0.1.1\tbox\n"),
        "{hosts}"
    );
}

#[test]
fn a_host_name_that_is_not_plain_stays_out_of_the_hosts_file() {
    for bad in ["", "a b", "x\n127.0.0.1 evil", "localhost"] {
        let h = Host {
            hostname: bad.into(),
            ..host()
        };
        assert_eq!(h.hosts().lines().count(), 3, "{bad:?}");
    }
}

#[test]
fn grants_expose_exactly_what_they_name() {
    let p = plan_of(
        &[
            "filesystem=home:ro",
            "filesystem=xdg-download",
            "network",
            "socket=x11",
        ],
        &FakeFs::default(),
    );
    assert!(!p.has(Namespace::Net));
    let b = binds(&p);
    assert!(b.contains(&(Path::new("/home/u"), Path::new("/home/u"))));
    assert!(b.contains(&(
        Path::new("/home/u/Downloads"),
        Path::new("/home/u/Downloads")
    )));
    assert!(b.contains(&(Path::new("/tmp/.X11-unix"), Path::new("/tmp/.X11-unix"))));
    assert!(p
        .steps
        .iter()
        .any(|s| s.dst() == Path::new("/etc/resolv.conf")));
    assert_eq!(
        p.cwd,
        Path::new("/home/u/project"),
        "cwd inside the granted home is kept"
    );
    assert!(p.env.contains(&("DISPLAY".into(), ":0".into())));
    let at = |d: &str| {
        p.steps
            .iter()
            .position(|s| s.dst() == Path::new(d))
            .unwrap()
    };
    assert!(
        at("/home/u") < at("/home/u/Downloads"),
        "nested bind before its parent"
    );
    assert_eq!(p.landlock.tcp_connect, None);
}

#[test]
fn port_grants_get_tcp_rules_and_dns_over_tcp() {
    let p = plan_of(&["network=tcp:443"], &FakeFs::default());
    assert!(!p.has(Namespace::Net));
    assert_eq!(p.landlock.tcp_connect, Some(vec![53, 443]));
    let resolv = p.steps.iter().find_map(|s| match s {
        Step::File { dst, contents } if dst == Path::new("/etc/resolv.conf") => Some(contents),
        _ => None,
    });
    assert!(resolv.unwrap().contains("options use-vc"));
    assert!(tcp_resolv_conf("nameserver 10.0.0.1\noptions edns0\n")
        .contains("nameserver 10.0.0.1\noptions use-vc"));
}

#[test]
fn missing_host_paths_are_noted_not_exposed() {
    let fs = FakeFs {
        missing: vec!["/srv".into(), "/run/user/1000/wayland-0".into()],
        ..Default::default()
    };
    let p = plan_of(&["filesystem=/srv/none", "socket=wayland"], &fs);
    assert!(!p.steps.iter().any(|s| s.dst().starts_with("/srv")));
    assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
}

#[test]
fn kernel_daemon_system_and_capsa_paths_are_refused() {
    for g in [
        "filesystem=/proc:ro",
        "filesystem=/proc/1",
        "filesystem=/sys",
        "filesystem=/dev/shm",
        "filesystem=/run",
        "filesystem=/run/user/1000/bus",
        "filesystem=/usr/lib",
        "filesystem=/etc",
        "filesystem=~/.local/share/capsa/overrides",
        "filesystem=~/.cache/capsa",
    ] {
        let e = plan(&spec(&[g]), &host(), &dirs(), &FakeFs::default()).unwrap_err();
        assert!(matches!(e, LaunchError::Refused { .. }), "{g}: {e}");
    }
    // Through a symlink: ~/procfs -> /proc is refused by what it resolves to.
    let fs = FakeFs {
        links: vec![("/home/u/procfs".into(), "/proc".into())],
        ..Default::default()
    };
    assert!(plan(&spec(&["filesystem=~/procfs"]), &host(), &dirs(), &fs).is_err());
    assert!(plan(&spec(&["filesystem=/run/media/u"]), &host(), &dirs(), &fs).is_ok());
}

#[test]
fn capsa_directories_are_masked_by_resolved_path() {
    let p = plan_of(&["filesystem=home"], &FakeFs::default());
    assert_eq!(
        masks(&p),
        [
            Path::new("/home/u/.local/share/capsa"),
            Path::new("/home/u/.cache/capsa")
        ]
    );
    let at = |d: &Path| p.steps.iter().position(|s| s.dst() == d).unwrap();
    assert!(
        at(Path::new("/home/u")) < at(masks(&p)[0]),
        "mask after the grant it corrects"
    );
    assert!(masks(&plan_of(&["filesystem=/srv"], &FakeFs::default())).is_empty());

    // Fedora Atomic: /home -> /var/home, HOME=/var/home/u; a grant of /home shows the store.
    let fs = FakeFs {
        links: vec![("/home".into(), "/var/home".into())],
        ..Default::default()
    };
    let mut h = host();
    h.home = "/var/home/u".into();
    let mut d = dirs();
    d.hidden = vec!["/var/home/u/.local/share/capsa".into()];
    let p = plan(&spec(&["filesystem=/home"]), &h, &d, &fs).unwrap();
    assert_eq!(masks(&p), [Path::new("/home/u/.local/share/capsa")]);
}

#[test]
fn open_files_are_pinned_and_capsa_files_refused() {
    let mut s = spec(&[]);
    s.open_files = vec![OpenFile {
        path: "/home/u/a.txt".into(),
        id: FileId { dev: 7, ino: 9 },
    }];
    let p = plan(&s, &host(), &dirs(), &FakeFs::default()).unwrap();
    assert!(p.steps.iter().any(|st| matches!(st, Step::Bind { dst, check: Some(FileId { dev: 7, ino: 9 }), why: BindWhy::OpenFile, .. } if dst == Path::new("/home/u/a.txt"))));
    s.open_files[0].path = "/home/u/.local/share/capsa/overrides/x.json".into();
    assert!(plan(&s, &host(), &dirs(), &FakeFs::default()).is_err());
}

#[test]
fn landlock_mirrors_mounts() {
    let p = plan_of(&["filesystem=/srv/data:ro"], &FakeFs::default());
    let r = &p.landlock.rules;
    assert_eq!(r[0], (PathBuf::from("/"), FsAccess::Read));
    assert!(r.contains(&("/srv/data".into(), FsAccess::Read)));
    assert!(r.contains(&("/proc".into(), FsAccess::Read)));
    assert!(r.contains(&("/tmp".into(), FsAccess::ReadWrite)));
    assert!(
        r.contains(&("/usr".into(), FsAccess::ReadWrite)),
        "the overlay backs /usr"
    );
    assert!(
        r.contains(&("/etc".into(), FsAccess::ReadWrite)),
        "the overlay backs /etc"
    );
    let mut d = dirs();
    d.root.mode = RootMode::ReadOnly {
        tree: "/t".into(),
        why: Fallback::Disabled,
    };
    let p = plan(&spec(&[]), &host(), &d, &FakeFs::default()).unwrap();
    assert!(!p
        .landlock
        .rules
        .contains(&("/usr".into(), FsAccess::ReadWrite)));
}

#[test]
fn tracing_is_in_the_plan_and_changes_nothing_else() {
    let fs = FakeFs::default();
    for grants in [&[][..], &["network=tcp:443", "filesystem=home:ro"][..]] {
        let plain = plan(&spec(grants), &host(), &dirs(), &fs).unwrap();
        let mut s = spec(grants);
        s.trace_missing = true;
        let traced = plan(&s, &host(), &dirs(), &fs).unwrap();
        assert!(traced.trace_missing && !plain.trace_missing);
        // The mounts, Landlock rules, namespaces, ids and environment are the same.
        let untraced = Plan {
            trace_missing: false,
            ..traced
        };
        assert_eq!(untraced, plain);
    }
}
