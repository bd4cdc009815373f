//! The permission policy: one merge of the levels that decide what an app may use.
//!
//! Levels, in order: the manifest's grants, the user's consent (at install or first run),
//! the user's stored overrides (`capsa override`), and the run's own `--allow`/`--deny`. Each
//! level after the manifest is a [`Changes`]: its denies take every grant of that kind
//! ([`Key`]) away from all earlier levels, then its allows are added. So a later level always
//! wins over an earlier one, and one level can narrow a kind (`--deny network --allow
//! network=tcp:443`). The result is normalized to at most one grant per key: read-write beats
//! read-only, `network` beats `network=tcp:...`, port lists are joined.
//!
//! Everything here is typed: strings are parsed at the edge (the command line, stored files).

use std::collections::{BTreeMap, BTreeSet};

pub use bundle_format::permissions::{Device, FsTarget, Key, Permission, Socket};
use serde::{Deserialize, Serialize};

/// One level's allows and denies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    #[serde(default)]
    pub allow: Vec<Permission>,
    #[serde(default)]
    pub deny: BTreeSet<Key>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// This level followed by `later`, as one level: `merge(m, [a, b]) == merge(m, [a.then(b)])`.
    pub fn then(&self, later: &Changes) -> Changes {
        let mut out = self.clone();
        out.allow.retain(|p| !later.deny.contains(&p.key()));
        out.deny.extend(later.deny.iter().cloned());
        for p in &later.allow {
            if !out.allow.contains(p) {
                out.allow.push(p.clone());
            }
        }
        out
    }
}

/// The effective grants: at most one per key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(BTreeMap<Key, Permission>);

impl Grants {
    /// Normalizes a list of grants (the manifest's, or any other).
    pub fn from_list<'a>(list: impl IntoIterator<Item = &'a Permission>) -> Self {
        let mut g = Grants::default();
        for p in list {
            g.add(p);
        }
        g
    }

    fn add(&mut self, p: &Permission) {
        let joined = match (self.0.get(&p.key()), p) {
            (None, p) => p.clone(),
            (Some(Permission::Network), _) | (_, Permission::Network) => Permission::Network,
            (Some(Permission::NetworkTcp(a)), Permission::NetworkTcp(b)) => {
                let ports: BTreeSet<u16> = a.iter().chain(b).copied().collect();
                Permission::NetworkTcp(ports.into_iter().collect())
            }
            (
                Some(Permission::Filesystem { target, read_only }),
                Permission::Filesystem { read_only: r2, .. },
            ) => Permission::Filesystem {
                target: target.clone(),
                read_only: *read_only && *r2,
            },
            (Some(old), _) => old.clone(),
        };
        self.0.insert(p.key(), joined);
    }

    fn apply(&mut self, c: &Changes) {
        self.0.retain(|k, _| !c.deny.contains(k));
        for p in &c.allow {
            self.add(p);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.0.values()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn get(&self, k: &Key) -> Option<&Permission> {
        self.0.get(k)
    }
    pub fn has(&self, p: &Permission) -> bool {
        self.0.get(&p.key()) == Some(p)
    }
    /// Full network (the host's network namespace).
    pub fn network_all(&self) -> bool {
        self.get(&Key::Network) == Some(&Permission::Network)
    }
    /// TCP ports allowed when the network is granted by port.
    pub fn tcp_ports(&self) -> Option<&[u16]> {
        match self.get(&Key::Network) {
            Some(Permission::NetworkTcp(p)) => Some(p),
            _ => None,
        }
    }
    /// Whether the sandbox shares the host's network namespace.
    pub fn shares_network(&self) -> bool {
        self.get(&Key::Network).is_some()
    }
    /// The grants as a sorted list (canonical spelling via `Display`).
    pub fn to_vec(&self) -> Vec<Permission> {
        self.0.values().cloned().collect()
    }
    /// Grants in `self` that `earlier` does not hold (or holds weaker): what an update newly
    /// asks for.
    pub fn beyond(&self, earlier: &Grants) -> Vec<Permission> {
        self.iter()
            .filter(|p| {
                let mut both = earlier.clone();
                both.add(p);
                both != *earlier
            })
            .cloned()
            .collect()
    }
}

/// The one merge: the manifest's grants, then each level in order.
pub fn merge(manifest: &[Permission], levels: &[&Changes]) -> Grants {
    let mut g = Grants::from_list(manifest);
    for c in levels {
        g.apply(c);
    }
    g
}

#[cfg(test)]
mod tests;
