//! The client of signed static repositories: remotes, trust, search, install by name, and
//! updates that fetch only what changed.
//!
//! A [`Client`] holds the user's directories ([`Dirs`]), the store it installs into and how to
//! reach a remote ([`Connect`]: [`connect_dirs`] for `file://` remotes; the network fetcher
//! for HTTP(S), wired by the caller). Per command it refreshes each remote it touches once
//! ([`trust::refresh`]: root walk, index signature, rollback and freeze checks) and keeps the
//! session. It never installs: [`Client::prepare_install`] and [`Client::prepare_update`]
//! return a [`Prepared`] bundle file, checked against the signed metadata, that the caller
//! installs with the ordinary `store::install` (same consent dialog, same checks, with
//! [`Prepared::publisher`] as the trusted key) and then records with
//! [`Client::record_installed`].
//!
//! Invariants: every byte from a repository is checked against signed metadata before use
//! (see each module); strings from a repository reach a person only through
//! [`text::display`]; the client's own state (trust, origins) moves forward only after the
//! checks passed.

mod assemble;
pub mod error;
pub mod files;
mod install;
pub mod net;
pub mod origin;
mod plan;
pub mod remote;
mod resolve;
pub mod source;
pub mod storeside;
pub mod text;
pub mod trust;
mod update;

use std::collections::BTreeMap;

pub use crate::meta::choose::Why;
pub use error::{ClientError, ReleaseProblem};
pub use files::Dirs;
pub use install::{Hit, Prepared, Request, Search};
pub use plan::{Action, Plan};
pub use remote::Remote;
pub use source::{DirSource, Source};
pub use text::display;
pub use update::Delta;

use crate::meta::Index;
use files::{read_small, write_atomic};

/// The channel followed when none is named.
pub const DEFAULT_CHANNEL: &str = "stable";

/// How to reach a remote: a [`Source`] over its URL and mirrors.
pub type Connect = Box<dyn Fn(&Remote) -> Result<Box<dyn Source>, ClientError>>;

/// A [`Connect`] for `file://` remotes (and `file://` mirrors); any other URL is
/// [`ClientError::Unsupported`].
pub fn connect_dirs(remote: &Remote) -> Result<Box<dyn Source>, ClientError> {
    match DirSource::from_urls(&remote.name, &remote.urls()) {
        Some(s) => Ok(Box::new(s)),
        None => Err(ClientError::Unsupported {
            remote: remote.name.clone(),
            url: remote.url.clone(),
        }),
    }
}

/// One remote, refreshed in this command.
struct Session {
    remote: Remote,
    source: Box<dyn Source>,
    index: Index,
}

/// The client: see the module docs.
pub struct Client {
    dirs: Dirs,
    store: store::Layout,
    connect: Connect,
    sessions: BTreeMap<String, Session>,
}

impl Client {
    pub fn new(dirs: Dirs, store: store::Layout, connect: Connect) -> Self {
        Self {
            dirs,
            store,
            connect,
            sessions: BTreeMap::new(),
        }
    }

    /// The user's directories and store.
    pub fn user(connect: Connect) -> Self {
        Self::new(Dirs::user(), store::Layout::user(), connect)
    }

    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    pub fn store(&self) -> &store::Layout {
        &self.store
    }

    /// Bytes received from every remote in this command so far.
    pub fn bytes_received(&self) -> u64 {
        self.sessions
            .values()
            .map(|s| s.source.bytes_received())
            .sum()
    }

    /// The remote `name`, refreshed once per command.
    fn session(&mut self, name: &str) -> Result<&Session, ClientError> {
        if !self.sessions.contains_key(name) {
            let remote = remote::get(&self.dirs, name)?;
            let source = (self.connect)(&remote)?;
            let index = trust::refresh(&self.dirs, &remote, source.as_ref())?;
            self.sessions.insert(
                name.into(),
                Session {
                    remote,
                    source,
                    index,
                },
            );
        }
        Ok(&self.sessions[name])
    }

    /// The checked index of the remote `name` (refreshed once per command).
    pub fn index(&mut self, name: &str) -> Result<&Index, ClientError> {
        Ok(&self.session(name)?.index)
    }

    /// This client's stable random id (`$XDG_STATE_HOME/capsa/client-id`, 32 hex digits),
    /// made on first use: what staged rollouts bucket it by. Two commands making it at once
    /// agree on the first one written.
    pub fn client_id(&self) -> Result<String, ClientError> {
        let p = self.dirs.state.join("client-id");
        let read = || -> Result<Option<String>, ClientError> {
            let Some(b) = read_small(&p, 64)? else {
                return Ok(None);
            };
            let s = String::from_utf8_lossy(&b).trim_end().to_ascii_lowercase();
            let valid = s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
            Ok(valid.then_some(s))
        };
        if let Some(id) = read()? {
            return Ok(id);
        }
        let mut raw = [0u8; 16];
        getrandom::getrandom(&mut raw).map_err(ClientError::Random)?;
        let id = hex::encode(raw);
        let line = format!("{id}\n");
        if std::fs::symlink_metadata(&p).is_ok() {
            // Damaged: replaced.
            write_atomic(&p, line.as_bytes())?;
            return Ok(id);
        }
        files::private_dir(&self.dirs.state)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dirs.state)
            .map_err(error::write_err(&self.dirs.state))?;
        std::io::Write::write_all(&mut tmp, line.as_bytes()).map_err(error::write_err(&p))?;
        tmp.as_file().sync_all().map_err(error::write_err(&p))?;
        match tmp.persist_noclobber(&p) {
            Ok(_) => Ok(id),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                read()?.ok_or_else(|| ClientError::BadLocal {
                    path: p.clone(),
                    why: "not a client id".into(),
                })
            }
            Err(e) => Err(error::write_err(&p)(e.error)),
        }
    }

    /// Records that the store installed `p`: its origin (remote, channel, key, release) and
    /// the app's downgrade floor in the repository's trust state.
    pub fn record_installed(&self, p: &Prepared) -> Result<(), ClientError> {
        let app = &p.manifest.id;
        origin::save(
            &self.dirs,
            app,
            &origin::Origin {
                remote: p.remote.clone(),
                channel: p.channel.clone(),
                key_id: p.key_id.clone(),
                seq: p.release.seq,
                held: None,
            },
        )?;
        trust::set_floor(&self.dirs, &p.key_id, app, p.release.seq)
    }
}
