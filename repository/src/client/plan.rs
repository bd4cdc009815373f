//! Updates: what each app installed by name would get from its remote and channel, and why
//! ([`Client::check_updates`], for `capsa update --check`), then the bundle file of one plan
//! built from what changed ([`Client::prepare_update`]).
//!
//! A lower release than the one installed (or than the app's floor) is a downgrade, refused
//! without `allow_downgrade`, except when the signed channel pulls the installed release back
//! (its rollout halted or narrowed, or it was yanked): that is [`Action::PulledBack`].

use serde::Serialize;

use super::assemble::{assemble, fetch_parts, Ctx, Fill};
use super::error::ClientError;
use super::install::{publisher, Prepared};
use super::resolve::{app_doc, pulled_back, release};
use super::update::prepare_layers;
use super::{files, origin, remote, storeside, trust, Client, Why};
use crate::meta::{AppDoc, ReleaseDoc};

/// What an update of one app would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The channel's choice is installed.
    UpToDate,
    /// A newer release.
    Update,
    /// An older release, because the publisher pulled the installed one back.
    PulledBack,
    /// An older release for no such reason: refused without `allow_downgrade`.
    Downgrade,
    /// The release the user rolled back from: not brought back by `update`.
    Held,
}

/// One app's update plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub app: String,
    pub remote: String,
    pub channel: String,
    pub key_id: String,
    /// The installed release's seq and version, when the document lists it.
    pub installed: Option<(u64, String)>,
    /// The release the channel gives this client, and why.
    pub release: ReleaseDoc,
    pub why: Why,
    pub action: Action,
    pub doc: AppDoc,
}

impl Client {
    /// The plan of each app in `apps` (every app installed by name when empty).
    pub fn check_updates(&mut self, apps: &[String]) -> Vec<Result<Plan, ClientError>> {
        let apps = match apps {
            [] => match origin::apps(&self.dirs) {
                Ok(a) => a,
                Err(e) => return vec![Err(e)],
            },
            some => some.to_vec(),
        };
        apps.iter().map(|a| self.plan(a)).collect()
    }

    fn plan(&mut self, app: &str) -> Result<Plan, ClientError> {
        let o = origin::load(&self.dirs, app)?
            .ok_or_else(|| ClientError::NoOrigin { app: app.into() })?;
        let r = remote::get(&self.dirs, &o.remote)?;
        if r.key_id() != o.key_id {
            return Err(ClientError::KeyChanged {
                app: app.into(),
                key: r.key_id(),
                remote: r.name,
                origin_key: o.key_id,
            });
        }
        let (current, _) = storeside::current(&self.store, app)
            .ok_or_else(|| store::StoreError::NotInstalled(app.into()))?;
        let client_id = self.client_id()?;
        let dirs = self.dirs.clone();
        let s = self.session(&o.remote)?;
        let doc = app_doc(&dirs, &o.remote, s.source.as_ref(), &s.index, app)?;
        let (rel, why) = release(&o.remote, &doc, &o.channel, &client_id)?;
        let installed = doc
            .releases
            .iter()
            .find(|r| r.manifest == current)
            .map(|r| (r.seq, r.version.clone()));
        let floor = trust::floor(&dirs, &o.key_id, app)?.unwrap_or(0);
        let before = installed.as_ref().map_or(o.seq, |i| i.0).max(floor);
        let action = if rel.manifest == current {
            Action::UpToDate
        } else if o.held == Some(rel.seq) {
            Action::Held
        } else if rel.seq >= before {
            Action::Update
        } else if pulled_back(&doc, &o.channel, before, &why) {
            Action::PulledBack
        } else {
            Action::Downgrade
        };
        Ok(Plan {
            app: app.into(),
            remote: o.remote,
            channel: o.channel,
            key_id: o.key_id,
            installed,
            release: rel.clone(),
            why,
            action,
            doc: doc.clone(),
        })
    }

    /// The bundle file of `plan`, fetching only what the store lacks: layers it has sealed,
    /// or can build from installed files and fetched objects, are holes in the file.
    pub fn prepare_update(
        &mut self,
        plan: &Plan,
        allow_downgrade: bool,
    ) -> Result<Prepared, ClientError> {
        match plan.action {
            Action::UpToDate | Action::Held => {
                return Err(ClientError::UpToDate {
                    app: plan.app.clone(),
                })
            }
            Action::Downgrade if !allow_downgrade => {
                return Err(ClientError::Downgrade {
                    app: plan.app.clone(),
                    chosen: plan.release.version.clone(),
                    chosen_seq: plan.release.seq,
                    installed_seq: plan.installed.as_ref().map_or(0, |i| i.0),
                })
            }
            _ => {}
        }
        let downloads = self.dirs.downloads();
        files::private_dir(&downloads)?;
        let store = self.store.clone();
        let s = self.session(&plan.remote)?;
        let src = s.source.as_ref();
        let publisher = publisher(&plan.remote, &plan.doc, &plan.release)?;
        let ctx = Ctx {
            remote: &plan.remote,
            app: &plan.app,
            release: &plan.release,
        };
        let parts = fetch_parts(src, &ctx, &publisher)?;
        let (mut fills, delta) = prepare_layers(src, &ctx, &parts, &store, &downloads)?;
        let bundle_path = assemble(src, &ctx, &parts, &downloads, &mut |e| {
            fills.remove(&e.digest).unwrap_or(Fill::Fetch)
        })?;
        Ok(Prepared {
            bundle_path,
            manifest: parts.manifest,
            doc: plan.doc.clone(),
            release: plan.release.clone(),
            why: plan.why,
            remote: plan.remote.clone(),
            channel: plan.channel.clone(),
            key_id: plan.key_id.clone(),
            publisher,
            delta: Some(delta),
        })
    }
}
