//! The table of traced syscalls: for each number, when the filter stops on it and where its
//! path, dirfd and flag arguments are. One table feeds both the seccomp filter
//! ([`crate::filter`]) and the decoder ([`crate::decode`]), so they cannot disagree.
//! Legacy path calls (`open`, `stat`, ...) exist on x86_64 only.
//!
//! Each entry also says how its outcome is learnt in the fast mode ([`Outcome`]): checked by
//! the tracer at the seccomp stop, recorded as intent, or read at the syscall-exit stop (the
//! only case that costs a second stop). In the exact mode every call takes the exit stop.

// `c_long` is i64 only on 64-bit targets: the casts are not noise elsewhere.
#![allow(clippy::unnecessary_cast)]

use crate::Op;

/// When the filter returns `RET_TRACE` for a call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Traced {
    Always,
    /// Only when this argument (a pointer) is non-NULL: `sendto` with an address,
    /// `utimensat` with a path.
    ArgNonNull(u8),
    /// Not for an `fstat` of an open fd: a `dirfd` other than `AT_FDCWD` with
    /// `AT_EMPTY_PATH` in `flags` (glibc's and Rust's `fstat`, a third of the stat calls of
    /// a typical program). Its file was recorded when it was opened. The filter cannot read
    /// the path, so the rare `fstatat(dirfd, "name", AT_EMPTY_PATH)` goes unrecorded too.
    UnlessFdStat {
        dirfd: u8,
        flags: u8,
    },
}

/// The directory a relative path is resolved against.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dir {
    Cwd,
    /// A dirfd argument (`AT_FDCWD` means the cwd).
    Arg(u8),
}

/// Whether an empty path names the dirfd itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Empty {
    Never,
    /// With `AT_EMPTY_PATH` in this flags argument.
    Flag(u8),
    /// Always (`readlinkat`).
    Always,
}

/// How to read an open's flags.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Flags {
    Arg(u8),
    /// `creat`: write and create.
    Creat,
    /// `openat2`: `open_how.flags` at this pointer argument.
    How(u8),
}

/// How the fast mode learns a call's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A read-only lookup: the tracer looks the path up itself at entry (see
    /// [`crate::check`]) and resumes without an exit stop.
    Check(Follow),
    /// An open: checked like a lookup when read-only, else [`Outcome::Intent`].
    Open,
    /// An exec: a missing program is checked at entry (PATH probes); one that exists takes the
    /// exit stop, so a refused exec (EACCES, ENOEXEC) is seen.
    Exec,
    /// A change (or a write open): recorded as attempted (`errno: None`), no exit stop.
    Intent,
    /// The result cannot be checked (a connect's errno, a socket's new fd): exit stop.
    Exit,
}

/// Whether a checked lookup follows a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    Yes,
    No,
    /// Unless this flags argument has `AT_SYMLINK_NOFOLLOW`.
    UnlessFlag(u8),
}

/// What a call's arguments mean.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Open {
        dir: Dir,
        path: u8,
        flags: Flags,
    },
    Exec {
        dir: Dir,
        path: u8,
        argv: u8,
        empty: Empty,
    },
    /// One path, looked up (`Op::Stat`) or changed (`Op::Change`).
    Path {
        op: Op,
        dir: Dir,
        path: u8,
        empty: Empty,
    },
    /// rename/link: the old path (`old_op`) and the new one (changed).
    Two {
        old_op: Op,
        old_dir: Dir,
        old: u8,
        new_dir: Dir,
        new: u8,
        empty: Empty,
    },
    /// symlink: only the link's own path is a path.
    Symlink {
        dir: Dir,
        path: u8,
    },
    Connect,
    SendTo,
    SendMsg,
    Socket,
    /// fchdir, setns, pivot_root: no path to record, but the cwd may have moved.
    MovesCwd,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    pub nr: i64,
    pub when: Traced,
    pub kind: Kind,
    pub outcome: Outcome,
    /// The call may change the cwd of the caller (and of the threads sharing it): the
    /// tracer's cached cwds are dropped.
    pub moves_cwd: bool,
}

const fn call(nr: libc::c_long, kind: Kind) -> Call {
    let outcome = match kind {
        Kind::Open { .. } => Outcome::Open,
        Kind::Exec { .. } => Outcome::Exec,
        Kind::Path { op: Op::Stat, .. } => Outcome::Check(Follow::Yes),
        Kind::Path { .. } | Kind::Two { .. } | Kind::Symlink { .. } | Kind::MovesCwd => {
            Outcome::Intent
        }
        Kind::Connect | Kind::SendTo | Kind::SendMsg | Kind::Socket => Outcome::Exit,
    };
    Call {
        nr: nr as i64,
        when: Traced::Always,
        kind,
        outcome,
        moves_cwd: matches!(kind, Kind::MovesCwd),
    }
}

/// A lookup that does not follow a final symlink (or only without `AT_SYMLINK_NOFOLLOW`).
const fn nofollow(mut c: Call, follow: Follow) -> Call {
    c.outcome = Outcome::Check(follow);
    c
}

const fn when(mut c: Call, when: Traced) -> Call {
    c.when = when;
    c
}

const fn moves_cwd(mut c: Call) -> Call {
    c.moves_cwd = true;
    c
}

const STAT: Op = Op::Stat;
const CHANGE: Op = Op::Change;

const fn look(op: Op, path: u8) -> Kind {
    Kind::Path {
        op,
        dir: Dir::Cwd,
        path,
        empty: Empty::Never,
    }
}

const fn look_at(op: Op, path: u8, empty: Empty) -> Kind {
    Kind::Path {
        op,
        dir: Dir::Arg(0),
        path,
        empty,
    }
}

const fn two(old_op: Op, empty: Empty) -> Kind {
    Kind::Two {
        old_op,
        old_dir: Dir::Arg(0),
        old: 1,
        new_dir: Dir::Arg(2),
        new: 3,
        empty,
    }
}

use libc::*;

/// Every traced syscall.
pub(crate) const TRACED: &[Call] = &[
    #[cfg(target_arch = "x86_64")]
    call(
        SYS_open,
        Kind::Open {
            dir: Dir::Cwd,
            path: 0,
            flags: Flags::Arg(1),
        },
    ),
    #[cfg(target_arch = "x86_64")]
    call(
        SYS_creat,
        Kind::Open {
            dir: Dir::Cwd,
            path: 0,
            flags: Flags::Creat,
        },
    ),
    call(
        SYS_openat,
        Kind::Open {
            dir: Dir::Arg(0),
            path: 1,
            flags: Flags::Arg(2),
        },
    ),
    call(
        SYS_openat2,
        Kind::Open {
            dir: Dir::Arg(0),
            path: 1,
            flags: Flags::How(2),
        },
    ),
    call(
        SYS_execve,
        Kind::Exec {
            dir: Dir::Cwd,
            path: 0,
            argv: 1,
            empty: Empty::Never,
        },
    ),
    call(
        SYS_execveat,
        Kind::Exec {
            dir: Dir::Arg(0),
            path: 1,
            argv: 2,
            empty: Empty::Flag(4),
        },
    ),
    #[cfg(target_arch = "x86_64")]
    call(SYS_stat, look(STAT, 0)),
    #[cfg(target_arch = "x86_64")]
    nofollow(call(SYS_lstat, look(STAT, 0)), Follow::No),
    #[cfg(target_arch = "x86_64")]
    call(SYS_access, look(STAT, 0)),
    #[cfg(target_arch = "x86_64")]
    nofollow(call(SYS_readlink, look(STAT, 0)), Follow::No),
    when(
        nofollow(
            call(SYS_newfstatat, look_at(STAT, 1, Empty::Flag(3))),
            Follow::UnlessFlag(3),
        ),
        Traced::UnlessFdStat { dirfd: 0, flags: 3 },
    ),
    when(
        nofollow(
            call(SYS_statx, look_at(STAT, 1, Empty::Flag(2))),
            Follow::UnlessFlag(2),
        ),
        Traced::UnlessFdStat { dirfd: 0, flags: 2 },
    ),
    call(SYS_faccessat, look_at(STAT, 1, Empty::Never)),
    nofollow(
        call(SYS_faccessat2, look_at(STAT, 1, Empty::Flag(3))),
        Follow::UnlessFlag(3),
    ),
    nofollow(
        call(SYS_readlinkat, look_at(STAT, 1, Empty::Always)),
        Follow::No,
    ),
    call(SYS_statfs, look(STAT, 0)),
    moves_cwd(call(SYS_chdir, look(STAT, 0))),
    call(SYS_fchdir, Kind::MovesCwd),
    call(SYS_setns, Kind::MovesCwd),
    call(SYS_pivot_root, Kind::MovesCwd),
    #[cfg(target_arch = "x86_64")]
    call(SYS_mkdir, look(CHANGE, 0)),
    call(SYS_mkdirat, look_at(CHANGE, 1, Empty::Never)),
    #[cfg(target_arch = "x86_64")]
    call(SYS_rmdir, look(CHANGE, 0)),
    #[cfg(target_arch = "x86_64")]
    call(SYS_unlink, look(CHANGE, 0)),
    call(SYS_unlinkat, look_at(CHANGE, 1, Empty::Never)),
    #[cfg(target_arch = "x86_64")]
    call(
        SYS_rename,
        Kind::Two {
            old_op: CHANGE,
            old_dir: Dir::Cwd,
            old: 0,
            new_dir: Dir::Cwd,
            new: 1,
            empty: Empty::Never,
        },
    ),
    #[cfg(target_arch = "x86_64")]
    call(SYS_renameat, two(CHANGE, Empty::Never)),
    call(SYS_renameat2, two(CHANGE, Empty::Never)),
    #[cfg(target_arch = "x86_64")]
    call(
        SYS_link,
        Kind::Two {
            old_op: STAT,
            old_dir: Dir::Cwd,
            old: 0,
            new_dir: Dir::Cwd,
            new: 1,
            empty: Empty::Never,
        },
    ),
    call(SYS_linkat, two(STAT, Empty::Flag(4))),
    #[cfg(target_arch = "x86_64")]
    call(
        SYS_symlink,
        Kind::Symlink {
            dir: Dir::Cwd,
            path: 1,
        },
    ),
    call(
        SYS_symlinkat,
        Kind::Symlink {
            dir: Dir::Arg(1),
            path: 2,
        },
    ),
    call(SYS_truncate, look(CHANGE, 0)),
    #[cfg(target_arch = "x86_64")]
    call(SYS_chmod, look(CHANGE, 0)),
    call(SYS_fchmodat, look_at(CHANGE, 1, Empty::Never)),
    call(SYS_fchmodat2, look_at(CHANGE, 1, Empty::Flag(3))),
    #[cfg(target_arch = "x86_64")]
    call(SYS_chown, look(CHANGE, 0)),
    #[cfg(target_arch = "x86_64")]
    call(SYS_lchown, look(CHANGE, 0)),
    call(SYS_fchownat, look_at(CHANGE, 1, Empty::Flag(4))),
    when(
        call(SYS_utimensat, look_at(CHANGE, 1, Empty::Never)),
        Traced::ArgNonNull(1),
    ),
    call(SYS_socket, Kind::Socket),
    call(SYS_connect, Kind::Connect),
    when(call(SYS_sendto, Kind::SendTo), Traced::ArgNonNull(4)),
    call(SYS_sendmsg, Kind::SendMsg),
];

/// The table entry of a syscall number.
pub(crate) fn lookup(nr: i64) -> Option<&'static Call> {
    TRACED.iter().find(|c| c.nr == nr)
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
