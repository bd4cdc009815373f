//! Capsa's tracer: runs a command on the packing machine under ptrace, with a seccomp filter
//! that returns `SECCOMP_RET_TRACE` only for path-taking and socket syscalls, so the traced
//! program runs near full speed. Forks, threads and execs are followed; every path is
//! recorded with the syscall's outcome. The result is plain data ([`Trace`]); deciding what
//! of it goes into a bundle is the packer's business.
//!
//! Two modes ([`TraceCommand::exact`]). The fast one (the default) stops once per call: a
//! read-only lookup (stat and access families, readlink, an open that neither writes, creates
//! nor truncates, an exec of a missing program) is checked by the tracer itself at the
//! seccomp stop, so its outcome is the tracer's check at entry, not the kernel's result
//! (EACCES is not seen; a file created between the check and the call is seen as missing; see
//! `check`); a change or a writing open is recorded as attempted (`errno: None`); only
//! socket, connect, sends, an exec of a program that exists and the cwd-moving calls take the
//! second (syscall-exit) stop. The exact mode takes the exit stop for every call and records
//! the kernel's result.
//!
//! The tracee is started through a helper program (normally `capsa` itself, via a hidden
//! subcommand) that calls [`child_main`]: it asks to be traced, stops itself, and once the
//! tracer has set its options, sets `no_new_privs`, installs the filter and execs the command.
//! So this crate needs no `unsafe` (no `pre_exec`).
//!
//! Modules: [`filter`] (the seccomp program), `calls` (the traced syscall table and how each
//! call's outcome is learnt), `check` (the fast mode's lookups), `child`
//! (the tracee side), `tracer` (the wait loop), `wait` (raw wait statuses), `deadline` (the
//! timeout killer), `decode`, `regs`, `mem`, `paths`, `sockaddr` (reading a stop's
//! arguments). Limits: x86_64 only; a real-time signal sent to a tracee is dropped (nix's
//! `Signal`, the only signal argument of its `ptrace::cont`/`syscall`, cannot carry it, and
//! rustix has no ptrace: re-injecting one would take `unsafe`; counted in
//! [`Trace::dropped_signals`]); syscalls of another ABI (i386 programs) run untraced.

#![forbid(unsafe_code)]

mod calls;
mod check;
mod child;
mod deadline;
mod decode;
pub mod filter;
mod mem;
mod paths;
mod regs;
mod sockaddr;
mod tracer;
mod wait;

pub use child::{child_main, traceme_and_stop};
pub use filter::{filter_program, install_program};
pub use seccompiler::BpfProgram;
pub use wait::Status;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// What to trace and how.
#[derive(Debug, Clone)]
pub struct TraceCommand {
    /// The program and its arguments (`argv[0]` is a path or a name looked up in `PATH`).
    pub argv: Vec<OsString>,
    /// Working directory; default the caller's.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (the caller's environment is inherited).
    pub env: Vec<(OsString, OsString)>,
    /// Killed (the whole traced tree) after this long; `Trace::timed_out` says so.
    pub timeout: Duration,
    /// The helper program and the arguments before `argv` that make it call [`child_main`],
    /// e.g. (`/proc/self/exe`, `["__trace-exec", "--"]`).
    pub helper: PathBuf,
    pub helper_args: Vec<OsString>,
    /// Record the kernel's result of every call (two stops per call) instead of the fast
    /// mode's checks at entry (see the crate doc). Default `false`.
    pub exact: bool,
}

/// What a recorded syscall did with its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// open/openat/openat2/creat; `write` when opened for writing, `create` with O_CREAT.
    Open { write: bool, create: bool },
    /// execve/execveat (the path asked for, not the interpreter).
    Exec,
    /// stat family, access family, readlink, statfs, chdir: the path was looked up.
    Stat,
    /// mkdir, unlink, rename (either side), link, symlink (the new path), chmod, chown, utimes,
    /// truncate: the path was changed.
    Change,
}

/// One path a traced process used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// Absolute path as the process named it, made absolute against its cwd or dirfd;
    /// symlinks are not resolved.
    pub path: PathBuf,
    pub op: Op,
    /// `None` on success, else the errno (ENOENT: probed and missing). In the fast mode, for
    /// a lookup this is the tracer's own check at entry, and a change or writing open is
    /// `None` (attempted); in the exact mode it is what the call returned.
    pub errno: Option<i32>,
    /// The thread id that made the call (the process id in a single-threaded process).
    pub pid: u32,
}

/// A socket address a traced process connected or sent to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SockAddr {
    /// AF_UNIX with a path.
    Unix(PathBuf),
    /// AF_UNIX in the abstract namespace (without the leading NUL).
    Abstract(String),
    /// AF_INET/AF_INET6.
    Inet { ip: std::net::IpAddr, port: u16 },
}

/// A connect (or sendto/sendmsg with an address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connect {
    pub addr: SockAddr,
    /// SOCK_STREAM, SOCK_DGRAM... as the socket's type (`SOCK_STREAM` = 1).
    pub sock_type: i32,
    pub errno: Option<i32>,
    pub pid: u32,
}

/// A program a traced process executed: the path asked for, and what the kernel ran
/// (`/proc/PID/exe` after the exec, which is the interpreter for a `#!` script).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exec {
    pub path: PathBuf,
    pub exe: PathBuf,
    pub argv0: String,
    pub pid: u32,
}

/// How the traced command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Everything a traced run did.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub accesses: Vec<Access>,
    pub execs: Vec<Exec>,
    pub connects: Vec<Connect>,
    /// The first process's exit (the command itself).
    pub exit: Exit,
    /// The deadline passed and the tree was killed.
    pub timed_out: bool,
    pub wall: Duration,
    /// Seccomp stops, one per traced call (for the benchmark and the report); exit stops,
    /// taken by some calls (all in the exact mode), are not counted.
    pub stops: u64,
    /// Real-time signals sent to tracees that could not be re-injected (see the crate doc).
    pub dropped_signals: u64,
}

/// What can go wrong while tracing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    #[error("cannot start the traced command {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("ptrace {op} on pid {pid}: {source}")]
    Ptrace {
        op: &'static str,
        pid: u32,
        source: nix::Error,
    },
    #[error("waitpid: {0}")]
    Wait(nix::Error),
    #[error("cannot build the trace seccomp filter: {0}")]
    Filter(String),
    #[error("tracing is not supported on {arch} (x86_64 only)")]
    Unsupported { arch: &'static str },
    #[error("the traced command (pid {pid}) did not stop for the tracer but ended ({status:?}); is the helper calling child_main?")]
    Start { pid: u32, status: Status },
    #[error(
        "the kernel stops on seccomp before syscall entry (needs Linux 4.8 or later); cannot trace"
    )]
    SeccompOrder,
}

/// Runs `cmd` traced to its end (or its timeout): starts `helper helper_args... argv...` and
/// follows it. Call it on the thread that will do nothing else meanwhile: ptrace ties the
/// tracees to the calling thread.
pub fn run(cmd: &TraceCommand) -> Result<Trace, TraceError> {
    let program = cmd.helper.display().to_string();
    if cmd.argv.is_empty() {
        return Err(TraceError::Spawn {
            program,
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command to trace"),
        });
    }
    let mut c = std::process::Command::new(&cmd.helper);
    c.args(&cmd.helper_args).args(&cmd.argv);
    if let Some(dir) = &cmd.cwd {
        c.current_dir(dir);
    }
    c.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    let child = c
        .spawn()
        .map_err(|source| TraceError::Spawn { program, source })?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Dropping a Child neither waits nor kills; the tracer reaps it.
    drop(child);
    tracer::follow(pid, cmd.timeout, cmd.exact)
}

/// In the child, after [`traceme_and_stop`], just before exec: sets `no_new_privs` and
/// installs the trace filter (it stacks with any other seccomp filter; a refusal by another
/// wins). Builds the program, so it allocates: a caller that must not (after `fork` in a
/// threaded process) builds it first with [`filter_program`] and calls [`install_program`].
pub fn install_filter() -> Result<(), TraceError> {
    install_program(&filter_program()?)
}

/// In the parent (on the thread that forked the child): follows a child stopped by
/// [`traceme_and_stop`] and all its descendants to the end (or `timeout`), and returns what
/// they did. `exit` is that child's. `exact` as [`TraceCommand::exact`].
pub fn follow(pid: u32, timeout: Duration, exact: bool) -> Result<Trace, TraceError> {
    let pid = i32::try_from(pid).map_err(|_| TraceError::Wait(nix::errno::Errno::ESRCH))?;
    tracer::follow(nix::unistd::Pid::from_raw(pid), timeout, exact)
}
