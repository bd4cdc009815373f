//! The store commands: install, uninstall, list, info, override, reset, diff, integrate.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use bundle_format::Manifest;
use store::Layout;

use crate::cli::{
    AppArgs, DiffArgs, InfoArgs, InstallArgs, IntegrateArgs, ListArgs, OverrideArgs, UninstallArgs,
};
use crate::output::size;

/// The running capsa, as desktop entries should call it.
fn exe() -> PathBuf {
    std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_else(|_| PathBuf::from("capsa"))
}

/// Text from a bundle, made safe for a terminal: control and bidi characters are shown escaped.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if bundle_format::path::is_forbidden_char(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn describe(m: &Manifest) -> String {
    let grants: Vec<String> = m
        .permissions
        .grants
        .iter()
        .map(|g| safe(&g.to_string()))
        .collect();
    let mut out = format!("{} {} ({})\n", safe(&m.name), safe(&m.version), safe(&m.id));
    if grants.is_empty() {
        out.push_str("  permissions: none (no network, no host files, no devices)\n");
    } else {
        out.push_str("  permissions:\n");
        for g in grants {
            out.push_str(&format!("    {g}\n"));
        }
    }
    if let Some(d) = &m.desktop {
        if !d.mime_types.is_empty() {
            out.push_str(&format!(
                "  opens: {}\n",
                d.mime_types
                    .iter()
                    .map(|t| safe(t))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    out
}

pub fn install(a: InstallArgs) -> anyhow::Result<ExitCode> {
    let trusted = a
        .key
        .as_deref()
        .map(bundle_format::PublicKey::load)
        .transpose()?;
    let opts = store::InstallOptions {
        trusted,
        default_for: a.default_for,
        exe: exe(),
    };
    let interactive = std::io::stdin().is_terminal();
    if !a.yes && !interactive {
        bail!("standard input is not a terminal: pass --yes to install without confirmation");
    }
    let mut confirm = |m: &Manifest| {
        eprint!("{}", describe(m));
        if a.yes {
            return true;
        }
        eprint!("Install? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).is_ok()
            && matches!(line.trim(), "y" | "Y" | "yes")
    };
    let done = store::install(&Layout::user(), &a.bundle, &opts, &mut confirm)
        .with_context(|| format!("cannot install {}", a.bundle.display()))?;
    for w in &done.warnings {
        eprintln!("capsa: warning: {w}");
    }
    match &done.replaced {
        _ if done.unchanged => outln!("{} {} is already installed", done.id, safe(&done.version)),
        Some(v) => outln!(
            "updated {} from {} to {}",
            done.id,
            safe(v),
            safe(&done.version)
        ),
        None => outln!("installed {} {}", done.id, safe(&done.version)),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn uninstall(a: UninstallArgs) -> anyhow::Result<ExitCode> {
    store::uninstall(&Layout::user(), &a.app, a.delete_data, &exe())
        .with_context(|| format!("cannot uninstall {}", a.app))?;
    outln!(
        "uninstalled {}{}",
        a.app,
        if a.delete_data {
            " and its data"
        } else {
            " (its data is kept; --delete-data removes it)"
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let apps = store::list(&Layout::user(), &exe())?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&apps)?);
    } else {
        for app in apps {
            outln!(
                "{:<40} {:<12} {}",
                app.id,
                safe(&app.version),
                safe(&app.name)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn info(a: InfoArgs) -> anyhow::Result<ExitCode> {
    let i = store::info(&Layout::user(), &a.app, &exe())?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&i)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{} {}: {}", i.id, safe(&i.version), safe(&i.name));
    outln!("  manifest     {}", i.manifest_digest);
    if let Some(p) = &i.previous_version {
        outln!("  previous     {} (kept for rollback)", safe(p));
    }
    outln!(
        "  disk         {} in layers, {} of state",
        size(i.layers_size),
        size(i.state_size)
    );
    for l in &i.layers {
        let shared = if l.shared_with.is_empty() {
            "not shared".to_owned()
        } else {
            format!("shared with {}", l.shared_with.join(", "))
        };
        outln!(
            "  layer {:<5}  {}  {:>9}  {shared}",
            l.role,
            &l.digest[7..19],
            size(l.unpacked_size)
        );
    }
    outln!(
        "  permissions  {}",
        if i.permissions.is_empty() {
            "none".into()
        } else {
            i.permissions.join(", ")
        }
    );
    if !i.overrides.allow.is_empty() || !i.overrides.deny.is_empty() {
        outln!(
            "  overrides    allow [{}] deny [{}]",
            i.overrides.allow.join(", "),
            i.overrides.deny.join(", ")
        );
    }
    for e in &i.exports {
        outln!("  exports      {e}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn override_(a: OverrideArgs) -> anyhow::Result<ExitCode> {
    let layout = Layout::user();
    let _lock = layout.lock()?;
    let rel = store::Release::current(&layout, &a.app)?;
    if a.reset {
        store::overrides::reset(&layout, &a.app)?;
    } else if !a.allow.is_empty() || !a.deny.is_empty() {
        store::overrides::change(&layout, &a.app, &rel.manifest, &a.allow, &a.deny)?;
    }
    let stored = store::overrides::load(&layout, &a.app)?;
    let spec = store::overrides::effective(&rel.manifest, &stored, &Default::default())?;
    let grants: Vec<String> = spec.grants.iter().map(|g| g.to_string()).collect();
    outln!(
        "{}: {}",
        a.app,
        if grants.is_empty() {
            "no permissions".into()
        } else {
            grants.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn reset(a: AppArgs) -> anyhow::Result<ExitCode> {
    let layout = Layout::user();
    let _lock = layout.lock()?;
    store::Release::current(&layout, &a.app)?;
    store::state::reset(&layout, &a.app)?;
    outln!(
        "reset {}: its writable layer and private home are gone",
        a.app
    );
    Ok(ExitCode::SUCCESS)
}

pub fn diff(a: DiffArgs) -> anyhow::Result<ExitCode> {
    let changes = store::state::diff(&Layout::user(), &a.app)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&changes)?);
    } else {
        for c in changes {
            let mark = match c.kind {
                "added" => "A",
                "changed" => "M",
                "deleted" => "D",
                _ => "R",
            };
            outln!("{mark} {}", safe(&c.path));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn integrate(a: IntegrateArgs) -> anyhow::Result<ExitCode> {
    let files = store::export::integrate(&exe(), a.remove)?;
    for f in files {
        outln!(
            "{} {}",
            if a.remove { "removed" } else { "wrote" },
            f.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
