//! `Plan`: the sandbox as plain data — the root (layers and upper), an ordered list of mount
//! steps, argv, environment, working directory, and the Landlock rules that mirror the mounts.
//! Built in the parent from a [`SandboxSpec`] and the [`Host`] facts, unit-tested here; the
//! child after clone only walks it.
//!
//! Invariants: every destination is absolute; a parent directory's step comes before the
//! steps nested in it; nothing of the host is exposed but what a step names; host paths in
//! binds are the same paths inside, except the private home, which appears at the real home
//! path.

use std::path::{Path, PathBuf};

use bundle_format::permissions::{Device, FsTarget, Socket};
use bundle_format::Permission;

use crate::host::Host;
use crate::spec::SandboxSpec;

/// One mount step, relative to the new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bind a host path. `dev`: keep device access (device nodes only).
    Bind {
        src: PathBuf,
        dst: PathBuf,
        read_only: bool,
        dev: bool,
    },
    Tmpfs {
        dst: PathBuf,
        mode: u32,
    },
    /// A fresh procfs for the sandbox's pid namespace.
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
    /// A file made by the launcher (passwd, group), bound read-only.
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

/// Where the root's writable layer lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upper {
    /// Persistent per-app state (`$XDG_DATA_HOME/capsa/state/<id>/{upper,work}`).
    Persistent { upper: PathBuf, work: PathBuf },
    /// A tmpfs: changes vanish with the sandbox (`--ephemeral`, or another instance holds the
    /// persistent upper; then that upper is stacked read-only below).
    Tmpfs,
    /// No writable layer: overlayfs cannot be used, so the root is `tree`, the layers merged
    /// with hardlinks, mounted read-only (`lowers` is then empty).
    Disabled { tree: PathBuf },
}

/// The app's root: the bundle's layers (top first) and a writable upper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub lowers: Vec<PathBuf>,
    pub upper: Upper,
}

/// Landlock rules that mirror the mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandlockRules {
    pub required: bool,
    /// Read-only (and executable) beneath these paths.
    pub read_only: Vec<PathBuf>,
    /// Read-write beneath these paths.
    pub read_write: Vec<PathBuf>,
    /// Paths excluded from the root's writable top-level directories (mount points).
    pub not_root: Vec<PathBuf>,
    /// Outgoing TCP allowed to these ports only; `None`: not restricted by Landlock.
    pub tcp_connect: Option<Vec<u16>>,
}

/// Per-app directories on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub root: Root,
    /// The private home, shown at the real home path unless `filesystem=home` is granted;
    /// `None` for an ephemeral run (a tmpfs home).
    pub private_home: Option<PathBuf>,
    /// Host directories no app may see even when a grant covers them: capsa's own store,
    /// state and cache (else an app granted `filesystem=home` could rewrite its overrides).
    pub hidden: Vec<PathBuf>,
}

/// The whole sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub root: Root,
    pub steps: Vec<Step>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub unshare_net: bool,
    pub landlock: LandlockRules,
    /// Grants that could not be honoured (a missing host path or socket), for the report.
    pub notes: Vec<String>,
}

const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn bind(src: impl Into<PathBuf>, dst: impl Into<PathBuf>, read_only: bool) -> Step {
    Step::Bind {
        src: src.into(),
        dst: dst.into(),
        read_only,
        dev: false,
    }
}

/// Builds the plan. `exists` says whether a host path exists (injected for tests).
pub fn plan(spec: &SandboxSpec, host: &Host, dirs: &Dirs, exists: &dyn Fn(&Path) -> bool) -> Plan {
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    let run_user = PathBuf::from(format!("/run/user/{}", host.uid));

    steps.push(Step::Proc {
        dst: "/proc".into(),
    });
    if spec.has(&Permission::Device(Device::All)) {
        steps.push(Step::Bind {
            src: "/dev".into(),
            dst: "/dev".into(),
            read_only: false,
            dev: true,
        });
    } else {
        steps.push(Step::Tmpfs {
            dst: "/dev".into(),
            mode: 0o755,
        });
        for n in DEV_NODES {
            let p = PathBuf::from("/dev").join(n);
            steps.push(Step::Bind {
                src: p.clone(),
                dst: p,
                read_only: false,
                dev: true,
            });
        }
        steps.push(Step::Devpts {
            dst: "/dev/pts".into(),
        });
        steps.push(Step::Symlink {
            target: "pts/ptmx".into(),
            dst: "/dev/ptmx".into(),
        });
        steps.push(Step::Tmpfs {
            dst: "/dev/shm".into(),
            mode: 0o1777,
        });
        for (t, d) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
        ] {
            steps.push(Step::Symlink {
                target: t.into(),
                dst: d.into(),
            });
        }
        if spec.has(&Permission::Device(Device::Dri)) {
            if exists(Path::new("/dev/dri")) {
                steps.push(Step::Bind {
                    src: "/dev/dri".into(),
                    dst: "/dev/dri".into(),
                    read_only: false,
                    dev: true,
                });
            } else {
                notes.push("device=dri: the host has no /dev/dri".into());
            }
        }
    }
    steps.push(Step::Tmpfs {
        dst: "/tmp".into(),
        mode: 0o1777,
    });
    steps.push(Step::Tmpfs {
        dst: "/run".into(),
        mode: 0o755,
    });
    steps.push(Step::Tmpfs {
        dst: run_user.clone(),
        mode: 0o700,
    });
    env.push(("XDG_RUNTIME_DIR".into(), run_user.display().to_string()));
    steps.push(Step::File {
        dst: "/etc/passwd".into(),
        contents: host.passwd(),
    });
    steps.push(Step::File {
        dst: "/etc/group".into(),
        contents: host.group(),
    });
    if let Some(lt) = &host.localtime {
        steps.push(bind(lt, "/etc/localtime", true));
    }
    if spec.shares_network() {
        for f in ["/etc/resolv.conf", "/etc/hosts"] {
            match std::fs::canonicalize(f).ok().filter(|p| exists(p)) {
                Some(src) => steps.push(bind(src, f, true)),
                None if exists(Path::new(f)) => steps.push(bind(f, f, true)),
                None => {}
            }
        }
    }

    // Home: the real one when granted, else the app's private one at the same path.
    let home_grant = spec.grants.iter().find_map(|g| match g {
        Permission::Filesystem {
            target: FsTarget::Home,
            read_only,
        } => Some(*read_only),
        _ => None,
    });
    match home_grant {
        Some(ro) => steps.push(bind(&host.home, &host.home, ro)),
        None => match &dirs.private_home {
            Some(p) => steps.push(bind(p, &host.home, false)),
            None => steps.push(Step::Tmpfs {
                dst: host.home.clone(),
                mode: 0o700,
            }),
        },
    }
    let mut grants: Vec<(PathBuf, bool, String)> = Vec::new();
    for g in &spec.grants {
        if let Permission::Filesystem { target, read_only } = g {
            let path = match target {
                FsTarget::Home => continue,
                FsTarget::HomeSub(s) => host.home.join(s),
                FsTarget::Xdg(name) => match host.user_dirs.get(name) {
                    Some(p) => p.clone(),
                    None => continue,
                },
                FsTarget::Path(p) => PathBuf::from(p),
            };
            grants.push((path, *read_only, g.to_string()));
        }
    }
    grants.sort_by_key(|(p, _, _)| p.components().count());
    for (path, ro, name) in grants {
        if exists(&path) {
            steps.push(bind(&path, &path, ro));
        } else {
            notes.push(format!(
                "{name}: {} does not exist on the host, not exposed",
                path.display()
            ));
        }
    }

    for f in &spec.open_files {
        steps.push(bind(f, f, false));
    }
    // Capsa's own directories stay hidden under any grant that would show them.
    for h in &dirs.hidden {
        let exposed = steps.iter().any(|s| matches!(s, Step::Bind { src, dst, dev: false, .. } if src == dst && h.starts_with(src)));
        if exposed && exists(h) {
            steps.push(Step::Mask { dst: h.clone() });
        }
    }
    for g in &spec.grants {
        let Permission::Socket(s) = g else { continue };
        socket(
            *s, host, &run_user, exists, &mut steps, &mut env, &mut notes,
        );
    }

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
        None => visible_cwd(&host.cwd, &steps, &host.home).unwrap_or_else(|| host.home.clone()),
    };
    let landlock = landlock_rules(spec, &steps);
    Plan {
        root: dirs.root.clone(),
        steps,
        argv: spec.argv.clone(),
        env: deduped,
        cwd,
        unshare_net: !spec.shares_network(),
        landlock,
        notes,
    }
}

/// The host's working directory, when the same directory is visible inside.
fn visible_cwd(cwd: &Path, steps: &[Step], home: &Path) -> Option<PathBuf> {
    steps.iter().find_map(|s| match s {
        Step::Bind {
            src,
            dst,
            dev: false,
            ..
        } if src == dst && src != Path::new("/") && cwd.starts_with(src) => Some(cwd.to_path_buf()),
        _ if cwd == home => Some(cwd.to_path_buf()),
        _ => None,
    })
}

#[allow(clippy::too_many_arguments)]
fn socket(
    s: Socket,
    host: &Host,
    run_user: &Path,
    exists: &dyn Fn(&Path) -> bool,
    steps: &mut Vec<Step>,
    env: &mut Vec<(String, String)>,
    notes: &mut Vec<String>,
) {
    let runtime = host.runtime_dir.clone();
    let mut expose = |src: PathBuf, dst: PathBuf, what: &str| -> bool {
        if exists(&src) {
            steps.push(bind(src, dst, false));
            true
        } else {
            notes.push(format!(
                "socket={what}: {} not found on the host",
                src.display()
            ));
            false
        }
    };
    match s {
        Socket::X11 => {
            let Some(display) = host.env.get("DISPLAY") else {
                notes.push("socket=x11: DISPLAY is not set".into());
                return;
            };
            if expose("/tmp/.X11-unix".into(), "/tmp/.X11-unix".into(), "x11") {
                env.push(("DISPLAY".into(), display.clone()));
            }
            if let Some(xa) = host
                .env
                .get("XAUTHORITY")
                .map(PathBuf::from)
                .filter(|p| exists(p))
            {
                steps.push(bind(&xa, &xa, true));
                env.push(("XAUTHORITY".into(), xa.display().to_string()));
            }
        }
        Socket::Wayland => {
            let name = host
                .env
                .get("WAYLAND_DISPLAY")
                .cloned()
                .unwrap_or_else(|| "wayland-0".into());
            let src = if name.starts_with('/') {
                PathBuf::from(&name)
            } else {
                runtime.unwrap_or_default().join(&name)
            };
            if expose(src, run_user.join("wayland-0"), "wayland") {
                env.push(("WAYLAND_DISPLAY".into(), "wayland-0".into()));
            }
        }
        Socket::Pulseaudio => {
            if expose(
                runtime.unwrap_or_default().join("pulse/native"),
                run_user.join("pulse/native"),
                "pulseaudio",
            ) {
                env.push((
                    "PULSE_SERVER".into(),
                    format!("unix:{}", run_user.join("pulse/native").display()),
                ));
            }
        }
        Socket::Pipewire => {
            expose(
                runtime.unwrap_or_default().join("pipewire-0"),
                run_user.join("pipewire-0"),
                "pipewire",
            );
        }
        Socket::SessionBus => {
            let addr = host
                .env
                .get("DBUS_SESSION_BUS_ADDRESS")
                .cloned()
                .unwrap_or_default();
            let path = addr
                .split(',')
                .find_map(|p| p.strip_prefix("unix:path="))
                .map(PathBuf::from)
                .or_else(|| runtime.map(|r| r.join("bus")));
            match path {
                Some(p) if expose(p.clone(), run_user.join("bus"), "session-bus") => {
                    env.push((
                        "DBUS_SESSION_BUS_ADDRESS".into(),
                        format!("unix:path={}", run_user.join("bus").display()),
                    ));
                }
                _ => {}
            }
        }
    }
}

fn landlock_rules(spec: &SandboxSpec, steps: &[Step]) -> LandlockRules {
    let mut r = LandlockRules {
        required: spec.landlock == bundle_format::Enforcement::Required,
        tcp_connect: spec
            .tcp_ports()
            .map(<[u16]>::to_vec)
            .or(if spec.network_all() {
                None
            } else {
                Some(Vec::new())
            }),
        ..Default::default()
    };
    for s in steps {
        let dst = s.dst().to_path_buf();
        match s {
            Step::Proc { .. } => r.read_only.push(dst.clone()),
            Step::Bind {
                read_only: true, ..
            }
            | Step::File { .. }
            | Step::Mask { .. } => r.read_only.push(dst.clone()),
            Step::Bind { .. } | Step::Tmpfs { .. } | Step::Devpts { .. } => {
                r.read_write.push(dst.clone())
            }
            Step::Symlink { .. } => continue,
        }
        if dst.components().count() == 2 {
            r.not_root.push(dst);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn host() -> Host {
        let mut env = BTreeMap::new();
        env.insert("DISPLAY".to_owned(), ":0".to_owned());
        env.insert("TERM".to_owned(), "xterm".to_owned());
        env.insert("LD_PRELOAD".to_owned(), "/evil.so".to_owned());
        Host {
            uid: 1000,
            gid: 1000,
            user: "u".into(),
            home: "/home/u".into(),
            cwd: "/home/u/project".into(),
            env,
            runtime_dir: Some("/run/user/1000".into()),
            user_dirs: crate::host::user_dirs(Path::new("/home/u"), None),
            localtime: Some("/usr/share/zoneinfo/UTC".into()),
        }
    }

    fn dirs() -> Dirs {
        Dirs {
            root: Root {
                lowers: vec!["/c/app".into(), "/c/libc".into()],
                upper: Upper::Tmpfs,
            },
            private_home: Some("/s/home".into()),
            hidden: vec![
                "/home/u/.local/share/capsa".into(),
                "/home/u/.cache/capsa".into(),
            ],
        }
    }

    fn spec(grants: &[&str]) -> SandboxSpec {
        SandboxSpec {
            app_id: "org.example.App".into(),
            grants: grants
                .iter()
                .map(|g| g.parse().unwrap())
                .collect::<BTreeSet<_>>(),
            landlock: Default::default(),
            argv: vec!["/usr/bin/app".into()],
            env: vec![("A".into(), "1".into())],
            workdir: None,
            ephemeral: false,
            open_files: vec![],
        }
    }

    fn yes(_: &Path) -> bool {
        true
    }

    #[test]
    fn no_grants_means_private_home_no_network_no_host_files() {
        let p = plan(&spec(&[]), &host(), &dirs(), &yes);
        assert!(p.unshare_net);
        assert!(p.steps.contains(&bind("/s/home", "/home/u", false)));
        let host_binds: Vec<&Path> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Bind {
                    src, dev: false, ..
                } => Some(src.as_path()),
                _ => None,
            })
            .collect();
        assert_eq!(
            host_binds,
            [Path::new("/usr/share/zoneinfo/UTC"), Path::new("/s/home")],
            "unexpected host paths exposed"
        );
        assert_eq!(
            p.cwd,
            Path::new("/home/u"),
            "cwd outside what is visible falls back to home"
        );
        assert_eq!(p.landlock.tcp_connect, Some(vec![]));
        let env: BTreeMap<_, _> = p.env.iter().cloned().collect();
        assert_eq!(env["HOME"], "/home/u");
        assert_eq!(env["A"], "1");
        assert_eq!(env["TERM"], "xterm");
        assert!(!env.contains_key("LD_PRELOAD") && !env.contains_key("DISPLAY"));
    }

    #[test]
    fn grants_expose_exactly_what_they_name() {
        let p = plan(
            &spec(&[
                "filesystem=home:ro",
                "filesystem=xdg-download",
                "network",
                "socket=x11",
            ]),
            &host(),
            &dirs(),
            &yes,
        );
        assert!(!p.unshare_net);
        assert!(p.steps.contains(&bind("/home/u", "/home/u", true)));
        assert!(p
            .steps
            .contains(&bind("/home/u/Downloads", "/home/u/Downloads", false)));
        assert!(p
            .steps
            .contains(&bind("/tmp/.X11-unix", "/tmp/.X11-unix", false)));
        assert!(p
            .steps
            .iter()
            .any(|s| s.dst() == Path::new("/etc/resolv.conf")));
        assert_eq!(
            p.cwd,
            Path::new("/home/u/project"),
            "cwd inside the granted home is kept"
        );
        assert!(p.env.contains(&("DISPLAY".into(), ":0".into())));
        let home_at = p
            .steps
            .iter()
            .position(|s| s.dst() == Path::new("/home/u"))
            .unwrap();
        let dl_at = p
            .steps
            .iter()
            .position(|s| s.dst() == Path::new("/home/u/Downloads"))
            .unwrap();
        assert!(home_at < dl_at, "nested bind before its parent");
        assert_eq!(p.landlock.tcp_connect, None);
    }

    #[test]
    fn missing_host_paths_are_noted_not_exposed() {
        let p = plan(
            &spec(&["filesystem=/srv/none", "socket=wayland", "network=tcp:443"]),
            &host(),
            &dirs(),
            &|p| {
                !p.starts_with("/srv") && !p.to_string_lossy().starts_with("/run/user/1000/wayland")
            },
        );
        assert!(!p.steps.iter().any(|s| s.dst().starts_with("/srv")));
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
        assert_eq!(p.landlock.tcp_connect, Some(vec![443]));
        assert!(!p.unshare_net);
    }

    #[test]
    fn capsa_own_directories_stay_hidden_under_a_home_grant() {
        let with_home = plan(&spec(&["filesystem=home"]), &host(), &dirs(), &yes);
        let masks: Vec<&Path> = with_home
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Mask { dst } => Some(dst.as_path()),
                _ => None,
            })
            .collect();
        assert_eq!(
            masks,
            [
                Path::new("/home/u/.local/share/capsa"),
                Path::new("/home/u/.cache/capsa")
            ]
        );
        let home_at = with_home
            .steps
            .iter()
            .position(|s| s.dst() == Path::new("/home/u"))
            .unwrap();
        let mask_at = with_home
            .steps
            .iter()
            .position(|s| matches!(s, Step::Mask { .. }))
            .unwrap();
        assert!(
            home_at < mask_at,
            "the mask must come after the grant it corrects"
        );
        let private = plan(&spec(&["filesystem=/srv"]), &host(), &dirs(), &yes);
        assert!(
            !private.steps.iter().any(|s| matches!(s, Step::Mask { .. })),
            "nothing to hide behind a private home"
        );
    }

    #[test]
    fn landlock_mirrors_mounts() {
        let p = plan(&spec(&["filesystem=/srv/data:ro"]), &host(), &dirs(), &yes);
        assert!(p.landlock.read_only.contains(&PathBuf::from("/srv/data")));
        assert!(p.landlock.read_only.contains(&PathBuf::from("/proc")));
        assert!(p.landlock.read_write.contains(&PathBuf::from("/tmp")));
        assert!(p.landlock.not_root.contains(&PathBuf::from("/dev")));
    }
}
