//! [`App`]: a bundle file opened as hostile input (its signatures checked, its identity
//! found), or an installed app the store checked at install, before anything is unpacked
//! or granted; and where its layers' trees come from.
//!
//! The layers' TOCs are decoded only when something needs them: the cache, for a layer whose
//! seal does not hold (a full check or an unpack), and the read-only root, when it is built.
//! A warm start, every seal holding, decodes none (the top-level directories Landlock needs
//! are read from the sealed trees' top directories, which the seals vouch for).

use std::cell::OnceCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bundle_format::{Bundle, Digest, Manifest, PublicKey, Toc};
use userdata::cache::{CacheOutcome, LayerCache};
use userdata::{dirs, DataError, Identity, Publisher};

use crate::error::LaunchError;
use crate::report::Layers;

/// Reads an installed release's TOCs (checked as strictly as a bundle's), when first needed.
pub type LoadTocs =
    Arc<dyn Fn() -> Result<Vec<Toc>, Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// What to run: a bundle file, or an installed app (checked when it was installed).
#[derive(Clone)]
pub enum Source {
    Bundle(PathBuf),
    Installed {
        manifest: Box<Manifest>,
        digest: Digest,
        /// The release directory, named when its TOCs cannot be read.
        release: PathBuf,
        tocs: LoadTocs,
        layers: PathBuf,
        publisher: Publisher,
    },
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Bundle(p) => f.debug_tuple("Bundle").field(p).finish(),
            Source::Installed {
                digest, release, ..
            } => f
                .debug_struct("Installed")
                .field("digest", digest)
                .field("release", release)
                .finish_non_exhaustive(),
        }
    }
}

pub(crate) enum Origin {
    Bundle(Box<Bundle>),
    Installed {
        release: PathBuf,
        tocs: LoadTocs,
        layers: PathBuf,
    },
}

/// An app opened and checked, before anything is unpacked or granted.
pub struct App {
    pub(crate) manifest: Manifest,
    pub(crate) digest: Digest,
    pub(crate) identity: Identity,
    origin: Origin,
    /// The decoded TOCs, once something needed them.
    tocs: OnceCell<Vec<Toc>>,
    /// The layers' top-level directories, read from their trees by [`App::trees`].
    root_dirs: OnceCell<Vec<PathBuf>>,
}

impl App {
    /// Opens `source`; a bundle file is read as hostile input, its signatures checked (and
    /// required to include `trusted` when given).
    pub fn open(source: Source, trusted: Option<&PublicKey>) -> Result<Self, LaunchError> {
        let (manifest, digest, origin, publisher) = match source {
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
                let m = bundle.manifest().clone();
                (m, digest, Origin::Bundle(Box::new(bundle)), publisher)
            }
            Source::Installed {
                manifest,
                digest,
                release,
                tocs,
                layers,
                publisher,
            } => {
                check_arch(&manifest)?;
                let origin = Origin::Installed {
                    release,
                    tocs,
                    layers,
                };
                (*manifest, digest, origin, publisher)
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
            origin,
            tocs: OnceCell::new(),
            root_dirs: OnceCell::new(),
        })
    }

    /// The layers' TOCs in manifest order, decoded (and their digests checked) on first use.
    pub(crate) fn tocs(&self) -> Result<&[Toc], LaunchError> {
        if let Some(t) = self.tocs.get() {
            return Ok(t);
        }
        let tocs = match &self.origin {
            Origin::Bundle(b) => b.tocs().map_err(|source| LaunchError::Bundle {
                path: b.path().to_path_buf(),
                source,
            })?,
            Origin::Installed { release, tocs, .. } => tocs().map_err(|e| DataError::Record {
                path: release.clone(),
                why: chain(&*e),
            })?,
        };
        if tocs.len() != self.manifest.layers.len() {
            return Err(DataError::Record {
                path: self.source_path(),
                why: "the number of tables of contents differs from the manifest's layers".into(),
            }
            .into());
        }
        Ok(self.tocs.get_or_init(|| tocs))
    }

    fn source_path(&self) -> PathBuf {
        match &self.origin {
            Origin::Bundle(b) => b.path().to_path_buf(),
            Origin::Installed { release, .. } => release.clone(),
        }
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
        matches!(self.origin, Origin::Installed { .. })
    }

    /// The layers' trees: unpacked (or repaired) in the user's cache for a bundle file,
    /// checked in the store for an installed app. TOCs are decoded only for a layer whose seal
    /// does not hold.
    pub(crate) fn trees(&self, cache_root: &Path) -> Result<(Vec<PathBuf>, Layers), LaunchError> {
        let (trees, layers) = match &self.origin {
            Origin::Bundle(bundle) => {
                let cache = LayerCache::new(cache_root.join("layers"))?;
                dirs::check_overlay_path(cache.dir())?;
                // Threads (only for layers that need work) end before the sandbox is cloned.
                let ensured = cache.ensure_all(bundle, || self.tocs())?;
                let (trees, outcomes): (Vec<PathBuf>, Vec<CacheOutcome>) =
                    ensured.into_iter().unzip();
                let unpacked = outcomes.iter().filter(|o| **o != CacheOutcome::Hit).count();
                let repaired = outcomes.contains(&CacheOutcome::Repaired);
                (trees, Layers::Cached { unpacked, repaired })
            }
            Origin::Installed { layers, .. } => {
                let store = LayerCache::new(layers.clone())?;
                dirs::check_overlay_path(store.dir())?;
                let trees = self
                    .manifest
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(i, l)| store.check(l, || Ok::<_, LaunchError>(&self.tocs()?[i])))
                    .collect::<Result<Vec<_>, _>>()?;
                (trees, Layers::Installed)
            }
        };
        let _ = self.root_dirs.set(top_dirs(&trees)?);
        Ok((trees, layers))
    }

    /// The top-level directories of the layers: from their trees once [`App::trees`] checked
    /// them, from the TOCs before (none when they cannot be read: Landlock then allows less).
    pub(crate) fn root_dirs(&self) -> Vec<PathBuf> {
        if let Some(d) = self.root_dirs.get() {
            return d.clone();
        }
        let mut out: Vec<PathBuf> = self
            .tocs()
            .unwrap_or_default()
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

/// The directories directly in the trees (sorted, once each), as `/name`: one directory
/// listing per tree, whose top a holding seal vouches for.
fn top_dirs(trees: &[PathBuf]) -> Result<Vec<PathBuf>, LaunchError> {
    let mut out = Vec::new();
    for tree in trees {
        let prep = |source| LaunchError::Prepare {
            path: tree.clone(),
            source,
        };
        for e in std::fs::read_dir(tree).map_err(prep)? {
            let e = e.map_err(prep)?;
            if e.file_type().map_err(prep)?.is_dir() {
                out.push(PathBuf::from("/").join(e.file_name()));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// An error and its sources, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.last().is_some_and(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
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
