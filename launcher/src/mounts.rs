//! Carries out a [`Plan`]'s root and mount steps inside the child's new mount namespace, then
//! pivots into the new root and detaches the host's. Runs after clone only.
//!
//! Invariant: a mount target is reached without following any symlink (a hostile bundle cannot
//! redirect a mount, or a directory the launcher creates, outside the new root); missing
//! directories and files are created in the writable root.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};

use crate::error::ChildError;
use crate::plan::{Plan, Step, Upper};

type R<T = ()> = Result<T, ChildError>;

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn sys(step: &str, call: &str, path: &Path) -> impl FnOnce(nix::Error) -> ChildError {
    let (step, call, path) = (step.to_owned(), call.to_owned(), path.to_path_buf());
    move |e| ChildError::new(&step, &call, Some(&path), e as i32)
}

fn io(step: &str, call: &str, path: &Path) -> impl FnOnce(std::io::Error) -> ChildError {
    let (step, call, path) = (step.to_owned(), call.to_owned(), path.to_path_buf());
    move |e| ChildError::new(&step, &call, Some(&path), errno_of(&e))
}

/// Makes `root/dst` exist as a directory (`dir`) or a file, creating what is missing, and
/// refusing to go through or onto a symlink.
pub(crate) fn prepare_target(root: &Path, dst: &Path, dir: bool, step: &str) -> R<PathBuf> {
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
                    "lstat (the app has a symlink here)",
                    Some(&cur),
                    libc::ELOOP,
                ))
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(ChildError::new(step, "lstat", Some(&cur), libc::ENOTDIR))
            }
            Ok(m) if last && dir != m.is_dir() => {
                return Err(ChildError::new(
                    step,
                    "lstat",
                    Some(&cur),
                    if dir { libc::ENOTDIR } else { libc::EISDIR },
                ))
            }
            Ok(_) => {}
            Err(_) if !last || dir => fs::DirBuilder::new()
                .mode(0o755)
                .create(&cur)
                .map_err(io(step, "mkdir", &cur))?,
            Err(_) => {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&cur)
                    .map_err(io(step, "create", &cur))?;
            }
        }
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

fn bind(src: &Path, target: &Path, read_only: bool, dev: bool, recursive: bool, step: &str) -> R {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(src), target, None::<&str>, flags, None::<&str>).map_err(sys(
        step,
        "mount(bind)",
        target,
    ))?;
    let mut re = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | locked_flags(target);
    if !dev {
        re |= MsFlags::MS_NODEV;
    }
    if read_only {
        re |= MsFlags::MS_RDONLY;
    }
    mount(None::<&str>, target, None::<&str>, re, None::<&str>).map_err(sys(
        step,
        "mount(remount)",
        target,
    ))
}

/// Mounts the app's root (overlay of the layers) at `scratch/root` on a private tmpfs, then
/// every planned step; returns the new root.
pub fn build_root(plan: &Plan, scratch: &Path) -> R<PathBuf> {
    let step = "mount a private tmpfs for the new root";
    mount(
        Some("tmpfs"),
        scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700"),
    )
    .map_err(sys(step, "mount(tmpfs)", scratch))?;
    let root = scratch.join("root");
    let files = scratch.join("files");
    for d in [&root, &files] {
        fs::create_dir(d).map_err(io(step, "mkdir", d))?;
    }
    match &plan.root.upper {
        Upper::Disabled { tree } => {
            bind(
                tree,
                &root,
                true,
                false,
                false,
                "mount the app's merged layers read-only as its root",
            )?;
        }
        upper => {
            let (upper, work) = match upper {
                Upper::Persistent { upper, work } => (upper.clone(), work.clone()),
                _ => {
                    let (u, w) = (scratch.join("upper"), scratch.join("work"));
                    for d in [&u, &w] {
                        fs::create_dir(d).map_err(io(step, "mkdir", d))?;
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
            mount(
                Some("overlay"),
                &root,
                Some("overlay"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(opts.as_str()),
            )
            .map_err(sys(
                "mount the app's layers as its root",
                "mount(overlay)",
                &root,
            ))?;
        }
    }

    for (i, s) in plan.steps.iter().enumerate() {
        let step = format!("prepare {}", s.dst().display());
        match s {
            Step::Bind {
                src,
                dst,
                read_only,
                dev,
            } => {
                let is_dir = fs::metadata(src).map_err(io(&step, "stat", src))?.is_dir();
                let target = prepare_target(&root, dst, is_dir, &step)?;
                bind(src, &target, *read_only, *dev, *dev && is_dir, &step)?;
            }
            Step::Tmpfs { dst, mode } => {
                let target = prepare_target(&root, dst, true, &step)?;
                let opts = format!("mode={mode:o}");
                mount(
                    Some("tmpfs"),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some(opts.as_str()),
                )
                .map_err(sys(&step, "mount(tmpfs)", &target))?;
            }
            Step::Proc { dst } => {
                let target = prepare_target(&root, dst, true, &step)?;
                mount(
                    Some("proc"),
                    &target,
                    Some("proc"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                    None::<&str>,
                )
                .map_err(sys(&step, "mount(proc)", &target))?;
            }
            Step::Devpts { dst } => {
                let target = prepare_target(&root, dst, true, &step)?;
                mount(
                    Some("devpts"),
                    &target,
                    Some("devpts"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                    Some("newinstance,ptmxmode=0666,mode=620"),
                )
                .map_err(sys(&step, "mount(devpts)", &target))?;
            }
            Step::Symlink { target, dst } => {
                if let Some(parent) = dst.parent() {
                    prepare_target(&root, parent, true, &step)?;
                }
                let at = root.join(dst.strip_prefix("/").unwrap_or(dst));
                std::os::unix::fs::symlink(target, &at).map_err(io(&step, "symlink", &at))?;
            }
            Step::Mask { dst } => {
                let target = prepare_target(&root, dst, true, &step)?;
                let flags = MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC
                    | MsFlags::MS_RDONLY;
                mount(
                    Some("tmpfs"),
                    &target,
                    Some("tmpfs"),
                    flags,
                    Some("mode=0500,size=0"),
                )
                .map_err(sys(&step, "mount(tmpfs, ro)", &target))?;
            }
            Step::File { dst, contents } => {
                let src = files.join(i.to_string());
                fs::write(&src, contents).map_err(io(&step, "write", &src))?;
                let target = prepare_target(&root, dst, false, &step)?;
                bind(&src, &target, true, false, false, &step)?;
            }
        }
    }
    Ok(root)
}

/// Makes `root` the process's `/` and detaches the host's root (pivot_root(2), "." trick).
pub fn pivot_into(root: &Path) -> R {
    let step = "switch to the app's root";
    nix::unistd::chdir(root).map_err(sys(step, "chdir", root))?;
    nix::unistd::pivot_root(".", ".").map_err(sys(step, "pivot_root", root))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys(step, "umount2(old root)", Path::new("/")))?;
    nix::unistd::chdir("/").map_err(sys(step, "chdir", Path::new("/")))
}
