//! What each layer of the sandbox really enforces, for `capsa run --report`: rendered from the
//! plan (namespaces, root, mounts, rule sets), the seccomp policy, and what the kernel said
//! when the app's process applied Landlock ([`Outcome`]). Nothing here is claimed that the
//! plan does not do or the kernel did not confirm; [`Claims`] holds the same facts as data,
//! which the tests check against a probe inside the sandbox at several Landlock ABIs
//! (tests/run_report_truth.rs). Invariants: a restriction is claimed only when the ABI in use
//! enforces it, and what the app can still do is claimed too (under port grants it can accept
//! connections, through listen() on a socket never bound); the `network` row is worded from
//! the claims, so the text and the data cannot disagree.

use std::path::PathBuf;

use serde::Serialize;

use crate::landlock::{Kernel, Missing, Outcome};
use crate::plan::{BindWhy, Fallback, Namespace, Plan, RootMode, Step};
use crate::seccomp::{NetGap, SeccompPolicy};

/// The `trace` row under `--trace-missing` (the plan's only difference).
pub const TRACE_ROW: &str = "on (--trace-missing): pid 1 traces the app's tree with ptrace; a seccomp filter added after the policy above stops it on path syscalls (the policy's refusals come first); nothing else differs";

/// Where the app's layers came from on this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layers {
    /// From the per-user cache; `unpacked` of them were unpacked now, `repaired` replaced.
    Cached {
        unpacked: usize,
        repaired: bool,
    },
    Installed,
}

/// The network the app has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// Its own namespace with only loopback.
    Loopback,
    /// The host's network, unrestricted.
    Host,
    /// The host's network, restricted to TCP connect to some ports.
    TcpPorts,
}

/// A socket call the seccomp filter refuses because Landlock's TCP rules do not see it
/// ([`NetGap`]: closed under port grants only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SocketRefusal {
    /// Inet sockets other than stream ones: UDP, UDP-Lite, ping, raw, SCTP seqpacket
    /// (EPROTONOSUPPORT).
    NonStreamSockets,
    /// Inet stream sockets of a protocol other than TCP: MPTCP, SCTP, SMC (EPROTONOSUPPORT).
    NonTcpStreams,
    /// `sendto`, `sendmsg` and `sendmmsg` with MSG_FASTOPEN (EPERM).
    FastOpenSend,
    /// `setsockopt(IPPROTO_TCP, TCP_FASTOPEN_CONNECT)` (EPERM).
    FastOpenConnect,
}

impl From<NetGap> for SocketRefusal {
    fn from(g: NetGap) -> Self {
        match g {
            NetGap::NonStreamSockets => Self::NonStreamSockets,
            NetGap::NonTcpStreams => Self::NonTcpStreams,
            NetGap::FastOpenSend => Self::FastOpenSend,
            NetGap::FastOpenConnect => Self::FastOpenConnect,
        }
    }
}

/// The report's facts as data: each says what the app can or cannot do, as the plan asked
/// and the kernel confirmed it. A restriction that needs a Landlock ABI the run does not use
/// is not claimed; a possibility (what the app CAN do) is claimed wherever it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    pub network: Network,
    /// TCP connect allowed only to these ports, enforced by Landlock (`None`: not restricted
    /// by Landlock; with `Loopback` only the app's own loopback is reachable anyway).
    pub tcp_connect_only: Option<Vec<u16>>,
    /// bind(2) of a TCP socket to a port the app chooses is refused (Landlock). Not "cannot
    /// accept connections": see `tcp_listen_autobind_possible`.
    pub tcp_bind_refused: bool,
    /// listen(2) on a TCP socket never bound autobinds an ephemeral port on all the host's
    /// addresses (Landlock has no listen hook, and seccomp cannot tell TCP from unix sockets
    /// in listen), so the app can accept connections from the host's network: true whenever
    /// it shares the host's network.
    pub tcp_listen_autobind_possible: bool,
    /// A TCP server on 127.0.0.1 works inside (bind, listen, connect to itself); with
    /// `Loopback` it is the app's own loopback, which nothing outside reaches.
    pub loopback_tcp_server: bool,
    /// Socket calls the seccomp filter refuses because Landlock does not see them.
    pub seccomp_refuses: Vec<SocketRefusal>,
    /// Abstract unix sockets of the host (and of other sandboxes) cannot be reached.
    pub abstract_unix_scoped: bool,
    /// Signals to processes outside the app's Landlock domain (the sandbox's pid 1 among
    /// them) are refused.
    pub signals_scoped: bool,
    /// Host paths visible inside, and whether read-only.
    pub host_paths: Vec<(PathBuf, bool)>,
    /// Whether the root keeps changes across runs.
    pub root_persistent: bool,
    pub landlock: Option<Outcome>,
}

impl Claims {
    fn new(plan: &Plan, seccomp: &SeccompPolicy, landlock: Option<&Outcome>) -> Self {
        let private_net = plan.has(Namespace::Net);
        let holds = |m: Missing| landlock.is_some_and(|o| o.holds(m));
        let tcp_rules = plan
            .landlock
            .tcp_connect
            .clone()
            .filter(|_| holds(Missing::TcpRules));
        let scoped = plan.landlock.scope && holds(Missing::Scoping);
        let bind_refused = tcp_rules.is_some();
        Claims {
            network: if private_net {
                Network::Loopback
            } else if plan.landlock.tcp_connect.is_some() {
                Network::TcpPorts
            } else {
                Network::Host
            },
            tcp_bind_refused: bind_refused,
            tcp_connect_only: tcp_rules,
            tcp_listen_autobind_possible: !private_net,
            loopback_tcp_server: !bind_refused,
            seccomp_refuses: seccomp
                .net
                .closed_gaps()
                .iter()
                .map(|g| SocketRefusal::from(*g))
                .collect(),
            abstract_unix_scoped: private_net || scoped,
            signals_scoped: scoped,
            host_paths: plan
                .steps
                .iter()
                .filter_map(|s| match s {
                    Step::Bind {
                        dst,
                        flags,
                        why: BindWhy::Grant | BindWhy::OpenFile,
                        ..
                    } => Some((dst.clone(), flags.read_only)),
                    _ => None,
                })
                .collect(),
            root_persistent: matches!(plan.root.mode, RootMode::Persistent { .. }),
            landlock: landlock.cloned(),
        }
    }
}

/// The network row: what the app can do on the network, worded from the claims.
fn network_text(c: &Claims) -> String {
    let mut parts = vec![match (c.network, &c.tcp_connect_only) {
        (Network::Loopback, _) => "its own namespace with only loopback: no route to the host or the internet".to_owned(),
        (Network::Host, _) => "the host's network, unrestricted".to_owned(),
        (Network::TcpPorts, Some(ports)) => {
            format!("the host's network, TCP connect only to ports {ports:?} (Landlock; 53 for name resolution)")
        }
        (Network::TcpPorts, None) => {
            "the host's network, TCP ports NOT restricted (Landlock ABI 4 needed): any TCP port can be connected to and bound".to_owned()
        }
    }];
    if c.tcp_bind_refused {
        parts.push("bind(2) to a chosen TCP port refused".into());
    }
    if c.tcp_listen_autobind_possible {
        parts.push("the app CAN accept connections from the host's network (listen() on a socket never bound autobinds an ephemeral port on all addresses; no kernel hook refuses it)".into());
    }
    if c.loopback_tcp_server {
        parts.push(match c.network {
            Network::Loopback => {
                "TCP servers on its own 127.0.0.1 work (bind, listen, connect)".into()
            }
            _ => "TCP servers on 127.0.0.1 work (bind, listen, connect)".into(),
        });
    }
    let refused: Vec<&str> = c
        .seccomp_refuses
        .iter()
        .map(|r| match r {
            SocketRefusal::NonStreamSockets => "UDP, raw and SCTP seqpacket sockets",
            SocketRefusal::NonTcpStreams => "MPTCP and SCTP streams",
            SocketRefusal::FastOpenSend => "TCP Fast Open sends",
            SocketRefusal::FastOpenConnect => "TCP_FASTOPEN_CONNECT",
        })
        .collect();
    if !refused.is_empty() {
        parts.push(format!("seccomp refuses {}", refused.join(", ")));
    }
    parts.join("; ")
}

/// One row per sandbox layer, and the claims.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub app: String,
    pub rows: Vec<(String, String)>,
    pub claims: Claims,
}

fn root_text(plan: &Plan, layers: Layers) -> String {
    let source = match layers {
        Layers::Installed => "installed".to_owned(),
        Layers::Cached { unpacked: 0, .. } => "cached".to_owned(),
        Layers::Cached { unpacked, repaired } => format!(
            "{unpacked} unpacked now{}",
            if repaired {
                ", a damaged cache entry was replaced"
            } else {
                ""
            }
        ),
    };
    let n = plan.root.lowers.len();
    match &plan.root.mode {
        RootMode::ReadOnly { tree, why } => format!(
            "the layers merged read-only ({source}) from {}: no writable layer ({}); nosuid, nodev",
            tree.display(),
            match why {
                Fallback::Disabled => "overlayfs disabled by CAPSA_OVERLAY=off".to_owned(),
                Fallback::Unavailable(e) => format!("overlayfs unavailable: {}", std::io::Error::from_raw_os_error(*e)),
            }
        ),
        RootMode::Persistent { upper, .. } => format!("overlayfs of {n} read-only layers ({source}), persistent writable layer {}; nosuid, nodev", upper.display()),
        RootMode::Busy => format!("overlayfs of {} read-only layers ({source}), tmpfs writable layer: another instance holds this app's state, so changes here are discarded; nosuid, nodev", n.saturating_sub(1)),
        RootMode::Ephemeral => format!("overlayfs of {n} read-only layers ({source}), tmpfs writable layer (ephemeral: changes are discarded); nosuid, nodev"),
    }
}

fn step_text(s: &Step) -> String {
    match s {
        Step::Bind {
            src,
            dst,
            flags,
            why,
            ..
        } => format!(
            "{} <- {} ({}{}{})",
            dst.display(),
            src.display(),
            if flags.read_only { "ro" } else { "rw" },
            if flags.nodev {
                ", nosuid, nodev"
            } else {
                ", nosuid, device"
            },
            match why {
                BindWhy::OpenFile => ", opened file, pinned to the file checked",
                BindWhy::Grant => ", pinned to the directory checked",
                _ => "",
            }
        ),
        Step::Tmpfs { dst, mode } => {
            format!("{} tmpfs (mode {mode:o}, nosuid, nodev)", dst.display())
        }
        Step::Proc { dst } => format!("{} proc of the sandbox's pid namespace", dst.display()),
        Step::Devpts { dst } => format!("{} devpts, new instance", dst.display()),
        Step::Symlink { target, dst } => format!("{} -> {}", dst.display(), target.display()),
        Step::File { dst, .. } => format!("{} generated (ro)", dst.display()),
        Step::Mask { dst } => format!("{} hidden (capsa's own data)", dst.display()),
    }
}

fn landlock_text(plan: &Plan, o: &Outcome) -> String {
    let kernel = match o.kernel {
        Kernel::NotEnabled => return "not enforced: Landlock is turned off in this kernel".into(),
        Kernel::NotImplemented => return "not enforced: this kernel has no Landlock".into(),
        Kernel::Abi(k) => k,
    };
    let state = match o.ruleset {
        crate::landlock::Enforced::Fully => "fully enforced",
        crate::landlock::Enforced::Partially => "partially enforced",
        crate::landlock::Enforced::Not => return format!("not enforced (kernel ABI {kernel})"),
    };
    let writable = plan
        .landlock
        .rules
        .iter()
        .filter(|(_, a)| *a == crate::plan::FsAccess::ReadWrite)
        .count();
    let mut parts = vec![format!(
        "ABI {} (kernel {kernel}), {state} ({}): read and execute everywhere, write beneath {writable} paths",
        o.abi,
        if plan.landlock.required { "required" } else { "best effort" },
    )];
    match (&plan.landlock.tcp_connect, o.holds(Missing::TcpRules)) {
        (Some(ports), true) => parts.push(format!(
            "TCP connect only to ports {ports:?} (53 for name resolution), TCP bind to a chosen port refused (listen without bind is not: see network)"
        )),
        (Some(_), false) => parts.push("TCP ports NOT restricted (needs ABI 4)".into()),
        (None, _) if plan.has(Namespace::Net) => parts.push("TCP not restricted: the app's own loopback works".into()),
        (None, _) => {}
    }
    for m in &o.missing {
        if *m != Missing::TcpRules {
            parts.push(format!("{} (needs ABI {})", m.text(), m.abi()));
        }
    }
    if o.holds(Missing::Scoping) && plan.landlock.scope {
        parts.push("abstract unix sockets and signals scoped to the sandbox".into());
    }
    parts.join("; ")
}

impl Report {
    pub fn new(
        app: &str,
        plan: &Plan,
        seccomp: &SeccompPolicy,
        layers: Layers,
        landlock: Option<&Outcome>,
    ) -> Self {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        let private_net = plan.has(Namespace::Net);
        row(
            "namespaces",
            format!(
                "user (uid {} and gid {} mapped to themselves, setgroups denied), mount, pid (pid 1 reaps and forwards signals), ipc, uts, {}",
                plan.uid,
                plan.gid,
                if private_net {
                    "net (its own, with only loopback: no route to the host or the internet)"
                } else {
                    "net shared with the host (network granted)"
                }
            ),
        );
        row(
            "root",
            format!(
                "{}; host root detached after pivot_root",
                root_text(plan, layers)
            ),
        );
        for s in &plan.steps {
            row("mount", step_text(s));
        }
        row(
            "landlock",
            landlock.map_or_else(
                || "(applied by the app's process)".into(),
                |o| landlock_text(plan, o),
            ),
        );
        for line in &seccomp.summary {
            row("seccomp", line.clone());
        }
        if plan.trace_missing {
            row("trace", TRACE_ROW.into());
        }
        row(
            "capabilities",
            "none: bounding, permitted, effective, inheritable and ambient sets cleared".into(),
        );
        row(
            "no_new_privs",
            "set (setuid and file capabilities cannot raise privileges)".into(),
        );
        for n in &plan.notes {
            row("note", n.to_string());
        }
        let claims = Claims::new(plan, seccomp, landlock);
        rows.insert(1, ("network".to_owned(), network_text(&claims)));
        Self {
            app: app.to_owned(),
            rows,
            claims,
        }
    }

    /// Text for a terminal.
    pub fn render(&self) -> String {
        let mut out = format!("sandbox for {}:\n", self.app);
        for (k, v) in &self.rows {
            out.push_str(&format!("  {k:<13} {v}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landlock::{Enforced, Kernel};
    use crate::plan::{LandlockPlan, Root};
    use crate::seccomp::NetFilter;

    /// A plan with a private network namespace or not, and Landlock TCP rules or not.
    fn plan(private_net: bool, tcp_connect: Option<Vec<u16>>) -> Plan {
        let mut namespaces = vec![Namespace::User, Namespace::Mount, Namespace::Pid];
        if private_net {
            namespaces.push(Namespace::Net);
        }
        Plan {
            namespaces,
            root: Root {
                lowers: vec![],
                mode: RootMode::Ephemeral,
            },
            steps: vec![],
            argv: vec!["/app".into()],
            env: vec![],
            cwd: "/".into(),
            landlock: LandlockPlan {
                required: false,
                abi_cap: None,
                rules: vec![],
                tcp_connect,
                scope: true,
            },
            uid: 1000,
            gid: 1000,
            notes: vec![],
            trace_missing: false,
        }
    }

    /// What the kernel says at `abi`, with the rights the plan wants that it lacks.
    fn outcome(plan: &Plan, abi: u8) -> Outcome {
        let missing = crate::landlock::missing_at(&plan.landlock, abi);
        Outcome {
            kernel: Kernel::Abi(7),
            abi,
            ruleset: Enforced::Fully,
            missing,
        }
    }

    fn report(private_net: bool, tcp: Option<Vec<u16>>, net: NetFilter, abi: Option<u8>) -> Report {
        let p = plan(private_net, tcp);
        let o = abi.map(|a| outcome(&p, a));
        let seccomp = SeccompPolicy::compile(
            net,
            crate::seccomp::Ids {
                uid: 1000,
                gid: 1000,
            },
        )
        .unwrap();
        Report::new(
            "org.example.App",
            &p,
            &seccomp,
            Layers::Installed,
            o.as_ref(),
        )
    }

    fn row<'a>(r: &'a Report, key: &str) -> &'a str {
        &r.rows.iter().find(|(k, _)| k == key).unwrap().1
    }

    #[test]
    fn tracing_adds_its_row_and_nothing_else() {
        let plain = report(false, None, NetFilter::Private, Some(6));
        let mut p = plan(false, None);
        p.trace_missing = true;
        let o = outcome(&p, 6);
        let user = crate::seccomp::Ids {
            uid: 1000,
            gid: 1000,
        };
        let seccomp = SeccompPolicy::compile(NetFilter::Private, user).unwrap();
        let traced = Report::new("org.example.App", &p, &seccomp, Layers::Installed, Some(&o));
        assert_eq!(row(&traced, "trace"), TRACE_ROW);
        let mut rows = traced.rows.clone();
        rows.retain(|(k, _)| k != "trace");
        assert_eq!((rows, &traced.claims), (plain.rows.clone(), &plain.claims));
        assert!(plain.rows.iter().all(|(k, _)| k != "trace"));
    }

    #[test]
    fn port_grants_refuse_bind_but_say_that_listen_accepts() {
        let r = report(false, Some(vec![53, 443]), NetFilter::TcpPorts, Some(6));
        let c = &r.claims;
        assert_eq!(
            (c.network, c.tcp_connect_only.as_deref()),
            (Network::TcpPorts, Some(&[53, 443][..]))
        );
        assert!(c.tcp_bind_refused && c.tcp_listen_autobind_possible && !c.loopback_tcp_server);
        assert_eq!(c.seccomp_refuses.len(), 4);
        assert!(c.abstract_unix_scoped && c.signals_scoped);
        assert!(
            row(&r, "network").contains("CAN accept connections"),
            "{}",
            row(&r, "network")
        );
        assert!(row(&r, "network").contains("UDP"));
        assert!(!r.render().contains("no TCP bind") && !r.render().contains(", no bind"));
    }

    #[test]
    fn port_grants_below_abi_4_claim_no_tcp_restriction() {
        let r = report(false, Some(vec![53, 443]), NetFilter::TcpPorts, Some(2));
        let c = &r.claims;
        assert_eq!(c.tcp_connect_only, None);
        assert!(!c.tcp_bind_refused && c.tcp_listen_autobind_possible && c.loopback_tcp_server);
        assert!(!c.abstract_unix_scoped && !c.signals_scoped);
        assert_eq!(
            c.seccomp_refuses.len(),
            4,
            "seccomp does not depend on the ABI"
        );
        assert!(row(&r, "network").contains("NOT restricted"));
        assert!(row(&r, "landlock").contains("TCP ports NOT restricted"));
    }

    #[test]
    fn own_loopback_works_and_is_unreachable_from_the_host() {
        for abi in [2, 5, 6] {
            let r = report(true, None, NetFilter::Private, Some(abi));
            let c = &r.claims;
            assert_eq!((c.network, &c.tcp_connect_only), (Network::Loopback, &None));
            assert!(
                !c.tcp_bind_refused && !c.tcp_listen_autobind_possible && c.loopback_tcp_server
            );
            assert!(c.seccomp_refuses.is_empty());
            // The network namespace keeps the host's abstract sockets out; signals need ABI 6.
            assert!(c.abstract_unix_scoped);
            assert_eq!(c.signals_scoped, abi >= 6);
            assert!(row(&r, "network").contains("its own 127.0.0.1"));
            assert!(row(&r, "landlock").contains("own loopback works"));
        }
    }

    #[test]
    fn without_landlock_no_restriction_is_claimed() {
        let r = report(false, Some(vec![443]), NetFilter::TcpPorts, None);
        let c = &r.claims;
        assert!(
            c.tcp_connect_only.is_none()
                && !c.tcp_bind_refused
                && !c.signals_scoped
                && !c.abstract_unix_scoped
        );
        assert!(c.tcp_listen_autobind_possible && c.loopback_tcp_server);
        let host = report(false, None, NetFilter::Host, Some(6));
        assert_eq!(host.claims.network, Network::Host);
        assert!(host.claims.tcp_listen_autobind_possible && host.claims.seccomp_refuses.is_empty());
    }

    #[test]
    fn claims_serialize_with_stable_names() {
        let r = report(false, Some(vec![443]), NetFilter::TcpPorts, Some(6));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["claims"]["network"], "tcp-ports");
        assert_eq!(v["claims"]["seccomp_refuses"][0], "non-stream-sockets");
        assert_eq!(v["claims"]["tcp_listen_autobind_possible"], true);
        assert_eq!(v["claims"]["landlock"]["abi"], 6);
    }
}
