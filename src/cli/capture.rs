//! `capsa capture`: trace a program's run and write a starter recipe.

use std::path::PathBuf;

use clap::Args;

const CAPTURE_AFTER_HELP: &str = "\
EXAMPLES
  capsa capture -- git log
      Trace git log on your terminal (its pager too) and write capsa.toml.
  capsa capture -o zenity.toml -- zenity --info --text hello
      A GUI program, on your display; the recipe goes to zenity.toml.
  capsa capture --timeout 30 -- python3 -m test test_os
      Kill the run after 30 seconds; what it used until then is in the recipe.
  capsa pack capsa.toml
      Pack the recipe, after reading and editing it.

THE RECIPE
The recipe names the program alone as app.command and the traced arguments in
capture.trace, so capsa run BUNDLE -- ARGS repeats the run. Every guessed line says why: the
id and version (from the package or desktop entry), each path (a widening unit, or the run
used it), each permission (what the run did: `# seen: connect /tmp/.X11-unix/X0`). Files in
your home are never put in the recipe; they are listed as comments.

EXIT STATUS
  0
      The recipe was written, whatever the program's own exit (which is reported).
  1
      The program could not be traced, or the recipe not written (it exists: see --force).
  2
      A usage error.

ENVIRONMENT
  PATH
      Where COMMAND is found when it has no /.
  HOME, XDG_RUNTIME_DIR, XDG_CONFIG_HOME
      Your home, runtime folder and user-dirs.dirs: what the run used there becomes a
      proposed permission (filesystem=..., socket=...), never a captured file.
  DISPLAY, WAYLAND_DISPLAY
      The program runs with your whole environment, on your terminal and display.

FILES
  capsa.toml
      The recipe written, unless --output names another file.
  /var/lib/dpkg/
      Where the program's package, and its version, are found.
  /usr/share/applications/
      Desktop entries, for the app's name when its package has one.

SEE ALSO
capsa.toml(5), capsa-pack(1), capsa-run(1)
";

/// Run a program traced and write a starter recipe (capsa.toml) from what it used.
///
/// The program runs on this machine, on your terminal and display, under a tracer (ptrace
/// with a seccomp filter that stops only on path and socket syscalls). What it opened,
/// executed and looked up becomes the recipe's capture (its package, the files outside it,
/// widened to whole plugin and data folders), and what it connected to and which files of
/// your home it used become proposed permissions, each with its evidence.
#[derive(Debug, Args)]
#[command(after_long_help = CAPTURE_AFTER_HELP)]
pub struct CaptureArgs {
    /// Where to write the recipe.
    #[arg(short, long, default_value = "capsa.toml")]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Seconds before the traced program (and everything it started) is killed.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,
    /// Also print the trace (every path, exec and connect) as JSON on standard output.
    #[arg(long)]
    pub json: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}
