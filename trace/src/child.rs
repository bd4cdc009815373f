//! The tracee side: ask to be traced, stop until the tracer has set its options, set
//! `no_new_privs`, install the filter, exec. The filter must come after the options (a
//! `RET_TRACE` with no `PTRACE_O_TRACESECCOMP` tracer fails the call with ENOSYS), which the
//! stop guarantees: the tracer sets them before it resumes us.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::ptrace;
use nix::sys::signal::{raise, Signal};

use crate::filter::{filter_program, install_program};

/// `PTRACE_TRACEME` then `raise(SIGSTOP)`: plain syscalls, no allocation.
pub fn traceme_and_stop() -> io::Result<()> {
    ptrace::traceme().map_err(io::Error::from)?;
    raise(Signal::SIGSTOP).map_err(io::Error::from)
}

/// The helper program's body; returns only on failure.
pub fn child_main(argv: &[OsString]) -> io::Error {
    let Some((program, args)) = argv.split_first() else {
        return io::Error::new(io::ErrorKind::InvalidInput, "no command to trace was given");
    };
    // Built before the stop: nothing to allocate once traced.
    let filter = match filter_program() {
        Ok(f) => f,
        Err(e) => return io::Error::other(e),
    };
    if let Err(e) = traceme_and_stop() {
        return e;
    }
    if let Err(e) = install_program(&filter) {
        return io::Error::other(e);
    }
    // execvp: PATH lookup as the shell does.
    Command::new(program).args(args).exec()
}
