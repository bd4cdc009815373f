//! The reduction in pid 1 and the ranking in the launcher, on traces shaped like real ones
//! (the loader's probes as glibc 2.36 makes them, a shell's PATH search).

use std::path::PathBuf;

use super::*;
use trace::{Access, Exit, Op, Trace};

const OPEN: Op = Op::Open {
    write: false,
    create: false,
};

fn trace(accesses: &[(&str, Op, Option<i32>)]) -> Trace {
    Trace {
        accesses: accesses
            .iter()
            .map(|(p, op, errno)| Access {
                path: PathBuf::from(p),
                op: *op,
                errno: *errno,
                pid: 2,
            })
            .collect(),
        execs: vec![],
        connects: vec![],
        exit: Exit::Code(1),
        timed_out: false,
        wall: std::time::Duration::ZERO,
        stops: 7,
        dropped_signals: 0,
    }
}

const NOENT: Option<i32> = Some(libc::ENOENT);

/// `sh -c 'cat /usr/share/nope/file'` with LD_LIBRARY_PATH=/nonexist, as strace shows it.
fn shell_run() -> Trace {
    trace(&[
        ("/etc/ld.so.preload", Op::Stat, NOENT),
        ("/etc/ld.so.cache", OPEN, NOENT),
        ("/nonexist/glibc-hwcaps/x86-64-v3/libc.so.6", OPEN, NOENT),
        ("/nonexist/glibc-hwcaps/x86-64-v3", Op::Stat, NOENT),
        ("/nonexist/tls/x86_64/x86_64/libc.so.6", OPEN, NOENT),
        ("/nonexist/tls/x86_64/x86_64", Op::Stat, NOENT),
        ("/nonexist/tls", Op::Stat, NOENT),
        ("/nonexist/x86_64/libc.so.6", OPEN, NOENT),
        ("/nonexist/libc.so.6", OPEN, NOENT),
        ("/nonexist", Op::Stat, NOENT),
        ("/lib/x86_64-linux-gnu/libc.so.6", OPEN, None),
        ("/usr/local/bin/cat", Op::Exec, NOENT),
        ("/usr/bin/cat", Op::Exec, None),
        ("/etc/nope.conf", Op::Stat, NOENT),
        ("/usr/share/nope/file", OPEN, NOENT),
        ("/usr/share/nope/file", OPEN, NOENT),
        ("/usr/bin/helper", Op::Exec, NOENT),
        ("/created-later", OPEN, NOENT),
        ("/created-later", OPEN, None),
        ("/denied", OPEN, Some(libc::EACCES)),
        ("/removed", Op::Change, NOENT),
    ])
}

fn ranked(t: &Trace) -> Vec<(String, Lookup)> {
    match outcome(Some(reduce(t))) {
        TraceOutcome::Missing { paths, stops } => {
            assert_eq!(stops, 7);
            paths.into_iter().map(|m| (m.path, m.lookup)).collect()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn loader_and_path_search_noise_is_dropped_and_the_rest_ranked() {
    assert_eq!(
        ranked(&shell_run()),
        vec![
            ("/usr/bin/helper".to_owned(), Lookup::Exec),
            ("/usr/share/nope/file".to_owned(), Lookup::Open),
            ("/etc/nope.conf".to_owned(), Lookup::Stat),
        ]
    );
}

#[test]
fn a_library_never_found_is_shown_without_its_hwcaps_probes() {
    let t = trace(&[
        ("/usr/lib/glibc-hwcaps/x86-64-v2/libfoo.so.1", OPEN, NOENT),
        ("/usr/lib/libfoo.so.1", OPEN, NOENT),
        ("/lib/libfoo.so.1", OPEN, NOENT),
    ]);
    assert_eq!(
        ranked(&t),
        vec![
            ("/lib/libfoo.so.1".to_owned(), Lookup::Open),
            ("/usr/lib/libfoo.so.1".to_owned(), Lookup::Open),
        ]
    );
}

#[test]
fn a_path_missed_two_ways_is_listed_once_at_its_most_telling() {
    let t = trace(&[
        ("/opt/app/plugin", Op::Stat, NOENT),
        ("/opt/app/plugin", Op::Exec, NOENT),
        ("/opt/app/plugin", Op::Stat, NOENT),
    ]);
    assert_eq!(
        ranked(&t),
        vec![("/opt/app/plugin".to_owned(), Lookup::Exec)]
    );
}

#[test]
fn hostile_paths_stay_bytes_and_the_sent_list_is_bounded() {
    use std::os::unix::ffi::OsStringExt;
    let mut t = trace(&[]);
    for i in 0..(MAX_SENT + 10) {
        let mut p = format!("/x/{i}\n\x1b[31m").into_bytes();
        p.push(0xff);
        t.accesses.push(Access {
            path: PathBuf::from(std::ffi::OsString::from_vec(p)),
            op: OPEN,
            errno: NOENT,
            pid: 3,
        });
    }
    let sent = reduce(&t);
    let line = serde_json::to_vec(&sent).unwrap();
    let back: Traced = serde_json::from_slice(&line).unwrap();
    assert_eq!(back, sent);
    let Traced::Misses { misses, .. } = back else {
        panic!("no misses");
    };
    assert_eq!(misses.len(), MAX_SENT);
    // The most recent are kept.
    assert!(misses[0].path.starts_with("/x/4105\n"));
    assert!(misses[0].path.ends_with('\u{fffd}'), "lossy, not dropped");
}

#[test]
fn nothing_sent_and_a_tracer_failure_are_failures() {
    assert!(matches!(outcome(None), TraceOutcome::Failed(_)));
    let f = outcome(Some(Traced::Failed("ptrace seize: EPERM".into())));
    assert_eq!(f, TraceOutcome::Failed("ptrace seize: EPERM".into()));
}

#[test]
fn locale_probes_rank_after_the_file_the_app_wanted() {
    let read = Op::Open {
        write: false,
        create: false,
    };
    let t = trace(&[
        ("/usr/share/nope/file", read, NOENT),
        ("/usr/lib/locale/locale-archive", read, NOENT),
        ("/usr/share/locale/C.utf8/LC_MESSAGES/libc.mo", read, NOENT),
    ]);
    let got: Vec<String> = ranked(&t).into_iter().map(|(p, _)| p).collect();
    assert_eq!(got[0], "/usr/share/nope/file", "{got:?}");
    assert_eq!(got.len(), 3, "{got:?}");
}
