//! The packer's error type: one variant per failed operation, naming the file concerned.

use std::path::PathBuf;

/// Everything `pack` can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    #[error("cannot read recipe {path}")]
    ReadRecipe {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recipe {path}: {problem}")]
    Recipe { path: PathBuf, problem: String },
    #[error("cannot read {path}")]
    ReadSource {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot capture {path}: {problem}")]
    Capture { path: PathBuf, problem: String },
    #[error("cannot parse ELF object {path}")]
    Elf {
        path: PathBuf,
        source: goblin::error::Error,
    },
    #[error("cannot read the loader cache")]
    LdCache(#[from] crate::ldcache::CacheError),
    #[error("unresolved shared libraries (list them in capture.allow-missing or pass --allow-missing to accept):\n{}", .0.join("\n"))]
    Unresolved(Vec<String>),
    #[error("app.command {0} is not in the bundle (capture it as a binary, path or file)")]
    CommandNotCaptured(String),
    #[error("desktop.icon {0} is not a captured file")]
    IconNotCaptured(String),
    #[error("captured ELF objects are for different machines: {0}")]
    MixedArch(String),
    #[error("the recipe lists {0}, which the sandbox provides: remove it from the recipe")]
    Provided(String),
    #[error("cannot use a temporary directory")]
    Temp(#[source] std::io::Error),
    #[error("cannot write layer {layer}")]
    WriteLayer {
        layer: &'static str,
        source: std::io::Error,
    },
    #[error("capture.trace: tracing needs the capsa binary (no trace helper was given)")]
    NoTraceHelper,
    #[error("cannot trace {command}")]
    Trace {
        command: String,
        source: trace::TraceError,
    },
    #[error(transparent)]
    Units(#[from] crate::units::UnitError),
    #[error(transparent)]
    Dpkg(#[from] crate::dpkg::DpkgError),
    #[error(transparent)]
    Format(#[from] bundle_format::Error),
}
