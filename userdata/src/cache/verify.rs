//! The full check of a cache entry's tree against its layer's TOC: run when the tree was just
//! unpacked (to take its newest ctime) and whenever the entry's seal does not hold.
//!
//! Two strengths, chosen by what the stamp still says:
//! - [`by_ctime`] when the stamp is this layer's own (it names its digest and entry count) but
//!   the tree's top changed or moved: every entry of the TOC has its kind (files also their
//!   mode and size), and no inode in the tree changed after unpacking (its ctime is at most the
//!   stamp's newest ctime; ctime cannot be set back by a user, and a change to a file, an added
//!   or a removed entry moves the ctime of the file or of its directory);
//! - [`by_content`] when there is no such reference (no stamp, or one that cannot be read or
//!   names another layer): every entry byte for byte as the TOC describes it (kind, mode, size,
//!   mtime, sha256 of regular files, symlink targets, hardlinks to their target's inode), and
//!   every directory holding exactly the TOC's entries, nothing more.
//!
//! Paths come from a validated TOC and are visited in its order, parents before children, so a
//! directory replaced by a symlink is caught before anything below it is looked at. Files are
//! opened with `O_NOFOLLOW | O_NONBLOCK` (a FIFO in a file's place cannot hang the check). No
//! mode, time or content in the tree is ever changed.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use bundle_format::digest::HashingReader;
use bundle_format::{BundlePath, EntryKind, Toc, TocEntry};
use nix::fcntl::OFlag;

use super::seal::Ctime;

fn ctime(m: &fs::Metadata) -> Ctime {
    (m.ctime(), m.ctime_nsec())
}

/// What one pass over a freshly unpacked tree records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey {
    /// The newest ctime of the tree's directory and of every entry in it.
    pub max_ctime: Ctime,
    /// Bytes the tree takes on disk (allocated blocks; a hardlink's inode counted once).
    pub disk_bytes: u64,
}

/// One `lstat` of the tree's directory and of every entry of `toc` in it.
pub fn survey(tree: &Path, toc: &Toc) -> io::Result<Survey> {
    let top = fs::symlink_metadata(tree)?;
    let mut max = ctime(&top);
    let mut blocks = top.blocks();
    for e in &toc.entries {
        let m = fs::symlink_metadata(e.path.under(tree))?;
        max = max.max(ctime(&m));
        if e.kind != EntryKind::Hardlink {
            blocks = blocks.saturating_add(m.blocks());
        }
    }
    Ok(Survey {
        max_ctime: max,
        disk_bytes: blocks.saturating_mul(512),
    })
}

/// The newest ctime of the tree's directory and of every entry of `toc` in it.
pub fn max_ctime(tree: &Path, toc: &Toc) -> io::Result<Ctime> {
    survey(tree, toc).map(|s| s.max_ctime)
}

/// Every entry has the TOC's kind (files their mode and size) and no ctime in the tree is
/// newer than `max_ctime`.
pub fn by_ctime(tree: &Path, toc: &Toc, max_ctime: Ctime) -> bool {
    let Ok(root) = fs::symlink_metadata(tree) else {
        return false;
    };
    if !root.is_dir() || ctime(&root) > max_ctime {
        return false;
    }
    toc.entries.iter().all(|e| {
        let Ok(m) = fs::symlink_metadata(e.path.under(tree)) else {
            return false;
        };
        let kind_ok = match e.kind {
            EntryKind::Dir => m.is_dir(),
            EntryKind::File | EntryKind::Hardlink => m.is_file(),
            EntryKind::Symlink => m.file_type().is_symlink(),
        };
        let mode_ok =
            e.kind != EntryKind::File || (m.mode() & 0o7777 == e.mode && m.len() == e.size);
        kind_ok && mode_ok && ctime(&m) <= max_ctime
    })
}

/// Every entry exactly as the TOC says, contents included, and nothing else in the tree; the
/// newest ctime seen, or `None` at the first difference.
pub fn by_content(tree: &Path, toc: &Toc) -> Option<Ctime> {
    let root = fs::symlink_metadata(tree).ok()?;
    if !root.is_dir() || root.mode() & 0o7777 != 0o755 {
        return None;
    }
    let mut children: HashMap<&str, usize> = HashMap::new();
    for e in &toc.entries {
        let parent = e.path.as_str().rsplit_once('/').map_or("", |(p, _)| p);
        *children.entry(parent).or_default() += 1;
    }
    let listed = |dir: &Path, key: &str| {
        let want = children.get(key).copied().unwrap_or(0);
        fs::read_dir(dir)
            .and_then(|rd| rd.map(|e| e.map(|_| ())).collect::<io::Result<Vec<()>>>())
            .is_ok_and(|names| names.len() == want)
    };
    if !listed(tree, "") {
        return None;
    }
    let mut max = ctime(&root);
    for e in &toc.entries {
        let path = e.path.under(tree);
        let m = fs::symlink_metadata(&path).ok()?;
        let ok = match e.kind {
            EntryKind::Dir => {
                m.is_dir() && m.mode() & 0o7777 == e.mode && listed(&path, e.path.as_str())
            }
            EntryKind::File => file_matches(&path, e),
            EntryKind::Symlink => {
                m.file_type().is_symlink()
                    && fs::read_link(&path).is_ok_and(|t| {
                        Some(t.as_os_str()) == e.target.as_deref().map(|t| t.as_ref())
                    })
            }
            EntryKind::Hardlink => m.is_file() && same_inode(&m, tree, e),
        };
        if !ok {
            return None;
        }
        max = max.max(ctime(&m));
    }
    Some(max)
}

/// A regular file with the entry's mode, size, mtime and sha256 (read through one fd).
fn file_matches(path: &Path, e: &TocEntry) -> bool {
    let Ok(f) = fs::File::options()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
    else {
        return false;
    };
    let Ok(m) = f.metadata() else {
        return false;
    };
    let meta_ok = m.is_file()
        && m.mode() & 0o7777 == e.mode
        && m.len() == e.size
        && u64::try_from(m.mtime()).is_ok_and(|t| t == e.mtime)
        && m.mtime_nsec() == 0;
    if !meta_ok {
        return false;
    }
    let mut r = HashingReader::new(io::Read::take(f, e.size.saturating_add(1)));
    if io::copy(&mut r, &mut io::sink()).is_err() {
        return false;
    }
    let (_, digest, len) = r.into_parts();
    len == e.size && Some(digest) == e.sha256
}

/// A hardlink entry is the same inode as its target.
fn same_inode(m: &fs::Metadata, tree: &Path, e: &TocEntry) -> bool {
    let Some(target) = e.target.as_deref().and_then(|t| BundlePath::new(t).ok()) else {
        return false;
    };
    fs::symlink_metadata(target.under(tree)).is_ok_and(|t| t.dev() == m.dev() && t.ino() == m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bundle_format::extract::write_entry;
    use bundle_format::Digest;
    use std::os::unix::fs::PermissionsExt;

    fn entry(p: &str, kind: EntryKind, content: &[u8], target: Option<&str>) -> TocEntry {
        let file = kind == EntryKind::File;
        TocEntry {
            path: BundlePath::new(p).unwrap(),
            kind,
            mode: match kind {
                EntryKind::Symlink | EntryKind::Hardlink => 0o777,
                _ if p.ends_with(".sh") => 0o755,
                EntryKind::Dir => 0o755,
                EntryKind::File => 0o644,
            },
            size: if file { content.len() as u64 } else { 0 },
            mtime: 1_700_000_000,
            sha256: file.then(|| Digest::of(content)),
            target: target.map(str::to_owned),
        }
    }

    /// A tree unpacked from its TOC as the cache does it.
    fn unpacked() -> (tempfile::TempDir, Toc) {
        let d = tempfile::tempdir().unwrap();
        let toc = Toc {
            entries: vec![
                entry("usr", EntryKind::Dir, b"", None),
                entry("usr/bin", EntryKind::Dir, b"", None),
                entry(
                    "usr/bin/a.sh",
                    EntryKind::File,
                    b"#!/bin/sh\necho a\n",
                    None,
                ),
                entry("usr/bin/b", EntryKind::Hardlink, b"", Some("usr/bin/a.sh")),
                entry("usr/bin/c", EntryKind::Symlink, b"", Some("a.sh")),
                entry("usr/lib", EntryKind::Dir, b"", None),
                entry("usr/lib/data", EntryKind::File, b"0123456789", None),
            ],
        };
        toc.validate().unwrap();
        let tree = d.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let contents: HashMap<&str, &[u8]> = [
            ("usr/bin/a.sh", &b"#!/bin/sh\necho a\n"[..]),
            ("usr/lib/data", &b"0123456789"[..]),
        ]
        .into();
        for e in &toc.entries {
            let mut c = contents.get(e.path.as_str()).copied().unwrap_or_default();
            write_entry(&tree, e, &mut c).unwrap();
        }
        fs::set_permissions(&tree, fs::Permissions::from_mode(0o755)).unwrap();
        (d, toc)
    }

    #[test]
    fn an_unpacked_tree_passes_both_checks() {
        let (d, toc) = unpacked();
        let tree = d.path().join("tree");
        let max = max_ctime(&tree, &toc).unwrap();
        assert!(by_ctime(&tree, &toc, max));
        assert_eq!(by_content(&tree, &toc), Some(max));
    }

    #[test]
    fn by_content_catches_every_kind_of_damage() {
        type Damage = fn(&Path);
        let damages: &[(&str, Damage)] = &[
            ("same-size edit", |t| {
                fs::write(t.join("usr/lib/data"), b"9876543210").unwrap();
                let f = fs::File::options().write(true).open(t.join("usr/lib/data"));
                let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
                f.unwrap().set_modified(when).unwrap();
            }),
            ("truncated", |t| {
                fs::write(t.join("usr/lib/data"), b"01").unwrap()
            }),
            ("mtime", |t| {
                let f = fs::File::options().write(true).open(t.join("usr/lib/data"));
                f.unwrap()
                    .set_modified(std::time::SystemTime::now())
                    .unwrap();
            }),
            ("mode", |t| {
                let p = fs::Permissions::from_mode(0o600);
                fs::set_permissions(t.join("usr/lib/data"), p).unwrap();
            }),
            ("dir mode", |t| {
                fs::set_permissions(t.join("usr/lib"), fs::Permissions::from_mode(0o700)).unwrap()
            }),
            ("file removed", |t| {
                fs::remove_file(t.join("usr/lib/data")).unwrap()
            }),
            ("file added deep", |t| {
                fs::write(t.join("usr/lib/extra"), b"").unwrap()
            }),
            ("file added at the top", |t| {
                fs::write(t.join("extra"), b"").unwrap()
            }),
            ("symlink retargeted", |t| {
                fs::remove_file(t.join("usr/bin/c")).unwrap();
                std::os::unix::fs::symlink("/etc/passwd", t.join("usr/bin/c")).unwrap();
            }),
            ("hardlink broken", |t| {
                fs::remove_file(t.join("usr/bin/b")).unwrap();
                fs::copy(t.join("usr/bin/a.sh"), t.join("usr/bin/b")).unwrap();
            }),
            ("dir replaced by a symlink", |t| {
                fs::rename(t.join("usr/lib"), t.join("lib-elsewhere")).unwrap();
                std::os::unix::fs::symlink("../lib-elsewhere", t.join("usr/lib")).unwrap();
            }),
            ("file replaced by a FIFO", |t| {
                fs::remove_file(t.join("usr/lib/data")).unwrap();
                let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
                nix::unistd::mkfifo(&t.join("usr/lib/data"), mode).unwrap();
            }),
        ];
        for (what, damage) in damages {
            let (d, toc) = unpacked();
            let tree = d.path().join("tree");
            let max = max_ctime(&tree, &toc).unwrap();
            // Past the timestamp granularity (a kernel tick), so the damage's ctime is newer.
            std::thread::sleep(std::time::Duration::from_millis(20));
            damage(&tree);
            assert_eq!(by_content(&tree, &toc), None, "{what} not caught");
            // Every damage also moves a ctime past the newest after unpacking.
            assert!(!by_ctime(&tree, &toc, max), "{what} not caught by ctime");
            fs::set_permissions(&tree, fs::Permissions::from_mode(0o755)).unwrap();
            let _ = fs::set_permissions(tree.join("usr/lib"), fs::Permissions::from_mode(0o755));
        }
    }
}
