//! `capsa gc`: collects the layer cache and says what it freed (or, with `--dry-run`, would).

use std::process::ExitCode;

use userdata::cache::gc::{Collected, Kind, Why};

use crate::cli::GcArgs;
use crate::output::size;

pub fn run(a: GcArgs) -> anyhow::Result<ExitCode> {
    let cache = userdata::dirs::cache_dir();
    let c = store::gc::collect_cache(&store::Layout::user(), &cache, a.dry_run)?;
    if a.json {
        let v = serde_json::json!({
            "cache": cache,
            "dry_run": a.dry_run,
            "freed_bytes": c.freed(),
            "removed": c.removed,
            "kept": c.kept,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    for r in &c.removed {
        let what = match r.kind {
            Kind::Layer => "layer",
            Kind::Merged => "read-only root",
            Kind::Leftover => "leftover",
        };
        outln!("{verb} {what} {} ({})", r.name, size(r.bytes));
    }
    let freed = size(c.freed());
    match (c.removed.is_empty(), a.dry_run) {
        (true, _) => outln!("nothing to free in {}", cache.display()),
        (false, true) => outln!("would free {freed} in {} (--dry-run)", cache.display()),
        (false, false) => outln!("freed {freed} in {}", cache.display()),
    }
    if let Some(line) = kept_line(&c) {
        outln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `kept 3 entries: 2 of installed apps, 1 in use by a running app`, if any were kept.
fn kept_line(c: &Collected) -> Option<String> {
    if c.kept.is_empty() {
        return None;
    }
    let count = |w: Why| c.kept.iter().filter(|k| k.why == w).count();
    let mut why = Vec::new();
    match count(Why::Installed) {
        0 => {}
        n => why.push(format!("{n} of installed apps")),
    }
    match count(Why::InUse) {
        0 => {}
        n => why.push(format!("{n} in use by a running app")),
    }
    let n = c.kept.len();
    let entries = if n == 1 { "entry" } else { "entries" };
    Some(format!("kept {n} {entries}: {}", why.join(", ")))
}
