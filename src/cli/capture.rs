//! `capsa capture`: trace a program's run and write a starter recipe.

use std::path::PathBuf;

use clap::Args;

const CAPTURE_AFTER_HELP: &str = "\
EXAMPLES
  capsa capture -- git log                  # on a terminal: the pager is traced too
  capsa capture -o zenity.toml -- zenity --info --text hello
  capsa capture --timeout 30 -- python3 -m test test_os
  capsa pack capsa.toml                     # after reading and editing the recipe

The recipe names the program alone as app.command and the traced arguments in
capture.trace, so `capsa run BUNDLE -- ARGS` repeats the run. Every guessed line says why:
the id and version (from the package or desktop entry), each path (a widening unit, or the
run used it), each permission (what the run did: `# seen: connect /tmp/.X11-unix/X0`).
Files in your home are never put in the recipe; they are listed as comments.

EXIT STATUS
  0 when the recipe was written (whatever the program's own exit, which is reported);
  1 when the program could not be traced or the recipe not written; 2 on a usage error.";

/// Run a program traced and write a starter recipe (capsa.toml) from what it used.
///
/// The program runs on this machine, on your terminal and display, under a tracer (ptrace
/// with a seccomp filter that stops only on path and socket syscalls). What it opened,
/// executed and looked up becomes the recipe's capture (its package, the files outside it,
/// widened to whole plugin and data folders), and what it connected to and which files of
/// your home it used become proposed permissions, each with its evidence.
#[derive(Debug, Args)]
#[command(after_help = CAPTURE_AFTER_HELP)]
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
