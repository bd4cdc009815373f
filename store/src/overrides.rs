//! Per-user permission overrides (like `flatpak override`): `overrides/<id>@<publisher>.json`
//! in the store, outside anything the sandbox can write, one policy level ([`Changes`]) per
//! app identity. They survive reinstalls and updates. What `capsa info` shows as effective is
//! computed by the same [`userdata::policy::merge`] that `capsa run` enforces.

use std::fs;
use std::path::PathBuf;

use userdata::policy::{Changes, Grants, Key, Permission};
use userdata::Identity;

use crate::error::StoreError;
use crate::layout::{write_atomic, Layout};

/// The overrides file of `who`.
pub fn path(layout: &Layout, who: &Identity) -> PathBuf {
    layout
        .root
        .join("overrides")
        .join(format!("{}.json", who.dir_name()))
}

/// The stored overrides (none when absent).
pub fn load(layout: &Layout, who: &Identity) -> Result<Changes, StoreError> {
    let p = path(layout, who);
    match fs::read(&p) {
        Ok(b) if b.len() < 1 << 20 => serde_json::from_slice(&b).map_err(|e| {
            StoreError::Invalid(format!(
                "{}: {e}: fix it, or run `capsa override {} --reset`",
                p.display(),
                who.id
            ))
        }),
        Ok(_) => Err(StoreError::Invalid(format!("{} is too large", p.display()))),
        Err(_) => Ok(Changes::default()),
    }
}

/// Adds `allow` and `deny` as a later level on top of what is stored, and saves the result.
pub fn change(
    layout: &Layout,
    who: &Identity,
    allow: &[Permission],
    deny: &[Key],
) -> Result<Changes, StoreError> {
    let later = Changes {
        allow: allow.to_vec(),
        deny: deny.iter().cloned().collect(),
    };
    let s = load(layout, who)?.then(&later);
    write_atomic(
        &path(layout, who),
        &serde_json::to_vec_pretty(&s).expect("serializes"),
        0o600,
    )?;
    Ok(s)
}

/// Removes every override.
pub fn reset(layout: &Layout, who: &Identity) -> Result<(), StoreError> {
    let _ = fs::remove_file(path(layout, who));
    Ok(())
}

/// The grants a run of an installed app gets: the manifest's (consented at install), the
/// stored overrides, then the run's own level.
pub fn effective(manifest: &[Permission], stored: &Changes, run: &Changes) -> Grants {
    userdata::merge(manifest, &[stored, run])
}
