//! A stopped tracee's syscall number, arguments and return value. x86_64 reads the registers
//! with `PTRACE_GETREGS` (no `unsafe` needed, unlike the union in `PTRACE_GET_SYSCALL_INFO`);
//! other architectures are refused at run time.

use nix::errno::Errno;
use nix::unistd::Pid;

/// The registers of a syscall stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Regs {
    pub nr: i64,
    pub args: [u64; 6],
    /// The return value (meaningful at the syscall-exit stop).
    pub ret: i64,
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn get(tid: Pid) -> nix::Result<Regs> {
    let r = nix::sys::ptrace::getregs(tid)?;
    Ok(Regs {
        nr: r.orig_rax as i64,
        args: [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9],
        ret: r.rax as i64,
    })
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn get(_tid: Pid) -> nix::Result<Regs> {
    Err(Errno::ENOSYS)
}

/// Whether this architecture is supported.
pub(crate) const SUPPORTED: bool = cfg!(target_arch = "x86_64");

/// The errno of a syscall's return value, `None` on success. The kernel's restart codes
/// (`ERESTARTSYS`..`ERESTART_RESTARTBLOCK`, 512..=516) are seen by the tracer before signal
/// handling turns them into `EINTR` or a restart (which stops again): recorded as `EINTR`.
pub(crate) fn errno_of(ret: i64) -> Option<i32> {
    if (-4095..0).contains(&ret) {
        let e = -ret as i32;
        Some(if (512..=516).contains(&e) {
            Errno::EINTR as i32
        } else {
            e
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_decoding() {
        assert_eq!(errno_of(0), None);
        assert_eq!(errno_of(3), None);
        assert_eq!(errno_of(-2), Some(libc::ENOENT));
        assert_eq!(errno_of(-512), Some(libc::EINTR));
        assert_eq!(
            errno_of(-5000),
            None,
            "a large negative value is an address"
        );
        assert_eq!(errno_of(i64::MIN), None);
    }
}
