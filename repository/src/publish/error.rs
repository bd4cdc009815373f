//! Why a publisher command failed. Variants are named for the failed operation or the refused
//! input; messages are lowercase, name the file or the app, and say what to do.

use std::io;
use std::path::PathBuf;

use crate::meta::MetaError;

/// Everything a `capsa repo` command can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{0} holds no repository (no root.json or index.json): make one with `capsa repo init`"
    )]
    NotARepository(PathBuf),
    #[error("{0} already holds a repository: choose another directory")]
    AlreadyARepository(PathBuf),
    #[error(
        "repository file {path} is damaged: {problem} (`capsa repo check` lists every problem)"
    )]
    Damaged { path: String, problem: String },
    #[error("{what}")]
    Meta {
        what: String,
        #[source]
        source: MetaError,
    },
    #[error("bundle {path} failed verification")]
    Bundle {
        path: PathBuf,
        #[source]
        source: bundle_format::Error,
    },
    #[error("cannot load the key {path}")]
    Key {
        path: PathBuf,
        #[source]
        source: bundle_format::sign::KeyError,
    },
    #[error("no signing key given: pass --key SECRETKEY (the repository remembers none)")]
    NoKey,
    #[error(
        "key {key_id} does not sign this repository (root {root} is signed by {signers}): pass the key of one of them"
    )]
    NotASigner {
        key_id: String,
        root: u64,
        signers: String,
    },
    #[error(
        "{path} is not signed: a repository publishes only signed bundles (pack it with `capsa pack --sign KEY`)"
    )]
    Unsigned { path: PathBuf },
    #[error(
        "{app} is published by key {publisher}, and this bundle is signed by {signers}: sign it with the publisher's key, or publish it under another app id"
    )]
    OtherPublisher {
        app: String,
        publisher: String,
        signers: String,
    },
    #[error("{app} {version} is already published: give the new release another version")]
    VersionPublished { app: String, version: String },
    #[error("{0} is not in this repository (see its index.html or `capsa repo check`)")]
    NoApp(String),
    #[error("{app} has no version {version}")]
    NoVersion { app: String, version: String },
    #[error("{app} has no channel {channel}")]
    NoChannel { app: String, channel: String },
    #[error("{app} {version} is yanked ({reason}): it cannot be promoted")]
    Yanked {
        app: String,
        version: String,
        reason: String,
    },
    #[error(
        "channel {channel} of {app} has no fallback release: a halt would leave its clients with nothing (promote another version first)"
    )]
    NoFallback { app: String, channel: String },
    #[error(
        "the bundle rebuilt from the repository's head, blobs and tail is not the file (sha256 {rebuilt}, the file {file}): the repository was not changed"
    )]
    Rebuild { rebuilt: String, file: String },
    #[error("cannot get random bytes for a rollout seed")]
    Random(#[source] getrandom::Error),
    #[error("the repository's index is at version {0}, the highest there can be")]
    IndexVersion(u64),
}

/// An `Io` error for `op` on `path`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> PublishError {
    let path = path.into();
    move |source| PublishError::Io { op, path, source }
}

/// A `Meta` error saying what was being read or written.
pub(crate) fn meta_err(what: impl Into<String>) -> impl FnOnce(MetaError) -> PublishError {
    let what = what.into();
    move |source| PublishError::Meta { what, source }
}
