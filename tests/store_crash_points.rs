//! Crash safety at exact points, complementing the timed kills of store_crash.rs: `strace`
//! SIGKILLs capsa on entry to its N-th call of each system call that moves the store from one
//! state to the next (rename, renameat, symlink, fsync, mkdir, unlink, unlinkat), for every N
//! (or an even sample of a long series) in capsa's main thread (strace counts each thread on
//! its own; the worker threads that unpack layers are covered by the timed kills), during an
//! install (python3), an uninstall (python3) and an upgrade (hello 2.0 to 3.0 with 1.0 kept as
//! `previous`). After `capsa list --json` (which recovers) the store must hold exactly the old
//! state or the new one, with no leftover, and an installed app must run. Every failing point
//! is collected and reported together. Skipped without strace (`CAPSA_REQUIRE_STRACE=1` makes
//! that a failure).

mod common;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Once, OnceLock};

use common::*;

const PY: &str = "org.python.Python3";
const HELLO: &str = "org.capsa.Hello";

/// `strace OPTS -- capsa ARGS` in the store of `env` (only capsa's main thread is traced).
fn traced(env: &StoreEnv, opts: &[&str], args: &[&str]) -> Command {
    let mut c = Command::new("strace");
    c.arg("-qq")
        .args(opts)
        .arg("--")
        .arg(capsa_bin())
        .args(args);
    for (k, v) in env.cmd(args).get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// How many times a whole `capsa ARGS` calls `syscall`.
fn calls(env: &StoreEnv, args: &[&str], syscall: &str) -> usize {
    let log = env.dir.path().join("strace.log");
    let trace = format!("trace={syscall}");
    let o = traced(env, &["-o", log.to_str().unwrap(), "-e", &trace], args)
        .output()
        .unwrap();
    assert!(o.status.success(), "traced capsa {args:?}: {}", text(&o));
    let prefix = format!("{syscall}(");
    let n = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .count();
    std::fs::remove_file(log).unwrap();
    n
}

/// 1..=n, or `k` of them evenly spread (first and last included).
fn sample(n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (1..=n).collect();
    }
    (0..k).map(|i| 1 + i * (n - 1) / (k - 1)).collect()
}

thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });

/// Runs `f`, catching a panic without printing it (the failures are reported together).
fn quietly(f: impl FnOnce()) -> Result<(), String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// A scenario: `setup` brings a store to the old state, `args` is the command killed, `check`
/// judges the state after recovery (panicking when it is neither old nor new).
struct Scenario<'a> {
    name: &'a str,
    args: Vec<&'a str>,
    syscalls: &'a [(&'a str, usize)],
    setup: &'a dyn Fn(&StoreEnv),
    check: &'a dyn Fn(&StoreEnv, &str),
}

/// Kills the command at every point; returns the failures (point and message).
fn sweep(s: &Scenario) -> Vec<String> {
    let mut failures = Vec::new();
    let mut points = 0;
    for &(syscall, k) in s.syscalls {
        let probe = StoreEnv::new();
        (s.setup)(&probe);
        let n = calls(&probe, &s.args, syscall);
        eprintln!("{}: {syscall} is called {n} times", s.name);
        for i in sample(n, k) {
            points += 1;
            let ctx = format!("{}: killed at {syscall} #{i} of {n}", s.name);
            let env = StoreEnv::new();
            (s.setup)(&env);
            let inject = format!("inject={syscall}:signal=KILL:when={i}");
            let trace = format!("trace={syscall}");
            let o = traced(
                &env,
                &["-o", "/dev/null", "-e", &trace, "-e", &inject],
                &s.args,
            )
            .output()
            .unwrap();
            if let Err(msg) = quietly(|| (s.check)(&env, &ctx)) {
                failures.push(format!("{msg}\n(capsa under strace: {})", o.status));
            }
        }
    }
    eprintln!(
        "{}: {points} kill points, {} failed",
        s.name,
        failures.len()
    );
    failures
}

fn assert_none(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} kill point(s) left the store neither old nor new:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn python_runs(env: &StoreEnv, ctx: &str) {
    if userns() {
        let o = env.run(&["run", PY, "--", "-c", "import ssl; print(1)"]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "1",
            "{ctx}: {}",
            text(&o)
        );
    }
}

#[test]
fn install_killed_at_each_step() {
    if !have_strace() {
        return;
    }
    let bundle = python_bundle().to_str().unwrap();
    let fresh = AppState::Installed {
        version: "3.11".into(),
        previous: None,
    };
    assert_none(sweep(&Scenario {
        name: "install",
        args: vec!["install", "--yes", bundle],
        syscalls: &[
            ("rename", 9),
            ("renameat", 9),
            ("fsync", 9),
            ("symlink", 3),
            ("mkdir", 4),
            ("unlink", 3),
        ],
        setup: &|_| {},
        check: &|env, ctx| {
            if env.recover_and_check(PY, ctx) == fresh {
                python_runs(env, ctx);
            }
        },
    }));
}

#[test]
fn uninstall_killed_at_each_step() {
    if !have_strace() {
        return;
    }
    let fresh = AppState::Installed {
        version: "3.11".into(),
        previous: None,
    };
    assert_none(sweep(&Scenario {
        name: "uninstall",
        args: vec!["uninstall", PY],
        syscalls: &[("rename", 9), ("unlink", 9), ("unlinkat", 5)],
        setup: &|env| {
            env.install(python_bundle());
        },
        check: &|env, ctx| match env.recover_and_check(PY, ctx) {
            AppState::Absent => assert!(env.layer_dirs().is_empty(), "{ctx}"),
            state => {
                assert_eq!(state, fresh, "{ctx}");
                python_runs(env, ctx);
            }
        },
    }));
}

/// The hello sample rebuilt as `version`.
fn hello_version(version: &str) -> PathBuf {
    let recipe = build_hello(&shared_tmp().join(format!("hello-{version}")));
    let text = std::fs::read_to_string(&recipe).unwrap();
    let edited = text.replace("version = \"1.0\"", &format!("version = \"{version}\""));
    assert_ne!(text, edited);
    std::fs::write(&recipe, edited).unwrap();
    let out = shared_tmp().join(format!("hello-{version}.capsa"));
    ok(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    out
}

#[test]
fn upgrade_killed_at_each_step() {
    if !have_strace() {
        return;
    }
    static B: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (v2, v3) = B.get_or_init(|| (hello_version("2.0"), hello_version("3.0")));
    let state = |v: &str, p: &str| AppState::Installed {
        version: v.into(),
        previous: Some(p.into()),
    };
    let (old, new) = (state("2.0", "1.0"), state("3.0", "2.0"));
    let setup = |env: &StoreEnv| {
        env.install(hello_bundle());
        env.install(Path::new(v2));
    };
    assert_none(sweep(&Scenario {
        name: "upgrade",
        args: vec!["install", "--yes", v3.to_str().unwrap()],
        syscalls: &[("rename", 9), ("symlink", 9), ("unlink", 9), ("fsync", 9)],
        setup: &setup,
        check: &|env, ctx| {
            let got = env.recover_and_check(HELLO, ctx);
            assert!(got == old || got == new, "{ctx}: {got:?}\n{}", env.dump());
            if userns() {
                assert!(
                    env.ok(&["run", HELLO]).contains("hello from capsa"),
                    "{ctx}"
                );
            }
        },
    }));
}
