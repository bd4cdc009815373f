//! Shared helpers of the trace tests: building a traced command through the test helper
//! binary, skipping when a tool is missing, compiling C programs.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trace::{Access, Op, Trace, TraceCommand};

pub fn command(argv: &[&str]) -> TraceCommand {
    TraceCommand {
        argv: argv.iter().map(OsString::from).collect(),
        cwd: None,
        env: Vec::new(),
        timeout: Duration::from_secs(120),
        helper: PathBuf::from(env!("CARGO_BIN_EXE_capsa-trace-helper")),
        helper_args: Vec::new(),
        exact: false,
    }
}

pub fn run(argv: &[&str]) -> Trace {
    trace::run(&command(argv)).expect("trace runs")
}

/// Whether `tool` exists; if not, prints why the test is skipped (or fails under
/// CAPSA_REQUIRE_TRACE_TOOLS).
pub fn have(tool: &str) -> bool {
    if Path::new(tool).exists() {
        return true;
    }
    if std::env::var_os("CAPSA_REQUIRE_TRACE_TOOLS").is_some() {
        panic!("{tool} is required (CAPSA_REQUIRE_TRACE_TOOLS is set)");
    }
    eprintln!("skipped: {tool} is not installed");
    false
}

/// Compiles `src` with cc into `dir/name` (`extra` flags after the source).
pub fn cc(dir: &Path, name: &str, src: &str, extra: &[&str]) -> Option<PathBuf> {
    if !have("/usr/bin/cc") {
        return None;
    }
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).expect("write C source");
    let out = dir.join(name);
    let st = Command::new("/usr/bin/cc")
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .args(extra)
        .status()
        .expect("run cc");
    assert!(st.success(), "cc {name} failed");
    Some(out)
}

pub fn accesses<'a>(t: &'a Trace, path: &Path) -> Vec<&'a Access> {
    t.accesses.iter().filter(|a| a.path == path).collect()
}

pub fn opened_ok(t: &Trace, path: &Path) -> bool {
    accesses(t, path)
        .iter()
        .any(|a| matches!(a.op, Op::Open { .. }) && a.errno.is_none())
}

/// A temp dir the unprivileged test user can enter too.
pub fn tempdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}
