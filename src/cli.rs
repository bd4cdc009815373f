//! The command-line definition (clap derive). Doc comments here become `--help`, the man pages
//! in `man/` and the shell completions, so keep them tidy.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use launcher::{Key, Permission};

/// Capsa: pack Linux apps with everything they need into one verifiable bundle, and run them
/// sandboxed.
///
/// `capsa pack` captures an app from this machine as its recipe (capsa.toml) says: its
/// programs with the shared libraries they need and the dynamic loader, its data files, what
/// traced runs of it used. It writes one compressed, sha256-addressed, reproducible bundle file
/// (.capsa), optionally signed or self-executable.
///
/// `capsa run` runs a bundle file or an installed app in an unprivileged sandbox (user, mount,
/// pid and network namespaces, overlayfs, Landlock, seccomp): the app's own files are its
/// whole system, and of yours it gets only what its permissions grant, with your consent.
/// `capsa install` puts apps in a per-user store with their desktop entries; `capsa repo` and
/// `capsa remote` publish and fetch them through signed static repositories. No setuid
/// helper, no daemon.
#[derive(Debug, Parser)]
#[command(name = "capsa", version, about, propagate_version = true)]
#[command(after_long_help = help::TOP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Pack(PackArgs),
    Capture(CaptureArgs),
    Run(RunArgs),
    Install(InstallArgs),
    Uninstall(UninstallArgs),
    List(ListArgs),
    Info(InfoArgs),
    Override(OverrideArgs),
    Reset(AppArgs),
    Diff(DiffArgs),
    Integrate(IntegrateArgs),
    Gc(GcArgs),
    Inspect(InspectArgs),
    Verify(VerifyArgs),
    Extract(ExtractArgs),
    StripStub(StripStubArgs),
    Keygen(KeygenArgs),
    Repo(RepoArgs),
    Remote(RemoteArgs),
    Search(SearchArgs),
    Update(UpdateArgs),
    Rollback(RollbackArgs),
    Completions(CompletionsArgs),
    #[command(name = "__trace-exec", hide = true)]
    TraceExec(TraceExecArgs),
}

const PACK_AFTER_HELP: &str = "\
EXAMPLES
  capsa pack samples/python3/capsa.toml
      Pack the recipe into org.python.Python3-3.11.capsa, in the current directory.
  capsa pack --explain -o python.capsa samples/python3/capsa.toml
      The same into python.capsa, printing why each file is in it.
  capsa pack --sign publisher.key -o app.capsa app/capsa.toml
      A signed bundle (the key from capsa keygen publisher).
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) capsa pack --level 19 app/capsa.toml
      A release build: the bundle's time is the last commit's, the compression stronger.
  capsa pack --self-exec --sign publisher.key -o app.capsa app/capsa.toml
      A self-executable bundle: ./app.capsa ARGS runs the app, as capsa run app.capsa --
      ARGS does; ./app.capsa --capsa-help lists the launcher's own options.
  capsa pack --self-exec --from plain.capsa --sign publisher.key -o app.capsa
      Add the stub to a bundle packed before, without packing again.
  capsa strip-stub app.capsa -o plain.capsa
      The plain bundle again, byte for byte.

SELF-EXECUTABLE BUNDLES
With --self-exec (or self-exec = true in the recipe's [bundle] table) the bundle is preceded
by a launcher stub: this capsa's own executable (or --stub FILE), zero padding and a note
recording the stub's sha256, its capsa version and the payload it belongs to, signed by the
--sign keys. The payload is byte for byte the plain bundle, so the file installs, inspects,
verifies and publishes like one; the file is written with mode 0755.

EXIT STATUS
  0
      The bundle was written.
  1
      The recipe is invalid, a file cannot be read, a traced command cannot run, a shared
      library is missing (see --allow-missing), or the output cannot be written: the
      message says which; no output file is left behind.
  2
      A usage error.

ENVIRONMENT
  SOURCE_DATE_EPOCH
      The bundle's creation time in seconds since 1970 (default 0), and the newest
      modification time stored: later ones are lowered to it.
  HOME
      Files below your home (and every home in /etc/passwd) are private: the recipe's
      traces never capture them.
  PATH
      Where a trace command named without a / is found.

FILES
  capsa.toml
      The recipe read when none is given; see capsa.toml(5).
  ID-VERSION.capsa
      The bundle written when --output is not given, in the current directory.
  /etc/ld.so.cache
      The loader cache the shared libraries are found with, as the host's loader does.
  /var/lib/dpkg/
      The package database of the recipe's packages.

SEE ALSO
capsa.toml(5), capsa-capture(1), capsa-inspect(1), capsa-verify(1), capsa-keygen(1),
capsa-strip-stub(1)
";

/// Capture an app and its whole dependency closure into a bundle.
///
/// Reads a recipe (capsa.toml), captures the listed binaries with the shared libraries they
/// need (following the dynamic loader's search order) and the loader itself, the listed files
/// and folders, and writes a reproducible .capsa bundle: the same inputs give the same bytes.
/// SOURCE_DATE_EPOCH, when set, is the bundle's creation time and clamps stored mtimes; unset,
/// the bundle records no time (the manifest's `created` is 0, which inspect shows as "not
/// recorded"), so packing the same inputs later gives the same bytes.
///
/// --self-exec writes a self-executable bundle: run it and it runs the app, sandboxed, with
/// no capsa installed. With --from, the stub is added to (or replaced on) an existing bundle
/// without packing again.
#[derive(Debug, Args)]
#[command(after_long_help = PACK_AFTER_HELP)]
pub struct PackArgs {
    /// The recipe to pack, a capsa.toml file (see capsa.toml(5)).
    #[arg(default_value = "capsa.toml")]
    pub recipe: PathBuf,
    /// Output file [default: <id>-<version>.capsa].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// zstd compression level (1-22).
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: i32,
    /// Compression threads [default: all cores]; the output does not depend on it.
    #[arg(long)]
    pub threads: Option<u32>,
    /// Sign the manifest with this secret key (from `capsa keygen`); may be repeated.
    #[arg(long, value_name = "KEYFILE")]
    pub sign: Vec<PathBuf>,
    /// Accept shared libraries that cannot be found (the app may fail when it needs them).
    #[arg(long)]
    pub allow_missing: bool,
    /// Print why each file is in the bundle.
    #[arg(long)]
    pub explain: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write a self-executable bundle: a launcher stub (this capsa's executable), then the
    /// bundle; the --sign keys sign the stub's note too. Also `self-exec = true` in the
    /// recipe's [bundle] table.
    #[arg(long)]
    pub self_exec: bool,
    /// With --self-exec (or the recipe's self-exec): the stub's executable (an ELF) instead
    /// of this capsa's own.
    #[arg(long, value_name = "FILE")]
    pub stub: Option<PathBuf>,
    /// With --self-exec: add the stub to this existing bundle (replacing a stub it has) instead
    /// of packing a recipe; its payload is copied byte for byte. Needs --output.
    #[arg(
        long,
        value_name = "BUNDLE",
        requires_all = ["self_exec", "output"],
        conflicts_with_all = ["recipe", "level", "threads", "allow_missing", "explain"]
    )]
    pub from: Option<PathBuf>,
}

/// Run a bundle in an unprivileged sandbox, as if installed.
///
/// The app's layers become its root (overlayfs), with a persistent per-app writable layer and
/// private home (or none with --ephemeral); it sees no host library or program, and only the
/// host files, sockets, devices and network its permissions grant. Namespaces (user, mount,
/// pid, ipc, uts, and net without network), Landlock, seccomp, no capabilities and
/// no_new_privs hold it there. Exit status: the app's (128+N if killed by signal N); 125 when
/// the launcher fails, 126 when the command cannot be executed, 127 when it is not found.
///
/// An app is its id and its publisher (the key that signed it; `local` for an unsigned app you
/// installed; an unsigned bundle file is its own publisher): state, private home, overrides
/// and consent belong to that pair, so a bundle carrying an installed app's id never reaches
/// the installed app's files.
///
/// A bundle file gets nothing beyond the safe default (no network, no host files, no
/// sockets, no devices) without consent: asked on a terminal, in a desktop dialog when there
/// is no terminal, given with --yes (remembered) or --allow (this run); otherwise capsa says
/// what it withheld. Grants merge in one order: manifest, consent, overrides, then --allow and
/// --deny (a deny takes its kind away from every earlier level).
///
/// --report shows, for each layer, what the plan sets up and what the kernel confirmed
/// (Landlock ABI, enforcement, each right the ABI lacks); it claims nothing else.
#[derive(Debug, Args)]
#[command(after_long_help = help::RUN)]
#[command(group(clap::ArgGroup::new("json_output").args(["report", "trace_missing"]).multiple(true)))]
pub struct RunArgs {
    /// A bundle file (a name with a `/` or ending in `.capsa`), or the id of an installed
    /// app (never a file in the current directory); then the app's arguments. Everything
    /// after APP goes to the app, options such as --help or --version too; a `--` right
    /// after APP is optional (and not passed on).
    #[arg(
        value_names = ["APP", "ARGS"],
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub app: Vec<String>,
    /// Grant what the bundle asks for without asking, and remember it (bundle files only;
    /// installed apps had their consent at install).
    #[arg(short, long)]
    pub yes: bool,
    /// Expose each file named in the arguments (a path or a file:// URL) to the app, that
    /// file alone and read-write, at its own path (what desktop entries use to open files).
    #[arg(long)]
    pub open_files: bool,
    /// Grant a permission for this run (network, network=tcp:443, filesystem=home[:ro],
    /// filesystem=PATH[:ro], filesystem=xdg-download, socket=x11|wayland|pulseaudio|pipewire|session-bus,
    /// device=dri|all); may be repeated.
    #[arg(long, value_name = "PERM")]
    pub allow: Vec<Permission>,
    /// Take a kind of permission away for this run, from the manifest and your overrides
    /// (network, filesystem=TARGET, socket=NAME, device=NAME); with --allow of the same kind
    /// it narrows it (--deny network --allow network=tcp:443); may be repeated.
    #[arg(long, value_name = "KIND")]
    pub deny: Vec<Key>,
    /// Keep no state: the writable layer and home are thrown away at exit.
    #[arg(long)]
    pub ephemeral: bool,
    /// Print what each layer of the sandbox enforces before the app starts.
    #[arg(long)]
    pub report: bool,
    /// With --report: print the report as one JSON object (app, rows, claims) on standard
    /// error instead of the table; with --trace-missing, its list too.
    #[arg(long, requires = "json_output")]
    pub json: bool,
    /// Trace the app (ptrace, by the sandbox's pid 1) and, when it ends, list on standard
    /// error the paths it looked for and did not find (ENOENT from the open, exec, stat and
    /// access calls), most relevant first: programs, then files opened, then lookups, the
    /// latest first; the dynamic loader's and PATH searches for names found elsewhere are left
    /// out. The sandbox is otherwise the same; the app runs slower.
    #[arg(long)]
    pub trace_missing: bool,
    /// Run this program of the app instead of its command.
    #[arg(long, value_name = "PATH")]
    pub command: Option<String>,
    /// Set an environment variable in the app; may be repeated.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Require a valid signature by this public key.
    #[arg(long, value_name = "PUBFILE")]
    pub key: Option<PathBuf>,
    /// Refuse to start unless Landlock is fully enforced.
    #[arg(long)]
    pub require_landlock: bool,
}

/// Install a bundle or an app from a remote into your app store, with its desktop entry, icon
/// and file types.
///
/// Verifies every byte, shows the permissions the app asks for (and asks, unless --yes),
/// shares layers with apps already installed, and switches to the new version atomically; the
/// previous version is kept for rollback.
#[derive(Debug, Args)]
#[command(after_long_help = help::INSTALL)]
pub struct InstallArgs {
    /// A bundle file, or the id of an app in a remote repository (a path that exists, or a
    /// name with a `/` or ending in `.capsa`, is a file; otherwise an app id is looked up in
    /// the remotes).
    #[arg(value_name = "BUNDLE|APP-ID")]
    pub target: PathBuf,
    /// Install from this remote (default: the only remote offering the app).
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
    /// Follow this channel of the remote [default: stable].
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,
    /// Allow installing an older release than the one installed before.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Require a valid signature by this public key.
    #[arg(long, value_name = "PUBFILE")]
    pub key: Option<PathBuf>,
    /// Make the app the default for this MIME type (one it declares); may be repeated.
    #[arg(long, value_name = "TYPE")]
    pub default_for: Vec<String>,
}

/// Remove an installed app and everything it exported.
///
/// Its releases, its desktop entry, icon and file types, and the defaults that name it are
/// removed; layers no other app uses are deleted. Its data (writable layer, private home,
/// overrides) is kept unless --delete-data, so installing it again finds it.
#[derive(Debug, Args)]
#[command(after_long_help = help::UNINSTALL)]
pub struct UninstallArgs {
    /// The id of the installed app to remove.
    pub app: String,
    /// Also delete the app's data (its writable layer, private home and overrides).
    #[arg(long)]
    pub delete_data: bool,
}

/// List installed apps.
///
/// One line per app: its id, version, name and publisher (the key that signed it, or `local`
/// for an unsigned bundle you installed).
#[derive(Debug, Args)]
#[command(after_long_help = help::LIST)]
pub struct ListArgs {
    /// Print the apps as a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Show an installed app: version, disk use, shared layers, effective permissions, exports.
///
/// The effective permissions are the manifest's with your overrides applied: what every run
/// gets before its own --allow and --deny. Each layer says which other apps share it.
#[derive(Debug, Args)]
#[command(after_long_help = help::INFO)]
pub struct InfoArgs {
    /// The id of the installed app.
    pub app: String,
    /// Print the information as a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Change an installed app's permissions for every run (kept across updates).
///
/// Overrides sit between the manifest (and the consent you gave) and a run's own --allow and
/// --deny: a --deny takes its kind of permission away from the manifest, an --allow adds one.
/// Without options, prints the permissions the app runs with.
#[derive(Debug, Args)]
#[command(after_long_help = help::OVERRIDE)]
pub struct OverrideArgs {
    /// The id of the installed app whose permissions change.
    pub app: String,
    /// Grant a permission at every run (network, network=tcp:PORT, filesystem=TARGET[:ro],
    /// socket=NAME, device=NAME); may be repeated.
    #[arg(long, value_name = "PERM")]
    pub allow: Vec<Permission>,
    /// Take a kind of permission away (network, filesystem=TARGET, socket=NAME,
    /// device=NAME); may be repeated.
    #[arg(long, value_name = "KIND")]
    pub deny: Vec<Key>,
    /// Remove every override.
    #[arg(long, conflicts_with_all = ["allow", "deny"])]
    pub reset: bool,
}

/// Drop an app's state: back to freshly installed.
///
/// Deletes the app's writable layer and private home; its overrides and releases stay. A
/// running instance of the app makes it refuse (end the app first).
#[derive(Debug, Args)]
#[command(after_long_help = help::RESET)]
pub struct AppArgs {
    /// The id of the installed app to reset.
    pub app: String,
}

/// Show what an app changed in its own files (added, changed, deleted).
///
/// Compares the app's writable layer with its release: every path the app added, changed or
/// deleted, and each folder it replaced as a whole (its private home is not compared).
#[derive(Debug, Args)]
#[command(after_long_help = help::DIFF)]
pub struct DiffArgs {
    /// The id of the installed app.
    pub app: String,
    /// Print the changes as a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Free the layer cache ($XDG_CACHE_HOME/capsa) of what no installed app or running app needs.
///
/// Removes the layers unpacked for bundle files you ran, the read-only roots merged from
/// them and the leftovers of killed runs, and prints each entry removed and the space freed.
#[derive(Debug, Args)]
#[command(after_long_help = help::GC)]
pub struct GcArgs {
    /// Print what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Make .capsa files open with Capsa on the desktop (MIME type and desktop entry).
///
/// Registers the type of bundle files (by the .capsa suffix and the bundle magic) and a
/// hidden desktop entry that opens them with `capsa run`, as their default application. A
/// bundle opened so asks for its permissions in a desktop dialog.
#[derive(Debug, Args)]
#[command(after_long_help = help::INTEGRATE)]
pub struct IntegrateArgs {
    /// Undo the integration: remove the entry, the type and the default.
    #[arg(long)]
    pub remove: bool,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

/// Show a bundle's manifest, layers, permissions and signature state.
///
/// Reads the bundle without unpacking its layers and says whether its signatures are valid
/// for its manifest; `capsa verify` checks every byte.
///
/// `created` is the SOURCE_DATE_EPOCH the bundle was packed with; 0 (in --json, shown as "not
/// recorded" in the text) when it was packed without one: a reproducible bundle does not
/// record when it was made.
#[derive(Debug, Args)]
#[command(after_long_help = help::INSPECT)]
pub struct InspectArgs {
    /// The bundle file (a self-executable one too).
    pub bundle: PathBuf,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
    /// List every file of every layer.
    #[arg(long)]
    pub files: bool,
    /// Print the capture report: why each file is in the bundle.
    #[arg(long)]
    pub report: bool,
}

/// Check every byte of a bundle: layout, manifest, digests, layer contents, signatures.
///
/// A self-executable bundle's launcher stub too: its executable must be the one its note
/// records, for this payload, with zero padding, and with --key the note must be signed by
/// that key as well; a stub without a note (prepended by other means) is refused.
///
/// Exits 0 when the bundle is sound; otherwise prints the first damaged part and exits 1.
#[derive(Debug, Args)]
#[command(after_long_help = help::VERIFY)]
pub struct VerifyArgs {
    /// The bundle file to check.
    pub bundle: PathBuf,
    /// Require a valid signature by this public key.
    #[arg(long, value_name = "PUBFILE")]
    pub key: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Extract a bundle's file tree into a directory, refusing hostile entries.
///
/// DIR must not exist or be empty. The tree is verified and written into a private staging
/// directory, then renamed into place: on any error nothing is left behind.
#[derive(Debug, Args)]
#[command(after_long_help = help::EXTRACT)]
pub struct ExtractArgs {
    /// The bundle file to extract.
    pub bundle: PathBuf,
    /// The directory to write the tree into (created; it must not exist, or be empty).
    pub dir: PathBuf,
}

/// Remove the launcher stub from a self-executable bundle: the plain bundle, byte for byte.
///
/// A file without a stub is copied as it is. The output is written atomically (mode 0644).
#[derive(Debug, Args)]
#[command(after_long_help = help::STRIP_STUB)]
pub struct StripStubArgs {
    /// The self-executable bundle file.
    pub bundle: PathBuf,
    /// The plain bundle to write (may be BUNDLE itself).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Create an ed25519 signing key pair: NAME.key (mode 0600) and NAME.pub.
///
/// The secret key signs bundles (capsa pack --sign) and repositories (capsa repo); the public
/// key is what users trust (capsa verify --key, capsa install --key, capsa remote add --key).
/// Existing files are never overwritten.
#[derive(Debug, Args)]
#[command(after_long_help = help::KEYGEN)]
pub struct KeygenArgs {
    /// The pair's path without extension: writes NAME.key and NAME.pub (an extension NAME has
    /// is replaced).
    pub name: PathBuf,
}

/// Print a shell completion script.
///
/// The script completes commands, options and their values; write it where your shell loads
/// completions from (see EXAMPLES).
#[derive(Debug, Args)]
#[command(after_long_help = help::COMPLETIONS)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Internal: the tracee side of `capture.trace` (asks to be traced, then runs ARGV).
#[derive(Debug, Args)]
pub struct TraceExecArgs {
    /// The command to run traced, and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub argv: Vec<std::ffi::OsString>,
}

#[macro_use]
mod help;
mod capture;
pub use capture::*;
mod client;
pub use client::*;
mod repo;
pub use repo::*;
