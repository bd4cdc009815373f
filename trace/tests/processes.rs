//! End-to-end traces of real programs: shell scripts that fork and exec, exit codes and
//! signals, a missing file, a write open, relative paths, `#!` scripts, the timeout.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{accesses, command, opened_ok, run, tempdir};
use trace::{Exit, Op};

#[test]
fn shell_forks_and_execs_cat_and_ls() {
    let dir = tempdir();
    let f = dir.path().join("data.txt");
    std::fs::write(&f, "x").expect("write");
    let script = format!(
        "cat {} >/dev/null; ls /usr/share >/dev/null; exit 3",
        f.display()
    );
    let t = run(&["/bin/sh", "-c", &script]);
    assert_eq!(t.exit, Exit::Code(3));
    assert!(!t.timed_out);
    assert!(opened_ok(&t, &f), "cat's open of {f:?}: {:#?}", t.accesses);
    let exes: Vec<_> = t.execs.iter().map(|e| e.exe.clone()).collect();
    let cat = std::fs::canonicalize("/bin/cat").expect("cat");
    let ls = std::fs::canonicalize("/bin/ls").expect("ls");
    assert!(exes.contains(&cat) && exes.contains(&ls), "execs: {exes:?}");
    let first = &t.execs[0];
    assert_eq!(first.path, Path::new("/bin/sh"));
    assert_eq!(first.argv0, "/bin/sh");
    let pids: std::collections::HashSet<u32> = t.execs.iter().map(|e| e.pid).collect();
    assert!(pids.len() >= 2, "cat and ls ran in children: {pids:?}");
    // The directory listing of ls is an open of /usr/share.
    assert!(opened_ok(&t, Path::new("/usr/share")));
    assert!(t.stops > 0);
}

#[test]
fn missing_file_is_enoent_and_write_open_is_create() {
    let dir = tempdir();
    let missing = dir.path().join("nope/none.txt");
    let out = dir.path().join("out.txt");
    let script = format!(
        "cat {} 2>/dev/null; echo hi > {}",
        missing.display(),
        out.display()
    );
    let t = run(&["/bin/sh", "-c", &script]);
    assert_eq!(t.exit, Exit::Code(0));
    let m = accesses(&t, &missing);
    assert!(m.iter().any(|a| a.errno == Some(libc::ENOENT)), "{m:?}");
    let w = accesses(&t, &out);
    assert!(
        w.iter().any(|a| a.op
            == Op::Open {
                write: true,
                create: true
            }
            && a.errno.is_none()),
        "{w:?}"
    );
}

#[test]
fn relative_paths_resolve_against_the_cwd() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    std::fs::write(dir.path().join("sub/rel.txt"), "r").expect("write");
    let mut cmd = command(&[
        "/bin/sh",
        "-c",
        "cat ./sub/rel.txt >/dev/null; cd sub && cat rel.txt",
    ]);
    cmd.cwd = Some(dir.path().to_path_buf());
    let t = trace::run(&cmd).expect("trace");
    let want = dir.path().join("sub/rel.txt");
    let opens = accesses(&t, &want);
    assert!(
        opens.len() >= 2,
        "both cats' opens resolved: {:#?}",
        t.accesses
    );
}

#[test]
fn shebang_script_records_the_script_and_the_interpreter() {
    let dir = tempdir();
    let script = dir.path().join("hello.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 7\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let s = script.to_str().expect("utf-8 temp path");
    let t = run(&[s, "arg"]);
    assert_eq!(t.exit, Exit::Code(7));
    let e = t
        .execs
        .iter()
        .find(|e| e.path == script)
        .expect("exec of the script");
    assert_eq!(e.exe, std::fs::canonicalize("/bin/sh").expect("sh"));
    assert_eq!(e.argv0, s);
}

#[test]
fn path_lookup_probes_show_as_failed_execs() {
    let mut cmd = command(&["true"]);
    cmd.env
        .push(("PATH".into(), "/nonexistent-dir:/usr/bin:/bin".into()));
    let t = trace::run(&cmd).expect("trace");
    assert_eq!(t.exit, Exit::Code(0));
    let probe = accesses(&t, Path::new("/nonexistent-dir/true"));
    assert!(
        probe
            .iter()
            .any(|a| a.op == Op::Exec && a.errno == Some(libc::ENOENT)),
        "{probe:?}"
    );
    assert!(t.execs.iter().any(|e| e.path == Path::new("/usr/bin/true")));
}

#[test]
fn signal_exit_is_passed_through() {
    let t = run(&["/bin/sh", "-c", "kill -TERM $$"]);
    assert_eq!(t.exit, Exit::Signal(libc::SIGTERM));
    // A signal the shell handles is re-injected, not swallowed: the trap runs.
    let t = run(&[
        "/bin/sh",
        "-c",
        "trap 'exit 42' USR1; kill -USR1 $$; sleep 5",
    ]);
    assert_eq!(t.exit, Exit::Code(42));
}

#[test]
fn timeout_kills_the_whole_tree() {
    let mut cmd = command(&[
        "/bin/sh",
        "-c",
        "sleep 100 & sleep 100 & (sleep 100; true); wait",
    ]);
    cmd.timeout = Duration::from_secs(1);
    let t = trace::run(&cmd).expect("trace");
    assert!(t.timed_out);
    assert_eq!(t.exit, Exit::Signal(libc::SIGKILL));
    assert!(
        t.wall < Duration::from_secs(30),
        "returned after {:?}",
        t.wall
    );
    let sleeps = t.execs.iter().filter(|e| e.path.ends_with("sleep")).count();
    assert!(sleeps >= 1, "the sleeps were started: {:?}", t.execs);
}

#[test]
fn a_helper_that_does_not_stop_is_an_error() {
    let mut cmd = command(&["x"]);
    cmd.helper = "/bin/true".into();
    match trace::run(&cmd) {
        Err(trace::TraceError::Start { status, .. }) => {
            assert_eq!(status, trace::Status::Exited(0))
        }
        other => panic!("expected a start error, got {other:?}"),
    }
}
