//! Tests of the syscall table: unique numbers, outcomes as documented.

use super::*;

#[test]
fn numbers_are_unique() {
    let mut nrs: Vec<i64> = TRACED.iter().map(|c| c.nr).collect();
    nrs.sort_unstable();
    let before = nrs.len();
    nrs.dedup();
    assert_eq!(before, nrs.len());
    assert!(lookup(SYS_openat as i64).is_some());
    assert!(lookup(SYS_read as i64).is_none());
}

#[test]
fn outcomes_are_what_the_docs_say() {
    let of = |nr: libc::c_long| lookup(nr as i64).expect("traced").outcome;
    assert_eq!(of(SYS_openat), Outcome::Open);
    assert_eq!(of(SYS_execve), Outcome::Exec);
    assert_eq!(of(SYS_newfstatat), Outcome::Check(Follow::UnlessFlag(3)));
    assert_eq!(of(SYS_faccessat), Outcome::Check(Follow::Yes));
    assert_eq!(of(SYS_readlinkat), Outcome::Check(Follow::No));
    assert_eq!(of(SYS_unlinkat), Outcome::Intent);
    assert_eq!(of(SYS_connect), Outcome::Exit);
    assert_eq!(of(SYS_socket), Outcome::Exit);
    let movers: Vec<i64> = TRACED
        .iter()
        .filter(|c| c.moves_cwd)
        .map(|c| c.nr)
        .collect();
    assert_eq!(
        movers,
        [SYS_chdir, SYS_fchdir, SYS_setns, SYS_pivot_root].map(|n| n as i64)
    );
}
