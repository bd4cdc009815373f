//! Waiting for tracees with the raw status word. nix's `WaitStatus` cannot represent a stop
//! by a real-time signal (it fails, and the status is lost), so the wait goes through rustix
//! and the status is decoded here. `__WALL` sees threads; `__WNOTHREAD` limits the wait to
//! children and tracees of the calling thread, so two traces in one process (or the caller's
//! own children on other threads) do not steal each other's statuses.

use nix::unistd::Pid;
use rustix::process::{wait, waitpid, WaitOptions};

use crate::TraceError;

/// A decoded wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
    /// A ptrace stop: the signal (`SIGTRAP | 0x80` for a syscall stop) and the
    /// `PTRACE_EVENT_*` (0 for none).
    Stopped {
        sig: i32,
        event: i32,
    },
}

impl Status {
    fn from_raw(raw: i32) -> Status {
        if raw & 0xff == 0x7f {
            Status::Stopped {
                sig: (raw >> 8) & 0xff,
                event: (raw >> 16) & 0xff,
            }
        } else if raw & 0x7f == 0 {
            Status::Exited((raw >> 8) & 0xff)
        } else {
            Status::Signaled(raw & 0x7f)
        }
    }
}

fn options() -> WaitOptions {
    WaitOptions::from_bits_retain((libc::__WALL | libc::__WNOTHREAD) as u32)
}

fn convert(
    r: rustix::io::Result<Option<(rustix::process::Pid, rustix::process::WaitStatus)>>,
) -> Result<Option<(Pid, Status)>, TraceError> {
    match r {
        Ok(Some((pid, st))) => Ok(Some((
            Pid::from_raw(pid.as_raw_pid()),
            Status::from_raw(st.as_raw()),
        ))),
        Ok(None) => Ok(None),
        Err(rustix::io::Errno::CHILD) => Ok(None),
        Err(e) => Err(TraceError::Wait(nix::errno::Errno::from_raw(
            e.raw_os_error(),
        ))),
    }
}

/// The next status of any tracee of this thread; `None` when there is none left.
pub(crate) fn wait_any() -> Result<Option<(Pid, Status)>, TraceError> {
    loop {
        match wait(options()) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return convert(r),
        }
    }
}

/// The next status of `pid`.
pub(crate) fn wait_pid(pid: Pid) -> Result<Status, TraceError> {
    let rpid = rustix::process::Pid::from_raw(pid.as_raw())
        .ok_or(TraceError::Wait(nix::errno::Errno::EINVAL))?;
    loop {
        match waitpid(Some(rpid), options()) {
            Err(rustix::io::Errno::INTR) => continue,
            r => match convert(r)? {
                Some((_, st)) => return Ok(st),
                None => return Err(TraceError::Wait(nix::errno::Errno::ECHILD)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_raw_statuses() {
        assert_eq!(Status::from_raw(0), Status::Exited(0));
        assert_eq!(Status::from_raw(3 << 8), Status::Exited(3));
        assert_eq!(Status::from_raw(9), Status::Signaled(9));
        assert_eq!(Status::from_raw(0x8b), Status::Signaled(11), "core dumped");
        assert_eq!(
            Status::from_raw((34 << 8) | 0x7f),
            Status::Stopped { sig: 34, event: 0 }
        );
        assert_eq!(
            Status::from_raw((7 << 16) | (5 << 8) | 0x7f),
            Status::Stopped { sig: 5, event: 7 }
        );
    }
}
