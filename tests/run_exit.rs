//! End to end: how a sandbox ends. `capsa run` returns the app's status as soon as the app
//! has ended, while the sandbox's teardown (which syncs the persistent upper's filesystem)
//! goes on; nothing the app made durable is lost, the next run of the app waits for the
//! teardown and finds its state, and the launcher's single-threaded check before clone holds
//! even when its unpacking threads are slow to be released (under `strace -f`).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// Under `strace -f` an exited thread is counted until the tracer has reaped it, so a check of
/// the thread count right after the unpacking threads are joined failed on most cold starts
/// ("the launcher must be single-threaded").
#[test]
fn cold_starts_under_strace_clone_the_sandbox() {
    if !userns() || !have_strace() {
        return;
    }
    let bundle = hello_bundle();
    for round in 0..12 {
        let iso = Isolated::new(); // an empty layer cache: every layer is unpacked, in threads
        let mut c = Command::new("strace");
        c.args(["-f", "-qq", "-o", "/dev/null"])
            .arg(capsa_bin())
            .args(["run", bundle.to_str().unwrap()])
            .envs(iso.env())
            .stdin(Stdio::null());
        let o = c.output().expect("run strace");
        assert!(
            o.status.success() && text(&o).contains("hello from capsa"),
            "round {round}: {}",
            text(&o)
        );
    }
}

/// Each run appends to a file in the app's persistent root and prints what it found; the
/// next run starts at once (while the last one's teardown may still be flushing 64 MB of
/// other data) and must find every earlier line: it waited for the teardown and owns the
/// persistent upper, instead of running on a temporary one.
#[test]
fn back_to_back_runs_keep_their_state_while_teardowns_flush() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let bundle = python_bundle();
    let dirty = iso.path().join("dirty");
    let script = "import os\n\
                  p = '/usr/counter'\n\
                  n = len(open(p).read().splitlines()) if os.path.exists(p) else 0\n\
                  open(p, 'a').write('x\\n')\n\
                  print(n)";
    for round in 0..6 {
        // Unrelated dirty data on the filesystem of the app's state, for the teardown to sync.
        std::fs::write(&dirty, vec![round as u8; 64 << 20]).unwrap();
        let o = iso.run(&["run", "--yes", bundle.to_str().unwrap(), "--", "-c", script]);
        assert!(o.status.success(), "round {round}: {}", text(&o));
        assert_eq!(stdout(&o), round.to_string(), "round {round}: {}", text(&o));
    }
    // A store command right after a run never mistakes the ending sandbox for a running app.
    let o = iso.run(&["install", "--yes", bundle.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for round in 0..6 {
        std::fs::write(&dirty, vec![round as u8; 64 << 20]).unwrap();
        let o = iso.run(&[
            "run",
            "org.python.Python3",
            "--",
            "-c",
            "open('/usr/x', 'w')",
        ]);
        assert!(o.status.success(), "round {round}: {}", text(&o));
        let o = iso.run(&["reset", "org.python.Python3"]);
        assert!(o.status.success(), "round {round}: {}", text(&o));
    }
}

/// A loop-mounted ext4 filesystem (commit=60, so nothing reaches its disk unless synced),
/// unmounted on drop.
struct LoopFs {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl LoopFs {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("capsa-loopfs-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(1 << 30) // sparse; the debug capsa binary alone is over 150 MB
            .unwrap();
        sh(&["mkfs.ext4", "-q", "-F", img.to_str().unwrap()]);
        std::fs::create_dir(dir.path().join("m")).unwrap();
        let mut fs = Self {
            dir,
            mounted: false,
        };
        fs.mount();
        fs
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("m")
    }
    fn mount(&mut self) {
        let img = self.dir.path().join("fs.img");
        sh(&[
            "mount",
            "-o",
            "loop,commit=60",
            img.to_str().unwrap(),
            self.root().to_str().unwrap(),
        ]);
        self.mounted = true;
    }
    /// Unmounts once the killed sandbox's teardown has let go of the filesystem (30 s at most).
    fn umount_when_free(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let o = Command::new("umount").arg(self.root()).output().unwrap();
            if o.status.success() {
                self.mounted = false;
                return;
            }
            assert!(std::time::Instant::now() < deadline, "umount: {}", text(&o));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    /// What a power cut does: the filesystem stops at once, its journal not flushed, and
    /// what was not on its disk is lost (EXT4_IOC_SHUTDOWN with EXT4_GOING_FLAGS_NOLOGFLUSH,
    /// through python3's ioctl).
    fn crash(&self) {
        let code = "import fcntl, os, struct, sys\n\
                    fd = os.open(sys.argv[1], os.O_RDONLY)\n\
                    fcntl.ioctl(fd, 0x8004587D, struct.pack('I', 2))";
        let python = ["/usr/bin/python3", "/usr/bin/python3.11"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("python3");
        sh(&[python, "-c", code, self.root().to_str().unwrap()]);
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(self.root()).status();
        }
    }
}

fn sh(argv: &[&str]) {
    let o = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(o.status.success(), "{argv:?}: {}", text(&o));
}

/// The app writes one file and fsyncs it, writes another without, and says so; the disk then
/// "loses power" while the app still runs, and the whole sandbox is killed. After a remount,
/// the fsynced file is in the app's persistent root, and the other is not (which shows the
/// crash was real). Needs root for the loop mount; the sandbox runs as `capsa-ci` when that
/// user exists (as in CI), else as root.
#[test]
fn an_fsync_in_the_app_survives_a_crash_of_the_disk() {
    if !userns() {
        return;
    }
    if host_ids().0 != 0 {
        eprintln!("skipped: the loop-mounted filesystem needs root (CI runs this as root)");
        return;
    }
    let mut fs = LoopFs::new();
    let root = fs.root();
    // The binary and the bundle, where the sandbox's user can read them.
    let bin = root.join("capsa");
    std::fs::copy(capsa_bin(), &bin).unwrap();
    let bundle = root.join("python3.capsa");
    std::fs::copy(python_bundle(), &bundle).unwrap();
    let user = ci_user();
    if let Some(u) = &user {
        sh(&["chown", "-R", u, root.to_str().unwrap()]);
    }
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = "import os, sys, time\n\
                  f = open('/usr/durable', 'w'); f.write('written and fsynced'); f.flush()\n\
                  os.fsync(f.fileno()); f.close()\n\
                  open('/usr/volatile', 'w').write('written, not synced')\n\
                  print('ready', flush=True)\n\
                  time.sleep(60)";
    let mut c = match &user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]);
            c
        }
        None => Command::new("env"),
    };
    let at = |var: &str, dir: &str| format!("{var}={}", root.join(dir).display());
    c.args(["env", "-i", "PATH=/usr/bin:/bin"])
        .arg(format!("HOME={}", root.join("home").display()))
        .args([
            at("XDG_DATA_HOME", "data"),
            at("XDG_CACHE_HOME", "cache"),
            at("XDG_CONFIG_HOME", "config"),
        ])
        .arg(&bin)
        .args(["run", "--yes", bundle.to_str().unwrap(), "--", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    std::fs::create_dir(root.join("home")).unwrap();
    if let Some(u) = &user {
        sh(&["chown", u, root.join("home").to_str().unwrap()]);
    }
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the app did not start");
    fs.crash();
    // The whole sandbox: runuser, capsa and (by its parent-death signal) pid 1 and the app.
    kill_tree(child.id());
    let _ = child.wait();
    fs.umount_when_free();
    fs.mount();
    let state = root.join("data/capsa/state");
    let upper = only_dir(&state).join("upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("usr/durable"))
            .ok()
            .as_deref(),
        Some("written and fsynced"),
        "an fsync inside the sandbox did not reach the disk"
    );
    assert!(
        std::fs::read_to_string(upper.join("usr/volatile")).map_or(true, |t| t.is_empty()),
        "unsynced data survived: the crash was not real, the test proves nothing"
    );
}

fn ci_user() -> Option<String> {
    Command::new("id")
        .arg("capsa-ci")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then(|| "capsa-ci".to_owned())
}

/// SIGKILL to `pid` and every descendant.
fn kill_tree(pid: u32) {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", all[i]))
            .unwrap_or_default();
        all.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
        i += 1;
    }
    for p in all {
        let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
    }
}

fn only_dir(p: &Path) -> PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}
