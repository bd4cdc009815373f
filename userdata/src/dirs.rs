//! The XDG base directories Capsa uses, and private directory creation.
//!
//! `$XDG_DATA_HOME/capsa` holds the store, app state, overrides and consent;
//! `$XDG_CACHE_HOME/capsa` the unpacked layers of bundle files. Relative or unset variables
//! fall back to `$HOME/.local/share` and `$HOME/.cache`, as the XDG spec says.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{prep, DataError};

fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(fallback)
        })
}

/// `$XDG_CACHE_HOME/capsa`.
pub fn cache_dir() -> PathBuf {
    xdg("XDG_CACHE_HOME", ".cache").join("capsa")
}

/// `$XDG_DATA_HOME/capsa`.
pub fn data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("capsa")
}

/// `$XDG_CONFIG_HOME/capsa`.
pub fn config_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("capsa")
}

/// `$XDG_STATE_HOME/capsa`.
pub fn state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state").join("capsa")
}

/// Creates `p` (and parents) with mode 0700 for the directories this creates.
pub fn private_dir(p: &Path) -> Result<(), DataError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(prep(p))
}

/// Overlayfs takes paths in a comma- and colon-separated option string.
pub fn check_overlay_path(p: &Path) -> Result<(), DataError> {
    let s = p.to_string_lossy();
    if s.contains([',', ':', '\\']) || s.contains('\n') {
        return Err(DataError::OverlayPath { path: p.into() });
    }
    Ok(())
}
