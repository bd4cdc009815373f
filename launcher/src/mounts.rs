//! Carries out a [`Plan`]'s root and mount steps inside the child's new mount namespace, then
//! pivots into the new root and detaches the host's. Runs after clone only, and decides
//! nothing: flags and sources come from the plan.
//!
//! Invariants: a mount target is reached without following any symlink (a hostile bundle or a
//! running app cannot redirect a mount, or a directory the launcher creates, outside the new
//! root); missing directories and files are created in the writable root and listed, so the
//! launcher can remove them after the run. A bind's source is opened without following
//! symlinks, checked against the identity the parent recorded, and that very file is bound.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};

use crate::error::{Call, ChildError};
use crate::host::FileId;
use crate::plan::{Flags, Plan, RootMode, Step};

type R<T = ()> = Result<T, ChildError>;

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn sys(step: &str, call: Call, path: &Path) -> impl FnOnce(nix::Error) -> ChildError {
    let (step, path) = (step.to_owned(), path.to_path_buf());
    move |e| ChildError::new(&step, call, Some(&path), e as i32)
}

fn io(step: &str, call: Call, path: &Path) -> impl FnOnce(std::io::Error) -> ChildError {
    let (step, path) = (step.to_owned(), path.to_path_buf());
    move |e| ChildError::new(&step, call, Some(&path), errno_of(&e))
}

/// Makes `root/dst` exist as a directory (`dir`) or a file, creating what is missing (and
/// adding it, relative to `root`, to `created`), refusing to go through or onto a symlink.
pub(crate) fn prepare_target(
    root: &Path,
    dst: &Path,
    dir: bool,
    step: &str,
    created: &mut Vec<PathBuf>,
) -> R<PathBuf> {
    let mut cur = root.to_path_buf();
    let comps: Vec<Component> = dst
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        let last = i + 1 == comps.len();
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ChildError::new(
                    step,
                    Call::Symlink,
                    Some(&cur),
                    libc::ELOOP,
                ))
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(ChildError::new(
                    step,
                    Call::Lstat,
                    Some(&cur),
                    libc::ENOTDIR,
                ))
            }
            Ok(m) if last && dir != m.is_dir() => {
                return Err(ChildError::new(
                    step,
                    Call::Lstat,
                    Some(&cur),
                    if dir { libc::ENOTDIR } else { libc::EISDIR },
                ))
            }
            Ok(_) => continue,
            Err(_) if !last || dir => fs::DirBuilder::new()
                .mode(0o755)
                .create(&cur)
                .map_err(io(step, Call::Mkdir, &cur))?,
            Err(_) => {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&cur)
                    .map_err(io(step, Call::Create, &cur))?;
            }
        }
        created.push(cur.strip_prefix(root).unwrap_or(&cur).to_path_buf());
    }
    Ok(cur)
}

/// Flags the kernel locks on a mount made in another user namespace: a remount must keep them.
fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut m = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            m |= ms;
        }
    }
    m
}

fn ms_flags(f: Flags) -> MsFlags {
    let mut m = MsFlags::empty();
    for (on, flag) in [
        (f.read_only, MsFlags::MS_RDONLY),
        (f.nosuid, MsFlags::MS_NOSUID),
        (f.nodev, MsFlags::MS_NODEV),
        (f.noexec, MsFlags::MS_NOEXEC),
    ] {
        if on {
            m |= flag;
        }
    }
    m
}

fn bind(src: &Path, target: &Path, flags: Flags, recursive: bool, step: &str) -> R {
    let mut bind = MsFlags::MS_BIND;
    if recursive {
        bind |= MsFlags::MS_REC;
    }
    mount(Some(src), target, None::<&str>, bind, None::<&str>).map_err(sys(
        step,
        Call::MountBind,
        target,
    ))?;
    let re = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | ms_flags(flags) | locked_flags(target);
    mount(None::<&str>, target, None::<&str>, re, None::<&str>).map_err(sys(
        step,
        Call::Remount,
        target,
    ))
}

/// Opens a resolved host path without following any symlink and checks it is still the file
/// the parent resolved; the fd keeps that very object for the bind.
fn open_source(src: &Path, check: Option<FileId>, step: &str) -> R<std::os::fd::OwnedFd> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(nix::fcntl::AT_FDCWD, src, how).map_err(sys(step, Call::Open, src))?;
    if let Some(want) = check {
        let m = nix::sys::stat::fstat(&fd).map_err(sys(step, Call::Stat, src))?;
        if (m.st_dev, m.st_ino) != (want.dev, want.ino) {
            return Err(ChildError::new(step, Call::Verify, Some(src), libc::ESTALE));
        }
    }
    Ok(fd)
}

fn mount_fs(
    fstype: &str,
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
    call: Call,
    step: &str,
) -> R {
    mount(Some(fstype), target, Some(fstype), flags, data).map_err(sys(step, call, target))
}

/// Mounts the app's root (overlay of the layers) at `scratch/root` on a private tmpfs, then
/// every planned step; returns the new root and what was created in it (relative paths).
pub fn build_root(plan: &Plan, scratch: &Path) -> R<(PathBuf, Vec<PathBuf>)> {
    let step = "mount a private tmpfs for the new root";
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount_fs(
        "tmpfs",
        scratch,
        nosuid_nodev,
        Some("mode=0700"),
        Call::MountTmpfs,
        step,
    )?;
    let root = scratch.join("root");
    let files = scratch.join("files");
    for d in [&root, &files] {
        fs::create_dir(d).map_err(io(step, Call::Mkdir, d))?;
    }
    match &plan.root.mode {
        RootMode::ReadOnly { tree, .. } => {
            let step = "mount the app's merged layers read-only as its root";
            bind(tree, &root, Flags::RO, false, step)?;
        }
        mode => {
            let (upper, work) = match mode {
                RootMode::Persistent { upper, work } => (upper.clone(), work.clone()),
                _ => {
                    let (u, w) = (scratch.join("upper"), scratch.join("work"));
                    for d in [&u, &w] {
                        fs::create_dir(d).map_err(io(step, Call::Mkdir, d))?;
                    }
                    (u, w)
                }
            };
            let lowers: Vec<String> = plan
                .root
                .lowers
                .iter()
                .map(|l| l.display().to_string())
                .collect();
            let opts = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                lowers.join(":"),
                upper.display(),
                work.display()
            );
            let step = "mount the app's layers as its root";
            mount_fs(
                "overlay",
                &root,
                nosuid_nodev,
                Some(&opts),
                Call::MountOverlay,
                step,
            )?;
        }
    }
    let mut created = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let step = format!("prepare {}", s.dst().display());
        let c = &mut created;
        match s {
            Step::Bind {
                src,
                dst,
                is_dir,
                recursive,
                flags,
                check,
                ..
            } => {
                let fd = open_source(src, *check, &step)?;
                let target = prepare_target(&root, dst, *is_dir, &step, c)?;
                let by_fd = PathBuf::from(format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&fd)
                ));
                bind(&by_fd, &target, *flags, *recursive, &step)?;
            }
            Step::Tmpfs { dst, mode } => {
                let target = prepare_target(&root, dst, true, &step, c)?;
                let opts = format!("mode={mode:o}");
                mount_fs(
                    "tmpfs",
                    &target,
                    nosuid_nodev,
                    Some(&opts),
                    Call::MountTmpfs,
                    &step,
                )?;
            }
            Step::Proc { dst } => {
                let target = prepare_target(&root, dst, true, &step, c)?;
                mount_fs(
                    "proc",
                    &target,
                    ms_flags(Flags::PROC),
                    None,
                    Call::MountProc,
                    &step,
                )?;
            }
            Step::Devpts { dst } => {
                let target = prepare_target(&root, dst, true, &step, c)?;
                let opts = Some("newinstance,ptmxmode=0666,mode=620");
                let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
                mount_fs("devpts", &target, flags, opts, Call::MountDevpts, &step)?;
            }
            Step::Symlink { target, dst } => {
                if let Some(parent) = dst.parent() {
                    prepare_target(&root, parent, true, &step, c)?;
                }
                let at = root.join(dst.strip_prefix("/").unwrap_or(dst));
                std::os::unix::fs::symlink(target, &at).map_err(io(
                    &step,
                    Call::MakeSymlink,
                    &at,
                ))?;
            }
            Step::Mask { dst } => {
                let target = prepare_target(&root, dst, true, &step, c)?;
                let opts = Some("mode=0500,size=0");
                mount_fs(
                    "tmpfs",
                    &target,
                    ms_flags(Flags::MASK),
                    opts,
                    Call::MountMask,
                    &step,
                )?;
            }
            Step::File { dst, contents } => {
                let src = files.join(i.to_string());
                fs::write(&src, contents).map_err(io(&step, Call::Write, &src))?;
                let target = prepare_target(&root, dst, false, &step, c)?;
                bind(&src, &target, Flags::RO, false, &step)?;
            }
        }
    }
    Ok((root, created))
}

/// Makes `root` the process's `/` and detaches the host's root (pivot_root(2), "." trick).
pub fn pivot_into(root: &Path) -> R {
    let step = "switch to the app's root";
    nix::unistd::chdir(root).map_err(sys(step, Call::Chdir, root))?;
    nix::unistd::pivot_root(".", ".").map_err(sys(step, Call::PivotRoot, root))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys(step, Call::UmountOldRoot, Path::new("/")))?;
    nix::unistd::chdir("/").map_err(sys(step, Call::Chdir, Path::new("/")))
}
