//! The parent side of `capsa run`, named after `std::process`: [`Command`] opens and checks the
//! bundle, prepares the layer cache and the app's state, plans the sandbox and compiles the
//! seccomp filters, then clones the sandbox ([`crate::child`]); [`Child::wait`] forwards
//! signals to it and returns its [`ExitStatus`].

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use bundle_format::{Bundle, PublicKey};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cache::{CacheOutcome, LayerCache};
use crate::child::{ChildArgs, Message};
use crate::error::LaunchError;
use crate::host::Host;
use crate::plan::{plan, Dirs, Root, Upper};
use crate::report::Report;
use crate::seccomp::SeccompPolicy;
use crate::spec::{Overrides, SandboxSpec};
use crate::state::{self, AppState};
use crate::sys;

/// Signals the launcher and pid 1 forward to the app (and SIGCHLD, which they wait for).
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// How the app ended: its exit code, or 128+N when killed by signal N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus(i32);

impl ExitStatus {
    pub fn code(&self) -> i32 {
        self.0
    }
    pub fn success(&self) -> bool {
        self.0 == 0
    }
}

/// What to run: a bundle file, or an installed app (checked when it was installed).
#[derive(Debug, Clone)]
pub enum Source {
    Bundle(PathBuf),
    Installed {
        manifest: Box<bundle_format::Manifest>,
        tocs: Vec<bundle_format::Toc>,
        layers: PathBuf,
    },
}

/// A sandboxed app to start.
#[derive(Debug)]
pub struct Command {
    source: Source,
    overrides: Overrides,
    report: bool,
    trusted: Option<PublicKey>,
}

/// A running sandbox.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    signals: SigSet,
    old_mask: SigSet,
    state_lock: Option<File>,
}

fn sys_err(call: &'static str) -> impl FnOnce(nix::Error) -> LaunchError {
    move |source| LaunchError::Sys { call, source }
}

impl Command {
    pub fn new(bundle: impl Into<PathBuf>) -> Self {
        Self::from_source(Source::Bundle(bundle.into()))
    }

    pub fn from_source(source: Source) -> Self {
        Self {
            source,
            overrides: Overrides::default(),
            report: false,
            trusted: None,
        }
    }

    pub fn overrides(&mut self, o: Overrides) -> &mut Self {
        self.overrides = o;
        self
    }
    /// Print what the sandbox enforces (through `on_report`) before the app starts.
    pub fn report(&mut self, on: bool) -> &mut Self {
        self.report = on;
        self
    }
    /// Require a valid signature by this key.
    pub fn trusted_key(&mut self, key: Option<PublicKey>) -> &mut Self {
        self.trusted = key;
        self
    }

    /// Starts the sandbox; `on_report` receives the report (only with `report(true)`) before
    /// the app execs. Where overlayfs cannot be mounted (or `CAPSA_OVERLAY=off`), the root is
    /// the layers merged read-only, without a writable layer, and the report says so.
    pub fn spawn(&self, on_report: &mut dyn FnMut(&Report)) -> Result<Child, LaunchError> {
        let cache_root = state::cache_dir();
        let scratch = cache_root.join("mnt");
        state::private_dir(&scratch)?;
        let (manifest, tocs, trees, mut note) = match &self.source {
            Source::Bundle(path) => self.open_bundle(path, &cache_root)?,
            Source::Installed {
                manifest,
                tocs,
                layers,
            } => {
                let store = LayerCache::new(layers.clone())?;
                state::check_overlay_path(store.dir())?;
                let trees = manifest
                    .layers
                    .iter()
                    .zip(tocs)
                    .map(|(l, t)| store.check(l, t))
                    .collect::<Result<Vec<_>, _>>()?;
                (
                    (**manifest).clone(),
                    tocs.clone(),
                    trees,
                    "installed".to_owned(),
                )
            }
        };
        if manifest.arch != std::env::consts::ARCH {
            return Err(LaunchError::Arch {
                bundle: manifest.arch.clone(),
                host: std::env::consts::ARCH.into(),
            });
        }
        let spec = SandboxSpec::new(&manifest, &self.overrides)?;
        let host = Host::current();
        let seccomp = SeccompPolicy::compile(if spec.tcp_ports().is_some() {
            crate::seccomp::NetFilter::TcpPorts
        } else if spec.network_all() {
            crate::seccomp::NetFilter::Host
        } else {
            crate::seccomp::NetFilter::Private
        })?;
        let state = if spec.ephemeral {
            None
        } else {
            Some(AppState::open(&spec.app_id)?)
        };
        let private_home = state.as_ref().map(|s| s.home.clone());
        // Capsa's own directories are hidden from apps; when a grant would expose the data
        // directory it must exist first, so that an app cannot plant one before capsa does.
        let hidden = vec![state::data_dir(), cache_root.clone()];
        if spec
            .grants
            .iter()
            .any(|g| matches!(g, bundle_format::Permission::Filesystem { .. }))
        {
            state::private_dir(&hidden[0])?;
        }

        let overlay_off = std::env::var("CAPSA_OVERLAY").is_ok_and(|v| v == "off");
        if !overlay_off {
            let mut lowers: Vec<PathBuf> = trees.iter().rev().cloned().collect();
            let upper = match &state {
                None => Upper::Tmpfs,
                Some(AppState {
                    lock: Some(_),
                    upper,
                    work,
                    ..
                }) => Upper::Persistent {
                    upper: upper.clone(),
                    work: work.clone(),
                },
                Some(st) => {
                    note.push_str("; state busy");
                    lowers.insert(0, st.upper.clone());
                    Upper::Tmpfs
                }
            };
            let dirs = Dirs {
                root: Root { lowers, upper },
                private_home: private_home.clone(),
                hidden: hidden.clone(),
            };
            match self.launch(&spec, &host, &dirs, &seccomp, &scratch, &note, on_report) {
                Err(LaunchError::Child(e)) if e.call == "mount(overlay)" => {
                    note.push_str(&format!(
                        "; overlayfs unavailable ({}), so no writable layer",
                        std::io::Error::from_raw_os_error(e.errno)
                    ));
                }
                Ok(mut child) => {
                    child.state_lock = state.and_then(|s| s.lock);
                    return Ok(child);
                }
                Err(e) => return Err(e),
            }
        } else {
            note.push_str("; overlayfs disabled by CAPSA_OVERLAY=off, so no writable layer");
        }
        let probe_dirs = Dirs {
            root: Root {
                lowers: vec![],
                upper: Upper::Tmpfs,
            },
            private_home: private_home.clone(),
            hidden: hidden.clone(),
        };
        let probe = plan(&spec, &host, &probe_dirs, &|p| p.exists());
        let digest = bundle_format::Digest::of(
            &manifest
                .to_bytes()
                .map_err(|e| LaunchError::Usage(e.to_string()))?,
        );
        let tree = LayerCache::new(cache_root.join("layers"))?.merged(
            &digest,
            &trees,
            &tocs,
            &probe.steps,
        )?;
        let dirs = Dirs {
            root: Root {
                lowers: vec![],
                upper: Upper::Disabled { tree },
            },
            private_home,
            hidden: hidden.clone(),
        };
        self.launch(&spec, &host, &dirs, &seccomp, &scratch, &note, on_report)
    }

    /// Opens and checks a bundle file; unpacks (or repairs) its layers in the user's cache.
    #[allow(clippy::type_complexity)]
    fn open_bundle(
        &self,
        path: &std::path::Path,
        cache_root: &std::path::Path,
    ) -> Result<
        (
            bundle_format::Manifest,
            Vec<bundle_format::Toc>,
            Vec<PathBuf>,
            String,
        ),
        LaunchError,
    > {
        let bundle_err = |source| LaunchError::Bundle {
            path: path.to_path_buf(),
            source,
        };
        let bundle = Bundle::open(path).map_err(bundle_err)?;
        let m = bundle.manifest();
        if m.arch != std::env::consts::ARCH {
            return Err(LaunchError::Arch {
                bundle: m.arch.clone(),
                host: std::env::consts::ARCH.into(),
            });
        }
        bundle
            .check_signatures(self.trusted.as_ref())
            .map_err(bundle_err)?;
        let cache = LayerCache::new(cache_root.join("layers"))?;
        state::check_overlay_path(cache.dir())?;
        let tocs = bundle.tocs().map_err(bundle_err)?;
        // Unpack missing layers (in parallel; the threads end before the sandbox is cloned).
        let ensured = cache.ensure_all(&bundle, &tocs)?;
        let (trees, outcomes): (Vec<PathBuf>, Vec<CacheOutcome>) = ensured.into_iter().unzip();
        let mut note = match outcomes.iter().filter(|o| **o != CacheOutcome::Hit).count() {
            0 => "cached".to_owned(),
            n => format!("{n} unpacked now"),
        };
        if outcomes.contains(&CacheOutcome::Repaired) {
            note.push_str(", a damaged cache entry was replaced");
        }
        Ok((m.clone(), tocs, trees, note))
    }

    /// Plans the sandbox for `dirs`, clones it, and relays its messages until the app execs.
    #[allow(clippy::too_many_arguments)]
    fn launch(
        &self,
        spec: &SandboxSpec,
        host: &Host,
        dirs: &Dirs,
        seccomp: &SeccompPolicy,
        scratch: &std::path::Path,
        note: &str,
        on_report: &mut dyn FnMut(&Report),
    ) -> Result<Child, LaunchError> {
        let plan = plan(spec, host, dirs, &|p| p.exists());
        if let Upper::Persistent { upper, .. } = &dirs.root.upper {
            state::record_mountpoints(upper, &plan.steps)?;
        }
        let mut report = Report::new(&spec.app_id, &plan, seccomp, host.uid, host.gid, note);
        let mut signals = SigSet::empty();
        signals.add(Signal::SIGCHLD);
        for s in FORWARDED {
            signals.add(*s);
        }
        let mut old_mask = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), Some(&mut old_mask))
            .map_err(sys_err("sigprocmask"))?;
        let (msg_r, msg_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys_err("pipe2"))?;
        let (go_r, go_w): (Option<OwnedFd>, Option<OwnedFd>) = if self.report {
            let (r, w) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys_err("pipe2"))?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        if sys::thread_count() != 1 {
            return Err(LaunchError::Usage(
                "internal error: the launcher must be single-threaded to clone the sandbox".into(),
            ));
        }
        let mut flags = CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS;
        if plan.unshare_net {
            flags |= CloneFlags::CLONE_NEWNET;
        }
        let mut args = ChildArgs {
            plan: &plan,
            seccomp,
            scratch,
            uid: host.uid,
            gid: host.gid,
            messages: Some(msg_w),
            go: go_r,
            signals,
        };
        let pid = sys::clone_child(flags, &mut || crate::child::main(&mut args))
            .map_err(sys_err("clone"))?;
        drop(args);
        let mut child = Child {
            pid,
            signals,
            old_mask,
            state_lock: None,
        };

        let mut failure = None;
        let mut go_w = go_w;
        for line in BufReader::new(File::from(msg_r)).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Message>(&line) {
                Ok(Message::Landlock(text)) => {
                    report.set_landlock(&text);
                    if let Some(w) = go_w.take() {
                        on_report(&report);
                        let _ = File::from(w).write_all(b"g");
                    }
                }
                Ok(Message::Error(e)) => failure = Some(e),
                Err(_) => {}
            }
        }
        if let Some(e) = failure {
            let _ = child.wait_raw();
            let _ =
                nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&child.old_mask), None);
            return Err(match (e.call.as_str(), e.errno) {
                ("execve", libc::ENOENT) => LaunchError::NotFound {
                    program: e.path.unwrap_or_default(),
                },
                ("execve", errno) => LaunchError::CannotExecute {
                    program: e.path.unwrap_or_default(),
                    errno,
                },
                _ => LaunchError::Child(e),
            });
        }
        Ok(child)
    }

    /// Starts the sandbox and waits for the app.
    pub fn status(&self, on_report: &mut dyn FnMut(&Report)) -> Result<ExitStatus, LaunchError> {
        self.spawn(on_report)?.wait()
    }
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Waits for the sandbox, forwarding signals sent to the launcher (not those the terminal
    /// already delivered to the whole foreground group).
    pub fn wait(mut self) -> Result<ExitStatus, LaunchError> {
        let status = self.wait_raw();
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old_mask), None);
        status
    }

    fn wait_raw(&mut self) -> Result<ExitStatus, LaunchError> {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).map_err(sys_err("waitpid"))? {
                WaitStatus::Exited(_, code) => return Ok(ExitStatus(code)),
                WaitStatus::Signaled(_, s, _) => return Ok(ExitStatus(128 + s as i32)),
                _ => {}
            }
            let (sig, code) = sys::wait_signal(&self.signals).map_err(sys_err("sigwaitinfo"))?;
            if sig != Signal::SIGCHLD && code != sys::SI_KERNEL {
                let _ = kill(self.pid, sig);
            }
        }
    }
}
