//! Turning a seccomp stop into what to record once the call returns: the paths it names
//! (made absolute, see [`crate::paths`]) with their [`Op`], the program an exec asks for, the
//! address a connect or send names, or the type of a socket being created. Everything read
//! from the tracee is hostile: a bad pointer or an over-long string drops that argument.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::unistd::Pid;

use crate::calls::{lookup, Dir, Empty, Flags, Kind};
use crate::mem::{read_bytes, read_cstr, read_u64};
use crate::paths::{resolve, Base};
use crate::regs::Regs;
use crate::sockaddr;
use crate::{Op, SockAddr};

/// An exec in flight: what it asked for.
#[derive(Debug, Clone)]
pub(crate) struct ExecStart {
    pub path: PathBuf,
    pub argv0: String,
}

/// What a stopped call will be recorded as when it returns.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    Paths {
        items: Vec<(PathBuf, Op)>,
        exec: Option<ExecStart>,
    },
    Connect {
        addr: SockAddr,
        sock_type: i32,
    },
    /// `socket()`: the new fd's inode gets this type.
    Socket {
        sock_type: i32,
    },
}

/// Socket types by socket inode, learnt from traced `socket()` calls.
pub(crate) type SockTypes = HashMap<u64, i32>;

fn arg(regs: &Regs, i: u8) -> u64 {
    regs.args.get(usize::from(i)).copied().unwrap_or(0)
}

fn base(regs: &Regs, dir: Dir) -> Base {
    match dir {
        Dir::Cwd => Base::Cwd,
        Dir::Arg(i) => Base::from_dirfd(arg(regs, i)),
    }
}

fn empty_ok(regs: &Regs, empty: Empty) -> bool {
    match empty {
        Empty::Never => false,
        Empty::Always => true,
        Empty::Flag(i) => (arg(regs, i) as i32) & libc::AT_EMPTY_PATH != 0,
    }
}

fn path(tid: Pid, regs: &Regs, dir: Dir, ptr: u8, empty: bool) -> Option<PathBuf> {
    let raw = read_cstr(tid, arg(regs, ptr))?;
    resolve(tid, base(regs, dir), &raw, empty)
}

/// What the call stopped at will record, if anything.
pub(crate) fn decode(tid: Pid, regs: &Regs, types: &SockTypes) -> Option<Pending> {
    let call = lookup(regs.nr)?;
    let paths = |items: Vec<(PathBuf, Op)>| {
        (!items.is_empty()).then_some(Pending::Paths { items, exec: None })
    };
    match call.kind {
        Kind::Open {
            dir,
            path: p,
            flags,
        } => {
            let op = open_op(tid, regs, flags);
            paths(
                path(tid, regs, dir, p, false)
                    .map(|x| (x, op))
                    .into_iter()
                    .collect(),
            )
        }
        Kind::Exec {
            dir,
            path: p,
            argv,
            empty,
        } => {
            let target = path(tid, regs, dir, p, empty_ok(regs, empty))?;
            let argv0 = read_u64(tid, arg(regs, argv))
                .and_then(|ptr| read_cstr(tid, ptr))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let exec = Some(ExecStart {
                path: target.clone(),
                argv0,
            });
            Some(Pending::Paths {
                items: vec![(target, Op::Exec)],
                exec,
            })
        }
        Kind::Path {
            op,
            dir,
            path: p,
            empty,
        } => paths(
            path(tid, regs, dir, p, empty_ok(regs, empty))
                .map(|x| (x, op))
                .into_iter()
                .collect(),
        ),
        Kind::Two {
            old_op,
            old_dir,
            old,
            new_dir,
            new,
            empty,
        } => {
            let mut items = Vec::new();
            items.extend(path(tid, regs, old_dir, old, empty_ok(regs, empty)).map(|x| (x, old_op)));
            items.extend(path(tid, regs, new_dir, new, false).map(|x| (x, Op::Change)));
            paths(items)
        }
        Kind::Symlink { dir, path: p } => paths(
            path(tid, regs, dir, p, false)
                .map(|x| (x, Op::Change))
                .into_iter()
                .collect(),
        ),
        Kind::Connect => connect(tid, regs, types, arg(regs, 1), arg(regs, 2)),
        Kind::SendTo => connect(tid, regs, types, arg(regs, 4), arg(regs, 5)),
        Kind::SendMsg => {
            // struct msghdr { void *msg_name; socklen_t msg_namelen; ... }
            let hdr = arg(regs, 1);
            let name = read_u64(tid, hdr)?;
            let len = read_bytes(tid, hdr.checked_add(8)?, 4)?;
            let len = u32::from_ne_bytes(len.try_into().ok()?);
            connect(tid, regs, types, name, u64::from(len))
        }
        Kind::Socket => {
            let sock_type = (arg(regs, 1) as i32) & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
            Some(Pending::Socket { sock_type })
        }
    }
}

fn open_op(tid: Pid, regs: &Regs, flags: Flags) -> Op {
    let flags = match flags {
        Flags::Creat => {
            return Op::Open {
                write: true,
                create: true,
            }
        }
        Flags::Arg(i) => arg(regs, i) as i32,
        // struct open_how { u64 flags; u64 mode; u64 resolve; }
        Flags::How(i) => read_u64(tid, arg(regs, i)).unwrap_or(0) as i32,
    };
    Op::Open {
        write: flags & libc::O_ACCMODE != libc::O_RDONLY,
        create: flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE,
    }
}

fn connect(tid: Pid, regs: &Regs, types: &SockTypes, addr: u64, len: u64) -> Option<Pending> {
    if addr == 0 {
        return None;
    }
    let len = usize::try_from(len).ok()?.min(sockaddr::MAX_LEN);
    let bytes = read_bytes(tid, addr, len)?;
    let addr = sockaddr::parse(tid, &bytes)?;
    let sock_type = socket_inode(tid, arg(regs, 0) as i32)
        .and_then(|ino| types.get(&ino).copied())
        .unwrap_or(0);
    Some(Pending::Connect { addr, sock_type })
}

/// The inode of socket `fd` of `tid` (`/proc/TID/fd/N` -> `socket:[INODE]`).
pub(crate) fn socket_inode(tid: Pid, fd: i32) -> Option<u64> {
    if fd < 0 {
        return None;
    }
    let link = std::fs::read_link(format!("/proc/{tid}/fd/{fd}")).ok()?;
    let s = link.as_os_str().as_bytes();
    let digits = s.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}
