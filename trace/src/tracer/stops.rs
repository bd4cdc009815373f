//! The tracer's syscall stops: the seccomp stop (decode, then record at once in the fast
//! mode or wait for the exit) and the syscall-exit stop (record the kernel's result). Also
//! where the cached cwds are dropped (see the parent module's doc).

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::Pid;

use super::{ptrace_err, Tracer};
use crate::check;
use crate::decode::{decode, socket_inode, Ctx, Learn, Pending};
use crate::{regs, Access, Connect, Op, TraceError};

impl Tracer {
    pub(super) fn seccomp(&mut self, tid: Pid) -> Result<(), TraceError> {
        self.out.stops += 1;
        let regs = match regs::get(tid) {
            Ok(r) => r,
            Err(Errno::ESRCH) => return Ok(()), // killed meanwhile: its exit follows
            Err(e) => return Err(ptrace_err("getregs", tid)(e)),
        };
        let task = self.tasks.entry(tid).or_default();
        task.pending = None;
        let decoded = decode(&mut Ctx::new(tid, &mut task.cwd), &regs, &self.types);
        if let Some(d) = decoded {
            if d.moves_cwd {
                self.forget_cwds();
            }
            let learn = if self.exact { Learn::Exit } else { d.learn };
            let task = self.tasks.entry(tid).or_default();
            task.moves_cwd = d.moves_cwd;
            match (learn, d.pending) {
                (_, None) => {}
                (Learn::Intent, Some(Pending::Paths { items, .. })) => {
                    self.record_paths(tid, items, |_| None)
                }
                (Learn::Check { follow }, Some(Pending::Paths { items, .. })) => {
                    self.checked(tid, items, follow)
                }
                (Learn::Exec, Some(p)) => self.exec_check(tid, p),
                (_, Some(p)) => task.pending = Some(p),
            }
        }
        self.resume(tid, None)
    }

    /// Records `items` with the tracer's own lookup of each.
    fn checked(&mut self, tid: Pid, items: Vec<(PathBuf, Op)>, follow: bool) {
        let task = self.tasks.entry(tid).or_default();
        let root = task
            .root
            .get_or_insert_with(|| check::root_of(tid))
            .as_deref();
        let pid = tid.as_raw() as u32;
        for (path, op) in items {
            let errno = check::lookup(root, &path, follow);
            self.out.accesses.push(Access {
                path,
                op,
                errno,
                pid,
            });
        }
    }

    /// An exec of a missing program is recorded now; one that exists waits for its exit stop.
    fn exec_check(&mut self, tid: Pid, pending: Pending) {
        let task = self.tasks.entry(tid).or_default();
        let root = task
            .root
            .get_or_insert_with(|| check::root_of(tid))
            .as_deref();
        let missing = match &pending {
            Pending::Paths { items, .. } => items
                .first()
                .and_then(|(path, _)| check::lookup(root, path, true)),
            _ => None,
        };
        match (missing, pending) {
            (Some(errno), Pending::Paths { items, .. }) => {
                self.record_paths(tid, items, |_| Some(errno))
            }
            (_, p) => task.pending = Some(p),
        }
    }

    fn forget_cwds(&mut self) {
        for t in self.tasks.values_mut() {
            t.cwd = None;
        }
    }

    pub(super) fn syscall_exit(&mut self, tid: Pid) -> Result<(), TraceError> {
        if !self.order_checked {
            self.check_order(tid)?;
        }
        let task = self.tasks.entry(tid).or_default();
        let pending = task.pending.take();
        if std::mem::take(&mut task.moves_cwd) {
            self.forget_cwds();
        }
        let Some(pending) = pending else {
            return self.resume(tid, None);
        };
        let ret = match regs::get(tid) {
            Ok(r) => r.ret,
            Err(Errno::ESRCH) => return Ok(()),
            Err(e) => return Err(ptrace_err("getregs", tid)(e)),
        };
        self.record(tid, pending, ret);
        self.resume(tid, None)
    }

    #[cfg(target_env = "gnu")]
    fn check_order(&mut self, tid: Pid) -> Result<(), TraceError> {
        match ptrace::syscall_info(tid) {
            Ok(info) if info.op == libc::PTRACE_SYSCALL_INFO_EXIT => {
                self.order_checked = true;
                Ok(())
            }
            Ok(_) => Err(TraceError::SeccompOrder),
            Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(ptrace_err("get_syscall_info", tid)(e)),
        }
    }

    #[cfg(not(target_env = "gnu"))]
    fn check_order(&mut self, _tid: Pid) -> Result<(), TraceError> {
        self.order_checked = true;
        Ok(())
    }

    fn record(&mut self, tid: Pid, pending: Pending, ret: i64) {
        let errno = regs::errno_of(ret);
        let pid = tid.as_raw() as u32;
        match pending {
            Pending::Paths { items, .. } => self.record_paths(tid, items, |_| errno),
            Pending::Connect { addr, sock_type } => {
                self.out.connects.push(Connect {
                    addr,
                    sock_type,
                    errno,
                    pid,
                });
            }
            Pending::Socket { sock_type } => {
                if errno.is_none() {
                    if let Some(ino) = socket_inode(tid, ret as i32) {
                        self.types.insert(ino, sock_type);
                    }
                }
            }
        }
    }

    fn record_paths(
        &mut self,
        tid: Pid,
        items: Vec<(PathBuf, Op)>,
        errno: impl Fn(&Path) -> Option<i32>,
    ) {
        let pid = tid.as_raw() as u32;
        for (path, op) in items {
            let errno = errno(&path);
            self.out.accesses.push(Access {
                path,
                op,
                errno,
                pid,
            });
        }
    }
}
