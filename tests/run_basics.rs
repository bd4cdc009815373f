//! End to end, `capsa run`: the python3 sample runs with ssl, sqlite3 and ctypes as the user;
//! it sees no host library or program; exit codes and signals pass through (125/126/127 for
//! the launcher's own failures); state persists per app and `--ephemeral` leaves none; two runs
//! at once both work; a tampered layer cache is caught and replaced; a killed launcher leaves
//! no process behind; permission typos fail before anything starts.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Per-test XDG directories, so state and cache are isolated.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("capsa-run-")
                .tempdir()
                .unwrap(),
        }
    }
    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = capsa(args);
        c.env("XDG_CACHE_HOME", self.cache())
            .env("XDG_DATA_HOME", self.data());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }
    fn python(&self, code: &str, extra: &[&str]) -> Output {
        let b = python_bundle().to_str().unwrap().to_owned();
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend([b.as_str(), "--", "-c", code]);
        self.run(&args)
    }
    fn state(&self, id: &str) -> PathBuf {
        state_of(&self.data().join("capsa"), id)
    }
}

#[test]
fn python_runs_with_its_standard_library_and_only_its_own_files() {
    if !userns() {
        return;
    }
    let env = Env::new();
    let o = env.python(
        "import ssl, sqlite3, ctypes, json, os\n\
         libs = sorted(os.listdir('/usr/lib/x86_64-linux-gnu')) if os.path.isdir('/usr/lib/x86_64-linux-gnu') else []\n\
         print('ok', os.getuid(), len(libs))\n\
         print('\\n'.join(libs))",
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    let first = lines.next().unwrap();
    assert!(first.starts_with(&format!("ok {}", nix_uid())), "{first}");
    // Every library the app can see is one the bundle carries: compare with its table of contents.
    let files = ok(&["inspect", "--files", python_bundle().to_str().unwrap()]);
    for lib in lines.filter(|l| !l.is_empty()) {
        assert!(
            files.contains(&format!("/usr/lib/x86_64-linux-gnu/{lib}")),
            "{lib} is visible but not in the bundle"
        );
    }
    // No host program or host file the bundle does not contain (`/bin/sh` is the base's).
    let o = env.python("import os; print([p for p in ['/usr/bin/ls', '/bin/bash', '/usr/bin/cc', '/etc/hostname', '/etc/shadow', '/var', '/root/.bashrc'] if os.path.exists(p)])", &[]);
    assert_eq!(stdout(&o), "[]", "{}", text(&o));
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap()
}

#[test]
fn exit_codes_and_signals_pass_through() {
    if !userns() {
        return;
    }
    let env = Env::new();
    assert_eq!(
        env.python("raise SystemExit(7)", &[]).status.code(),
        Some(7)
    );
    assert_eq!(
        env.python(
            "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
            &[]
        )
        .status
        .code(),
        Some(128 + 15)
    );
    let b = python_bundle().to_str().unwrap();
    let o = env.run(&["run", "--command", "/usr/bin/nonexistent", b]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o));
    assert!(text(&o).contains("command not found"), "{}", text(&o));
    let o = env.run(&["run", "--command", "/etc/passwd", b]);
    assert_eq!(o.status.code(), Some(126), "{}", text(&o));
    let o = env.run(&["run", "--allow", "netwrok", b]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("netwrok"));
    let o = env.run(&["run", "--deny", "network=tcp:443", b]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    // A signal sent to the launcher reaches the app (which reports it and exits 3).
    let mut child = env
        .cmd(&["run", b, "--", "-c", "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\nprint('ready', flush=True)\ntime.sleep(30)"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    let start = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "SIGTERM was not forwarded");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn state_persists_per_app_and_ephemeral_leaves_none() {
    if !userns() {
        return;
    }
    let env = Env::new();
    let write = "import os\nopen('/usr/lib/python3.11/capsa-note.txt', 'w').write('kept')\nopen(os.path.expanduser('~/home-note.txt'), 'w').write('home')";
    assert!(env.python(write, &[]).status.success());
    let o = env.python("import os; print(open('/usr/lib/python3.11/capsa-note.txt').read(), open(os.path.expanduser('~/home-note.txt')).read())", &[]);
    assert_eq!(stdout(&o), "kept home", "{}", text(&o));
    let state = env.state("org.python.Python3");
    assert!(state
        .join("upper/usr/lib/python3.11/capsa-note.txt")
        .is_file());
    // The layer cache itself is untouched: the write went to the app's own upper layer.
    for e in std::fs::read_dir(env.cache().join("capsa/layers")).unwrap() {
        assert!(!e
            .unwrap()
            .path()
            .join("tree/usr/lib/python3.11/capsa-note.txt")
            .exists());
    }

    let eph = Env::new();
    let o = eph.python(&format!("{write}\nprint('written')"), &["--ephemeral"]);
    assert_eq!(stdout(&o), "written", "{}", text(&o));
    assert!(!eph.data().exists(), "--ephemeral left state behind");
    let o = eph.python(
        "import os; print(os.path.exists('/usr/lib/python3.11/capsa-note.txt'))",
        &["--ephemeral"],
    );
    assert_eq!(stdout(&o), "False");
}

#[test]
fn two_runs_of_one_app_at_once_both_work() {
    if !userns() {
        return;
    }
    let env = Env::new();
    assert!(env.python("pass", &[]).status.success()); // fill the cache
    let b = python_bundle().to_str().unwrap();
    let code = "import time, os\nopen(os.path.expanduser('~/both'), 'a').write('x')\ntime.sleep(1.5)\nprint('done')";
    let a = env
        .cmd(&["run", b, "--", "-c", code])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let second = env.python(code, &["--report"]);
    let first = a.wait_with_output().unwrap();
    assert_eq!(stdout(&first), "done", "{}", text(&first));
    assert_eq!(stdout(&second), "done", "{}", text(&second));
    assert!(
        text(&second).contains("another instance holds this app's state"),
        "{}",
        text(&second)
    );
    assert_eq!(
        std::fs::read_to_string(env.state("org.python.Python3").join("home/both")).unwrap(),
        "xx",
        "the private home is shared"
    );
}

fn cached_file(env: &Env, rel: &str) -> PathBuf {
    for e in std::fs::read_dir(env.cache().join("capsa/layers")).unwrap() {
        let p = e.unwrap().path().join("tree").join(rel);
        if p.exists() {
            return p;
        }
    }
    panic!("{rel} not in the cache");
}

/// The cache entry (`layers/<digest>`) holding the cached file `p`.
fn entry_of(p: &std::path::Path) -> PathBuf {
    let tree = p.ancestors().find(|a| a.ends_with("tree")).unwrap();
    tree.parent().unwrap().to_path_buf()
}

#[test]
fn a_tampered_cache_entry_is_caught_and_replaced() {
    if !userns() {
        return;
    }
    // A file edited in place, and the seal broken as damage breaks it: the stamp lost, or an
    // entry added at the tree's top (a cleaner). An edit that keeps the seal is not looked for
    // at every start (see the layer cache in bundle-format/SPEC.md).
    type Break = fn(&std::path::Path);
    let breaks: [(&str, Break); 2] = [
        ("stamp removed", |entry| {
            std::fs::remove_file(entry.join("sealed")).unwrap()
        }),
        ("entry added at the top", |entry| {
            std::fs::write(entry.join("tree/stray"), b"").unwrap()
        }),
    ];
    for (what, break_seal) in breaks {
        let env = Env::new();
        assert!(env.python("pass", &[]).status.success());
        let victim = cached_file(&env, "usr/lib/python3.11/json/__init__.py");
        let original = std::fs::read(&victim).unwrap();
        // Same size, same mtime: only the content and the inode's ctime change.
        let mut evil = original.clone();
        evil[..12].copy_from_slice(b"raise 'evil'");
        let mtime = std::fs::metadata(&victim).unwrap().modified().unwrap();
        std::fs::write(&victim, &evil).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&victim)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        break_seal(&entry_of(&victim));
        let o = env.python("import json; print(json.dumps([1]))", &["--report"]);
        assert_eq!(
            stdout(&o),
            "[1]",
            "{what}: tampered file used: {}",
            text(&o)
        );
        assert!(
            text(&o).contains("damaged cache entry was replaced"),
            "{what}: {}",
            text(&o)
        );
        let victim = cached_file(&env, "usr/lib/python3.11/json/__init__.py");
        assert_eq!(std::fs::read(&victim).unwrap(), original, "{what}");
        assert!(
            entry_of(&victim).join("sealed").is_file(),
            "{what}: resealed"
        );
    }
}

#[test]
fn a_killed_launcher_leaves_no_process_behind() {
    if !userns() {
        return;
    }
    let env = Env::new();
    let marker = format!("capsa-orphan-check-{}", std::process::id());
    let b = python_bundle().to_str().unwrap();
    let code = format!("import subprocess, time, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{marker}'])\nprint('ready', flush=True)\ntime.sleep(60)");
    let mut child = env
        .cmd(&["run", b, "--", "-c", &code])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut buf).unwrap();
    assert!(!pids_with(&marker).is_empty(), "grandchild not started");
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids_with(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        pids_with(&marker).is_empty(),
        "processes survived the launcher: {:?}",
        pids_with(&marker)
    );
}

#[test]
fn network_is_off_unless_granted() {
    if !userns() {
        return;
    }
    let env = Env::new();
    let code = "import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n    s.connect(('1.1.1.1', 53)); print('connected')\nexcept OSError as e:\n    print('errno', e.errno)\nprint(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))";
    let o = env.python(code, &[]);
    // Landlock refuses the connect (EACCES) before the empty namespace can (ENETUNREACH).
    let out = stdout(&o);
    assert!(
        out == "errno 13\n['lo']" || out == "errno 101\n['lo']",
        "{}",
        text(&o)
    );
    let o = env.python(code, &["--allow", "network"]);
    assert!(
        !stdout(&o).contains("['lo']"),
        "the host's interfaces are not visible with --allow network: {}",
        text(&o)
    );
}

#[test]
fn damaged_bundles_and_bad_requests_fail_with_125_and_leave_nothing() {
    let env = Env::new();
    let junk = env.dir.path().join("junk.capsa");
    std::fs::write(&junk, vec![7u8; 9000]).unwrap();
    let o = env.run(&["run", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("junk.capsa"));
    let o = env.run(&["run", "/nonexistent/app.capsa"]);
    assert_eq!(o.status.code(), Some(125));
    let o = env.run(&[
        "run",
        "--deny",
        "filesystem=home:ro",
        python_bundle().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("access mode"), "{}", text(&o));
    assert!(
        !env.data().exists(),
        "state created for a run that never started"
    );
}

#[test]
fn report_tells_what_is_enforced() {
    if !userns() {
        return;
    }
    let env = Env::new();
    let o = env.python("pass", &["--report"]);
    let t = text(&o);
    for want in [
        "namespaces",
        "user (uid",
        "net (its own, with only loopback",
        "overlayfs of 3 read-only layers",
        "landlock",
        "seccomp",
        "capabilities",
        "no_new_privs",
    ] {
        assert!(t.contains(want), "report lacks {want}: {t}");
    }
}

#[test]
fn without_overlayfs_the_root_is_read_only_and_the_report_says_so() {
    if !userns() {
        return;
    }
    let env = Env::new();
    let o = env
        .cmd(&["run", "--report", python_bundle().to_str().unwrap(), "--", "-c", "import ssl, os\ntry:\n    open('/usr/x', 'w')\nexcept OSError as e:\n    print('errno', e.errno)\nopen(os.path.expanduser('~/kept'), 'w').write('y')"])
        .env("CAPSA_OVERLAY", "off")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "errno 30", "{}", text(&o));
    assert!(text(&o).contains("no writable layer"), "{}", text(&o));
    assert!(
        env.state("org.python.Python3").join("home/kept").is_file(),
        "the private home is still writable"
    );
}

#[test]
fn a_terminal_works_inside() {
    if !userns() || Command::new("script").arg("--version").output().is_err() {
        return;
    }
    let env = Env::new();
    // `script` gives the command a pseudo-terminal of 100x40.
    let inner = format!(
        "stty cols 100 rows 40; {} run {} -- -c 'import os, sys; print(\"tty\", os.isatty(0), os.isatty(1), os.get_terminal_size())'",
        capsa_bin().display(),
        python_bundle().display()
    );
    let o = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("XDG_CACHE_HOME", env.cache())
        .env("XDG_DATA_HOME", env.data())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("tty True True os.terminal_size(columns=100, lines=40)"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// threats.md SBX-15 (firejail #7154): an app granted the home directory must not reach
/// capsa's own store, state and cache inside it, or it could rewrite its own permissions.
#[test]
fn sbx_15_capsa_directories_stay_hidden_under_a_home_grant() {
    if !userns() {
        return;
    }
    let env = Env::new();
    let home = env.dir.path().join("home");
    let data = home.join(".local/share");
    let cache = home.join(".cache");
    std::fs::create_dir_all(data.join("capsa/overrides")).unwrap();
    std::fs::write(
        data.join("capsa/overrides/org.python.Python3.json"),
        r#"{"allow":[],"deny":[]}"#,
    )
    .unwrap();
    let code = "import os\nd = os.path.expanduser('~/.local/share/capsa')\nprint(sorted(os.listdir(d)), sorted(os.listdir(os.path.expanduser('~/.cache/capsa'))))\ntry:\n    open(d + '/overrides/org.python.Python3.json', 'w').write('{\"allow\":[\"network\"],\"deny\":[]}')\nexcept OSError as e:\n    print('errno', e.errno)";
    let o = capsa(&[
        "run",
        "--allow",
        "filesystem=home",
        python_bundle().to_str().unwrap(),
        "--",
        "-c",
        code,
    ])
    .env("HOME", &home)
    .env("XDG_DATA_HOME", &data)
    .env("XDG_CACHE_HOME", &cache)
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(stdout(&o), "[] []\nerrno 2", "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(data.join("capsa/overrides/org.python.Python3.json")).unwrap(),
        r#"{"allow":[],"deny":[]}"#
    );
    // The app still has the rest of the home it was granted.
    let o = capsa(&[
        "run",
        "--allow",
        "filesystem=home",
        python_bundle().to_str().unwrap(),
        "--",
        "-c",
        "import os; open(os.path.expanduser('~/granted.txt'), 'w').write('ok')",
    ])
    .env("HOME", &home)
    .env("XDG_DATA_HOME", &data)
    .env("XDG_CACHE_HOME", &cache)
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(home.join("granted.txt")).unwrap(),
        "ok"
    );
}

#[test]
fn a_bundle_for_another_architecture_is_refused_before_anything_starts() {
    use bundle_format::{
        layer, manifest, BlobData, BlobRef, BundlePath, Compression, Digest, LayerWriter,
    };
    let env = Env::new();
    let dir = env.dir.path();
    let blob = dir.join("layer.zst");
    let mut w = LayerWriter::new(
        std::fs::File::create(&blob).unwrap(),
        Compression {
            level: 3,
            threads: 1,
        },
        0,
    )
    .unwrap();
    w.add_dir(&BundlePath::new("usr").unwrap()).unwrap();
    w.add_file(&BundlePath::new("usr/app").unwrap(), true, 2, &b"#!"[..])
        .unwrap();
    let (_, stats, toc) = w.finish().unwrap();
    let toc_blob = layer::compress_meta(&toc.to_canonical());
    let toc_ref = BlobRef {
        digest: Digest::of(&toc_blob),
        size: toc_blob.len() as u64,
    };
    let foreign = if std::env::consts::ARCH == "aarch64" {
        "riscv64"
    } else {
        "aarch64"
    };
    let m = manifest::Manifest {
        schema: manifest::SCHEMA,
        id: "org.capsa.Foreign".into(),
        name: "Foreign".into(),
        version: "1".into(),
        arch: foreign.into(),
        created: 0,
        command: vec!["/usr/app".into()],
        env: Default::default(),
        workdir: None,
        permissions: Default::default(),
        desktop: None,
        requires: Default::default(),
        layers: vec![manifest::Layer {
            role: manifest::LayerRole::App,
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
        generator: "test".into(),
    };
    let out = dir.join("foreign.capsa");
    bundle_format::write_bundle(
        &out,
        &m,
        &[
            (toc_ref.digest, BlobData::Bytes(toc_blob)),
            (stats.digest, BlobData::File(blob)),
        ],
        &[],
    )
    .unwrap();
    let o = env.run(&["run", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "the bundle is for {foreign} and this machine is {}",
            std::env::consts::ARCH
        )),
        "{}",
        text(&o)
    );
    assert!(
        !env.cache().join("capsa/layers").exists()
            || std::fs::read_dir(env.cache().join("capsa/layers"))
                .unwrap()
                .next()
                .is_none(),
        "layers unpacked for a foreign bundle"
    );
    assert!(!env.data().exists(), "state created for a foreign bundle");
    let o = env
        .cmd(&["install", "--yes", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(foreign), "{}", text(&o));
}
