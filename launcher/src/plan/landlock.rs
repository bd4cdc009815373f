//! The Landlock rule set as plan data, mirroring the mounts: read and execute everywhere,
//! write only where a writable mount is (the root's top-level directories that the writable
//! overlay backs; writable binds and tmpfs), and, under port grants only, TCP connect to the
//! granted ports plus 53 for name resolution over TCP and no TCP bind. With no network grant
//! the private network namespace isolates the app and its own loopback works, so TCP is not
//! handled; with the full network it is not either. Abstract unix sockets and signals are
//! scoped to the sandbox.

use std::path::{Path, PathBuf};

use super::{Root, RootMode, Step};

/// What a rule allows beneath its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsAccess {
    /// Read and execute.
    Read,
    /// Everything, writing included.
    ReadWrite,
}

/// The rule set the app's process applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockPlan {
    /// Refuse to start unless every right below is enforced by the kernel.
    pub required: bool,
    /// The highest Landlock ABI to use (`CAPSA_LANDLOCK_ABI`, to behave as on an older
    /// kernel); `None`: all the kernel has.
    pub abi_cap: Option<u8>,
    /// Paths and what each allows beneath it; the first is `/`.
    pub rules: Vec<(PathBuf, FsAccess)>,
    /// `Some`: TCP bind and connect are handled, connect allowed to these ports only.
    pub tcp_connect: Option<Vec<u16>>,
    /// Abstract unix sockets and signals scoped to the sandbox.
    pub scope: bool,
}

/// The port name resolution uses when UDP is closed.
pub const DNS_PORT: u16 = 53;

pub(super) fn rules(
    steps: &[Step],
    root: &Root,
    root_dirs: &[PathBuf],
    tcp_ports: Option<&[u16]>,
    required: bool,
) -> LandlockPlan {
    let mut rules = vec![(PathBuf::from("/"), FsAccess::Read)];
    let top_mounts: Vec<&Path> = steps
        .iter()
        .map(Step::dst)
        .filter(|d| d.components().count() == 2)
        .collect();
    if !matches!(root.mode, RootMode::ReadOnly { .. }) {
        // The layers' top-level directories, and those the launcher creates in the root for
        // deeper mount points (`/etc` for `/etc/passwd`): the writable overlay backs them.
        let made = steps.iter().filter_map(|s| {
            let mut c = s.dst().components();
            c.next();
            c.next().map(|top| Path::new("/").join(top))
        });
        let mut dirs: Vec<PathBuf> = root_dirs.iter().cloned().chain(made).collect();
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            if !top_mounts.contains(&d.as_path()) {
                rules.push((d, FsAccess::ReadWrite));
            }
        }
    }
    for s in steps {
        let access = match s {
            Step::Proc { .. } | Step::File { .. } | Step::Mask { .. } => FsAccess::Read,
            Step::Bind { flags, .. } if flags.read_only => FsAccess::Read,
            Step::Bind { .. } | Step::Tmpfs { .. } | Step::Devpts { .. } => FsAccess::ReadWrite,
            Step::Symlink { .. } => continue,
        };
        rules.push((s.dst().to_path_buf(), access));
    }
    let tcp_connect = tcp_ports.map(|p| {
        let mut v = p.to_vec();
        v.push(DNS_PORT);
        v.sort_unstable();
        v.dedup();
        v
    });
    LandlockPlan {
        required,
        abi_cap: None,
        rules,
        tcp_connect,
        scope: true,
    }
}
