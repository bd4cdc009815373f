//! What each layer of the sandbox really enforces, for `capsa run --report`: rendered from the
//! plan (namespaces, root, mounts, rule sets), the seccomp policy, and what the kernel said
//! when the app's process applied Landlock ([`Outcome`]). Nothing here is claimed that the
//! plan does not do or the kernel did not confirm; [`Claims`] holds the same facts as data,
//! which the tests check against a probe inside the sandbox.

use std::path::PathBuf;

use serde::Serialize;

use crate::landlock::{Kernel, Missing, Outcome};
use crate::plan::{BindWhy, Fallback, Namespace, Note, Plan, RootMode, Step};
use crate::seccomp::SeccompPolicy;

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

/// The report's facts as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    pub network: Network,
    /// TCP connect allowed only to these ports, enforced by Landlock (`None`: not restricted
    /// by Landlock; with `Loopback` only the app's own loopback is reachable anyway).
    pub tcp_connect_only: Option<Vec<u16>>,
    /// No TCP listening socket can be bound (Landlock).
    pub tcp_bind_refused: bool,
    /// Abstract unix sockets of the host (and of other sandboxes) cannot be reached.
    pub abstract_unix_scoped: bool,
    /// Host paths visible inside, and whether read-only.
    pub host_paths: Vec<(PathBuf, bool)>,
    /// Whether the root keeps changes across runs.
    pub root_persistent: bool,
    pub landlock: Option<Outcome>,
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
            "TCP connect only to ports {ports:?} (53 for name resolution), no TCP bind"
        )),
        (Some(_), false) => parts.push("TCP ports NOT restricted (needs ABI 4)".into()),
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
        row(
            "capabilities",
            "none: bounding, permitted, effective, inheritable and ambient sets cleared".into(),
        );
        row(
            "no_new_privs",
            "set (setuid and file capabilities cannot raise privileges)".into(),
        );
        for n in &plan.notes {
            row(
                "note",
                match n {
                    Note::Missing { grant, path } => format!(
                        "{grant}: {} does not exist on the host, not exposed",
                        path.display()
                    ),
                    Note::NoDisplay => {
                        "socket=x11: DISPLAY is not set, so there is no display to give".into()
                    }
                },
            );
        }
        let tcp_rules = plan
            .landlock
            .tcp_connect
            .clone()
            .filter(|_| landlock.is_some_and(|o| o.holds(Missing::TcpRules)));
        let claims = Claims {
            network: if private_net {
                Network::Loopback
            } else if plan.landlock.tcp_connect.is_some() {
                Network::TcpPorts
            } else {
                Network::Host
            },
            tcp_bind_refused: tcp_rules.is_some(),
            tcp_connect_only: tcp_rules,
            abstract_unix_scoped: private_net
                || landlock.is_some_and(|o| plan.landlock.scope && o.holds(Missing::Scoping)),
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
        };
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
