//! The static capsa on an older distribution: Debian 11 "bullseye" (glibc 2.31, where this
//! host has 2.36), as a minimal root made by `debootstrap --variant=minbase`, in two layouts:
//! merged /usr (`/lib -> usr/lib`) and split (`--no-merged-usr`: /lib and /usr/lib apart).
//!
//! Each root is entered as a container with bwrap (pivot_root: from inside a plain chroot the
//! kernel refuses capsa's own user namespace), the root read-only, a private /mnt for the
//! store and caches, and the files under test bound read-only at /opt/capsa (the proc it
//! gets: [`Container::run`]). Inside, the python3 bundle packed on this host runs from the
//! file and installed; the host's python3.11 copied in does not (glibc symbol versions are
//! missing); a self-executable bundle runs without any capsa in the root.
//!
//! The roots are cached in `/var/tmp/capsa-roots/` (or `$CAPSA_ROOTS`) between runs. Only
//! root can debootstrap; a root is built in a temporary directory and renamed into place when
//! complete, so an interrupted build never looks like a root. An unprivileged user (CI's
//! second pass) uses the cache. Without the cache, debootstrap, bwrap or the archive the
//! tests are skipped, unless `CAPSA_REQUIRE_PORTABLE` (or `CI=true`) makes that a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;

const MIRROR: &str = "http://deb.debian.org/debian";
/// Where the archive is reached (checked before a build, to tell "offline" from a failure).
const MIRROR_HOST: (&str, u16) = ("deb.debian.org", 80);
/// The roots, kept between runs and shared by the root and the unprivileged pass
/// (`CAPSA_ROOTS` names another folder).
const CACHE: &str = "/var/tmp/capsa-roots";
/// Where the files under test appear inside the container (read-only).
const OPT: &str = "/opt/capsa";
const PYTHON_CHECK: &str = "import ssl, sqlite3; print(1)";

/// The two bullseye roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    MergedUsr,
    SplitUsr,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::MergedUsr => "bullseye-minbase-merged-usr",
            Layout::SplitUsr => "bullseye-minbase-split-usr",
        }
    }

    fn debootstrap_flag(self) -> &'static str {
        match self {
            Layout::MergedUsr => "--merged-usr",
            Layout::SplitUsr => "--no-merged-usr",
        }
    }
}

fn cache() -> PathBuf {
    std::env::var_os("CAPSA_ROOTS").map_or_else(|| PathBuf::from(CACHE), PathBuf::from)
}

fn required() -> bool {
    std::env::var_os("CAPSA_REQUIRE_PORTABLE").is_some()
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips the test saying `why`, or fails it when the portability tests are required.
fn skip<T>(why: &str) -> Option<T> {
    assert!(
        !required(),
        "the bullseye tests are required (CAPSA_REQUIRE_PORTABLE or CI=true) but {why}"
    );
    eprintln!("skipped: {why}");
    None
}

/// The cached root of `layout` (built first when missing and we are root), or a skip.
fn bullseye(layout: Layout) -> Option<&'static Path> {
    static MERGED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    static SPLIT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let cell = match layout {
        Layout::MergedUsr => &MERGED,
        Layout::SplitUsr => &SPLIT,
    };
    if !have("bwrap") {
        return skip("bwrap is not installed (apt-get install bubblewrap)");
    }
    if !userns() {
        return None;
    }
    match cell.get_or_init(|| obtain(layout)) {
        Ok(root) => Some(root),
        Err(why) => skip(why),
    }
}

/// The cached root, or builds it; `Err` says why it can be neither.
fn obtain(layout: Layout) -> Result<PathBuf, String> {
    let root = cache().join(layout.name());
    // Only a complete root is ever renamed to this name.
    if root.join("etc/debian_version").is_file() {
        return Ok(root);
    }
    if host_ids().0 != 0 {
        return Err(format!(
            "no cached root at {} and debootstrap needs root: run this test once as root \
             (as .ci/run does) to build it",
            root.display()
        ));
    }
    if !Path::new("/usr/sbin/debootstrap").exists() {
        return Err("debootstrap is not installed (apt-get install debootstrap)".into());
    }
    if !archive_reachable() {
        return Err(format!("the Debian archive {MIRROR} cannot be reached"));
    }
    build(layout, &root);
    Ok(root)
}

fn archive_reachable() -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    let Ok(addrs) = MIRROR_HOST.to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(10)).is_ok())
}

/// debootstraps `layout` into a temporary directory next to `root`, then renames it there.
fn build(layout: Layout, root: &Path) {
    let cache = cache();
    std::fs::create_dir_all(&cache).unwrap();
    set_mode(&cache, 0o755);
    remove_stale_builds(&cache);
    let pid = std::process::id();
    let tmp = cache.join(format!(".building-{}-{pid}", layout.name()));
    let log = cache.join(format!(".building-{}-{pid}.log", layout.name()));
    let out = std::fs::File::create(&log).unwrap();
    let started = std::time::Instant::now();
    // setpriv: debootstrap dies with this test, rather than writing on into a directory
    // that the next run, seeing this pid gone, removes.
    let st = Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "debootstrap", "--variant=minbase"])
        .args([layout.debootstrap_flag(), "bullseye"])
        .arg(&tmp)
        .arg(MIRROR)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stderr(out.try_clone().unwrap())
        .stdout(out)
        .status()
        .expect("run setpriv (util-linux) and debootstrap");
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !mounted_below(&tmp),
        "debootstrap left file systems mounted below {}",
        tmp.display()
    );
    if !st.success() {
        remove_all(&tmp);
        let tail: Vec<&str> = said.lines().rev().take(30).collect();
        panic!(
            "debootstrap {} failed ({st}), log {}:\n{}",
            layout.name(),
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    set_mode(&tmp, 0o755);
    if std::fs::rename(&tmp, root).is_err() {
        // Another build finished first: its root is as good.
        assert!(
            root.join("etc/debian_version").is_file(),
            "rename to {root:?}"
        );
        remove_all(&tmp);
    }
    let _ = std::fs::remove_file(&log);
    eprintln!("built {} in {:.0?}", root.display(), started.elapsed());
}

/// Removes the temporary directories of builds whose process has ended (never one with a
/// file system still mounted below it: deleting through a mount would reach the host).
fn remove_stale_builds(cache: &Path) {
    for e in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(".building-") else {
            continue;
        };
        let pid = rest
            .trim_end_matches(".log")
            .rsplit('-')
            .next()
            .unwrap_or("");
        let ended = pid
            .parse::<u32>()
            .is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists());
        if ended && !mounted_below(&e.path()) {
            remove_all(&e.path());
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Whether any mount point of this mount namespace lies at or below `dir`.
fn mounted_below(dir: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| Path::new(m).starts_with(dir))
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A container on a bullseye root: a private writable /mnt and files bound read-only.
struct Container {
    root: &'static Path,
    work: tempfile::TempDir,
    files: Vec<(PathBuf, String)>,
}

impl Container {
    fn new(root: &'static Path) -> Self {
        let work = tempfile::Builder::new()
            .prefix("capsa-bullseye-")
            .tempdir_in(shared_tmp())
            .unwrap();
        set_mode(work.path(), 0o755);
        for d in ["home", "data", "cache", "config", "state"] {
            std::fs::create_dir(work.path().join(d)).unwrap();
        }
        Self {
            root,
            work,
            files: Vec::new(),
        }
    }

    /// Binds the host file `host` read-only at `/opt/capsa/NAME`.
    fn with(mut self, host: &Path, name: &str) -> Self {
        self.files
            .push((host.to_path_buf(), format!("{OPT}/{name}")));
        self
    }

    /// Runs `argv` inside, in /opt/capsa, with a clean environment pointing at /mnt.
    fn run(&self, argv: &[&str]) -> Output {
        let mut c = Command::new("bwrap");
        c.arg("--ro-bind").arg(self.root).arg("/");
        // capsa mounts a fresh proc for its own pid namespace, which the kernel allows only
        // where a proc is already fully visible. An unprivileged bwrap gives the container
        // its own pid namespace and proc; as root, bwrap covers /proc/sys (and others)
        // read-only, which forbids that mount (EPERM), so root's container sees the host's.
        if host_ids().0 == 0 {
            c.args(["--bind", "/proc", "/proc"]);
        } else {
            c.args(["--unshare-pid", "--proc", "/proc"]);
        }
        c.args(["--dev", "/dev", "--tmpfs", "/tmp"]);
        c.arg("--bind").arg(self.work.path()).arg("/mnt");
        c.args(["--tmpfs", "/opt"]);
        for (host, inside) in &self.files {
            c.arg("--ro-bind").arg(host).arg(inside);
        }
        c.args(["--chdir", OPT, "--die-with-parent", "--clearenv"]);
        for (k, v) in [
            ("PATH", "/opt/capsa:/usr/sbin:/usr/bin:/sbin:/bin"),
            ("HOME", "/mnt/home"),
            ("XDG_DATA_HOME", "/mnt/data"),
            ("XDG_CACHE_HOME", "/mnt/cache"),
            ("XDG_CONFIG_HOME", "/mnt/config"),
            ("XDG_STATE_HOME", "/mnt/state"),
            ("TMPDIR", "/tmp"),
            ("LANG", "C.UTF-8"),
        ] {
            c.args(["--setenv", k, v]);
        }
        c.arg("--").args(argv).stdin(Stdio::null());
        c.output().expect("run bwrap")
    }

    /// Runs `argv` inside and asserts success; returns stdout, trimmed.
    fn ok(&self, argv: &[&str]) -> String {
        let o = self.run(argv);
        assert!(
            o.status.success(),
            "{argv:?} failed in {}: {}",
            self.root.display(),
            text(&o)
        );
        stdout(&o)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        make_dirs_writable(self.work.path());
    }
}

/// The root is the one meant: bullseye's glibc, and /lib merged into /usr or not.
fn check_root(c: &Container, layout: Layout) {
    let ldd = c.ok(&["ldd", "--version"]);
    assert!(
        ldd.lines().next().is_some_and(|l| l.ends_with(" 2.31")),
        "not glibc 2.31: {ldd}"
    );
    let lib = c.root.join("lib").symlink_metadata().unwrap();
    let merged = lib.file_type().is_symlink();
    assert_eq!(merged, layout == Layout::MergedUsr, "{:?}: /lib", layout);
}

/// The bundle file runs with the static capsa; installed, it runs by its id.
fn python_bundle_runs(layout: Layout) {
    let Some(root) = bullseye(layout) else { return };
    let c = Container::new(root)
        .with(&capsa_bin(), "capsa")
        .with(python_bundle(), "python3.capsa");
    check_root(&c, layout);
    let check = ["--", "-c", PYTHON_CHECK];
    assert_eq!(
        c.ok(&[&["capsa", "run", "python3.capsa"][..], &check].concat()),
        "1"
    );
    c.ok(&["capsa", "install", "--yes", "python3.capsa"]);
    let by_id = [&["capsa", "run", "org.python.Python3"][..], &check].concat();
    assert_eq!(c.ok(&by_id), "1");
}

#[test]
fn the_python_bundle_runs_and_installs_on_merged_usr_bullseye() {
    python_bundle_runs(Layout::MergedUsr);
}

#[test]
fn the_python_bundle_runs_and_installs_on_split_usr_bullseye() {
    python_bundle_runs(Layout::SplitUsr);
}

/// What the bundle is for: the host's own python3.11, copied in with the one library the
/// root lacks (libexpat, as a tarball of the program would carry it), needs a newer glibc.
#[test]
fn the_hosts_python_copied_in_fails_for_its_glibc() {
    let host_python = Path::new("/usr/bin/python3.11");
    let expat = std::fs::canonicalize("/lib/x86_64-linux-gnu/libexpat.so.1");
    let (Some(root), Ok(expat), true) = (bullseye(Layout::MergedUsr), expat, host_python.exists())
    else {
        return; // (python3.11 is a build dependency of the samples: .ci/run installs it)
    };
    let c = Container::new(root)
        .with(host_python, "python3.11")
        .with(&expat, "lib/libexpat.so.1");
    let o = c.run(&[
        "env",
        "LD_LIBRARY_PATH=/opt/capsa/lib",
        "./python3.11",
        "-c",
        PYTHON_CHECK,
    ]);
    assert!(!o.status.success(), "the host's python ran: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("version `GLIBC_2.3") && err.contains("not found"),
        "not a glibc version error: {err}"
    );
}

/// A self-executable bundle runs on its own: no capsa in the root, the stub is capsa.
#[test]
fn the_self_executable_python_runs_on_bullseye() {
    let roots: Vec<(Layout, &Path)> = [Layout::MergedUsr, Layout::SplitUsr]
        .into_iter()
        .filter_map(|l| bullseye(l).map(|r| (l, r)))
        .collect();
    if roots.is_empty() {
        return;
    }
    let out = shared_tmp().join("python3-self-exec.capsa");
    let recipe = src().join("samples/python3/capsa.toml");
    ok(&[
        "pack",
        "--self-exec",
        "-o",
        out.to_str().unwrap(),
        recipe.to_str().unwrap(),
    ]);
    set_mode(&out, 0o755);
    for (layout, root) in roots {
        let c = Container::new(root).with(&out, "python3.capsa");
        check_root(&c, layout);
        assert_eq!(c.ok(&["./python3.capsa", "-c", PYTHON_CHECK]), "1");
    }
}
