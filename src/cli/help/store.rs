//! The `after_long_help` of the store commands: install, uninstall, list, info, override,
//! reset, diff, integrate (layout: [`super`]).

pub(crate) const INSTALL: &str = concat!(
    "EXAMPLES
  capsa install org.python.Python3-3.11.capsa
      Install a bundle file, after showing the permissions it asks for and asking.
  capsa install --yes --key publisher.pub app.capsa
      Install without asking (for scripts), only if the bundle is signed by that key.
  capsa install --default-for text/x-capsa-note org.capsa.XMessage-1.0.capsa
      Also make the app the default for a type it opens.
  capsa install org.example.Editor --remote example --channel beta
      Install an app by id from a remote's beta channel.

",
    "EXIT STATUS
  0
      Installed, already installed, or not installed because you said no (nothing changed).
  1
      The bundle does not verify, its publisher differs from the installed app's, an
      older release was refused, standard input is not a terminal and --yes is missing, or
      the store could not be changed; the store is as it was.
  2
      A usage error.

",
    env_store!(),
    "  CAPSA_FETCH_STALL_SECS, ALL_PROXY, HTTPS_PROXY, HTTP_PROXY, NO_PROXY
      For an app id: see capsa-update(1).

FILES
",
    files_store!(),
    files_exports!(),
    "
SEE ALSO
capsa-uninstall(1), capsa-list(1), capsa-info(1), capsa-run(1), capsa-remote(1)
"
);

pub(crate) const UNINSTALL: &str = concat!(
    "EXAMPLES
  capsa uninstall org.python.Python3
      Remove the app, its releases and its desktop exports; keep its data.
  capsa uninstall --delete-data org.python.Python3
      Remove its writable layer, private home and overrides too.

",
    exit_usual!(),
    "
",
    env_store!(),
    "
FILES
",
    files_store!(),
    files_exports!(),
    "
SEE ALSO
capsa-install(1), capsa-list(1)
"
);

pub(crate) const LIST: &str = concat!(
    "EXAMPLES
  capsa list
      One line per app: id, version, name and publisher.
  capsa list --json
      The same as a JSON array, for scripts.

",
    exit_usual!(),
    "
",
    env_store!(),
    "
FILES
",
    files_store!(),
    "
SEE ALSO
capsa-info(1), capsa-install(1)
"
);

pub(crate) const INFO: &str = concat!(
    "EXAMPLES
  capsa info org.python.Python3
      Version, manifest digest, publisher, disk use, layers, permissions and exports.
  capsa info --json org.python.Python3
      The same as a JSON object.

",
    exit_usual!(),
    "
",
    env_store!(),
    "
FILES
",
    files_store!(),
    "
SEE ALSO
capsa-list(1), capsa-override(1)
"
);

pub(crate) const OVERRIDE: &str = concat!(
    "EXAMPLES
  capsa override org.example.App --allow network
      Grant the network at every run.
  capsa override org.example.App --deny filesystem=home --allow filesystem=xdg-download
      Replace the app's home grant by the download folder.
  capsa override org.example.App --reset
      Back to what the app's manifest asks for.
  capsa override org.example.App
      Print the permissions it runs with.

",
    exit_usual!(),
    "
",
    env_store!(),
    "
FILES
",
    files_store!(),
    "
SEE ALSO
capsa-run(1), capsa-info(1)
"
);

pub(crate) const RESET: &str = concat!(
    "EXAMPLES
  capsa reset org.example.App
      Delete the app's writable layer and private home: it starts as freshly installed.

",
    exit_usual!(),
    "
",
    env_store!(),
    "
FILES
",
    files_store!(),
    "
SEE ALSO
capsa-diff(1), capsa-run(1)
"
);

pub(crate) const DIFF: &str = concat!(
    "EXAMPLES
  capsa diff org.example.App
      One line per path: A added, M changed, D deleted, R a folder replaced whole.
  capsa diff --json org.example.App
      The same as a JSON array.

",
    exit_usual!(),
    "
",
    env_store!(),
    "
FILES
",
    files_store!(),
    "
SEE ALSO
capsa-reset(1), capsa-run(1)
"
);

pub(crate) const INTEGRATE: &str = concat!(
    "EXAMPLES
  capsa integrate
      Double-clicking a .capsa file in the file manager now runs it with capsa run.
  capsa integrate --remove
      Undo it.

",
    exit_usual!(),
    "
",
    env_store!(),
    "
FILES
  $XDG_DATA_HOME/applications/capsa.desktop
      The desktop entry that runs .capsa files (not shown in menus).
  $XDG_DATA_HOME/mime/packages/capsa.xml
      The type application/vnd.capsa.bundle: *.capsa files and the bundle magic.
  $XDG_CONFIG_HOME/mimeapps.list
      Where capsa is made the type's default application.

SEE ALSO
capsa-run(1), capsa-install(1)
"
);

pub(crate) const GC: &str = concat!(
    "WHAT IS KEPT
The layers an installed app's current or previous release names (an installed app runs
from the store in $XDG_DATA_HOME/capsa, which its uninstall cleans; its cached copy is kept
for the bundle file), and every entry a running sandbox uses: each run holds a lock on the
entries it uses until it ends, and gc never waits for one. A bundle file run again after gc
is unpacked again.

CRASH SAFETY
An entry leaves its place in one rename into a .gc-* directory beside it before it is
deleted: a gc killed half-way leaves that directory, never part of an entry, and the next gc
removes it.

EXAMPLES
  capsa gc --dry-run
      List what the layer cache holds that nothing needs, and the space it takes.
  capsa gc
      Free it: the layers of bundle files no installed app names, merged roots, leftovers.
  capsa gc --json
      The same, as JSON for scripts.

",
    exit_usual!(),
    "
ENVIRONMENT
  XDG_CACHE_HOME
      Where the layer cache is: $XDG_CACHE_HOME/capsa (default ~/.cache/capsa).
  XDG_DATA_HOME
      Where the store is, whose installed apps' layers are kept.

FILES
  $XDG_CACHE_HOME/capsa/layers/DIGEST/
      The unpacked layers of bundle files: what gc frees.
  $XDG_CACHE_HOME/capsa/locks/
      The locks each run holds on the entries it uses.

SEE ALSO
capsa-uninstall(1), capsa-run(1), capsa-list(1)
"
);
