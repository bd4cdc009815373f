//! The client's errors: one variant per failed check or operation, each naming the remote,
//! the file or the app, and saying what to do. Strings that came from a repository are never
//! put in a message unescaped: only ids (validated), digests, numbers and file names built by
//! [`crate::layout`] are.

use std::path::PathBuf;

use bundle_format::Digest;

use crate::meta::MetaError;

/// Why a release's bundle was refused (the typed reason inside [`ClientError::Release`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseProblem {
    #[error("its manifest's digest is {actual}, the signed app document says {expected} (mix-and-match)")]
    ManifestDigest { expected: Digest, actual: Digest },
    #[error("its manifest is the manifest of {got}, not of this app (mix-and-match)")]
    ManifestApp { got: String },
    #[error("its head and tail are not the parts of a bundle: {why}")]
    NotABundle { why: String },
    #[error("it is not signed by the app's publisher key {key_id}")]
    Publisher { key_id: String },
    #[error("the assembled file's sha256 is {actual}, the signed app document says {expected}")]
    Assembled { expected: Digest, actual: Digest },
}

/// Everything that can go wrong in the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("{name:?} is not a remote name: use 1 to 64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit")]
    RemoteName { name: String },
    #[error("remote {name} exists already: remove it first with capsa remote remove {name}")]
    RemoteExists { name: String },
    #[error(
        "no remote is named {name}: capsa remote list shows the remotes, capsa remote add adds one"
    )]
    NoRemote { name: String },
    #[error("no remote is configured: add one with capsa remote add NAME URL --key PUBKEY")]
    NoRemotes,
    #[error("{url:?} is not a repository URL: use http://, https:// or file:///an/absolute/path")]
    Url { url: String },
    #[error("remote {remote}: {url} cannot be fetched by this build (only file:// URLs are wired in yet)")]
    Unsupported { remote: String, url: String },
    #[error("{given:?} is neither a public key file written by capsa keygen nor the 64 hex digits of a key")]
    Key { given: String },
    #[error("cannot read {path}")]
    ReadLocal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    WriteLocal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({why}): remove it and try again")]
    BadLocal { path: PathBuf, why: String },
    #[error(
        "remote {remote}: cannot fetch {file}: check the URL and the network, or add a mirror"
    )]
    Fetch {
        remote: String,
        file: String,
        source: std::io::Error,
    },
    #[error("remote {remote}: {source}")]
    Fetcher {
        remote: String,
        source: crate::error::FetchError,
    },
    #[error("remote {remote}: {file} is missing on the server: the repository is incomplete (a mirror still syncing?); try again later")]
    Missing { remote: String, file: String },
    #[error(
        "remote {remote}: {file} is larger than its cap of {cap} bytes: refused (endless data)"
    )]
    TooLarge {
        remote: String,
        file: String,
        cap: u64,
    },
    #[error("remote {remote}: {file} does not match its signed sha256 and size ({expected}, {size} bytes): refused; the server or a mirror serves damaged or tampered data")]
    Digest {
        remote: String,
        file: String,
        expected: Digest,
        size: u64,
    },
    #[error("remote {remote}: {file} is refused: {source}")]
    Meta {
        remote: String,
        file: String,
        source: MetaError,
    },
    #[error("remote {remote}: no root of the repository is signed by the pinned key {key_id}: check the key given to capsa remote add")]
    Untrusted { remote: String, key_id: String },
    #[error("remote {remote}: root {version} expired on {date}: refused; the publisher must sign a new root")]
    RootExpired {
        remote: String,
        version: u64,
        date: String,
    },
    #[error("remote {remote}: the index is version {got}, older than version {kept} which this client has already seen: refused as a rollback (a replayed index or a stale mirror); try again later")]
    Rollback { remote: String, got: u64, kept: u64 },
    #[error("remote {remote}: the index expired on {date}: refused (frozen metadata); the publisher must run capsa repo refresh")]
    Expired { remote: String, date: String },
    #[error("remote {remote}: the index names root {index_root}, newer than root {root}, the newest the repository serves: refused; try again after the repository is synced")]
    IndexRoot {
        remote: String,
        index_root: u64,
        root: u64,
    },
    #[error("{app} is in no remote's index: capsa search TERM finds apps")]
    NoApp { app: String },
    #[error("{app} is offered by several remotes ({remotes}): choose one with --remote")]
    Ambiguous { app: String, remotes: String },
    #[error("remote {remote} does not offer {app}: capsa search TERM finds apps")]
    NotInRemote { remote: String, app: String },
    #[error("remote {remote}: the document of {app} is refused: {source}")]
    AppDoc {
        remote: String,
        app: String,
        source: MetaError,
    },
    #[error("remote {remote}: the index's entry for {app} leads to the document of {got}: refused (mix-and-match)")]
    MixAndMatch {
        remote: String,
        app: String,
        got: String,
    },
    #[error("remote {remote}: {app} has no channel {channel} (it has: {channels})")]
    NoChannel {
        remote: String,
        app: String,
        channel: String,
        channels: String,
    },
    #[error("remote {remote}: channel {channel} of {app} offers this client no release now: its release is yanked or halted, or this client is outside its staged rollout, and the channel has no fallback; try another channel")]
    NothingOffered {
        remote: String,
        app: String,
        channel: String,
    },
    #[error("remote {remote}: release {version} of {app} is refused: {problem}")]
    Release {
        remote: String,
        app: String,
        version: String,
        problem: Box<ReleaseProblem>,
    },
    #[error("{app}: release {chosen} (number {chosen_seq}) is older than release number {installed_seq} installed before: refused as a downgrade; pass --allow-downgrade to install it anyway")]
    Downgrade {
        app: String,
        chosen: String,
        chosen_seq: u64,
        installed_seq: u64,
    },
    #[error("{app} was installed from the key {origin_key} but remote {remote} now has the key {key}: install it again with capsa install --remote {remote} {app} to follow the new key")]
    KeyChanged {
        app: String,
        remote: String,
        origin_key: String,
        key: String,
    },
    #[error("{app} was not installed from a repository: capsa install {app} installs it from one")]
    NoOrigin { app: String },
    #[error("{app} is up to date: nothing to fetch")]
    UpToDate { app: String },
    #[error("cannot get random bytes for this client's id")]
    Random(#[source] getrandom::Error),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Data(#[from] userdata::DataError),
}

/// `ReadLocal` for a path.
pub(crate) fn read_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::ReadLocal {
        path: path.to_path_buf(),
        source,
    }
}

/// `WriteLocal` for a path.
pub(crate) fn write_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::WriteLocal {
        path: path.to_path_buf(),
        source,
    }
}
