//! The wait loop: follows a stopped child and every task it creates until all are gone.
//!
//! Per task (thread id) the state is the call stopped at its seccomp stop and not yet
//! returned (`pending`), its cached cwd and its lookup root (see [`crate::check`]). A seccomp
//! stop decodes the call. In the fast mode most calls are recorded there (checked by the
//! tracer, or as intent) and resumed with `PTRACE_CONT`: one stop per call. A call whose
//! result only the kernel knows (all of them in the exact mode) is resumed with
//! `PTRACE_SYSCALL` to get the syscall-exit stop, which records the result and resumes with
//! `PTRACE_CONT`; the next traced call stops again at its seccomp stop. That relies on the
//! kernel ≥ 4.8 order (seccomp stop after syscall-entry): the first exit stop is checked with
//! `PTRACE_GET_SYSCALL_INFO` and the run fails if it is an entry stop.
//!
//! Cached cwds are dropped, for every task (threads share theirs), at the entry and at the
//! exit of a call that may move one (chdir, fchdir, setns, pivot_root: these take the exit
//! stop in both modes).
//! New tasks' first SIGSTOP is swallowed; other signals are re-injected (see [`crate::wait`]).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

mod stops;

use crate::deadline::Deadline;
use crate::decode::{Pending, SockTypes};
use crate::wait::{wait_any, wait_pid, Status};
use crate::{regs, Exec, Exit, Trace, TraceError};

#[derive(Default)]
struct Task {
    /// Its first (SIGSTOP) stop was seen.
    started: bool,
    pending: Option<Pending>,
    /// The call stopped at may move the cwd: drop the cached ones at its exit.
    moves_cwd: bool,
    /// The cwd as last read, until a call that may move it.
    cwd: Option<PathBuf>,
    /// The lookup root ([`check::root_of`]), found at the first check after a start or exec.
    root: Option<Option<PathBuf>>,
}

impl Task {
    fn started() -> Task {
        Task {
            started: true,
            ..Task::default()
        }
    }

    fn wants_exit(&self) -> bool {
        self.pending.is_some() || self.moves_cwd
    }
}

struct Tracer {
    first: Pid,
    tasks: HashMap<Pid, Task>,
    live: Deadline,
    types: SockTypes,
    out: Trace,
    exit: Option<Exit>,
    order_checked: bool,
    exact: bool,
}

fn ptrace_err(op: &'static str, tid: Pid) -> impl FnOnce(Errno) -> TraceError {
    move |source| TraceError::Ptrace {
        op,
        pid: tid.as_raw() as u32,
        source,
    }
}

/// Follows `first`, stopped by `traceme_and_stop`, and its descendants.
/// `exact`: every call takes its exit stop (see the crate doc).
pub(crate) fn follow(first: Pid, timeout: Duration, exact: bool) -> Result<Trace, TraceError> {
    if !regs::SUPPORTED {
        return Err(TraceError::Unsupported {
            arch: std::env::consts::ARCH,
        });
    }
    let started = Instant::now();
    match wait_pid(first)? {
        Status::Stopped { sig, .. } if sig == libc::SIGSTOP => {}
        status => {
            return Err(TraceError::Start {
                pid: first.as_raw() as u32,
                status,
            })
        }
    }
    let opts = Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACESECCOMP
        | Options::PTRACE_O_EXITKILL;
    if let Err(e) = ptrace::setoptions(first, opts) {
        let _ = nix::sys::signal::kill(first, Signal::SIGKILL);
        return Err(ptrace_err("setoptions", first)(e));
    }
    let mut t = Tracer {
        first,
        tasks: HashMap::new(),
        live: Deadline::start(timeout),
        types: SockTypes::new(),
        out: Trace {
            accesses: Vec::new(),
            execs: Vec::new(),
            connects: Vec::new(),
            exit: Exit::Code(0),
            timed_out: false,
            wall: Duration::ZERO,
            stops: 0,
            dropped_signals: 0,
        },
        exit: None,
        order_checked: false,
        exact,
    };
    t.tasks.insert(first, Task::started());
    t.live.add(first);
    let result = t.resume(first, None).and_then(|()| t.run());
    if let Err(e) = result {
        t.abort();
        return Err(e);
    }
    t.out.exit = t.exit.unwrap_or(Exit::Signal(libc::SIGKILL));
    t.out.timed_out = t.live.timed_out();
    t.out.wall = started.elapsed();
    Ok(t.out)
}

impl Tracer {
    fn run(&mut self) -> Result<(), TraceError> {
        while !self.live.is_empty() {
            let Some((tid, status)) = wait_any()? else {
                break; // ECHILD: nothing left to wait for
            };
            match status {
                Status::Exited(code) => self.gone(tid, Exit::Code(code)),
                Status::Signaled(sig) => self.gone(tid, Exit::Signal(sig)),
                Status::Stopped { sig, event } => self.stopped(tid, sig, event)?,
            }
        }
        Ok(())
    }

    fn gone(&mut self, tid: Pid, how: Exit) {
        self.tasks.remove(&tid);
        self.live.remove(tid);
        if tid == self.first {
            self.exit = Some(how);
        }
    }

    fn stopped(&mut self, tid: Pid, sig: i32, event: i32) -> Result<(), TraceError> {
        if let Entry::Vacant(v) = self.tasks.entry(tid) {
            // A new task's first stop, before its parent's fork event.
            v.insert(Task::started());
            self.live.add(tid);
            return self.resume(tid, None);
        }
        if sig == libc::SIGTRAP | 0x80 {
            return self.syscall_exit(tid);
        }
        if sig == libc::SIGTRAP && event != 0 {
            return self.event(tid, event);
        }
        let task = self.tasks.entry(tid).or_default();
        if !task.started && sig == libc::SIGSTOP {
            task.started = true;
            return self.resume(tid, None);
        }
        self.signal(tid, sig)
    }

    fn event(&mut self, tid: Pid, event: i32) -> Result<(), TraceError> {
        const FORK: i32 = Event::PTRACE_EVENT_FORK as i32;
        const VFORK: i32 = Event::PTRACE_EVENT_VFORK as i32;
        const CLONE: i32 = Event::PTRACE_EVENT_CLONE as i32;
        const EXEC: i32 = Event::PTRACE_EVENT_EXEC as i32;
        const SECCOMP: i32 = Event::PTRACE_EVENT_SECCOMP as i32;
        match event {
            SECCOMP => self.seccomp(tid),
            FORK | VFORK | CLONE => {
                if let Ok(new) = ptrace::getevent(tid) {
                    let new = Pid::from_raw(new as i32);
                    if let Entry::Vacant(v) = self.tasks.entry(new) {
                        v.insert(Task::default());
                        self.live.add(new);
                    }
                }
                self.resume(tid, None)
            }
            EXEC => self.exec(tid),
            _ => self.resume(tid, None),
        }
    }

    /// `PTRACE_EVENT_EXEC`: `tid` is the thread-group leader now; the exec was made by the
    /// former thread id `getevent` gives, which vanished without an exit notification.
    fn exec(&mut self, tid: Pid) -> Result<(), TraceError> {
        let former = ptrace::getevent(tid)
            .map(|f| Pid::from_raw(f as i32))
            .unwrap_or(tid);
        if former != tid {
            if let Some(moved) = self.tasks.remove(&former) {
                self.tasks.insert(tid, moved);
            }
            self.live.remove(former);
        }
        // A new program may run in a new root (`unshare -m`, `chroot` before the exec).
        self.tasks.entry(tid).or_default().root = None;
        let exe = std::fs::read_link(format!("/proc/{tid}/exe")).unwrap_or_default();
        let started = match self.tasks.get(&tid).and_then(|t| t.pending.as_ref()) {
            Some(Pending::Paths { exec: Some(e), .. }) => Some(e.clone()),
            _ => None,
        };
        let (path, argv0) = match started {
            Some(e) => (e.path, e.argv0),
            None => (exe.clone(), String::new()),
        };
        self.out.execs.push(Exec {
            path,
            exe,
            argv0,
            pid: tid.as_raw() as u32,
        });
        self.resume(tid, None)
    }

    /// A signal-delivery-stop (re-inject the signal) or a group-stop (`PTRACE_GETSIGINFO`
    /// fails with EINVAL; resume without one).
    fn signal(&mut self, tid: Pid, sig: i32) -> Result<(), TraceError> {
        match ptrace::getsiginfo(tid) {
            Err(Errno::EINVAL) => self.resume(tid, None),
            Err(Errno::ESRCH) => Ok(()),
            _ => match Signal::try_from(sig) {
                Ok(s) => self.resume(tid, Some(s)),
                Err(_) => {
                    // A real-time signal: nix's Signal cannot carry it (see lib.rs).
                    self.out.dropped_signals += 1;
                    self.resume(tid, None)
                }
            },
        }
    }

    /// Resumes with `PTRACE_SYSCALL` when the call wants its exit stop, else `CONT`.
    fn resume(&mut self, tid: Pid, sig: Option<Signal>) -> Result<(), TraceError> {
        let pending = self.tasks.get(&tid).is_some_and(Task::wants_exit);
        let r = if pending {
            ptrace::syscall(tid, sig)
        } else {
            ptrace::cont(tid, sig)
        };
        match r {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(ptrace_err(if pending { "syscall" } else { "cont" }, tid)(e)),
        }
    }

    /// After an error: kill every tracee and reap them, so none is left stopped.
    fn abort(&mut self) {
        self.live.kill_all();
        while !self.live.is_empty() {
            match wait_any() {
                Ok(Some((tid, Status::Exited(_) | Status::Signaled(_)))) => self.live.remove(tid),
                Ok(Some((tid, _))) => {
                    if !self.live.contains(tid) {
                        self.live.add(tid);
                        let _ = nix::sys::signal::kill(tid, Signal::SIGKILL);
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}
