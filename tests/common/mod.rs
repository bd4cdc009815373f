//! Helpers for the end-to-end tests: run the real `capsa` binary, build the samples, run a
//! program inside an extracted bundle tree with nothing from the host (`unshare -r -R`).
//!
//! `CAPSA_BIN` and `CAPSA_SRC` override the binary and the source tree, so `.ci/run` can run the
//! same compiled tests as an unprivileged user from a copy. With `CAPSA_REQUIRE_SANDBOX=1` (CI)
//! a missing user namespace fails the tests instead of skipping them.

#![allow(dead_code)]

pub mod nginx;
pub mod repo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn capsa_bin() -> PathBuf {
    std::env::var_os("CAPSA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_capsa")))
}

pub fn src() -> PathBuf {
    std::env::var_os("CAPSA_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `capsa ARGS` with a clean environment for reproducibility-sensitive variables.
pub fn capsa(args: &[&str]) -> Command {
    let mut c = Command::new(capsa_bin());
    c.args(args).env_remove("SOURCE_DATE_EPOCH");
    c
}

/// Runs `capsa ARGS` and returns its output.
pub fn run(args: &[&str]) -> Output {
    capsa(args).output().expect("run capsa")
}

/// The standard output of `o`, trimmed.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "capsa {args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts failure (exit 1) and returns stdout+stderr.
pub fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "capsa {args:?} should fail with 1: {}",
        text(&o)
    );
    text(&o)
}

/// A temporary directory that lives for the whole test binary.
pub fn shared_tmp() -> &'static Path {
    // A static is never dropped, so each test process names its directory after its pid and
    // removes those of earlier test processes that have ended.
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Not under /tmp: the sandbox provides its own /tmp, so pack never captures files
        // there, and tests pack fixture apps from this directory.
        let tmp = PathBuf::from("/var/tmp");
        if let Ok(rd) = std::fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(pid) = name
                    .strip_prefix("capsa-e2e-")
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    remove_all(&e.path());
                }
            }
        }
        let dir = tmp.join(format!("capsa-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Deletes a tree, first giving back write access to directories that lack it (overlayfs
/// leaves a mode-000 `work/work`, unpacked layers have read-only directories).
pub fn remove_all(p: &Path) {
    make_dirs_writable(p);
    let _ = std::fs::remove_dir_all(p);
}

/// Gives the owner access to every directory below `p` (and `p`), so it can be deleted.
pub fn make_dirs_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
}

/// Copies the hello sample into `dir` and builds it there; returns the recipe path.
pub fn build_hello(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["hello.c", "capsa.toml", "build.sh"] {
        std::fs::copy(src().join("samples/hello").join(f), dir.join(f)).unwrap();
    }
    let st = Command::new("sh")
        .arg(dir.join("build.sh"))
        .status()
        .expect("run build.sh");
    assert!(st.success(), "building the hello sample failed");
    dir.join("capsa.toml")
}

/// The hello sample packed once per test binary.
pub fn hello_bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let recipe = build_hello(&shared_tmp().join("hello"));
        let out = shared_tmp().join("hello.capsa");
        ok(&[
            "pack",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        out
    })
}

/// The python3 sample packed once per test binary, at the default level like the hello sample
/// (layers are shared only between bundles packed at the same level).
pub fn python_bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let out = shared_tmp().join("python3.capsa");
        let recipe = src().join("samples/python3/capsa.toml");
        ok(&[
            "pack",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        out
    })
}

/// Whether unprivileged user namespaces work here; fails the test when CI requires them.
pub fn userns() -> bool {
    static U: OnceLock<bool> = OnceLock::new();
    let available = *U.get_or_init(|| {
        Command::new("unshare")
            .args(["-r", "true"])
            .status()
            .is_ok_and(|s| s.success())
    });
    if !available {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_SANDBOX").is_none(),
            "user namespaces are required (CAPSA_REQUIRE_SANDBOX) but unavailable"
        );
        eprintln!("skipped: no unprivileged user namespaces");
    }
    available
}

/// Runs `argv` with `root` as `/` in a new user and mount namespace: the program sees only the
/// extracted bundle, not one file of the host.
pub fn run_in_root(root: &Path, argv: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("unshare");
    c.arg("-r")
        .arg("-R")
        .arg(root)
        .arg("--")
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run unshare")
}

/// Extracts `bundle` into a new directory under the shared temp dir.
pub fn extract(bundle: &Path, name: &str) -> PathBuf {
    let dir = shared_tmp().join(name);
    ok(&["extract", bundle.to_str().unwrap(), dir.to_str().unwrap()]);
    dir
}

pub fn inspect_json(bundle: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&["inspect", "--json", bundle.to_str().unwrap()]))
        .expect("inspect --json is JSON")
}

/// Lists every file below `dir`, recursively, relative to it.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

// The sandbox probe (tests/probe/probe.c) and what the `capsa run` tests share.

/// `capsa run` with its own XDG cache and data directories, so a test shares no layer cache or
/// app state with the user or another test. Removed on drop.
pub struct Isolated {
    dir: tempfile::TempDir,
}

impl Isolated {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("capsa-isolated-")
                .tempdir()
                .unwrap(),
        }
    }

    /// A directory for the test's own host files (victims, fake homes).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The XDG variables that point `capsa run` at the isolated directories.
    pub fn env(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("XDG_CACHE_HOME", self.dir.path().join("cache")),
            ("XDG_DATA_HOME", self.data()),
        ]
    }

    /// `capsa ARGS` with the isolated XDG directories and stdin from /dev/null.
    pub fn capsa(&self, args: &[&str]) -> Command {
        let mut c = capsa(args);
        c.envs(self.env()).stdin(std::process::Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.capsa(args).output().expect("run capsa")
    }
}

impl Drop for Isolated {
    /// Overlayfs leaves a mode-000 `work/work` directory in the app's state: make every
    /// directory writable again so the temporary directory can be removed.
    fn drop(&mut self) {
        make_dirs_writable(self.dir.path());
    }
}

/// The probe's source, embedded so that a copy of the test binary needs no source tree.
const PROBE_C: &str = include_str!("../probe/probe.c");

/// The probe, built static (`cc -static`) once per test binary.
pub fn probe_binary() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let dir = shared_tmp().join("probe");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("probe.c"), PROBE_C).unwrap();
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let o = Command::new(cc)
            .args(["-static", "-O2", "-o", "capsa-probe", "probe.c"])
            .current_dir(&dir)
            .output()
            .expect("run cc");
        assert!(
            o.status.success(),
            "building the probe failed: {}",
            text(&o)
        );
        dir.join("capsa-probe")
    })
}

/// Where bundles put the probe; it is their command.
pub const PROBE: &str = "/usr/local/bin/capsa-probe";

/// A bundle of the probe plus /bin/sh, cp, chmod and ln (for tests that script an attack),
/// packed once per test binary.
pub fn probe_bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let recipe = probe_binary().with_file_name("capsa.toml");
        std::fs::write(
            &recipe,
            format!(
                r#"[app]
id = "org.capsa.Probe"
name = "Probe"
version = "1.0"
command = ["{PROBE}"]

[capture]
binaries = ["/bin/sh", "/bin/cp", "/bin/chmod", "/bin/ln"]
files = {{ "{PROBE}" = "capsa-probe" }}
"#
            ),
        )
        .unwrap();
        let out = shared_tmp().join("probe.capsa");
        ok(&[
            "pack",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        out
    })
}

/// This test process's uid and gid, which the sandbox must keep.
pub fn host_ids() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/self").unwrap();
    (m.uid(), m.gid())
}

/// The probe's base arguments: the caller's ids, and this process as a host pid it must not see.
pub fn probe_args() -> Vec<String> {
    let (uid, gid) = host_ids();
    vec![
        format!("uid={uid}"),
        format!("gid={gid}"),
        format!("hostpid={}", std::process::id()),
    ]
}

/// One row of the probe's table: `NAME expected=X got=Y ok|FAIL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRow {
    pub expected: String,
    pub got: String,
    pub ok: bool,
}

/// The probe's rows in `out`, by name; other lines are ignored, a repeated name panics.
pub fn probe_rows(out: &str) -> std::collections::BTreeMap<String, ProbeRow> {
    let mut rows = std::collections::BTreeMap::new();
    for line in out.lines().map(str::trim_end) {
        let Some((rest, verdict)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, rest)) = rest.split_once(" expected=") else {
            continue;
        };
        let Some((expected, got)) = rest.split_once(" got=") else {
            continue;
        };
        if verdict != "ok" && verdict != "FAIL" {
            continue;
        }
        let row = ProbeRow {
            expected: expected.into(),
            got: got.into(),
            ok: verdict == "ok",
        };
        assert!(
            rows.insert(name.to_owned(), row).is_none(),
            "row {name} printed twice"
        );
    }
    rows
}

/// Asserts that the probe printed row `name`, judged it ok, and got one of `allowed`
/// ('|'-separated): the test's own expectation, not only the probe's.
pub fn assert_row(rows: &std::collections::BTreeMap<String, ProbeRow>, name: &str, allowed: &str) {
    let row = rows
        .get(name)
        .unwrap_or_else(|| panic!("the probe printed no row {name}: {rows:#?}"));
    assert!(
        row.ok && allowed.split('|').any(|a| a == row.got),
        "row {name}: got {} (probe expected {}, test allows {allowed})",
        row.got,
        row.expected
    );
}

/// One entry of a hand-made layer (see [`write_layer_bundle`]).
pub enum Entry<'a> {
    Dir(&'a str),
    /// Path, contents, executable.
    File(&'a str, &'a [u8], bool),
    Symlink(&'a str, &'a str),
}

impl Entry<'_> {
    fn path(&self) -> &str {
        match self {
            Entry::Dir(p) | Entry::File(p, ..) | Entry::Symlink(p, _) => p,
        }
    }
}

/// Writes a one-layer bundle of `entries` (in any order) with the bundle-format crate's own
/// writer, for trees `capsa pack` would never produce (a symlink at /tmp, a /dev of regular
/// files).
pub fn write_layer_bundle(out: &Path, entries: &[Entry], command: &str) {
    use bundle_format::{canonical, layer, manifest, BlobData, BlobRef, BundlePath, Digest};
    let bp = |p: &str| BundlePath::new(p).unwrap();
    let blob_path = out.with_extension("layer");
    let file = std::fs::File::create(&blob_path).unwrap();
    let mtime = 1_700_000_000;
    let compression = bundle_format::Compression {
        level: 3,
        threads: 1,
    };
    let mut w = bundle_format::LayerWriter::new(file, compression, mtime).unwrap();
    let mut entries: Vec<&Entry> = entries.iter().collect();
    entries.sort_by_key(|e| e.path().as_bytes());
    for e in entries {
        match e {
            Entry::Dir(p) => w.add_dir(&bp(p)).unwrap(),
            Entry::File(p, data, x) => w.add_file(&bp(p), *x, data.len() as u64, *data).unwrap(),
            Entry::Symlink(p, target) => w.add_symlink(&bp(p), target).unwrap(),
        }
    }
    let (_, stats, toc) = w.finish().unwrap();
    let toc_blob = layer::compress_meta(&canonical::to_vec(&toc).unwrap());
    let toc_ref = BlobRef {
        digest: Digest::of(&toc_blob),
        size: toc_blob.len() as u64,
    };
    let m = bundle_format::Manifest {
        schema: manifest::SCHEMA,
        id: "org.capsa.Hostile".into(),
        name: "Hostile".into(),
        version: "1.0".into(),
        arch: std::env::consts::ARCH.into(),
        created: mtime,
        command: vec![command.into()],
        env: Default::default(),
        workdir: None,
        permissions: Default::default(),
        desktop: None,
        requires: Default::default(),
        layers: vec![bundle_format::Layer {
            role: bundle_format::LayerRole::App,
            media_type: manifest::LAYER_MEDIA_TYPE.into(),
            digest: stats.digest,
            size: stats.size,
            diff_id: stats.diff_id,
            tar_size: stats.tar_size,
            entries: toc.entries.len() as u64,
            unpacked_size: toc.content_size(),
            toc: toc_ref,
        }],
        report: None,
        generator: "capsa tests".into(),
    };
    let blobs = [
        (toc_ref.digest, BlobData::Bytes(toc_blob)),
        (stats.digest, BlobData::File(blob_path.clone())),
    ];
    bundle_format::write_bundle(out, &m, &blobs, &[]).unwrap();
    std::fs::remove_file(blob_path).unwrap();
}

// ---- The per-user store (tests/store*.rs) ----

/// A private store: its own XDG_DATA_HOME, XDG_CACHE_HOME and XDG_CONFIG_HOME, set on every
/// `capsa` command it runs, so store tests are isolated from each other and run in parallel.
pub struct StoreEnv {
    pub dir: tempfile::TempDir,
}

impl Default for StoreEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl StoreEnv {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("capsa-store-")
            .tempdir()
            .unwrap();
        Self { dir }
    }
    /// `$XDG_DATA_HOME` (exports go to its `applications/`, `mime/`, `icons/`).
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }
    /// `$XDG_DATA_HOME/capsa`.
    pub fn store(&self) -> PathBuf {
        self.data().join("capsa")
    }
    pub fn app_dir(&self, id: &str) -> PathBuf {
        self.store().join("apps").join(id)
    }
    pub fn desktop(&self, id: &str) -> PathBuf {
        self.data().join(format!("applications/{id}.desktop"))
    }
    /// `capsa ARGS` in this store, stdin closed.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = capsa(args);
        c.env("XDG_DATA_HOME", self.data())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("XDG_CONFIG_HOME", self.config())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .stdin(std::process::Stdio::null());
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run capsa")
    }
    /// Asserts success and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "capsa {args:?} failed: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    /// Asserts exit status 1 and returns stdout+stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.status.code(), Some(1), "capsa {args:?}: {}", text(&o));
        text(&o)
    }
    pub fn install(&self, bundle: &Path) -> String {
        self.ok(&["install", "--yes", bundle.to_str().unwrap()])
    }
    pub fn info(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["info", "--json", id])).expect("info --json is JSON")
    }
    /// `capsa list --json` (which recovers first): id -> version.
    pub fn list(&self) -> std::collections::BTreeMap<String, String> {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["list", "--json"])).expect("list --json is JSON");
        v.as_array()
            .expect("an array")
            .iter()
            .map(|a| {
                (
                    a["id"].as_str().unwrap().to_owned(),
                    a["version"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
    /// Names in a store directory (none when it is missing).
    pub fn names(&self, rel: &str) -> std::collections::BTreeSet<String> {
        std::fs::read_dir(self.store().join(rel))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// The layer directories on disk.
    pub fn layer_dirs(&self) -> std::collections::BTreeSet<String> {
        self.names("layers")
    }
    /// Layer digests (hex) of a release directory's manifest.
    pub fn release_layers(dir: &Path) -> Vec<String> {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap()["sha256:".len()..].to_owned())
            .collect()
    }
    /// Layers used by the `current` and `previous` releases of every app.
    pub fn referenced_layers(&self) -> std::collections::BTreeSet<String> {
        let mut used = std::collections::BTreeSet::new();
        for id in self.names("apps") {
            for link in ["current", "previous"] {
                let l = self.app_dir(&id).join(link);
                if let Ok(t) = std::fs::read_link(&l) {
                    used.extend(Self::release_layers(&self.app_dir(&id).join(t)));
                }
            }
        }
        used
    }
    /// Staging, trash and temporary files left behind: names starting with `.` in the store's
    /// own directories, and capsa's temporary files (`.capsa-*`, see `write_atomic`) in the
    /// export directories (other programs, e.g. update-desktop-database, have their own there).
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let mut dirs = vec![
            (self.store(), "."),
            (self.store().join("layers"), "."),
            (self.store().join("apps"), "."),
            (self.store().join("overrides"), "."),
            (self.data().join("applications"), ".capsa-"),
            (self.data().join("mime/packages"), ".capsa-"),
            (self.config(), ".capsa-"),
        ];
        for id in self.names("apps") {
            dirs.push((self.app_dir(&id), "."));
            dirs.push((self.app_dir(&id).join("releases"), "."));
        }
        let mut out = Vec::new();
        for (d, prefix) in dirs {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    out.push(e.path());
                }
            }
        }
        out
    }
    /// Every path below XDG_DATA_HOME and XDG_CONFIG_HOME with its type, size, mode, mtime
    /// and link target: two equal snapshots mean nothing was touched.
    pub fn snapshot(&self) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        for root in [self.data(), self.config()] {
            let mut stack = vec![root.clone()];
            while let Some(p) = stack.pop() {
                let Ok(m) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                let target = std::fs::read_link(&p).ok();
                out.push(format!(
                    "{} mode={:o} size={} mtime={}.{} -> {target:?}",
                    p.display(),
                    m.mode(),
                    if m.is_dir() { 0 } else { m.len() },
                    m.mtime(),
                    m.mtime_nsec()
                ));
                if m.is_dir() {
                    for e in std::fs::read_dir(&p).unwrap().flatten() {
                        stack.push(e.path());
                    }
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for StoreEnv {
    /// Layer trees have read-only directories and overlayfs leaves a mode-000 `work/work`:
    /// make every directory writable again so the temporary directory can be removed.
    fn drop(&mut self) {
        make_dirs_writable(self.dir.path());
    }
}

/// Whether strace works here; fails the test when CI requires it (`CAPSA_REQUIRE_STRACE`).
pub fn have_strace() -> bool {
    let ok = Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_STRACE").is_none(),
            "strace is required (CAPSA_REQUIRE_STRACE) but does not work here"
        );
        eprintln!("skipped: strace does not work here");
    }
    ok
}

/// Whether `prog` is an executable on `PATH`.
pub fn have(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(prog)).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

/// A private desktop session's directories: a home and XDG data, config and cache homes in a
/// temporary directory, so installs and desktop exports never touch the user's own.
pub struct XdgHome {
    pub dir: tempfile::TempDir,
}

impl XdgHome {
    pub fn new(prefix: &str) -> Self {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        for d in ["home", "data", "config", "cache"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Self { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }
    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }
    pub fn config(&self) -> PathBuf {
        self.path().join("config")
    }
    /// `prog` with a clean environment: `PATH`, `LANG`, `TMPDIR` and the private directories.
    pub fn command(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(prog);
        c.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or("/usr/bin:/bin".into()),
            )
            .env("LANG", "C.UTF-8")
            .env("HOME", self.home())
            .env("XDG_DATA_HOME", self.data())
            .env("XDG_CONFIG_HOME", self.config())
            .env("XDG_CACHE_HOME", self.path().join("cache"));
        if let Some(t) = std::env::var_os("TMPDIR") {
            c.env("TMPDIR", t);
        }
        c
    }
    /// `capsa ARGS` in this session.
    pub fn capsa(&self, args: &[&str]) -> Command {
        let mut c = self.command(capsa_bin());
        c.args(args).stdin(std::process::Stdio::null());
        c
    }
    /// Runs `capsa ARGS` here, asserts success and returns stdout+stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.capsa(args).output().expect("run capsa");
        assert!(o.status.success(), "capsa {args:?} failed: {}", text(&o));
        text(&o)
    }
}

impl Drop for XdgHome {
    /// Unpacked layers have read-only directories (and overlayfs a mode-000 `work/work`): make
    /// every directory writable so that the temporary directory can be removed.
    fn drop(&mut self) {
        make_dirs_writable(self.path());
    }
}

/// A valid `w`x`h` PNG (1-bit grey, stored deflate blocks: about w*h/8 bytes).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    fn crc(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let row = w.div_ceil(8) as usize;
    let mut raw = Vec::with_capacity((row + 1) * h as usize);
    for y in 0..h as usize {
        raw.push(0); // filter: none
        raw.extend((0..row).map(|x| if (x + y / 8) % 2 == 0 { 0xF0 } else { 0x0F }));
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend((b.len() as u16).to_le_bytes());
        z.extend((!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (a, b) = raw.iter().fold((1u32, 0u32), |(a, b), &x| {
        let a = (a + u32::from(x)) % 65521;
        (a, (b + a) % 65521)
    });
    z.extend(((b << 16) | a).to_be_bytes());
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([1, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (t, d) in [(&b"IHDR"[..], ihdr), (b"IDAT", z), (b"IEND", Vec::new())] {
        let mut td = t.to_vec();
        td.extend(d);
        out.extend((td.len() as u32 - 4).to_be_bytes());
        out.extend(&td);
        out.extend(crc(&td).to_be_bytes());
    }
    out
}

/// Asserts that `desktop-file-validate` accepts the entry (hints are allowed); skipped when the
/// tool is missing, unless `CAPSA_REQUIRE_GUI` is set.
pub fn assert_valid_desktop_entry(entry: &Path) {
    if !have("desktop-file-validate") {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_GUI").is_none(),
            "desktop-file-validate is required (CAPSA_REQUIRE_GUI) but missing"
        );
        eprintln!("skipped: desktop-file-validate (desktop-file-utils) is not installed");
        return;
    }
    let o = Command::new("desktop-file-validate")
        .arg(entry)
        .output()
        .expect("run desktop-file-validate");
    let out = text(&o);
    assert!(
        o.status.success() && !out.contains("error:"),
        "desktop-file-validate refuses {}: {out}\n{}",
        entry.display(),
        std::fs::read_to_string(entry).unwrap_or_default()
    );
}

/// What [`StoreEnv::recover_and_check`] found for an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppState {
    Absent,
    Installed {
        version: String,
        previous: Option<String>,
    },
}

/// The version in a release directory's manifest.
pub fn release_version(release: &Path) -> String {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(release.join("manifest.json")).unwrap()).unwrap();
    m["version"].as_str().unwrap().to_owned()
}

impl StoreEnv {
    /// The store's structure for an assertion message (not the layers' trees or the apps' state).
    pub fn dump(&self) -> String {
        let mut out = Vec::new();
        let mut stack = vec![self.data(), self.config()];
        while let Some(p) = stack.pop() {
            let target = std::fs::read_link(&p).map(|t| format!(" -> {}", t.display()));
            out.push(format!("{}{}", p.display(), target.unwrap_or_default()));
            let name = p.file_name().unwrap().to_string_lossy();
            if p.is_dir() && !p.is_symlink() && name != "tree" && name != "state" {
                stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
            }
        }
        out.sort();
        out.join("\n")
    }

    /// Recovers (`capsa list --json`) and checks the store's invariant: no leftovers, exactly
    /// the layers some release uses (each complete), only installed apps; `id` either absent
    /// (no app directory, no desktop entry) or installed (only its current and previous
    /// releases, its exports recorded, its desktop entry exported when its manifest has one).
    /// Panics with `ctx` and a listing of the store otherwise.
    pub fn recover_and_check(&self, id: &str, ctx: &str) -> AppState {
        let listed = self.list();
        let left = self.leftovers();
        assert!(
            left.is_empty(),
            "{ctx}: left over: {left:?}\n{}",
            self.dump()
        );
        let (dirs, used) = (self.layer_dirs(), self.referenced_layers());
        assert_eq!(
            dirs,
            used,
            "{ctx}: layer dirs vs layers in use\n{}",
            self.dump()
        );
        for d in &dirs {
            let l = self.store().join("layers").join(d);
            assert!(
                l.join("sealed").is_file() && l.join("tree").is_dir(),
                "{ctx}: {d}"
            );
        }
        for other in self.names("apps") {
            assert!(
                listed.contains_key(&other),
                "{ctx}: apps/{other} is not installed\n{}",
                self.dump()
            );
        }
        let app = self.app_dir(id);
        let Some(version) = listed.get(id) else {
            assert!(
                !app.exists(),
                "{ctx}: {} is left\n{}",
                app.display(),
                self.dump()
            );
            let desktop = self.desktop(id);
            assert!(
                !desktop.exists(),
                "{ctx}: dangling {}\n{}",
                desktop.display(),
                self.dump()
            );
            return AppState::Absent;
        };
        let current = std::fs::read_link(app.join("current")).unwrap();
        let previous = std::fs::read_link(app.join("previous")).ok();
        let mut kept: Vec<String> = [Some(&current), previous.as_ref()]
            .into_iter()
            .flatten()
            .map(|t| t.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        kept.sort();
        kept.dedup();
        let releases: Vec<String> = self
            .names(&format!("apps/{id}/releases"))
            .into_iter()
            .collect();
        assert_eq!(releases, kept, "{ctx}: releases\n{}", self.dump());
        assert_eq!(&release_version(&app.join(&current)), version, "{ctx}");
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(app.join(&current).join("manifest.json")).unwrap(),
        )
        .unwrap();
        let exports = std::fs::read_to_string(app.join("exports.json"))
            .unwrap_or_else(|e| panic!("{ctx}: no exports.json ({e})\n{}", self.dump()));
        if m["desktop"].is_null() {
            assert!(
                !self.desktop(id).exists(),
                "{ctx}: a desktop entry without [desktop]"
            );
        } else {
            let desktop = std::fs::read_to_string(self.desktop(id))
                .unwrap_or_else(|e| panic!("{ctx}: no desktop entry ({e})\n{}", self.dump()));
            assert!(
                desktop.contains(&format!("X-Capsa-App={id}")),
                "{ctx}: {desktop}"
            );
            assert!(
                exports.contains(&format!("{id}.desktop")),
                "{ctx}: {exports}"
            );
        }
        AppState::Installed {
            version: version.clone(),
            previous: previous.map(|p| release_version(&app.join(p))),
        }
    }
}

/// The state directory of the one identity of app `id` in `capsa_data`
/// (`$XDG_DATA_HOME/capsa`): `state/<id>@<publisher>`.
pub fn state_of(capsa_data: &Path, id: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(capsa_data.join("state"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{id}@")))
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(dirs.len() <= 1, "several identities of {id}: {dirs:?}");
    dirs.into_iter()
        .next()
        .unwrap_or_else(|| capsa_data.join("state").join(format!("{id}@none")))
}

/// Processes whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read(e.path().join("cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        {
            out.push(pid);
        }
    }
    out
}

/// Starts a private X server (Xvfb) logging to `log`; returns it and its display (`:N`),
/// once it is ready.
pub fn start_xvfb(log: &Path) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // -displayfd: Xvfb takes the first free display number and prints it once it is ready.
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1024x768x24",
            "-nolisten",
            "tcp",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start Xvfb");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let Ok(n) = line.trim().parse::<u32>() else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "Xvfb did not start: {}",
            std::fs::read_to_string(log).unwrap()
        );
    };
    (child, format!(":{n}"))
}

/// Runs `command_line` on a terminal of its own (`script`), `input` typed into it; `c` is
/// `script` with the caller's environment set.
pub fn on_terminal(mut c: Command, command_line: &str, input: &str) -> Output {
    use std::io::Write;
    c.args(["-qec", command_line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("run script");
    let mut stdin = child.stdin.take().expect("script's input");
    stdin.write_all(input.as_bytes()).expect("type into script");
    drop(stdin);
    child.wait_with_output().expect("wait for script")
}
