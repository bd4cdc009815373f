//! `capsa repo ...`: the publisher's commands (clap derive; doc comments become `--help` and
//! the man page).

use std::path::PathBuf;

use clap::{Args, Subcommand};

const REPO_AFTER_HELP: &str = "\
EXAMPLES
  capsa keygen publisher
      The key that signs the repository and the bundles (two keys work too).
  capsa repo init www --key publisher.key --url https://example.org/capsa/
      Create a repository in the folder www, to be served at that URL.
  capsa pack --sign publisher.key -o app.capsa app/capsa.toml
      A signed bundle to publish.
  capsa repo add www app.capsa
      Publish it on the stable channel.
  capsa repo add www app-2.0.capsa --rollout 10
      Publish a new release to 10% of the stable channel's clients.
  capsa repo rollout www org.example.App --channel stable --percent 50
      Widen the rollout to half of them.
  capsa repo rollout www org.example.App --channel stable --halt
      Stop it: every client gets the fallback release.
  capsa repo promote www org.example.App 2.0 --channel stable
      Make 2.0 the stable release for every client.
  capsa repo yank www org.example.App 2.0 --reason 'crashes at start'
      Withdraw a release; channels fall back.
  capsa repo refresh www
      Re-sign the index before it expires (from cron, well within --expires-days).
  capsa repo gc www
      Delete blobs and objects no index of the grace period reaches.
  capsa repo rotate-key www --key publisher.key --new-key publisher2.key
      Move to a new key; clients follow the signed chain.
  capsa repo check www
      Check what a mirror or a client would check.

MIRRORS
Copy objects/, blobs/, roots/ and keys/ first, then root.json, index.json and index.html
(two rsync runs, for instance), and delete on the mirror only what repo gc deleted: a
half-synced mirror then stays valid.

EXIT STATUS
  0
      Success.
  1
      The command failed or refused (the message says why), or repo check found a problem.
  2
      A usage error.

ENVIRONMENT
  None: the repository commands read only their files and keys.

FILES
  root.json, roots/N.json, index.json
      The signed metadata: the roots (keys, with their rotations) and the index, which
      expires.
  blobs/sha256/HEX
      App documents, bundle heads, tails and blobs, and icons, by digest.
  objects/sha256/HH/HEX.zst
      One file's content each, compressed, so clients fetch only the files that changed.
  keys/, index.html
      The public keys, and the catalog page.
  .capsa-lock, .capsa-history/, .capsa-config.json
      The publisher's own (not needed by clients, harmless if served): the lock, the
      indexes gc remembers, the signing key's path and the catalog's remote name and URL.

SEE ALSO
capsa-keygen(1), capsa-pack(1), capsa-remote(1)
";

/// Publish apps in a signed static repository (any web server can serve it).
///
/// A repository is a directory of plain files: signed metadata (roots, an index that expires,
/// one document per app), the bundles' blobs stored once by digest (shared layers are stored
/// once), one compressed object per distinct file (so clients fetch only the files that
/// changed), and an index.html catalog. Every command writes its files atomically and the
/// index last, under a lock: a publisher killed at any point leaves the previous repository
/// valid. Commands that sign use --key (default: the key the repository was last signed with).
#[derive(Debug, Args)]
#[command(after_long_help = REPO_AFTER_HELP)]
pub struct RepoArgs {
    #[command(subcommand)]
    pub command: RepoCommand,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    Init(RepoInitArgs),
    Add(RepoAddArgs),
    Promote(RepoPromoteArgs),
    Rollout(RepoRolloutArgs),
    Yank(RepoYankArgs),
    Refresh(RepoRefreshArgs),
    Gc(RepoGcArgs),
    RotateKey(RepoRotateArgs),
    Check(RepoCheckArgs),
}

/// How the index is signed.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The secret key that signs the index (one of the root's keys) [default: the key the
    /// repository was last signed with].
    #[arg(long, value_name = "SECRETKEY")]
    pub key: Option<PathBuf>,
    /// Days until the new index expires (clients refuse an expired index).
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub expires_days: u64,
}

/// Create a repository: root 1 signed by KEY, an empty index, the catalog.
///
/// The directory gets root.json (root 1, which names KEY's public key and expires after
/// --root-expires-days), an empty index signed by KEY (expiring after --expires-days), the
/// public key under keys/ and the index.html catalog. Users add it with `capsa remote add NAME
/// URL --key KEY.pub`: that public key, not the server, is what they trust.
#[derive(Debug, Args)]
pub struct RepoInitArgs {
    /// The directory (created if missing; refused if it already holds a repository).
    pub dir: PathBuf,
    /// The secret key (from `capsa keygen`) that signs the repository.
    #[arg(long, value_name = "SECRETKEY")]
    pub key: PathBuf,
    /// Days until the index expires.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub expires_days: u64,
    /// Days until root 1 expires (renew it with rotate-key, giving the same key twice).
    #[arg(long, value_name = "N", default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=36500))]
    pub root_expires_days: u64,
    /// The remote name the catalog's commands suggest [default: the directory's name].
    #[arg(long)]
    pub name: Option<String>,
    /// The repository's public URL, for the catalog's commands.
    #[arg(long)]
    pub url: Option<String>,
}

/// Publish a signed bundle as a new release of its app.
///
/// The bundle is verified completely and must be signed: by the app's publisher key when
/// the app is already published; a new app's publisher is the bundle's first signer. Its blobs, head and tail and one object per distinct file
/// are stored (what the repository has is kept); the channel then points at the release, with
/// what the channel gave before as fallback. A launcher stub in front of the bundle is
/// stripped (the payload is what is published).
#[derive(Debug, Args)]
pub struct RepoAddArgs {
    /// The repository directory.
    pub dir: PathBuf,
    /// The signed bundle file.
    pub bundle: PathBuf,
    /// The channel the release goes to.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Give the release only to this percentage of the channel's clients (a canary; widen
    /// with `repo rollout --percent`, stop with `--halt`).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub rollout: Option<u8>,
    #[command(flatten)]
    pub sign: SignArgs,
}

/// Make VERSION the channel's release for every client (ends a rollout of it).
///
/// What the channel gave before becomes its fallback. A yanked release cannot be promoted;
/// the channel is created if the app has none of that name.
#[derive(Debug, Args)]
pub struct RepoPromoteArgs {
    /// The repository directory.
    pub dir: PathBuf,
    /// The app id.
    pub app: String,
    /// The release's version.
    #[arg(value_name = "VERSION")]
    pub release: String,
    /// The channel (stable, beta, ...).
    #[arg(long)]
    pub channel: String,
    #[command(flatten)]
    pub sign: SignArgs,
}

/// Change a channel's staged rollout: a percentage of clients, or halt it.
///
/// Each client decides from its random client id and the rollout's seed, so the same
/// clients stay in as the percentage grows; a halt sends every client to the fallback.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).args(["percent", "halt"]))]
pub struct RepoRolloutArgs {
    /// The repository directory.
    pub dir: PathBuf,
    /// The app id.
    pub app: String,
    /// The channel (stable, beta, ...).
    #[arg(long)]
    pub channel: String,
    /// Give the channel's release to this percentage of its clients (resumes a halted
    /// rollout with the same clients).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub percent: Option<u8>,
    /// Send every client of the channel to its fallback release.
    #[arg(long)]
    pub halt: bool,
    #[command(flatten)]
    pub sign: SignArgs,
}

/// Withdraw a release: it stays listed as yanked, never chosen; channels fall back.
///
/// Clients that follow a channel whose release is yanked get its fallback at their next
/// update; the reason is shown to them. The command names the channels left with no usable
/// release.
#[derive(Debug, Args)]
pub struct RepoYankArgs {
    /// The repository directory.
    pub dir: PathBuf,
    /// The app id.
    pub app: String,
    /// The release's version.
    #[arg(value_name = "VERSION")]
    pub release: String,
    /// Why (shown to users).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub sign: SignArgs,
}

/// Re-sign the index with a new version and expiry, nothing else (run it from cron).
///
/// Clients refuse an expired index, so a repository that publishes nothing new for
/// --expires-days days must be refreshed before then; a daily refresh is cheap.
#[derive(Debug, Args)]
pub struct RepoRefreshArgs {
    /// The repository directory.
    pub dir: PathBuf,
    #[command(flatten)]
    pub sign: SignArgs,
}

/// Remove blobs and objects that no index of the grace period reaches.
///
/// Kept: everything the current index reaches, and everything an index reaches whose
/// successor was written less than --grace-days ago (clients and half-synced mirrors may still
/// hold it). Also removes the temporary files of killed publishers.
#[derive(Debug, Args)]
pub struct RepoGcArgs {
    /// The repository directory.
    pub dir: PathBuf,
    /// Keep also what an index replaced less than DAYS days ago reaches.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub grace_days: u64,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Replace the repository's key: root N+1, signed by the old key and the new one.
///
/// Clients that trust the old key follow the chain to the new root. Giving the same key as
/// --key and --new-key renews the root's expiry.
#[derive(Debug, Args)]
pub struct RepoRotateArgs {
    /// The repository directory.
    pub dir: PathBuf,
    /// The current secret key.
    #[arg(long, value_name = "SECRETKEY")]
    pub key: PathBuf,
    /// The new secret key.
    #[arg(long, value_name = "SECRETKEY")]
    pub new_key: PathBuf,
    /// Days until the new root expires.
    #[arg(long, value_name = "N", default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=36500))]
    pub root_expires_days: u64,
    /// Days until the new index expires.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub expires_days: u64,
}

/// Verify a repository (or a mirror's copy): signatures, expiry, every blob and object.
///
/// Checks the root chain, the index's signature and expiry, every app document, every
/// release's head, tail and publisher signature, rebuilds every bundle from its blobs and
/// compares its digest, and decompresses every object against its file's digest and size.
#[derive(Debug, Args)]
pub struct RepoCheckArgs {
    /// The repository directory.
    pub dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}
