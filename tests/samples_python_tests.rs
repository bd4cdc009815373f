//! `samples/python3-tests`: python3 captured by `capsa capture` from a run of its own
//! regression tests (light edits, listed in the recipe), and those tests run in the sandbox
//! as on the host: `test_socket` (over the sandbox's own loopback), `test_subprocess`,
//! `test_ctypes` (which compiles with gcc and finds libraries with `ldconfig`), `test_os`,
//! `test_zoneinfo` and `test_datetime`.
//!
//! "As on the host" means: both runs succeed, every test file runs the same number of tests,
//! and the sandbox skips nothing the host ran, except what needs real root (`sethostname`),
//! which a sandboxed app never has, when the host side runs as root.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

const TESTS: &[&str] = &[
    "test_socket",
    "test_subprocess",
    "test_ctypes",
    "test_os",
    "test_zoneinfo",
    "test_datetime",
];

/// What a verbose regrtest run says: tests run per file, in order, and each skip's reason.
#[derive(Debug)]
struct Outcome {
    ran: Vec<u64>,
    skipped: BTreeMap<String, String>,
}

fn outcome(o: &Output) -> Outcome {
    let out = String::from_utf8_lossy(&o.stdout);
    let ran = out
        .lines()
        .filter_map(|l| l.strip_prefix("Ran ")?.split(' ').next()?.parse().ok())
        .collect();
    let skipped = out
        .lines()
        .filter_map(|l| {
            let (name, reason) = l.split_once(" ... skipped ")?;
            Some((name.to_owned(), reason.trim_matches('\'').to_owned()))
        })
        .collect();
    Outcome { ran, skipped }
}

fn args() -> Vec<&'static str> {
    let mut a = vec!["-m", "test", "-v"];
    a.extend_from_slice(TESTS);
    // The VSOCK stream test hangs on this machine's host itself; the sandbox refuses AF_VSOCK.
    a.extend_from_slice(&["-i", "*VSOCK*"]);
    a
}

#[test]
fn pythons_own_regression_tests_pass_in_the_sandbox_as_on_the_host() {
    let tools = [
        "/usr/bin/python3.11",
        "/usr/lib/python3.11/test/test_socket.py",
        "/usr/bin/gcc",
    ];
    let missing: Vec<_> = tools.iter().filter(|t| !Path::new(t).exists()).collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_SANDBOX").is_none(),
            "required (CI) but {missing:?} are missing: run .ci/run as root"
        );
        eprintln!("skipped: {missing:?} not installed");
        return;
    }
    if !userns() {
        return;
    }
    let recipe = src().join("samples/python3-tests/capsa.toml");
    let bundle = shared_tmp().join("python3-tests.capsa");
    let o = capsa(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ])
    .output()
    .expect("run capsa pack");
    assert!(
        o.status.success(),
        "packing python3-tests failed: {}",
        text(&o)
    );

    // The host's run goes on while the sandbox's does: they take a minute each.
    let cwd = tempfile::tempdir().unwrap();
    let host = Command::new("/usr/bin/python3.11")
        .args(args())
        .current_dir(cwd.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3.11 on the host");
    let iso = Isolated::new();
    let mut run = vec![
        "run",
        "--yes",
        "--ephemeral",
        bundle.to_str().unwrap(),
        "--",
    ];
    run.extend(args());
    let sandbox = iso.run(&run);
    let host = host.wait_with_output().expect("wait for the host's run");
    assert!(
        host.status.success(),
        "the tests fail on the host itself: {}",
        text(&host)
    );
    assert!(
        sandbox.status.success(),
        "the tests fail in the sandbox: {}",
        text(&sandbox)
    );

    let (h, s) = (outcome(&host), outcome(&sandbox));
    assert_eq!(h.ran.len(), TESTS.len(), "one summary per test file: {h:?}");
    assert_eq!(s.ran, h.ran, "tests run per file, sandbox against host");
    let root = host_ids().0 == 0;
    let extra: Vec<_> = s
        .skipped
        .iter()
        .filter(|(name, _)| !h.skipped.contains_key(*name))
        .filter(|(_, why)| !(root && why.as_str() == "test should be run as root"))
        .collect();
    assert!(extra.is_empty(), "skipped in the sandbox only: {extra:?}");
}
