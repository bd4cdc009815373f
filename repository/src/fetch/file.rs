//! `file://` sources: a file opened below the repository directory without following links.
//!
//! The directory itself is opened by its path (it is the user's own configuration). Below it,
//! every component of the checked [`RelPath`] (plain names, never `.` or `..`) is opened from
//! its parent's fd with `O_NOFOLLOW` (directories as `O_PATH | O_DIRECTORY`), so a symbolic
//! link anywhere under the directory is refused, never followed, and nothing outside the
//! directory is reached. A repository is plain files (publishers write no links), so this
//! costs nothing. The last component must be a regular file (`fstat` of the opened fd; it is
//! opened `O_NONBLOCK`, so a FIFO cannot hang the open). A resumed read seeks to the byte asked
//! for when the file is at least that long, and otherwise reads it whole, as a web server
//! answering `200` would.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};

use super::source::RelPath;
use super::Answer;
use crate::error::Problem;

/// Opens `rel` below `dir`, positioned at `from` when the file is that long.
pub(crate) fn open_below(
    dir: &Path,
    rel: &RelPath<'_>,
    from: u64,
) -> Result<Answer<'static>, Problem> {
    let base = open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Problem::OpenDir(e.into()))?;
    let mut components = rel.components().peekable();
    let mut parent = base;
    while let Some(name) = components.next() {
        let last = components.peek().is_none();
        let flags = if last {
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY
        } else {
            OFlag::O_PATH | OFlag::O_DIRECTORY
        };
        let fd = openat(
            parent.as_fd(),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| classify(&parent, name, e))?;
        if last {
            return positioned(File::from(fd), from);
        }
        parent = fd;
    }
    // A RelPath has at least one component.
    Err(Problem::NotFound)
}

/// The problem an `openat` error of `name` below `parent` is.
fn classify(parent: &OwnedFd, name: &str, e: Errno) -> Problem {
    match e {
        Errno::ENOENT => Problem::NotFound,
        Errno::ELOOP => Problem::Symlink,
        Errno::ENOTDIR => match fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK => {
                Problem::Symlink
            }
            // A file where a directory should be: the path does not exist as asked.
            _ => Problem::NotFound,
        },
        other => Problem::Open(io::Error::from(other)),
    }
}

fn positioned(mut file: File, from: u64) -> Result<Answer<'static>, Problem> {
    let meta = file.metadata().map_err(Problem::Open)?;
    if !meta.file_type().is_file() {
        return Err(Problem::NotRegular);
    }
    let offset = if from > 0 && from <= meta.len() {
        from
    } else {
        0
    };
    file.seek(SeekFrom::Start(offset)).map_err(Problem::Read)?;
    let body: Box<dyn Read> = Box::new(file);
    Ok(Answer { offset, body })
}
