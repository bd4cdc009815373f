//! The launcher's only unsafe code: the few calls that nix or std do not offer safely.
//! Each block says why it is sound. Everything else (mount, pivot_root, prctl, waitpid) goes
//! through nix's safe wrappers.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

/// `si_code` of a signal the kernel generated (e.g. the terminal's Ctrl-C): it reached the
/// whole foreground process group already, so it is not forwarded again.
pub const SI_KERNEL: i32 = 0x80;

/// Runs `child` in a new process created with `flags` (new namespaces), like fork: the child has
/// a copy of this process's memory and exits with `child`'s return value.
pub fn clone_child(flags: CloneFlags, child: &mut dyn FnMut() -> isize) -> nix::Result<Pid> {
    let mut stack = vec![0u8; 1 << 20];
    // SAFETY: the launcher is single-threaded here (checked by the caller), so the child's copy
    // of memory has no lock held by another thread; without CLONE_VM the child runs on its own
    // copy of `stack`, which the parent may free once clone returns.
    unsafe { nix::sched::clone(Box::new(child), &mut stack, flags, Some(libc::SIGCHLD)) }
}

/// fork(2), used by the sandbox's pid 1 to start the app.
pub fn fork() -> nix::Result<nix::unistd::ForkResult> {
    // SAFETY: called in the sandbox's pid 1, which is single-threaded.
    unsafe { nix::unistd::fork() }
}

/// Waits for one of the signals in `set` (which must be blocked); returns it with its si_code.
pub fn wait_signal(set: &SigSet) -> nix::Result<(Signal, i32)> {
    loop {
        // SAFETY: `info` is a plain C struct the kernel fills; `set` is a valid sigset.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::sigwaitinfo(set.as_ref(), &mut info) };
        if r < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
        return Ok((Signal::try_from(r)?, info.si_code));
    }
}

/// Restores the default action of SIGPIPE (Rust ignores it at start-up, and ignored signals
/// stay ignored across exec, which would change how the app behaves on a closed pipe).
pub fn default_sigpipe() -> nix::Result<()> {
    // SAFETY: installs SIG_DFL, no handler code runs.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) }
        .map(|_| ())
}

/// Marks every descriptor from 3 up close-on-exec (close_range(2), Linux 5.11).
pub fn cloexec_from_3() -> nix::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOEXEC changes only descriptor flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(r).map(|_| ())
}

/// Brings the loopback interface of a new network namespace up.
pub fn loopback_up() -> nix::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: `req` is a zeroed ifreq with a NUL-terminated name; the ioctls read and write
    // only that struct.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// Number of threads of this process (clone must not happen with more than one).
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Threads:")
                    .map(|v| v.trim().parse().unwrap_or(usize::MAX))
            })
        })
        .unwrap_or(usize::MAX)
}

/// Waits until this process has one thread; false if it still has more after `limit`.
///
/// A thread that `join` returned for has run its last user-space instruction (the kernel
/// clears its tid futex in `exit_mm`), but it is counted in `Threads:` until the kernel
/// releases it a little later in `do_exit` (later still under `strace -f`, whose tracer
/// reaps it). Such a thread holds no lock of ours, so waiting for the count to reach one is
/// exact: it ends as soon as the kernel is done, and only a thread that is really still
/// running makes it fail.
pub fn wait_single_threaded(limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if thread_count() == 1 {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}

/// Ends the process at once, without running exit handlers or flushing stdio buffers that
/// belong to the parent's copy of memory.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) only ends the process.
    unsafe { libc::_exit(code) }
}
