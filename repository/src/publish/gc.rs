//! `repo gc`: removes the blobs and objects no recent index reaches.
//!
//! An index is live while it is the current one, or while its successor was written less
//! than the grace period ago (a client or a half-synced mirror may still hold it). The
//! publisher keeps a copy of every index it writes in `.capsa-history/<version>.json`; the
//! successor's write time is that copy's mtime. Kept: everything any live index reaches (app
//! documents, icons, heads, tails, bundle blobs, objects). Removed: every other file in
//! `blobs/sha256/` and `objects/sha256/*/`, the history of indexes no longer live, and the
//! `.tmp-*` files killed publishers left. A live index or release that cannot be read stops
//! the collection (what it reaches is unknown), so gc never removes what a client may need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::UNIX_EPOCH;

use bundle_format::Digest;

use super::error::PublishError;
use super::fsio::TMP_PREFIX;
use super::reach;
use super::state::{now, read_app_doc, Repo, HISTORY};
use crate::layout;
use crate::meta::{self, Index, MAX_INDEX};

/// Default grace period.
pub const DEFAULT_GRACE_DAYS: u64 = 7;

/// What `repo gc` removed (or would remove, with `dry_run`).
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    pub live_indexes: usize,
    pub removed_blobs: usize,
    pub removed_objects: usize,
    pub removed_bytes: u64,
    pub removed_history: usize,
    pub kept_blobs: usize,
    pub kept_objects: usize,
}

fn damaged(path: impl Into<String>, problem: impl Into<String>) -> PublishError {
    PublishError::Damaged {
        path: path.into(),
        problem: problem.into(),
    }
}

/// The history's indexes by version, with their copy's write time.
fn history(repo: &Repo) -> Result<BTreeMap<u64, (Index, u64)>, PublishError> {
    let mut out = BTreeMap::new();
    for name in repo.dir.list(HISTORY)? {
        let Some(v) = name
            .strip_suffix(".json")
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        let rel = format!("{HISTORY}/{name}");
        let (f, _) = repo
            .dir
            .open_file(&rel)?
            .ok_or_else(|| damaged(&rel, "vanished"))?;
        let written = f
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let bytes = repo
            .dir
            .read(&rel, MAX_INDEX)?
            .ok_or_else(|| damaged(&rel, "vanished"))?;
        let opened: meta::Opened<Index> = meta::open(&bytes, MAX_INDEX)
            .map_err(|e| damaged(&rel, format!("{e} (remove it if it is not an index)")))?;
        out.insert(v, (opened.env.signed, written));
    }
    Ok(out)
}

/// `repo gc DIR [--grace-days N]`.
pub fn gc(dir: &Path, grace_days: u64, dry_run: bool) -> Result<GcReport, PublishError> {
    let repo = Repo::open(dir)?;
    let cutoff = now().saturating_sub(grace_days.saturating_mul(86_400));
    let hist = history(&repo)?;
    let current = repo.index.version;
    // Live: the current index, and any whose successor was written after the cutoff (or
    // whose successor's copy is missing, to be safe).
    let mut live: Vec<&Index> = vec![&repo.index];
    let mut dead_history = Vec::new();
    for (v, (index, _)) in &hist {
        if *v >= current {
            continue;
        }
        let successor = hist.range(v + 1..).next();
        let keep = match successor {
            Some((_, (_, written))) => *written > cutoff,
            None => true,
        };
        if keep {
            live.push(index);
        } else {
            dead_history.push(*v);
        }
    }
    let (mut blobs, mut objects) = (BTreeSet::new(), BTreeSet::new());
    let mut done_docs = BTreeSet::new();
    let mut done_releases = BTreeSet::new();
    for index in &live {
        for (app, r) in &index.apps {
            blobs.insert(r.digest);
            if !done_docs.insert(r.digest) {
                continue;
            }
            // A document an older gc already removed cannot be kept any more.
            if repo.dir.size(&layout::blob(&r.digest))?.is_none() && index.version != current {
                continue;
            }
            let doc = read_app_doc(&repo.dir, app, r)?;
            blobs.extend(doc.icon.map(|i| i.digest));
            for rel in &doc.releases {
                if done_releases.insert(rel.head.digest) {
                    reach::collect(&repo.dir, rel, &mut blobs, &mut objects)
                        .map_err(|e| damaged(format!("{app} {}", rel.version), e))?;
                }
            }
        }
    }
    let mut rep = GcReport {
        live_indexes: live.len(),
        ..GcReport::default()
    };
    sweep_dir(&repo, "blobs/sha256", &blobs, dry_run, &mut rep, false)?;
    for sub in repo.dir.list("objects/sha256")? {
        if sub.len() == 2 && sub.bytes().all(|b| b.is_ascii_hexdigit()) {
            sweep_dir(
                &repo,
                &format!("objects/sha256/{sub}"),
                &objects,
                dry_run,
                &mut rep,
                true,
            )?;
        }
    }
    if !dry_run {
        for v in &dead_history {
            repo.dir.remove(&format!("{HISTORY}/{v}.json"))?;
        }
        repo.dir.sync_dirs()?;
    }
    rep.removed_history = dead_history.len();
    Ok(rep)
}

/// Removes the files of `rel` whose digest is not in `keep` (and every `.tmp-*` file).
fn sweep_dir(
    repo: &Repo,
    rel: &str,
    keep: &BTreeSet<Digest>,
    dry_run: bool,
    rep: &mut GcReport,
    objects: bool,
) -> Result<(), PublishError> {
    for name in repo.dir.list(rel)? {
        let path = format!("{rel}/{name}");
        if name.starts_with(TMP_PREFIX) {
            if !dry_run {
                repo.dir.remove(&path)?;
            }
            continue;
        }
        let hex = if objects {
            name.strip_suffix(".zst")
        } else {
            Some(name.as_str())
        };
        // Names that are no digest were not written by capsa: left alone.
        let Some(d) = hex.and_then(|h| format!("sha256:{h}").parse::<Digest>().ok()) else {
            continue;
        };
        if keep.contains(&d) {
            if objects {
                rep.kept_objects += 1;
            } else {
                rep.kept_blobs += 1;
            }
            continue;
        }
        rep.removed_bytes += repo.dir.size(&path)?.unwrap_or(0);
        if objects {
            rep.removed_objects += 1;
        } else {
            rep.removed_blobs += 1;
        }
        if !dry_run {
            repo.dir.remove(&path)?;
        }
    }
    Ok(())
}
