use super::*;
use crate::propose::UserDirs;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use trace::{Connect, Exit, SockAddr, Trace};

fn starter() -> Starter {
    let t = Trace {
        accesses: vec![],
        execs: vec![],
        connects: vec![
            Connect {
                addr: SockAddr::Inet {
                    ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
                    port: 443,
                },
                sock_type: 1,
                errno: None,
                pid: 1,
            },
            Connect {
                addr: SockAddr::Abstract("/tmp/.X11-unix/X9".into()),
                sock_type: 1,
                errno: None,
                pid: 1,
            },
        ],
        exit: Exit::Code(0),
        timed_out: false,
        wall: Duration::ZERO,
        stops: 0,
        dropped_signals: 0,
    };
    let dirs = UserDirs {
        home: "/home/u".into(),
        runtime: None,
        xdg: vec![],
    };
    Starter {
        argv: vec![
            "/usr/bin/git".into(),
            "log".into(),
            "--oneline \"x\"".into(),
        ],
        program_is_elf: true,
        package: Some(PackageFacts {
            name: "git".into(),
            version: "1:2.39.5-0+deb12u2".into(),
        }),
        desktop: None,
        paths: vec![("/usr/share/terminfo".into(), "unit terminfo".into())],
        skipped: vec![("/home/u/.gitconfig".into(), "private, in your home".into())],
        ended: "exit 0".into(),
        proposal: Proposal::from_trace(&t, &dirs),
    }
}

#[test]
fn upstream_versions_lose_epoch_and_revision() {
    assert_eq!(upstream_version("1:2.39.5-0+deb12u2"), "2.39.5");
    assert_eq!(upstream_version("3.11.2-6+deb12u6"), "3.11.2");
    assert_eq!(upstream_version("5.36.0"), "5.36.0");
}

#[test]
fn ids_come_from_the_desktop_entry_else_the_package() {
    let mut s = starter();
    assert_eq!(s.app_id().0, "org.debian.git");
    s.desktop = Some((
        "/usr/share/applications/org.gnome.Zenity.desktop".into(),
        "Zenity".into(),
    ));
    assert_eq!(s.app_id().0, "org.gnome.Zenity");
    s.desktop = Some((
        "/usr/share/applications/zenity.desktop".into(),
        "Zenity".into(),
    ));
    s.package = Some(PackageFacts {
        name: "g++-12".into(),
        version: "12".into(),
    });
    assert_eq!(s.app_id().0, "org.debian.g__-12");
}

#[test]
fn the_starter_recipe_loads_as_written_and_keeps_the_trace() {
    let s = starter();
    let text = s.to_toml();
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("capsa.toml");
    std::fs::write(&file, &text).unwrap();
    let r = crate::Recipe::load(&file).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(r.app.id, "org.debian.git");
    assert_eq!(r.app.version, "2.39.5");
    assert_eq!(r.app.command, vec!["/usr/bin/git"]);
    assert_eq!(r.capture.packages, vec!["git"]);
    assert_eq!(r.capture.trace, vec![s.argv.clone()]);
    assert_eq!(r.capture.paths, vec!["/usr/share/terminfo"]);
    assert_eq!(r.permissions.sockets, vec!["x11"]);
    let p = r.permissions().unwrap();
    assert!(format!("{p:?}").contains("443"), "{p:?}");
    assert!(text.contains("# Seen in the run and left out:"));
    assert!(text.contains("/home/u/.gitconfig"));
}
