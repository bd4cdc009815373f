//! Turning a seccomp stop into what to record: the paths it names (made absolute, see
//! [`crate::paths`]) with their [`Op`], the program an exec asks for, the address a connect
//! or send names, or the type of a socket being created; and how the fast mode learns the
//! outcome ([`Learn`], from the table's [`Outcome`] and the call's flags). Everything read
//! from the tracee is hostile: a bad pointer or an over-long string drops that argument.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::unistd::Pid;

use crate::calls::{lookup, Dir, Empty, Flags, Follow, Kind, Outcome};
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

/// How the fast mode learns a decoded call's outcome (the exact mode always takes the exit
/// stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learn {
    /// Look the paths up from the tracer (following a final symlink or not).
    Check { follow: bool },
    /// Check the program; take the exit stop only if it exists.
    Exec,
    /// Record as attempted.
    Intent,
    /// Take the exit stop.
    Exit,
}

/// A decoded call: what to record, how to learn its outcome, and whether it moves the cwd.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub pending: Option<Pending>,
    pub learn: Learn,
    pub moves_cwd: bool,
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

/// The tracee's view needed to resolve paths: its id, and its cwd as last read (cached by
/// the tracer until a call that may move it).
pub(crate) struct Ctx<'a> {
    pub tid: Pid,
    pub cwd: &'a mut Option<PathBuf>,
    /// An empty path named the dirfd itself (an `fstat` of an open fd): nothing to check.
    named_base: bool,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(tid: Pid, cwd: &'a mut Option<PathBuf>) -> Ctx<'a> {
        Ctx {
            tid,
            cwd,
            named_base: false,
        }
    }
}

fn path(cx: &mut Ctx, regs: &Regs, dir: Dir, ptr: u8, empty: bool) -> Option<PathBuf> {
    let raw = read_cstr(cx.tid, arg(regs, ptr))?;
    cx.named_base |= raw.is_empty() && empty;
    resolve(cx.tid, base(regs, dir), &raw, empty, cx.cwd)
}

/// What the call stopped at will record, if anything, and how its outcome is learnt.
pub(crate) fn decode(cx: &mut Ctx, regs: &Regs, types: &SockTypes) -> Option<Decoded> {
    let call = lookup(regs.nr)?;
    let pending = pending(cx, regs, types, call.kind);
    let learn = match call.outcome {
        _ if cx.named_base => Learn::Intent,
        Outcome::Check(f) => Learn::Check {
            follow: follows(regs, f),
        },
        Outcome::Open => {
            let flags = open_flags(cx.tid, regs, call.kind);
            let read_only = flags & libc::O_ACCMODE == libc::O_RDONLY
                && flags & (libc::O_CREAT | libc::O_TRUNC) == 0
                && flags & libc::O_TMPFILE != libc::O_TMPFILE;
            if read_only {
                Learn::Check {
                    follow: flags & libc::O_NOFOLLOW == 0,
                }
            } else {
                Learn::Intent
            }
        }
        Outcome::Exec => Learn::Exec,
        Outcome::Intent => Learn::Intent,
        Outcome::Exit => Learn::Exit,
    };
    Some(Decoded {
        pending,
        learn,
        moves_cwd: call.moves_cwd,
    })
}

fn follows(regs: &Regs, f: Follow) -> bool {
    match f {
        Follow::Yes => true,
        Follow::No => false,
        Follow::UnlessFlag(i) => (arg(regs, i) as i32) & libc::AT_SYMLINK_NOFOLLOW == 0,
    }
}

fn pending(cx: &mut Ctx, regs: &Regs, types: &SockTypes, kind: Kind) -> Option<Pending> {
    let tid = cx.tid;
    let paths = |items: Vec<(PathBuf, Op)>| {
        (!items.is_empty()).then_some(Pending::Paths { items, exec: None })
    };
    match kind {
        Kind::Open { dir, path: p, .. } => {
            let op = open_op(tid, regs, kind);
            paths(
                path(cx, regs, dir, p, false)
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
            let target = path(cx, regs, dir, p, empty_ok(regs, empty))?;
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
            path(cx, regs, dir, p, empty_ok(regs, empty))
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
            items.extend(path(cx, regs, old_dir, old, empty_ok(regs, empty)).map(|x| (x, old_op)));
            items.extend(path(cx, regs, new_dir, new, false).map(|x| (x, Op::Change)));
            paths(items)
        }
        Kind::Symlink { dir, path: p } => paths(
            path(cx, regs, dir, p, false)
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
        Kind::MovesCwd => None,
    }
}

/// An open's flags (`creat`: write, create and truncate).
fn open_flags(tid: Pid, regs: &Regs, kind: Kind) -> i32 {
    match kind {
        Kind::Open { flags, .. } => match flags {
            Flags::Creat => libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            Flags::Arg(i) => arg(regs, i) as i32,
            // struct open_how { u64 flags; u64 mode; u64 resolve; }
            Flags::How(i) => read_u64(tid, arg(regs, i)).unwrap_or(0) as i32,
        },
        _ => 0,
    }
}

fn open_op(tid: Pid, regs: &Regs, kind: Kind) -> Op {
    let flags = open_flags(tid, regs, kind);
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
