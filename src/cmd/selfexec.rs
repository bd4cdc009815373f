//! Running a self-executable bundle: capsa started from a file that ends with a bundle
//! trailer (`/proc/self/exe`, the executed inode) is that bundle's launcher.
//!
//! Without launcher options it does exactly what `capsa run FILE -- ARGS` does ([`super::run`]
//! with the same [`RunArgs`]: sandbox, consent, state, exit statuses), the bundle opened
//! through `/proc/self/exe`, so a file renamed or replaced after the start is never read
//! instead. The identity (id and publisher) comes from the bundle alone, so state and consent
//! are those of `capsa run` of the same file. Launcher options ([`args`]) stand for
//! `capsa inspect`, `inspect --report`, `extract`, `install` and `verify` of the file.
//!
//! Installing needs a capsa for the app's desktop entries (and for `capsa run ID`): a capsa on
//! `PATH`, else `~/.local/bin/capsa`, which is written from this file's stub ELF (checked
//! against its note) when it is not there. The file itself is never what they run: it is the
//! app, not capsa.

mod args;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use bundle_format::{stub, Bundle};

use self::args::{Action, StubArgs};
use super::stub::{ends_with_trailer, SELF_EXE};
use crate::cli::{InspectArgs, RunArgs};

/// Whether this process runs from a self-executable bundle.
pub fn detect() -> bool {
    std::fs::File::open(SELF_EXE).is_ok_and(|f| ends_with_trailer(&f))
}

/// The launcher's entry point: parses the arguments and does what they ask.
pub fn main() -> ExitCode {
    let name = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(SELF_EXE));
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let a = match args::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("capsa: error: {}", e.0);
            return ExitCode::from(125);
        }
    };
    let result = match &a.action {
        Action::Run => return run(a, &name),
        Action::Help => help(&name),
        Action::Info => inspect(&name, false),
        Action::Report => inspect(&name, true),
        Action::Extract(dir) => {
            open(&name).and_then(|b| super::extract::extract_opened(&b, &name, dir))
        }
        Action::Install => install(&name, a.yes),
        Action::Verify => super::verify::verify_named(Path::new(SELF_EXE), &name, None, false),
    };
    match result {
        Ok(code) => code,
        Err(err) if crate::output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("capsa: error: {}", crate::output::error_chain(&err));
            ExitCode::from(1)
        }
    }
}

fn open(name: &Path) -> anyhow::Result<Bundle> {
    Bundle::open(Path::new(SELF_EXE)).with_context(|| format!("cannot open {}", name.display()))
}

/// `capsa run FILE -- ARGS`, FILE being this file.
fn run(a: StubArgs, name: &Path) -> ExitCode {
    // Opened once here so that a bundle this capsa cannot read is named by its file.
    if let Err(e) = open(name) {
        eprintln!("capsa: error: {}", crate::output::error_chain(&e));
        return ExitCode::from(125);
    }
    super::run::run(RunArgs {
        // The `--` keeps the app's first argument its own, whatever it is.
        app: [SELF_EXE.to_owned(), "--".to_owned()]
            .into_iter()
            .chain(a.app_args)
            .collect(),
        yes: a.yes,
        open_files: false,
        allow: Vec::new(),
        deny: Vec::new(),
        ephemeral: false,
        report: false,
        json: false,
        trace_missing: false,
        command: None,
        env: Vec::new(),
        key: None,
        require_landlock: false,
    })
}

fn inspect(name: &Path, report: bool) -> anyhow::Result<ExitCode> {
    let a = InspectArgs {
        bundle: name.to_path_buf(),
        json: false,
        files: false,
        report,
    };
    super::inspect::show(&open(name)?, &a, name)
}

fn help(name: &Path) -> anyhow::Result<ExitCode> {
    let n = name.display();
    outln!(
        "{n}
is a self-executable Capsa bundle: running it runs its app in capsa's sandbox (capsa {}),
as `capsa run FILE -- ARGS` does for this file. Every argument goes to the app, apart from
these launcher options before them:

  --capsa-info          show the bundle (capsa inspect)
  --capsa-report        show its capture report (capsa inspect --report)
  --capsa-extract DIR   extract the app's files into DIR (capsa extract)
  --capsa-install       install the app into your app store (capsa install); apps' desktop
                        entries run a capsa on PATH, else ~/.local/bin/capsa, which is
                        written from this file when it is not there
  --capsa-verify        check every byte of this file, its launcher stub included (capsa verify)
  --capsa-yes           grant what the app asks for without asking (remembered), or install
                        without asking
  --capsa-help          this help
  --                    end of the launcher options: everything after it goes to the app

Exit status: the app's; 125 when the launcher fails (or an unknown --capsa- option is given),
126 when the command cannot be executed, 127 when it is not found.",
        super::stub::VERSION
    );
    Ok(ExitCode::SUCCESS)
}

/// `capsa install FILE`, FILE being this file.
fn install(name: &Path, yes: bool) -> anyhow::Result<ExitCode> {
    if !yes && !std::io::stdin().is_terminal() {
        bail!("standard input is not a terminal: pass --capsa-yes to install without confirmation");
    }
    let b = open(name)?;
    let exe = launcher(&b, name);
    drop(b);
    let shown = name.display().to_string();
    match super::store::install_file_with(Path::new(SELF_EXE), &shown, None, Vec::new(), yes, exe)?
    {
        Some(done) => super::store::report(&done)?,
        None => eprintln!("capsa: not installed: nothing changed"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A usable capsa executable at `p`: a regular, executable file that is not itself a bundle.
fn is_capsa(p: &Path) -> bool {
    let ok = std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    ok && std::fs::File::open(p).is_ok_and(|f| !ends_with_trailer(&f))
}

fn on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join("capsa"))
        .find(|p| is_capsa(p))
        .and_then(|p| std::fs::canonicalize(p).ok())
}

/// The capsa that the installed app's desktop entries run (see the module doc). Falls back to
/// `capsa` (looked up in PATH when an entry runs), with a warning, when none can be had.
fn launcher(b: &Bundle, name: &Path) -> PathBuf {
    if let Some(p) = on_path() {
        return p;
    }
    match write_launcher(b) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "capsa: warning: no capsa for the app's desktop entries: {}; they run `capsa` from PATH (install capsa, or run {} --capsa-install again once it is)",
                crate::output::error_chain(&e),
                name.display()
            );
            PathBuf::from("capsa")
        }
    }
}

/// `~/.local/bin/capsa`: kept when it is a capsa already, else written from the stub's ELF.
fn write_launcher(b: &Bundle) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| Path::new(h).is_absolute())
        .context("HOME is not set to an absolute path")?;
    let target = Path::new(&home).join(".local/bin/capsa");
    if is_capsa(&target) {
        return Ok(target);
    }
    if std::fs::symlink_metadata(&target).is_ok() {
        bail!("{} exists and is not a capsa executable", target.display());
    }
    let check = b
        .verify_stub(None)
        .context("this file's launcher stub cannot be installed as capsa")?
        .context("this file has no launcher stub")?;
    let dir = target.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    stub::write_stub_elf(&target, b, &check.note)
        .with_context(|| format!("cannot write {}", target.display()))?;
    eprintln!(
        "capsa: installed capsa {} (this file's launcher) as {}: the app's desktop entries run it, and so can you: {} run ID",
        check.note.capsa_version,
        target.display(),
        target.display()
    );
    Ok(target)
}
