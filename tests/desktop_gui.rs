//! The desktop, end to end, on a private X server (Xvfb) with its own home and XDG directories:
//! the xmessage sample installs with a desktop entry that `desktop-file-validate` accepts, its
//! `*.capsanote` glob makes `xdg-mime` see `text/x-capsa-note`, `--default-for` makes it the
//! default, and `xdg-open ~/notes/hello.capsanote` opens a window whose process runs in another
//! pid namespace with the file's path as its argument (a screenshot is kept in
//! `target/capsa-gui-screenshot.png`); `capsa integrate` makes `.capsa` files (by glob or magic)
//! open with `capsa run`, and `--remove` undoes it.
//!
//! xdg-utils reads the shared MIME database only through a desktop's tool, so the session is
//! GNOME's (`gio`). Skipped when Xvfb, xdg-mime or gio is missing, unless `CAPSA_REQUIRE_GUI`.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const APP: &str = "org.capsa.XMessage";
const NOTE: &str = "text/x-capsa-note";
const BUNDLE_TYPE: &str = "application/vnd.capsa.bundle";

/// Whether the desktop tools are here (and the sandbox works); fails when CI requires them.
fn gui_available() -> bool {
    let missing: Vec<&str> = ["Xvfb", "xdg-mime", "gio"]
        .into_iter()
        .filter(|p| !have(p))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_GUI").is_none(),
            "the desktop tests are required (CAPSA_REQUIRE_GUI) but {missing:?} are missing \
             (xvfb, xdg-utils, libglib2.0-bin: xdg-mime needs gio to read the MIME database)"
        );
        eprintln!("skipped: {} not installed", missing.join(", "));
        return false;
    }
    let tools = [
        "xwininfo",
        "import",
        "identify",
        "convert",
        "xdg-open",
        "update-mime-database",
    ];
    let absent: Vec<&str> = tools.into_iter().filter(|p| !have(p)).collect();
    assert!(absent.is_empty(), "missing desktop test tools: {absent:?}");
    userns()
}

/// A private X server and GNOME-like session; it and what the test found running are killed
/// on drop.
struct Session {
    env: XdgHome,
    display: String,
    xvfb: Child,
    kill: Vec<u32>,
}

impl Session {
    fn start() -> Self {
        let env = XdgHome::new("capsa-gui-");
        let log = env.path().join("xvfb.log");
        let (xvfb, display) = start_xvfb(&log);
        Self {
            env,
            display,
            xvfb,
            kill: Vec::new(),
        }
    }
    fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = self.env.command(prog);
        c.args(args)
            .stdin(Stdio::null())
            .env("DISPLAY", &self.display)
            .env("XDG_CURRENT_DESKTOP", "GNOME")
            // No session bus: gio must not find or autolaunch one.
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:path=/nonexistent/capsa-test-bus",
            );
        c
    }
    /// Runs a program of the session; asserts success and returns its trimmed stdout.
    fn out(&self, prog: &str, args: &[&str]) -> String {
        let o = self
            .cmd(prog, args)
            .output()
            .unwrap_or_else(|e| panic!("{prog}: {e}"));
        assert!(o.status.success(), "{prog} {args:?} failed: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }
    fn filetype(&self, f: &Path) -> String {
        self.out("xdg-mime", &["query", "filetype", f.to_str().unwrap()])
    }
    fn default_for(&self, t: &str) -> String {
        self.out("xdg-mime", &["query", "default", t])
    }
    /// `xdg-open FILE` in the background, its output in the session's log.
    fn open(&self, f: &Path) -> Child {
        let log = fs::File::create(self.env.path().join("xdg-open.log")).unwrap();
        self.cmd("xdg-open", &[f.to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run xdg-open")
    }
    /// Polls `f` every 100 ms until it gives a value; panics after `secs` seconds, with
    /// xdg-open's output.
    fn wait<T>(&self, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > end {
                let log = fs::read_to_string(self.env.path().join("xdg-open.log"));
                panic!("timed out after {secs}s waiting for {what}; xdg-open: {log:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    /// Panics with xdg-open's output if it failed.
    fn check_opener(&self, opener: &mut Child) {
        if let Some(st) = opener.try_wait().unwrap().filter(|st| !st.success()) {
            let log = fs::read_to_string(self.env.path().join("xdg-open.log")).unwrap();
            panic!("xdg-open failed ({st}): {log}");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for pid in &self.kill {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        // SIGTERM first, so that Xvfb removes its socket and lock file.
        let pid = self.xvfb.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let end = Instant::now() + Duration::from_secs(5);
        while matches!(self.xvfb.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

/// Host processes (pid, argv) with `arg` among their arguments.
fn processes_with(arg: &str) -> Vec<(u32, Vec<String>)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv.iter().any(|a| a == arg) {
            out.push((pid, argv));
        }
    }
    out
}

/// The value of `key` in /proc/PID/status.
fn status(pid: u32, key: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn a_note_opens_in_the_sandboxed_xmessage_from_the_desktop() {
    if !gui_available() {
        return;
    }
    let mut s = Session::start();
    let bundle = s.env.path().join("xmessage.capsa");
    let recipe = src().join("samples/xmessage/capsa.toml");
    ok(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ]);
    let note = s.env.home().join("notes/hello.capsanote");
    fs::create_dir_all(note.parent().unwrap()).unwrap();
    // The screenshot shows this text in the window.
    fs::write(&note, format!("Capsa note {}\n", std::process::id())).unwrap();
    assert_ne!(s.filetype(&note), NOTE, "unknown before the install");

    s.env.ok(&["install", "--yes", bundle.to_str().unwrap()]);
    let entry = s.env.data().join(format!("applications/{APP}.desktop"));
    assert_valid_desktop_entry(&entry);
    let text = fs::read_to_string(&entry).unwrap();
    assert!(
        text.contains(&format!("run --open-files {APP} -- %F\n"))
            && text.contains(&format!("Icon={APP}\n"))
            && text.contains(&format!("MimeType={NOTE};\n")),
        "{text}"
    );
    let icon = s
        .env
        .data()
        .join(format!("icons/hicolor/48x48/apps/{APP}.png"));
    let sample_icon = src().join("samples/xmessage/icon.png");
    assert_eq!(fs::read(icon).unwrap(), fs::read(sample_icon).unwrap());
    assert_eq!(s.filetype(&note), NOTE);

    s.env.ok(&[
        "install",
        "--yes",
        bundle.to_str().unwrap(),
        "--default-for",
        NOTE,
    ]);
    assert_eq!(s.default_for(NOTE), format!("{APP}.desktop"));

    // Open the note as a file manager would.
    let mut opener = s.open(&note);
    let path = note.to_str().unwrap();
    let window = s.wait("the xmessage window", 60, || {
        s.check_opener(&mut opener);
        let tree = s.out("xwininfo", &["-root", "-tree"]);
        tree.lines()
            .find(|l| l.contains("(\"xmessage\" \"Xmessage\")"))
            .map(str::to_owned)
    });
    let (pid, argv) = s.wait("the xmessage process", 10, || {
        processes_with(path)
            .into_iter()
            .find(|(_, argv)| argv[0].ends_with("/xmessage"))
    });
    s.kill.push(pid);
    assert_eq!(
        argv,
        ["/usr/bin/xmessage", "-file", path],
        "the app got the file"
    );
    let nspid = status(pid, "NSpid");
    assert_eq!(nspid.split_whitespace().count(), 2, "NSpid: {nspid}");
    assert_eq!(status(pid, "NoNewPrivs"), "1");
    assert_eq!(status(pid, "Seccomp"), "2", "a seccomp filter");
    let uid = fs::read_to_string("/proc/self/status").unwrap();
    let uid = uid.lines().find(|l| l.starts_with("Uid:")).unwrap()[4..]
        .trim()
        .to_owned();
    assert_eq!(status(pid, "Uid"), uid, "the app runs as the user");

    // The window shows something: the screenshot's window area has more than one colour.
    let shot = s.env.path().join("shot.png");
    s.out("import", &["-window", "root", shot.to_str().unwrap()]);
    let info = s.out("identify", &["-format", "%w %h", shot.to_str().unwrap()]);
    assert_eq!(info, "1024 768");
    let geometry = window
        .split_whitespace()
        .find(|w| w.contains('x') && w.contains('+'))
        .unwrap_or_else(|| panic!("no geometry in {window}"));
    let colours = s.out(
        "convert",
        &[
            shot.to_str().unwrap(),
            "-crop",
            geometry,
            "+repage",
            "-format",
            "%k",
            "info:",
        ],
    );
    assert!(
        colours.parse::<u32>().unwrap() > 1,
        "{window}: {colours} colours"
    );
    let kept = src().join("target/capsa-gui-screenshot.png");
    fs::create_dir_all(kept.parent().unwrap()).unwrap();
    fs::copy(&shot, &kept).unwrap();
    println!("screenshot: {}", kept.display());

    // Closing the app ends it, its launcher and the opener; the window goes.
    Command::new("kill").arg(pid.to_string()).status().unwrap();
    s.wait("the app and its launcher to exit", 20, || {
        processes_with(path).is_empty().then_some(())
    });
    s.wait("xdg-open to return", 20, || opener.try_wait().unwrap());
    s.check_opener(&mut opener);
    assert!(!s
        .out("xwininfo", &["-root", "-tree"])
        .contains("\"xmessage\""));

    s.env.ok(&["uninstall", APP]);
    assert_eq!(s.default_for(NOTE), "");
    assert_ne!(s.filetype(&note), NOTE, "the type goes with the app");
}

#[test]
fn integrate_makes_bundles_open_with_capsa_and_remove_undoes_it() {
    if !gui_available() {
        return;
    }
    let s = Session::start();
    // The hello program, run by a shell that leaves its output in the app's private home.
    let dir = s.env.path().join("hello");
    build_hello(&dir);
    let id = "org.capsa.HelloOpened";
    let recipe = dir.join("opened.toml");
    fs::write(
        &recipe,
        format!(
            "[app]\nid = \"{id}\"\nname = \"Hello\"\nversion = \"1\"\n\
             command = [\"/usr/bin/dash\", \"-c\", \"/usr/local/bin/capsa-hello > \\\"$HOME/opened.txt\\\"\"]\n\
             [capture]\nbinaries = [\"/usr/bin/dash\"]\n\
             files = {{ \"/usr/local/bin/capsa-hello\" = \"build/capsa-hello\" }}\n"
        ),
    )
    .unwrap();
    let bundle = s.env.path().join("some.capsa");
    ok(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ]);
    let no_ext = s.env.path().join("some-bundle");
    fs::copy(&bundle, &no_ext).unwrap();
    assert_ne!(s.filetype(&bundle), BUNDLE_TYPE);

    s.env.ok(&["integrate"]);
    let entry = s.env.data().join("applications/capsa.desktop");
    assert_valid_desktop_entry(&entry);
    assert_eq!(s.filetype(&bundle), BUNDLE_TYPE, "by the *.capsa glob");
    assert_eq!(s.filetype(&no_ext), BUNDLE_TYPE, "by the magic");
    assert_eq!(s.default_for(BUNDLE_TYPE), "capsa.desktop");

    let mut opener = s.open(&bundle);
    let data = s.env.data().join("capsa");
    let opened = |id: &str| state_of(&data, id).join("home/opened.txt");
    let out = s.wait("the bundle to run", 90, || {
        s.check_opener(&mut opener);
        fs::read_to_string(opened(id))
            .ok()
            .filter(|t| t.contains('\n'))
    });
    assert!(
        out.starts_with("hello from capsa: sqrt(2)=1.414214"),
        "{out}"
    );
    s.wait("xdg-open to return", 30, || opener.try_wait().unwrap());
    s.check_opener(&mut opener);

    s.env.ok(&["integrate", "--remove"]);
    assert!(!entry.exists());
    assert!(!s.env.data().join("mime/packages/capsa.xml").exists());
    assert_ne!(s.filetype(&bundle), BUNDLE_TYPE);
    assert_ne!(s.filetype(&no_ext), BUNDLE_TYPE);
    assert_eq!(s.default_for(BUNDLE_TYPE), "");
    let list = fs::read_to_string(s.env.config().join("mimeapps.list")).unwrap_or_default();
    assert!(!list.contains("capsa.desktop"), "{list}");
}
