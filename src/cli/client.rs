//! The repository client's commands: remote, search, update, rollback (install by name is
//! `capsa install APP-ID`, in the parent module).

use clap::{Args, Subcommand};

const REMOTE_AFTER_HELP: &str = "\
EXAMPLES
  capsa remote add example https://example.org/capsa --key example.pub
  capsa remote add example https://example.org/capsa --key 3fa9...e1 --mirror https://mirror.example.net/capsa
  capsa remote list --json
  capsa remote remove example

FILES
  $XDG_CONFIG_HOME/capsa/remotes/NAME.json  the remote (URL, mirrors, pinned key)
  $XDG_STATE_HOME/capsa/trust/KEYID.json    the newest root and index version seen, and each
                                           app's downgrade floor (kept when a remote is removed)

EXIT STATUS
  0 on success; 1 when the command failed (the message says why); 2 on a usage error.";

const CLIENT_AFTER_HELP: &str = "\
EXAMPLES
  capsa search editor
  capsa install org.example.Editor --remote example
  capsa install org.example.Editor --channel beta
  capsa update --check
  capsa update org.example.Editor --yes
  capsa rollback org.example.Editor

FILES
  $XDG_STATE_HOME/capsa/origins/APP.json  where an app came from (remote, channel, release)
  $XDG_STATE_HOME/capsa/client-id         this client's random id, for staged rollouts
  $XDG_CACHE_HOME/capsa/repo/             verified app documents and downloads in progress

ENVIRONMENT
  CAPSA_FETCH_STALL_SECS  seconds without a byte before a download fails (default 30)
  HTTPS_PROXY, HTTP_PROXY, NO_PROXY  as for curl

EXIT STATUS
  0 on success (also when nothing needed updating); 1 when a command failed, or an update
  was refused (a downgrade without --allow-downgrade, metadata that does not check); 2 on a
  usage error.";

/// Manage the repositories apps are installed and updated from.
///
/// A remote is a URL (https://, http:// or file://) and the public key that signs the
/// repository: trust comes only from the key given here, never from the server. Mirrors are
/// untrusted: everything they serve is checked against the signed metadata.
#[derive(Debug, Args)]
#[command(after_long_help = REMOTE_AFTER_HELP)]
pub struct RemoteArgs {
    #[command(subcommand)]
    pub command: RemoteCommand,
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add a remote.
    Add {
        /// A name for it (letters, digits, - and _).
        name: String,
        /// Its URL.
        url: String,
        /// The repository's public key: a .pub file of `capsa keygen`, or its 64 hex digits.
        #[arg(long, value_name = "PUBKEY")]
        key: String,
        /// A mirror URL, tried in order when the main URL fails; may be repeated.
        #[arg(long, value_name = "URL")]
        mirror: Vec<String>,
    },
    /// List remotes.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a remote (installed apps stay; what this client trusted of it is kept, so
    /// adding it again cannot roll it back).
    Remove { name: String },
}

/// Search the remotes' apps by id, name or summary.
#[derive(Debug, Args)]
#[command(after_long_help = CLIENT_AFTER_HELP)]
pub struct SearchArgs {
    pub term: String,
    #[arg(long)]
    pub json: bool,
}

/// Update apps installed from remotes, fetching only what changed.
///
/// Each app follows the channel it was installed from; a staged rollout decides from this
/// client's random id whether it gets the new release. The new release is installed beside
/// the old one and switched to atomically; `capsa rollback` switches back.
#[derive(Debug, Args)]
#[command(after_long_help = CLIENT_AFTER_HELP)]
pub struct UpdateArgs {
    /// Apps to update [default: every app installed from a remote].
    pub apps: Vec<String>,
    /// Only say what each app would get, and why.
    #[arg(long)]
    pub check: bool,
    /// Allow moving to an older release than the installed one.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    #[arg(long)]
    pub json: bool,
}

/// Switch an app back to its previous release, without network (running instances keep
/// theirs).
#[derive(Debug, Args)]
#[command(after_long_help = CLIENT_AFTER_HELP)]
pub struct RollbackArgs {
    pub app: String,
}
