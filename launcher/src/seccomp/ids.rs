//! The EPERM filter's rules on user and group ids: the host's errno where the sandbox's user
//! namespace would give another.
//!
//! The sandbox maps only the user's own uid and gid, each to itself, so inside it
//! `setuid(65534)` or `chown(f, 65534, -1)` fail with EINVAL (the id has no mapping) where the
//! host answers an unprivileged caller EPERM (the id is not theirs). Apps and their test suites
//! tell "not allowed" from "bad argument" by that errno, so these rules refuse, with EPERM, any
//! id argument that is neither the user's own ([`Ids`]) nor -1 (`0xffffffff`, "unchanged" for
//! `setre*id`, `setres*id` and the `chown` family; for `setuid(-1)` and `setgid(-1)` both the
//! host and the sandbox answer EINVAL, so -1 passes there too). Ids are compared as 32 bits, as
//! the kernel reads `uid_t`.
//!
//! `setgroups` is refused whatever its size: the sandbox denies it (`/proc/self/setgroups`),
//! and an unprivileged host caller gets EPERM for every size, 0 included. `setfsuid` and
//! `setfsgid` need no rule: they never fail, and return the old id both inside and on the host.
//!
//! Where the host would fail for another reason first (a missing path, a bad descriptor), the
//! filter's EPERM comes first: the errno is the host's for every call that names an existing
//! file. The rules depend on the user, so the policy is compiled per run (in the parent).

use std::collections::BTreeMap;

use seccompiler::{SeccompCmpOp as Op, SeccompRule};

use super::{dword, rule};
use crate::error::LaunchError;

/// "Leave this id unchanged" in the id calls and the `chown` family.
const UNCHANGED: u64 = 0xffff_ffff;

/// The user's own ids, the only ones the sandbox maps (to themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// Which of the two ids an argument holds.
#[derive(Debug, Clone, Copy)]
enum Kind {
    User,
    Group,
}

/// The id arguments of a syscall: their positions and which id each holds.
type IdArgs = &'static [(u8, Kind)];

/// `chown`'s and `fchown`'s: the owner, then the group.
const OWNER_GROUP: IdArgs = &[(1, Kind::User), (2, Kind::Group)];

/// Syscalls with id arguments: name, number, and the arguments that hold ids.
fn id_syscalls() -> Vec<(&'static str, i64, IdArgs)> {
    use Kind::{Group as G, User as U};
    let mut v: Vec<(&'static str, i64, IdArgs)> = vec![
        ("setuid", libc::SYS_setuid, &[(0, U)]),
        ("setgid", libc::SYS_setgid, &[(0, G)]),
        ("setreuid", libc::SYS_setreuid, &[(0, U), (1, U)]),
        ("setregid", libc::SYS_setregid, &[(0, G), (1, G)]),
        ("setresuid", libc::SYS_setresuid, &[(0, U), (1, U), (2, U)]),
        ("setresgid", libc::SYS_setresgid, &[(0, G), (1, G), (2, G)]),
        ("fchown", libc::SYS_fchown, OWNER_GROUP),
        ("fchownat", libc::SYS_fchownat, &[(2, U), (3, G)]),
    ];
    // aarch64 has only the descriptor forms.
    #[cfg(target_arch = "x86_64")]
    v.extend([
        ("chown", libc::SYS_chown, OWNER_GROUP),
        ("lchown", libc::SYS_lchown, OWNER_GROUP),
    ]);
    v
}

/// The syscalls [`rules`] filters, for the disjointness checks and the summary.
pub fn syscalls() -> Vec<(&'static str, i64)> {
    let mut v: Vec<_> = id_syscalls()
        .into_iter()
        .map(|(n, nr, _)| (n, nr))
        .collect();
    v.push(("setgroups", libc::SYS_setgroups));
    v
}

/// One rule per id argument: EPERM when it is neither the user's id nor -1.
pub fn rules(ids: Ids) -> Result<BTreeMap<i64, Vec<SeccompRule>>, LaunchError> {
    let mut out = BTreeMap::new();
    for (_, nr, args) in id_syscalls() {
        let per_arg = args
            .iter()
            .map(|(arg, kind)| {
                let own = match kind {
                    Kind::User => ids.uid,
                    Kind::Group => ids.gid,
                };
                rule(vec![
                    dword(*arg, Op::Ne, u64::from(own))?,
                    dword(*arg, Op::Ne, UNCHANGED)?,
                ])
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(nr, per_arg);
    }
    out.insert(libc::SYS_setgroups, vec![]);
    Ok(out)
}

/// The summary's words for these rules.
pub fn summary(ids: Ids) -> String {
    let names: Vec<&str> = syscalls().into_iter().map(|(n, _)| n).collect();
    format!(
        "{} to ids other than uid {} and gid {} (the only ones mapped) or -1, setgroups (EPERM as on the host, not the unmapped id's EINVAL)",
        names[..names.len() - 1].join("/"),
        ids.uid,
        ids.gid
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::{NetFilter, SeccompPolicy};
    use nix::errno::Errno;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    fn own() -> Ids {
        Ids {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }

    /// The errno of a raw syscall (raw: glibc's wrappers would change every thread's ids).
    fn call(nr: i64, a: [u64; 4]) -> Errno {
        // The fifth argument is fchownat's flags: none.
        // SAFETY: id and chown syscalls with integer arguments and, for the path forms, a
        // pointer to a NUL-terminated string that outlives the call.
        let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], 0u64) };
        if r == 0 {
            Errno::UnknownErrno
        } else {
            Errno::last()
        }
    }

    /// Runs `checks` in a new thread under the chained policy compiled for `ids`.
    fn under(ids: Ids, checks: impl FnOnce() + Send + 'static) {
        let p = SeccompPolicy::compile(NetFilter::Private, ids).unwrap();
        std::thread::spawn(move || {
            seccompiler::apply_filter(&p.chained).unwrap();
            checks();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn foreign_ids_get_eperm_own_ids_and_unchanged_pass() {
        let me = own();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let path = CString::new(file.as_os_str().as_bytes()).unwrap();
        let p = path.as_ptr() as u64;
        let (u, g) = (u64::from(me.uid), u64::from(me.gid));
        let other = u64::from(me.uid.wrapping_add(1)).max(1);
        under(me, move || {
            let ok = Errno::UnknownErrno;
            assert_eq!(call(libc::SYS_setuid, [other, 0, 0, 0]), Errno::EPERM);
            assert_eq!(call(libc::SYS_setgid, [65534, 0, 0, 0]), Errno::EPERM);
            let res = libc::SYS_setresuid;
            assert_eq!(call(res, [UNCHANGED, other, UNCHANGED, 0]), Errno::EPERM);
            assert_eq!(call(libc::SYS_setregid, [g, 65534, 0, 0]), Errno::EPERM);
            assert_eq!(call(libc::SYS_setgroups, [0, 0, 0, 0]), Errno::EPERM);
            let at = libc::AT_FDCWD as u64;
            assert_eq!(call(libc::SYS_fchownat, [at, p, other, g]), Errno::EPERM);
            assert_eq!(call(libc::SYS_fchownat, [at, p, u, 65534]), Errno::EPERM);
            // The user's own ids and "unchanged" reach the kernel, which allows them.
            assert_eq!(call(libc::SYS_fchownat, [at, p, u, g]), ok);
            assert_eq!(call(libc::SYS_fchownat, [at, p, UNCHANGED, g]), ok);
            assert_eq!(call(res, [u, UNCHANGED, u, 0]), ok);
            assert_eq!(call(libc::SYS_setgid, [g, 0, 0, 0]), ok);
            // Only the low 32 bits are the id: the kernel reads a uid_t.
            assert_eq!(call(libc::SYS_setuid, [u | 1 << 32, 0, 0, 0]), ok);
            // setuid(-1) passes to the kernel, which says EINVAL (as on the host).
            assert_eq!(call(libc::SYS_setuid, [UNCHANGED, 0, 0, 0]), Errno::EINVAL);
        });
    }

    #[test]
    fn the_rules_follow_the_ids_they_were_compiled_for() {
        let me = own();
        let them = Ids {
            uid: me.uid.wrapping_add(4242),
            gid: me.gid.wrapping_add(4242),
        };
        let (u, g) = (u64::from(me.uid), u64::from(me.gid));
        under(them, move || {
            // Compiled for another user, the caller's own ids are the foreign ones.
            assert_eq!(call(libc::SYS_setuid, [u, 0, 0, 0]), Errno::EPERM);
            assert_eq!(call(libc::SYS_setgid, [g, 0, 0, 0]), Errno::EPERM);
            assert_eq!(
                call(libc::SYS_setresgid, [UNCHANGED, UNCHANGED, UNCHANGED, 0]),
                Errno::UnknownErrno
            );
        });
    }

    #[test]
    fn every_id_argument_has_a_rule_and_the_summary_names_the_ids() {
        let r = rules(Ids { uid: 7, gid: 8 }).unwrap();
        for (name, nr, args) in id_syscalls() {
            assert_eq!(r[&nr].len(), args.len(), "{name}");
        }
        assert!(r[&libc::SYS_setgroups].is_empty());
        let s = summary(Ids { uid: 7, gid: 8 });
        assert!(s.contains("uid 7 and gid 8") && s.contains("setresgid/fchown"));
    }
}
