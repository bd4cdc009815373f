//! The set of live tracees and the deadline thread that kills them all with SIGKILL when the
//! timeout passes. The tracer adds every task it learns of (fork/clone events, first stops)
//! and removes those it reaps, under the same lock the killer holds, so a pid is never killed
//! after it was reaped (and possibly reused), and a task added after the kill sees the
//! `timed_out` flag and is killed on the spot.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(Default)]
struct Shared {
    live: Mutex<HashSet<Pid>>,
    timed_out: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashSet<Pid>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Live tracees, and the thread that kills them at the deadline.
pub(crate) struct Deadline {
    shared: Arc<Shared>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Deadline {
    pub(crate) fn start(timeout: Duration) -> Deadline {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel::<()>();
        let killer = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("trace-deadline".into())
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                    killer.timed_out.store(true, Ordering::SeqCst);
                    for &tid in killer.lock().iter() {
                        let _ = kill(tid, Signal::SIGKILL);
                    }
                }
            })
            .ok();
        Deadline {
            shared,
            stop: Some(tx),
            thread,
        }
    }

    /// A new task; killed at once if the deadline has passed.
    pub(crate) fn add(&self, tid: Pid) {
        let mut live = self.shared.lock();
        live.insert(tid);
        if self.timed_out() {
            let _ = kill(tid, Signal::SIGKILL);
        }
    }

    /// A reaped (or vanished) task.
    pub(crate) fn remove(&self, tid: Pid) {
        self.shared.lock().remove(&tid);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.shared.lock().is_empty()
    }

    pub(crate) fn contains(&self, tid: Pid) -> bool {
        self.shared.lock().contains(&tid)
    }

    pub(crate) fn timed_out(&self) -> bool {
        self.shared.timed_out.load(Ordering::SeqCst)
    }

    /// Kills every live task (on an error, so none is left stopped).
    pub(crate) fn kill_all(&self) {
        for &tid in self.shared.lock().iter() {
            let _ = kill(tid, Signal::SIGKILL);
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
