//! `capsa run`: resolves the name (a bundle file or an installed app), merges the grants
//! (manifest, consent, overrides, `--allow`/`--deny`), asks for consent where a bundle file
//! wants more than the safe default, and starts the sandbox. Launcher errors end with
//! 125/126/127 and a hint, as podman and env do; the app's own status passes through.
//! With `--trace-missing` the paths the app missed follow its end on standard error, whatever
//! its status (a missing icon or plugin does not always make an app fail).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use launcher::{
    App, Before, Changes, Command, LaunchError, Lookup, Permission, RunOptions, Source,
    TraceOutcome,
};
use userdata::consent::{self, Answer};
use userdata::Grants;

use crate::cli::RunArgs;

fn fail(e: anyhow::Error, code: u8, hint: Option<String>) -> ExitCode {
    eprintln!("capsa: error: {}", crate::output::error_chain(&e));
    if let Some(h) = hint {
        eprintln!("capsa: hint: {h}");
    }
    ExitCode::from(code)
}

fn launch_fail(e: LaunchError) -> ExitCode {
    let (code, hint) = (e.exit_code(), e.hint());
    fail(anyhow::Error::new(e), code, hint)
}

/// A name with a `/` or the `.capsa` suffix is a file; anything else an installed app.
fn source(name: &str) -> anyhow::Result<Source> {
    if name.contains('/') || name.ends_with(".capsa") {
        let path = PathBuf::from(name);
        if path.symlink_metadata().is_err() {
            let why = " (a name with a `/` or ending in .capsa is a bundle file)";
            return Err(super::bundle_file::missing(&path, why));
        }
        return Ok(Source::Bundle(path));
    }
    let layout = store::Layout::user();
    let r = store::Release::current(&layout, name)?;
    let publisher = r.publisher.clone();
    // The TOCs are read only if a layer's seal does not hold (or for the read-only root).
    let (dir, manifest, id) = (r.dir.clone(), r.manifest.clone(), name.to_owned());
    Ok(Source::Installed {
        digest: r.digest,
        manifest: Box::new(r.manifest),
        release: r.dir,
        tocs: std::sync::Arc::new(move || {
            store::release::read_tocs(&dir, &manifest, &id).map_err(Into::into)
        }),
        layers: layout.layers(),
        publisher,
    })
}

/// Riskiest first: files and devices, the network, then sockets.
fn risk(p: &Permission) -> u8 {
    use userdata::policy::{Device, FsTarget, Socket};
    match p {
        Permission::Filesystem {
            target: FsTarget::Home,
            read_only: false,
        } => 0,
        Permission::Device(Device::All) => 1,
        Permission::Socket(Socket::SessionBus) => 2,
        Permission::Filesystem {
            read_only: false, ..
        } => 3,
        Permission::Filesystem { .. } => 4,
        Permission::Network => 5,
        Permission::Socket(Socket::X11) => 6,
        _ => 7,
    }
}

/// Asks on the terminal, or with a desktop dialog when there is none.
fn ask(app: &App, missing: &[Permission], declined_before: bool) -> Answer {
    let who = app.identity();
    let m = app.manifest();
    let mut missing = missing.to_vec();
    missing.sort_by_key(risk);
    let items: Vec<String> = missing
        .iter()
        .map(|p| super::store::safe(&p.to_string()))
        .collect();
    let size: u64 = m
        .layers
        .iter()
        .map(|l| l.unpacked_size)
        .fold(0, u64::saturating_add);
    let size = crate::output::size(size);
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if interactive {
        eprintln!(
            "{} {} ({}, {}; unpacks to {size}) asks for:",
            super::store::safe(&m.name),
            super::store::safe(&m.version),
            m.id,
            who.publisher
        );
        for i in &items {
            eprintln!("    {i}");
        }
        eprint!("Allow? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let yes = std::io::stdin().lock().read_line(&mut line).is_ok()
            && matches!(line.trim(), "y" | "Y" | "yes");
        return if yes { Answer::Allow } else { Answer::Deny };
    }
    if declined_before {
        return Answer::Deny;
    }
    let q = store::dialog::Question {
        title: format!("Capsa: {}", m.name),
        text: format!(
            "{} {} ({}, {}; unpacks to {size}) asks for:",
            m.name, m.version, m.id, who.publisher
        ),
        items,
        allow_label: "Allow".into(),
        deny_label: "Run without".into(),
    };
    match store::dialog::ask(&q) {
        store::dialog::Answer::Allow => Answer::Allow,
        store::dialog::Answer::Deny => Answer::Deny,
        store::dialog::Answer::Unavailable => Answer::Unavailable,
    }
}

/// The effective grants of this run: the manifest's, the consent (an installed app's was
/// given at install), the identity's stored overrides, the run's own. The overrides belong to
/// the identity, so they hold for a bundle file of an installed app's identity too.
fn grants(app: &App, run: &Changes, yes: bool) -> anyhow::Result<Grants> {
    let asked = &app.manifest().permissions.grants;
    let who = app.identity();
    let stored = store::overrides::load(&store::Layout::user(), who)?;
    if app.is_installed() {
        return Ok(store::overrides::effective(asked, &stored, run));
    }
    // A kind the overrides or the run deny is theirs to decide: consent is not asked for it.
    let later = stored.then(run);
    let asked_set = Grants::from_list(asked.iter().filter(|p| !later.deny.contains(&p.key())));
    let d = consent::decide(
        who,
        app.digest(),
        &asked_set,
        yes,
        &mut |missing, before| ask(app, missing, before),
    )?;
    let g = userdata::merge(asked, &[&d.level, &stored, run]);
    let withheld: Vec<String> = d
        .withheld
        .iter()
        .filter(|p| !g.has(p))
        .map(|p| p.to_string())
        .collect();
    if !withheld.is_empty() {
        eprintln!(
            "capsa: warning: running without {} (not agreed to): pass --yes to grant what {} asks for and remember it, or --allow PERM for this run",
            withheld.join(", "),
            who.id
        );
    }
    Ok(g)
}

/// The report on standard error: the table, or one line of JSON for scripts and tests.
fn print_report(r: &launcher::Report, json: bool) {
    if !json {
        eprint!("{}", r.render());
        return;
    }
    match serde_json::to_string(r) {
        Ok(line) => eprintln!("{line}"),
        Err(e) => eprintln!("capsa: warning: cannot write the report as JSON: {e}"),
    }
}

/// Lines of missing paths shown on a terminal; `--json` lists them all.
const MISSING_SHOWN: usize = 30;

/// What `--trace-missing` found, on standard error: a list, or one line of JSON.
fn print_missing(o: &TraceOutcome, json: bool) {
    if json {
        match serde_json::to_string(&serde_json::json!({ "trace_missing": o })) {
            Ok(line) => eprintln!("{line}"),
            Err(e) => eprintln!("capsa: warning: cannot write the trace as JSON: {e}"),
        }
        return;
    }
    let paths = match o {
        TraceOutcome::Failed(why) => {
            eprintln!("capsa: warning: --trace-missing: {why}");
            return;
        }
        TraceOutcome::Missing { paths, .. } => paths,
    };
    if paths.is_empty() {
        eprintln!("capsa: the app found every path it looked for (--trace-missing)");
        return;
    }
    eprintln!("capsa: the app looked for these paths and did not find them (most relevant first):");
    for m in paths.iter().take(MISSING_SHOWN) {
        let how = match m.lookup {
            Lookup::Exec => "program",
            Lookup::Open => "opened",
            Lookup::Stat => "looked up",
        };
        eprintln!("capsa:     {}  ({how})", super::store::safe(&m.path));
    }
    if paths.len() > MISSING_SHOWN {
        eprintln!(
            "capsa:     ... and {} more (--json lists them all)",
            paths.len() - MISSING_SHOWN
        );
    }
}

/// The app's name and its arguments, from `APP [--] ARGS...`: a `--` right after the name is
/// optional and dropped, whatever follows it is the app's.
fn split(words: Vec<String>) -> Option<(String, Vec<String>)> {
    let mut words = words.into_iter();
    let app = words.next()?;
    let mut args: Vec<String> = words.collect();
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    Some((app, args))
}

pub fn run(a: RunArgs) -> ExitCode {
    let Some((name, args)) = split(a.app) else {
        return fail(
            anyhow::anyhow!("capsa run needs an app: a bundle file or an app id"),
            125,
            None,
        );
    };
    let key = match a
        .key
        .as_deref()
        .map(bundle_format::PublicKey::load)
        .transpose()
    {
        Ok(k) => k,
        Err(e) => return fail(e.into(), 125, None),
    };
    let src = match source(&name) {
        Ok(s) => s,
        Err(e) => return fail(e, 125, None),
    };
    let app = match App::open(src, key.as_ref()) {
        Ok(app) => app,
        Err(e) => return launch_fail(e),
    };
    let run = Changes {
        allow: a.allow,
        deny: a.deny.into_iter().collect(),
    };
    let g = match grants(&app, &run, a.yes) {
        Ok(g) => g,
        Err(e) => return fail(e, 125, None),
    };
    let options = RunOptions {
        command: a.command,
        env: a.env,
        args,
        ephemeral: a.ephemeral,
        require_landlock: a.require_landlock,
        open_files: a.open_files,
        trace_missing: a.trace_missing,
    };
    let mut cmd = Command::new(app);
    cmd.grants(g).options(options).report(a.report);
    let json = a.json;
    let child = match cmd.spawn(&mut |b| match b {
        Before::Unmet(n) => eprintln!("capsa: warning: {n}; the app starts without it"),
        Before::Report(r) => print_report(r, json),
    }) {
        Ok(c) => c,
        Err(e) => return launch_fail(e),
    };
    for r in child.replaced_stdio() {
        let name = ["standard input", "standard output", "standard error"][r.fd as usize];
        eprintln!(
            "capsa: warning: {name} was {}; the app gets /dev/null instead",
            r.was
        );
    }
    match child.wait_traced() {
        Ok((status, traced)) => {
            if let Some(o) = &traced {
                print_missing(o, json);
            }
            ExitCode::from(status.code().clamp(0, 255) as u8)
        }
        Err(e) => launch_fail(e),
    }
}
