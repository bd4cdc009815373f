//! The ways around Landlock's TCP port rules (trust.md §4, issue 7), tried by the probe
//! (`netgaps=` rows of tests/probe/probe.c) inside `capsa run --allow network=tcp:PORT`: the
//! app shares the host's network, and Landlock checks only plain TCP bind and connect, so
//! seccomp must refuse MPTCP, SCTP, UDP and raw sockets (EPROTONOSUPPORT) and TCP Fast Open
//! (EPERM), while TCP to PORT still works. The control: with the network granted in full the
//! same calls work, and the Fast Open sends connect to the port Landlock refuses.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;

use common::*;

/// Two listeners on the host's 127.0.0.1: `port` is granted, `other` is not.
struct Listeners {
    port: TcpListener,
    other: TcpListener,
}

impl Listeners {
    fn new() -> Self {
        let listen = || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            l
        };
        Self {
            port: listen(),
            other: listen(),
        }
    }

    fn port(&self) -> u16 {
        self.port.local_addr().unwrap().port()
    }

    fn arg(&self) -> String {
        let other = self.other.local_addr().unwrap().port();
        format!("netgaps={},{other}", self.port())
    }
}

/// How many connections reached `l` (all are queued by the time the probe has exited).
fn accepted(l: &TcpListener) -> usize {
    std::iter::from_fn(|| l.accept().ok()).count()
}

/// What the host's kernel gives for an MPTCP socket when nothing filters it.
fn host_mptcp() -> &'static str {
    match std::fs::read_to_string("/proc/sys/net/mptcp/enabled") {
        Ok(v) if v.trim() == "1" => "success",
        Ok(_) => "ENOPROTOOPT",
        Err(_) => "EPROTONOSUPPORT",
    }
}

/// Whether the host lets clients use TCP Fast Open (bit 1 of net.ipv4.tcp_fastopen).
fn host_fastopen() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .is_some_and(|v| v & 1 == 1)
}

/// The Landlock ABI `--report` says is enforced (0 for none).
fn landlock_abi(report: &str) -> u32 {
    report
        .lines()
        .find(|l| l.trim_start().starts_with("landlock"))
        .and_then(|l| l.split("ABI ").nth(1))
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or(0)
}

/// Every netgaps row, with the values the test allows: `granted` when the network is granted
/// in full, else only TCP to the one port is.
fn expected_rows(granted: bool, abi: u32) -> BTreeMap<String, String> {
    let refused = "EPROTONOSUPPORT";
    let fastopen = match (granted, host_fastopen()) {
        (false, _) => "EPERM",
        (true, true) => "success",
        (true, false) => "EOPNOTSUPP",
    };
    let pick = |open: &'static str| if granted { open } else { refused };
    let rows = [
        (
            "socket(AF_INET,SOCK_STREAM,IPPROTO_MPTCP)",
            pick(host_mptcp()),
        ),
        (
            "socket(AF_INET6,SOCK_STREAM,IPPROTO_MPTCP)",
            pick(host_mptcp()),
        ),
        // SCTP is in the kernel's build or not: unfiltered, either answer.
        (
            "socket(AF_INET,SOCK_STREAM,IPPROTO_SCTP)",
            pick("success|EPROTONOSUPPORT"),
        ),
        (
            "socket(AF_INET,SOCK_SEQPACKET,IPPROTO_SCTP)",
            pick("success|ESOCKTNOSUPPORT|EPROTONOSUPPORT"),
        ),
        ("socket(AF_INET,SOCK_DGRAM,0)", pick("success")),
        (
            "socket(AF_INET6,SOCK_DGRAM|SOCK_NONBLOCK,0)",
            pick("success"),
        ),
        ("socket(AF_INET,SOCK_RAW,IPPROTO_ICMP)", pick("EPERM")),
        ("socket(AF_INET,SOCK_STREAM,IPPROTO_TCP)", "success"),
        ("tcp-connect:port", "success"),
        (
            "tcp-connect:other-port",
            if granted || abi < 4 {
                "success"
            } else {
                "EACCES"
            },
        ),
        ("setsockopt(TCP_FASTOPEN_CONNECT)", fastopen),
        ("sendto(MSG_FASTOPEN):other-port", fastopen),
        ("sendmsg(MSG_FASTOPEN):other-port", fastopen),
        ("sendmmsg(MSG_FASTOPEN):other-port", fastopen),
    ];
    rows.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Runs the probe's netgaps rows with `grant`; returns the exit code, the report, the rows.
fn run_netgaps(
    iso: &Isolated,
    grant: &str,
    args: &[String],
) -> (Option<i32>, String, BTreeMap<String, ProbeRow>) {
    let mut argv = vec!["run", "--report", "--allow", grant];
    argv.extend([probe_bundle().to_str().unwrap(), "--"]);
    argv.extend(args.iter().map(String::as_str));
    let o = iso.run(&argv);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("probe netgaps rows (--allow {grant}):\n{}", text(&o));
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        probe_rows(&out),
    )
}

/// Asserts that the rows are exactly `expected` and each got an allowed value (the probe's
/// verdict and the test's own), naming every row that did not.
fn assert_rows(rows: &BTreeMap<String, ProbeRow>, expected: &BTreeMap<String, String>) {
    let names: Vec<&String> = rows.keys().collect();
    let wanted: Vec<&String> = expected.keys().collect();
    assert_eq!(names, wanted, "the probe's rows are not the test's");
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(n, allowed)| !rows[*n].ok || !allowed.split('|').any(|a| a == rows[*n].got))
        .map(|(n, allowed)| format!("{n}: got {}, allowed {allowed}", rows[n].got))
        .collect();
    assert!(
        wrong.is_empty(),
        "rows that do not hold:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn port_limited_network_refuses_what_landlock_does_not_check() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let host = Listeners::new();
    let grant = format!("network=tcp:{}", host.port());
    let (code, report, rows) = run_netgaps(&iso, &grant, &[host.arg()]);
    let abi = landlock_abi(&report);
    assert_rows(&rows, &expected_rows(false, abi));
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        accepted(&host.port),
        1,
        "the plain connect to the granted port"
    );
    assert_eq!(
        accepted(&host.other),
        0,
        "the probe reached the port that is not granted"
    );
    assert!(
        report.contains("MSG_FASTOPEN") && report.contains("EPROTONOSUPPORT"),
        "the report names the network filter: {report}"
    );
}

#[test]
fn full_network_leaves_the_same_calls_open() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let host = Listeners::new();
    let (code, report, rows) = run_netgaps(&iso, "network", &[host.arg(), "net=all".into()]);
    let abi = landlock_abi(&report);
    assert_rows(&rows, &expected_rows(true, abi));
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(accepted(&host.port), 1, "the plain connect to the port");
    // The plain connect, and each Fast Open send when the host allows Fast Open clients.
    let sends = if host_fastopen() { 3 } else { 0 };
    assert_eq!(
        accepted(&host.other),
        1 + sends,
        "connections to the other port"
    );
    assert!(
        !report.contains("MSG_FASTOPEN"),
        "no network filter with the network granted: {report}"
    );
}
