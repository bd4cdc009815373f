//! The sandbox side, after clone: one linear sequence in bubblewrap's order. The process is
//! pid 1 of the new pid namespace; it sets up the mounts, stays behind as the reaper, and
//! forks the app, which drops every privilege and execs. Any failure is sent to the parent
//! over the CLOEXEC message pipe; EOF on that pipe means exec succeeded.
//!
//! With the plan's `trace_missing`, the app asks to be traced and stops once its capabilities
//! are gone, and adds the trace filter right after the sandbox's seccomp filter (a refusal by
//! the sandbox's filter outranks the trace filter's stop, so the policy is unchanged); pid 1,
//! outside every filter, follows it instead of its plain wait ([`reap_traced`]) and sends what
//! it missed behind the exit status.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::error::{Call, ChildError};
use crate::landlock::Outcome;
use crate::plan::{Namespace, Plan};
use crate::seccomp::SeccompPolicy;
use crate::sys;

/// What the sandbox tells the parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Message {
    /// What the launcher created in the app's root for mount points (relative paths).
    Created(Vec<PathBuf>),
    Landlock(Outcome),
    Error(ChildError),
}

/// Everything the child needs; prepared by the parent before clone.
pub struct ChildArgs<'a> {
    pub plan: &'a Plan,
    pub seccomp: &'a SeccompPolicy,
    pub scratch: &'a Path,
    /// Taken (closed) by pid 1 once the app is forked.
    pub messages: Option<OwnedFd>,
    /// The app waits for one byte here before it execs.
    pub go: Option<OwnedFd>,
    /// pid 1 writes the app's exit status here (four bytes, little-endian) as soon as it has
    /// reaped it, before its own exit tears the namespaces down.
    pub status: Option<OwnedFd>,
    pub signals: SigSet,
}

/// Sends one message as a JSON line (a single write, atomic below PIPE_BUF); false when the
/// launcher is gone.
pub fn send(fd: Option<&OwnedFd>, m: &Message) -> bool {
    let Some(fd) = fd else { return false };
    let mut line = serde_json::to_vec(m).unwrap_or_default();
    line.push(b'\n');
    fd.try_clone()
        .is_ok_and(|dup| File::from(dup).write_all(&line).is_ok())
}

fn sys_err(step: &str, call: Call, path: Option<&Path>) -> impl FnOnce(nix::Error) -> ChildError {
    let (step, path) = (step.to_owned(), path.map(Path::to_path_buf));
    move |e| ChildError::new(&step, call, path.as_deref(), e as i32)
}

/// Entry point after clone; returns the exit status of pid 1.
pub fn main(a: &mut ChildArgs) -> isize {
    match setup(a) {
        Ok(code) => code,
        Err(e) => {
            send(a.messages.as_ref(), &Message::Error(e));
            125
        }
    }
}

fn setup(a: &mut ChildArgs) -> Result<isize, ChildError> {
    // Die with the launcher. (getppid() is 0 in a new pid namespace, so the race with the
    // launcher's exit is closed later: the app's status write to the launcher must succeed.)
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys_err(
        "die with the launcher",
        Call::PrctlPdeathsig,
        None,
    ))?;
    // Map our own uid and gid (setgroups must be denied first, or gid_map is refused).
    write_maps(a.plan.uid, a.plan.gid)?;
    // Keep mount events from propagating back to the host.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(sys_err(
        "make / a slave mount",
        Call::MountSlave,
        Some(Path::new("/")),
    ))?;
    // The app's layers on a private tmpfs, the planned mounts, then pivot and detach the host.
    let (root, created) = crate::mounts::build_root(a.plan, a.scratch)?;
    send(a.messages.as_ref(), &Message::Created(created));
    crate::mounts::pivot_into(&root)?;
    // Without network, the namespace has only loopback, and it starts down.
    if a.plan.has(Namespace::Net) {
        sys::loopback_up().map_err(sys_err("bring up loopback", Call::LoopbackUp, None))?;
    }
    // Stay behind as pid 1 (reaper, signal forwarder); the app continues in a child.
    match sys::fork().map_err(sys_err("start the app", Call::Fork, None))? {
        ForkResult::Child => {
            let e = match exec_app(a) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            let code = match (e.call, e.errno) {
                (Call::Execve, libc::ENOENT) => 127,
                (Call::Execve, _) => 126,
                _ => 125,
            };
            send(a.messages.as_ref(), &Message::Error(e));
            sys::exit_now(code);
        }
        ForkResult::Parent { child } => reap(a, child),
    }
}

fn write_maps(uid: u32, gid: u32) -> Result<(), ChildError> {
    for (file, text, call) in [
        (
            "/proc/self/setgroups",
            "deny".to_owned(),
            Call::WriteSetgroups,
        ),
        (
            "/proc/self/uid_map",
            format!("{uid} {uid} 1\n"),
            Call::WriteUidMap,
        ),
        (
            "/proc/self/gid_map",
            format!("{gid} {gid} 1\n"),
            Call::WriteGidMap,
        ),
    ] {
        std::fs::write(file, text).map_err(|e| {
            ChildError::new(
                "map the user's ids",
                call,
                Some(Path::new(file)),
                e.raw_os_error().unwrap_or(libc::EIO),
            )
        })?;
    }
    Ok(())
}

/// Drops every capability: bounding and ambient first (needs CAP_SETPCAP), then the rest.
fn drop_caps() -> Result<(), ChildError> {
    let fail = |e: caps::errors::CapsError| {
        ChildError::new(
            &format!("drop capabilities ({e})"),
            Call::Capset,
            None,
            libc::EPERM,
        )
    };
    caps::clear(None, caps::CapSet::Ambient).map_err(fail)?;
    for c in caps::all() {
        caps::drop(None, caps::CapSet::Bounding, c).map_err(fail)?;
    }
    for set in [
        caps::CapSet::Inheritable,
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(fail)?;
    }
    Ok(())
}

/// The app's last steps: privileges, Landlock, descriptors, seccomp last, exec.
fn exec_app(a: &mut ChildArgs) -> Result<Infallible, ChildError> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(sys_err("reset signals", Call::Sigprocmask, None))?;
    sys::default_sigpipe().map_err(sys_err("reset signals", Call::Signal, None))?;
    // All privileged work is done: no capability survives, in any set, and none can return.
    drop_caps()?;
    // Traced from here on: with no capability left, since the kernel lets a process be
    // traced only by a parent holding every capability it holds (pid 1 dropped its own).
    if a.plan.trace_missing {
        trace::traceme_and_stop().map_err(|e| {
            ChildError::new(
                "be traced (--trace-missing)",
                Call::PtraceTraceme,
                None,
                e.raw_os_error().unwrap_or(libc::EPERM),
            )
        })?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(sys_err(
        "set no_new_privs",
        Call::PrctlNoNewPrivs,
        None,
    ))?;
    // Landlock mirrors the mounts; its outcome goes to the report.
    let status = crate::landlock::restrict(&a.plan.landlock)?;
    if !send(a.messages.as_ref(), &Message::Landlock(status)) {
        sys::exit_now(125); // the launcher is gone: do not start an orphan
    }
    // The launcher records what it must tidy (and shows the report) first; anything but its
    // go-ahead (it failed, or is gone) ends the app here.
    if let Some(go) = a.go.take() {
        let mut b = [0u8; 1];
        if !matches!(File::from(go).read(&mut b), Ok(1)) {
            sys::exit_now(125);
        }
    }
    let cwd = [a.plan.cwd.clone(), PathBuf::from("/")]
        .into_iter()
        .find(|d| nix::unistd::chdir(d).is_ok());
    if cwd.is_none() {
        return Err(ChildError::new(
            "enter the working directory",
            Call::Chdir,
            Some(&a.plan.cwd),
            libc::ENOENT,
        ));
    }
    // Close-on-exec rather than close: the message pipe must stay open until exec.
    sys::cloexec_from_3().map_err(sys_err(
        "close inherited descriptors",
        Call::CloseRange,
        None,
    ))?;
    let argv: Vec<CString> = a
        .plan
        .argv
        .iter()
        .map(|s| CString::new(s.as_str()).unwrap_or_default())
        .collect();
    let env: Vec<CString> = a
        .plan
        .env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")).unwrap_or_default())
        .collect();
    // Seccomp last, so that nothing above needs a syscall it refuses: its filters as one.
    seccompiler::apply_filter(&a.seccomp.chained).map_err(|e| {
        ChildError::new(
            &format!("apply seccomp ({e})"),
            Call::Seccomp,
            None,
            libc::EINVAL,
        )
    })?;
    if a.plan.trace_missing {
        trace::install_filter().map_err(|e| {
            ChildError::new(
                &format!("trace the app (--trace-missing: {e})"),
                Call::TraceFilter,
                None,
                libc::EINVAL,
            )
        })?;
    }
    let program = Path::new(&a.plan.argv[0]);
    let e = nix::unistd::execve(&argv[0], &argv, &env).unwrap_err();
    Err(ChildError::new(
        "start the app",
        Call::Execve,
        Some(program),
        e as i32,
    ))
}

/// pid 1: forwards signals to the app and reaps every child; reports the app's status
/// (128+N when it was killed by signal N) to the launcher and exits with it, which ends the
/// namespaces and all left in them.
///
/// The report comes first because the exit can take long: unmounting the overlay syncs the
/// whole filesystem of the persistent upper (overlayfs' `sync_fs`), data of other programs
/// included. The launcher returns the app's status at once and this teardown goes on
/// without it; the app's own `fsync`s were durable when they returned.
fn reap(a: &mut ChildArgs, app: Pid) -> Result<isize, ChildError> {
    let _ = drop_caps();
    let _ = nix::sys::prctl::set_no_new_privs();
    let _ = nix::sys::prctl::set_dumpable(false);
    // Our copies of the pipes must close, so the parent sees EOF when the app execs.
    a.go = None;
    a.messages = None;
    if a.plan.trace_missing {
        reap_traced(a, app);
    }
    loop {
        let (sig, code) = sys::wait_signal(&a.signals).map_err(sys_err(
            "wait for signals",
            Call::Sigwaitinfo,
            None,
        ))?;
        if sig != Signal::SIGCHLD {
            if code != sys::SI_KERNEL {
                let _ = kill(app, sig);
            }
            continue;
        }
        loop {
            let code = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, c)) if pid == app => c,
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == app => 128 + s as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            if let Some(fd) = a.status.take() {
                let _ = File::from(fd).write_all(&code.to_le_bytes());
            }
            return Ok(code as isize);
        }
    }
}

/// How long pid 1 follows a traced app: no limit an app run would reach.
const TRACE_LIMIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// pid 1 in trace mode: a thread forwards signals (SIGCHLD stays for the tracer) while this
/// one, the app's parent and so its tracer, follows the app's whole tree; then the status and
/// what the app missed go to the launcher, in one write, and pid 1 ends with every thread
/// (returning would end this thread only).
fn reap_traced(a: &mut ChildArgs, app: Pid) -> ! {
    let mut forwarded = a.signals;
    forwarded.remove(Signal::SIGCHLD);
    let _ = std::thread::Builder::new().spawn(move || {
        while let Ok((sig, code)) = sys::wait_signal(&forwarded) {
            if code != sys::SI_KERNEL {
                let _ = kill(app, sig);
            }
        }
    });
    let pid = u32::try_from(app.as_raw()).unwrap_or_default();
    let (code, traced) = match trace::follow(pid, TRACE_LIMIT, false) {
        Ok(t) => {
            let code = match t.exit {
                trace::Exit::Code(c) => c,
                trace::Exit::Signal(s) => 128 + s,
            };
            (code, crate::missing::reduce(&t))
        }
        Err(e) => {
            let _ = kill(app, Signal::SIGKILL);
            (125, crate::missing::Traced::Failed(e.to_string()))
        }
    };
    let mut out = code.to_le_bytes().to_vec();
    out.extend(serde_json::to_vec(&traced).unwrap_or_default());
    out.push(b'\n');
    if let Some(fd) = a.status.take() {
        let _ = File::from(fd).write_all(&out);
    }
    sys::exit_now(code)
}
