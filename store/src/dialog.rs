//! Asks the user to allow or deny with a desktop dialog, for when capsa has no terminal (a
//! bundle double-clicked in a file manager) and a manifest asks for more than the safe default.
//! zenity is tried first, then kdialog; with no display, neither tool, or a dialog that does not
//! give a clear answer, the answer is [`Answer::Unavailable`] and the caller must refuse.
//!
//! Invariants:
//! - Only a deliberate click (or Tab, Return) on the allow button gives [`Answer::Allow`]:
//!   Return and Escape deny in both tools, and every failure (not started, killed, timed out,
//!   display gone, unknown exit code) is `Deny` or `Unavailable`, never `Allow`.
//! - The dialog runs from `/`, stdin `/dev/null`, with a cleared environment but for the
//!   display, session-bus, home and locale variables (`passed_on`; the character type is
//!   made UTF-8): zenity's `ZENITY_OK`, `ZENITY_ESC`, `DIALOG_*`... change its exit codes and
//!   `GTK_MODULES` or `QT_*` load code.
//! - Every value is one `--option=value` argument, never a shell and never a separate argument,
//!   because GTK and Qt read their own options (`--gtk-module=FILE`, `-display`, `-reverse`)
//!   anywhere in argv before the tool parses its own.
//! - Text from a bundle is shown as one line per field: control, bidi and line-separator
//!   characters appear as `\u{..}`, lengths are capped ([`MAX_TEXT_BYTES`], [`MAX_ITEMS`]) and
//!   what is left out is counted. Markup, mnemonics and backslash escapes are escaped for the
//!   tool that reads them.
//! - The tools are found on `PATH` by absolute directories only: a relative entry (`.`) would
//!   pick a program from wherever the file manager started capsa.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bundle_format::path::is_forbidden_char;

/// How long [`ask`] waits for an answer before it kills the dialog.
pub const TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// At most this many items are listed; the rest are counted ("and N more").
pub const MAX_ITEMS: usize = 20;
/// The body (text and items, as shown) is cut to about this many bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

const MAX_TITLE_CHARS: usize = 120;
const MAX_PARAGRAPH_CHARS: usize = 1000;
const MAX_ITEM_CHARS: usize = 300;
const MAX_LABEL_CHARS: usize = 40;
/// Room kept in the body for the "and N more" line.
const MORE_RESERVE: usize = 40;
/// Output of the dialog read for the answer; the rest is ignored.
const KEPT_OUTPUT: u64 = 64 * 1024;
const POLL: Duration = Duration::from_millis(20);
const BULLET: &str = "\u{2022} ";

/// A yes/no question. `title`, `text` and `items` may hold a bundle's words; `items` is one
/// line per permission asked, already worded. The labels are capsa's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Question {
    pub title: String,
    pub text: String,
    pub items: Vec<String>,
    pub allow_label: String,
    pub deny_label: String,
}

/// What the user said, or that no dialog could ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allow,
    Deny,
    /// No display, no dialog tool, or the dialog ended without an answer (killed, timed
    /// out, display gone): the caller must treat it as a refusal.
    Unavailable,
}

/// Asks `q` with the first dialog tool found, waiting at most [`TIMEOUT`].
pub fn ask(q: &Question) -> Answer {
    ask_within(q, TIMEOUT)
}

/// Asks `q`, killing the dialog after `timeout` (then the answer is `Unavailable`).
pub fn ask_within(q: &Question, timeout: Duration) -> Answer {
    let env = with_utf8_ctype(passed_on(std::env::vars_os()));
    let has = |name: &str| env.iter().any(|(k, v)| k == name && !v.is_empty());
    if !has("DISPLAY") && !has("WAYLAND_DISPLAY") {
        return Answer::Unavailable;
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let shown = Shown::new(q);
    for tool in [Tool::Zenity, Tool::Kdialog] {
        let Some(exe) = path.as_ref().and_then(|p| find_program(tool.program(), p)) else {
            continue;
        };
        if let Some(answer) = run(tool, &exe, &shown, &env, timeout) {
            return answer;
        }
    }
    Answer::Unavailable
}

/// The environment variables a dialog gets: the display, the session bus (screen readers
/// reach the dialog through it), home, runtime directory, locale and `PATH`.
fn passed_on(vars: impl Iterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    const NAMES: [&str; 9] = [
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "XAUTHORITY",
        "XDG_RUNTIME_DIR",
        "DBUS_SESSION_BUS_ADDRESS",
        "HOME",
        "LANG",
        "LANGUAGE",
        "PATH",
    ];
    vars.filter(|(k, _)| {
        k.to_str()
            .is_some_and(|k| NAMES.contains(&k) || k.starts_with("LC_"))
    })
    .collect()
}

/// `env` with a UTF-8 character type: GLib reads arguments in the locale's encoding, so
/// without one zenity refuses any non-ASCII text. Messages keep the user's language, unless
/// it came from a non-UTF-8 `LC_ALL`, which is dropped.
fn with_utf8_ctype(mut env: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
    let get = |name: &str| {
        env.iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.to_string_lossy().to_ascii_lowercase())
    };
    let ctype = get("LC_ALL")
        .or_else(|| get("LC_CTYPE"))
        .or_else(|| get("LANG"));
    if !ctype.is_some_and(|c| c.contains("utf-8") || c.contains("utf8")) {
        env.retain(|(k, _)| k != "LC_ALL" && k != "LC_CTYPE");
        env.push(("LC_CTYPE".into(), "C.UTF-8".into()));
    }
    env
}

/// The first executable regular file `name` in an absolute directory of `path`.
fn find_program(name: &str, path: &OsString) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Zenity,
    Kdialog,
}

impl Tool {
    fn program(self) -> &'static str {
        match self {
            Tool::Zenity => "zenity",
            Tool::Kdialog => "kdialog",
        }
    }

    /// The arguments, each `--option=value`.
    ///
    /// zenity: `--default-cancel` focuses the deny button, so Return denies; with
    /// `--no-markup` the text is shown as given (no `g_strcompress`, no Pango markup) but the
    /// button labels are mnemonics (`_`).
    ///
    /// kdialog: `--warningyesno` always focuses its yes button, so that button is the deny
    /// one and its no button allows (Escape gives 2, cancel). The text is rich text (it begins
    /// with `<qt>`, which Qt takes as HTML whatever follows), after kdialog's own `\n`/`\\`
    /// unescaping; labels use `&` for mnemonics. `--print-winid` shows whether the dialog
    /// was on screen, as kdialog also exits 1 on bad arguments or a lost display.
    fn args(self, s: &Shown) -> Vec<String> {
        match self {
            Tool::Zenity => vec![
                "--question".into(),
                "--no-markup".into(),
                "--default-cancel".into(),
                "--width=480".into(),
                format!("--title={}", s.title),
                format!("--text={}", s.plain()),
                format!("--ok-label={}", s.allow.replace('_', "__")),
                format!("--cancel-label={}", s.deny.replace('_', "__")),
            ],
            Tool::Kdialog => vec![
                "--print-winid".into(),
                format!("--title={}", s.title),
                format!("--warningyesno={}", s.kdialog_text()),
                format!("--yes-label={}", s.deny.replace('&', "&&")),
                format!("--no-label={}", s.allow.replace('&', "&&")),
            ],
        }
    }

    /// The answer from how the dialog ended and what it printed.
    fn answer(self, status: ExitStatus, out: &Output) -> Answer {
        match (self, status.code()) {
            (Tool::Zenity, Some(0)) => Answer::Allow,
            (Tool::Zenity, Some(1)) => Answer::Deny,
            (Tool::Kdialog, Some(0 | 2)) => Answer::Deny,
            (Tool::Kdialog, Some(1)) if out.kdialog_was_shown() && !out.display_lost() => {
                Answer::Allow
            }
            _ => Answer::Unavailable,
        }
    }
}

/// What a dialog printed (empty when it was not awaited or not read in time).
#[derive(Default)]
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Output {
    /// `--print-winid` printed the dialog's window when it was shown.
    fn kdialog_was_shown(&self) -> bool {
        self.stdout
            .split(|b| *b == b'\n')
            .any(|l| l.starts_with(b"winId: "))
    }

    /// Qt's message when the X11 or Wayland connection ends under it (it then exits 1).
    fn display_lost(&self) -> bool {
        self.stderr
            .windows(b"connection broke".len())
            .any(|w| w == b"connection broke")
    }
}

/// Runs the dialog; `None` when it could not be started (the next tool is tried).
fn run(
    tool: Tool,
    exe: &Path,
    shown: &Shown,
    env: &[(OsString, OsString)],
    timeout: Duration,
) -> Option<Answer> {
    // The output goes to unlinked temporary files, read once the dialog has exited: no
    // reader thread (the launcher clones the sandbox from a single-threaded process, and a
    // thread blocked on a pipe that a helper of the dialog keeps open would never end).
    let captured = || {
        if tool == Tool::Kdialog {
            tempfile::tempfile().ok()
        } else {
            None
        }
    };
    let (out_file, err_file) = (captured(), captured());
    let to = |f: &Option<std::fs::File>| match f.as_ref().and_then(|f| f.try_clone().ok()) {
        Some(f) => Stdio::from(f),
        None => Stdio::null(),
    };
    let mut child = Command::new(exe)
        .args(tool.args(shown))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(to(&out_file))
        .stderr(to(&err_file))
        .spawn()
        .ok()?;
    let Some(status) = wait_within(&mut child, timeout) else {
        return Some(Answer::Unavailable);
    };
    let out = Output {
        stdout: read_kept(out_file),
        stderr: read_kept(err_file),
    };
    Some(tool.answer(status, &out))
}

/// The first [`KEPT_OUTPUT`] bytes written to `f`.
fn read_kept(f: Option<std::fs::File>) -> Vec<u8> {
    use std::io::Seek;
    let mut kept = Vec::new();
    if let Some(mut f) = f {
        if f.rewind().is_ok() {
            let _ = f.take(KEPT_OUTPUT).read_to_end(&mut kept);
        }
    }
    kept
}

/// Waits for `child` until `timeout`; then (or if waiting fails) kills and reaps it: `None`.
fn wait_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A question as shown: every field escaped and cut, `more` items left out.
#[derive(Debug, PartialEq, Eq)]
struct Shown {
    title: String,
    text: String,
    items: Vec<String>,
    more: usize,
    allow: String,
    deny: String,
}

impl Shown {
    fn new(q: &Question) -> Self {
        let text = visible(&q.text, MAX_PARAGRAPH_CHARS);
        let budget = MAX_TEXT_BYTES.saturating_sub(text.len() + MORE_RESERVE);
        let mut used = 0;
        let mut items = Vec::new();
        for item in q.items.iter().take(MAX_ITEMS) {
            let line = visible(item, MAX_ITEM_CHARS);
            used += line.len() + BULLET.len() + 1;
            if used > budget {
                break;
            }
            items.push(line);
        }
        Self {
            title: visible(&q.title, MAX_TITLE_CHARS),
            text,
            more: q.items.len() - items.len(),
            items,
            allow: visible(&q.allow_label, MAX_LABEL_CHARS),
            deny: visible(&q.deny_label, MAX_LABEL_CHARS),
        }
    }

    /// The lines of the body: the text, an empty line, one bullet per item, the count left.
    fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.text.clone(), String::new()];
        lines.extend(self.items.iter().map(|i| format!("{BULLET}{i}")));
        if self.more > 0 {
            lines.push(format!("\u{2026} and {} more", self.more));
        }
        lines
    }

    /// For zenity `--no-markup`: the lines as they are.
    fn plain(&self) -> String {
        self.lines().join("\n")
    }

    /// For kdialog: rich text with `<>&` escaped, `<br>` between lines, and backslashes
    /// doubled for kdialog's unescaping.
    fn kdialog_text(&self) -> String {
        let html: Vec<String> = self.lines().iter().map(|l| html_escape(l)).collect();
        format!("<qt>{}", html.join("<br>")).replace('\\', "\\\\")
    }
}

/// `s` with every hidden character shown as `\u{..}`, cut to `max` characters (then `…`).
fn visible(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut n = 0;
    for c in s.chars() {
        let piece = if hidden(c) {
            c.escape_unicode().to_string()
        } else {
            c.to_string()
        };
        n += piece.chars().count();
        if n > max {
            out.push('\u{2026}');
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// Characters that would hide or disguise text: controls (newlines, escapes), the bidi
/// overrides and marks, and the Unicode line and paragraph separators (GTK breaks lines at
/// them).
fn hidden(c: char) -> bool {
    is_forbidden_char(c) || matches!(c, '\u{061C}' | '\u{2028}' | '\u{2029}')
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(title: &str, text: &str, items: &[&str]) -> Question {
        Question {
            title: title.into(),
            text: text.into(),
            items: items.iter().map(|s| s.to_string()).collect(),
            allow_label: "Allow".into(),
            deny_label: "Deny".into(),
        }
    }

    #[test]
    fn hidden_characters_are_shown_escaped() {
        let s = Shown::new(&q(
            "a\u{202E}b\u{1b}[0m",
            "x\ny\u{2028}z\u{0}\u{061C}\u{2066}",
            &["tab\there"],
        ));
        assert_eq!(s.title, "a\\u{202e}b\\u{1b}[0m");
        assert_eq!(s.text, "x\\u{a}y\\u{2028}z\\u{0}\\u{61c}\\u{2066}");
        assert_eq!(s.items, ["tab\\u{9}here"]);
        assert!(s.plain().chars().filter(|c| *c != '\n').all(|c| !hidden(c)));
    }

    #[test]
    fn long_fields_are_cut_and_extra_items_counted() {
        let items: Vec<String> = (0..25).map(|i| format!("item {i}")).collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let s = Shown::new(&q(&"t".repeat(500), &"x".repeat(5000), &refs));
        assert_eq!(s.title.chars().count(), MAX_TITLE_CHARS + 1);
        assert!(s.title.ends_with('\u{2026}'));
        assert_eq!(s.text.chars().count(), MAX_PARAGRAPH_CHARS + 1);
        assert_eq!(s.items.len(), MAX_ITEMS);
        assert_eq!(s.more, 5);
        assert!(s.plain().ends_with("\u{2022} item 19\n\u{2026} and 5 more"));

        // Items that fill the body are counted, not shown, and the body stays in bounds.
        let long = "y".repeat(1000);
        let s = Shown::new(&q("t", &"x".repeat(1000), &[long.as_str(); 20]));
        assert!(
            s.items.len() < 20 && s.more == 20 - s.items.len(),
            "{}",
            s.items.len()
        );
        assert!(s.plain().len() <= MAX_TEXT_BYTES, "{}", s.plain().len());
    }

    #[test]
    fn an_escape_is_never_cut_in_half() {
        let s = visible(&format!("{}\u{202E}", "a".repeat(9)), 12);
        assert_eq!(s, "aaaaaaaaa\u{2026}");
    }

    #[test]
    fn kdialog_text_is_rich_text_with_markup_and_backslashes_escaped() {
        let s = Shown::new(&q("t", "<b>x</b> &amp; a\\nb \\\\", &["<i>y"]));
        assert_eq!(
            s.kdialog_text(),
            "<qt>&lt;b&gt;x&lt;/b&gt; &amp;amp; a\\\\nb \\\\\\\\<br><br>\u{2022} &lt;i&gt;y"
        );
        assert_eq!(s.plain(), "<b>x</b> &amp; a\\nb \\\\\n\n\u{2022} <i>y");
    }

    #[test]
    fn mnemonics_in_labels_are_literal() {
        let mut question = q("t", "x", &[]);
        question.allow_label = "_Yes & go".into();
        question.deny_label = "N_o && stop".into();
        let s = Shown::new(&question);
        let z = Tool::Zenity.args(&s);
        assert!(z.contains(&"--ok-label=__Yes & go".to_string()), "{z:?}");
        assert!(
            z.contains(&"--cancel-label=N__o && stop".to_string()),
            "{z:?}"
        );
        let k = Tool::Kdialog.args(&s);
        assert!(k.contains(&"--no-label=_Yes && go".to_string()), "{k:?}");
        assert!(
            k.contains(&"--yes-label=N_o &&&& stop".to_string()),
            "{k:?}"
        );
    }

    #[test]
    fn every_value_is_joined_to_its_option() {
        let s = Shown::new(&q("--gtk-module=/tmp/x.so", "-display", &["-reverse"]));
        for tool in [Tool::Zenity, Tool::Kdialog] {
            for a in tool.args(&s) {
                assert!(a.starts_with("--"), "{tool:?}: {a}");
                let name = a[2..].split('=').next().unwrap();
                assert!(
                    name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                    "{a}"
                );
            }
        }
    }

    #[test]
    fn only_the_session_variables_are_passed_on() {
        let vars = [
            "DISPLAY",
            "ZENITY_OK",
            "DIALOG_ESC",
            "LC_ALL",
            "GTK_MODULES",
            "QT_QPA_PLATFORM",
            "PATH",
            "LD_PRELOAD",
            "HOME",
        ]
        .map(|k| (OsString::from(k), OsString::from("v")));
        let kept: Vec<OsString> = passed_on(vars.into_iter())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kept, ["DISPLAY", "LC_ALL", "PATH", "HOME"]);
    }

    #[test]
    fn the_character_type_is_utf8() {
        let env = |vars: &[(&str, &str)]| {
            let vars = vars
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)));
            let out = with_utf8_ctype(vars.collect());
            out.into_iter()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                .collect::<Vec<_>>()
        };
        assert_eq!(env(&[("LANG", "de_DE.UTF-8")]), ["LANG=de_DE.UTF-8"]);
        assert_eq!(env(&[("LC_ALL", "fr_FR.utf8")]), ["LC_ALL=fr_FR.utf8"]);
        assert_eq!(env(&[]), ["LC_CTYPE=C.UTF-8"]);
        assert_eq!(
            env(&[("LANG", "de_DE.UTF-8"), ("LC_ALL", "C"), ("LC_CTYPE", "C")]),
            ["LANG=de_DE.UTF-8", "LC_CTYPE=C.UTF-8"]
        );
    }
}
