//! Applying widening units: which folders (or entries, or sibling files) the hits bring, then
//! capturing them. Planning ([`plan`]) reads only the folders the units name; applying
//! ([`apply`]) walks what was planned and captures it with `Origin::Unit`, every `.so` queued
//! for the ELF closure.
//!
//! Invariants: a unit never brings a path outside the system places or in a home
//! ([`crate::traced::Places`]), nor a path the recipe excludes; a file that cannot be read is
//! a warning, never a failed pack; an `exclude` is lifted only for the hit that lies in it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bundle_format::LayerRole;
use globset::{GlobSet, GlobSetBuilder};

use super::hostglob::{compile, expand, folder_of, join_lexical};
use super::{Take, UnitDef};
use crate::capture::CaptureSet;
use crate::origin::Origin;
use crate::traced::Places;

/// One thing a unit brings: `root` (a folder, taken with its tree, or a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widening {
    pub unit: String,
    pub root: PathBuf,
    /// The unit folder `exclude` globs are relative to.
    pub folder: PathBuf,
    /// The unit's excludes still in force.
    pub exclude: Vec<String>,
    /// What brought it: a hit's path, or `capture.units`.
    pub why: String,
}

fn lifted(folder: &Path, hit: &Path, exclude: &[String]) -> Vec<String> {
    let Ok(rel) = hit.strip_prefix(folder) else {
        return exclude.to_vec();
    };
    let rel_ancestors: Vec<&Path> = rel
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .collect();
    exclude
        .iter()
        .filter(|g| compile(g).is_ok_and(|m| !rel_ancestors.iter().any(|a| m.is_match(a))))
        .cloned()
        .collect()
}

fn roots_for(u: &UnitDef, folder: &Path, hit: &Path) -> Vec<PathBuf> {
    match &u.take {
        Take::Whole => vec![folder.to_path_buf()],
        Take::Below(n) => {
            let Ok(rel) = hit.strip_prefix(folder) else {
                return Vec::new();
            };
            let parts: Vec<_> = rel.components().collect();
            match parts.len() {
                0 => Vec::new(),
                len => {
                    let mut r = folder.to_path_buf();
                    r.extend(parts.iter().take((*n).min(len)));
                    vec![r]
                }
            }
        }
        Take::Siblings(pattern) => match hit.file_name().and_then(|f| f.to_str()) {
            Some(f) if hit.is_file() => expand(&pattern.replace("{file}", &globset::escape(f))),
            _ => Vec::new(),
        },
    }
}

fn also_roots(u: &UnitDef, folder: &Path) -> Vec<PathBuf> {
    u.also
        .iter()
        .flat_map(|a| {
            if a.starts_with('/') {
                expand(a)
            } else {
                let p = join_lexical(folder, a);
                if p.symlink_metadata().is_ok() {
                    vec![p]
                } else {
                    Vec::new()
                }
            }
        })
        .collect()
}

/// What `units` bring for `hits` (captured or traced paths), plus the units in `always`
/// taken whole; none of `never`. Sorted, one entry per (unit, root).
pub fn plan(
    units: &BTreeMap<String, UnitDef>,
    hits: &[PathBuf],
    always: &[String],
    never: &[String],
) -> Vec<Widening> {
    let active: Vec<&UnitDef> = units
        .values()
        .filter(|u| !never.contains(&u.name))
        .collect();
    let mut b = GlobSetBuilder::new();
    let mut owner = Vec::new();
    for (i, u) in active.iter().enumerate() {
        for f in &u.folders {
            if let Ok(g) = globset::GlobBuilder::new(f).literal_separator(true).build() {
                b.add(g);
                owner.push((i, f.clone()));
            }
        }
    }
    let set: GlobSet = b.build().unwrap_or_else(|_| GlobSet::empty());
    let mut out: BTreeMap<(String, PathBuf), Widening> = BTreeMap::new();
    let mut add = |u: &UnitDef, root: PathBuf, folder: &Path, exclude: Vec<String>, why: String| {
        let key = (u.name.clone(), root.clone());
        match out.get_mut(&key) {
            Some(w) => w.exclude.retain(|e| exclude.contains(e)),
            None => {
                out.insert(
                    key,
                    Widening {
                        unit: u.name.clone(),
                        root,
                        folder: folder.to_path_buf(),
                        exclude,
                        why,
                    },
                );
            }
        }
    };
    for hit in hits {
        let canon = std::fs::canonicalize(hit).ok();
        for path in std::iter::once(hit).chain(canon.as_ref().filter(|c| *c != hit)) {
            let mut matched = std::collections::BTreeSet::new();
            for a in path.ancestors().filter(|a| *a != Path::new("/")) {
                matched.extend(set.matches(a));
            }
            for idx in matched {
                let (ui, glob) = &owner[idx];
                let u = active[*ui];
                let Some(folder) = compile(glob).ok().and_then(|m| folder_of(&m, path)) else {
                    continue;
                };
                let why = format!("{} (in {})", hit.display(), folder.display());
                let exclude = lifted(&folder, path, &u.exclude);
                for root in roots_for(u, &folder, path) {
                    add(u, root, &folder, exclude.clone(), why.clone());
                }
                for root in also_roots(u, &folder) {
                    add(u, root, &folder, Vec::new(), format!("cache for {why}"));
                }
            }
        }
    }
    for u in active.iter().filter(|u| always.contains(&u.name)) {
        for folder in u.folders.iter().flat_map(|f| expand(f)) {
            add(
                u,
                folder.clone(),
                &folder,
                u.exclude.clone(),
                "capture.units".into(),
            );
            for root in also_roots(u, &folder) {
                add(u, root, &folder, Vec::new(), "capture.units".into());
            }
        }
    }
    out.into_values().collect()
}

fn excluder(w: &Widening) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for g in &w.exclude {
        if let Ok(g) = globset::GlobBuilder::new(g).literal_separator(true).build() {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

/// Captures what `plan` decided, each under `Origin::Unit`. Returns how many paths each
/// widening added (for the report's warnings on size, and the tests).
pub fn apply(set: &mut CaptureSet, plan: &[Widening], places: &Places) -> Vec<usize> {
    plan.iter().map(|w| apply_one(set, w, places)).collect()
}

fn apply_one(set: &mut CaptureSet, w: &Widening, places: &Places) -> usize {
    set.origin = Origin::Unit {
        name: w.unit.clone(),
    };
    let reason = format!("unit {}: {}", w.unit, w.why);
    let ex = excluder(w);
    let folder = w.folder.clone();
    let walker = walkdir::WalkDir::new(&w.root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.path()
                .strip_prefix(&folder)
                .map_or(true, |rel| rel.as_os_str().is_empty() || !ex.is_match(rel))
        });
    let mut added = 0;
    for entry in walker {
        let Ok(entry) = entry else {
            set.warnings.push(format!(
                "unit {}: cannot read below {}",
                w.unit,
                w.root.display()
            ));
            continue;
        };
        let p = entry.path();
        let ft = entry.file_type();
        if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) || set.is_excluded(p) {
            continue;
        }
        // The real path must stay in the system places: a link into a home is never followed.
        match std::fs::canonicalize(p) {
            Ok(real) if places.may_capture(&real) && places.may_capture(p) => {}
            Ok(real) => {
                set.warnings.push(format!(
                    "unit {}: {} leads to {}, not captured",
                    w.unit,
                    p.display(),
                    real.display()
                ));
                continue;
            }
            Err(e) => {
                set.warnings.push(format!(
                    "unit {}: {}: {e}, not captured",
                    w.unit,
                    p.display()
                ));
                continue;
            }
        }
        match set.add_path(p, LayerRole::Deps, &reason) {
            Ok(real) => {
                added += 1;
                if real.is_file() {
                    set.enqueue(&real, Vec::new(), false);
                }
            }
            Err(e) => set
                .warnings
                .push(format!("unit {}: {e}, not captured", w.unit)),
        }
    }
    added
}
