//! `--trace-missing`: the paths the app looked for and did not find, from the tracer's record.
//!
//! Two halves, both plain functions on data. In the sandbox, pid 1 (the tracer) turns the
//! [`trace::Trace`] into [`Traced`] with [`reduce`]: every path a call answered ENOENT from the
//! open, exec and stat/access families, once each, less those some call found after all
//! (created by the app, or found on a second look), and the names of files that were found
//! (for the search-path rule below). It sends that to the launcher behind the exit status.
//! The launcher ranks it with [`rank`]:
//!
//! - Noise is dropped: the dynamic loader's probes (any path through a `glibc-hwcaps`
//!   directory; `/etc/ld.so.preload` and `/etc/ld.so.cache`), search-path probes (a path whose file name was found
//!   elsewhere, which covers the loader's library search with its legacy `tls/` and
//!   platform subdirectories and `$LIB` variants, and a shell's `PATH` search), and the
//!   directories of those probes that the loader stats after a miss.
//! - The rest is ordered: glibc's locale and message-catalogue probes last, and before them
//!   programs first, then files opened, then paths only looked up; in each, the most recent
//!   first (the last thing an app missed is likeliest why it failed).
//!
//! Invariants: paths are the app's own words (hostile: any bytes, any length). They cross the
//! pipe as text, lossy UTF-8, since they are only shown, never opened; the caller escapes them
//! for a terminal. At most [`MAX_SENT`] misses cross the pipe, the most recent ones.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsStr;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

/// At most this many misses are sent to the launcher (the most recent).
pub const MAX_SENT: usize = 4096;
/// Files the dynamic loader looks for on every start, which most bundles need not have.
const LOADER_FILES: &[&str] = &["/etc/ld.so.preload", "/etc/ld.so.cache"];
/// At most this many found file names are sent (enough for any search path).
const MAX_FOUND: usize = 65536;

/// How the app looked for a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lookup {
    /// execve/execveat: a program.
    Exec,
    /// open family: a file to read or write.
    Open,
    /// stat, access, readlink, statfs, chdir: a lookup.
    Stat,
}

/// One path looked for and not found, with when it was last looked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Miss {
    pub path: String,
    pub lookup: Lookup,
    /// Index of the last look in the trace's order.
    pub last: usize,
}

/// What pid 1 sends behind the exit status in trace mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Traced {
    Misses {
        misses: Vec<Miss>,
        /// File names (last components) some call found, for the search-path rule.
        found: Vec<String>,
        /// Syscalls the tracer stopped on.
        stops: u64,
    },
    /// The tracer failed (the app was killed); the tracer's own words.
    Failed(String),
}

/// A path the app missed, for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingPath {
    pub path: String,
    pub lookup: Lookup,
}

/// What `--trace-missing` found, or why it found nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceOutcome {
    /// Most relevant first.
    Missing { paths: Vec<MissingPath>, stops: u64 },
    /// The tracer failed, or pid 1 ended without saying.
    Failed(String),
}

fn lookup_of(op: trace::Op) -> Option<Lookup> {
    match op {
        trace::Op::Exec => Some(Lookup::Exec),
        trace::Op::Open { .. } => Some(Lookup::Open),
        trace::Op::Stat => Some(Lookup::Stat),
        trace::Op::Change => None,
    }
}

/// pid 1's half: the trace's misses, once each by path and probe, less paths found by any
/// call; and the names found.
pub fn reduce(t: &trace::Trace) -> Traced {
    let mut found_paths: HashSet<&Path> = HashSet::new();
    let mut found: BTreeSet<String> = BTreeSet::new();
    let mut misses: BTreeMap<(&Path, Lookup), usize> = BTreeMap::new();
    for (i, a) in t.accesses.iter().enumerate() {
        let Some(lookup) = lookup_of(a.op) else {
            continue;
        };
        match a.errno {
            None => {
                found_paths.insert(&a.path);
                if let (Some(name), true) = (a.path.file_name(), found.len() < MAX_FOUND) {
                    found.insert(name.to_string_lossy().into_owned());
                }
            }
            Some(libc::ENOENT) => {
                misses.insert((&a.path, lookup), i);
            }
            Some(_) => {}
        }
    }
    let mut misses: Vec<Miss> = misses
        .into_iter()
        .filter(|((p, _), _)| !found_paths.contains(p))
        .map(|((path, lookup), last)| Miss {
            path: path.to_string_lossy().into_owned(),
            lookup,
            last,
        })
        .collect();
    misses.sort_by_key(|m| std::cmp::Reverse(m.last));
    misses.truncate(MAX_SENT);
    Traced::Misses {
        misses,
        found: found.into_iter().collect(),
        stops: t.stops,
    }
}

/// The loader's own probes, whatever was found: hwcaps subdirectories, the preload file and
/// the cache (without which it searches the default directories).
fn loader_noise(p: &Path) -> bool {
    LOADER_FILES.iter().any(|f| p == Path::new(f))
        || p.components()
            .any(|c| c == Component::Normal(OsStr::new("glibc-hwcaps")))
}

/// glibc's locale and message-catalogue probes (every `setlocale` and `strerror` makes them;
/// a bundle may do without): kept, but ranked after every other miss.
fn i18n_probe(p: &Path) -> bool {
    let s = p.to_string_lossy();
    (s.starts_with("/usr/share/locale") && s.ends_with(".mo"))
        || s.starts_with("/usr/lib/locale/")
        || s == "/usr/share/locale/locale.alias"
        || s.contains("/gconv/gconv-modules")
}

/// The launcher's half: drops the noise (module doc) and orders the rest, most relevant first.
pub fn rank(misses: &[Miss], found: &[String]) -> Vec<MissingPath> {
    let found: HashSet<&OsStr> = found.iter().map(OsStr::new).collect();
    let search_noise = |m: &Miss| {
        let p = Path::new(&m.path);
        loader_noise(p) || p.file_name().is_some_and(|n| found.contains(n))
    };
    let noise: Vec<&Path> = misses
        .iter()
        .filter(|m| search_noise(m))
        .map(|m| Path::new(&m.path))
        .collect();
    // A directory looked up after a probe inside it missed (the loader's search-dir check).
    let dir_of_noise = |m: &Miss| {
        m.lookup == Lookup::Stat
            && noise
                .iter()
                .any(|n| n.starts_with(&m.path) && n.as_os_str().len() > m.path.len())
    };
    let mut kept: Vec<&Miss> = misses
        .iter()
        .filter(|m| !search_noise(m) && !dir_of_noise(m))
        .collect();
    kept.sort_by_key(|m| {
        (
            i18n_probe(Path::new(&m.path)),
            m.lookup,
            std::cmp::Reverse(m.last),
        )
    });
    let mut seen = HashSet::new();
    kept.into_iter()
        .filter(|m| seen.insert(m.path.as_str()))
        .map(|m| MissingPath {
            path: m.path.clone(),
            lookup: m.lookup,
        })
        .collect()
}

/// The launcher's reading of what pid 1 sent (`None`: it sent nothing, or nothing readable).
pub fn outcome(sent: Option<Traced>) -> TraceOutcome {
    match sent {
        Some(Traced::Misses {
            misses,
            found,
            stops,
        }) => TraceOutcome::Missing {
            paths: rank(&misses, &found),
            stops,
        },
        Some(Traced::Failed(why)) => TraceOutcome::Failed(why),
        None => {
            TraceOutcome::Failed("the sandbox ended without the tracer's record (killed?)".into())
        }
    }
}

#[cfg(test)]
mod tests;
