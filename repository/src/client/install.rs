//! Search and install by name: find the app in the remotes' checked indexes, fetch and check
//! its document, let the channel choose (with this client's id), refuse a downgrade below
//! what was installed before, then fetch and check the release's bundle file.

use bundle_format::{Manifest, PublicKey};
use serde::Serialize;
use tempfile::TempPath;

use super::assemble::{assemble, fetch_parts, Ctx, Fill};
use super::error::{ClientError, ReleaseProblem};
use super::resolve::{app_doc, pulled_back, release};
use super::update::Delta;
use super::{origin, remote, storeside, trust, Client, Why, DEFAULT_CHANNEL};
use crate::meta::choose::choose;
use crate::meta::{AppDoc, ReleaseDoc};

/// What to install.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The remote; by default the one the app came from, else the only one offering it.
    pub remote: Option<String>,
    /// The channel; by default the one the app follows, else [`DEFAULT_CHANNEL`].
    pub channel: Option<String>,
    /// Install a release older than the one installed before.
    pub allow_downgrade: bool,
}

/// A bundle file ready for `store::install`, with what it was chosen from.
#[derive(Debug)]
pub struct Prepared {
    /// The bundle file (deleted when dropped).
    pub bundle_path: TempPath,
    pub manifest: Manifest,
    pub doc: AppDoc,
    pub release: ReleaseDoc,
    pub why: Why,
    pub remote: String,
    pub channel: String,
    /// The remote's pinned key's id.
    pub key_id: String,
    /// The app's publisher: the bundle is signed by it; pass it to `store::install` as the
    /// trusted key.
    pub publisher: PublicKey,
    /// For an update: what was reused, built and fetched (the file then has holes where the
    /// store's sealed layers go).
    pub delta: Option<Delta>,
}

/// One app found by [`Client::search`]. Strings are the repository's: show them through
/// [`super::display`].
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub remote: String,
    pub app: String,
    pub name: String,
    pub summary: String,
    /// What the default channel gives this client, if anything.
    pub version: Option<String>,
    pub channels: Vec<String>,
    pub permissions: Vec<String>,
}

/// The hits, and the remotes that could not be searched.
#[derive(Debug, Default)]
pub struct Search {
    pub hits: Vec<Hit>,
    pub failed: Vec<ClientError>,
}

fn matches(doc: &AppDoc, term: &str) -> bool {
    let term = term.to_lowercase();
    [&doc.app, &doc.name, &doc.summary]
        .iter()
        .any(|s| s.to_lowercase().contains(&term))
}

impl Client {
    /// Apps whose id, name or summary contains `term` (any case), in every remote.
    pub fn search(&mut self, term: &str) -> Search {
        let mut out = Search::default();
        let remotes = match remote::list(&self.dirs) {
            Ok(r) if r.is_empty() => vec![Err(ClientError::NoRemotes)],
            Ok(r) => r.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        let client_id = match self.client_id() {
            Ok(id) => id,
            Err(e) => {
                out.failed.push(e);
                return out;
            }
        };
        for r in remotes {
            match r.and_then(|r| self.search_remote(&r.name, term, &client_id)) {
                Ok(hits) => out.hits.extend(hits),
                Err(e) => out.failed.push(e),
            }
        }
        out
    }

    fn search_remote(
        &mut self,
        name: &str,
        term: &str,
        client_id: &str,
    ) -> Result<Vec<Hit>, ClientError> {
        let dirs = self.dirs.clone();
        let s = self.session(name)?;
        let mut hits = Vec::new();
        for app in s.index.apps.keys() {
            let doc = app_doc(&dirs, name, s.source.as_ref(), &s.index, app)?;
            if !matches(&doc, term) {
                continue;
            }
            let offered = choose(&doc, DEFAULT_CHANNEL, client_id).map(|(r, _)| r);
            hits.push(Hit {
                remote: name.into(),
                app: app.clone(),
                version: offered.map(|r| r.version.clone()),
                permissions: offered.map(|r| r.permissions.clone()).unwrap_or_default(),
                channels: doc.channels.keys().cloned().collect(),
                name: doc.name,
                summary: doc.summary,
            });
        }
        Ok(hits)
    }

    /// The remote to install `app` from: the one asked for, else the app's origin, else the
    /// only remote whose index offers it.
    fn pick_remote(&mut self, app: &str, req: &Request) -> Result<String, ClientError> {
        if let Some(r) = &req.remote {
            return Ok(r.clone());
        }
        if let Some(o) = origin::load(&self.dirs, app)? {
            if remote::get(&self.dirs, &o.remote).is_ok() {
                return Ok(o.remote);
            }
        }
        let remotes = remote::list(&self.dirs)?;
        if remotes.is_empty() {
            return Err(ClientError::NoRemotes);
        }
        let (mut offering, mut first_err) = (Vec::new(), None);
        for r in remotes {
            match self.session(&r.name) {
                Ok(s) if s.index.apps.contains_key(app) => offering.push(r.name),
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (offering.len(), first_err) {
            (1, _) => Ok(offering.remove(0)),
            (0, Some(e)) => Err(e),
            (0, None) => Err(ClientError::NoApp { app: app.into() }),
            _ => Err(ClientError::Ambiguous {
                app: app.into(),
                remotes: offering.join(", "),
            }),
        }
    }

    /// Chooses `app`'s release and fetches its bundle file, checked (see the module docs),
    /// less the layers the store already has sealed. The caller installs it with `store::install`, then calls
    /// [`Client::record_installed`].
    pub fn prepare_install(&mut self, app: &str, req: &Request) -> Result<Prepared, ClientError> {
        let name = self.pick_remote(app, req)?;
        let origin = origin::load(&self.dirs, app)?.filter(|o| o.remote == name);
        let channel = req
            .channel
            .clone()
            .or(origin.map(|o| o.channel))
            .unwrap_or_else(|| DEFAULT_CHANNEL.into());
        let client_id = self.client_id()?;
        let dirs = self.dirs.clone();
        let s = self.session(&name)?;
        let key_id = s.remote.key_id();
        let doc = app_doc(&dirs, &name, s.source.as_ref(), &s.index, app)?;
        let (rel, why) = release(&name, &doc, &channel, &client_id)?;
        let installed = storeside::current(&self.store, app)
            .and_then(|(d, _)| doc.releases.iter().find(|r| r.manifest == d).map(|r| r.seq));
        let floor = trust::floor(&dirs, &key_id, app)?;
        if let Some(before) = floor.max(installed) {
            if rel.seq < before
                && !req.allow_downgrade
                && !pulled_back(&doc, &channel, before, &why)
            {
                return Err(ClientError::Downgrade {
                    app: app.into(),
                    chosen: rel.version.clone(),
                    chosen_seq: rel.seq,
                    installed_seq: before,
                });
            }
        }
        let (release, why) = (rel.clone(), why);
        let publisher = publisher(&name, &doc, &release)?;
        let src = self.sessions[&name].source.as_ref();
        let ctx = Ctx {
            remote: &name,
            app,
            release: &release,
        };
        let parts = fetch_parts(src, &ctx, &publisher)?;
        let downloads = dirs.downloads();
        super::files::private_dir(&downloads)?;
        // Layers the store has sealed already (shared with installed apps) are not fetched:
        // holes, which `store::install` never reads.
        let sealed: Vec<_> = parts
            .manifest
            .layers
            .iter()
            .filter(|l| storeside::layer_sealed(&self.store, l))
            .map(|l| l.digest)
            .collect();
        let bundle_path = assemble(src, &ctx, &parts, &downloads, &mut |e| match sealed
            .contains(&e.digest)
        {
            true => Fill::Hole,
            false => Fill::Fetch,
        })?;
        Ok(Prepared {
            bundle_path,
            manifest: parts.manifest,
            doc,
            release,
            why,
            remote: name,
            channel,
            key_id,
            publisher,
            delta: None,
        })
    }
}

/// The document's publisher key (validated on decode).
pub(super) fn publisher(
    remote: &str,
    doc: &AppDoc,
    release: &ReleaseDoc,
) -> Result<PublicKey, ClientError> {
    doc.publisher_key().ok_or_else(|| ClientError::Release {
        remote: remote.into(),
        app: doc.app.clone(),
        version: release.version.clone(),
        problem: Box::new(ReleaseProblem::Publisher {
            key_id: String::new(),
        }),
    })
}
