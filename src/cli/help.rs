//! The sections after each command's options in `--help` (`after_long_help`), which the man
//! pages in `man/` are rendered from (`src/man_tests`): EXAMPLES, EXIT STATUS, ENVIRONMENT,
//! FILES, SEE ALSO and any section of a command's own.
//!
//! The text has one layout, which reads as it is in `--help` and converts to roff:
//! - a heading is a line of capitals (and spaces or `-`) at column 0;
//! - an entry is a line indented by 2 spaces (a command, a path, a variable, an exit status),
//!   its description the lines below it indented by 6;
//! - a paragraph is lines at column 0, ended by a blank line;
//! - SEE ALSO names pages as `name(section)`, and only pages in `man/`.
//!
//! Lines stay within 92 columns, so clap does not wrap them at its default width. Shared
//! entries are macros producing literals, joined with `concat!`.

/// Exit statuses of the commands that only succeed or fail.
macro_rules! exit_usual {
    () => {
        "EXIT STATUS
  0
      Success.
  1
      The command failed; the message on standard error says why and what to do.
  2
      A usage error: an unknown option, a missing or malformed argument.
"
    };
}

/// The XDG base directories of the store commands.
macro_rules! env_store {
    () => {
        "ENVIRONMENT
  XDG_DATA_HOME
      Where the store is: $XDG_DATA_HOME/capsa (default ~/.local/share/capsa), and the
      desktop exports, in $XDG_DATA_HOME/applications, icons and mime.
  XDG_CONFIG_HOME
      Where mimeapps.list, the default applications, is (default ~/.config).
  HOME
      The base of the defaults above when the XDG variables are unset or relative.
"
    };
}

/// The files of the store.
macro_rules! files_store {
    () => {
        "  $XDG_DATA_HOME/capsa/apps/ID/
      An installed app: releases/DIGEST/ (its manifest, tables of contents and signatures),
      current and previous (links to releases), publisher.json and exports.json.
  $XDG_DATA_HOME/capsa/layers/DIGEST/
      An unpacked layer, shared by every app and release that has it.
  $XDG_DATA_HOME/capsa/state/ID@PUBLISHER/
      The app's writable layer (upper/) and private home (home/).
  $XDG_DATA_HOME/capsa/overrides/ID@PUBLISHER.json
      The permission overrides of capsa override.
"
    };
}

/// The desktop exports of an installed app.
macro_rules! files_exports {
    () => {
        "  $XDG_DATA_HOME/applications/ID.desktop
      The app's desktop entry, which runs capsa run ID (with --open-files for its types).
  $XDG_DATA_HOME/icons/hicolor/SIZE/apps/ID.png
      Its icon (or ID.svg in scalable/).
  $XDG_DATA_HOME/mime/packages/ID.xml
      The new file types it defines.
  $XDG_CONFIG_HOME/mimeapps.list
      The default applications of --default-for.
"
    };
}

mod bundle;
mod store;
pub(crate) use bundle::*;
pub(crate) use store::*;

pub(crate) const TOP: &str = "EXAMPLES
  capsa pack samples/python3/capsa.toml
      Pack the sample recipe into org.python.Python3-3.11.capsa.
  capsa run org.python.Python3-3.11.capsa -- -c 'print(1 + 1)'
      Run the bundle sandboxed, with arguments for the app.
  capsa install org.python.Python3-3.11.capsa
      Install it, after showing what it asks for; then capsa run org.python.Python3.
  capsa capture -- git log
      Trace a program's run and write a starter recipe, capsa.toml.
  capsa help run
      The options of one command (or man capsa-run).

EXIT STATUS
  0
      Success.
  1
      The command failed; the message on standard error says why.
  2
      A usage error (for capsa run, 125).
  125, 126, 127
      capsa run: capsa failed, the app's command cannot be executed, or it is not found.
  N
      capsa run: the app's own exit status, 128+N when it was killed by signal N.

ENVIRONMENT
  XDG_DATA_HOME, XDG_CACHE_HOME, XDG_CONFIG_HOME, XDG_STATE_HOME
      Where capsa keeps its files (see FILES); unset or relative, ~/.local/share, ~/.cache,
      ~/.config and ~/.local/state.
  HOME, USER
      You: the app's private home is mounted at your home's path, with your user name.
  XDG_RUNTIME_DIR, DISPLAY, XAUTHORITY, WAYLAND_DISPLAY, DBUS_SESSION_BUS_ADDRESS
      Where the sockets a run may be granted are; the display of the consent dialog.
  TERM, COLORTERM, LANG, LANGUAGE, LC_*, TZ, NO_COLOR
      Passed to the app as they are; no other variable of yours is.
  PATH
      Where capsa capture finds its command, and the consent dialog zenity or kdialog.
  SOURCE_DATE_EPOCH
      capsa pack: the bundle's creation time (default 0), for reproducible builds.
  CAPSA_LANDLOCK_ABI, CAPSA_OVERLAY
      capsa run: the highest Landlock ABI to use; off to mount no overlayfs.
  CAPSA_FETCH_STALL_SECS, ALL_PROXY, HTTPS_PROXY, HTTP_PROXY, NO_PROXY
      Downloads from remotes: seconds without a byte before one fails (default 30); proxies.

FILES
  $XDG_DATA_HOME/capsa/
      The store: installed apps, their layers, state, overrides and consent.
  $XDG_CACHE_HOME/capsa/
      Unpacked layers of bundle files run without installing; repository downloads.
  $XDG_CONFIG_HOME/capsa/remotes/
      The remotes apps are installed from.
  $XDG_STATE_HOME/capsa/
      What this client trusts of each remote, where installed apps came from, its id.
  $XDG_DATA_HOME/applications/, icons/, mime/
      The desktop entries, icons and file types of installed apps.
  capsa.toml
      The recipe capsa pack reads by default; see capsa.toml(5).

SEE ALSO
capsa.toml(5)
";

pub(crate) const RUN: &str = "APP AND ITS ARGUMENTS
A name with a / or ending in .capsa is a bundle file (a missing one is an error naming it);
anything else is the id of an installed app, never a file in the current directory.
Everything after APP goes to the app, options too: capsa run APP --version runs the app with
--version. Put capsa's own options before APP. A -- right after APP is optional and not
passed on (capsa run APP -- -- x passes -- x).

CONSENT
Declining is not an error: the app starts with the grants agreed to (at least the safe
default), and capsa says which ones it withheld and how to give them.

HOST SOCKETS
A grant the host cannot honour is not faked: socket=x11 with no DISPLAY set, or a Wayland,
PulseAudio, PipeWire or session-bus socket, a device or a path the host does not have. capsa
warns before the app starts, naming the variable or path, and the app starts without it.

EXAMPLES
  capsa run org.python.Python3-3.11.capsa -- -c 'import ssl; print(ssl.OPENSSL_VERSION)'
      Run a bundle file, with arguments for the app after --.
  capsa run org.python.Python3 -- -V
      Run the installed app of that id.
  capsa run --report --allow network app.capsa
      Grant the network for this run, and print what each sandbox layer enforces first.
  capsa run --deny network --allow network=tcp:443 org.example.App
      Narrow the app's network to outgoing TCP port 443.
  capsa run --ephemeral --allow filesystem=xdg-download:ro app.capsa
      Keep no state, and let the app read your download folder.
  capsa run --open-files org.capsa.XMessage -- ~/notes/a.capsanote
      Give the app that file alone, read-write, as its desktop entry does.
  capsa run --trace-missing app.capsa
      After the run, list the paths the app looked for and did not find.

EXIT STATUS
  N
      The app's own exit status; 128+N when it was killed by signal N (also when you
      declined a grant: the app ran without it).
  125
      capsa failed: a usage error, a bundle that does not verify, a sandbox that cannot be
      set up (the message says which, and often what to do).
  126
      The app's command exists but cannot be executed.
  127
      The app's command is not found in the bundle.

ENVIRONMENT
  HOME, USER
      The path the app's private home is mounted at, and the user name it sees.
  XDG_DATA_HOME, XDG_CACHE_HOME, XDG_CONFIG_HOME
      Where the store and state, the unpacked layers, and user-dirs.dirs (the xdg-*
      folders) are; see FILES.
  DISPLAY, XAUTHORITY
      The X server of socket=x11, and the consent dialog's display.
  WAYLAND_DISPLAY, XDG_RUNTIME_DIR
      The Wayland socket (default wayland-0) and the runtime folder of the wayland,
      pulseaudio and pipewire sockets.
  DBUS_SESSION_BUS_ADDRESS
      The session bus of socket=session-bus.
  TERM, COLORTERM, LANG, LANGUAGE, LC_*, TZ, NO_COLOR
      Passed to the app as they are; no other variable of yours is, and app.env and --env
      set more.
  CAPSA_LANDLOCK_ABI
      Use Landlock ABI N at most, to see what an older kernel would enforce.
  CAPSA_OVERLAY
      off: mount no overlayfs; the root is the layers merged read-only, as where overlayfs
      cannot be mounted.

FILES
  $XDG_CACHE_HOME/capsa/layers/DIGEST/
      The unpacked layers of bundle files, checked once, then sealed.
  $XDG_DATA_HOME/capsa/state/ID@PUBLISHER/
      The app's writable layer and private home (none with --ephemeral).
  $XDG_DATA_HOME/capsa/consent/ID@PUBLISHER.json
      What you agreed a bundle file may use (--yes, or yes when asked).
  $XDG_DATA_HOME/capsa/overrides/ID@PUBLISHER.json
      Your overrides of an installed app's permissions (capsa override).
  $XDG_CONFIG_HOME/user-dirs.dirs
      Where the xdg-download, xdg-music, ... folders are.

SEE ALSO
capsa-install(1), capsa-override(1), capsa-diff(1), capsa-reset(1), capsa.toml(5)
";
