//! The trace stage: runs the recipe's `trace` commands under [`trace::run`] and captures what
//! they used, by a fixed policy. A path is captured (links kept, ELF objects queued for the
//! closure, directories as directories only) when it was opened for reading, executed or
//! looked up and exists, unless it is private (in a home), virtual (`/proc /sys /dev /run
//! /tmp`), written by the app, special (socket, fifo, device), excluded, outside the system
//! places, or used by a probe helper (a compiler or package tool the app ran). Every such
//! path is reported as [`Skipped`] with a typed [`SkipReason`]; paths probed and missing go
//! into the report's `missing`.
//!
//! Invariants: a path is checked as named and as resolved (a system path that links into a
//! home is private); a recipe-named folder lifts the virtual and system-place rules below it
//! but never the home rule unless it lies inside the home; nothing is read from the traced
//! app's output but its paths.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bundle_format::LayerRole;
use serde::Serialize;
use trace::{Exit, Op, Trace, TraceCommand};

use crate::capture::CaptureSet;
use crate::error::PackError;
use crate::origin::Origin;
use crate::recipe::Recipe;

mod places;
#[cfg(test)]
mod tests;

use places::under_any;
pub use places::{listed_folders, normalize, Places};

/// Seconds a traced command may run when the recipe does not say.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;
/// Most probed-and-missing paths kept in the report.
const MAX_MISSING: usize = 2000;
const ENOENT: i32 = 2;

/// The program that starts a tracee: normally `capsa __trace-exec --`.
#[derive(Debug, Clone)]
pub struct TraceHelper {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// Why a traced path is not in the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// In a home folder: private, never swept into a bundle.
    Home,
    /// Under `/proc /sys /dev /run /tmp`: the sandbox provides these.
    Virtual,
    /// Written, created or changed by the app: its data, not its files.
    Written,
    /// A socket, fifo or device.
    Special,
    /// Matched by the recipe's `exclude`.
    Excluded,
    /// Outside the system places and every recipe-named folder.
    OutsidePrefixes,
    /// Used by a probe helper the app ran (compiler, package tool, privilege helper).
    ProbeHelper,
    /// Exists but cannot be read by the packer.
    Unreadable,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Home => "private, in your home",
            Self::Virtual => "virtual, the sandbox provides it",
            Self::Written => "written by the app",
            Self::Special => "socket, fifo or device",
            Self::Excluded => "excluded by the recipe",
            Self::OutsidePrefixes => "outside the system folders and the recipe's paths",
            Self::ProbeHelper => "used by a probe helper",
            Self::Unreadable => "cannot be read",
        }
    }
}

/// One traced path left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: SkipReason,
    /// The trace command (argv joined by spaces).
    pub command: String,
}

/// How one traced command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceRun {
    pub command: String,
    pub exit: Exit,
    pub timed_out: bool,
}

/// What the trace stage adds to the report.
#[derive(Debug, Clone, Default)]
pub struct TraceOutcome {
    pub runs: Vec<TraceRun>,
    pub skipped: Vec<Skipped>,
    pub missing: Vec<String>,
    /// Paths captured from the traces (hits for the widening units).
    pub hits: Vec<PathBuf>,
}

/// What the policy decided for one traced run, before anything is captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Paths to capture, in first-use order.
    pub take: Vec<PathBuf>,
    pub skipped: Vec<Skipped>,
    pub missing: Vec<PathBuf>,
}

fn base_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// The file-type rule for an existing path (follows links: what the app got).
fn kind_rule(p: &Path) -> Option<SkipReason> {
    match std::fs::metadata(p) {
        Ok(m) => {
            let t = m.file_type();
            (t.is_socket() || t.is_fifo() || t.is_block_device() || t.is_char_device())
                .then_some(SkipReason::Special)
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(SkipReason::Unreadable),
        Err(_) => None,
    }
}

/// Applies the policy to one trace. `exists` says whether a path is there now (the real
/// file system in [`stage`], a fake in tests).
pub fn decide(
    t: &Trace,
    command: &str,
    places: &Places,
    probes: &[String],
    excluded: &dyn Fn(&Path) -> bool,
) -> Decision {
    let written: BTreeSet<PathBuf> = t
        .accesses
        .iter()
        .filter(|a| match a.op {
            Op::Open { write, create } => (write || create) && a.errno.is_none(),
            Op::Change => true,
            Op::Exec | Op::Stat => false,
        })
        .map(|a| normalize(&a.path))
        .collect();
    let mut probe_pids = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut d = Decision::default();
    let skip = |d: &mut Decision, p: &Path, reason| {
        d.skipped.push(Skipped {
            path: p.display().to_string(),
            reason,
            command: command.to_owned(),
        })
    };
    let execs = t
        .execs
        .iter()
        .map(|e| (e.exe.clone(), Op::Exec, None, e.pid));
    let all = t
        .accesses
        .iter()
        .map(|a| (a.path.clone(), a.op, a.errno, a.pid))
        .chain(execs);
    for (path, op, errno, pid) in all {
        let p = normalize(&path);
        if op == Op::Exec && errno.is_none() && probes.iter().any(|h| h == base_name(&p)) {
            probe_pids.insert(pid);
        }
        let reading = matches!(
            op,
            Op::Exec
                | Op::Stat
                | Op::Open {
                    write: false,
                    create: false
                }
        );
        if !reading || seen.contains(&p) {
            continue;
        }
        if errno == Some(ENOENT) {
            if places.location(&p).is_none() && !probe_pids.contains(&pid) {
                d.missing.push(p);
            }
            continue;
        }
        if errno.is_some() {
            continue;
        }
        seen.insert(p.clone());
        let located = places.location(&p).or_else(|| {
            std::fs::canonicalize(&p)
                .ok()
                .and_then(|real| places.location(&real))
        });
        // Order: private first (it is named to the user), then who used it, then where it is.
        let reason = if located == Some(SkipReason::Home) {
            located
        } else if probe_pids.contains(&pid) {
            Some(SkipReason::ProbeHelper)
        } else {
            located
                .or_else(|| written.contains(&p).then_some(SkipReason::Written))
                .or_else(|| excluded(&p).then_some(SkipReason::Excluded))
                .or_else(|| kind_rule(&p))
        };
        match reason {
            Some(r) => skip(&mut d, &p, r),
            None => d.take.push(p),
        }
    }
    d.missing.retain(|m| !seen.contains(m));
    d.missing.sort();
    d.missing.dedup();
    d
}

/// `argv` joined for the report.
pub fn command_text(argv: &[String]) -> String {
    argv.join(" ")
}

/// Runs every `trace` command of the recipe and captures what the policy lets in, each with
/// `Origin::Trace`. The caller sets nothing: this sets `set.origin` itself.
pub fn stage(
    set: &mut CaptureSet,
    recipe: &Recipe,
    helper: Option<&TraceHelper>,
) -> Result<TraceOutcome, PackError> {
    let mut out = TraceOutcome::default();
    if recipe.capture.trace.is_empty() {
        return Ok(out);
    }
    let helper = helper.ok_or(PackError::NoTraceHelper)?;
    let places = Places::of_host(recipe);
    let probes = crate::units::probe_helpers().map_err(PackError::Units)?;
    let timeout = recipe.capture.trace_timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    let env: Vec<(OsString, OsString)> = recipe
        .app
        .env
        .iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    for argv in &recipe.capture.trace {
        let command = command_text(argv);
        let cmd = TraceCommand {
            argv: argv.iter().map(OsString::from).collect(),
            cwd: Some(recipe.base_dir.clone()),
            env: env.clone(),
            timeout: Duration::from_secs(timeout),
            helper: helper.program.clone(),
            helper_args: helper.args.clone(),
            exact: false,
        };
        let t = trace::run(&cmd).map_err(|source| PackError::Trace {
            command: command.clone(),
            source,
        })?;
        note_run(set, &mut out, &command, &t, timeout);
        let excludes = |p: &Path| set.is_excluded(p);
        let d = decide(&t, &command, &places, &probes, &excludes);
        set.origin = Origin::Trace {
            command: command.clone(),
        };
        capture_decision(set, &d, &command, &places, &mut out);
        out.skipped.extend(d.skipped);
        out.missing
            .extend(d.missing.iter().map(|m| m.display().to_string()));
    }
    // Threads and children interleave differently from run to run: keep the report stable.
    out.skipped
        .sort_by(|a, b| (&a.command, &a.path, a.reason).cmp(&(&b.command, &b.path, b.reason)));
    out.skipped.dedup();
    out.missing.sort();
    out.missing.dedup();
    if out.missing.len() > MAX_MISSING {
        set.warnings.push(format!(
            "{} paths probed and missing; the report keeps the first {MAX_MISSING}",
            out.missing.len()
        ));
        out.missing.truncate(MAX_MISSING);
    }
    Ok(out)
}

fn note_run(set: &mut CaptureSet, out: &mut TraceOutcome, command: &str, t: &Trace, secs: u64) {
    if t.timed_out {
        set.warnings.push(format!(
            "trace {command}: killed after {secs} s (trace-timeout); what it used until then is captured"
        ));
    } else if t.exit != Exit::Code(0) {
        set.warnings
            .push(format!("trace {command}: ended with {:?}", t.exit));
    }
    out.runs.push(TraceRun {
        command: command.to_owned(),
        exit: t.exit,
        timed_out: t.timed_out,
    });
}

fn capture_decision(
    set: &mut CaptureSet,
    d: &Decision,
    command: &str,
    places: &Places,
    out: &mut TraceOutcome,
) {
    let reason = format!("used by trace {command}");
    for p in &d.take {
        // The app's own folders go to the app layer, system files to deps.
        let role = match under_any(p, &places.listed) {
            true => LayerRole::App,
            false => LayerRole::Deps,
        };
        match set.add_path(p, role, &reason) {
            Ok(real) => {
                if real.is_file() {
                    set.enqueue(&real, Vec::new(), false);
                }
                out.hits.push(p.clone());
            }
            Err(e) => {
                set.warnings
                    .push(format!("trace {command}: {e}, not captured"));
            }
        }
    }
}

/// Lines for `capsa pack`: how many traced paths were left out per reason, then every
/// private one by name (the user should know what the app read from their home).
pub fn summary(skipped: &[Skipped]) -> Vec<String> {
    let mut counts: BTreeMap<SkipReason, BTreeSet<&str>> = BTreeMap::new();
    for s in skipped {
        counts.entry(s.reason).or_default().insert(&s.path);
    }
    let mut out: Vec<String> = counts
        .iter()
        .map(|(r, paths)| format!("trace: {} paths not captured ({})", paths.len(), r.as_str()))
        .collect();
    if let Some(home) = counts.get(&SkipReason::Home) {
        out.extend(
            home.iter()
                .map(|p| format!("not captured (private, in your home): {p}")),
        );
    }
    out
}
