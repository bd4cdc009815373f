//! Extracts a bundle's tree into a directory, all or nothing.
//!
//! Everything is written into a fresh private (0700) staging directory beside the destination,
//! then renamed into place; a failure removes the staging directory and leaves the destination
//! untouched. Every entry was validated ([`crate::toc`]): its parents are directories created
//! here, so nothing is written through a link; files are created with `O_CREAT|O_EXCL|O_NOFOLLOW`
//! and given their mode through the open descriptor. No ownership, xattr or special bit is ever
//! applied. Before anything is written, the file system must have room for the manifest's
//! total unpacked size ([`check_free_space`]); while writing, [`crate::layer::read_layer`]
//! stops any layer that holds more than its declared size.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::statvfs::statvfs;

use crate::error::{Error, Result};
use crate::limits::MAX_MTIME;
use crate::reader::Bundle;
use crate::toc::{EntryKind, TocEntry};

/// Counts of what was extracted.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExtractStats {
    pub entries: u64,
    pub bytes: u64,
}

/// An entry's mtime as a `SystemTime`; refused past [`MAX_MTIME`] (a validated TOC never is),
/// never an overflow.
fn mtime(e: &TocEntry) -> io::Result<SystemTime> {
    Some(e.mtime)
        .filter(|&t| t <= MAX_MTIME)
        .and_then(|t| UNIX_EPOCH.checked_add(Duration::from_secs(t)))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "entry {}: mtime {} is after the year 9999 (at most {MAX_MTIME})",
                    e.path, e.mtime
                ),
            )
        })
}

/// Refuses unless the file system holding `dir` has `need` bytes available to unprivileged
/// users (`statvfs`: `f_bavail * f_frsize`). Content bytes only: block rounding and metadata
/// take a little more.
pub fn check_free_space(dir: &Path, need: u64) -> Result<()> {
    let st = statvfs(dir).map_err(|errno| Error::FreeSpace {
        path: dir.to_path_buf(),
        source: errno.into(),
    })?;
    let available = (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64);
    if need > available {
        return Err(Error::NotEnoughSpace {
            path: dir.to_path_buf(),
            need,
            available,
        });
    }
    Ok(())
}

/// Writes one validated entry below `root`.
pub fn write_entry(root: &Path, e: &TocEntry, content: &mut dyn Read) -> io::Result<u64> {
    let dst = e.path.under(root);
    match e.kind {
        EntryKind::Dir => match DirBuilder::new().mode(0o755).create(&dst) {
            Err(err)
                if err.kind() == io::ErrorKind::AlreadyExists
                    && dst.symlink_metadata()?.is_dir() =>
            {
                Ok(0)
            }
            other => other.map(|_| 0),
        },
        EntryKind::File => {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&dst)?;
            let n = io::copy(content, &mut f)?;
            f.set_permissions(Permissions::from_mode(e.mode))?;
            f.set_times(fs::FileTimes::new().set_modified(mtime(e)?))?;
            Ok(n)
        }
        EntryKind::Symlink => {
            let target = e.target.as_deref().expect("validated");
            match std::os::unix::fs::symlink(target, &dst) {
                // The same symlink from an earlier layer (the cross-layer rule made it identical).
                Err(err)
                    if err.kind() == io::ErrorKind::AlreadyExists
                        && fs::read_link(&dst)?.as_os_str() == target =>
                {
                    Ok(0)
                }
                other => other.map(|_| 0),
            }
        }
        EntryKind::Hardlink => {
            let target = crate::path::BundlePath::new(e.target.as_deref().expect("validated"))
                .expect("validated");
            fs::hard_link(target.under(root), &dst).map(|_| 0)
        }
    }
}

/// Extracts every layer of `bundle`, in order, into `dest`, which must not exist or be an empty
/// directory, and whose parent must have room for the bundle's unpacked size. `progress`
/// receives content bytes written so far.
pub fn extract(
    bundle: &Bundle,
    dest: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<ExtractStats> {
    let derr = |source: io::Error| Error::Extract {
        path: dest.to_path_buf(),
        source,
    };
    if let Ok(mut entries) = fs::read_dir(dest) {
        if entries.next().is_some() {
            return Err(derr(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "destination is not empty",
            )));
        }
    } else if dest.symlink_metadata().is_ok() {
        return Err(derr(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "destination exists and is not a directory",
        )));
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    check_free_space(parent, bundle.manifest().unpacked_size())?;
    let staging = tempfile::Builder::new()
        .prefix(".capsa-extract-")
        .tempdir_in(parent)
        .map_err(derr)?;
    let tocs = bundle.tocs()?;
    let mut stats = ExtractStats::default();
    for (layer, toc) in bundle.manifest().layers.iter().zip(&tocs) {
        bundle.read_layer(layer, toc, |e, content| {
            stats.bytes += write_entry(staging.path(), e, content)?;
            stats.entries += 1;
            progress(stats.bytes);
            Ok(())
        })?;
    }
    fs::set_permissions(staging.path(), Permissions::from_mode(0o755)).map_err(derr)?;
    if dest.is_dir() {
        fs::remove_dir(dest).map_err(derr)?;
    }
    fs::rename(staging.path(), dest).map_err(derr)?;
    let _ = staging.keep();
    Ok(stats)
}
