//! The parent side of `capsa run`, named after `std::process`. [`App::open`] (in `app`) opens
//! and checks a bundle file (or takes an installed app the store checked) and says who it is;
//! the caller decides the grants (manifest, consent, overrides, the run's own); [`Command`]
//! then prepares the layers and the app's state, plans the sandbox and compiles the seccomp
//! filters, and clones the sandbox ([`crate::child`]); [`Child::wait`] forwards signals to it, returns its
//! [`ExitStatus`] and tidies the mount points the run created in the app's state.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use userdata::cache::gc::{self, InUse};
use userdata::cache::LayerCache;
use userdata::state::AppState;
use userdata::{dirs, Grants};

pub use crate::app::{App, Source};
use crate::child::{ChildArgs, Message};
use crate::error::{Call, LaunchError};
use crate::host::{Host, RealFs};
pub use crate::plan::Note;
use crate::plan::{plan, Dirs, Fallback, Namespace, Plan, Root, RootMode};
use crate::report::{Layers, Report};
use crate::seccomp::{Ids, NetFilter, SeccompPolicy};
use crate::spec::{RunOptions, SandboxSpec};
use crate::stdio::sanitize_stdio;
pub use crate::stdio::Replaced;
use crate::sys;
pub use crate::wait::{Child, ExitStatus};

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

fn sys_err(call: &'static str) -> impl FnOnce(nix::Error) -> LaunchError {
    move |source| LaunchError::Sys { call, source }
}

/// What the launcher tells its caller once the sandbox is set up, before the app execs.
#[derive(Debug)]
pub enum Before<'a> {
    /// What the sandbox enforces (only with [`Command::report`]).
    Report(&'a Report),
    /// A grant the host cannot honour (`socket=x11` with no `DISPLAY`, a socket, device or
    /// path the host does not have): the app starts without it.
    Unmet(&'a Note),
}

/// A sandboxed app to start.
pub struct Command {
    app: App,
    grants: Grants,
    options: RunOptions,
    report: bool,
}

impl Command {
    /// The app with no grants: the safe default.
    pub fn new(app: App) -> Self {
        Self {
            app,
            grants: Grants::default(),
            options: RunOptions::default(),
            report: false,
        }
    }

    /// The effective grants (see [`userdata::policy::merge`]).
    pub fn grants(&mut self, g: Grants) -> &mut Self {
        self.grants = g;
        self
    }
    pub fn options(&mut self, o: RunOptions) -> &mut Self {
        self.options = o;
        self
    }
    /// Print what the sandbox enforces (through `before`) before the app starts.
    pub fn report(&mut self, on: bool) -> &mut Self {
        self.report = on;
        self
    }

    /// Starts the sandbox; before the app execs, `before` receives each grant the host cannot
    /// honour, then the report (only with `report(true)`). Where overlayfs cannot be mounted
    /// (or `CAPSA_OVERLAY=off`), the root is the layers merged read-only, and the report says
    /// so.
    pub fn spawn(&self, before: &mut dyn FnMut(Before<'_>)) -> Result<Child, LaunchError> {
        let cache_root = dirs::cache_dir();
        let scratch = cache_root.join("mnt");
        dirs::private_dir(&scratch)?;
        let app = &self.app;
        // A bundle file's layers come from the cache: `capsa gc` leaves them while this runs.
        let mut in_use = match app.is_installed() {
            true => InUse::default(),
            false => gc::hold(
                &cache_root,
                app.manifest
                    .layers
                    .iter()
                    .map(|l| gc::layer_lock(&l.digest)),
            )?,
        };
        let (trees, layers) = app.trees(&cache_root)?;
        let spec = SandboxSpec::new(
            &app.manifest,
            app.identity.clone(),
            self.grants.clone(),
            &self.options,
        )?;
        let host = Host::current();
        let net = if spec.grants.tcp_ports().is_some() {
            NetFilter::TcpPorts
        } else if spec.grants.network_all() {
            NetFilter::Host
        } else {
            NetFilter::Private
        };
        let user = Ids {
            uid: host.uid,
            gid: host.gid,
        };
        let seccomp = SeccompPolicy::compile(net, user)?;
        let replaced = sanitize_stdio()?;
        let state = match spec.ephemeral {
            true => None,
            false => Some(AppState::open(&spec.app)?),
        };
        // Capsa's own directories are hidden from apps; when a grant could expose the data
        // directory it must exist first, so that an app cannot plant one before capsa does.
        let hidden = vec![dirs::data_dir(), cache_root.clone()];
        if spec
            .grants
            .iter()
            .any(|g| matches!(g, userdata::policy::Permission::Filesystem { .. }))
        {
            dirs::private_dir(&hidden[0])?;
        }
        let mut dirs = Dirs {
            root: Root {
                lowers: trees.iter().rev().cloned().collect(),
                mode: RootMode::Ephemeral,
            },
            root_dirs: app.root_dirs(),
            private_home: state.as_ref().map(|s| s.home.clone()),
            hidden,
        };
        dirs.root.mode = match &state {
            None => RootMode::Ephemeral,
            Some(st) if st.upper_lock.is_some() => RootMode::Persistent {
                upper: st.upper.clone(),
                work: st.work.clone(),
            },
            Some(st) => {
                dirs.root.lowers.insert(0, st.upper.clone());
                RootMode::Busy
            }
        };
        if std::env::var("CAPSA_OVERLAY").is_ok_and(|v| v == "off") {
            in_use.extend(gc::hold(&cache_root, [gc::merged_lock(&app.digest)])?);
            dirs.root.mode =
                self.read_only_root(&spec, &host, &dirs, &trees, Fallback::Disabled)?;
            dirs.root.lowers.clear();
        }
        let st = state.as_ref();
        let first = self.launch(&spec, &host, &dirs, &seccomp, &scratch, layers, st, before);
        let mut child = match first {
            Err(LaunchError::Child(e)) if e.call == Call::MountOverlay => {
                in_use.extend(gc::hold(&cache_root, [gc::merged_lock(&app.digest)])?);
                dirs.root.mode = self.read_only_root(
                    &spec,
                    &host,
                    &dirs,
                    &trees,
                    Fallback::Unavailable(e.errno),
                )?;
                dirs.root.lowers.clear();
                self.launch(&spec, &host, &dirs, &seccomp, &scratch, layers, st, before)?
            }
            other => other?,
        };
        child.state = state;
        child.replaced = replaced;
        child.in_use = in_use;
        Ok(child)
    }

    fn read_only_root(
        &self,
        spec: &SandboxSpec,
        host: &Host,
        dirs: &Dirs,
        trees: &[PathBuf],
        why: Fallback,
    ) -> Result<RootMode, LaunchError> {
        let probe = plan(spec, host, dirs, &RealFs)?;
        let cache = LayerCache::new(dirs::cache_dir().join("layers"))?;
        let tree = crate::fallback::merged(
            &cache,
            &self.app.digest,
            trees,
            || self.app.tocs(),
            &probe.steps,
        )?;
        Ok(RootMode::ReadOnly { tree, why })
    }

    /// Plans the sandbox for `dirs`, clones it, and relays its messages until the app execs.
    #[allow(clippy::too_many_arguments)]
    fn launch(
        &self,
        spec: &SandboxSpec,
        host: &Host,
        dirs: &Dirs,
        seccomp: &SeccompPolicy,
        scratch: &Path,
        layers: Layers,
        state: Option<&AppState>,
        before: &mut dyn FnMut(Before<'_>),
    ) -> Result<Child, LaunchError> {
        let mut plan = plan(spec, host, dirs, &RealFs)?;
        plan.landlock.abi_cap = std::env::var("CAPSA_LANDLOCK_ABI")
            .ok()
            .and_then(|v| v.parse().ok());
        if let RootMode::Persistent { upper, .. } = &plan.root.mode {
            userdata::state::record_mountpoints(upper, plan.steps.iter().map(|s| s.dst()))?;
        }
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
        // The app waits for a byte here before it execs: its mount points are recorded (and
        // the report shown) first.
        let (go_r, go_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys_err("pipe2"))?;
        let (go_r, go_w): (Option<OwnedFd>, Option<OwnedFd>) = (Some(go_r), Some(go_w));
        let (status_r, status_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys_err("pipe2"))?;
        if !sys::wait_single_threaded(std::time::Duration::from_secs(5)) {
            return Err(LaunchError::Usage(
                "internal error: a thread of the launcher still runs after 5 s, and the sandbox \
                 is cloned only from a single-threaded launcher: please report this"
                    .into(),
            ));
        }
        let flags = clone_flags(&plan);
        let mut args = ChildArgs {
            plan: &plan,
            seccomp,
            scratch,
            messages: Some(msg_w),
            go: go_r,
            status: Some(status_w),
            signals,
        };
        let pid = sys::clone_child(flags, &mut || crate::child::main(&mut args))
            .map_err(sys_err("clone"))?;
        drop(args);
        let mut child = Child {
            pid,
            started: userdata::state::process_start(pid.as_raw()),
            signals,
            status: Some(status_r),
            old_mask,
            state: None,
            created: Vec::new(),
            replaced: Vec::new(),
            trace: plan.trace_missing,
            in_use: InUse::default(),
        };

        let mut failure = None;
        let mut go_w = go_w;
        for line in BufReader::new(File::from(msg_r)).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Message>(&line) {
                Ok(Message::Created(paths)) => {
                    child.created = created_in_state(&plan, state, &host.home, &paths);
                    if let (Some(st), false) = (state, child.created.is_empty()) {
                        userdata::tidy::record_created(&st.dir, &child.created).map_err(
                            |source| LaunchError::Prepare {
                                path: st.dir.clone(),
                                source,
                            },
                        )?;
                    }
                }
                Ok(Message::Landlock(outcome)) => {
                    if let Some(w) = go_w.take() {
                        for n in &plan.notes {
                            before(Before::Unmet(n));
                        }
                        if self.report {
                            before(Before::Report(&Report::new(
                                &spec.app.to_string(),
                                &plan,
                                seccomp,
                                layers,
                                Some(&outcome),
                            )));
                        }
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
            return Err(match (e.call, e.errno) {
                (Call::Execve, libc::ENOENT) => LaunchError::NotFound {
                    program: e.path.unwrap_or_default(),
                },
                (Call::Execve, errno) => LaunchError::CannotExecute {
                    program: e.path.unwrap_or_default(),
                    errno,
                },
                (Call::Landlock, _) => LaunchError::LandlockRequired(e.step),
                _ => LaunchError::Child(e),
            });
        }
        Ok(child)
    }

    /// Starts the sandbox and waits for the app.
    pub fn status(&self, before: &mut dyn FnMut(Before<'_>)) -> Result<ExitStatus, LaunchError> {
        self.spawn(before)?.wait()
    }
}

fn clone_flags(plan: &Plan) -> CloneFlags {
    plan.namespaces.iter().fold(CloneFlags::empty(), |f, ns| {
        f | match ns {
            Namespace::User => CloneFlags::CLONE_NEWUSER,
            Namespace::Mount => CloneFlags::CLONE_NEWNS,
            Namespace::Pid => CloneFlags::CLONE_NEWPID,
            Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
            Namespace::Uts => CloneFlags::CLONE_NEWUTS,
            Namespace::Net => CloneFlags::CLONE_NEWNET,
        }
    })
}

/// The mount points the child created (relative to the new root) that would tell of a
/// grant or an opened file, in the app's persistent state: in its private home or its
/// persistent upper, as paths below those. System mount points (`/proc`, `/etc/passwd`, ...)
/// tell nothing and stay, so later runs need not create them again.
fn created_in_state(
    plan: &Plan,
    state: Option<&AppState>,
    home: &Path,
    created: &[PathBuf],
) -> Vec<PathBuf> {
    use crate::plan::{BindWhy, Step};
    let Some(st) = state else { return Vec::new() };
    let root = Path::new("/");
    let telling = |p: &Path| {
        let p = root.join(p);
        let under = |s: &Step| s.dst().starts_with(&p);
        let of_grant = |s: &Step| {
            matches!(
                s,
                Step::Bind {
                    why: BindWhy::Grant | BindWhy::OpenFile,
                    ..
                }
            )
        };
        plan.steps.iter().any(|s| of_grant(s) && under(s))
            && !plan.steps.iter().any(|s| !of_grant(s) && under(s))
    };
    let home_rel = home.strip_prefix("/").unwrap_or(home);
    let private_home = plan.steps.iter().any(|s| {
        matches!(
            s,
            Step::Bind {
                why: BindWhy::Home,
                ..
            }
        )
    });
    created
        .iter()
        .filter(|p| telling(p))
        .filter_map(|p| match p.strip_prefix(home_rel) {
            Ok(rest) if private_home && !rest.as_os_str().is_empty() => Some(st.home.join(rest)),
            Ok(_) => None,
            Err(_) if matches!(plan.root.mode, RootMode::Persistent { .. }) => {
                Some(st.upper.join(p))
            }
            Err(_) => None,
        })
        .collect()
}
