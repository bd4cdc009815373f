//! The seccomp policy as data, compiled in the parent into BPF programs that the child applies
//! last, just before exec. A denylist (desktop apps break under tight allowlists, as Flatpak
//! found), with guards for what denylists miss: the x32 ABI and syscall numbers above the known
//! table get ENOSYS, and foreign architectures are killed by seccompiler's arch check.
//!
//! Errnos are chosen so apps cope: EPERM where policy refuses (what unprivileged callers get
//! anyway), ENOSYS where userspace has a fallback (clone3 → clone, io_uring → epoll, the new
//! mount API), EAFNOSUPPORT for socket families. Four filters, one per action; their deny sets
//! are disjoint.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

use crate::error::LaunchError;

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

/// The compiled filters, in the order they are applied.
#[derive(Debug, Clone)]
pub struct SeccompPolicy {
    pub programs: Vec<BpfProgram>,
    /// One line per filter, for `--report`.
    pub summary: Vec<String>,
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

impl SeccompPolicy {
    /// Compiles the default policy.
    pub fn compile() -> Result<Self, LaunchError> {
        let (target, audit_arch) = arch()?;
        let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = eperm_syscalls()
            .into_iter()
            .map(|(_, nr)| (nr, vec![]))
            .collect();
        let clone_rules = CLONE_NEW_FLAGS
            .iter()
            .map(|f| {
                SeccompRule::new(vec![
                    Cond::new(0, Len::Qword, Op::MaskedEq(*f), *f).map_err(err)?
                ])
                .map_err(err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        eperm.insert(libc::SYS_clone, clone_rules);
        let ioctl_rules = [TIOCSTI, TIOCLINUX]
            .iter()
            .map(|cmd| {
                SeccompRule::new(vec![Cond::new(1, Len::Dword, Op::Eq, *cmd).map_err(err)?])
                    .map_err(err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        eperm.insert(libc::SYS_ioctl, ioctl_rules);
        let persona = ALLOWED_PERSONAS
            .iter()
            .map(|v| Cond::new(0, Len::Dword, Op::Ne, *v).map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        eperm.insert(
            libc::SYS_personality,
            vec![SeccompRule::new(persona).map_err(err)?],
        );

        let enosys: BTreeMap<i64, Vec<SeccompRule>> = enosys_syscalls()
            .into_iter()
            .map(|(_, nr)| (nr, vec![]))
            .collect();
        let families = ALLOWED_FAMILIES
            .iter()
            .map(|v| Cond::new(0, Len::Dword, Op::Ne, *v).map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        let mut afno = BTreeMap::new();
        afno.insert(
            libc::SYS_socket,
            vec![SeccompRule::new(families).map_err(err)?],
        );

        let eperm_names: Vec<&str> = eperm_syscalls().into_iter().map(|(n, _)| n).collect();
        let enosys_names: Vec<&str> = enosys_syscalls().into_iter().map(|(n, _)| n).collect();
        Ok(Self {
            programs: vec![guard(audit_arch), filter(eperm, libc::EPERM, target)?, filter(enosys, libc::ENOSYS, target)?, filter(afno, libc::EAFNOSUPPORT, target)?],
            summary: vec![
                format!("foreign architectures: killed; x32 ABI and syscalls above {MAX_KNOWN_SYSCALL}: ENOSYS"),
                format!(
                    "EPERM: clone with namespace flags, ioctl TIOCSTI/TIOCLINUX (low 32 bits), personality other than {}, {}",
                    "0/8/0x20000/0x20008/query",
                    eperm_names.join(" ")
                ),
                format!("ENOSYS: {}", enosys_names.join(" ")),
                "EAFNOSUPPORT: socket families other than unix, inet, inet6, netlink".into(),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_four_filters() {
        let p = SeccompPolicy::compile().unwrap();
        assert_eq!(p.programs.len(), 4);
        assert!(p.programs.iter().all(|f| !f.is_empty() && f.len() < 4096));
        assert!(p.summary[1].contains("ptrace") && p.summary[2].contains("clone3"));
    }

    #[test]
    fn deny_sets_are_disjoint() {
        let a: Vec<i64> = eperm_syscalls().into_iter().map(|(_, n)| n).collect();
        assert!(enosys_syscalls().iter().all(|(_, n)| !a.contains(n)));
    }
}
