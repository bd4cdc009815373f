//! The XDG base directories Capsa uses, the user's XDG user folders (`user-dirs.dirs`), and
//! private directory creation.
//!
//! `$XDG_DATA_HOME/capsa` holds the store, app state, overrides and consent;
//! `$XDG_CACHE_HOME/capsa` the unpacked layers of bundle files. Relative or unset variables
//! fall back to `$HOME/.local/share` and `$HOME/.cache`, as the XDG spec says.

use std::collections::BTreeMap;
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

/// Parses `user-dirs.dirs` (`XDG_DOWNLOAD_DIR="$HOME/Downloads"`), with the usual defaults.
pub fn user_dirs(home: &Path, text: Option<&str>) -> BTreeMap<String, PathBuf> {
    let defaults = [
        ("DESKTOP", "Desktop"),
        ("DOCUMENTS", "Documents"),
        ("DOWNLOAD", "Downloads"),
        ("MUSIC", "Music"),
        ("PICTURES", "Pictures"),
        ("PUBLICSHARE", "Public"),
        ("TEMPLATES", "Templates"),
        ("VIDEOS", "Videos"),
    ];
    let name = |k: &str| match k {
        "PUBLICSHARE" => "xdg-public-share".to_owned(),
        k => format!("xdg-{}", k.to_lowercase()),
    };
    let mut out: BTreeMap<String, PathBuf> = defaults
        .iter()
        .map(|(k, d)| (name(k), home.join(d)))
        .collect();
    for line in text.unwrap_or_default().lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let Some(k) = k.strip_prefix("XDG_").and_then(|k| k.strip_suffix("_DIR")) else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        let path = match v.strip_prefix("$HOME") {
            Some(rest) => home.join(rest.trim_start_matches('/')),
            None if v.starts_with('/') => PathBuf::from(v),
            None => continue,
        };
        if defaults.iter().any(|(d, _)| *d == k) {
            out.insert(name(k), path);
        }
    }
    out
}

/// The user's XDG user folders (`xdg-download` → `/home/u/Downloads`), from
/// `$XDG_CONFIG_HOME/user-dirs.dirs` (default `~/.config`) and the usual defaults.
pub fn user_dirs_of(home: &Path) -> BTreeMap<String, PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".config"));
    let text = fs::read_to_string(config.join("user-dirs.dirs")).ok();
    user_dirs(home, text.as_deref())
}
