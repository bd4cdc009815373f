//! The store commands: install, uninstall, list, info, override, reset, diff, integrate.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use store::Layout;

use crate::cli::{
    AppArgs, DiffArgs, InfoArgs, InstallArgs, IntegrateArgs, ListArgs, OverrideArgs, UninstallArgs,
};
use crate::output::size;

/// The running capsa, as desktop entries should call it.
pub(crate) fn exe() -> PathBuf {
    std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_else(|_| PathBuf::from("capsa"))
}

/// Text from a bundle, made safe for a terminal: control and bidi characters are shown escaped.
pub(crate) fn safe(s: &str) -> String {
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

fn describe(a: &store::Asking) -> String {
    let m = a.manifest;
    let mut out = format!(
        "{} {} ({}), published by {}\n",
        safe(&m.name),
        safe(&m.version),
        safe(&m.id),
        a.publisher
    );
    let asked = userdata::Grants::from_list(&m.permissions.grants);
    let (title, grants) = match a.previous {
        Some(p) => (
            "  new permissions",
            asked.beyond(&userdata::Grants::from_list(&p.permissions.grants)),
        ),
        None => ("  permissions", asked.to_vec()),
    };
    if grants.is_empty() {
        out.push_str(match a.previous {
            Some(_) => "  new permissions: none\n",
            None => "  permissions: none (no network, no host files, no devices)\n",
        });
    } else {
        out.push_str(&format!("{title}:\n"));
        for g in grants {
            out.push_str(&format!("    {}\n", safe(&g.to_string())));
        }
    }
    let size: u64 = m
        .layers
        .iter()
        .map(|l| l.unpacked_size)
        .fold(0, u64::saturating_add);
    out.push_str(&format!("  unpacks to: {}\n", crate::output::size(size)));
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
    if crate::cmd::remote::is_app_id_target(&a) {
        return crate::cmd::remote::install(a);
    }
    let trusted = a
        .key
        .as_deref()
        .map(bundle_format::PublicKey::load)
        .transpose()?;
    if std::fs::symlink_metadata(&a.target).is_err() {
        return Err(super::bundle_file::missing(&a.target, ""));
    }
    let name = a.target.display().to_string();
    match install_file(&a.target, &name, trusted, a.default_for, a.yes)? {
        Some(done) => report(&done)?,
        None => eprintln!("capsa: not installed: nothing changed"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `store::install` of a bundle file with the consent dialog (shown on stderr; asked unless
/// `yes`); `name` is what errors call it (the file, or the app id of a remote's app). `None`
/// when the user said no: nothing changed.
pub(crate) fn install_file(
    bundle: &Path,
    name: &str,
    trusted: Option<bundle_format::PublicKey>,
    default_for: Vec<String>,
    yes: bool,
) -> anyhow::Result<Option<store::Installed>> {
    install_file_with(bundle, name, trusted, default_for, yes, exe())
}

/// [`install_file`] with the capsa that the app's desktop entries run (`exe`).
pub(crate) fn install_file_with(
    bundle: &Path,
    name: &str,
    trusted: Option<bundle_format::PublicKey>,
    default_for: Vec<String>,
    yes: bool,
    exe: PathBuf,
) -> anyhow::Result<Option<store::Installed>> {
    let opts = store::InstallOptions {
        trusted,
        default_for,
        exe,
    };
    let interactive = std::io::stdin().is_terminal();
    if !yes && !interactive {
        bail!("standard input is not a terminal: pass --yes to install without confirmation");
    }
    let mut confirm = |asking: &store::Asking| {
        eprint!("{}", describe(asking));
        if yes {
            return true;
        }
        eprint!("Install? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).is_ok()
            && matches!(line.trim(), "y" | "Y" | "yes")
    };
    match store::install(&Layout::user(), bundle, &opts, &mut confirm) {
        Err(store::StoreError::Cancelled) => Ok(None),
        r => Ok(Some(r.with_context(|| format!("cannot install {name}"))?)),
    }
}

/// What an install did, on stdout; its warnings on stderr.
pub(crate) fn report(done: &store::Installed) -> anyhow::Result<()> {
    for w in &done.warnings {
        eprintln!("capsa: warning: {w}");
    }
    let line = match &done.replaced {
        _ if done.unchanged => format!("{} {} is already installed", done.id, safe(&done.version)),
        Some(v) => format!(
            "updated {} from {} to {}",
            done.id,
            safe(v),
            safe(&done.version)
        ),
        None => format!("installed {} {}", done.id, safe(&done.version)),
    };
    outln!("{line}");
    Ok(())
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
    } else if apps.is_empty() {
        eprintln!("no apps installed (capsa install BUNDLE installs one)");
    } else {
        for app in apps {
            outln!(
                "{:<40} {:<12} {:<28} {}",
                app.id,
                safe(&app.version),
                safe(&app.name),
                app.publisher
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
    outln!("  publisher    {}", i.publisher);
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
            i.overrides
                .allow
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            i.overrides
                .deny
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
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
    let who = rel.identity();
    if a.reset {
        store::overrides::reset(&layout, &who)?;
    } else if !a.allow.is_empty() || !a.deny.is_empty() {
        store::overrides::change(&layout, &who, &a.allow, &a.deny)?;
    }
    let stored = store::overrides::load(&layout, &who)?;
    let grants = store::overrides::effective(
        &rel.manifest.permissions.grants,
        &stored,
        &Default::default(),
    );
    let grants: Vec<String> = grants.iter().map(|g| g.to_string()).collect();
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
    let who = store::Release::current(&layout, &a.app)?.identity();
    store::state::reset(&layout, &who)?;
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
