//! Per-app state: `$XDG_DATA_HOME/capsa/state/<id>@<publisher>/` (see [`crate::identity`])
//! holds `upper/` and `work/` (the root's writable overlay layer) and `home/` (the private
//! home), all private (0700).
//!
//! Two locks, both `flock`s that die with their holder:
//! - `instances.lock`: every running instance holds it shared for its whole life; store
//!   commands that walk the state (reset, diff, delete) take it exclusively and refuse when
//!   they can't, so they never act on files a running app can change under them.
//! - `lock`: one run at a time owns `upper/` (overlayfs refuses an upper directory in use)
//!   and holds this exclusively. A concurrent run gets a tmpfs upper with the persistent upper
//!   stacked read-only below; the private home is shared.
//!
//! And one record: `teardown` names the sandbox (pid and start time) whose app has ended but
//! whose namespaces may still be going away (unmounting the overlay syncs the upper's
//! filesystem, and the launcher does not wait for that). Every run and store command of the
//! app waits for that process to be gone ([`wait_teardown`]) before it takes a lock, so it
//! never finds the upper still mounted, or a lock still held, by a sandbox that has ended.

use std::fs::{self, File};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::dirs::{check_overlay_path, data_dir, private_dir};
use crate::error::{prep, DataError};
use crate::identity::Identity;

/// `$XDG_DATA_HOME/capsa/state`.
pub fn state_root() -> PathBuf {
    data_dir().join("state")
}

/// The state directory of `who`.
pub fn state_dir(who: &Identity) -> PathBuf {
    state_root().join(who.dir_name())
}

/// Opens (creating) a lock file without following a symlink planted in its place.
pub fn open_lock(path: &Path) -> Result<File, DataError> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(path)
        .map_err(prep(path))
}

const fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_CLOEXEC.bits()
}

/// Whether `f` is the file at `p` now (not one unlinked or replaced since it was opened).
pub(crate) fn same_file(f: &File, p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::symlink_metadata(p)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// An app's state directories, and the locks this run holds.
#[derive(Debug)]
pub struct AppState {
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub home: PathBuf,
    /// Held (shared) for the run's lifetime: an instance is running.
    pub instance: File,
    /// Held for the run's lifetime when this run owns `upper`.
    pub upper_lock: Option<File>,
}

impl AppState {
    /// Opens the state of `who` for a run (waits while a store command holds it).
    pub fn open(who: &Identity) -> Result<Self, DataError> {
        Self::open_at(state_dir(who))
    }

    pub fn open_at(dir: PathBuf) -> Result<Self, DataError> {
        wait_teardown(&dir, TEARDOWN_LIMIT);
        let (upper, work, home) = (dir.join("upper"), dir.join("work"), dir.join("home"));
        for d in [&upper, &work, &home] {
            private_dir(d)?;
            check_overlay_path(d)?;
        }
        let lock_path = dir.join("instances.lock");
        let instance = loop {
            let f = open_lock(&lock_path)?;
            if f.try_lock().is_ok() {
                // No other instance: tidy what a killed run left, then share.
                crate::tidy::remove_recorded(&dir);
            }
            f.lock_shared().map_err(prep(&lock_path))?;
            // A store command may have deleted the state (lock file included) while we
            // waited: then lock the new one.
            if same_file(&f, &lock_path) {
                break f;
            }
            for d in [&upper, &work, &home] {
                private_dir(d)?;
            }
        };
        let lock_path = dir.join("lock");
        let f = open_lock(&lock_path)?;
        let upper_lock = match f.try_lock() {
            Ok(()) => Some(f),
            Err(fs::TryLockError::WouldBlock) => None,
            Err(fs::TryLockError::Error(e)) => return Err(prep(&lock_path)(e)),
        };
        Ok(Self {
            dir,
            upper,
            work,
            home,
            instance,
            upper_lock,
        })
    }

    /// Records that the sandbox `pid` (started at `started`, see [`process_start`]) has ended
    /// its app and is tearing down (best effort: without the record, the next run may find
    /// the upper briefly busy and run on a temporary one).
    pub fn record_teardown(&self, pid: i32, started: u64) {
        // One small write in place (no temporary and rename on the exit path): a reader that
        // catches it half-written finds a malformed record, which means "nothing to wait for".
        use std::io::Write;
        let file = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc_o_nofollow())
            .open(self.dir.join(TEARDOWN));
        if let Ok(mut f) = file {
            let _ = f.write_all(format!("{pid} {started}\n").as_bytes());
        }
    }

    /// Once the app has ended: the instance lock, now exclusive, when no other instance
    /// runs (so this run may tidy the state), else `None`. (Converting a flock is not atomic,
    /// so this is only for a run whose app is gone.)
    pub fn last_out(self) -> Option<File> {
        drop(self.upper_lock);
        self.instance.try_lock().ok().map(|()| self.instance)
    }
}

/// Records, beside `upper`, the mount points the launcher creates in the app's root (in
/// `mountpoints.json`, which the sandbox cannot write), so `capsa diff` can tell them from the
/// app's own changes.
pub fn record_mountpoints<'a>(
    upper: &Path,
    dsts: impl Iterator<Item = &'a Path>,
) -> Result<(), DataError> {
    let file = upper.with_file_name("mountpoints.json");
    let mut all: std::collections::BTreeSet<String> = fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let before = all.len();
    for dst in dsts {
        let mut p = Some(dst);
        while let Some(d) = p.filter(|d| *d != Path::new("/")) {
            all.insert(d.display().to_string());
            p = d.parent();
        }
    }
    if all.len() != before || !file.exists() {
        fs::write(&file, serde_json::to_vec(&all).expect("serializes")).map_err(prep(&file))?;
    }
    Ok(())
}

const TEARDOWN: &str = "teardown";

/// How long a run or store command waits for an earlier sandbox's teardown (its flush of the
/// upper's filesystem) before it goes on regardless.
pub const TEARDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// When process `pid` started, in clock ticks after boot (`/proc/PID/stat` field 22): with
/// the pid, it names one process, whatever pids are reused later.
pub fn process_start(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Waits (at most `limit`) until the sandbox recorded in `dir/teardown`, if it still exists,
/// has exited. A missing, malformed or stale record (its process is gone, or the pid now
/// names another process) means there is nothing to wait for.
pub fn wait_teardown(dir: &Path, limit: std::time::Duration) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    let Some((pid, started)) = read_teardown(&dir.join(TEARDOWN)) else {
        return;
    };
    // (from_raw asserts a non-negative pid; 0 is not a process either.)
    let Some(raw) = Some(pid).filter(|p| *p > 0).and_then(Pid::from_raw) else {
        return;
    };
    // Open the pidfd first, then check it is still the same process: the check and the wait
    // are then about one process.
    let Ok(fd) = pidfd_open(raw, PidfdFlags::empty()) else {
        return;
    };
    if process_start(pid) != Some(started) {
        return;
    }
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let t = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&t)) {
            Err(rustix::io::Errno::INTR) => continue,
            _ => return,
        }
    }
}

fn read_teardown(path: &Path) -> Option<(i32, u64)> {
    use std::io::Read;
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(64)
        .read_to_string(&mut text)
        .ok()?;
    let mut it = text.split_ascii_whitespace();
    let pid = it.next()?.parse().ok()?;
    let started = it.next()?.parse().ok()?;
    Some((pid, started))
}

#[cfg(test)]
mod teardown_tests {
    use super::*;

    #[test]
    fn the_start_time_names_this_process() {
        let me = std::process::id() as i32;
        let t = process_start(me).expect("own start time");
        assert_eq!(process_start(me), Some(t));
        assert_eq!(process_start(i32::MAX), None);
    }

    #[test]
    fn a_recorded_teardown_is_waited_for_and_a_stale_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .unwrap();
        let pid = sleeper.id() as i32;
        let started = process_start(pid).unwrap();
        fs::write(
            dir.path().join(TEARDOWN),
            format!("{pid} {}\n", started + 1),
        )
        .unwrap();
        let t0 = std::time::Instant::now();
        wait_teardown(dir.path(), std::time::Duration::from_secs(5));
        assert!(t0.elapsed().as_millis() < 200, "waited for another process");
        fs::write(dir.path().join(TEARDOWN), format!("{pid} {started}\n")).unwrap();
        // The sleeper is our child: reap it as soon as it exits, as init would.
        let reaper = std::thread::spawn(move || sleeper.wait());
        wait_teardown(dir.path(), std::time::Duration::from_secs(5));
        assert!(
            t0.elapsed().as_millis() >= 250,
            "did not wait for the sandbox"
        );
        reaper.join().unwrap().unwrap();
        for junk in ["", "x y", "-1 5", "1", &"9".repeat(5000)] {
            fs::write(dir.path().join(TEARDOWN), junk).unwrap();
            wait_teardown(dir.path(), std::time::Duration::from_secs(5));
        }
    }
}
