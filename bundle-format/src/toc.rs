//! The table of contents of a layer: one entry per tar entry, in tar order.
//!
//! Invariants checked by [`Toc::validate`]: paths strictly increasing bytewise (so no
//! duplicates, and every directory precedes its contents); every parent is a directory entry of
//! the same layer (nothing is ever written through a link); regular files and directories have
//! normalized modes (0644/0755, no setuid, setgid, sticky or world-write); symlink targets never
//! climb above the root; hardlinks point to an earlier regular file of the same layer; every
//! mtime is at most [`MAX_MTIME`] (the year 9999), every size and their sum at most
//! [`MAX_LAYER_SIZE`] (so [`Toc::content_size`] is exact and no later sum overflows).

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::limits::{human_size, MAX_LAYER_SIZE, MAX_MTIME};
use crate::path::{is_forbidden_char, BundlePath, MAX_PATH_LEN};

/// Most entries one layer may have.
pub const MAX_ENTRIES: usize = 1 << 20;

/// The type of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
    Hardlink,
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TocEntry {
    // Fields are declared in the bytewise order of their JSON names, so serde's own output is
    // the canonical encoding (see `Toc::to_canonical`): keep it that way.
    /// Permission bits: 0o755 or 0o644 for files, 0o755 for directories, 0o777 for links.
    pub mode: u32,
    /// Modification time, seconds since the epoch (restored on regular files when extracted).
    pub mtime: u64,
    pub path: BundlePath,
    /// Content digest (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Digest>,
    /// Content size in bytes (files only; 0 otherwise).
    pub size: u64,
    /// Link target (symlinks: as stored; hardlinks: a bundle path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(rename = "type")]
    pub kind: EntryKind,
}

/// A layer's table of contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toc {
    pub entries: Vec<TocEntry>,
}

/// A TOC that breaks an invariant: the entry and the reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("entry {path}: {problem}")]
pub struct TocError {
    pub path: String,
    pub problem: String,
}

fn err(path: &BundlePath, problem: impl Into<String>) -> TocError {
    TocError {
        path: path.to_string(),
        problem: problem.into(),
    }
}

/// Largest canonical JSON of one entry: a path and a target of 4096 bytes each, plus the
/// fixed fields. Bounds the decompressed size of a TOC by its manifest's entry count.
pub const MAX_ENTRY_JSON: u64 = 2 * 4096 + 256;

impl Toc {
    /// The canonical encoding, written straight from the typed value (no JSON tree in
    /// memory): the field order makes serde's output canonical.
    pub fn to_canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a TOC serializes")
    }

    /// Decodes canonical TOC bytes: at most 2-3 times their size in memory.
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, crate::canonical::CanonicalError> {
        let toc: Toc =
            serde_json::from_slice(bytes).map_err(crate::canonical::CanonicalError::Parse)?;
        if toc.to_canonical() != bytes {
            return Err(crate::canonical::CanonicalError::NotCanonical);
        }
        Ok(toc)
    }

    /// Checks every invariant listed in the module docs.
    pub fn validate(&self) -> Result<(), TocError> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(TocError {
                path: String::new(),
                problem: format!("more than {MAX_ENTRIES} entries"),
            });
        }
        let mut kinds: std::collections::HashMap<&BundlePath, EntryKind> = Default::default();
        let mut prev: Option<&BundlePath> = None;
        let mut total = 0u64;
        for e in &self.entries {
            if let Some(p) = prev {
                if p.as_str().as_bytes() >= e.path.as_str().as_bytes() {
                    return Err(err(
                        &e.path,
                        "duplicate or out of order (entries must be sorted)",
                    ));
                }
            }
            prev = Some(&e.path);
            if let Some(parent) = e.path.parent() {
                if kinds.get(&parent) != Some(&EntryKind::Dir) {
                    return Err(err(&e.path, "parent is not a directory of this layer"));
                }
            }
            validate_numbers(e)?;
            validate_entry(e, &kinds)?;
            kinds.insert(&e.path, e.kind);
            total = total
                .checked_add(e.size)
                .filter(|&t| t <= MAX_LAYER_SIZE)
                .ok_or_else(|| {
                    err(
                        &e.path,
                        format!(
                            "the layer's files add up to more than the limit of {MAX_LAYER_SIZE} bytes ({})",
                            human_size(MAX_LAYER_SIZE)
                        ),
                    )
                })?;
        }
        Ok(())
    }

    /// Sum of the sizes of regular files: exact for a validated TOC, saturating otherwise.
    pub fn content_size(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .try_fold(0u64, |sum, e| sum.checked_add(e.size))
            .unwrap_or(u64::MAX)
    }
}

/// Bounds an entry's mtime and size (see [`crate::limits`]).
fn validate_numbers(e: &TocEntry) -> Result<(), TocError> {
    if e.mtime > MAX_MTIME {
        return Err(err(
            &e.path,
            format!(
                "mtime {} is after the year 9999 (at most {MAX_MTIME})",
                e.mtime
            ),
        ));
    }
    if e.size > MAX_LAYER_SIZE {
        return Err(err(
            &e.path,
            format!(
                "size {} is more than the limit of {MAX_LAYER_SIZE} bytes ({})",
                e.size,
                human_size(MAX_LAYER_SIZE)
            ),
        ));
    }
    Ok(())
}

fn validate_entry(
    e: &TocEntry,
    kinds: &std::collections::HashMap<&BundlePath, EntryKind>,
) -> Result<(), TocError> {
    let (mode_ok, has_size, has_digest, has_target) = match e.kind {
        EntryKind::Dir => (e.mode == 0o755, false, false, false),
        EntryKind::File => (e.mode == 0o755 || e.mode == 0o644, true, true, false),
        EntryKind::Symlink | EntryKind::Hardlink => (e.mode == 0o777, false, false, true),
    };
    if !mode_ok {
        return Err(err(
            &e.path,
            format!("mode {:o} is not allowed for a {:?}", e.mode, e.kind),
        ));
    }
    if !has_size && e.size != 0 {
        return Err(err(&e.path, "only regular files have a size"));
    }
    if has_digest != e.sha256.is_some() {
        return Err(err(&e.path, "regular files, and only they, carry a sha256"));
    }
    if has_target != e.target.is_some() {
        return Err(err(&e.path, "links, and only they, carry a target"));
    }
    if let Some(target) = &e.target {
        if target.is_empty() || target.len() > MAX_PATH_LEN || target.chars().any(is_forbidden_char)
        {
            return Err(err(
                &e.path,
                "link target is empty, too long or has control characters",
            ));
        }
        match e.kind {
            EntryKind::Symlink => {
                if e.path.resolve_link(target).is_none() {
                    return Err(err(
                        &e.path,
                        format!("symlink target {target:?} leads out of the bundle root"),
                    ));
                }
            }
            _ => {
                let t = BundlePath::new(target)
                    .map_err(|why| err(&e.path, format!("hardlink target {target:?}: {why}")))?;
                if kinds.get(&t) != Some(&EntryKind::File) {
                    return Err(err(
                        &e.path,
                        format!("hardlink target {t} is not an earlier regular file of this layer"),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_encoding_is_canonical() {
        let toc = Toc {
            entries: vec![
                dir("usr"),
                file("usr/a", 0o644),
                link("usr/b", EntryKind::Symlink, "a"),
            ],
        };
        assert_eq!(toc.to_canonical(), crate::canonical::to_vec(&toc).unwrap());
        assert_eq!(Toc::from_canonical(&toc.to_canonical()).unwrap(), toc);
    }

    fn dir(p: &str) -> TocEntry {
        TocEntry {
            path: BundlePath::new(p).unwrap(),
            kind: EntryKind::Dir,
            mode: 0o755,
            size: 0,
            mtime: 0,
            sha256: None,
            target: None,
        }
    }
    fn file(p: &str, mode: u32) -> TocEntry {
        TocEntry {
            path: BundlePath::new(p).unwrap(),
            kind: EntryKind::File,
            mode,
            size: 1,
            mtime: 0,
            sha256: Some(Digest::of(b"x")),
            target: None,
        }
    }
    fn link(p: &str, kind: EntryKind, t: &str) -> TocEntry {
        TocEntry {
            path: BundlePath::new(p).unwrap(),
            kind,
            mode: 0o777,
            size: 0,
            mtime: 0,
            sha256: None,
            target: Some(t.into()),
        }
    }

    #[test]
    fn accepts_a_normal_tree() {
        let toc = Toc {
            entries: vec![
                dir("usr"),
                dir("usr/bin"),
                file("usr/bin/a", 0o755),
                link("usr/bin/b", EntryKind::Hardlink, "usr/bin/a"),
                link("usr/bin/c", EntryKind::Symlink, "a"),
                link("usr/bin/d", EntryKind::Symlink, "/usr/bin/a"),
            ],
        };
        toc.validate().unwrap();
    }

    #[test]
    fn rejects_broken_invariants() {
        let cases: Vec<(Vec<TocEntry>, &str)> = vec![
            (vec![file("a", 0o644), file("a", 0o644)], "duplicate"),
            (vec![dir("b"), dir("a")], "out of order"),
            (vec![file("a/b", 0o644)], "parent"),
            (
                vec![
                    link("a", EntryKind::Symlink, "/etc"),
                    file("a/passwd", 0o644),
                ],
                "parent",
            ),
            (vec![file("a", 0o4755)], "mode"),
            (vec![file("a", 0o666)], "mode"),
            (
                vec![dir("a"), link("a/b", EntryKind::Symlink, "../../x")],
                "leads out",
            ),
            (
                vec![link("h", EntryKind::Hardlink, "../etc/passwd")],
                "hardlink target",
            ),
            (vec![link("h", EntryKind::Hardlink, "z")], "not an earlier"),
            (
                vec![TocEntry {
                    mtime: MAX_MTIME + 1,
                    ..file("a", 0o644)
                }],
                "after the year 9999",
            ),
            (
                vec![TocEntry {
                    size: MAX_LAYER_SIZE + 1,
                    ..file("a", 0o644)
                }],
                "more than the limit",
            ),
            (
                vec![
                    TocEntry {
                        size: MAX_LAYER_SIZE,
                        ..file("a", 0o644)
                    },
                    file("b", 0o644),
                ],
                "add up to more than the limit",
            ),
        ];
        for (entries, want) in cases {
            let e = Toc { entries }.validate().unwrap_err();
            assert!(e.to_string().contains(want), "{e} should mention {want}");
        }
    }
}
