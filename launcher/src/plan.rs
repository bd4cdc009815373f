//! `Plan`: the whole sandbox as plain data — namespaces, the root (layers, writable layer and
//! its mode), an ordered list of mount steps with their flags, argv, environment, working
//! directory, and the Landlock rule set that mirrors the mounts. Built in the parent from a
//! [`SandboxSpec`], the [`Host`] facts and the host's files as a [`HostFs`] resolves them;
//! unit-tested here; the child after clone only walks it and decides nothing.
//!
//! Invariants: every destination is absolute; a parent directory's step comes before the
//! steps nested in it; nothing of the host is exposed but what a step names; every bind's
//! source is resolved (absolute, no symlinks), and grants are checked on the resolved path:
//! kernel and daemon interfaces, the host's system directories and Capsa's own directories
//! are refused, and Capsa's directories are masked wherever a grant would show them. The
//! private home appears at the real home path.

use std::path::{Path, PathBuf};

use bundle_format::permissions::{Device, FsTarget};
use bundle_format::{Enforcement, Permission};

use crate::error::LaunchError;
use crate::host::{FileId, Host, HostFs};
use crate::spec::SandboxSpec;

mod grants;
mod landlock;
mod sockets;
#[cfg(test)]
mod tests;

pub use landlock::{FsAccess, LandlockPlan};

/// A namespace the sandbox gets of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    User,
    Mount,
    Pid,
    Ipc,
    Uts,
    Net,
}

/// Mount flags a step is made with (and a bind is remounted with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    pub read_only: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl Flags {
    pub const RW: Flags = Flags {
        read_only: false,
        nosuid: true,
        nodev: true,
        noexec: false,
    };
    pub const RO: Flags = Flags {
        read_only: true,
        ..Flags::RW
    };
    /// Device nodes: nodev would make them useless.
    pub const DEV: Flags = Flags {
        nodev: false,
        ..Flags::RW
    };
    pub const PROC: Flags = Flags {
        noexec: true,
        ..Flags::RW
    };
    pub const MASK: Flags = Flags {
        read_only: true,
        noexec: true,
        ..Flags::RW
    };
}

/// Why a host path is bound (for the report and the cleanup of mount points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindWhy {
    System,
    Home,
    Grant,
    OpenFile,
    Socket,
}

/// One mount step, relative to the new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bind a resolved host path. The child opens `src` without following any symlink and,
    /// when `check` is set, refuses unless it is still that very file; then it binds the fd.
    Bind {
        src: PathBuf,
        dst: PathBuf,
        is_dir: bool,
        recursive: bool,
        flags: Flags,
        check: Option<FileId>,
        why: BindWhy,
    },
    Tmpfs {
        dst: PathBuf,
        mode: u32,
    },
    /// A fresh procfs for the sandbox's pid namespace (nosuid, nodev, noexec).
    Proc {
        dst: PathBuf,
    },
    /// A new devpts instance (the sandbox's own ptys).
    Devpts {
        dst: PathBuf,
    },
    Symlink {
        target: PathBuf,
        dst: PathBuf,
    },
    /// A file made by the launcher (passwd, group, resolv.conf), bound read-only.
    File {
        dst: PathBuf,
        contents: String,
    },
    /// An empty read-only tmpfs over a host directory a grant would otherwise expose.
    Mask {
        dst: PathBuf,
    },
}

impl Step {
    pub fn dst(&self) -> &Path {
        match self {
            Step::Bind { dst, .. }
            | Step::Tmpfs { dst, .. }
            | Step::Proc { dst }
            | Step::Devpts { dst }
            | Step::Symlink { dst, .. }
            | Step::File { dst, .. }
            | Step::Mask { dst } => dst,
        }
    }
}

/// Why the root has no writable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// `CAPSA_OVERLAY=off`.
    Disabled,
    /// Mounting overlayfs failed with this errno.
    Unavailable(i32),
}

/// How the root is made and where its writes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootMode {
    /// Overlay with the app's persistent upper (`state/<app>/{upper,work}`).
    Persistent { upper: PathBuf, work: PathBuf },
    /// Overlay with a tmpfs upper: changes vanish with the sandbox (`--ephemeral`).
    Ephemeral,
    /// Another instance owns the persistent upper: it is stacked read-only below a tmpfs.
    Busy,
    /// `tree`, the layers merged with hardlinks, mounted read-only.
    ReadOnly { tree: PathBuf, why: Fallback },
}

/// The app's root: the bundle's layers (top first) and how it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub lowers: Vec<PathBuf>,
    pub mode: RootMode,
}

/// Per-app directories and facts the planner needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub root: Root,
    /// The top-level directories of the app's layers (writable through the overlay).
    pub root_dirs: Vec<PathBuf>,
    /// The private home, shown at the real home path unless `filesystem=home` is granted;
    /// `None` for an ephemeral run (a tmpfs home).
    pub private_home: Option<PathBuf>,
    /// Capsa's own store, state and cache: never shown, refused as grants.
    pub hidden: Vec<PathBuf>,
}

/// A grant that could not be honoured: shown in the report, and as a warning before the app
/// starts (it runs without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Missing { grant: String, path: PathBuf },
    NoDisplay,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { grant, path } => write!(
                f,
                "{grant}: {} does not exist on the host, not exposed",
                path.display()
            ),
            Self::NoDisplay => f.write_str(
                "socket=x11: DISPLAY is not set, so there is no display to give (start the app \
                 from a graphical session, or set DISPLAY)",
            ),
        }
    }
}

/// The whole sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub namespaces: Vec<Namespace>,
    pub root: Root,
    pub steps: Vec<Step>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub landlock: LandlockPlan,
    pub uid: u32,
    pub gid: u32,
    pub notes: Vec<Note>,
    /// pid 1 traces the app (`--trace-missing`): the app asks to be traced before its last
    /// steps and adds the trace filter after the sandbox's own; nothing else changes.
    pub trace_missing: bool,
}

impl Plan {
    pub fn has(&self, ns: Namespace) -> bool {
        self.namespaces.contains(&ns)
    }
}

const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
struct Builder<'a> {
    spec: &'a SandboxSpec,
    host: &'a Host,
    fs: &'a dyn HostFs,
    steps: Vec<Step>,
    notes: Vec<Note>,
    env: Vec<(String, String)>,
}

impl Builder<'_> {
    /// Binds a host path at `dst`, resolved; `check` pins it to the resolved file's identity.
    fn bind(&mut self, src: &Path, dst: &Path, flags: Flags, why: BindWhy, check: bool) -> bool {
        let Some(r) = self.fs.resolve(src) else {
            return false;
        };
        self.steps.push(Step::Bind {
            src: r.path,
            dst: dst.to_path_buf(),
            is_dir: r.is_dir,
            recursive: false,
            flags,
            check: check.then_some(r.id),
            why,
        });
        true
    }

    fn dev(&mut self) {
        if self.spec.grants.has(&Permission::Device(Device::All)) {
            self.steps.push(Step::Bind {
                src: "/dev".into(),
                dst: "/dev".into(),
                is_dir: true,
                recursive: true,
                flags: Flags::DEV,
                check: None,
                why: BindWhy::System,
            });
            return;
        }
        self.steps.push(Step::Tmpfs {
            dst: "/dev".into(),
            mode: 0o755,
        });
        for n in DEV_NODES {
            let p = PathBuf::from("/dev").join(n);
            self.bind(&p, &p, Flags::DEV, BindWhy::System, false);
        }
        self.steps.push(Step::Devpts {
            dst: "/dev/pts".into(),
        });
        self.steps.push(Step::Symlink {
            target: "pts/ptmx".into(),
            dst: "/dev/ptmx".into(),
        });
        self.steps.push(Step::Tmpfs {
            dst: "/dev/shm".into(),
            mode: 0o1777,
        });
        for (t, d) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
        ] {
            self.steps.push(Step::Symlink {
                target: t.into(),
                dst: d.into(),
            });
        }
        if self.spec.grants.has(&Permission::Device(Device::Dri)) {
            let dri = Path::new("/dev/dri");
            if !self.bind(dri, dri, Flags::DEV, BindWhy::System, false) {
                self.notes.push(Note::Missing {
                    grant: "device=dri".into(),
                    path: dri.into(),
                });
            }
        }
    }

    /// Name resolution: the host's files with the full network; with TCP ports only, a
    /// generated resolv.conf that makes glibc use TCP (`options use-vc`), since UDP is closed;
    /// with no network, a generated hosts file (loopback and the host name, [`Host::hosts`]).
    fn resolver(&mut self) {
        if self.spec.grants.network_all() {
            for f in ["/etc/resolv.conf", "/etc/hosts"] {
                self.bind(
                    Path::new(f),
                    Path::new(f),
                    Flags::RO,
                    BindWhy::System,
                    false,
                );
            }
        } else if self.spec.grants.tcp_ports().is_some() {
            let text = self
                .fs
                .resolve(Path::new("/etc/resolv.conf"))
                .and_then(|r| std::fs::read_to_string(r.path).ok())
                .unwrap_or_default();
            self.steps.push(Step::File {
                dst: "/etc/resolv.conf".into(),
                contents: tcp_resolv_conf(&text),
            });
            self.bind(
                Path::new("/etc/hosts"),
                Path::new("/etc/hosts"),
                Flags::RO,
                BindWhy::System,
                false,
            );
        } else {
            self.steps.push(Step::File {
                dst: "/etc/hosts".into(),
                contents: self.host.hosts(),
            });
        }
    }
}

/// The host's nameservers and search list, with glibc told to use TCP.
pub fn tcp_resolv_conf(host: &str) -> String {
    let mut out = String::from("# generated by capsa: UDP is closed under port grants\n");
    for l in host.lines() {
        let l = l.trim();
        if l.starts_with("nameserver") || l.starts_with("search") || l.starts_with("domain") {
            out.push_str(l);
            out.push('\n');
        }
    }
    out.push_str("options use-vc\n");
    out
}

/// The path a filesystem grant names on the host.
fn grant_path(target: &FsTarget, host: &Host) -> Option<PathBuf> {
    match target {
        FsTarget::Home => Some(host.home.clone()),
        FsTarget::HomeSub(s) => Some(host.home.join(s)),
        FsTarget::Xdg(name) => host.user_dirs.get(name).cloned(),
        FsTarget::Path(p) => Some(PathBuf::from(p)),
    }
}

/// Builds the plan; refuses grants of reserved host paths.
pub fn plan(
    spec: &SandboxSpec,
    host: &Host,
    dirs: &Dirs,
    fs: &dyn HostFs,
) -> Result<Plan, LaunchError> {
    let run_user = PathBuf::from(format!("/run/user/{}", host.uid));
    let hidden: Vec<PathBuf> = dirs
        .hidden
        .iter()
        .map(|h| fs.resolve(h).map(|r| r.path).unwrap_or_else(|| h.clone()))
        .collect();
    let mut b = Builder {
        spec,
        host,
        fs,
        steps: vec![Step::Proc {
            dst: "/proc".into(),
        }],
        notes: Vec::new(),
        env: Vec::new(),
    };
    b.dev();
    for (dst, mode) in [("/tmp", 0o1777), ("/run", 0o755)] {
        b.steps.push(Step::Tmpfs {
            dst: dst.into(),
            mode,
        });
    }
    b.steps.push(Step::Tmpfs {
        dst: run_user.clone(),
        mode: 0o700,
    });
    b.env
        .push(("XDG_RUNTIME_DIR".into(), run_user.display().to_string()));
    b.steps.push(Step::File {
        dst: "/etc/passwd".into(),
        contents: host.passwd(),
    });
    b.steps.push(Step::File {
        dst: "/etc/group".into(),
        contents: host.group(),
    });
    if let Some(lt) = &host.localtime {
        b.bind(
            lt,
            Path::new("/etc/localtime"),
            Flags::RO,
            BindWhy::System,
            false,
        );
    }
    b.resolver();

    // Home: the real one when granted, else the app's private one at the same path.
    let home_grant = spec.grants.iter().find_map(|g| match g {
        Permission::Filesystem {
            target: FsTarget::Home,
            read_only,
        } => Some(*read_only),
        _ => None,
    });
    let mut grants: Vec<(PathBuf, bool, String)> = Vec::new();
    for g in spec.grants.iter() {
        let Permission::Filesystem { target, read_only } = g else {
            continue;
        };
        let Some(path) = grant_path(target, host) else {
            continue;
        };
        match fs.resolve(&path) {
            Some(r) => grants::check(&g.to_string(), &r.path, &run_user, &hidden)?,
            None => {
                b.notes.push(Note::Missing {
                    grant: g.to_string(),
                    path,
                });
                continue;
            }
        }
        grants.push((path, *read_only, g.to_string()));
    }
    let home = host.home.clone();
    match (home_grant, &dirs.private_home) {
        (Some(_), _) => {}
        (None, Some(p)) => {
            b.bind(p, &home, Flags::RW, BindWhy::Home, true);
        }
        (None, None) => b.steps.push(Step::Tmpfs {
            dst: home.clone(),
            mode: 0o700,
        }),
    }
    grants.sort_by_key(|(p, _, _)| p.components().count());
    for (path, ro, _) in grants {
        let flags = if ro { Flags::RO } else { Flags::RW };
        b.bind(&path, &path, flags, BindWhy::Grant, true);
    }
    for f in &spec.open_files {
        if hidden.iter().any(|h| f.path.starts_with(h)) {
            return Err(LaunchError::Refused {
                grant: format!("--open-files {}", f.path.display()),
                why: "it is Capsa's own data: no app may see it".into(),
            });
        }
        b.steps.push(Step::Bind {
            src: f.path.clone(),
            dst: f.path.clone(),
            is_dir: false,
            recursive: false,
            flags: Flags::RW,
            check: Some(f.id),
            why: BindWhy::OpenFile,
        });
    }
    b.steps.extend(masks(&b.steps, &hidden));
    for g in spec.grants.iter() {
        if let Permission::Socket(s) = g {
            sockets::socket(&mut b, *s, &run_user);
        }
    }

    let mut env = std::mem::take(&mut b.env);
    env.extend([
        ("HOME".to_owned(), host.home.display().to_string()),
        ("USER".to_owned(), host.user.clone()),
        ("LOGNAME".to_owned(), host.user.clone()),
        ("SHELL".to_owned(), "/bin/sh".to_owned()),
        ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
        ("container".to_owned(), "capsa".to_owned()),
    ]);
    for (k, v) in &host.env {
        if crate::host::PASSED_ENV.contains(&k.as_str()) {
            env.push((k.clone(), v.clone()));
        }
    }
    env.extend(spec.env.iter().cloned());
    let mut deduped: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        deduped.retain(|(x, _)| *x != k);
        deduped.push((k, v));
    }
    let cwd = match &spec.workdir {
        Some(w) => PathBuf::from(w),
        None => visible_cwd(&host.cwd, &b.steps, &host.home).unwrap_or_else(|| host.home.clone()),
    };
    let mut namespaces = vec![
        Namespace::User,
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Ipc,
        Namespace::Uts,
    ];
    if !spec.grants.shares_network() {
        namespaces.push(Namespace::Net);
    }
    let landlock = landlock::rules(
        &b.steps,
        &dirs.root,
        &dirs.root_dirs,
        spec.grants.tcp_ports(),
        spec.landlock == Enforcement::Required,
    );
    Ok(Plan {
        namespaces,
        root: dirs.root.clone(),
        steps: b.steps,
        argv: spec.argv.clone(),
        env: deduped,
        cwd,
        landlock,
        uid: host.uid,
        gid: host.gid,
        notes: b.notes,
        trace_missing: spec.trace_missing,
    })
}

/// A mask over each of Capsa's directories that a bind would show, at the place it shows:
/// compared by resolved paths, so `/home -> /var/home` cannot slip past.
fn masks(steps: &[Step], hidden: &[PathBuf]) -> Vec<Step> {
    let mut out = Vec::new();
    for s in steps {
        let Step::Bind {
            src,
            dst,
            is_dir: true,
            why: BindWhy::Grant | BindWhy::Home,
            ..
        } = s
        else {
            continue;
        };
        for h in hidden {
            if let Ok(rest) = h.strip_prefix(src) {
                let at = dst.join(rest);
                if !out.iter().any(|m: &Step| m.dst() == at) {
                    out.push(Step::Mask { dst: at });
                }
            }
        }
    }
    out
}

/// The host's working directory, when the same directory is visible inside.
fn visible_cwd(cwd: &Path, steps: &[Step], home: &Path) -> Option<PathBuf> {
    if cwd == home {
        return Some(cwd.to_path_buf());
    }
    steps.iter().find_map(|s| match s {
        Step::Bind {
            src,
            dst,
            is_dir: true,
            why: BindWhy::Grant,
            ..
        } if src == dst && cwd.starts_with(src) => Some(cwd.to_path_buf()),
        _ => None,
    })
}
