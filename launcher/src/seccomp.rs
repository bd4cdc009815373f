//! The seccomp policy as data, compiled in the parent into BPF programs that the child applies
//! last, just before exec. A denylist (desktop apps break under tight allowlists, as Flatpak
//! found), with guards for what denylists miss: the x32 ABI and syscall numbers above the known
//! table get ENOSYS, and foreign architectures are killed by seccompiler's arch check.
//!
//! Errnos are chosen so apps cope: EPERM where policy refuses (what unprivileged callers get
//! anyway), ENOSYS where userspace has a fallback (clone3 → clone, io_uring → epoll, the new
//! mount API), EAFNOSUPPORT for socket families.
//!
//! The policy depends on the network ([`NetFilter`]). With a private network namespace or the
//! host's network granted in full there is nothing more to refuse. With TCP limited to ports
//! ([`NetFilter::TcpPorts`]) the app shares the host's network while Landlock checks only plain
//! TCP bind and connect, so the policy closes what Landlock does not see ([`NetGap`], trust.md
//! §4):
//! - inet and inet6 sockets of a type other than `SOCK_STREAM` (compared as `type & 0xf`, below
//!   the SOCK_NONBLOCK and SOCK_CLOEXEC bits: UDP, UDP-Lite, ping, raw, SCTP's seqpacket), and
//!   stream sockets of a protocol other than 0 or TCP (MPTCP, SCTP, SMC): EPROTONOSUPPORT, the
//!   kernel's answer when a protocol is not built in, which Go (MPTCP by default since 1.24)
//!   and other MPTCP users take as "fall back to TCP". DNS then goes over TCP (`use-vc`).
//! - TCP Fast Open, which connects without the connect hook Landlock checks: `sendto`,
//!   `sendmsg` and `sendmmsg` with MSG_FASTOPEN in their flags argument (the kernel takes the
//!   send flags from that argument, never from the msghdr, which seccomp cannot read), and
//!   `setsockopt(IPPROTO_TCP, TCP_FASTOPEN_CONNECT)`: EPERM, like the other refusals by policy.
//!
//! The policy also depends on the user ([`Ids`], in `ids`): the id calls (`setuid`, `setresgid`,
//! `setgroups`, ...) and the `chown` family get EPERM for any id but the user's own or -1, which
//! is the host's answer where the sandbox's one-id user namespace would say EINVAL. So the
//! policy is compiled per run, in the parent (a fraction of a millisecond).
//!
//! `socketpair` is unix-only, `socketcall` does not exist on x86_64 and aarch64 (the i386 ABI
//! is killed), and io_uring, which could create and send on sockets, gets ENOSYS in every mode.
//!
//! Filters, one per action: EPERM (with the id rules, and the Fast Open rules under TcpPorts),
//! ENOSYS, EAFNOSUPPORT, and under TcpPorts a fifth, EPROTONOSUPPORT, for the inet socket rules.
//! No syscall with given arguments is matched by two filters: `socket` is in two, for disjoint
//! families, and the id and `chown` syscalls are in the EPERM filter alone. Because they are disjoint, the child loads them as one program ([`chain`]): each
//! filter's "allow" becomes a jump to the next filter, so the first filter that refuses a call
//! decides, which is what the kernel's chain of separate filters would return. One program is
//! one load and one JIT instead of four or five, and one pass per syscall.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

use crate::error::LaunchError;

mod ids;
pub use ids::Ids;

/// Highest syscall number this policy knows (x86_64 and aarch64 share the new numbers:
/// 469 is `file_setattr`, Linux 6.17). Anything above gets ENOSYS, like runc does.
pub const MAX_KNOWN_SYSCALL: u32 = 469;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;

/// Syscalls refused with EPERM whatever their arguments.
fn eperm_syscalls() -> Vec<(&'static str, i64)> {
    let mut v = vec![
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("chroot", libc::SYS_chroot),
        ("add_key", libc::SYS_add_key),
        ("keyctl", libc::SYS_keyctl),
        ("request_key", libc::SYS_request_key),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("lookup_dcookie", libc::SYS_lookup_dcookie),
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ("acct", libc::SYS_acct),
        ("quotactl", libc::SYS_quotactl),
        ("quotactl_fd", libc::SYS_quotactl_fd),
        ("syslog", libc::SYS_syslog),
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("reboot", libc::SYS_reboot),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("settimeofday", libc::SYS_settimeofday),
        ("clock_settime", libc::SYS_clock_settime),
        ("sethostname", libc::SYS_sethostname),
        ("setdomainname", libc::SYS_setdomainname),
        ("vhangup", libc::SYS_vhangup),
        ("fanotify_init", libc::SYS_fanotify_init),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("mbind", libc::SYS_mbind),
        ("set_mempolicy", libc::SYS_set_mempolicy),
        ("get_mempolicy", libc::SYS_get_mempolicy),
        ("migrate_pages", libc::SYS_migrate_pages),
        ("move_pages", libc::SYS_move_pages),
        ("set_mempolicy_home_node", libc::SYS_set_mempolicy_home_node),
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        ("modify_ldt", libc::SYS_modify_ldt),
        ("iopl", libc::SYS_iopl),
        ("ioperm", libc::SYS_ioperm),
        ("uselib", libc::SYS_uselib),
        ("_sysctl", libc::SYS__sysctl),
        ("ustat", libc::SYS_ustat),
        ("sysfs", libc::SYS_sysfs),
        ("nfsservctl", libc::SYS_nfsservctl),
    ]);
    v
}

/// Syscalls answered with ENOSYS (userspace falls back).
fn enosys_syscalls() -> Vec<(&'static str, i64)> {
    vec![
        ("clone3", libc::SYS_clone3),
        ("open_tree", libc::SYS_open_tree),
        ("open_tree_attr", 467),
        ("move_mount", libc::SYS_move_mount),
        ("fsopen", libc::SYS_fsopen),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsmount", libc::SYS_fsmount),
        ("fspick", libc::SYS_fspick),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
    ]
}

/// Socket families allowed: AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK.
pub const ALLOWED_FAMILIES: &[u64] = &[0, 1, 2, 10, 16];
/// `personality` values allowed (Docker's list; glibc queries with 0xffffffff).
const ALLOWED_PERSONAS: &[u64] = &[0, 8, 0x20000, 0x20008, 0xffff_ffff];
/// Namespace flags refused in `clone` (Docker's 0x7E020000 mask, one rule per flag).
const CLONE_NEW_FLAGS: &[u64] = &[
    0x1000_0000,
    0x0002_0000,
    0x2000_0000,
    0x4000_0000,
    0x0800_0000,
    0x0400_0000,
    0x0200_0000,
];

/// Socket families whose sockets [`NetFilter::TcpPorts`] limits to TCP: AF_INET, AF_INET6.
const INET_FAMILIES: &[u64] = &[libc::AF_INET as u64, libc::AF_INET6 as u64];
/// The socket type's bits of `socket`'s type argument (SOCK_TYPE_MASK); above them are
/// SOCK_NONBLOCK and SOCK_CLOEXEC.
const SOCK_TYPE_MASK: u64 = 0xf;
const SOCK_STREAM: u64 = libc::SOCK_STREAM as u64;
/// The protocols a stream socket may name: the default and TCP.
const TCP_PROTOCOLS: &[u64] = &[0, libc::IPPROTO_TCP as u64];
const MSG_FASTOPEN: u64 = 0x2000_0000;
const TCP_FASTOPEN_CONNECT: u64 = 30;

/// The sandbox's network, which decides what the policy must refuse on sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFilter {
    /// Its own network namespace with only loopback: nothing more to refuse.
    Private,
    /// The host's network, granted in full: nothing more to refuse.
    Host,
    /// The host's network with Landlock limiting TCP to ports: refuse what Landlock misses.
    TcpPorts,
}

/// A way around Landlock's TCP port rules that the policy closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetGap {
    /// Inet sockets other than stream ones: UDP, UDP-Lite, ping, raw, SCTP seqpacket.
    NonStreamSockets,
    /// Inet stream sockets of a protocol other than TCP: MPTCP, SCTP, SMC.
    NonTcpStreams,
    /// `sendto`, `sendmsg` and `sendmmsg` with MSG_FASTOPEN, which connect unchecked.
    FastOpenSend,
    /// `setsockopt(IPPROTO_TCP, TCP_FASTOPEN_CONNECT)`.
    FastOpenConnect,
}

impl NetFilter {
    /// The gaps the policy closes for this network.
    pub fn closed_gaps(self) -> &'static [NetGap] {
        match self {
            NetFilter::Private | NetFilter::Host => &[],
            NetFilter::TcpPorts => &[
                NetGap::NonStreamSockets,
                NetGap::NonTcpStreams,
                NetGap::FastOpenSend,
                NetGap::FastOpenConnect,
            ],
        }
    }
}

/// The compiled filters, in the order they are applied.
#[derive(Debug, Clone)]
pub struct SeccompPolicy {
    /// The filters, in the order they are chained (the guard first).
    pub programs: Vec<BpfProgram>,
    /// All of `programs` as one program, which the child loads.
    pub chained: BpfProgram,
    /// One line per filter, for `--report`.
    pub summary: Vec<String>,
    /// The network the policy was compiled for; [`NetFilter::closed_gaps`] says what it closes.
    pub net: NetFilter,
}

fn arch() -> Result<(TargetArch, u32), LaunchError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok((TargetArch::x86_64, 0xC000_003E)),
        "aarch64" => Ok((TargetArch::aarch64, 0xC000_00B7)),
        other => Err(LaunchError::Seccomp(format!(
            "no seccomp policy for {other}"
        ))),
    }
}

fn err(e: impl std::fmt::Display) -> LaunchError {
    LaunchError::Seccomp(e.to_string())
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The hand-written guard: foreign arch → kill; x32 bit or a number above the table → ENOSYS.
fn guard(audit_arch: u32) -> BpfProgram {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const JGE_K: u16 = 0x35;
    const JGT_K: u16 = 0x25;
    const RET_K: u16 = 0x06;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    let enosys = 0x0005_0000 | libc::ENOSYS as u32;
    let x32 = cfg!(target_arch = "x86_64");
    vec![
        stmt(LD_W_ABS, 4),             // A = arch
        jump(JEQ_K, audit_arch, 1, 0), // native? skip the kill
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, 0), // A = syscall number
        jump(JGE_K, if x32 { X32_SYSCALL_BIT } else { u32::MAX }, 2, 0),
        jump(JGT_K, MAX_KNOWN_SYSCALL, 1, 0),
        stmt(RET_K, RET_ALLOW),
        stmt(RET_K, enosys),
    ]
}

/// `programs` as one program: in each but the last, every `return ALLOW` becomes a jump to
/// the next program's first instruction (one instruction for one, so every jump inside a
/// program keeps its target). The result refuses what the first refusing program refuses.
pub fn chain(programs: &[BpfProgram]) -> BpfProgram {
    const RET_K: u16 = 0x06;
    const JMP_JA: u16 = 0x05;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let mut out = Vec::with_capacity(programs.iter().map(Vec::len).sum());
    for (i, p) in programs.iter().enumerate() {
        let last = i + 1 == programs.len();
        for (j, ins) in p.iter().enumerate() {
            if !last && ins.code == RET_K && ins.k == RET_ALLOW {
                out.push(stmt(JMP_JA, (p.len() - j - 1) as u32));
            } else {
                out.push(jump(ins.code, ins.k, ins.jt, ins.jf));
            }
        }
    }
    out
}

fn filter(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    errno: i32,
    target: TargetArch,
) -> Result<BpfProgram, LaunchError> {
    let f = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        target,
    )
    .map_err(err)?;
    f.try_into().map_err(err)
}

/// A condition on the low 32 bits of argument `arg` (every argument filtered here is an int).
fn dword(arg: u8, op: Op, value: u64) -> Result<Cond, LaunchError> {
    Cond::new(arg, Len::Dword, op, value).map_err(err)
}

fn rule(conditions: Vec<Cond>) -> Result<SeccompRule, LaunchError> {
    SeccompRule::new(conditions).map_err(err)
}

/// The EPERM filter's rules: [`eperm_syscalls`], namespace flags in `clone`, terminal
/// injection ioctls, personalities, ids other than the user's, and Fast Open when `net` limits
/// TCP to ports.
fn eperm_rules(net: NetFilter, user: Ids) -> Result<BTreeMap<i64, Vec<SeccompRule>>, LaunchError> {
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = eperm_syscalls()
        .into_iter()
        .map(|(_, nr)| (nr, vec![]))
        .collect();
    let clone_rules = CLONE_NEW_FLAGS
        .iter()
        .map(|f| {
            rule(vec![
                Cond::new(0, Len::Qword, Op::MaskedEq(*f), *f).map_err(err)?
            ])
        })
        .collect::<Result<Vec<_>, _>>()?;
    eperm.insert(libc::SYS_clone, clone_rules);
    let ioctl_rules = [TIOCSTI, TIOCLINUX]
        .iter()
        .map(|cmd| rule(vec![dword(1, Op::Eq, *cmd)?]))
        .collect::<Result<Vec<_>, _>>()?;
    eperm.insert(libc::SYS_ioctl, ioctl_rules);
    let persona = ALLOWED_PERSONAS
        .iter()
        .map(|v| dword(0, Op::Ne, *v))
        .collect::<Result<Vec<_>, _>>()?;
    eperm.insert(libc::SYS_personality, vec![rule(persona)?]);
    eperm.extend(ids::rules(user)?);
    if net == NetFilter::TcpPorts {
        eperm.extend(fastopen_rules()?);
    }
    Ok(eperm)
}

/// Fast Open: MSG_FASTOPEN in the send calls' flags argument, and TCP_FASTOPEN_CONNECT.
fn fastopen_rules() -> Result<Vec<(i64, Vec<SeccompRule>)>, LaunchError> {
    let flag = |arg| -> Result<Vec<SeccompRule>, LaunchError> {
        Ok(vec![rule(vec![dword(
            arg,
            Op::MaskedEq(MSG_FASTOPEN),
            MSG_FASTOPEN,
        )?])?])
    };
    let tcp = libc::IPPROTO_TCP as u64;
    let connect = rule(vec![
        dword(1, Op::Eq, tcp)?,
        dword(2, Op::Eq, TCP_FASTOPEN_CONNECT)?,
    ])?;
    Ok(vec![
        (libc::SYS_sendto, flag(3)?),
        (libc::SYS_sendmsg, flag(2)?),
        (libc::SYS_sendmmsg, flag(3)?),
        (libc::SYS_setsockopt, vec![connect]),
    ])
}

/// The EPROTONOSUPPORT filter's rules: an inet socket other than `SOCK_STREAM` (one rule per
/// other value of the type bits), or a stream one with a protocol other than 0 or TCP.
fn inet_socket_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, LaunchError> {
    let mut rules = Vec::new();
    for family in INET_FAMILIES {
        for ty in (0..=SOCK_TYPE_MASK).filter(|t| *t != SOCK_STREAM) {
            rules.push(rule(vec![
                dword(0, Op::Eq, *family)?,
                dword(1, Op::MaskedEq(SOCK_TYPE_MASK), ty)?,
            ])?);
        }
        let mut stream = vec![
            dword(0, Op::Eq, *family)?,
            dword(1, Op::MaskedEq(SOCK_TYPE_MASK), SOCK_STREAM)?,
        ];
        for p in TCP_PROTOCOLS {
            stream.push(dword(2, Op::Ne, *p)?);
        }
        rules.push(rule(stream)?);
    }
    Ok(BTreeMap::from([(libc::SYS_socket, rules)]))
}

impl SeccompPolicy {
    /// Compiles the policy for the sandbox's network and the user's ids.
    pub fn compile(net: NetFilter, user: Ids) -> Result<Self, LaunchError> {
        let (target, audit_arch) = arch()?;
        let enosys: BTreeMap<i64, Vec<SeccompRule>> = enosys_syscalls()
            .into_iter()
            .map(|(_, nr)| (nr, vec![]))
            .collect();
        let families = ALLOWED_FAMILIES
            .iter()
            .map(|v| dword(0, Op::Ne, *v))
            .collect::<Result<Vec<_>, _>>()?;
        let afno = BTreeMap::from([(libc::SYS_socket, vec![rule(families)?])]);

        let eperm_names: Vec<&str> = eperm_syscalls().into_iter().map(|(n, _)| n).collect();
        let enosys_names: Vec<&str> = enosys_syscalls().into_iter().map(|(n, _)| n).collect();
        let fastopen = if net == NetFilter::TcpPorts {
            "sendto/sendmsg/sendmmsg with MSG_FASTOPEN, setsockopt TCP_FASTOPEN_CONNECT (network=tcp: Fast Open connects past Landlock), "
        } else {
            ""
        };
        let mut programs = vec![
            guard(audit_arch),
            filter(eperm_rules(net, user)?, libc::EPERM, target)?,
            filter(enosys, libc::ENOSYS, target)?,
            filter(afno, libc::EAFNOSUPPORT, target)?,
        ];
        let mut summary = vec![
            format!("foreign architectures: killed; x32 ABI and syscalls above {MAX_KNOWN_SYSCALL}: ENOSYS"),
            format!(
                "EPERM: clone with namespace flags, ioctl TIOCSTI/TIOCLINUX (low 32 bits), personality other than {}, {}, {fastopen}{}",
                "0/8/0x20000/0x20008/query",
                ids::summary(user),
                eperm_names.join(" ")
            ),
            format!("ENOSYS: {}", enosys_names.join(" ")),
            "EAFNOSUPPORT: socket families other than unix, inet, inet6, netlink".into(),
        ];
        if net == NetFilter::TcpPorts {
            programs.push(filter(inet_socket_rules()?, libc::EPROTONOSUPPORT, target)?);
            summary.push("EPROTONOSUPPORT (network=tcp, which Landlock checks only for plain TCP): inet and inet6 sockets other than SOCK_STREAM with protocol 0 or TCP (no UDP, raw, MPTCP, SCTP)".into());
        }
        let chained = chain(&programs);
        Ok(Self {
            programs,
            chained,
            summary,
            net,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd;

    use nix::errno::Errno;
    use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType};

    /// The ids the policy is compiled for in these tests (the id rules have their own).
    const USER: Ids = Ids {
        uid: 1000,
        gid: 1000,
    };

    #[test]
    fn compiles_four_filters_without_port_limits() {
        for net in [NetFilter::Private, NetFilter::Host] {
            let p = SeccompPolicy::compile(net, USER).unwrap();
            assert_eq!((p.programs.len(), p.summary.len()), (4, 4));
            assert!(p.programs.iter().all(|f| !f.is_empty() && f.len() < 4096));
            assert!(p.summary[1].contains("ptrace") && p.summary[2].contains("clone3"));
            assert!(!p.summary.concat().contains("MSG_FASTOPEN"));
            assert_eq!((p.net, p.net.closed_gaps()), (net, &[][..]));
        }
    }

    #[test]
    fn port_limits_add_the_network_filter_and_fast_open_rules() {
        let open = SeccompPolicy::compile(NetFilter::Host, USER).unwrap();
        let p = SeccompPolicy::compile(NetFilter::TcpPorts, USER).unwrap();
        assert_eq!((p.programs.len(), p.summary.len()), (5, 5));
        assert!(p.programs.iter().all(|f| !f.is_empty() && f.len() < 4096));
        assert!(p.programs[1].len() > open.programs[1].len());
        assert!(p.summary[1].contains("MSG_FASTOPEN") && p.summary[1].contains("ptrace"));
        assert!(p.summary[4].starts_with("EPROTONOSUPPORT"));
        assert_eq!(p.net.closed_gaps().len(), 4);
    }

    #[test]
    fn the_chained_program_refuses_what_each_filter_refuses() {
        for net in [NetFilter::Private, NetFilter::TcpPorts] {
            let p = SeccompPolicy::compile(net, USER).unwrap();
            let total: usize = p.programs.iter().map(Vec::len).sum();
            assert_eq!(p.chained.len(), total);
            assert!(p.chained.len() < 4096);
            let chained = p.chained.clone();
            std::thread::spawn(move || {
                seccompiler::apply_filter(&chained).unwrap();
                let unshare = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS);
                assert_eq!(unshare, Err(Errno::EPERM), "the EPERM filter");
                // SAFETY: io_uring_setup with a null params pointer: refused before it is read.
                let r = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, 0) };
                assert_eq!((r, Errno::last()), (-1, Errno::ENOSYS), "the ENOSYS filter");
                let packet = socket::socket(
                    AddressFamily::Packet,
                    SockType::Raw,
                    SockFlag::empty(),
                    None,
                );
                assert_eq!(
                    packet.err(),
                    Some(Errno::EAFNOSUPPORT),
                    "the socket families"
                );
                // SAFETY: a syscall number above the table, with no arguments.
                let r = unsafe { libc::syscall(MAX_KNOWN_SYSCALL as i64 + 20) };
                assert_eq!((r, Errno::last()), (-1, Errno::ENOSYS), "the guard");
                if net == NetFilter::TcpPorts {
                    let udp = inet(SockType::Datagram, SockFlag::empty(), None);
                    assert_eq!(udp, Errno::EPROTONOSUPPORT, "the inet socket filter");
                }
                // Everything else still works after every filter allowed it.
                assert!(std::fs::read("/proc/self/status").is_ok());
                assert!(TcpListener::bind("127.0.0.1:0").is_ok());
            })
            .join()
            .unwrap();
        }
    }

    #[test]
    fn deny_sets_are_disjoint() {
        let a: Vec<i64> = eperm_syscalls().into_iter().map(|(_, n)| n).collect();
        assert!(enosys_syscalls().iter().all(|(_, n)| !a.contains(n)));
        // The network rules touch no syscall either list refuses outright.
        let fastopen: Vec<i64> = fastopen_rules()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(fastopen.len(), 4);
        let id_calls: Vec<i64> = ids::syscalls().into_iter().map(|(_, n)| n).collect();
        assert!(id_calls.iter().all(|n| !fastopen.contains(n)));
        for n in fastopen.iter().chain(&id_calls).chain([&libc::SYS_socket]) {
            assert!(!a.contains(n) && enosys_syscalls().iter().all(|(_, e)| e != n));
        }
    }

    /// Applies `net`'s EPERM and network filters to a new thread (seccomp filters are
    /// per thread) and runs `checks` there.
    fn filtered(net: NetFilter, checks: impl FnOnce() + Send + 'static) {
        let p = SeccompPolicy::compile(net, USER).unwrap();
        std::thread::spawn(move || {
            // The EPERM filter and, under TcpPorts, the EPROTONOSUPPORT one.
            for prog in [1, 4].iter().filter_map(|i| p.programs.get(*i)) {
                seccompiler::apply_filter(prog).unwrap();
            }
            checks();
        })
        .join()
        .unwrap();
    }

    fn inet(ty: SockType, flags: SockFlag, proto: Option<socket::SockProtocol>) -> Errno {
        socket::socket(AddressFamily::Inet, ty, flags, proto)
            .err()
            .unwrap_or(Errno::UnknownErrno)
    }

    /// A TCP socket before connect, where TCP_FASTOPEN_CONNECT is valid.
    fn unconnected_tcp() -> std::os::fd::OwnedFd {
        socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap()
    }

    #[test]
    fn port_limits_refuse_non_tcp_sockets_and_fast_open() {
        filtered(NetFilter::TcpPorts, || {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap_err();
            assert_eq!(udp.raw_os_error(), Some(libc::EPROTONOSUPPORT));
            let nonblock = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
            assert_eq!(
                inet(SockType::Datagram, nonblock, None),
                Errno::EPROTONOSUPPORT
            );
            let sctp = Some(socket::SockProtocol::Sctp);
            assert_eq!(
                inet(SockType::SeqPacket, SockFlag::empty(), sctp),
                Errno::EPROTONOSUPPORT
            );
            assert_eq!(
                inet(SockType::Stream, SockFlag::empty(), sctp),
                Errno::EPROTONOSUPPORT
            );
            // Plain TCP, and the unix sockets apps talk over, still work.
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = socket::SockaddrIn::from(match l.local_addr().unwrap() {
                std::net::SocketAddr::V4(a) => a,
                other => panic!("{other}"),
            });
            let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            s.set_nodelay(true).unwrap();
            std::os::unix::net::UnixStream::pair().unwrap();
            assert_eq!(
                socket::setsockopt(&unconnected_tcp(), sockopt::TcpFastOpenConnect, &true),
                Err(Errno::EPERM)
            );
            let fastopen = MsgFlags::from_bits_retain(MSG_FASTOPEN as i32);
            let fd = s.as_raw_fd();
            assert_eq!(socket::sendto(fd, b"x", &addr, fastopen), Err(Errno::EPERM));
            let iov = [std::io::IoSlice::new(b"x")];
            assert_eq!(
                socket::sendmsg(fd, &iov, &[], fastopen, Some(&addr)),
                Err(Errno::EPERM)
            );
            assert_eq!(socket::send(fd, b"x", MsgFlags::empty()), Ok(1));
        });
    }

    #[test]
    fn without_port_limits_the_same_calls_work() {
        filtered(NetFilter::Host, || {
            UdpSocket::bind("127.0.0.1:0").unwrap();
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            TcpStream::connect(l.local_addr().unwrap()).unwrap();
            socket::setsockopt(&unconnected_tcp(), sockopt::TcpFastOpenConnect, &true).unwrap();
        });
    }
}
