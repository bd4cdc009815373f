//! The report tells the truth, on every kernel (issue 7 §4): `capsa run --report --json`'s
//! claims are checked against what the probe (the `truth=` rows of tests/probe/probe.c) can
//! really do inside, for the samples' permission sets (hello and python3: nothing; xmessage:
//! socket=x11), `network=tcp:PORT` and `network`, each with a writable and a read-only host
//! directory, at Landlock ABIs 2, 4, 5 and 7 (`CAPSA_LANDLOCK_ABI`, which makes the launcher
//! use no more than that ABI, as on an older kernel). Every claim is checked both ways: a
//! restriction claimed must hold, and one not claimed must not hold (so a claim missing where
//! the sandbox does restrict, or a possibility not claimed, fails too). The listeners the
//! probe tries are the test's own, on the host's 127.0.0.1 and an abstract unix socket; the
//! probe's listen() without bind is connected to from here.
//!
//! Also: a required rule set refuses to start below ABI 6 (exit 125, naming what is missing)
//! and starts at 7; and two checks of the text report, which the launcher before this work
//! failed: the app's own loopback works without a network grant, and under a port grant the
//! report says that the app can still accept connections.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The ABIs every permission set runs at: no TCP rules (2), TCP rules without scoping (4, 5),
/// everything Capsa asks for (7).
const ABIS: &[u8] = &[2, 4, 5, 7];

/// The network of a permission set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    /// No network grant: its own namespace with loopback.
    Loopback,
    /// `network=tcp:GRANTED`.
    Tcp,
    /// `network`.
    Host,
}

impl Net {
    fn mode(self) -> &'static str {
        match self {
            Net::Loopback => "loopback",
            Net::Tcp => "tcp",
            Net::Host => "host",
        }
    }
    fn claim(self) -> &'static str {
        match self {
            Net::Loopback => "loopback",
            Net::Tcp => "tcp-ports",
            Net::Host => "host",
        }
    }
}

/// What the probe tries on the host: two TCP listeners (one granted under `network=tcp:`), a
/// free port, a UDP socket, an abstract unix socket, and two directories to grant.
struct HostSide {
    granted: TcpListener,
    other: TcpListener,
    free: u16,
    udp: UdpSocket,
    unix: UnixListener,
    name: String,
    rw: PathBuf,
    ro: PathBuf,
}

impl HostSide {
    fn new(iso: &Isolated, tag: &str) -> Self {
        let listen = || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            l
        };
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        let name = format!("capsa-truth-{}-{tag}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let unix = UnixListener::bind_addr(&addr).unwrap();
        unix.set_nonblocking(true).unwrap();
        let dir = |n: &str| {
            let d = iso.path().join(n);
            std::fs::create_dir_all(&d).unwrap();
            d.canonicalize().unwrap()
        };
        Self {
            granted: listen(),
            other: listen(),
            free,
            udp,
            unix,
            name,
            rw: dir("rw"),
            ro: dir("ro"),
        }
    }

    fn port(l: &TcpListener) -> u16 {
        l.local_addr().unwrap().port()
    }

    /// The grants for `net` on top of a sample's, with the two directories.
    fn grants(&self, sample: &[&str], net: Net) -> Vec<String> {
        let mut g: Vec<String> = sample.iter().map(|s| s.to_string()).collect();
        g.push(format!("filesystem={}", self.rw.display()));
        g.push(format!("filesystem={}:ro", self.ro.display()));
        match net {
            Net::Loopback => {}
            Net::Tcp => g.push(format!("network=tcp:{}", Self::port(&self.granted))),
            Net::Host => g.push("network".into()),
        }
        g
    }

    fn probe_args(&self, net: Net, abi: u8) -> Vec<String> {
        vec![
            format!(
                "truth={},{},{}",
                Self::port(&self.granted),
                Self::port(&self.other),
                self.free
            ),
            format!("mode={}", net.mode()),
            format!("abi={abi}"),
            format!("udp={}", self.udp.local_addr().unwrap().port()),
            format!("abstract={}", self.name),
            format!("rw={}", self.rw.display()),
            format!("ro={}", self.ro.display()),
        ]
    }

    /// What reached the host since the last call: (granted TCP, other TCP, UDP, abstract).
    fn reached(&self) -> (usize, usize, bool, bool) {
        let count = |l: &TcpListener| std::iter::from_fn(|| l.accept().ok()).count();
        let mut b = [0u8; 16];
        let udp = std::iter::from_fn(|| self.udp.recv(&mut b).ok()).count() > 0;
        let unix = std::iter::from_fn(|| self.unix.accept().ok()).count() > 0;
        (count(&self.granted), count(&self.other), udp, unix)
    }
}

/// One `capsa run` of the probe.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    rows: BTreeMap<String, ProbeRow>,
    /// The `--report --json` object.
    report: Option<Value>,
}

impl Run {
    fn got(&self, row: &str) -> &str {
        self.rows
            .get(row)
            .map(|r| r.got.as_str())
            .unwrap_or_else(|| panic!("no row {row}:\n{}{}", self.stdout, self.stderr))
    }
}

/// Runs the probe bundle with `grants` and `args`, `CAPSA_LANDLOCK_ABI=abi` when given, and
/// the report as JSON or text; connects to the port the probe's listen() got, then lets it go on.
fn run_probe(
    iso: &Isolated,
    bundle: &std::path::Path,
    grants: &[String],
    flags: &[&str],
    abi: Option<u8>,
    args: &[String],
) -> Run {
    let mut argv: Vec<&str> = vec!["run"];
    argv.extend(flags);
    for g in grants {
        argv.extend(["--allow", g]);
    }
    argv.extend([bundle.to_str().unwrap(), "--"]);
    argv.extend(args.iter().map(String::as_str));
    let mut cmd = iso.capsa(&argv);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match abi {
        Some(a) => cmd.env("CAPSA_LANDLOCK_ABI", a.to_string()),
        None => cmd.env_remove("CAPSA_LANDLOCK_ABI"),
    };
    let mut child = cmd.spawn().expect("run capsa");
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdin = child.stdin.take();
    let mut stdout = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(port) = line.strip_prefix("autobind-port=") {
            // A client on the host; whether it got in, the probe's accept says.
            let to = SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap()));
            let _client = TcpStream::connect_timeout(&to, Duration::from_secs(5));
            if let Some(mut s) = stdin.take() {
                let _ = s.write_all(b"g");
            }
        }
        stdout.push_str(&line);
        stdout.push('\n');
    }
    drop(stdin);
    let code = child.wait().unwrap().code();
    let stderr = stderr.join().unwrap();
    let report = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str::<Value>(l).ok());
    eprintln!("probe (grants {grants:?}, abi {abi:?}):\n{stdout}");
    Run {
        code,
        rows: probe_rows(&stdout),
        stdout,
        stderr,
        report,
    }
}

/// Runs the truth rows with `grants` for `net` at `abi`, with the report as JSON.
fn run_truth(iso: &Isolated, host: &HostSide, sample: &[&str], net: Net, abi: u8) -> Run {
    let r = run_probe(
        iso,
        probe_bundle(),
        &host.grants(sample, net),
        &["--report", "--json"],
        Some(abi),
        &host.probe_args(net, abi),
    );
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.rows.values().all(|row| row.ok),
        "the probe's own expectations failed:\n{}",
        r.stdout
    );
    r
}

/// Collects claims that the probe contradicts.
struct Check<'a> {
    run: &'a Run,
    wrong: Vec<String>,
}

impl Check<'_> {
    /// Row `row` must have got one of `allowed` ('|'-separated), because the report says `why`.
    fn row(&mut self, why: &str, row: &str, allowed: &str) {
        let got = self.run.got(row);
        if !allowed.split('|').any(|a| a == got) {
            self.wrong
                .push(format!("{why}, but {row} got {got} (want {allowed})"));
        }
    }

    fn fact(&mut self, why: &str, holds: bool, what: &str) {
        if !holds {
            self.wrong.push(format!("{why}, but {what}"));
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every claim of `run`'s report against the probe's rows and what reached the host.
fn check_claims(run: &Run, host: &HostSide, net: Net, cap: u8) {
    let report = run
        .report
        .as_ref()
        .unwrap_or_else(|| panic!("no JSON report on stderr:\n{}", run.stderr));
    let c = &report["claims"];
    let (granted_in, other_in, udp_in, unix_in) = host.reached();
    let mut k = Check {
        run,
        wrong: Vec::new(),
    };
    let flag = |name: &str| {
        c[name]
            .as_bool()
            .unwrap_or_else(|| panic!("claim {name} is not a boolean: {c}"))
    };

    // The network.
    let network = c["network"].as_str().unwrap_or_default();
    k.fact(
        &format!("the network is {network}"),
        network == net.claim(),
        &format!("the grants give {}", net.claim()),
    );
    if network == "loopback" {
        k.row(
            "the network is loopback",
            "tcp-connect:granted",
            "ECONNREFUSED",
        );
        k.fact(
            "the network is loopback",
            (granted_in, other_in, udp_in) == (0, 0, false),
            "a connection or datagram reached the host",
        );
    } else {
        k.row(
            "the host's network is shared",
            "tcp-connect:granted",
            "success",
        );
        k.fact(
            "the host's network is shared",
            granted_in == 1,
            "the granted listener got no connection",
        );
    }

    // TCP by port, bind, listen, a loopback server.
    match c["tcp_connect_only"].as_array() {
        Some(ports) => {
            let ports: Vec<u64> = ports.iter().filter_map(Value::as_u64).collect();
            let why = format!("TCP connect only to {ports:?}");
            let granted = HostSide::port(&host.granted) as u64;
            k.fact(
                &why,
                ports.contains(&granted),
                "the granted port is not listed",
            );
            k.row(&why, "tcp-connect:other", "EACCES");
            k.fact(&why, other_in == 0, "the other listener got a connection");
            let dns = if ports.contains(&53) {
                "success|ECONNREFUSED"
            } else {
                "EACCES"
            };
            k.row(&why, "tcp-connect:53", dns);
        }
        None if network != "loopback" => {
            let why = "TCP connect is not restricted by port";
            k.row(why, "tcp-connect:other", "success");
            k.fact(why, other_in >= 1, "the other listener got no connection");
        }
        None => {}
    }
    let bind = if flag("tcp_bind_refused") {
        "EACCES"
    } else {
        "success"
    };
    k.row(
        &format!("tcp_bind_refused is {}", flag("tcp_bind_refused")),
        "tcp-bind:chosen-port",
        bind,
    );
    let autobind = flag("tcp_listen_autobind_possible");
    k.row("listen() without bind", "tcp-listen:never-bound", "success");
    k.row(
        &format!("tcp_listen_autobind_possible is {autobind}"),
        "tcp-accept:host-client",
        if autobind { "success" } else { "EAGAIN" },
    );
    let server = flag("loopback_tcp_server");
    k.row(
        &format!("loopback_tcp_server is {server}"),
        "loopback-server:127.0.0.1",
        if server {
            "success"
        } else {
            "bind-EACCES|connect-EACCES"
        },
    );

    // What seccomp refuses.
    let refuses = strings(&c["seccomp_refuses"]);
    let refused = |gap: &str| refuses.iter().any(|r| r == gap);
    let why = format!("seccomp refuses {refuses:?}");
    if refused("non-stream-sockets") {
        k.row(&why, "udp-sendto:host-port", "EPROTONOSUPPORT");
    } else {
        k.row(&why, "udp-sendto:host-port", "success");
        k.fact(
            &why,
            udp_in == (network == "host"),
            "the datagram's arrival on the host",
        );
    }
    if refused("non-tcp-streams") {
        k.row(
            &why,
            "socket(AF_INET,SOCK_STREAM,IPPROTO_MPTCP)",
            "EPROTONOSUPPORT",
        );
        k.row(
            &why,
            "socket(AF_INET,SOCK_STREAM,IPPROTO_SCTP)",
            "EPROTONOSUPPORT",
        );
    } else {
        // Unfiltered: the kernel's own answer, which the probe's row holds.
        k.row(
            &why,
            "socket(AF_INET,SOCK_STREAM,IPPROTO_MPTCP)",
            "success|ENOPROTOOPT|EPROTONOSUPPORT",
        );
    }
    let tfo = |gap: &str| {
        if refused(gap) {
            "EPERM"
        } else {
            "success|EOPNOTSUPP|ECONNREFUSED"
        }
    };
    k.row(
        &why,
        "setsockopt(TCP_FASTOPEN_CONNECT)",
        tfo("fast-open-connect"),
    );
    k.row(&why, "sendto(MSG_FASTOPEN):other", tfo("fast-open-send"));
    if network == "tcp-ports" {
        k.fact(
            "under port grants",
            [
                "non-stream-sockets",
                "non-tcp-streams",
                "fast-open-send",
                "fast-open-connect",
            ]
            .iter()
            .all(|g| refused(g)),
            &format!("seccomp_refuses is only {refuses:?}"),
        );
    }

    // Landlock's scopes, and what the ABI in use lacks.
    let scoped = flag("abstract_unix_scoped");
    k.row(
        &format!("abstract_unix_scoped is {scoped}"),
        "connect:host-abstract-socket",
        if scoped {
            "EPERM|ECONNREFUSED"
        } else {
            "success"
        },
    );
    k.fact(
        &format!("abstract_unix_scoped is {scoped}"),
        unix_in != scoped,
        "the host's abstract socket's connections",
    );
    let signals = flag("signals_scoped");
    k.row(
        &format!("signals_scoped is {signals}"),
        "kill(1,0)",
        if signals { "EPERM" } else { "success" },
    );
    let ll = &c["landlock"];
    let abi = ll["abi"].as_u64().unwrap_or(0) as u8;
    let kernel = ll["kernel"]["Abi"].as_u64().unwrap_or(0) as u8;
    let missing = strings(&ll["missing"]);
    let lacks = |m: &str| missing.iter().any(|x| x == m);
    k.fact(
        &format!("Landlock ABI {abi} in use (kernel {kernel})"),
        abi <= cap.min(kernel) && abi >= cap.min(kernel).min(6),
        &format!("CAPSA_LANDLOCK_ABI is {cap}"),
    );
    k.fact(
        &format!("the ruleset is {}", ll["ruleset"]),
        ll["ruleset"] == "Fully",
        "it should be fully enforced",
    );
    let why = format!("Landlock lacks {missing:?}");
    k.row(
        &why,
        "truncate:/proc/self/comm",
        if lacks("Truncate") {
            "success"
        } else {
            "EACCES"
        },
    );
    k.fact(&why, lacks("Truncate") == (abi < 3), &format!("ABI {abi}"));
    k.fact(&why, lacks("Scoping") == (abi < 6), &format!("ABI {abi}"));
    k.fact(
        &why,
        lacks("TcpRules") == (net == Net::Tcp && abi < 4),
        &format!("ABI {abi}"),
    );
    if lacks("Scoping") {
        k.fact(&why, !signals, "signals are claimed scoped");
    }
    if lacks("TcpRules") {
        k.fact(
            &why,
            c["tcp_connect_only"].is_null(),
            "TCP ports are claimed restricted",
        );
    }

    // Host paths.
    let paths: Vec<(String, bool)> = c["host_paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_bool()?)))
        .collect();
    for (dir, ro) in [(&host.rw, false), (&host.ro, true)] {
        let d = dir.display().to_string();
        let claimed = paths.iter().find(|(p, _)| *p == d);
        k.fact(
            &format!("host paths {paths:?}"),
            claimed == Some(&(d.clone(), ro)),
            &format!("{d} is granted read-only={ro}"),
        );
    }
    for (p, ro) in &paths {
        let allowed = if *ro { "EROFS|EACCES" } else { "success" };
        k.row(
            &format!("{p} is read-only={ro}"),
            &format!("create:{p}"),
            allowed,
        );
    }

    // The text rows say what the claims say.
    let rows: Vec<String> = report["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{} {}",
                r[0].as_str().unwrap_or(""),
                r[1].as_str().unwrap_or("")
            )
        })
        .collect();
    let text = rows.join("\n");
    if autobind {
        k.fact(
            "listen() without bind gets through",
            text.contains("CAN accept connections"),
            "the text does not say so",
        );
    }
    k.fact(
        "the text report",
        !text.contains("no TCP connect or bind") && !text.contains(", no bind"),
        "claims no bind without the listen caveat",
    );

    assert!(
        k.wrong.is_empty(),
        "the report's claims are not what the probe can do ({} at ABI {cap}):\n  {}\nreport: {c}\nrows:\n{text}",
        net.mode(),
        k.wrong.join("\n  ")
    );
}

/// Every ABI for one permission set.
fn claims_hold(sample: &[&str], net: Net, tag: &str) {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let host = HostSide::new(&iso, tag);
    for &abi in ABIS {
        let run = run_truth(&iso, &host, sample, net, abi);
        check_claims(&run, &host, net, abi);
    }
}

#[test]
fn hello_and_python3_permissions_claims_hold_at_every_abi() {
    claims_hold(&[], Net::Loopback, "none");
}

#[test]
fn xmessage_permissions_claims_hold_at_every_abi() {
    claims_hold(&["socket=x11"], Net::Loopback, "x11");
}

#[test]
fn port_grant_claims_hold_at_every_abi() {
    claims_hold(&[], Net::Tcp, "tcp");
}

#[test]
fn full_network_claims_hold_at_every_abi() {
    claims_hold(&[], Net::Host, "host");
}

/// The probe bundle with `landlock = "required"` in its manifest.
fn required_bundle() -> PathBuf {
    let dir = shared_tmp().join("probe-required");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(probe_binary(), dir.join("capsa-probe")).unwrap();
    let recipe = dir.join("capsa.toml");
    std::fs::write(
        &recipe,
        format!(
            r#"[app]
id = "org.capsa.ProbeRequired"
name = "Probe"
version = "1.0"
command = ["{PROBE}"]

[capture]
files = {{ "{PROBE}" = "capsa-probe" }}

[permissions]
landlock = "required"
"#
        ),
    )
    .unwrap();
    let out = dir.join("probe-required.capsa");
    ok(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    out
}

#[test]
fn required_landlock_refuses_what_the_abi_lacks() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let host = HostSide::new(&iso, "required");
    let scoping = "abstract unix sockets and signals are not scoped to the sandbox (needs ABI 6)";
    let truncate = "truncating files is not restricted (needs ABI 3)";
    let tcp = "TCP ports are not restricted by Landlock (needs ABI 4)";
    let manifest = required_bundle();
    for (bundle, flags) in [
        (
            probe_bundle(),
            &["--report", "--json", "--require-landlock"][..],
        ),
        (manifest.as_path(), &["--report", "--json"][..]),
    ] {
        for (abi, named, unnamed) in [
            (2, &[scoping, truncate, tcp][..], &[][..]),
            (5, &[scoping][..], &[truncate, tcp][..]),
        ] {
            let grants = host.grants(&[], Net::Tcp);
            let r = run_probe(
                &iso,
                bundle,
                &grants,
                flags,
                Some(abi),
                &host.probe_args(Net::Tcp, abi),
            );
            let ctx = format!(
                "{} at ABI {abi}:\n{}{}",
                bundle.display(),
                r.stdout,
                r.stderr
            );
            assert_eq!(r.code, Some(125), "{ctx}");
            assert!(
                r.rows.is_empty() && r.report.is_none(),
                "the app started: {ctx}"
            );
            assert!(r.stderr.contains("Landlock is required"), "{ctx}");
            for n in named {
                assert!(
                    r.stderr.contains(n),
                    "the refusal does not name {n:?}: {ctx}"
                );
            }
            for n in unnamed {
                assert!(
                    !r.stderr.contains(n),
                    "the refusal names {n:?}, which ABI {abi} has: {ctx}"
                );
            }
        }
        // At 7 it starts, with the whole rule set.
        let r = run_probe(
            &iso,
            bundle,
            &host.grants(&[], Net::Tcp),
            flags,
            Some(7),
            &host.probe_args(Net::Tcp, 7),
        );
        assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
        check_claims(&r, &host, Net::Tcp, 7);
        let ll = &r.report.as_ref().unwrap()["claims"]["landlock"];
        assert!(strings(&ll["missing"]).is_empty(), "{ll}");
    }
}

/// The truth rows with the text report and the kernel's whole ABI (what the launcher before
/// `CAPSA_LANDLOCK_ABI` and `--json` can run too).
fn run_text(iso: &Isolated, host: &HostSide, net: Net) -> Run {
    let r = run_probe(
        iso,
        probe_bundle(),
        &host.grants(&[], net),
        &["--report"],
        None,
        &host.probe_args(net, 99),
    );
    assert!(
        r.stderr.contains("sandbox for "),
        "no text report: {}",
        r.stderr
    );
    r
}

#[test]
fn own_loopback_works_without_a_network_grant() {
    if !userns() {
        return;
    }
    // Node, Python's asyncio and test servers bind 127.0.0.1 and connect to themselves.
    let iso = Isolated::new();
    let host = HostSide::new(&iso, "text-loopback");
    let r = run_text(&iso, &host, Net::Loopback);
    assert_row(&r.rows, "tcp-bind:chosen-port", "success");
    assert_row(&r.rows, "loopback-server:127.0.0.1", "success");
    assert_row(&r.rows, "tcp-accept:host-client", "EAGAIN");
    assert_eq!(
        host.reached(),
        (0, 0, false, false),
        "the probe reached the host"
    );
    assert!(
        !r.stderr.contains("no TCP connect or bind"),
        "the report claims what is not so, or should not be: {}",
        r.stderr
    );
}

#[test]
fn text_report_says_a_port_grant_still_accepts_connections() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let host = HostSide::new(&iso, "text-tcp");
    let r = run_text(&iso, &host, Net::Tcp);
    // The fact: a host client got in through listen() on a socket never bound.
    assert_eq!(r.got("tcp-listen:never-bound"), "success");
    assert_eq!(r.got("tcp-accept:host-client"), "success");
    assert!(
        r.stderr.contains("CAN accept connections") && !r.stderr.contains(", no bind"),
        "the text report hides that the app can accept connections:\n{}",
        r.stderr
    );
}
