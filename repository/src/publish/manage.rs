//! `repo promote`, `repo rollout`, `repo yank` and `repo refresh`: each changes at most one app
//! document and publishes a new index (version + 1, fresh expiry) and catalog.

use std::path::Path;

use super::add::remember_key;
use super::channels::{self, RolloutChange};
use super::error::{meta_err, PublishError};
use super::state::{Repo, SignOpts};
use crate::meta::{check_channel_name, AppDoc};

/// What a channel command did.
#[derive(Debug, Clone)]
pub struct Changed {
    pub app: String,
    pub index_version: u64,
    /// Channels left with nothing to give (after a yank).
    pub empty_channels: Vec<String>,
}

/// Opens the repository, edits `app`'s document with `edit`, and publishes it.
fn edit_app(
    dir: &Path,
    app: &str,
    sign: &SignOpts,
    edit: impl FnOnce(&mut AppDoc) -> Result<Vec<String>, PublishError>,
) -> Result<Changed, PublishError> {
    let mut repo = Repo::open(dir)?;
    let (key, _) = repo.signer(sign)?;
    let mut doc = repo.existing_app(app)?;
    let empty_channels = edit(&mut doc)?;
    let index_version = repo.commit(vec![doc], &[&key], sign.expires_days)?;
    remember_key(&mut repo, sign)?;
    Ok(Changed {
        app: app.to_owned(),
        index_version,
        empty_channels,
    })
}

/// `repo promote DIR APP VERSION --channel C`.
pub fn promote(
    dir: &Path,
    app: &str,
    version: &str,
    channel: &str,
    sign: &SignOpts,
) -> Result<Changed, PublishError> {
    check_channel_name(channel).map_err(meta_err("--channel"))?;
    edit_app(dir, app, sign, |d| {
        channels::promote(d, version, channel)?;
        Ok(Vec::new())
    })
}

/// `repo rollout DIR APP --channel C (--percent N | --halt)`.
pub fn rollout(
    dir: &Path,
    app: &str,
    channel: &str,
    change: RolloutChange,
    sign: &SignOpts,
) -> Result<Changed, PublishError> {
    edit_app(dir, app, sign, |d| {
        channels::rollout(d, channel, change)?;
        Ok(Vec::new())
    })
}

/// `repo yank DIR APP VERSION --reason TEXT`.
pub fn yank(
    dir: &Path,
    app: &str,
    version: &str,
    reason: &str,
    sign: &SignOpts,
) -> Result<Changed, PublishError> {
    edit_app(dir, app, sign, |d| channels::yank(d, version, reason))
}

/// `repo refresh DIR`: the same index, re-signed with a new version and expiry.
pub fn refresh(dir: &Path, sign: &SignOpts) -> Result<u64, PublishError> {
    let mut repo = Repo::open(dir)?;
    let (key, _) = repo.signer(sign)?;
    let v = repo.commit(Vec::new(), &[&key], sign.expires_days)?;
    remember_key(&mut repo, sign)?;
    Ok(v)
}
