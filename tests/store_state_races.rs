//! End to end, `reset`, `diff` and `uninstall --delete-data` against what a sandboxed app can do
//! to its own state (project issue 7): the app writes its overlay upper and private home, and
//! can swap a directory there for a symlink to a host folder at any moment. `reset` and `diff`
//! never follow such a link, even while a helper swaps it back and forth as fast as it can; and
//! while an instance runs (it holds a shared flock on `state/<id>@<publisher>/instances.lock`, or the
//! exclusive one on `lock`) all three refuse, naming the app, and touch nothing.
//! No sandbox needed: the test plants in the state what the app could have written.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use common::*;

const HELLO: &str = "org.capsa.Hello";

/// Swaps `DIR/d` and `DIR/d.link` with `renameat2(RENAME_EXCHANGE)` until killed, printing
/// `ready` after the first swap: each call flips what `d` is, atomically.
const SWAPPER_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int dir = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (argc != 2 || dir < 0) return 2;
    while (renameat2(dir, "d", dir, "d.link", RENAME_EXCHANGE) != 0) {}
    write(1, "ready\n", 6);
    for (;;) renameat2(dir, "d", dir, "d.link", RENAME_EXCHANGE);
}
"#;

fn swapper_binary() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let dir = shared_tmp().join("swapper");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("swapper.c"), SWAPPER_C).unwrap();
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let o = Command::new(cc)
            .args(["-O2", "-o", "swapper", "swapper.c"])
            .current_dir(&dir)
            .output()
            .expect("run cc");
        assert!(
            o.status.success(),
            "building the swapper failed: {}",
            text(&o)
        );
        dir.join("swapper")
    })
}

/// The swapper running on `dir`, killed on drop.
struct Swapper(Child);

impl Swapper {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(swapper_binary())
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run the swapper");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n", "the swapper swapped");
        Self(child)
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A host directory no store command may touch: mode 0500, a file and a 0500 subdirectory.
/// Made writable again on drop, so the temporary directory can be removed.
struct Host(PathBuf);

impl Host {
    fn new(env: &StoreEnv) -> Self {
        let h = env.dir.path().join("host");
        fs::create_dir_all(h.join("host-sub")).unwrap();
        fs::write(h.join("host-marker"), "host").unwrap();
        fs::write(h.join("host-sub/file"), "host").unwrap();
        chmod(&h.join("host-sub"), 0o500);
        chmod(&h, 0o500);
        Self(h)
    }

    /// Panics unless the host directory is exactly as created.
    fn check(&self, when: &str) {
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&self.0), 0o500, "the host dir's mode changed {when}");
        assert_eq!(
            mode(&self.0.join("host-sub")),
            0o500,
            "host-sub's mode changed {when}"
        );
        assert_eq!(
            tree(&self.0),
            ["host-marker", "host-sub", "host-sub/file"],
            "the host dir's contents changed {when}"
        );
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700));
        let _ = fs::set_permissions(self.0.join("host-sub"), fs::Permissions::from_mode(0o700));
    }
}

fn state(env: &StoreEnv) -> PathBuf {
    env.store().join("state").join(format!("{HELLO}@local"))
}

/// What a run leaves and the app writes: files in upper and home, read-only directories, the
/// mode-000 `work/work` overlayfs leaves, and in upper `d/` (with read-only subdirectories)
/// beside `d.link`, a symlink to the host directory, for the swapper.
fn plant(env: &StoreEnv, host: &Host) -> PathBuf {
    let s = state(env);
    let upper = s.join("upper");
    fs::create_dir_all(upper.join("etc")).unwrap();
    fs::write(upper.join("etc/app.conf"), "x").unwrap();
    for i in 0..6 {
        let d = upper.join(format!("d/s{i}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), "x").unwrap();
        chmod(&d, 0o500);
    }
    symlink(&host.0, upper.join("d.link")).unwrap();
    fs::create_dir_all(s.join("work/work")).unwrap();
    chmod(&s.join("work/work"), 0);
    fs::create_dir_all(s.join("home/.config")).unwrap();
    fs::write(s.join("home/.config/settings"), "x").unwrap();
    upper
}

/// Every path below `p` with its mode, size and link target (unreadable directories are
/// recorded, not entered).
fn snapshot(p: &Path) -> BTreeMap<PathBuf, (u32, u64, Option<PathBuf>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            let m = fs::symlink_metadata(&path).unwrap();
            out.insert(path.clone(), (m.mode(), m.len(), fs::read_link(&path).ok()));
            if m.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

#[test]
fn reset_and_diff_never_follow_a_symlink_the_app_planted() {
    let env = StoreEnv::new();
    env.install(hello_bundle());
    let host = Host::new(&env);
    let upper = plant(&env, &host);
    // Where a directory was, the app put a link to the host directory.
    fs::create_dir_all(upper.join("usr/share")).unwrap();
    symlink(&host.0, upper.join("usr/share/doc")).unwrap();
    let diff = env.ok(&["diff", HELLO]);
    assert!(diff.lines().any(|l| l == "A /usr/share/doc"), "{diff}");
    assert!(!diff.contains("host-"), "diff followed the link: {diff}");
    env.ok(&["reset", HELLO]);
    host.check("after reset");
    for d in ["upper", "work", "home"] {
        assert!(
            fs::symlink_metadata(state(&env).join(d)).is_err(),
            "{d} is gone"
        );
    }

    // The same while `d` is swapped for the link and back as fast as the kernel can.
    for round in 0..20 {
        let upper = plant(&env, &host);
        let swapper = Swapper::start(&upper);
        let diff = env.run(&["diff", "--json", HELLO]);
        let reset = env.run(&["reset", HELLO]);
        drop(swapper);
        host.check(&format!("in round {round}"));
        assert!(diff.status.success(), "round {round}: {}", text(&diff));
        let diff = text(&diff);
        assert!(
            !diff.contains("host-"),
            "round {round}: diff left the tree: {diff}"
        );
        assert!(reset.status.success(), "round {round}: {}", text(&reset));
        assert!(
            fs::symlink_metadata(&upper).is_err(),
            "round {round}: upper is gone"
        );
    }
}

#[test]
fn a_running_instance_blocks_reset_diff_and_delete_data() {
    let env = StoreEnv::new();
    env.install(hello_bundle());
    let host = Host::new(&env);
    plant(&env, &host);
    let refused = |args: &[&str], why: &str| {
        let before = snapshot(&state(&env));
        let out = env.fails(args);
        assert!(
            out.contains(&format!(
                "{HELLO} is running: close it first (reset, diff and --delete-data never touch a running app's files)"
            )),
            "{args:?} {why}: {out}"
        );
        assert_eq!(
            snapshot(&state(&env)),
            before,
            "{args:?} {why} touched the state"
        );
    };

    // Two running instances, each with its shared lock.
    let open = |p: PathBuf| {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .unwrap()
    };
    let instances: Vec<fs::File> = (0..2)
        .map(|_| open(state(&env).join("instances.lock")))
        .collect();
    for f in &instances {
        f.try_lock_shared().unwrap();
    }
    refused(&["reset", HELLO], "with instances running");
    refused(&["diff", HELLO], "with instances running");
    drop(instances);

    // The run that owns upper/ (the old protocol): an exclusive lock on state/<id>/lock.
    let owner = open(state(&env).join("lock"));
    owner.try_lock().unwrap();
    refused(&["reset", HELLO], "with the upper's owner running");
    refused(&["diff", HELLO], "with the upper's owner running");
    drop(owner);

    let instance = open(state(&env).join("instances.lock"));
    instance.try_lock_shared().unwrap();
    refused(
        &["uninstall", "--delete-data", HELLO],
        "with an instance running",
    );
    drop(instance);

    // Closed: everything works again.
    env.install(hello_bundle());
    assert!(env.ok(&["diff", HELLO]).contains("A /etc/app.conf"));
    env.ok(&["reset", HELLO]);
    assert!(fs::symlink_metadata(state(&env).join("upper")).is_err());
    env.ok(&["uninstall", "--delete-data", HELLO]);
    assert!(
        fs::symlink_metadata(state(&env)).is_err(),
        "the state is gone"
    );
    host.check("at the end");
}
