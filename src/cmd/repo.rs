//! `capsa repo ...`: turns the arguments into `repository::publish` calls and prints what they
//! did. Every string printed here is an app id, version or channel name (validated printable
//! text) or the publisher's own input.

use std::process::ExitCode;

use repository::publish::{self, AddOpts, InitOpts, RolloutChange, SignOpts};

use crate::cli::{RepoArgs, RepoCommand, SignArgs};
use crate::output::size;

fn sign(a: &SignArgs) -> SignOpts {
    SignOpts {
        key: a.key.clone(),
        expires_days: Some(a.expires_days),
    }
}

pub fn run(a: RepoArgs) -> anyhow::Result<ExitCode> {
    match a.command {
        RepoCommand::Init(a) => {
            let key = publish::init(
                &a.dir,
                &InitOpts {
                    key: a.key,
                    expires_days: Some(a.expires_days),
                    root_expires_days: Some(a.root_expires_days),
                    name: a.name,
                    url: a.url,
                },
            )?;
            outln!(
                "created a repository in {} signed by key {key}; users add it with `capsa remote add NAME URL --key` and that key's .pub file",
                a.dir.display()
            );
        }
        RepoCommand::Add(a) => add(a)?,
        RepoCommand::Promote(a) => {
            let c = publish::promote(&a.dir, &a.app, &a.release, &a.channel, &sign(&a.sign))?;
            outln!(
                "{} {} is the release of channel {} (index version {})",
                c.app,
                a.release,
                a.channel,
                c.index_version
            );
        }
        RepoCommand::Rollout(a) => {
            let change = match a.percent {
                Some(p) if !a.halt => RolloutChange::Percent(p),
                _ => RolloutChange::Halt,
            };
            let c = publish::rollout(&a.dir, &a.app, &a.channel, change, &sign(&a.sign))?;
            let what = match change {
                RolloutChange::Percent(p) => format!("goes to {p}% of its clients"),
                RolloutChange::Halt => "is halted: every client gets the fallback".into(),
            };
            outln!(
                "channel {} of {}: the release {what} (index version {})",
                a.channel,
                c.app,
                c.index_version
            );
        }
        RepoCommand::Yank(a) => {
            let c = publish::yank(&a.dir, &a.app, &a.release, &a.reason, &sign(&a.sign))?;
            outln!(
                "yanked {} {} (index version {})",
                c.app,
                a.release,
                c.index_version
            );
            for ch in c.empty_channels {
                eprintln!(
                    "capsa: warning: channel {ch} of {} now has no release to give: promote another version to it",
                    c.app
                );
            }
        }
        RepoCommand::Refresh(a) => {
            let v = publish::refresh(&a.dir, &sign(&a.sign))?;
            outln!("index version {v}, valid for {} days", a.sign.expires_days);
        }
        RepoCommand::Gc(a) => {
            let r = publish::gc(&a.dir, a.grace_days, a.dry_run)?;
            outln!(
                "{} {} blobs and {} objects ({}), {} old index copies; kept {} blobs and {} objects reached by {} live indexes",
                if a.dry_run { "would remove" } else { "removed" },
                r.removed_blobs,
                r.removed_objects,
                size(r.removed_bytes),
                r.removed_history,
                r.kept_blobs,
                r.kept_objects,
                r.live_indexes
            );
        }
        RepoCommand::RotateKey(a) => {
            let r = publish::rotate_key(
                &a.dir,
                &a.key,
                &a.new_key,
                Some(a.root_expires_days),
                Some(a.expires_days),
            )?;
            if r.finished_earlier {
                outln!(
                    "the repository was already signed by key {}: index version {} re-signed by it",
                    r.new_key,
                    r.index_version
                );
            } else {
                outln!(
                    "root {}: key {} replaces key {} (signed by both); index version {}",
                    r.root_version,
                    r.new_key,
                    r.old_key,
                    r.index_version
                );
            }
        }
        RepoCommand::Check(a) => return check(a),
    }
    Ok(ExitCode::SUCCESS)
}

fn add(a: crate::cli::RepoAddArgs) -> anyhow::Result<()> {
    let r = publish::add(
        &a.dir,
        &a.bundle,
        &AddOpts {
            channel: a.channel,
            rollout: a.rollout,
            sign: sign(&a.sign),
        },
    )?;
    if r.stub_stripped > 0 {
        eprintln!(
            "capsa: note: stripped the {}-byte launcher stub in front of the bundle; the repository publishes the bundle alone",
            r.stub_stripped
        );
    }
    let rollout = match a.rollout {
        Some(p) => format!(" for {p}% of its clients"),
        None => String::new(),
    };
    outln!(
        "added {} {} (release {}{}) to channel {}{rollout}, signed by {}; index version {}",
        r.app,
        r.version,
        r.seq,
        if r.new_app { ", a new app" } else { "" },
        r.channel,
        r.publisher,
        r.index_version
    );
    outln!(
        "  blobs    {} new ({}), {} already stored",
        r.new_blobs,
        size(r.new_blob_bytes),
        r.shared_blobs
    );
    outln!(
        "  objects  {} new ({}), {} already stored",
        r.objects.new,
        size(r.objects.new_bytes),
        r.objects.shared
    );
    Ok(())
}

fn check(a: crate::cli::RepoCheckArgs) -> anyhow::Result<ExitCode> {
    let r = publish::check(&a.dir)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for w in &r.warnings {
            eprintln!("capsa: warning: {w}");
        }
        for p in &r.problems {
            outln!("problem: {p}");
        }
        outln!(
            "{}: {} (root {}, index version {}, {} apps, {} releases, {} blobs, {} objects, {} checked)",
            a.dir.display(),
            if r.ok() {
                "ok".to_owned()
            } else {
                format!("{} problems", r.problems.len())
            },
            r.root_version,
            r.index_version,
            r.apps,
            r.releases,
            r.blobs,
            r.objects,
            size(r.bytes)
        );
    }
    Ok(if r.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
