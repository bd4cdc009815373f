//! The files of a repository directory, reached only beneath it, and written atomically.
//!
//! Invariants:
//! - The directory itself is opened once by path (the publisher named it); every file below is
//!   reached from that fd one component at a time with `openat(O_NOFOLLOW)`, so a symlink
//!   planted anywhere in the tree is never followed (it fails with `ELOOP`/`ENOTDIR`). Paths
//!   are the fixed shapes of [`crate::layout`]; a component that is empty, `.` or `..` is
//!   refused before any system call.
//! - A write goes to a fresh `.tmp-*` name in the destination's directory, is fsynced, renamed
//!   over the name, and the directory is fsynced (or, for batches, recorded with
//!   [`RepoDir::write_nosync_dir`] and fsynced once by [`RepoDir::sync_dirs`] before anything
//!   that names the files is written). A reader never sees a half-written file; a killed
//!   writer leaves at most a `.tmp-*` file, which [`RepoDir::sweep`] removes under the lock.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{open, openat, renameat, OFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};

use super::error::{io_err, PublishError};

/// The prefix of every temporary name.
pub const TMP_PREFIX: &str = ".tmp-";
/// The publisher lock.
pub const LOCK: &str = ".capsa-lock";

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// An open repository directory.
#[derive(Debug)]
pub struct RepoDir {
    root: OwnedFd,
    path: PathBuf,
    /// Directories written into without their fsync yet (see [`RepoDir::sync_dirs`]).
    unsynced: Mutex<BTreeSet<String>>,
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// The components of a relative path, each a plain name.
fn components(rel: &str) -> io::Result<Vec<&str>> {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a plain relative path",
        ));
    }
    Ok(parts)
}

/// Splits `rel` into its directory (`""` for the top) and its last name.
fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

impl RepoDir {
    /// Opens an existing directory.
    pub fn open(path: &Path) -> Result<Self, PublishError> {
        let root = open(path, DIR_FLAGS, Mode::empty())
            .map_err(errno)
            .map_err(io_err("open the repository directory", path))?;
        Ok(Self {
            root,
            path: path.to_path_buf(),
            unsynced: Mutex::new(BTreeSet::new()),
        })
    }

    /// Creates the directory (and its parents) when missing, then opens it.
    pub fn create(path: &Path) -> Result<Self, PublishError> {
        std::fs::create_dir_all(path).map_err(io_err("create", path))?;
        Self::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The full path of `rel`, for messages.
    pub fn full(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// The directory `rel` (`""` is the top), created when `create` and missing.
    fn dir(&self, rel: &str, create: bool) -> io::Result<OwnedFd> {
        let mut fd = self.root.try_clone()?;
        if rel.is_empty() {
            return Ok(fd);
        }
        for name in components(rel)? {
            fd = match openat(&fd, name, DIR_FLAGS, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(&fd, name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(errno(e)),
                    }
                    let sub = openat(&fd, name, DIR_FLAGS, Mode::empty()).map_err(errno)?;
                    fsync(&fd).map_err(errno)?;
                    sub
                }
                r => r.map_err(errno)?,
            };
        }
        Ok(fd)
    }

    /// Creates the directory `rel` and its parents.
    pub fn mkdirs(&self, rel: &str) -> Result<(), PublishError> {
        self.dir(rel, true)
            .map(drop)
            .map_err(io_err("create", self.full(rel)))
    }

    /// Opens the regular file `rel` for reading; `None` when it does not exist.
    pub fn open_file(&self, rel: &str) -> Result<Option<(File, u64)>, PublishError> {
        let (d, name) = split(rel);
        let opened = self.dir(d, false).and_then(|dir| {
            openat(
                &dir,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
                Mode::empty(),
            )
            .map_err(errno)
        });
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", self.full(rel))(e)),
        };
        let st = fstat(&fd)
            .map_err(errno)
            .map_err(io_err("stat", self.full(rel)))?;
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
            return Err(PublishError::Damaged {
                path: rel.to_owned(),
                problem: "not a regular file".into(),
            });
        }
        Ok(Some((File::from(fd), st.st_size as u64)))
    }

    /// The size of the regular file `rel`, `None` when it does not exist.
    pub fn size(&self, rel: &str) -> Result<Option<u64>, PublishError> {
        Ok(self.open_file(rel)?.map(|(_, len)| len))
    }

    /// Reads the regular file `rel`, refusing one larger than `cap`; `None` when missing.
    pub fn read(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, PublishError> {
        let Some((f, len)) = self.open_file(rel)? else {
            return Ok(None);
        };
        if len > cap {
            return Err(PublishError::Damaged {
                path: rel.to_owned(),
                problem: format!("{len} bytes, more than the cap of {cap}"),
            });
        }
        let mut out = Vec::with_capacity(len as usize);
        f.take(cap + 1)
            .read_to_end(&mut out)
            .map_err(io_err("read", self.full(rel)))?;
        if out.len() as u64 > cap {
            return Err(PublishError::Damaged {
                path: rel.to_owned(),
                problem: format!("grew past the cap of {cap} bytes while read"),
            });
        }
        Ok(Some(out))
    }

    /// Writes `rel` atomically with what `fill` writes, and fsyncs its directory.
    pub fn write(
        &self,
        rel: &str,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<(), PublishError> {
        let dir = self.write_in(rel, fill)?;
        fsync(&dir)
            .map_err(errno)
            .map_err(io_err("sync the directory of", self.full(rel)))
    }

    /// Writes `rel` atomically, leaving its directory's fsync to [`RepoDir::sync_dirs`].
    pub fn write_nosync_dir(
        &self,
        rel: &str,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<(), PublishError> {
        self.write_in(rel, fill)?;
        let (d, _) = split(rel);
        self.unsynced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(d.to_owned());
        Ok(())
    }

    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) -> Result<(), PublishError> {
        self.write(rel, |f| f.write_all(bytes))
    }

    /// Fsyncs every directory written into by [`RepoDir::write_nosync_dir`].
    pub fn sync_dirs(&self) -> Result<(), PublishError> {
        let dirs = std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(|p| p.into_inner()));
        for d in dirs {
            let fd = self.dir(&d, false).map_err(io_err("open", self.full(&d)))?;
            fsync(&fd)
                .map_err(errno)
                .map_err(io_err("sync the directory", self.full(&d)))?;
        }
        Ok(())
    }

    /// Writes a temporary file beside `rel`, fsyncs it and renames it over `rel`; returns the
    /// directory's fd.
    fn write_in(
        &self,
        rel: &str,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<OwnedFd, PublishError> {
        let (d, name) = split(rel);
        let fail = io_err("write", self.full(rel));
        components(rel).map_err(io_err("write", self.full(rel)))?;
        let dir = self.dir(d, true).map_err(io_err("create", self.full(d)))?;
        let tmp = format!(
            "{TMP_PREFIX}{}-{}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let fd = openat(
            &dir,
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(errno)
        .map_err(io_err("create a temporary file for", self.full(rel)))?;
        let mut f = File::from(fd);
        let written = fill(&mut f).and_then(|()| f.sync_all());
        let renamed =
            written.and_then(|()| renameat(&dir, tmp.as_str(), &dir, name).map_err(errno));
        if let Err(e) = renamed {
            let _ = unlinkat(&dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(fail(e));
        }
        Ok(dir)
    }

    /// Removes the file `rel`; false when it was not there.
    pub fn remove(&self, rel: &str) -> Result<bool, PublishError> {
        let (d, name) = split(rel);
        let dir = match self.dir(d, false) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("open", self.full(d))(e)),
        };
        match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {
                self.unsynced
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(d.to_owned());
                Ok(true)
            }
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(io_err("remove", self.full(rel))(errno(e))),
        }
    }

    /// The names in directory `rel` (without `.` and `..`); empty when it does not exist.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, PublishError> {
        let fd = match self.dir(rel, false) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("open", self.full(rel))(e)),
        };
        let mut dir = Dir::from_fd(fd)
            .map_err(errno)
            .map_err(io_err("list", self.full(rel)))?;
        let mut out = Vec::new();
        for e in dir.iter() {
            let e = e.map_err(errno).map_err(io_err("list", self.full(rel)))?;
            let n = OsStr::from_bytes(e.file_name().to_bytes());
            if n != "." && n != ".." {
                // Names this crate writes are ASCII; anything else is not one of them.
                if let Some(s) = n.to_str() {
                    out.push(s.to_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the `.tmp-*` files a killed publisher left in `dirs` (call under the lock).
    pub fn sweep(&self, dirs: &[&str]) -> Result<usize, PublishError> {
        let mut n = 0;
        for d in dirs {
            for name in self.list(d)? {
                if name.starts_with(TMP_PREFIX) {
                    let rel = if d.is_empty() {
                        name
                    } else {
                        format!("{d}/{name}")
                    };
                    n += usize::from(self.remove(&rel)?);
                }
            }
        }
        Ok(n)
    }

    /// Takes the publisher lock (`.capsa-lock`, an exclusive `flock`), waiting for another
    /// publisher to finish. Released when the returned file is dropped or the process dies.
    pub fn lock(&self) -> Result<File, PublishError> {
        let fd = openat(
            &self.root,
            LOCK,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(errno)
        .map_err(io_err("open the publisher lock", self.full(LOCK)))?;
        let f = File::from(fd);
        f.lock()
            .map_err(io_err("lock the publisher lock", self.full(LOCK)))?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn writes_are_atomic_and_never_follow_links() {
        let tmp = tempfile::tempdir().unwrap();
        let d = RepoDir::open(tmp.path()).unwrap();
        d.write_bytes("a/b/c.json", b"one").unwrap();
        assert_eq!(d.read("a/b/c.json", 10).unwrap().unwrap(), b"one");
        d.write_bytes("a/b/c.json", b"two").unwrap();
        assert_eq!(d.read("a/b/c.json", 10).unwrap().unwrap(), b"two");
        assert!(d.read("a/b/c.json", 2).is_err(), "over the cap");
        assert_eq!(d.list("a/b").unwrap(), vec!["c.json"]);
        assert!(d.read("a/missing", 10).unwrap().is_none());

        // A symlinked directory is not followed, for reading or for writing.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        symlink(outside.path(), tmp.path().join("link")).unwrap();
        assert!(d.read("link/secret", 10).is_err());
        assert!(d.write_bytes("link/new", b"x").is_err());
        assert!(!outside.path().join("new").exists());
        symlink(outside.path().join("secret"), tmp.path().join("file-link")).unwrap();
        assert!(d.read("file-link", 10).is_err());
        assert!(d.read("../x", 10).is_err());
        assert!(d.write_bytes("a//b", b"x").is_err());

        // A leftover temporary file is swept.
        std::fs::write(tmp.path().join("a/b/.tmp-1-2-c.json"), "half").unwrap();
        assert_eq!(d.sweep(&["a/b"]).unwrap(), 1);
        assert_eq!(d.list("a/b").unwrap(), vec!["c.json"]);
        assert!(d.remove("a/b/c.json").unwrap());
        assert!(!d.remove("a/b/c.json").unwrap());
        d.sync_dirs().unwrap();
    }
}
