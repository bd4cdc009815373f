//! Tree operations that are safe against whoever else writes the tree, even while they run:
//! the app's overlay upper `state/<id>/upper`, its `work` and its private home
//! `state/<id>/home` are written by the sandboxed app itself, which can swap a directory for a
//! symlink to a host folder between any two system calls. `remove_tree` deletes a tree and
//! `walk` lists one (for `capsa diff`) without ever acting outside it.
//!
//! Invariants:
//! - Only the root's parent is opened by path (it is the store's own directory, which no app
//!   can write). Every name below is resolved once, from its parent directory's fd, one
//!   component at a time (names from `readdir`, never `.`, `..` or with a `/`), with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`
//!   and `O_NOFOLLOW`: a symlink is never followed and no mount point is crossed. Where openat2
//!   is missing (`ENOSYS`, or `EPERM` from a seccomp filter) it is `openat(O_NOFOLLOW)` plus a
//!   device check against the parent (which catches any mount of another filesystem, though not
//!   a bind mount of the same one).
//! - A directory is pinned by that one `O_PATH` fd, and everything done to it afterwards goes to
//!   the pinned inode, whatever happens to its name: it is listed through a fd reopened from the
//!   pin's `/proc/self/fd/N` magic link (which the kernel resolves to exactly the pinned inode,
//!   never by name); its mode is set through that same magic link, because an `O_PATH` fd
//!   cannot `fchmod` and a mode-000 directory cannot be opened for reading by its owner.
//! - Extended attributes are read the same way, with `getxattr` on `/proc/self/fd/N` of the
//!   entry's `O_PATH` fd (`fgetxattr` fails with `EBADF` on `O_PATH` fds). One mechanism for
//!   directories and files alike, and no entry is ever opened for reading just to look at its
//!   attributes (opening a FIFO would block, a device could act).
//! - Deleting is `unlinkat(parent fd, name)`, which never follows the name: a symlink is
//!   removed as a link. A directory that refills while it is emptied is listed again a bounded
//!   number of times, then reported ([`DataError::Changing`]).
//! - No recursion: an explicit stack, one open directory per level of depth, so a hostile deep
//!   tree ends in an error (`EMFILE`), never a stack overflow.
//!
//! `/proc` must be mounted (the launcher needs it anyway).

use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{open, openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::DataError;

/// How many times a directory is listed again because it refilled while being emptied.
const MAX_PASSES: u32 = 64;

/// The overlayfs attribute (mounted with `userxattr`) that marks a whiteout.
pub const WHITEOUT_XATTR: &str = "user.overlay.whiteout";
/// The overlayfs attribute that marks an opaque directory.
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";

/// What an entry is, from `fstat` of the entry itself (never of a symlink's target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl Kind {
    fn of(st: &FileStat) -> Self {
        match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFLNK => Kind::Symlink,
            SFlag::S_IFCHR => Kind::CharDevice,
            SFlag::S_IFBLK => Kind::BlockDevice,
            SFlag::S_IFIFO => Kind::Fifo,
            SFlag::S_IFSOCK => Kind::Socket,
            _ => Kind::File,
        }
    }
}

/// One entry of a walked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the walked root.
    pub path: PathBuf,
    pub kind: Kind,
    pub size: u64,
    pub rdev: u64,
    /// [`WHITEOUT_XATTR`] is set (checked on directories and regular files only).
    pub whiteout_xattr: bool,
    /// [`OPAQUE_XATTR`] is set (checked on directories and regular files only).
    pub opaque_xattr: bool,
}

/// Set once openat2 turned out to be missing (`ENOSYS`): every later open uses the fallback.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
thread_local! {
    /// Tests force the openat fallback on their own thread.
    static FORCE_FALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn openat2_usable() -> bool {
    #[cfg(test)]
    if FORCE_FALLBACK.with(|f| f.get()) {
        return false;
    }
    !NO_OPENAT2.load(Ordering::Relaxed)
}

/// Opens the single component `name` below `dir`, never following a symlink or crossing a
/// mount point (see the module doc).
pub(crate) fn open_below(dir: BorrowedFd<'_>, name: &CStr, flags: OFlag) -> nix::Result<OwnedFd> {
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if openat2_usable() {
        let how = OpenHow::new().flags(flags).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
        // EAGAIN: a concurrent rename or mount made the kernel give up; cap-std retries 4 times.
        for _ in 0..4 {
            match openat2(dir, name, how) {
                Err(Errno::EAGAIN) => continue,
                Err(Errno::ENOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                Err(Errno::EPERM) => break,
                r => return r,
            }
        }
    }
    let fd = openat(dir, name, flags, Mode::empty())?;
    if fstat(&fd)?.st_dev != fstat(dir)?.st_dev {
        return Err(Errno::EXDEV);
    }
    Ok(fd)
}

/// The magic link of `fd`: the kernel resolves it to exactly the inode `fd` refers to.
fn magic(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A readable directory fd for the directory `pinned` (an `O_PATH` fd) refers to.
fn reopen_dir(pinned: &OwnedFd) -> nix::Result<Dir> {
    Dir::open(
        &magic(pinned.as_fd()),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Whether the attribute `name` is set on the inode `fd` refers to.
pub(crate) fn has_xattr(fd: &OwnedFd, name: &str) -> bool {
    xattr::get_deref(magic(fd.as_fd()), name)
        .ok()
        .flatten()
        .is_some()
}

/// The names in `dir` (rewound afterwards, so it can be listed again), without `.` and `..`.
fn names(dir: &mut Dir) -> nix::Result<Vec<CString>> {
    let mut out = Vec::new();
    for e in dir.iter() {
        let e = e?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

fn join(dir: &Path, name: &CStr) -> PathBuf {
    dir.join(OsStr::from_bytes(name.to_bytes()))
}

/// The root's parent, opened by path (trusted: see the module doc), and the root's name in it;
/// `None` when the parent does not exist.
fn open_parent(root: &Path) -> Result<Option<(OwnedFd, CString)>, DataError> {
    let invalid = || DataError::NotAnEntry {
        path: root.to_path_buf(),
    };
    let name = root.file_name().ok_or_else(invalid)?;
    let name = CString::new(name.as_bytes()).map_err(|_| invalid())?;
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some((fd, name))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(DataError::Walk {
            path: parent.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// Deletes the tree at `path`: a directory with everything in it (giving directories back owner
/// rwx first, through their own inode), or a single file or symlink (removed as a link, never
/// followed). A missing `path` is fine.
pub fn remove_tree(path: &Path) -> Result<(), DataError> {
    let Some((parent, name)) = open_parent(path)? else {
        return Ok(());
    };
    let fail = |p: PathBuf| {
        move |e: Errno| DataError::Remove {
            path: p,
            source: e.into(),
        }
    };
    let Some(dir) = remove_entry(parent.as_fd(), &name).map_err(fail(path.into()))? else {
        return Ok(());
    };
    let mut stack = vec![Frame::new(dir, name, path.to_path_buf())?];
    while let Some(top) = stack.last_mut() {
        if let Some(child) = top.pending.pop() {
            let child_path = join(&top.path, &child);
            if let Some(dir) =
                remove_entry(top.dir.as_fd(), &child).map_err(fail(child_path.clone()))?
            {
                stack.push(Frame::new(dir, child, child_path)?);
            }
            continue;
        }
        let Some(mut frame) = stack.pop() else { break };
        let parent_fd = stack.last().map_or(parent.as_fd(), |f| f.dir.as_fd());
        match unlinkat(parent_fd, frame.name.as_c_str(), UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            // Something was added since it was listed: list it again, a bounded number of times.
            Err(Errno::ENOTEMPTY | Errno::EEXIST) if frame.passes < MAX_PASSES => {
                frame.passes += 1;
                frame.pending = names(&mut frame.dir).map_err(fail(frame.path.clone()))?;
                stack.push(frame);
            }
            Err(Errno::ENOTEMPTY | Errno::EEXIST) => {
                return Err(DataError::Changing { path: frame.path })
            }
            // The name now holds a non-directory (and this directory moved elsewhere in the
            // tree): the parent is then not empty, so it lists itself again.
            Err(Errno::ENOTDIR) if !stack.is_empty() => {}
            Err(e) => return Err(fail(frame.path)(e)),
        }
    }
    Ok(())
}

/// A directory being emptied: its fd, its name in its parent, the names still to remove.
struct Frame {
    dir: Dir,
    name: CString,
    path: PathBuf,
    pending: Vec<CString>,
    passes: u32,
}

impl Frame {
    fn new(mut dir: Dir, name: CString, path: PathBuf) -> Result<Self, DataError> {
        let pending = names(&mut dir).map_err(|e| DataError::Remove {
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(Self {
            dir,
            name,
            path,
            pending,
            passes: 0,
        })
    }
}

/// Removes `name` in `dir` if it is not a directory; a directory is returned, opened and made
/// owner-rwx, to be emptied first. `None` also when it is gone or changed type in the meantime
/// (the caller lists `dir` again before removing it).
fn remove_entry(dir: BorrowedFd<'_>, name: &CStr) -> nix::Result<Option<Dir>> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(e),
    }
    match open_dir_for_removal(dir, name) {
        Ok(d) => Ok(Some(d)),
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the directory `name` below `dir` for emptying: pinned `O_PATH`, given owner rwx
/// through its magic link when it lacks it, then reopened for reading.
fn open_dir_for_removal(dir: BorrowedFd<'_>, name: &CStr) -> nix::Result<Dir> {
    let pinned = open_below(dir, name, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    if fstat(&pinned)?.st_mode & 0o700 != 0o700 {
        fs::set_permissions(magic(pinned.as_fd()), fs::Permissions::from_mode(0o700))
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32)))?;
    }
    reopen_dir(&pinned)
}

/// Walks the tree below the directory `root` (a missing `root` is an empty tree), calling
/// `visit` for every entry, parents before children; a directory is entered when `visit`
/// returns true. A directory its owner cannot read is reported but not entered.
pub fn walk(root: &Path, mut visit: impl FnMut(&Entry) -> bool) -> Result<(), DataError> {
    let fail = |p: &Path| {
        let p = p.to_path_buf();
        move |e: Errno| DataError::Walk {
            path: p,
            source: e.into(),
        }
    };
    let Some((parent, name)) = open_parent(root)? else {
        return Ok(());
    };
    let pinned = match open_below(parent.as_fd(), &name, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Err(Errno::ENOENT) => return Ok(()),
        r => r.map_err(fail(root))?,
    };
    let mut dir = reopen_dir(&pinned).map_err(fail(root))?;
    let pending = names(&mut dir).map_err(fail(root))?;
    let mut stack = vec![(dir, PathBuf::new(), pending)];
    while let Some((dir, rel, pending)) = stack.last_mut() {
        let Some(name) = pending.pop() else {
            stack.pop();
            continue;
        };
        let path = join(rel, &name);
        let fd = match open_below(dir.as_fd(), &name, OFlag::O_PATH) {
            Err(Errno::ENOENT) => continue,
            r => r.map_err(fail(&root.join(&path)))?,
        };
        let st = fstat(&fd).map_err(fail(&root.join(&path)))?;
        let kind = Kind::of(&st);
        let attrs = matches!(kind, Kind::Dir | Kind::File);
        let entry = Entry {
            kind,
            size: u64::try_from(st.st_size).unwrap_or(0),
            rdev: st.st_rdev,
            whiteout_xattr: attrs && has_xattr(&fd, WHITEOUT_XATTR),
            opaque_xattr: attrs && has_xattr(&fd, OPAQUE_XATTR),
            path,
        };
        if !visit(&entry) || kind != Kind::Dir {
            continue;
        }
        match reopen_dir(&fd) {
            Ok(mut d) => {
                let pending = names(&mut d).map_err(fail(&root.join(&entry.path)))?;
                stack.push((d, entry.path, pending));
            }
            Err(Errno::EACCES) => {}
            Err(e) => return Err(fail(&root.join(&entry.path))(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::{symlink, MetadataExt};
    use std::sync::atomic::AtomicUsize;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    fn listing(p: &Path) -> BTreeSet<String> {
        fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn chmod(p: &Path, m: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    }

    /// A host directory the tree links to: mode 0500, a file and a 0500 subdirectory.
    struct Outside(PathBuf);

    impl Outside {
        fn new(base: &Path) -> Self {
            let o = base.join("outside");
            fs::create_dir(&o).unwrap();
            fs::write(o.join("host-marker"), "host").unwrap();
            fs::create_dir(o.join("host-sub")).unwrap();
            fs::write(o.join("host-sub/file"), "host").unwrap();
            chmod(&o.join("host-sub"), 0o500);
            chmod(&o, 0o500);
            Self(o)
        }

        /// Panics unless the outside directory is exactly as created.
        fn check(&self, when: &str) {
            let o = &self.0;
            assert_eq!(mode(o), 0o500, "outside's mode changed {when}");
            assert_eq!(
                mode(&o.join("host-sub")),
                0o500,
                "outside/host-sub's mode changed {when}"
            );
            let want: BTreeSet<String> = ["host-marker", "host-sub"].map(String::from).into();
            assert_eq!(listing(o), want, "outside's contents changed {when}");
            assert_eq!(
                fs::read_to_string(o.join("host-sub/file")).unwrap(),
                "host",
                "{when}"
            );
        }
    }

    impl Drop for Outside {
        fn drop(&mut self) {
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700));
            let _ = fs::set_permissions(self.0.join("host-sub"), fs::Permissions::from_mode(0o700));
        }
    }

    /// A tree like an app's state: read-only directories, a mode-000 `work/work`, files, and
    /// `d/`, the directory the race tests swap for a link to `outside`.
    fn make_tree(t: &Path) {
        fs::create_dir_all(t.join("work/work")).unwrap();
        chmod(&t.join("work/work"), 0);
        fs::create_dir(t.join("d")).unwrap();
        for i in 0..8 {
            let s = t.join(format!("d/s{i}"));
            fs::create_dir(&s).unwrap();
            fs::write(s.join("f"), "x").unwrap();
            chmod(&s, 0o500);
        }
        fs::write(t.join("file"), "abc").unwrap();
    }

    #[test]
    fn remove_tree_removes_links_never_their_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = Outside::new(tmp.path());
        let tree = tmp.path().join("tree");
        make_tree(&tree);
        symlink(&outside.0, tree.join("link")).unwrap();
        chmod(&tree.join("d/s0"), 0o700);
        symlink(outside.0.join("host-sub"), tree.join("d/s0/link")).unwrap();
        chmod(&tree.join("d/s0"), 0o500);
        fs::create_dir(tree.join("locked")).unwrap();
        chmod(&tree.join("locked"), 0);
        chmod(&tree, 0o500);
        remove_tree(&tree).unwrap();
        assert!(fs::symlink_metadata(&tree).is_err(), "the tree is gone");
        outside.check("after remove_tree");

        // A symlink root is removed as a link; a missing root is fine.
        let link = tmp.path().join("root-link");
        symlink(&outside.0, &link).unwrap();
        remove_tree(&link).unwrap();
        assert!(fs::symlink_metadata(&link).is_err());
        outside.check("after removing a symlink root");
        remove_tree(&tmp.path().join("missing")).unwrap();
        remove_tree(&tmp.path().join("missing/below")).unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();
        remove_tree(&file).unwrap();
        assert!(!file.exists());
    }

    #[test]
    fn walk_reports_entries_and_never_follows_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = Outside::new(tmp.path());
        let tree = tmp.path().join("tree");
        make_tree(&tree);
        symlink(&outside.0, tree.join("link")).unwrap();
        fs::create_dir(tree.join("opaque")).unwrap();
        xattr::set(tree.join("opaque"), OPAQUE_XATTR, b"y").unwrap();
        fs::write(tree.join("gone"), "").unwrap();
        xattr::set(tree.join("gone"), WHITEOUT_XATTR, b"y").unwrap();
        let mut seen = Vec::new();
        walk(&tree, |e| {
            seen.push(e.clone());
            e.path != Path::new("d")
        })
        .unwrap();
        let get = |p: &str| seen.iter().find(|e| e.path == Path::new(p)).cloned();
        let paths: BTreeSet<String> = seen.iter().map(|e| e.path.display().to_string()).collect();
        let want: BTreeSet<String> = ["d", "file", "gone", "link", "opaque", "work", "work/work"]
            .map(String::from)
            .into();
        assert_eq!(
            paths, want,
            "d/ not entered (visit said no), link not followed"
        );
        assert_eq!(get("link").unwrap().kind, Kind::Symlink);
        let f = get("file").unwrap();
        assert_eq!((f.kind, f.size, f.whiteout_xattr), (Kind::File, 3, false));
        let o = get("opaque").unwrap();
        assert_eq!(
            (o.kind, o.opaque_xattr, o.whiteout_xattr),
            (Kind::Dir, true, false)
        );
        assert!(get("gone").unwrap().whiteout_xattr);
        assert!(!get("d").unwrap().opaque_xattr);
        walk(&tmp.path().join("missing"), |_| panic!("nothing to visit")).unwrap();
        assert!(matches!(
            walk(&tree.join("link"), |_| true),
            Err(DataError::Walk { .. })
        ));
        outside.check("after walk");
        remove_tree(&tree).unwrap();
    }

    /// Swaps `tree/d` with `tree/d.link`, a symlink to `outside`, one atomic
    /// `renameat2(RENAME_EXCHANGE)` at a time, as fast as it can, until `stop`.
    fn swap(tree: &Path, outside: &Path, stop: &AtomicBool, swaps: &AtomicUsize) {
        let _ = symlink(outside, tree.join("d.link"));
        let Ok(dir) = fs::File::open(tree) else {
            return;
        };
        while !stop.load(Ordering::Relaxed) {
            let flipped = nix::fcntl::renameat2(
                &dir,
                "d",
                &dir,
                "d.link",
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            );
            match flipped {
                Ok(()) => {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => std::thread::yield_now(),
            }
        }
    }

    /// Runs `op` on a fresh tree `rounds` times while a thread swaps `tree/d` for a link to
    /// `outside`; the outside directory must never change.
    fn race(rounds: usize, fallback: bool, op: &dyn Fn(&Path)) {
        let tmp = tempfile::tempdir().unwrap();
        let outside = Outside::new(tmp.path());
        for round in 0..rounds {
            let tree = tmp.path().join(format!("tree{round}"));
            make_tree(&tree);
            let (stop, swaps) = (AtomicBool::new(false), AtomicUsize::new(0));
            std::thread::scope(|s| {
                s.spawn(|| swap(&tree, &outside.0, &stop, &swaps));
                while swaps.load(Ordering::Relaxed) == 0 {
                    std::thread::yield_now();
                }
                FORCE_FALLBACK.with(|f| f.set(fallback));
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&tree)));
                FORCE_FALLBACK.with(|f| f.set(false));
                stop.store(true, Ordering::Relaxed);
                if let Err(p) = r {
                    std::panic::resume_unwind(p);
                }
            });
            outside.check(&format!("in round {round}"));
            remove_tree(&tree).unwrap();
            assert!(fs::symlink_metadata(&tree).is_err());
        }
    }

    fn remove_racing(tree: &Path) {
        // The swapper may refill the tree: an error is allowed, following the link is not.
        let _ = remove_tree(tree);
    }

    fn walk_racing(tree: &Path) {
        let _ = walk(tree, |e| {
            let p = e.path.to_string_lossy();
            assert!(!p.contains("host-"), "walk left the tree: {p}");
            true
        });
    }

    #[test]
    fn remove_tree_racing_a_symlink_swap_never_leaves_the_tree() {
        race(200, false, &remove_racing);
        race(100, true, &remove_racing);
    }

    #[test]
    fn walk_racing_a_symlink_swap_never_leaves_the_tree() {
        race(200, false, &walk_racing);
        race(100, true, &walk_racing);
    }
}
