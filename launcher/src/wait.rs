//! A running sandbox ([`Child`]) and how the launcher waits for it.
//!
//! The sandbox's pid 1 writes the app's exit status on a pipe as soon as it has reaped the
//! app, then exits; its exit tears the namespaces down, and unmounting an overlay whose upper
//! is on a disk filesystem syncs that whole filesystem (data of other programs included).
//! [`Child::wait`] returns on the status, not on pid 1's exit, so the caller never pays for
//! that flush: the teardown goes on in the background, is recorded in the app's state
//! ([`AppState::record_teardown`]), and the next run or store command of the same app waits
//! for it to finish before it takes the app's locks. Durability is unchanged: overlayfs
//! passes the app's `fsync`s to the upper filesystem, and they return only once the data is
//! on disk.
//!
//! In trace mode (`--trace-missing`) pid 1 writes, behind the status and in the same write,
//! one JSON line of what the app missed ([`Traced`]); [`Child::wait_traced`] reads it (at most
//! [`MAX_TRACED`] bytes) and ranks it.
//!
//! Invariants: signals for the app are blocked in the launcher from before the clone until
//! `wait` returns, and forwarded to pid 1 (except those the kernel already sent to the whole
//! foreground process group); without a status (pid 1 was killed or failed) `wait` falls back
//! to pid 1's own exit status.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use userdata::state::AppState;

use crate::error::LaunchError;
use crate::missing::{TraceOutcome, Traced};
use crate::stdio::Replaced;
use crate::sys;

/// How the app ended: its exit code, or 128+N when killed by signal N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus(pub(crate) i32);

impl ExitStatus {
    pub fn code(&self) -> i32 {
        self.0
    }
    pub fn success(&self) -> bool {
        self.0 == 0
    }
}

/// The most pid 1's record of misses may take on the pipe (it sends at most
/// [`crate::missing::MAX_SENT`] paths, each at most PATH_MAX).
pub const MAX_TRACED: u64 = 64 << 20;

fn sys_err(call: &'static str) -> impl FnOnce(nix::Error) -> LaunchError {
    move |source| LaunchError::Sys { call, source }
}

/// A running sandbox.
#[derive(Debug)]
pub struct Child {
    pub(crate) pid: Pid,
    /// When pid 1 started (`/proc/PID/stat` field 22), to record its teardown.
    pub(crate) started: Option<u64>,
    pub(crate) signals: SigSet,
    pub(crate) old_mask: SigSet,
    /// Read end of pid 1's status pipe.
    pub(crate) status: Option<OwnedFd>,
    pub(crate) state: Option<AppState>,
    /// Mount points the run created in the app's persistent state, to remove at the end.
    pub(crate) created: Vec<PathBuf>,
    pub(crate) replaced: Vec<Replaced>,
    /// pid 1 traces the app and sends its misses behind the status.
    pub(crate) trace: bool,
    /// The cache entries the run uses, locked against `capsa gc` until it ends.
    pub(crate) in_use: userdata::cache::gc::InUse,
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Standard streams replaced by `/dev/null` before the app started.
    pub fn replaced_stdio(&self) -> &[Replaced] {
        &self.replaced
    }

    /// Waits for the app, forwarding signals sent to the launcher (not those the terminal
    /// already delivered to the whole foreground group); then records the sandbox's teardown
    /// in the app's state and, when no other instance runs, removes the mount points this run
    /// created there, so no trace of opened files or grants is left.
    pub fn wait(self) -> Result<ExitStatus, LaunchError> {
        self.wait_traced().map(|(status, _)| status)
    }

    /// [`Child::wait`], and with `--trace-missing` what the app looked for and did not find.
    pub fn wait_traced(mut self) -> Result<(ExitStatus, Option<TraceOutcome>), LaunchError> {
        let (status, reported, traced) = match self.status.take() {
            Some(fd) => self.wait_status(fd),
            None => (self.wait_raw(), false, None),
        };
        let outcome = self.trace.then(|| crate::missing::outcome(traced));
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old_mask), None);
        if let Some(st) = self.state.take() {
            // Only the run that owned the persistent upper leaves a teardown worth waiting for
            // (a concurrent run's upper is a tmpfs), and only it may replace the record.
            if let (true, Some(started), true) = (reported, self.started, st.upper_lock.is_some()) {
                st.record_teardown(self.pid.as_raw(), started);
            }
            let dir = st.dir.clone();
            if let Some(_alone) = st.last_out() {
                userdata::tidy::remove_created(&dir, &self.created);
            }
        }
        status.map(|s| (s, outcome))
    }

    /// The status pid 1 reports, with true (and in trace mode its record); or, when it ends
    /// without one, its own exit status and false (the sandbox is gone then).
    fn wait_status(
        &mut self,
        fd: OwnedFd,
    ) -> (Result<ExitStatus, LaunchError>, bool, Option<Traced>) {
        let signals = match SignalFd::with_flags(&self.signals, SfdFlags::SFD_CLOEXEC) {
            Ok(s) => s,
            Err(_) => return (self.wait_raw(), false, None),
        };
        let mut pipe = File::from(fd);
        loop {
            let mut fds = [
                PollFd::new(pipe.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return (Err(sys_err("poll")(e)), false, None),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let (status_ready, signal_ready) = (ready(&fds[0]), ready(&fds[1]));
            if status_ready {
                let mut b = [0u8; 4];
                return match pipe.read_exact(&mut b) {
                    Ok(()) => {
                        let traced = self.trace.then(|| read_traced(pipe)).flatten();
                        (Ok(ExitStatus(i32::from_le_bytes(b))), true, traced)
                    }
                    Err(_) => (self.wait_raw(), false, None),
                };
            }
            if signal_ready {
                if let Ok(Some(info)) = signals.read_signal() {
                    let sig = Signal::try_from(info.ssi_signo as i32);
                    if let Ok(sig) = sig.map_err(|_| ()) {
                        if sig != Signal::SIGCHLD && info.ssi_code != sys::SI_KERNEL {
                            let _ = kill(self.pid, sig);
                        }
                    }
                }
            }
        }
    }

    /// Waits for pid 1 itself to exit (forwarding signals meanwhile).
    pub(crate) fn wait_raw(&mut self) -> Result<ExitStatus, LaunchError> {
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

/// pid 1's record behind the status: one JSON line, read to EOF (pid 1 closes its end right
/// after the write); `None` when it is missing, too long or not a record.
fn read_traced(pipe: File) -> Option<Traced> {
    let mut line = Vec::new();
    pipe.take(MAX_TRACED).read_to_end(&mut line).ok()?;
    serde_json::from_slice(&line).ok()
}
