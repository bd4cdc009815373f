//! End to end, how `capsa run` treats the host paths it is given (project issue 7 §3, §5):
//! a file opened with `--open-files` is exactly the regular file the user named, even while
//! something that can write its folder swaps the name for a symlink; a missing one is refused,
//! not created; the mount points a run creates in the app's state are gone after it (and after
//! a killed launcher, at the next start); grants are checked on resolved paths (Capsa's own
//! data stays masked behind a symlinked home, kernel and session interfaces are refused); a
//! directory as standard input becomes /dev/null.
//!
//! Each test drives the real binary (`CAPSA_BIN`) with the python sample, its HOME and XDG
//! directories in a temporary directory of its own.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const PY_ID: &str = "org.python.Python3";

/// Python code as one argument. With `--open-files` every argument that does not start with
/// `-` names a file, so the code is glued to its option (`-cCODE`, which python accepts).
fn py(code: &str) -> String {
    format!("-c{code}")
}

/// A user session of its own: a HOME, and XDG data, cache and config homes (or the defaults
/// below HOME), in a temporary directory; every command gets a clean environment.
struct Session {
    dir: tempfile::TempDir,
    home: PathBuf,
    /// Whether XDG_DATA_HOME and friends point next to HOME (else the defaults below it).
    xdg: bool,
}

impl Session {
    /// A session in the test's temporary directory (`TMPDIR`).
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("capsa-paths-")
            .tempdir()
            .unwrap();
        let home = dir.path().join("home");
        Self::at(dir, home, true)
    }

    fn at(dir: tempfile::TempDir, home: PathBuf, xdg: bool) -> Self {
        std::fs::create_dir_all(&home).unwrap();
        Self { dir, home, xdg }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn data_home(&self) -> PathBuf {
        match self.xdg {
            true => self.path().join("data"),
            false => self.home.join(".local/share"),
        }
    }

    /// `$XDG_DATA_HOME/capsa`.
    fn capsa_data(&self) -> PathBuf {
        self.data_home().join("capsa")
    }

    /// The python sample's state directory: `state/<id>@<publisher>` (or `state/<id>`, as
    /// Capsa kept it before identities, so that the tests also judge older binaries).
    fn state(&self) -> PathBuf {
        let root = self.capsa_data().join("state");
        let dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("no state in {}: {e}", root.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n == PY_ID || n.starts_with(&format!("{PY_ID}@")))
            })
            .collect();
        assert_eq!(dirs.len(), 1, "one state directory of {PY_ID}: {dirs:?}");
        dirs.into_iter().next().unwrap()
    }

    /// `capsa ARGS` in this session, stdin from /dev/null.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(capsa_bin());
        c.args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or("/usr/bin:/bin".into()),
            )
            .env("LANG", "C.UTF-8")
            .env("HOME", &self.home)
            .stdin(Stdio::null());
        if let Some(t) = std::env::var_os("TMPDIR") {
            c.env("TMPDIR", t);
        }
        if self.xdg {
            c.env("XDG_DATA_HOME", self.data_home())
                .env("XDG_CACHE_HOME", self.path().join("cache"))
                .env("XDG_CONFIG_HOME", self.path().join("config"));
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run capsa")
    }

    /// `capsa run PY EXTRA -- -cCODE ARGS`.
    fn python(&self, extra: &[&str], code: &str, args: &[&str]) -> Output {
        let code = py(code);
        let mut argv = vec!["run"];
        argv.extend_from_slice(extra);
        argv.extend([python_bundle().to_str().unwrap(), "--", &code]);
        argv.extend_from_slice(args);
        self.run(&argv)
    }
}

impl Drop for Session {
    /// Overlayfs leaves a mode-000 `work/work`: make every directory writable again.
    fn drop(&mut self) {
        make_dirs_writable(self.path());
    }
}

/// A temporary directory outside /tmp (the sandbox has a tmpfs of its own there, so mount
/// points below /tmp never reach the app's writable layer): in /var/tmp when it is writable,
/// else in `TMPDIR`.
fn outside_tmp(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .or_else(|_| tempfile::Builder::new().prefix(prefix).tempdir())
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Sets the flag when dropped, so a failed assertion also stops the swapping thread.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// §5: the opened file's folder is writable by something else (another instance given the
/// folder, any process of the user): it swaps the name between the real file and a symlink to
/// another file of the user while the app is launched again and again. Each launch opens the
/// real file or refuses; the other file is never reached.
#[test]
fn an_opened_file_swapped_for_a_symlink_never_exposes_the_link_target() {
    if !userns() {
        return;
    }
    let s = Session::new();
    let secret = s.home.join("secret");
    std::fs::write(&secret, "secret\n").unwrap();
    let docs = s.home.join("docs");
    std::fs::create_dir(&docs).unwrap();
    let doc = docs.join("doc.txt");
    std::fs::write(&doc, "").unwrap();
    // A second name for the real file, so that it can be put back under its name.
    let keep = docs.join(".keep");
    std::fs::hard_link(&doc, &keep).unwrap();
    // The probe bundle's shell starts fastest; it reads its script from stdin (`sh -s FILE`),
    // since with --open-files every plain argument names a file.
    let script = s.path().join("append.sh");
    std::fs::write(&script, "printf x >> \"$1\"\n").unwrap();
    let append = || {
        s.cmd(&[
            "run",
            "--open-files",
            "--command",
            "/bin/sh",
            probe_bundle().to_str().unwrap(),
            "--",
            "-s",
            doc.to_str().unwrap(),
        ])
        .stdin(std::fs::File::open(&script).unwrap())
        .output()
        .expect("run capsa")
    };
    // Unpack the layers before the race starts.
    let o = append();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&doc).unwrap(), "x");
    std::fs::write(&doc, "").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_panic = StopOnDrop(stop.clone());
    let swapper = {
        let (stop, docs, secret) = (stop.clone(), docs.clone(), secret.clone());
        std::thread::spawn(move || {
            let (link, real, name) = (docs.join(".s"), docs.join(".r"), docs.join("doc.txt"));
            let mut swaps = 0u64;
            // Thousands of swaps a second, and a core left for the launches: a pause now and
            // then, as often with the symlink in place as with the file.
            let pause = |n: u64, at: u64| {
                if n % 8 == at {
                    std::thread::sleep(Duration::from_micros(50));
                }
            };
            while !stop.load(Ordering::Relaxed) {
                // Each rename replaces the name atomically: it always exists, as one or the other.
                std::os::unix::fs::symlink(&secret, &link).unwrap();
                std::fs::rename(&link, &name).unwrap();
                pause(swaps, 0);
                std::fs::hard_link(docs.join(".keep"), &real).unwrap();
                std::fs::rename(&real, &name).unwrap();
                pause(swaps, 4);
                swaps += 1;
            }
            swaps
        })
    };
    let start = Instant::now();
    let (mut opened, mut refused) = (0usize, 0usize);
    let mut messages = BTreeSet::new();
    while opened + refused < 300 && start.elapsed() < Duration::from_secs(40) {
        let o = append();
        match o.status.code() {
            Some(0) => opened += 1,
            Some(125) => {
                let err = stderr(&o);
                assert!(
                    err.contains(doc.to_str().unwrap()),
                    "the refusal does not name the file: {err}"
                );
                messages.insert(err.lines().next().unwrap_or_default().to_owned());
                refused += 1;
            }
            _ => panic!("neither opened nor refused: {}", text(&o)),
        }
        if std::fs::read_to_string(&secret).unwrap() != "secret\n" {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!(
        "{opened} launches opened the real file, {refused} were refused ({swaps} swaps in {:?}); refusals: {messages:#?}",
        start.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "secret\n",
        "the app wrote to the symlink's target (after {opened} opened, {refused} refused)"
    );
    assert_eq!(
        std::fs::read_to_string(&keep).unwrap(),
        "x".repeat(opened),
        "each launch that started appended once to the real file"
    );
    assert!(opened > 0, "no launch opened the real file: {messages:#?}");
}

/// §5: `--open-files` gives existing files only; a missing one is refused before anything
/// starts, and nothing is created for it (no "save as" in the app's private home).
#[test]
fn a_missing_open_file_is_refused_and_nothing_is_created() {
    if !userns() {
        return;
    }
    let s = Session::new();
    // The state exists already, with its private home.
    assert!(s.python(&[], "pass", &[]).status.success());
    let missing = s.home.join("new.txt");
    let m = missing.to_str().unwrap();
    let write = "import sys; open(sys.argv[1], 'w').write('created'); print('STARTED')";
    let o = s.python(&["--open-files"], write, &[m]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(!stdout(&o).contains("STARTED"), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains(m) && err.contains("no such file"),
        "the message does not name the missing file: {err}"
    );
    assert!(!missing.exists(), "created on the host");
    let private = s.state().join("home");
    let made: Vec<String> = tree(&private)
        .into_iter()
        .filter(|p| p.ends_with("new.txt"))
        .collect();
    assert!(made.is_empty(), "created in the private home: {made:?}");
}

/// Mount points of the no-trace test, as (description, path) pairs in the app's state.
fn mount_points(s: &Session, grant: &Path) -> Vec<(&'static str, PathBuf)> {
    let st = s.state();
    vec![
        ("the opened file's mount point", st.join("home/docs/a.txt")),
        ("the xdg-download mount point", st.join("home/Downloads")),
        (
            "the path grant's mount point",
            st.join("upper").join(grant.strip_prefix("/").unwrap()),
        ),
    ]
}

/// Asserts none of the run's mount points is left in the app's state, and what the app wrote
/// in its home (`kept`, relative to the private home) is.
fn assert_no_trace(s: &Session, grant: &Path, unique: &str, kept: &[&str], ctx: &str) {
    let st = s.state();
    for (what, p) in mount_points(s, grant) {
        assert!(!p.exists(), "{ctx}: {what} is left: {}", p.display());
    }
    let upper: Vec<String> = tree(&st.join("upper"))
        .into_iter()
        .filter(|p| p.contains(&format!("{unique}/grant")))
        .collect();
    assert!(
        upper.is_empty(),
        "{ctx}: the grant left directories in the app's root: {upper:?}"
    );
    for k in kept {
        assert!(
            st.join("home").join(k).is_file(),
            "{ctx}: the app's own {k} is gone"
        );
    }
}

/// §3: the mount points a run creates in the app's persistent state (an opened file's and a
/// grant's in the private home, a grant's parents in the writable root) are removed when it
/// ends, and after a killed launcher at the next start; what the app wrote stays.
#[test]
fn mount_points_leave_no_trace_in_the_apps_state() {
    if !userns() {
        return;
    }
    let base = outside_tmp("capsa-paths-");
    let unique = base
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let home = base.path().join("home");
    let s = Session::at(base, home, true);
    let a = s.home.join("docs/a.txt");
    std::fs::create_dir_all(a.parent().unwrap()).unwrap();
    std::fs::write(&a, "doc\n").unwrap();
    std::fs::create_dir(s.home.join("Downloads")).unwrap();
    let grant = s.path().join("grant/some/dir");
    std::fs::create_dir_all(&grant).unwrap();
    let g = format!("filesystem={}", grant.display());
    let extra = |keep: &str, mode: &str| {
        [
            "--open-files".to_owned(),
            "--allow".into(),
            "filesystem=xdg-download".into(),
            "--allow".into(),
            g.clone(),
            "--env".into(),
            format!("KEEP={keep}"),
            "--env".into(),
            format!("MODE={mode}"),
        ]
    };
    // With --open-files every plain argument names a file: the rest comes in the environment.
    let code = format!(
        "import os, sys, time\nh, keep = os.path.expanduser('~'), os.environ['KEEP']\nopen(sys.argv[1], 'a').write('app\\n')\nopen(h + '/Downloads/dl.txt', 'w').write('dl')\nopen('{}/g.txt', 'w').write('g')\nopen(h + '/' + keep, 'w').write('mine')\nopen(h + '/docs/own-' + keep, 'w').write('mine')\nif os.environ['MODE'] == 'sleep':\n    print('ready', flush=True)\n    time.sleep(60)",
        grant.display()
    );
    let first = extra("kept.txt", "exit");
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let o = s.python(&first, &code, &[a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The grants worked, on the host.
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "doc\napp\n");
    assert!(s.home.join("Downloads/dl.txt").is_file());
    assert!(grant.join("g.txt").is_file());
    assert_no_trace(
        &s,
        &grant,
        &unique,
        &["kept.txt", "docs/own-kept.txt"],
        "after the run",
    );

    // Killed while the app runs: the next start tidies.
    let marker = format!("capsa-paths-kill-{}", std::process::id());
    let code = format!("{code}\n# {marker}");
    let code = py(&code);
    let second = extra("kept2.txt", "sleep");
    let mut argv = vec!["run"];
    argv.extend(second.iter().map(String::as_str));
    argv.extend([
        python_bundle().to_str().unwrap(),
        "--",
        &code,
        a.to_str().unwrap(),
    ]);
    let mut child = s.cmd(&argv).stdout(Stdio::piped()).spawn().unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    for (what, p) in mount_points(&s, &grant) {
        assert!(
            p.exists(),
            "{what} is not where the test looks: {}",
            p.display()
        );
    }
    child.kill().unwrap(); // SIGKILL: the launcher cannot tidy
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids_with(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        pids_with(&marker).is_empty(),
        "the sandbox outlived its launcher"
    );
    let o = s.python(&[], "pass", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_no_trace(
        &s,
        &grant,
        &unique,
        &[
            "kept.txt",
            "docs/own-kept.txt",
            "kept2.txt",
            "docs/own-kept2.txt",
        ],
        "after a killed launcher and the next run",
    );
}

/// §3: grants are checked and masked on resolved paths. With the Fedora Atomic layout (`/home`
/// a symlink to `var/home`, HOME given by its real path) and Capsa's data and cache in their
/// default places below HOME, a grant of the symlinked `home` shows Capsa's directories only
/// as empty read-only masks: the app cannot rewrite its own permission overrides.
#[test]
fn capsa_directories_stay_masked_behind_a_symlinked_home() {
    if !userns() {
        return;
    }
    let base = outside_tmp("capsa-paths-");
    let x = base.path().to_path_buf();
    std::fs::create_dir_all(x.join("var/home/u")).unwrap();
    std::os::unix::fs::symlink("var/home", x.join("home")).unwrap();
    let s = Session::at(base, x.join("var/home/u"), false);
    let overrides = s.capsa_data().join(format!("overrides/{PY_ID}.json"));
    std::fs::create_dir_all(overrides.parent().unwrap()).unwrap();
    let original = r#"{"allow":[],"deny":[]}"#;
    std::fs::write(&overrides, original).unwrap();
    std::fs::write(s.home.join("host.txt"), "host").unwrap();
    let linked = x.join("home");
    let code = format!(
        "import os\nu = '{}/u'\nprint(open(u + '/host.txt').read())\nfor d in [u + '/.local/share/capsa', u + '/.cache/capsa']:\n    print(sorted(os.listdir(d)))\nfor f in ['/.local/share/capsa/overrides/{PY_ID}.json', '/.local/share/capsa/x.json']:\n    try:\n        os.makedirs(os.path.dirname(u + f), exist_ok=True)\n        open(u + f, 'w').write('{{\"allow\":[\"network\"],\"deny\":[]}}')\n        print('written', f)\n    except OSError:\n        print('refused')",
        linked.display()
    );
    let g = format!("filesystem={}", linked.display());
    let o = s.python(&["--allow", &g], &code, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "host\n[]\n[]\nrefused\nrefused",
        "Capsa's directories are not masked: {}",
        text(&o)
    );
    assert_eq!(std::fs::read_to_string(&overrides).unwrap(), original);
    assert!(!s.capsa_data().join("x.json").exists());
}

/// §3: kernel interfaces, the session's runtime directory (and its parents) and the host's
/// system directories are refused as grants, also behind a symlink, before anything starts.
#[test]
fn grants_of_kernel_session_and_system_paths_are_refused() {
    if !userns() {
        return;
    }
    let s = Session::new();
    std::os::unix::fs::symlink("/proc", s.home.join("procs")).unwrap();
    let (uid, _) = host_ids();
    let run_user = format!("/run/user/{uid}");
    let mut cases = vec![
        ("filesystem=/proc:ro", "process"),
        ("filesystem=/sys", "kernel"),
        ("filesystem=/usr", "system files"),
        ("filesystem=/run", "session"),
        ("filesystem=~/procs", "process"),
    ];
    let run_user_grant = format!("filesystem={run_user}");
    if Path::new(&run_user).is_dir() {
        cases.push((&run_user_grant, "session"));
    } else {
        eprintln!("{run_user} does not exist here: not tried");
    }
    let mut wrong = Vec::new();
    for (grant, why) in cases {
        let o = s.python(&["--allow", grant], "print('STARTED')", &[]);
        let err = stderr(&o);
        let named = grant
            .trim_start_matches("filesystem=")
            .trim_end_matches(":ro");
        let said = err.contains(named) && err.contains("refused") && err.contains(why);
        if o.status.code() != Some(125) || stdout(&o).contains("STARTED") || !said {
            wrong.push(format!("{grant}: exit {:?}: {}", o.status.code(), text(&o)));
        } else {
            eprintln!("{grant}: {}", err.trim());
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused before the app started, or not saying why:\n{}",
        wrong.join("\n")
    );
}

/// §3: a directory as standard input would give the app a host directory fd (fchdir, openat
/// and /proc/self/fd/0 reach the host through it): the app gets /dev/null, with a warning.
/// (The probe bundle's shell, as python refuses to start with a directory on stdin.)
#[test]
fn a_directory_as_stdin_becomes_dev_null() {
    if !userns() {
        return;
    }
    let s = Session::new();
    std::fs::write(s.path().join("host-file"), "host").unwrap();
    let dir = std::fs::File::open(s.path()).unwrap();
    let script = "[ -c /proc/self/fd/0 ] && [ /proc/self/fd/0 -ef /dev/null ] && echo dev-null\ncd /proc/self/fd/0 2>/dev/null && echo reached *\necho done";
    let o = s
        .cmd(&[
            "run",
            "--command",
            "/bin/sh",
            probe_bundle().to_str().unwrap(),
            "--",
            "-c",
            script,
        ])
        .stdin(Stdio::from(dir))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "dev-null\ndone",
        "fd 0 is not /dev/null: {}",
        text(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains("standard input") && err.contains("directory") && err.contains("/dev/null"),
        "no warning: {err}"
    );
}
