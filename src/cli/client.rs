//! The repository client's commands: remote, search, update, rollback (install by name is
//! `capsa install APP-ID`, in the parent module).

use clap::{Args, Subcommand};

/// The variables and files every command that talks to remotes uses.
macro_rules! remote_env {
    () => {
        "ENVIRONMENT
  CAPSA_FETCH_STALL_SECS
      Seconds without a byte before a download fails (default 30).
  ALL_PROXY, HTTPS_PROXY, HTTP_PROXY, NO_PROXY
      The proxy for http:// and https:// remotes (also in lower case): the first of the
      three that is set; NO_PROXY lists the hosts reached directly.
  XDG_CONFIG_HOME, XDG_STATE_HOME, XDG_CACHE_HOME, XDG_DATA_HOME
      Where the files below and the store are (defaults ~/.config, ~/.local/state,
      ~/.cache, ~/.local/share).
"
    };
}

macro_rules! remote_files {
    () => {
        "FILES
  $XDG_CONFIG_HOME/capsa/remotes/NAME.json
      A remote: its URL, mirrors and pinned key.
  $XDG_STATE_HOME/capsa/trust/KEYID.json
      The newest root and index versions seen, and each app's downgrade floor (kept when
      a remote is removed).
  $XDG_STATE_HOME/capsa/origins/ID.json
      Where an installed app came from: remote, channel, release.
  $XDG_STATE_HOME/capsa/client-id
      This client's random id, which staged rollouts decide by.
  $XDG_CACHE_HOME/capsa/repo/
      Verified app documents, and downloads in progress.
"
    };
}

const REMOTE_AFTER_HELP: &str = concat!(
    "EXAMPLES
  capsa remote add example https://example.org/capsa --key example.pub
      Trust the repository at that URL, signed by the key in example.pub.
  capsa remote add ex https://example.org/capsa --key HEX --mirror https://example.net/c
      The key as its 64 hex digits, and a mirror, tried when the main URL fails.
  capsa remote list --json
      The remotes, as JSON.
  capsa remote remove example
      Forget the remote; apps installed from it stay.

",
    exit_usual!(),
    "
",
    remote_env!(),
    "
",
    remote_files!(),
    "
SEE ALSO
capsa-search(1), capsa-install(1), capsa-update(1), capsa-repo(1)
"
);

/// The exit statuses of the commands that may also refuse an update.
macro_rules! client_exit {
    () => {
        "EXIT STATUS
  0
      Success, also when nothing needed updating or nothing matched.
  1
      A command failed, or an update was refused (a downgrade without --allow-downgrade,
      metadata that does not check); the message says why.
  2
      A usage error.
"
    };
}

const SEARCH_AFTER_HELP: &str = concat!(
    "EXAMPLES
  capsa search editor
      Apps whose id, name or summary contains editor, with their version and remote.
  capsa search --json org.example
      The matches as JSON.

",
    client_exit!(),
    "
",
    remote_env!(),
    "
",
    remote_files!(),
    "
SEE ALSO
capsa-remote(1), capsa-install(1)
"
);

const UPDATE_AFTER_HELP: &str = concat!(
    "EXAMPLES
  capsa update --check
      Which release each app would get, and why (channel, rollout, yanked releases).
  capsa update
      Update every app installed from a remote, asking before new permissions.
  capsa update org.example.Editor --yes
      Update one app without asking.

",
    client_exit!(),
    "
",
    remote_env!(),
    "
",
    remote_files!(),
    "
SEE ALSO
capsa-rollback(1), capsa-install(1), capsa-remote(1)
"
);

const ROLLBACK_AFTER_HELP: &str = concat!(
    "EXAMPLES
  capsa rollback org.example.Editor
      Back to the release installed before the last update; running instances keep theirs.

",
    exit_usual!(),
    "
",
    env_store!(),
    "  XDG_STATE_HOME
      Where the app's origin is (default ~/.local/state).

FILES
",
    files_store!(),
    "  $XDG_STATE_HOME/capsa/origins/ID.json
      Where the app came from, now held at the release rolled back to.

SEE ALSO
capsa-update(1), capsa-info(1)
"
);

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
    ///
    /// Saves the remote without contacting it; every later fetch is checked against the key
    /// given, which stays pinned: the repository can move to a new key only through a root
    /// signed by the old one.
    Add {
        /// A name for it (letters, digits, - and _).
        name: String,
        /// The repository's URL: https://, http:// or file://.
        url: String,
        /// The repository's public key: a .pub file of `capsa keygen`, or its 64 hex digits.
        #[arg(long, value_name = "PUBKEY")]
        key: String,
        /// A mirror URL, tried in order when the main URL fails; may be repeated.
        #[arg(long, value_name = "URL")]
        mirror: Vec<String>,
    },
    /// List remotes.
    ///
    /// Each remote with its URL, mirrors and the key id it is pinned to.
    List {
        /// Print the remotes as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Remove a remote (installed apps stay; what this client trusted of it is kept, so
    /// adding it again cannot roll it back).
    ///
    /// Apps installed from it stay installed and run as before; `capsa update` reaches them
    /// again once a remote of that name is added back.
    Remove {
        /// The name of the remote to remove.
        name: String,
    },
}

/// Search the remotes' apps by id, name or summary.
///
/// Reads each remote's signed index; a remote that cannot be reached is a warning, and the
/// others are still searched.
#[derive(Debug, Args)]
#[command(after_long_help = SEARCH_AFTER_HELP)]
pub struct SearchArgs {
    /// The text to look for in the apps' ids, names and summaries.
    pub term: String,
    /// Print the matches as a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Update apps installed from remotes, fetching only what changed.
///
/// Each app follows the channel it was installed from; a staged rollout decides from this
/// client's random id whether it gets the new release. The new release is installed beside
/// the old one and switched to atomically; `capsa rollback` switches back.
#[derive(Debug, Args)]
#[command(after_long_help = UPDATE_AFTER_HELP)]
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
    /// Print what each app got (or, with --check, would get) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Switch an app back to its previous release, without network (running instances keep
/// theirs).
///
/// The store keeps the release before the current one; rollback makes it current again,
/// atomically, and the next start runs it; `capsa update` keeps it there until a newer
/// release comes. Its state and overrides stay as they are.
#[derive(Debug, Args)]
#[command(after_long_help = ROLLBACK_AFTER_HELP)]
pub struct RollbackArgs {
    /// The id of the installed app.
    pub app: String,
}
