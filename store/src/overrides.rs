//! Per-user permission overrides (like `flatpak override`): `overrides/<app-id>.json` in the
//! store, outside anything the sandbox can write. They survive reinstalls and updates, and are
//! applied before the per-run `--allow`/`--deny`. What `capsa info` shows as effective is
//! computed by the same `SandboxSpec` that `capsa run` enforces.

use std::fs;
use std::path::PathBuf;

use bundle_format::Manifest;
use launcher::spec::{Overrides, SandboxSpec};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::layout::{write_atomic, Layout};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

/// The overrides file of `id` (validated by the callers through `Release::current`).
pub fn path(layout: &Layout, id: &str) -> PathBuf {
    layout.root.join("overrides").join(format!("{id}.json"))
}

/// The stored overrides (none when absent).
pub fn load(layout: &Layout, id: &str) -> Result<Stored, StoreError> {
    crate::layout::check_id(id)?;
    let p = path(layout, id);
    match fs::read(&p) {
        Ok(b) if b.len() < 1 << 20 => serde_json::from_slice(&b)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", p.display()))),
        Ok(_) => Err(StoreError::Invalid(format!("{} is too large", p.display()))),
        Err(_) => Ok(Stored::default()),
    }
}

/// Adds `allow` and `deny` (a later allow of a denied permission lifts the deny, and vice
/// versa), checks the result against the manifest, and saves it.
pub fn change(
    layout: &Layout,
    id: &str,
    m: &Manifest,
    allow: &[String],
    deny: &[String],
) -> Result<Stored, StoreError> {
    let mut s = load(layout, id)?;
    for a in allow {
        s.deny
            .retain(|d| d != a && a.split(':').next() != Some(d.as_str()));
        if !s.allow.contains(a) {
            s.allow.push(a.clone());
        }
    }
    for d in deny {
        s.allow.retain(|a| {
            a != d
                && a.split(':').next() != Some(d.as_str())
                && !(d == "network" && a.starts_with("network"))
        });
        if !s.deny.contains(d) {
            s.deny.push(d.clone());
        }
    }
    effective(m, &s, &Overrides::default())?;
    write_atomic(
        &path(layout, id),
        &serde_json::to_vec_pretty(&s).expect("serializes"),
        0o600,
    )?;
    Ok(s)
}

/// Removes every override.
pub fn reset(layout: &Layout, id: &str) -> Result<(), StoreError> {
    let _ = fs::remove_file(path(layout, id));
    Ok(())
}

/// The stored overrides combined with a run's own (the run's come last and win).
pub fn combine(s: &Stored, run: &Overrides) -> Overrides {
    let mut o = run.clone();
    o.allow = s
        .allow
        .iter()
        .chain(&run.allow)
        .filter(|a| !run.deny.contains(a))
        .cloned()
        .collect();
    o.deny = s
        .deny
        .iter()
        .filter(|d| !run.allow.contains(d))
        .chain(&run.deny)
        .cloned()
        .collect();
    o
}

/// The sandbox spec a run of `m` with these overrides enforces.
pub fn effective(m: &Manifest, s: &Stored, run: &Overrides) -> Result<SandboxSpec, StoreError> {
    Ok(SandboxSpec::new(m, &combine(s, run))?)
}
