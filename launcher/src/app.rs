//! [`App`]: a bundle file opened as hostile input (its signatures checked, its identity
//! found), or an installed app the store checked at install, before anything is unpacked
//! or granted; and where its layers' trees come from.

use std::path::{Path, PathBuf};

use bundle_format::{Bundle, Digest, Manifest, PublicKey, Toc};
use userdata::cache::{CacheOutcome, LayerCache};
use userdata::{dirs, Identity, Publisher};

use crate::error::LaunchError;
use crate::report::Layers;

/// What to run: a bundle file, or an installed app (checked when it was installed).
#[derive(Debug, Clone)]
pub enum Source {
    Bundle(PathBuf),
    Installed {
        manifest: Box<Manifest>,
        digest: Digest,
        tocs: Vec<Toc>,
        layers: PathBuf,
        publisher: Publisher,
    },
}

pub(crate) enum Origin {
    Bundle(Box<Bundle>),
    Installed(PathBuf),
}

/// An app opened and checked, before anything is unpacked or granted.
pub struct App {
    pub(crate) manifest: Manifest,
    pub(crate) digest: Digest,
    pub(crate) identity: Identity,
    pub(crate) tocs: Vec<Toc>,
    origin: Origin,
}

impl App {
    /// Opens `source`; a bundle file is read as hostile input, its signatures checked (and
    /// required to include `trusted` when given).
    pub fn open(source: Source, trusted: Option<&PublicKey>) -> Result<Self, LaunchError> {
        let (manifest, digest, tocs, origin, publisher) = match source {
            Source::Bundle(path) => {
                if std::fs::symlink_metadata(&path).is_err() {
                    return Err(LaunchError::NoSuchFile(path));
                }
                let bundle_err = |source| LaunchError::Bundle {
                    path: path.clone(),
                    source,
                };
                let bundle = Bundle::open(&path).map_err(bundle_err)?;
                check_arch(bundle.manifest())?;
                let state = bundle.check_signatures(trusted).map_err(bundle_err)?;
                let digest = bundle.manifest_digest();
                let publisher =
                    Publisher::of_bundle(&bundle, &state).unwrap_or(Publisher::Unsigned(digest));
                let tocs = bundle.tocs().map_err(bundle_err)?;
                let m = bundle.manifest().clone();
                (m, digest, tocs, Origin::Bundle(Box::new(bundle)), publisher)
            }
            Source::Installed {
                manifest,
                digest,
                tocs,
                layers,
                publisher,
            } => {
                check_arch(&manifest)?;
                (
                    *manifest,
                    digest,
                    tocs,
                    Origin::Installed(layers),
                    publisher,
                )
            }
        };
        let identity = Identity {
            id: manifest.id.clone(),
            publisher,
        };
        Ok(Self {
            manifest,
            digest,
            identity,
            tocs,
            origin,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
    pub fn is_installed(&self) -> bool {
        matches!(self.origin, Origin::Installed(_))
    }

    /// The layers' trees: unpacked (or repaired) in the user's cache for a bundle file,
    /// checked in the store for an installed app.
    pub(crate) fn trees(&self, cache_root: &Path) -> Result<(Vec<PathBuf>, Layers), LaunchError> {
        match &self.origin {
            Origin::Bundle(bundle) => {
                let cache = LayerCache::new(cache_root.join("layers"))?;
                dirs::check_overlay_path(cache.dir())?;
                // Threads end before the sandbox is cloned.
                let ensured = cache.ensure_all(bundle, &self.tocs)?;
                let (trees, outcomes): (Vec<PathBuf>, Vec<CacheOutcome>) =
                    ensured.into_iter().unzip();
                let unpacked = outcomes.iter().filter(|o| **o != CacheOutcome::Hit).count();
                let repaired = outcomes.contains(&CacheOutcome::Repaired);
                Ok((trees, Layers::Cached { unpacked, repaired }))
            }
            Origin::Installed(layers) => {
                let store = LayerCache::new(layers.clone())?;
                dirs::check_overlay_path(store.dir())?;
                let trees = self
                    .manifest
                    .layers
                    .iter()
                    .zip(&self.tocs)
                    .map(|(l, t)| store.check(l, t))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((trees, Layers::Installed))
            }
        }
    }

    /// The top-level directories of the layers.
    pub(crate) fn root_dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .tocs
            .iter()
            .flat_map(|t| &t.entries)
            .filter(|e| e.kind == bundle_format::EntryKind::Dir)
            .map(|e| PathBuf::from("/").join(e.path.as_str()))
            .filter(|p| p.components().count() == 2)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn check_arch(m: &Manifest) -> Result<(), LaunchError> {
    if m.arch != std::env::consts::ARCH {
        return Err(LaunchError::Arch {
            bundle: m.arch.clone(),
            host: std::env::consts::ARCH.into(),
        });
    }
    Ok(())
}
