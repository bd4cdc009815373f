//! From a refreshed index to a release: the app's document (fetched by the digest and size the
//! signed index names, or read from the cache of verified documents, and checked again), its
//! checks, and the channel's choice for this client.
//!
//! Invariants: a document is used only when its bytes hash to the index's digest, have its
//! size, decode and validate, and name the app whose entry led to it (mix-and-match). The
//! cache is content-addressed and re-hashed on every read, so it is never trusted.

use bundle_format::{BlobRef, Digest};

use super::error::ClientError;
use super::files::{read_small, write_atomic, Dirs};
use super::source::Source;
use crate::layout;
use crate::meta::choose::{choose, Why};
use crate::meta::{open_app_doc, AppDoc, Index, ReleaseDoc, MAX_APP_DOC};

/// The checked document of `app` in `index` of the remote `remote`.
pub fn app_doc(
    dirs: &Dirs,
    remote: &str,
    src: &dyn Source,
    index: &Index,
    app: &str,
) -> Result<AppDoc, ClientError> {
    let entry = index
        .apps
        .get(app)
        .ok_or_else(|| ClientError::NotInRemote {
            remote: remote.into(),
            app: app.into(),
        })?;
    let bytes = doc_bytes(dirs, remote, src, entry)?;
    let doc = open_app_doc(&bytes).map_err(|source| ClientError::AppDoc {
        remote: remote.into(),
        app: app.into(),
        source,
    })?;
    if doc.app != app {
        return Err(ClientError::MixAndMatch {
            remote: remote.into(),
            app: app.into(),
            got: doc.app,
        });
    }
    Ok(doc)
}

fn matches(bytes: &[u8], r: &BlobRef) -> bool {
    bytes.len() as u64 == r.size && Digest::of(bytes) == r.digest
}

/// The bytes of the blob `r` of at most [`MAX_APP_DOC`] bytes: cached, or fetched and cached.
fn doc_bytes(
    dirs: &Dirs,
    remote: &str,
    src: &dyn Source,
    r: &BlobRef,
) -> Result<Vec<u8>, ClientError> {
    let cached = dirs.docs().join(r.digest.hex());
    if let Ok(Some(b)) = read_small(&cached, MAX_APP_DOC) {
        if matches(&b, r) {
            return Ok(b);
        }
    }
    let file = layout::blob(&r.digest);
    let bytes = fetch_exact(remote, src, &file, r, MAX_APP_DOC)?;
    // A cache that cannot be written costs a download next time, nothing else.
    let _ = write_atomic(&cached, &bytes);
    Ok(bytes)
}

/// A small blob, in memory: at most `cap` bytes, exactly `r.size` hashing to `r.digest`.
pub(crate) fn fetch_exact(
    remote: &str,
    src: &dyn Source,
    file: &str,
    r: &BlobRef,
    cap: u64,
) -> Result<Vec<u8>, ClientError> {
    if r.size > cap {
        return Err(ClientError::TooLarge {
            remote: remote.into(),
            file: file.into(),
            cap,
        });
    }
    let bytes = src
        .meta(file, r.size)?
        .ok_or_else(|| ClientError::Missing {
            remote: remote.into(),
            file: file.into(),
        })?;
    if !matches(&bytes, r) {
        return Err(ClientError::Digest {
            remote: remote.into(),
            file: file.into(),
            expected: r.digest,
            size: r.size,
        });
    }
    Ok(bytes)
}

/// What `channel` of `doc` gives this client, and why.
pub fn release<'a>(
    remote: &str,
    doc: &'a AppDoc,
    channel: &str,
    client_id: &str,
) -> Result<(&'a ReleaseDoc, Why), ClientError> {
    if !doc.channels.contains_key(channel) {
        return Err(ClientError::NoChannel {
            remote: remote.into(),
            app: doc.app.clone(),
            channel: channel.into(),
            channels: doc.channels.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    choose(doc, channel, client_id).ok_or_else(|| ClientError::NothingOffered {
        remote: remote.into(),
        app: doc.app.clone(),
        channel: channel.into(),
    })
}

/// Whether going from release `installed` down to the channel's choice is the publisher
/// pulling `installed` back (signed, current data): the channel's rollout of `installed` was
/// halted or narrowed, or `installed` was yanked. Any other lower choice is a downgrade.
pub fn pulled_back(doc: &AppDoc, channel: &str, installed: u64, why: &Why) -> bool {
    let Some(c) = doc.channels.get(channel) else {
        return false;
    };
    let yanked = doc.release(installed).is_some_and(|r| r.yanked.is_some());
    match why {
        Why::Halted | Why::OutsideRollout { .. } => c.release == installed,
        Why::Yanked => c.release == installed || yanked,
        Why::Channel | Why::InRollout { .. } => false,
    }
}
