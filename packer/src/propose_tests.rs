use super::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use trace::{Access, Connect, Exec, Exit};

fn dirs() -> UserDirs {
    UserDirs {
        home: "/home/u".into(),
        runtime: Some("/run/user/1000".into()),
        xdg: vec![
            ("xdg-download".into(), "/home/u/Downloads".into()),
            ("xdg-documents".into(), "/home/u/Documents".into()),
        ],
    }
}

fn trace(accesses: Vec<Access>, connects: Vec<Connect>) -> Trace {
    Trace {
        accesses,
        execs: vec![Exec {
            path: "/usr/bin/app".into(),
            exe: "/usr/bin/app".into(),
            argv0: "app".into(),
            pid: 7,
        }],
        connects,
        exit: Exit::Code(0),
        timed_out: false,
        wall: Duration::ZERO,
        stops: 0,
        dropped_signals: 0,
    }
}

fn connect(addr: SockAddr, sock_type: i32) -> Connect {
    Connect {
        addr,
        sock_type,
        errno: None,
        pid: 7,
    }
}

fn access(path: &str, op: Op) -> Access {
    Access {
        path: path.into(),
        op,
        errno: None,
        pid: 7,
    }
}

const READ: Op = Op::Open {
    write: false,
    create: false,
};

#[test]
fn tcp_ports_loopback_and_dns_are_told_apart() {
    let inet = |a: [u8; 4], port| SockAddr::Inet {
        ip: IpAddr::V4(Ipv4Addr::from(a)),
        port,
    };
    let tcp = trace(
        vec![],
        vec![
            connect(inet([93, 184, 215, 14], 443), 1),
            connect(inet([93, 184, 215, 14], 443), 1),
            connect(inet([127, 0, 0, 1], 8080), 1),
        ],
    );
    let p = Proposal::from_trace(&tcp, &dirs());
    assert_eq!(p.network, NetProposal::TcpPorts(vec![443]));
    assert_eq!(p.network_evidence[0].count, 2);
    assert_eq!(
        p.network_evidence[0].by.as_deref(),
        Some(Path::new("/usr/bin/app"))
    );
    assert_eq!(p.loopback.len(), 1);

    let dns = trace(vec![], vec![connect(inet([192, 168, 1, 1], 53), 2)]);
    assert_eq!(
        Proposal::from_trace(&dns, &dirs()).network,
        NetProposal::All
    );

    let local = trace(vec![], vec![connect(inet([127, 0, 0, 1], 5432), 1)]);
    assert_eq!(
        Proposal::from_trace(&local, &dirs()).network,
        NetProposal::None
    );
}

#[test]
fn unix_sockets_map_to_socket_permissions_or_unmapped() {
    let t = trace(
        vec![],
        vec![
            connect(SockAddr::Abstract("/tmp/.X11-unix/X0".into()), 1),
            connect(SockAddr::Unix("/run/user/1000/wayland-0".into()), 1),
            connect(SockAddr::Unix("/run/user/1000/pulse/native".into()), 1),
            connect(SockAddr::Unix("/run/user/1000/bus".into()), 1),
            connect(SockAddr::Unix("/run/dbus/system_bus_socket".into()), 1),
            connect(SockAddr::Unix("/var/run/nscd/socket".into()), 1),
        ],
    );
    let p = Proposal::from_trace(&t, &dirs());
    let got: Vec<Socket> = p.sockets.keys().copied().collect();
    assert_eq!(
        got,
        vec![
            Socket::X11,
            Socket::Wayland,
            Socket::Pulseaudio,
            Socket::SessionBus
        ]
    );
    assert_eq!(p.unmapped.len(), 1, "{:?}", p.unmapped);
    assert!(p.unmapped[0].seen.contains("system bus"));
}

#[test]
fn home_files_propose_narrow_grants_read_only_unless_written() {
    let t = trace(
        vec![
            access("/home/u/Downloads/a.pdf", READ),
            access("/home/u/Projects/x/main.c", READ),
            access(
                "/home/u/Projects/x/main.o",
                Op::Open {
                    write: true,
                    create: true,
                },
            ),
            access("/home/u/.config/app/settings", READ),
            access("/home/u/.bashrc", READ),
            access("/usr/share/app/data", READ),
            access("/dev/dri/renderD128", READ),
            Access {
                errno: Some(2),
                ..access("/home/u/Documents/missing", READ)
            },
        ],
        vec![],
    );
    let p = Proposal::from_trace(&t, &dirs());
    let fs: Vec<&str> = p.filesystem.keys().map(String::as_str).collect();
    assert_eq!(fs, vec!["xdg-download:ro", "~/Projects"]);
    assert!(p.devices.contains_key(&Device::Dri));
}
