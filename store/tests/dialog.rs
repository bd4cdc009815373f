//! The consent dialog for real: zenity and kdialog on a private X server (Xvfb), found with
//! `xdotool search`, photographed into `target/capsa-dialog-*.png`, answered with keys.
//! Tab, Return allows; Return and Escape deny; a hostile title and text are shown escaped and
//! `ZENITY_OK`-style variables in capsa's environment do not change the answers; a timeout or
//! a dying display never allows; no display, no tool or a tool only on a relative `PATH` entry
//! is `Unavailable`.
//!
//! `ask` reads the process environment, so the tests that set it (`DISPLAY`, `PATH` with only
//! the tool under test, hostile variables) take one lock and restore it after. Skipped with a
//! reason when Xvfb, xdotool, ImageMagick or the tool is missing, unless `CAPSA_REQUIRE_GUI`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use store::dialog::{ask, ask_within, Answer, Question};

/// The keys that answer Allow in both tools (the deny button has the focus).
const ALLOW_KEYS: &[&str] = &["Tab", "Return"];
/// How long a test waits for a dialog's answer before the dialog is killed.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Environment changes for one test, undone on drop, under the lock.
struct Env {
    saved: Vec<(String, Option<OsString>)>,
    _lock: MutexGuard<'static, ()>,
}

impl Env {
    fn lock() -> Self {
        Self {
            saved: Vec::new(),
            _lock: ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
    fn set(&mut self, key: &str, value: Option<&OsStr>) {
        if !self.saved.iter().any(|(k, _)| k == key) {
            self.saved.push((key.to_owned(), std::env::var_os(key)));
        }
        match value {
            Some(v) => std::env::set_var(key, v),
            None => std::env::remove_var(key),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for (k, v) in self.saved.drain(..).rev() {
            match v {
                Some(v) => std::env::set_var(&k, v),
                None => std::env::remove_var(&k),
            }
        }
    }
}

fn have(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            fs::metadata(d.join(prog))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The full path of `prog` on `PATH`.
fn which(prog: &str) -> PathBuf {
    let p = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&p)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{prog} not on PATH"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Zenity,
    Kdialog,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Zenity => "zenity",
            Tool::Kdialog => "kdialog",
        }
    }
}

/// Whether `progs` are on `PATH` (call with the lock held); fails instead when CI requires
/// them.
fn available(progs: &[&str]) -> bool {
    let missing: Vec<&str> = progs.iter().copied().filter(|p| !have(p)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CAPSA_REQUIRE_GUI").is_none(),
        "the dialog tests are required (CAPSA_REQUIRE_GUI) but {missing:?} are missing \
         (packages xvfb, xdotool, imagemagick, zenity, kdialog, gcc)"
    );
    eprintln!("skipped: {} not installed", missing.join(", "));
    false
}

/// A private X server with only `tool` on `PATH`, its own home and runtime directory, and no
/// session bus; the X server is stopped and the environment restored on drop.
struct Desktop {
    tool: Tool,
    /// Full paths of the programs the test itself runs (found before `PATH` changed).
    progs: HashMap<&'static str, PathBuf>,
    xvfb: Child,
    dir: tempfile::TempDir,
    env: Env,
}

impl Desktop {
    /// The desktop, or `None` (skipped) when `tool`, the X tools or `extra` are missing.
    fn start(tool: Tool, extra: &[&'static str]) -> Option<Self> {
        let mut env = Env::lock();
        let mut need = vec!["Xvfb", "xdotool", "import", "kill", tool.name()];
        need.extend(extra);
        if !available(&need) {
            return None;
        }
        let progs: HashMap<&'static str, PathBuf> = need.iter().map(|p| (*p, which(p))).collect();
        let dir = tempfile::Builder::new()
            .prefix("capsa-dialog-")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("bin");
        let home = dir.path().join("home");
        let run = dir.path().join("run");
        for d in [&bin, &home, &run] {
            fs::create_dir(d).unwrap();
        }
        fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&progs[tool.name()], bin.join(tool.name())).unwrap();
        let log = dir.path().join("xvfb.log");
        // -displayfd: Xvfb takes the first free display number and prints it once it is ready.
        // -noreset: by default the server resets when its last client leaves (an xdotool
        // search), and a dialog connecting just then fails.
        let mut xvfb = Command::new(&progs["Xvfb"])
            .args(["-displayfd", "1", "-screen", "0", "1024x768x24"])
            .args(["-nolisten", "tcp", "-noreset"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        let _ = BufReader::new(xvfb.stdout.take().unwrap()).read_line(&mut line);
        let Ok(n) = line.trim().parse::<u32>() else {
            let _ = xvfb.kill();
            let _ = xvfb.wait();
            panic!("Xvfb did not start: {}", fs::read_to_string(&log).unwrap());
        };
        env.set("DISPLAY", Some(OsStr::new(&format!(":{n}"))));
        env.set("WAYLAND_DISPLAY", None);
        env.set("XAUTHORITY", None);
        // No UTF-8 locale, as under `env -i` (the CI's unprivileged run).
        env.set("LANG", Some(OsStr::new("C")));
        env.set("LC_ALL", None);
        env.set("LC_CTYPE", None);
        env.set("PATH", Some(bin.as_os_str()));
        env.set("HOME", Some(home.as_os_str()));
        env.set("XDG_RUNTIME_DIR", Some(run.as_os_str()));
        // No session bus: nothing may find or start one.
        env.set(
            "DBUS_SESSION_BUS_ADDRESS",
            Some(OsStr::new("unix:path=/nonexistent/capsa-test-bus")),
        );
        Some(Self {
            tool,
            progs,
            xvfb,
            dir,
            env,
        })
    }

    /// `xdotool ARGS`: its status and trimmed stdout.
    fn xdotool(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new(&self.progs["xdotool"])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("run xdotool");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
    }

    /// Asks `q` on a thread (the dialog stays up until answered).
    fn ask(&self, q: &Question, timeout: Duration) -> Option<JoinHandle<Answer>> {
        let q = q.clone();
        Some(std::thread::spawn(move || ask_within(&q, timeout)))
    }

    /// The dialog's window, by `xdotool search --onlyvisible SEARCH...`; panics after 30 s or
    /// when `asking` (always `Some`) ended without showing one.
    fn window(&self, search: &[&str], asking: &mut Option<JoinHandle<Answer>>) -> String {
        let end = Instant::now() + Duration::from_secs(30);
        let args: Vec<&str> = ["search", "--onlyvisible"]
            .into_iter()
            .chain(search.iter().copied())
            .collect();
        loop {
            let (_, out) = self.xdotool(&args);
            if let Some(w) = out.lines().next().filter(|w| !w.is_empty()) {
                return w.to_owned();
            }
            if asking.as_ref().is_some_and(|a| a.is_finished()) {
                let answer = asking.take().unwrap().join();
                panic!(
                    "{:?} said {answer:?} without a window for {search:?}",
                    self.tool
                );
            }
            assert!(Instant::now() < end, "no window for {search:?} after 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Photographs the screen into `target/capsa-dialog-TOOL-CASE.png` for a human to look at.
    fn screenshot(&self, case: &str) -> PathBuf {
        // A moment for the window to be drawn after it is mapped.
        std::thread::sleep(Duration::from_millis(700));
        let shot = self.dir.path().join("shot.png");
        let st = Command::new(&self.progs["import"])
            .args(["-window", "root"])
            .arg(&shot)
            .stdin(Stdio::null())
            .status()
            .expect("run import");
        assert!(st.success(), "import failed");
        let kept = target_dir().join(format!("capsa-dialog-{}-{case}.png", self.tool.name()));
        match fs::create_dir_all(target_dir()).and_then(|_| fs::copy(&shot, &kept)) {
            Ok(_) => {
                println!("screenshot: {}", kept.display());
                kept
            }
            Err(e) => {
                println!("screenshot: {} ({}: {e})", shot.display(), kept.display());
                shot
            }
        }
    }

    /// Focuses `window` and presses `keys`, as a user would.
    fn press(&self, window: &str, keys: &[&str]) {
        let (ok, _) = self.xdotool(&["windowfocus", "--sync", window]);
        assert!(ok, "xdotool windowfocus {window} failed");
        let args: Vec<&str> = ["key"].into_iter().chain(keys.iter().copied()).collect();
        let (ok, _) = self.xdotool(&args);
        assert!(ok, "xdotool key {keys:?} failed");
    }

    /// Shows `q` (its title contains `token`), takes a screenshot, presses `keys`: the answer.
    fn answer(&self, q: &Question, token: &str, case: &str, keys: &[&str]) -> Answer {
        let mut asking = self.ask(q, TEST_TIMEOUT);
        let w = self.window(&["--name", token], &mut asking);
        self.screenshot(case);
        self.press(&w, keys);
        asking.unwrap().join().unwrap()
    }

    /// Stops the X server (SIGTERM, so that it removes its socket and lock file).
    fn stop_x(&mut self) {
        let _ = Command::new(&self.progs["kill"])
            .args(["-TERM", &self.xvfb.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while matches!(self.xvfb.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

impl Drop for Desktop {
    /// Stops the X server and kills any dialog a failed test left (one drawing off screen
    /// would outlive it).
    fn drop(&mut self) {
        self.stop_x();
        let bin = self.dir.path().join("bin");
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            if Path::new(OsStr::from_bytes(argv0)).starts_with(&bin) {
                let pid = e.file_name();
                let _ = Command::new(&self.progs["kill"])
                    .arg("-KILL")
                    .arg(&pid)
                    .status();
            }
        }
    }
}

/// Where screenshots are kept: the source tree's `target/` (`CAPSA_SRC` when the tests run
/// from a copy).
fn target_dir() -> PathBuf {
    match std::env::var_os("CAPSA_SRC") {
        Some(src) => Path::new(&src).join("target"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

fn question(title: &str) -> Question {
    Question {
        title: title.to_owned(),
        text: "The app \u{201c}Capsa Test\u{201d} by example.org asks for:".into(),
        items: vec![
            "Read and write files in your home folder".into(),
            "Use the network".into(),
            "Use the camera and microphone".into(),
        ],
        allow_label: "Allow".into(),
        deny_label: "Deny".into(),
    }
}

/// Host processes (argv) with `arg` somewhere in one of their arguments.
fn processes_with(arg: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv.iter().skip(1).any(|a| a.contains(arg)) {
            out.push(argv);
        }
    }
    out
}

fn allow_after_tab_return(tool: Tool) {
    let Some(d) = Desktop::start(tool, &[]) else {
        return;
    };
    let q = question("Capsa test allow-tab-return");
    assert_eq!(
        d.answer(&q, "allow-tab-return", "allow", ALLOW_KEYS),
        Answer::Allow
    );
}

fn return_and_escape_deny(tool: Tool) {
    let Some(d) = Desktop::start(tool, &[]) else {
        return;
    };
    let q = question("Capsa test deny-return");
    assert_eq!(
        d.answer(&q, "deny-return", "return", &["Return"]),
        Answer::Deny,
        "the deny button is the default"
    );
    let q = question("Capsa test deny-escape");
    assert_eq!(
        d.answer(&q, "deny-escape", "escape", &["Escape"]),
        Answer::Deny
    );
}

/// Sets the variables that change zenity's exit codes (so that OK would say 1 and Cancel or
/// Escape 0), make kdialog draw off screen, or load a GTK module.
fn set_hostile_env(env: &mut Env, dir: &Path) {
    for (k, v) in [
        ("ZENITY_OK", "1"),
        ("ZENITY_CANCEL", "0"),
        ("ZENITY_ESC", "0"),
        ("ZENITY_ERROR", "0"),
        ("DIALOG_OK", "1"),
        ("DIALOG_CANCEL", "0"),
        ("DIALOG_ESC", "0"),
        ("DIALOG_ERROR", "0"),
        ("QT_QPA_PLATFORM", "offscreen"),
    ] {
        env.set(k, Some(OsStr::new(v)));
    }
    env.set("GTK_MODULES", Some(dir.join("nonexistent.so").as_os_str()));
}

fn hostile_text_is_escaped_and_env_ignored(tool: Tool) {
    let Some(mut d) = Desktop::start(tool, &[]) else {
        return;
    };
    let dir = d.dir.path().to_owned();
    set_hostile_env(&mut d.env, &dir);
    let mut q =
        question("--display=:99 hostile-title \u{202E}txt.exe\u{1b}[31m\u{2028}x & <b>_\\n");
    q.text = "Open \u{2066}\"report\u{202E}fdp.exe\"\u{2069} \\n <i>x</i> &amp; \\\\ a\nb".into();
    q.items = (0..25).map(|i| format!("item {i}\u{7}\u{200F}")).collect();
    q.items[0] = "Read \u{202E}/etc/shadow\u{202C} <b>all</b> & write\\nhome".into();

    let mut asking = d.ask(&q, TEST_TIMEOUT);
    let w = d.window(&["--name", "hostile-title"], &mut asking);
    d.screenshot("hostile");
    let title = "--display=:99 hostile-title \\u{202e}txt.exe\\u{1b}[31m\\u{2028}x & <b>_\\n";
    // Qt may add the application's name.
    let name = d.xdotool(&["getwindowname", &w]).1;
    assert!(
        name == title || name == format!("{title} \u{2014} KDialog"),
        "window name {name:?}, not {title:?}"
    );
    let argv = processes_with("hostile-title")
        .into_iter()
        .find(|a| a[0].ends_with(tool.name()))
        .expect("the dialog's process");
    let text = "Open \\u{2066}\"report\\u{202e}fdp.exe\"\\u{2069} \\n <i>x</i> &amp; \\\\ a\\u{a}b";
    let first = "Read \\u{202e}/etc/shadow\\u{202c} <b>all</b> & write\\nhome";
    let mut lines = vec![text.to_owned(), String::new(), format!("\u{2022} {first}")];
    lines.extend((1..20).map(|i| format!("\u{2022} item {i}\\u{{7}}\\u{{200f}}")));
    lines.push("\u{2026} and 5 more".into());
    let expected = match tool {
        Tool::Zenity => format!("--text={}", lines.join("\n")),
        Tool::Kdialog => {
            let html: Vec<String> = lines
                .iter()
                .map(|l| {
                    l.replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                })
                .collect();
            format!("--warningyesno=<qt>{}", html.join("<br>")).replace('\\', "\\\\")
        }
    };
    assert!(
        argv.contains(&expected),
        "{expected:?} not among the arguments {argv:#?}"
    );
    d.press(&w, ALLOW_KEYS);
    assert_eq!(
        asking.unwrap().join().unwrap(),
        Answer::Allow,
        "allowed despite the env"
    );

    // With the inverting variables passed on, Escape would allow (ZENITY_ESC=0).
    assert_eq!(
        d.answer(&q, "hostile-title", "hostile-escape", &["Escape"]),
        Answer::Deny
    );
}

fn a_dying_display_never_allows(tool: Tool) {
    let Some(mut d) = Desktop::start(tool, &[]) else {
        return;
    };
    let q = question("Capsa test display-dies");
    let mut asking = d.ask(&q, TEST_TIMEOUT);
    d.window(&["--name", "display-dies"], &mut asking);
    d.stop_x();
    let answer = asking.unwrap().join().unwrap();
    match tool {
        // GTK exits 1 (as for Cancel) when its display goes.
        Tool::Zenity => assert_ne!(answer, Answer::Allow),
        // Qt exits 1 (as for kdialog's no button, here the allow one).
        Tool::Kdialog => assert_eq!(answer, Answer::Unavailable),
    }
}

fn an_unanswered_dialog_times_out(tool: Tool) {
    let Some(d) = Desktop::start(tool, &[]) else {
        return;
    };
    let q = question("Capsa test times-out");
    let start = Instant::now();
    let mut asking = d.ask(&q, Duration::from_secs(3));
    d.window(&["--name", "times-out"], &mut asking);
    assert_eq!(asking.unwrap().join().unwrap(), Answer::Unavailable);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert!(
        processes_with("times-out").is_empty(),
        "the dialog was killed"
    );
}

#[test]
fn zenity_tab_return_allows() {
    allow_after_tab_return(Tool::Zenity);
}

#[test]
fn kdialog_tab_return_allows() {
    allow_after_tab_return(Tool::Kdialog);
}

#[test]
fn zenity_return_and_escape_deny() {
    return_and_escape_deny(Tool::Zenity);
}

#[test]
fn kdialog_return_and_escape_deny() {
    return_and_escape_deny(Tool::Kdialog);
}

#[test]
fn zenity_hostile_text_is_escaped_and_env_ignored() {
    hostile_text_is_escaped_and_env_ignored(Tool::Zenity);
}

#[test]
fn kdialog_hostile_text_is_escaped_and_env_ignored() {
    hostile_text_is_escaped_and_env_ignored(Tool::Kdialog);
}

#[test]
fn zenity_dying_display_never_allows() {
    a_dying_display_never_allows(Tool::Zenity);
}

#[test]
fn kdialog_dying_display_never_allows() {
    a_dying_display_never_allows(Tool::Kdialog);
}

#[test]
fn zenity_unanswered_dialog_times_out() {
    an_unanswered_dialog_times_out(Tool::Zenity);
}

#[test]
fn kdialog_unanswered_dialog_times_out() {
    an_unanswered_dialog_times_out(Tool::Kdialog);
}

/// A hostile title `--gtk-module=FILE` given as its own argument makes GTK load FILE into
/// zenity before zenity reads its options.
#[test]
fn zenity_title_cannot_load_a_gtk_module() {
    let Some(d) = Desktop::start(Tool::Zenity, &["gcc"]) else {
        return;
    };
    let marker = d.dir.path().join("module-loaded");
    let src = d.dir.path().join("evil.c");
    let module = d.dir.path().join("evil.so");
    fs::write(
        &src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void loaded(void) {{\n\
             FILE *f = fopen(\"{}\", \"w\"); if (f) fclose(f); }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let gcc = Command::new(&d.progs["gcc"])
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args(["-shared", "-fPIC", "-o"])
        .args([&module, &src])
        .status()
        .expect("run gcc");
    assert!(gcc.success(), "gcc failed");
    let q = question(&format!("--gtk-module={}", module.display()));
    let mut asking = d.ask(&q, TEST_TIMEOUT);
    let w = d.window(&["--classname", "zenity"], &mut asking);
    d.screenshot("gtk-module");
    d.press(&w, &["Escape"]);
    assert_eq!(asking.unwrap().join().unwrap(), Answer::Deny);
    assert!(
        !marker.exists(),
        "zenity loaded the module named by the title"
    );
}

#[test]
fn without_a_display_it_is_unavailable_at_once() {
    let mut env = Env::lock();
    env.set("DISPLAY", None);
    env.set("WAYLAND_DISPLAY", None);
    let start = Instant::now();
    assert_eq!(ask(&question("Capsa test no display")), Answer::Unavailable);
    env.set("DISPLAY", Some(OsStr::new("")));
    assert_eq!(ask(&question("Capsa test no display")), Answer::Unavailable);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn without_a_dialog_tool_it_is_unavailable() {
    let mut env = Env::lock();
    let empty = tempfile::tempdir().unwrap();
    env.set("DISPLAY", Some(OsStr::new(":31999")));
    env.set("PATH", Some(empty.path().as_os_str()));
    assert_eq!(ask(&question("Capsa test no tool")), Answer::Unavailable);
    env.set("PATH", None);
    assert_eq!(ask(&question("Capsa test no PATH")), Answer::Unavailable);
}

/// A `zenity` that answers Allow at once, in a directory `PATH` names only relatively (as `.`
/// would, from wherever a file manager starts capsa), is never run.
#[test]
fn a_relative_path_entry_is_not_searched() {
    let mut env = Env::lock();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("zenity");
    fs::write(&fake, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    // The same directory, relative to the current one.
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count() - 1);
    let relative = format!("{up}{}", dir.path().strip_prefix("/").unwrap().display());
    assert!(Path::new(&relative).join("zenity").is_file(), "{relative}");
    env.set("DISPLAY", Some(OsStr::new(":31999")));
    env.set("PATH", Some(OsStr::new(&relative)));
    assert_eq!(ask(&question("Capsa test relative")), Answer::Unavailable);
    // The fake does answer Allow when found by its absolute directory: the test can fail.
    env.set("PATH", Some(dir.path().as_os_str()));
    assert_eq!(ask(&question("Capsa test absolute")), Answer::Allow);
}
