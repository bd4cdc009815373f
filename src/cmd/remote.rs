//! The repository client commands: remote add/list/remove, search, install by name, update
//! and rollback. Every string that came from a repository is shown through `display`.
//!
//! `CAPSA_FETCH_STALL_SECS` (a knob for tests and for operators of slow links, not an option):
//! the seconds without a byte after which a download fails, instead of
//! [`repository::fetch::STALL_TIMEOUT`] (30 s); a value that is not a whole number from 1 up
//! is ignored.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use repository::client::text::action as action_text;
use repository::client::text::{display, why};
use repository::client::{self, Action, Client, Request};
use store::Layout;

use crate::cli::{InstallArgs, RemoteArgs, RemoteCommand, RollbackArgs, SearchArgs, UpdateArgs};
use crate::cmd::store::{exe, install_file, report};
use crate::output::{bar, size};
use indicatif::ProgressBar;

/// The client, with a download progress bar on stderr when it is a terminal (`bar` is
/// cleared by the caller when the command's downloads are over).
fn user_client(bar: &ProgressBar) -> Client {
    let stall = std::env::var("CAPSA_FETCH_STALL_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(repository::fetch::STALL_TIMEOUT, Duration::from_secs);
    let pb = bar.clone();
    let progress: client::net::Progress = Arc::new(move |done, all| {
        pb.set_length(all);
        pb.set_position(done);
    });
    Client::user(client::net::connect_with(
        repository::fetch::CONNECT_TIMEOUT,
        stall,
        Some(progress),
    ))
}

/// Whether `capsa install TARGET` names an app of a remote rather than a bundle file: with
/// `--remote` or `--channel` always; otherwise when no file of that name exists and the name
/// is an app id without a `/` or the `.capsa` suffix (which make it a file, as for `run`).
pub fn is_app_id_target(a: &InstallArgs) -> bool {
    if a.remote.is_some() || a.channel.is_some() {
        return true;
    }
    let Some(s) = a.target.to_str() else {
        return false;
    };
    std::fs::symlink_metadata(&a.target).is_err()
        && !s.contains('/')
        && !s.ends_with(".capsa")
        && bundle_format::manifest::validate_app_id(s).is_ok()
}

pub fn remote(a: RemoteArgs) -> anyhow::Result<ExitCode> {
    let dirs = client::Dirs::user();
    match a.command {
        RemoteCommand::Add {
            name,
            url,
            key,
            mirror,
        } => {
            let key = client::remote::parse_key(&key)?;
            let r = client::remote::add(&dirs, &name, &url, &mirror, &key)?;
            outln!("added remote {} ({}), key {}", r.name, r.url, r.key_id());
        }
        RemoteCommand::List { json } => {
            let remotes = client::remote::list(&dirs)?;
            if json {
                let v: Vec<_> = remotes
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "name": r.name, "url": r.url, "mirrors": r.mirrors, "key": r.key,
                            "key_id": r.key_id(),
                        })
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else if remotes.is_empty() {
                eprintln!("capsa: no remotes: add one with capsa remote add NAME URL --key KEY");
            } else {
                for r in remotes {
                    outln!("{}\t{}\tkey {}", r.name, r.url, r.key_id());
                    for m in &r.mirrors {
                        outln!("\tmirror {m}");
                    }
                }
            }
        }
        RemoteCommand::Remove { name } => {
            let r = client::remote::remove(&dirs, &name)?;
            outln!("removed remote {} ({})", r.name, r.url);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn search(a: SearchArgs) -> anyhow::Result<ExitCode> {
    let mut c = user_client(&ProgressBar::hidden());
    let found = c.search(&a.term);
    for e in &found.failed {
        eprintln!("capsa: warning: {e}");
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&found.hits)?);
        return Ok(ExitCode::SUCCESS);
    }
    if found.hits.is_empty() {
        eprintln!("capsa: no app matches {:?}", a.term);
    }
    for h in &found.hits {
        outln!(
            "{}\t{}\t{}\t{}",
            h.app,
            display(h.version.as_deref().unwrap_or("-")),
            h.remote,
            display(&h.name)
        );
        if !h.summary.is_empty() {
            outln!("\t{}", display(&h.summary));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `capsa install APP-ID`: the bundle is assembled from the remote, then installed like a
/// file, trusting only the publisher key the signed metadata names.
pub fn install(a: InstallArgs) -> anyhow::Result<ExitCode> {
    let app = a.target.to_string_lossy().into_owned();
    let fetching = bar("fetching");
    let mut c = user_client(&fetching);
    let req = Request {
        remote: a.remote,
        channel: a.channel,
        allow_downgrade: a.allow_downgrade,
    };
    let p = c.prepare_install(&app, &req);
    fetching.finish_and_clear();
    let p = p.with_context(|| format!("cannot install {app}"))?;
    eprintln!(
        "capsa: {} {} from remote {} ({}: {}), {} fetched",
        app,
        display(&p.release.version),
        p.remote,
        p.channel,
        why(&p.why),
        size(c.bytes_received())
    );
    match install_file(
        &p.bundle_path,
        &app,
        Some(p.publisher.clone()),
        a.default_for,
        a.yes,
    )? {
        Some(done) => {
            c.record_installed(&p)?;
            report(&done)?;
        }
        None => eprintln!("capsa: not installed: nothing changed"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn update(a: UpdateArgs) -> anyhow::Result<ExitCode> {
    let fetching = bar("fetching");
    let mut c = user_client(&fetching);
    let plans = c.check_updates(&a.apps);
    let mut failed = false;
    let mut checked = Vec::new();
    for plan in plans {
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                eprintln!("capsa: error: {e}");
                failed = true;
                continue;
            }
        };
        let installed = plan
            .installed
            .as_ref()
            .map_or("?".to_string(), |(_, v)| display(v));
        if a.check {
            if a.json {
                checked.push(serde_json::json!({
                    "app": plan.app, "remote": plan.remote, "channel": plan.channel,
                    "installed": plan.installed.as_ref().map(|(s, v)| serde_json::json!({"seq": s, "version": v})),
                    "release": {"seq": plan.release.seq, "version": plan.release.version},
                    "action": action_text(plan.action), "why": why(&plan.why),
                }));
            } else {
                outln!(
                    "{}: {} installed, {} {} on {} ({}): {}",
                    plan.app,
                    installed,
                    action_text(plan.action),
                    display(&plan.release.version),
                    plan.channel,
                    why(&plan.why),
                    plan.remote
                );
            }
            continue;
        }
        let go = match plan.action {
            Action::Update | Action::PulledBack => true,
            Action::Downgrade => a.allow_downgrade,
            Action::UpToDate | Action::Held => false,
        };
        if !go {
            let what = match plan.action {
                Action::Downgrade => {
                    failed = true;
                    "offers an older release: pass --allow-downgrade to take it"
                }
                Action::Held => "is held back at the release you rolled back to",
                _ => "is up to date",
            };
            eprintln!("capsa: {} {} {what}", plan.app, installed);
            continue;
        }
        let before = c.bytes_received();
        fetching.reset();
        let p = c.prepare_update(&plan, a.allow_downgrade);
        fetching.finish_and_clear();
        let p = p.with_context(|| format!("cannot update {}", plan.app))?;
        eprintln!(
            "capsa: {}: {} fetched of a {} bundle",
            plan.app,
            size(c.bytes_received() - before),
            size(p.release.bundle.size)
        );
        if let Some(done) = install_file(
            &p.bundle_path,
            &plan.app,
            Some(p.publisher.clone()),
            Vec::new(),
            a.yes,
        )? {
            c.record_installed(&p)?;
            report(&done)?;
        }
    }
    if a.check && a.json {
        outln!("{}", serde_json::to_string_pretty(&checked)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn rollback(a: RollbackArgs) -> anyhow::Result<ExitCode> {
    let r = store::rollback(&Layout::user(), &a.app, &exe())
        .with_context(|| format!("cannot roll back {}", a.app))?;
    client::origin::hold(&client::Dirs::user(), &a.app)?;
    outln!(
        "rolled {} back from {} to {} (capsa update keeps it there until a newer release)",
        r.id,
        display(&r.from),
        display(&r.to)
    );
    Ok(ExitCode::SUCCESS)
}
