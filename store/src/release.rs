//! An installed release: the exact manifest bytes, its tables of contents and signatures, as
//! verified at install time. Immutable once renamed into `releases/<manifest-digest>`.

use std::fs;
use std::path::{Path, PathBuf};

use bundle_format::{Digest, Manifest, Toc};

use crate::error::{io, StoreError};
use crate::layout::Layout;

/// A release read back from the store.
#[derive(Debug, Clone)]
pub struct Release {
    pub dir: PathBuf,
    pub digest: Digest,
    pub manifest: Manifest,
    pub tocs: Vec<Toc>,
}

impl Release {
    /// Reads and re-checks a release directory (the store is the user's, but a release is
    /// still parsed as strictly as a bundle).
    pub fn read(dir: &Path, app: &str) -> Result<Self, StoreError> {
        let damaged = |problem: String| StoreError::Damaged {
            app: app.into(),
            problem,
        };
        let bytes = fs::read(dir.join("manifest.json")).map_err(io(dir))?;
        let digest = Digest::of(&bytes);
        if dir.file_name().and_then(|n| n.to_str()) != Some(digest.hex().as_str()) {
            return Err(damaged(
                "the manifest does not match its release directory".into(),
            ));
        }
        let manifest = Manifest::from_bytes(&bytes).map_err(|e| damaged(e.to_string()))?;
        let mut tocs = Vec::new();
        for (i, layer) in manifest.layers.iter().enumerate() {
            let p = dir.join(format!("toc-{i}.json"));
            let b = fs::read(&p).map_err(io(&p))?;
            let toc =
                Toc::from_canonical(&b).map_err(|e| damaged(format!("{}: {e}", p.display())))?;
            toc.validate().map_err(|e| damaged(e.to_string()))?;
            if toc.entries.len() as u64 != layer.entries {
                return Err(damaged(format!(
                    "{} does not match the manifest",
                    p.display()
                )));
            }
            tocs.push(toc);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            digest,
            manifest,
            tocs,
        })
    }

    /// The current release of `app`.
    pub fn current(layout: &Layout, app: &str) -> Result<Self, StoreError> {
        crate::layout::check_id(app)?;
        let link = layout.app(app).join("current");
        let target = fs::read_link(&link).map_err(|_| StoreError::NotInstalled(app.into()))?;
        Self::read(&layout.app(app).join(target), app)
    }

    /// The launcher source to run this release.
    pub fn source(&self, layout: &Layout) -> launcher::run::Source {
        launcher::run::Source::Installed {
            manifest: Box::new(self.manifest.clone()),
            tocs: self.tocs.clone(),
            layers: layout.layers(),
        }
    }
}
