//! Where each app installed by name came from: `$XDG_STATE_HOME/capsa/origins/<app>.json`,
//! `{"remote":..,"channel":..,"key_id":..,"seq":..,"held":..}`, written after the store
//! installed it (`held`: the release a rollback left, see [`hold`]).
//! `update` follows the same remote and channel, and refuses to follow a remote whose key is
//! no longer the one the app was installed under.
//!
//! Invariant: `<app>` is a checked app id before it names a file.

use std::fs;

use serde::{Deserialize, Serialize};

use super::error::{read_err, ClientError};
use super::files::{read_json, write_json, Dirs};
use crate::meta::{check_app_id, check_channel_name};

/// One app's origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    pub remote: String,
    pub channel: String,
    /// The id of the remote's pinned key at install time.
    pub key_id: String,
    /// The release installed.
    pub seq: u64,
    /// The release the user rolled back from: `update` does not bring it back (a newer one,
    /// or an install by name, does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<u64>,
}

fn path(dirs: &Dirs, app: &str) -> Result<std::path::PathBuf, ClientError> {
    check_app_id(app).map_err(|_| ClientError::NoApp { app: app.into() })?;
    Ok(dirs.origins().join(format!("{app}.json")))
}

/// The origin of `app`, if it was installed from a repository.
pub fn load(dirs: &Dirs, app: &str) -> Result<Option<Origin>, ClientError> {
    let p = path(dirs, app)?;
    let o: Option<Origin> = read_json(&p)?;
    if let Some(o) = &o {
        let sane = super::remote::check_name(&o.remote).is_ok()
            && check_channel_name(&o.channel).is_ok()
            && o.key_id.len() == 16
            && o.key_id.bytes().all(|b| b.is_ascii_hexdigit());
        if !sane {
            return Err(ClientError::BadLocal {
                path: p,
                why: "not an origin record".into(),
            });
        }
    }
    Ok(o)
}

pub fn save(dirs: &Dirs, app: &str, o: &Origin) -> Result<(), ClientError> {
    write_json(&path(dirs, app)?, o)
}

/// After `capsa rollback`: the release rolled back from is held back from `update`.
/// Nothing to do for an app not installed from a repository.
pub fn hold(dirs: &Dirs, app: &str) -> Result<(), ClientError> {
    if let Some(mut o) = load(dirs, app)? {
        o.held = Some(o.seq);
        save(dirs, app, &o)?;
    }
    Ok(())
}

/// Apps with an origin record, sorted.
pub fn apps(dirs: &Dirs) -> Result<Vec<String>, ClientError> {
    let dir = dirs.origins();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(&dir)(e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let name = e.map_err(read_err(&dir))?.file_name();
        if let Some(app) = name.to_string_lossy().strip_suffix(".json") {
            if check_app_id(app).is_ok() {
                out.push(app.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}
