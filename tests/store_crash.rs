//! Crash safety of the store, with SIGKILL injected at many points (not one lucky one): each
//! loop measures a whole command, then kills it after delays spread over that duration (plus
//! random jitter, and re-estimated as it goes since the machine is shared; `CAPSA_CRASH_SEED`
//! replays the jitter, `CAPSA_CRASH_POINTS` sets the count, 25), runs
//! `capsa list --json` (which recovers) and checks the invariant: the app is either absent (no
//! release, no `current`, no export, no layer directory nothing uses, no staging or trash left)
//! or fully installed (every layer it uses present, its desktop entry exported) and it runs.
//! Install, uninstall and upgrade (v1 to v2, `current` must be v1 or v2) are covered here;
//! concurrent commands (they serialize on the store lock and wait for it) in store_lock.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const PY: &str = "org.python.Python3";
const V1: &str = "3.11";
const V2: &str = "3.11.99";
/// A file only v2 has.
const MARK: &str = "/usr/lib/python3.11/capsa-v2.txt";

/// A small xorshift generator for the jitter, seeded from `CAPSA_CRASH_SEED` or the clock.
struct Rng(u64);

impl Rng {
    fn new(what: &str) -> Self {
        let seed = std::env::var("CAPSA_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{what}: CAPSA_CRASH_SEED={seed}");
        Self(seed | 1)
    }
    fn below(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_nanos(self.0 % (max.as_nanos() as u64).max(1))
    }
}

/// Kill points over a command's run: the i-th of `CAPSA_CRASH_POINTS` (25) at
/// `(i/(n-1))^power` of 1.1 times the estimated duration (`power` > 1 puts more points early),
/// plus up to a gap of jitter. The machine is shared, so the estimate follows what it sees: a
/// command that ends before its kill measures it, one still running past the estimate raises it.
struct Sweep {
    what: &'static str,
    estimate: Duration,
    power: f64,
    n: u32,
    i: u32,
    rng: Rng,
    killed: u32,
}

impl Sweep {
    fn new(what: &'static str, estimate: Duration, power: f64) -> Self {
        let n = std::env::var("CAPSA_CRASH_POINTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(25u32)
            .max(2);
        let rng = Rng::new(what);
        let (i, killed) = (0, 0);
        Self {
            what,
            estimate,
            power,
            n,
            i,
            rng,
            killed,
        }
    }
    fn done(&self) -> bool {
        self.i == self.n
    }
    /// Starts `capsa ARGS`, SIGKILLs it at the next point unless it ended before (it must then
    /// have succeeded); returns a description of the point and whether it was killed.
    fn kill(&mut self, env: &StoreEnv, args: &[&str]) -> (String, bool) {
        let at = |i: u32| {
            let f = (f64::from(i) / f64::from(self.n - 1)).powf(self.power);
            self.estimate.mul_f64(1.1 * f)
        };
        let delay = at(self.i) + self.rng.below(at(self.i + 1) - at(self.i));
        let ctx = format!(
            "{} killed after {delay:.1?} (point {} of {}, estimate {:.1?})",
            self.what, self.i, self.n, self.estimate
        );
        self.i += 1;
        let mut child = env
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start capsa");
        let start = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                self.estimate = start.elapsed();
                let o = child.wait_with_output().unwrap();
                assert!(
                    o.status.success(),
                    "{ctx}: ended by itself, failed: {}",
                    text(&o)
                );
                return (ctx, false);
            }
            let left = delay.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(2)));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        self.killed += 1;
        if delay > self.estimate {
            self.estimate = delay.mul_f64(1.2);
        }
        (ctx, true)
    }
    fn report(&self, start: Instant, counts: &[(&str, u32)]) {
        eprintln!(
            "{}: {} points, {} killed, {counts:?}, last estimate {:.1?}, in {:.1?}",
            self.what,
            self.n,
            self.killed,
            self.estimate,
            start.elapsed()
        );
    }
}

/// Runs python in the installed app; returns its output.
fn python(env: &StoreEnv, code: &str, ctx: &str) -> String {
    let o = env.run(&["run", PY, "--", "-c", code]);
    assert!(
        o.status.success(),
        "{ctx}: the app does not run: {}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn check_runs(env: &StoreEnv, ctx: &str) {
    if userns() {
        assert_eq!(python(env, "import ssl; print(1)", ctx), "1");
    }
}

#[test]
fn install_killed_anywhere_leaves_nothing_or_a_working_app() {
    let start = Instant::now();
    let env = StoreEnv::new();
    let bundle = python_bundle().to_str().unwrap();
    let t = Instant::now();
    env.install(python_bundle());
    let full = t.elapsed();
    let fresh = AppState::Installed {
        version: V1.into(),
        previous: None,
    };
    assert_eq!(env.recover_and_check(PY, "installed"), fresh);
    env.ok(&["uninstall", "--delete-data", PY]);
    assert_eq!(env.recover_and_check(PY, "uninstalled"), AppState::Absent);
    assert!(env.layer_dirs().is_empty());

    let (mut absent, mut installed) = (0, 0);
    let mut sweep = Sweep::new("install", full, 1.0);
    while !sweep.done() {
        let (ctx, killed) = sweep.kill(&env, &["install", "--yes", bundle]);
        match env.recover_and_check(PY, &ctx) {
            AppState::Absent => {
                assert!(killed, "{ctx}: finished but not installed");
                assert!(env.names("apps").is_empty(), "{ctx}");
                absent += 1;
            }
            state => {
                assert_eq!(state, fresh, "{ctx}");
                check_runs(&env, &ctx);
                env.ok(&["uninstall", "--delete-data", PY]);
                assert_eq!(env.recover_and_check(PY, &ctx), AppState::Absent);
                installed += 1;
            }
        }
    }
    sweep.report(start, &[("absent", absent), ("installed", installed)]);
    assert!(absent > 0, "no kill landed before the install completed");
}

#[test]
fn uninstall_killed_anywhere_leaves_a_working_app_or_nothing() {
    let start = Instant::now();
    let env = StoreEnv::new();
    env.install(python_bundle());
    check_runs(&env, "installed");
    let t = Instant::now();
    env.ok(&["uninstall", PY]);
    let full = t.elapsed();
    assert_eq!(env.recover_and_check(PY, "uninstalled"), AppState::Absent);
    let fresh = AppState::Installed {
        version: V1.into(),
        previous: None,
    };

    let (mut kept, mut gone) = (0, 0);
    let mut is_installed = false;
    let mut sweep = Sweep::new("uninstall", full, 2.0);
    while !sweep.done() {
        if !is_installed {
            env.install(python_bundle());
        }
        let (ctx, killed) = sweep.kill(&env, &["uninstall", PY]);
        match env.recover_and_check(PY, &ctx) {
            AppState::Absent => {
                assert!(env.layer_dirs().is_empty(), "{ctx}");
                is_installed = false;
                gone += 1;
            }
            state => {
                assert!(killed, "{ctx}: finished but still installed");
                assert_eq!(state, fresh, "{ctx}");
                check_runs(&env, &ctx);
                is_installed = true;
                kept += 1;
            }
        }
    }
    sweep.report(start, &[("still installed", kept), ("gone", gone)]);
    assert!(kept > 0, "no kill landed before the uninstall completed");
}

/// The python sample as version 3.11.99 with one more file (so its app layer is new).
fn python_v2() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let recipe = std::fs::read_to_string(src().join("samples/python3/capsa.toml")).unwrap();
        let edited = recipe
            .replace(
                &format!("version = \"{V1}\""),
                &format!("version = \"{V2}\""),
            )
            .replace(
                "[capture]\n",
                &format!("[capture]\nfiles = {{ \"{MARK}\" = \"v2.txt\" }}\n"),
            );
        assert_eq!(edited.matches(V2).count() + edited.matches(MARK).count(), 2);
        let dir = shared_tmp().join("python-v2");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("capsa.toml"), edited).unwrap();
        std::fs::write(dir.join("v2.txt"), "v2\n").unwrap();
        let out = dir.join("python-v2.capsa");
        ok(&[
            "pack",
            dir.join("capsa.toml").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        out
    })
}

#[test]
fn upgrade_killed_anywhere_keeps_v1_or_v2_working() {
    let start = Instant::now();
    let env = StoreEnv::new();
    let v2 = python_v2().to_str().unwrap();
    let fresh_v1 = || {
        if env.list().contains_key(PY) {
            env.ok(&["uninstall", "--delete-data", PY]);
        }
        env.install(python_bundle());
    };
    fresh_v1();
    let t = Instant::now();
    env.install(python_v2());
    let full = t.elapsed();
    let upgraded = AppState::Installed {
        version: V2.into(),
        previous: Some(V1.into()),
    };
    assert_eq!(env.recover_and_check(PY, "upgraded"), upgraded);
    let has_mark = format!("import os, ssl; print(os.path.exists('{MARK}'))");
    if userns() {
        assert_eq!(python(&env, &has_mark, "upgraded"), "True");
    }

    let (mut old, mut new) = (0, 0);
    let mut at_v1 = false;
    let mut sweep = Sweep::new("upgrade", full, 1.0);
    while !sweep.done() {
        if !at_v1 {
            fresh_v1();
        }
        let (ctx, killed) = sweep.kill(&env, &["install", "--yes", v2]);
        let state = env.recover_and_check(PY, &ctx);
        if state == upgraded {
            if userns() {
                assert_eq!(python(&env, &has_mark, &ctx), "True", "{ctx}: v2's files");
            }
            at_v1 = false;
            new += 1;
        } else {
            // The old state exactly: v1 and no `previous`.
            let old_state = AppState::Installed {
                version: V1.into(),
                previous: None,
            };
            assert_eq!(state, old_state, "{ctx}\n{}", env.dump());
            assert!(killed, "{ctx}: finished but not upgraded");
            if userns() {
                assert_eq!(python(&env, &has_mark, &ctx), "False", "{ctx}: v1's files");
            }
            at_v1 = true;
            old += 1;
        }
    }
    sweep.report(start, &[("v1", old), ("v2", new)]);
    assert!(old > 0, "no kill landed before the upgrade completed");
}
