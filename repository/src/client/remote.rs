//! Remotes: `$XDG_CONFIG_HOME/capsa/remotes/<name>.json`, `{"url":..,"mirrors":[..],"key":".."}`.
//!
//! Trust is explicit: the key is the one the user gave (a `.pub` file of `capsa keygen` or its
//! 64 hex digits), never fetched from the server. Removing a remote removes only this file:
//! what the client learnt about the repository (its newest root, the highest index version,
//! the downgrade floors) is kept by key in the trust state, so re-adding the same key cannot
//! roll it back.
//!
//! Invariants: a remote's name is checked before it names a file; URLs are `http://`,
//! `https://` or `file://` of an absolute path; the key is a valid ed25519 public key.

use std::fs;
use std::path::PathBuf;

use bundle_format::PublicKey;
use serde::{Deserialize, Serialize};

use super::error::{read_err, write_err, ClientError};
use super::files::{read_json, write_json, Dirs};

/// A configured remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remote {
    pub name: String,
    pub url: String,
    pub mirrors: Vec<String>,
    /// The pinned key, hex.
    pub key: String,
}

/// What is stored (the name is the file's).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    url: String,
    #[serde(default)]
    mirrors: Vec<String>,
    key: String,
}

impl Remote {
    /// The pinned key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_hex(&self.key).expect("checked when the remote was read")
    }

    /// The pinned key's id: what the trust state is kept by.
    pub fn key_id(&self) -> String {
        self.public_key().key_id()
    }

    /// The main URL, then the mirrors.
    pub fn urls(&self) -> Vec<String> {
        std::iter::once(self.url.clone())
            .chain(self.mirrors.iter().cloned())
            .collect()
    }
}

/// Remote names: 1 to 64 of `a-z 0-9 - _ .`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), ClientError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if !ok {
        return Err(ClientError::RemoteName { name: name.into() });
    }
    Ok(())
}

/// `http://`, `https://` or `file://` of an absolute path, without white space or controls.
pub fn check_url(url: &str) -> Result<(), ClientError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .filter(|r| !r.is_empty() && !r.starts_with('/'))
        .or_else(|| url.strip_prefix("file://").filter(|p| p.starts_with('/')));
    let ok = rest.is_some()
        && url.len() <= 4096
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(ClientError::Url { url: url.into() });
    }
    Ok(())
}

/// A key as the user gives it: 64 hex digits, or the path of a `.pub` file.
pub fn parse_key(given: &str) -> Result<PublicKey, ClientError> {
    let err = || ClientError::Key {
        given: given.into(),
    };
    if given.len() == 64 && given.bytes().all(|b| b.is_ascii_hexdigit()) {
        return PublicKey::from_hex(&given.to_ascii_lowercase()).ok_or_else(err);
    }
    PublicKey::load(std::path::Path::new(given)).map_err(|_| err())
}

fn path(dirs: &Dirs, name: &str) -> PathBuf {
    dirs.remotes().join(format!("{name}.json"))
}

/// Adds a remote; refuses a name in use.
pub fn add(
    dirs: &Dirs,
    name: &str,
    url: &str,
    mirrors: &[String],
    key: &PublicKey,
) -> Result<Remote, ClientError> {
    check_name(name)?;
    for u in std::iter::once(url).chain(mirrors.iter().map(String::as_str)) {
        check_url(u)?;
    }
    let p = path(dirs, name);
    if fs::symlink_metadata(&p).is_ok() {
        return Err(ClientError::RemoteExists { name: name.into() });
    }
    let stored = Stored {
        url: url.trim_end_matches('/').into(),
        mirrors: mirrors
            .iter()
            .map(|m| m.trim_end_matches('/').into())
            .collect(),
        key: key.to_hex(),
    };
    write_json(&p, &stored)?;
    get(dirs, name)
}

/// One remote.
pub fn get(dirs: &Dirs, name: &str) -> Result<Remote, ClientError> {
    check_name(name)?;
    let p = path(dirs, name);
    let stored: Stored =
        read_json(&p)?.ok_or_else(|| ClientError::NoRemote { name: name.into() })?;
    let bad = |why: &str| ClientError::BadLocal {
        path: p.clone(),
        why: why.into(),
    };
    PublicKey::from_hex(&stored.key).ok_or_else(|| bad("the key is not a public key"))?;
    for u in std::iter::once(&stored.url).chain(&stored.mirrors) {
        check_url(u).map_err(|_| bad("a URL is not a repository URL"))?;
    }
    Ok(Remote {
        name: name.into(),
        url: stored.url,
        mirrors: stored.mirrors,
        key: stored.key,
    })
}

/// Every remote, by name.
pub fn list(dirs: &Dirs) -> Result<Vec<Remote>, ClientError> {
    let dir = dirs.remotes();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(&dir)(e)),
    };
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(read_err(&dir))?;
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(name) = file.strip_suffix(".json") {
            if check_name(name).is_ok() {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    names.iter().map(|n| get(dirs, n)).collect()
}

/// Removes a remote's configuration (its trust state stays, kept by key).
pub fn remove(dirs: &Dirs, name: &str) -> Result<Remote, ClientError> {
    let r = get(dirs, name)?;
    let p = path(dirs, name);
    fs::remove_file(&p).map_err(write_err(&p))?;
    Ok(r)
}
