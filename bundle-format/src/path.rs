//! `BundlePath`: the one checked type for every path inside a bundle.
//!
//! Invariants (held by the only constructor, [`BundlePath::new`]): relative, `/`-separated,
//! no empty, `.` or `..` component, no NUL, no control or bidi-override character, at most
//! [`MAX_PATH_LEN`] bytes, components of at most [`MAX_NAME_LEN`] bytes and at most
//! [`MAX_DEPTH`] components. A bundle path names a file at `/<path>` inside the sandbox.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Longest path accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single component, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 128;

/// Why a string is not a valid bundle path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("absolute path")]
    Absolute,
    #[error("`..` component")]
    ParentDir,
    #[error("empty or `.` component")]
    EmptyComponent,
    #[error("NUL, control or bidi-override character")]
    BadCharacter,
    #[error("path longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("component longer than {MAX_NAME_LEN} bytes")]
    NameTooLong,
    #[error("deeper than {MAX_DEPTH} components")]
    TooDeep,
    #[error("not valid UTF-8")]
    NotUtf8,
}

/// A validated, relative, normalized path inside a bundle (see the module docs).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BundlePath(String);

impl BundlePath {
    /// Checks `s` and wraps it. This is the only way to make a `BundlePath`.
    pub fn new(s: &str) -> Result<Self, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute);
        }
        if s.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        if s.chars().any(is_forbidden_char) {
            return Err(PathError::BadCharacter);
        }
        let mut depth = 0;
        for comp in s.split('/') {
            match comp {
                "" | "." => return Err(PathError::EmptyComponent),
                ".." => return Err(PathError::ParentDir),
                c if c.len() > MAX_NAME_LEN => return Err(PathError::NameTooLong),
                _ => depth += 1,
            }
        }
        if depth > MAX_DEPTH {
            return Err(PathError::TooDeep);
        }
        Ok(Self(s.to_owned()))
    }

    /// Checks raw bytes from an archive header: they must be UTF-8 and a valid path.
    /// A single trailing `/` (how tar marks directories) is dropped first.
    pub fn from_archive_bytes(bytes: &[u8]) -> Result<Self, PathError> {
        let s = std::str::from_utf8(bytes).map_err(|_| PathError::NotUtf8)?;
        Self::new(s.strip_suffix('/').unwrap_or(s))
    }

    /// Converts an absolute host path (`/usr/bin/x`) into the bundle path it is captured at.
    pub fn from_host(path: &Path) -> Result<Self, PathError> {
        let s = path.to_str().ok_or(PathError::NotUtf8)?;
        let rel = s.strip_prefix('/').ok_or(PathError::Empty)?;
        Self::new(rel.trim_end_matches('/'))
    }

    /// The path as stored (`usr/bin/x`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute path inside the sandbox (`/usr/bin/x`).
    pub fn to_absolute(&self) -> PathBuf {
        PathBuf::from(format!("/{}", self.0))
    }

    /// `dir.join(self)`: safe because a `BundlePath` never climbs or is absolute.
    pub fn under(&self, dir: &Path) -> PathBuf {
        dir.join(&self.0)
    }

    /// The parent directory, or `None` for a top-level entry.
    pub fn parent(&self) -> Option<BundlePath> {
        self.0
            .rsplit_once('/')
            .map(|(p, _)| BundlePath(p.to_owned()))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Resolves a symlink target lexically, as the kernel would inside the bundle root
    /// (absolute targets start at the root). Returns `None` when a relative target climbs
    /// above the root, i.e. would lead out of the bundle if followed outside the sandbox.
    pub fn resolve_link(&self, target: &str) -> Option<Vec<String>> {
        let mut parts: Vec<String> = if target.starts_with('/') {
            Vec::new()
        } else {
            self.parent()
                .map(|p| p.0.split('/').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        for comp in target.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                c => parts.push(c.to_owned()),
            }
        }
        Some(parts)
    }
}

/// NUL, C0/C1 controls, DEL, and the Unicode bidi overrides/isolates that can disguise a name.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

impl TryFrom<String> for BundlePath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, PathError> {
        Self::new(&s)
    }
}

impl From<BundlePath> for String {
    fn from(p: BundlePath) -> String {
        p.0
    }
}

impl fmt::Display for BundlePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

impl fmt::Debug for BundlePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", format!("/{}", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_paths() {
        for ok in ["usr", "usr/bin/python3.11", "a b/c-d_e.f", "x/..y/z.."] {
            assert!(BundlePath::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_hostile_paths() {
        let cases = [
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("//evil", PathError::Absolute),
            ("../evil", PathError::ParentDir),
            ("a/../../b", PathError::ParentDir),
            ("./x", PathError::EmptyComponent),
            ("a//b", PathError::EmptyComponent),
            ("a/", PathError::EmptyComponent),
            ("a\0b", PathError::BadCharacter),
            ("a\nb", PathError::BadCharacter),
            ("a\u{1b}[31m", PathError::BadCharacter),
            ("txt.\u{202E}exe", PathError::BadCharacter),
            ("a\u{061C}b", PathError::BadCharacter),
        ];
        for (s, e) in cases {
            assert_eq!(BundlePath::new(s), Err(e), "{s:?}");
        }
        assert_eq!(
            BundlePath::new(&"a".repeat(256)),
            Err(PathError::NameTooLong)
        );
        assert_eq!(
            BundlePath::new("a/".repeat(129).trim_end_matches('/')),
            Err(PathError::TooDeep)
        );
        assert_eq!(
            BundlePath::new(&"ab/".repeat(1400)),
            Err(PathError::TooLong)
        );
        assert_eq!(
            BundlePath::from_archive_bytes(b"\xff"),
            Err(PathError::NotUtf8)
        );
    }

    #[test]
    fn archive_dirs_drop_one_trailing_slash() {
        assert_eq!(
            BundlePath::from_archive_bytes(b"usr/").unwrap().as_str(),
            "usr"
        );
        assert!(BundlePath::from_archive_bytes(b"usr//").is_err());
    }

    #[test]
    fn resolves_links_lexically_inside_root() {
        let p = BundlePath::new("usr/lib/libz.so.1").unwrap();
        assert_eq!(
            p.resolve_link("libz.so.1.2").unwrap().join("/"),
            "usr/lib/libz.so.1.2"
        );
        assert_eq!(p.resolve_link("../../bin/x").unwrap().join("/"), "bin/x");
        assert_eq!(p.resolve_link("/etc/x").unwrap().join("/"), "etc/x");
        assert!(p.resolve_link("../../../x").is_none());
        let top = BundlePath::new("lib").unwrap();
        assert_eq!(top.resolve_link("usr/lib").unwrap().join("/"), "usr/lib");
        assert!(top.resolve_link("..").is_none());
    }
}
