//! The fast and the exact mode on the same programs: what the fast mode's checks at entry
//! record (lookups checked by the tracer, changes as intent, symlinks followed or not, an
//! `fstat` of an open fd not traced) and where the exact mode differs (the kernel's result
//! of a change), the cwd cache across `chdir` and `fchdir`, and lookups made in the
//! tracee's own mount namespace.

mod common;

use std::path::Path;

use common::{accesses, cc, command, tempdir};
use trace::{Exit, Op, Trace};

fn traced(argv: &[&str], exact: bool) -> Trace {
    let mut cmd = command(argv);
    cmd.exact = exact;
    trace::run(&cmd).expect("trace runs")
}

fn errnos(t: &Trace, path: &Path, op: fn(&Op) -> bool) -> Vec<Option<i32>> {
    accesses(t, path)
        .iter()
        .filter(|a| op(&a.op))
        .map(|a| a.errno)
        .collect()
}

const STATS: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
int main(int argc, char **argv) {
    char p[4096];
    struct stat st;
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY);
    snprintf(p, sizeof p, "%s/opened", argv[1]);
    int fd = open(p, O_RDONLY);
    if (dir < 0 || fd < 0) return 2;
    fstat(fd, &st);                                  /* not traced */
    fstatat(dir, "relative", &st, 0);                 /* traced, against the dirfd */
    snprintf(p, sizeof p, "%s/empty-flag", argv[1]);
    fstatat(AT_FDCWD, p, &st, AT_EMPTY_PATH);         /* traced: AT_FDCWD */
    snprintf(p, sizeof p, "%s/missing", argv[1]);
    stat(p, &st);
    snprintf(p, sizeof p, "%s/dangling", argv[1]);
    stat(p, &st);
    lstat(p, &st);
    snprintf(p, sizeof p, "%s/nodir/new", argv[1]);
    open(p, O_WRONLY | O_CREAT, 0644);               /* fails: no such dir */
    return 0;
}"#;

#[test]
fn fast_mode_checks_lookups_and_records_changes_as_intent() {
    let dir = tempdir();
    let Some(prog) = cc(dir.path(), "stats", STATS, &[]) else {
        return;
    };
    for name in ["opened", "relative", "empty-flag"] {
        std::fs::write(dir.path().join(name), "x").expect("write");
    }
    std::os::unix::fs::symlink(dir.path().join("none"), dir.path().join("dangling"))
        .expect("symlink");
    let d = dir.path().to_str().expect("utf-8");
    let p = prog.to_str().expect("utf-8");
    let is_stat = |op: &Op| *op == Op::Stat;
    let is_open = |op: &Op| matches!(op, Op::Open { .. });
    for exact in [false, true] {
        let t = traced(&[p, d], exact);
        assert_eq!(t.exit, Exit::Code(0), "exact: {exact}");
        let path = |n: &str| dir.path().join(n);
        assert_eq!(errnos(&t, &path("opened"), is_open), [None]);
        assert_eq!(
            errnos(&t, &path("opened"), is_stat),
            [],
            "the fstat of an open fd is not traced"
        );
        assert_eq!(errnos(&t, &path("relative"), is_stat), [None]);
        assert_eq!(errnos(&t, &path("empty-flag"), is_stat), [None]);
        assert_eq!(errnos(&t, &path("missing"), is_stat), [Some(libc::ENOENT)]);
        assert_eq!(
            errnos(&t, &path("dangling"), is_stat),
            [Some(libc::ENOENT), None],
            "stat follows the dangling link, lstat does not"
        );
        // The change: the fast mode records the intent, the exact one the kernel's refusal.
        let want = if exact { Some(libc::ENOENT) } else { None };
        assert_eq!(errnos(&t, &path("nodir/new"), is_open), [want]);
    }
}

const CHDIRS: &str = r#"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct stat st;
    int a = open(argv[1], O_RDONLY);
    int b = open(argv[2], O_RDONLY);
    stat("probe", &st);
    fchdir(b);
    stat("probe", &st);
    chdir(argv[1]);
    stat("probe", &st);
    fchdir(b);
    return stat("probe", &st) == 0 ? 0 : 3;
}"#;

#[test]
fn relative_lookups_follow_chdir_and_fchdir() {
    let dir = tempdir();
    let Some(prog) = cc(dir.path(), "chdirs", CHDIRS, &[]) else {
        return;
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).expect("mkdir");
    std::fs::create_dir(&b).expect("mkdir");
    std::fs::write(b.join("probe"), "x").expect("write");
    let mut cmd = command(&[
        prog.to_str().expect("utf-8"),
        a.to_str().expect("utf-8"),
        b.to_str().expect("utf-8"),
    ]);
    cmd.cwd = Some(a.clone());
    let t = trace::run(&cmd).expect("trace runs");
    assert_eq!(t.exit, Exit::Code(0));
    let got: Vec<_> = t
        .accesses
        .iter()
        .filter(|x| x.path.ends_with("probe"))
        .map(|x| (x.path.clone(), x.errno))
        .collect();
    let missing = Some(libc::ENOENT);
    assert_eq!(
        got,
        [
            (a.join("probe"), missing),
            (b.join("probe"), None),
            (a.join("probe"), missing),
            (b.join("probe"), None),
        ]
    );
}

#[test]
fn lookups_are_made_in_the_tracees_mount_namespace() {
    if !common::have("/usr/bin/unshare") {
        return;
    }
    let dir = tempdir();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let inside = mnt.join("inside");
    // A tmpfs only the new namespace sees, and a file in it.
    let script = format!(
        "mount -t tmpfs none {m} && echo x > {f} && cat {f} >/dev/null && ls {f} >/dev/null",
        m = mnt.display(),
        f = inside.display()
    );
    let flags = if nix::unistd::geteuid().is_root() {
        "-m"
    } else {
        "-rm"
    };
    let t = traced(
        &["/usr/bin/unshare", flags, "/bin/sh", "-c", &script],
        false,
    );
    if t.exit != Exit::Code(0) {
        eprintln!("skipped: unshare {flags} failed here ({:?})", t.exit);
        return;
    }
    assert!(!inside.exists(), "the tracer's namespace does not see it");
    let reads: Vec<_> = accesses(&t, &inside)
        .into_iter()
        .filter(|a| matches!(a.op, Op::Open { write: false, .. } | Op::Stat))
        .map(|a| a.errno)
        .collect();
    assert!(!reads.is_empty(), "{:#?}", t.accesses);
    assert!(
        reads.iter().all(|e| e.is_none()),
        "checked under /proc/TID/root: {reads:?}"
    );
}
