//! The `packages = [...]` capture stage: each package's regular files and symlinks are added
//! with [`CaptureSet::add_path`] (so links stay links and merged-/usr names keep working), ELF
//! objects are queued for the closure, and each file records `Origin::Package { name }`.
//!
//! Documentation is left out: `/usr/share/doc/**`, `/usr/share/man/**`, `/usr/share/info/**`
//! and `/usr/share/lintian/**`. A recipe that wants them lists them under `capture.paths`,
//! which the listed stage captures whatever this stage skips. Directories are not captured as
//! such (they appear as the parents of files). The recipe's excludes apply.
//!
//! Invariants: an unknown or not-installed package is an error naming it; with
//! `package-dependencies = true` the `Depends` closure less the base system is taken too, in
//! the `deps` layer (the listed packages go in `app`); a listed path missing on the host is a
//! warning, not an error (admins delete docs and locales).

use std::path::Path;

use bundle_format::LayerRole;

use super::{Dpkg, DpkgError};
use crate::capture::CaptureSet;
use crate::error::PackError;
use crate::origin::Origin;
use crate::recipe::Recipe;

/// Trees of documentation that the package stage skips.
pub const DOC_TREES: &[&str] = &[
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/lintian",
];

/// True for paths in [`DOC_TREES`].
pub fn is_documentation(p: &Path) -> bool {
    DOC_TREES.iter().any(|d| p.starts_with(d))
}

/// Captures the recipe's packages (and their dependencies if asked) from the host's database.
/// Nothing happens without packages, so non-Debian hosts pack other recipes.
pub fn add_packages(set: &mut CaptureSet, recipe: &Recipe) -> Result<(), PackError> {
    let listed = &recipe.capture.packages;
    if listed.is_empty() {
        return Ok(());
    }
    let db = Dpkg::open(Path::new("/"))?;
    for name in listed {
        if db.package(name).is_none() {
            return Err(DpkgError::NotInstalled(name.clone()).into());
        }
    }
    let deps = if recipe.capture.package_dependencies {
        db.depends_closure(listed)?
    } else {
        Vec::new()
    };
    let stage = set.origin.clone();
    let result = listed
        .iter()
        .map(|n| (n, LayerRole::App))
        .chain(deps.iter().map(|n| (n, LayerRole::Deps)))
        .try_for_each(|(name, role)| add_one(set, &db, name, role));
    set.origin = stage;
    result
}

fn add_one(set: &mut CaptureSet, db: &Dpkg, name: &str, role: LayerRole) -> Result<(), PackError> {
    set.origin = Origin::Package { name: name.into() };
    let reason = format!("file of package {name}");
    for path in db.files(name)? {
        let path = path.as_path();
        if is_documentation(path) || set.is_excluded(path) {
            continue;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => continue,
            Ok(m) if m.is_file() || m.file_type().is_symlink() => {}
            Ok(_) => continue,
            Err(_) => {
                set.warnings.push(format!(
                    "package {name} lists {}, which is not on this host",
                    path.display()
                ));
                continue;
            }
        }
        if std::fs::metadata(path).is_err() {
            set.warnings.push(format!(
                "package {name}: {} is a dangling symlink, left out",
                path.display()
            ));
            continue;
        }
        let real = set.add_path(path, role, &reason)?;
        if real.is_file() {
            set.enqueue(&real, Vec::new(), false);
        }
    }
    Ok(())
}
