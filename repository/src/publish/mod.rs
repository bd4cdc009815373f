//! The publisher side: `capsa repo init|add|promote|rollout|yank|refresh|gc|rotate-key|check`.
//!
//! A repository is a directory of plain files (see [`crate::layout`] and the design in
//! `bundle-format/SPEC.md`). Every changing command holds the publisher lock
//! (`.capsa-lock`, an `flock`), writes each file atomically ([`fsio`]), and publishes in one
//! order: objects, blobs, app documents, roots, the index's copy in `.capsa-history/`, then
//! `index.json` last and the catalog `index.html`. A publisher killed at any point leaves the
//! previous `index.json` in place, and it names only files that exist.
//!
//! Publisher-side files (never needed by clients, harmless if served; a web server need not
//! serve dot files): `.capsa-lock`, `.capsa-history/` (`repo gc`'s memory of the indexes it
//! wrote), `.capsa-config.json` (the path of the signing key last used, the catalog's remote
//! name and URL).

mod add;
mod channels;
mod check;
mod error;
pub mod fsio;
mod gc;
mod keys;
mod manage;
mod objects;
pub mod parts;
mod reach;
mod state;

pub use add::{add, AddOpts, Added};
pub use channels::RolloutChange;
pub use check::{check, Report};
pub use error::PublishError;
pub use gc::{gc, GcReport, DEFAULT_GRACE_DAYS};
pub use keys::{init, rotate_key, InitOpts, Rotated};
pub use manage::{promote, refresh, rollout, yank, Changed};
pub use objects::ObjectStats;
pub use parts::{Parts, PartsError};
pub use state::{SignOpts, CONFIG, DEFAULT_EXPIRES_DAYS, DEFAULT_ROOT_EXPIRES_DAYS, HISTORY};

use crate::catalog::{self, Catalog, CatalogApp, Icon};

/// An error and its sources on one line: `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The remote name the catalog suggests: the config's, else the directory's name when it is
/// a plain lowercase word, else `repo`.
fn remote_name(repo: &state::Repo) -> String {
    if let Some(n) = &repo.config.name {
        return n.clone();
    }
    let dir = repo
        .dir
        .path()
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    match dir {
        Some(n)
            if !n.is_empty()
                && n.len() <= 32
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            n
        }
        _ => "repo".into(),
    }
}

/// Renders the catalog page of the repository's current index.
pub(crate) fn catalog_page(repo: &state::Repo) -> Result<String, PublishError> {
    let docs = repo.apps()?;
    let mut apps = Vec::new();
    for (id, doc) in &docs {
        let icon = match &doc.icon {
            Some(r) => reach::read_blob(&repo.dir, r, catalog::MAX_ICON)
                .ok()
                .and_then(Icon::sniff),
            None => None,
        };
        apps.push(CatalogApp {
            doc,
            doc_blob: &repo.index.apps[id],
            icon,
        });
    }
    let name = remote_name(repo);
    Ok(catalog::render(&Catalog {
        name: &name,
        url: repo.config.url.as_deref(),
        keys: &repo.root.signers.keys,
        index_version: repo.index.version,
        index_expires: repo.index.expires,
        apps,
    }))
}
