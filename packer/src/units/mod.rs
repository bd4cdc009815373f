//! Widening units: folders an app reads as a whole (plugin folders and their caches, the
//! Python standard library, time zones...), described as data in `packer/units.toml` and in a
//! recipe's `[[capture.unit]]`. A captured or traced path that lies in a unit's folder brings
//! what the unit's `take` says (see [`widen`]).
//!
//! Invariants: every unit has a unique name of letters, digits and `-`; its `folders` are
//! absolute globs without `..`; its globs all compile; a recipe unit with a built-in's name
//! replaces it; nothing here touches the file system (that is [`widen`] and [`hostglob`]).

pub mod hostglob;
pub mod widen;

use std::collections::BTreeMap;

use serde::Deserialize;

/// The built-in units, compiled in.
const BUILTIN: &str = include_str!("../../units.toml");

/// How much of a unit a hit brings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Take {
    /// The whole folder.
    Whole,
    /// The entry this many levels below the folder, on the way to the hit.
    Below(usize),
    /// Files matching this absolute glob with `{file}` replaced by the hit's file name.
    Siblings(String),
}

/// One widening unit (`[[unit]]` in units.toml, `[[capture.unit]]` in a recipe).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitDef {
    pub name: String,
    pub why: String,
    pub folders: Vec<String>,
    pub take: Take,
    /// Globs relative to the folder, left out unless the hit lies in them.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Taken with the unit: absolute globs, or paths relative to the folder hit.
    #[serde(default)]
    pub also: Vec<String>,
}

/// The file units.toml is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct UnitsFile {
    probe_helpers: Vec<String>,
    unit: Vec<UnitDef>,
}

/// A unit definition that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("packer/units.toml does not parse: {0}")]
    ParseBuiltin(String),
    #[error("unit {name:?}: a name is letters, digits and '-'")]
    BadName { name: String },
    #[error("unit {name:?} is defined twice")]
    Duplicate { name: String },
    #[error("unit {name:?}: folder {folder:?} must be an absolute path without '..'")]
    BadFolder { name: String, folder: String },
    #[error("unit {name:?}: no folders")]
    NoFolders { name: String },
    #[error("unit {name:?}: glob {glob:?}: {problem}")]
    BadGlob {
        name: String,
        glob: String,
        problem: String,
    },
    #[error("unit {name:?}: siblings glob {glob:?} must be absolute and contain {{file}}")]
    BadSiblings { name: String, glob: String },
    #[error("{list}: no unit is named {name:?} (see packer/units.toml or [[capture.unit]])")]
    Unknown { list: &'static str, name: String },
}

/// The built-in probe helpers and units.
fn builtin() -> Result<UnitsFile, UnitError> {
    toml::from_str(BUILTIN).map_err(|e| UnitError::ParseBuiltin(e.to_string()))
}

/// The built-in units.
pub fn builtin_units() -> Result<Vec<UnitDef>, UnitError> {
    Ok(builtin()?.unit)
}

/// Program names whose traced execs are machine probes, not part of the app.
pub fn probe_helpers() -> Result<Vec<String>, UnitError> {
    Ok(builtin()?.probe_helpers)
}

fn glob_ok(name: &str, glob: &str) -> Result<(), UnitError> {
    hostglob::compile(glob)
        .map(|_| ())
        .map_err(|problem| UnitError::BadGlob {
            name: name.into(),
            glob: glob.into(),
            problem,
        })
}

fn clean_abs(p: &str) -> bool {
    p.starts_with('/') && !p.split('/').any(|c| c == "..") && !p.contains('\0')
}

/// Checks one unit definition.
pub fn validate(u: &UnitDef) -> Result<(), UnitError> {
    let name = &u.name;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(UnitError::BadName { name: name.clone() });
    }
    if u.folders.is_empty() {
        return Err(UnitError::NoFolders { name: name.clone() });
    }
    for f in &u.folders {
        if !clean_abs(f) || f == "/" {
            return Err(UnitError::BadFolder {
                name: name.clone(),
                folder: f.clone(),
            });
        }
        glob_ok(name, f)?;
    }
    for g in &u.exclude {
        glob_ok(name, g)?;
    }
    for a in &u.also {
        if a.contains('\0') || a.is_empty() {
            return Err(UnitError::BadFolder {
                name: name.clone(),
                folder: a.clone(),
            });
        }
        glob_ok(name, a)?;
    }
    if let Take::Siblings(g) = &u.take {
        if !clean_abs(g) || !g.contains("{file}") {
            return Err(UnitError::BadSiblings {
                name: name.clone(),
                glob: g.clone(),
            });
        }
        glob_ok(name, &g.replace("{file}", "x"))?;
    }
    Ok(())
}

/// The units in force: the built-ins with the recipe's own replacing same-named ones, all
/// checked, and `units`/`no-units` names checked against them. Ordered by name.
pub fn resolve(
    recipe_units: &[UnitDef],
    units: &[String],
    no_units: &[String],
) -> Result<BTreeMap<String, UnitDef>, UnitError> {
    let mut all = BTreeMap::new();
    for u in builtin_units()? {
        validate(&u)?;
        if all.insert(u.name.clone(), u.clone()).is_some() {
            return Err(UnitError::Duplicate { name: u.name });
        }
    }
    let mut own = std::collections::BTreeSet::new();
    for u in recipe_units {
        validate(u)?;
        if !own.insert(u.name.clone()) {
            return Err(UnitError::Duplicate {
                name: u.name.clone(),
            });
        }
        all.insert(u.name.clone(), u.clone());
    }
    for (list, names) in [("capture.units", units), ("capture.no-units", no_units)] {
        if let Some(n) = names.iter().find(|n| !all.contains_key(*n)) {
            return Err(UnitError::Unknown {
                list,
                name: n.clone(),
            });
        }
    }
    Ok(all)
}
