//! Keeps `man/` in step with the CLI definition: the committed pages must equal freshly
//! rendered ones ([`page`]); every page has the sections a man page needs, names in SEE ALSO
//! only pages that exist, and renders without a groff warning; every argument has help.
//! Regenerate with `CAPSA_UPDATE_MAN=1 cargo test -p capsa man_pages`.

mod page;
mod text;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::{Command, CommandFactory, Parser};

use page::Page;

/// The sections every page of a command has (a file format's: all but EXIT STATUS and
/// ENVIRONMENT).
const SECTIONS: [&str; 8] = [
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "EXIT STATUS",
    "ENVIRONMENT",
    "FILES",
    "EXAMPLES",
    "SEE ALSO",
];

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

fn built() -> Command {
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    cmd
}

fn shown(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// The page of `capsa`, of each command and of each nested command (`capsa repo init`).
fn pages() -> Vec<Page> {
    fn render(name: &str, c: &Command, parent: Option<(&str, &Command)>) -> Page {
        page::render(name, c, parent).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
    let cmd = built();
    let mut out = vec![render("capsa", &cmd, None)];
    for sub in shown(&cmd) {
        let name = format!("capsa-{}", sub.get_name());
        out.push(render(&name, sub, None));
        for nested in shown(sub) {
            let nested_name = format!("{name}-{}", nested.get_name());
            out.push(render(&nested_name, nested, Some((name.as_str(), sub))));
        }
    }
    out
}

/// The pages in `man/` that are not generated (`capsa.toml.5`), with their text.
fn written_pages() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(man_dir())
        .expect("man/ is readable")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".1") {
            let text = std::fs::read_to_string(e.path()).expect("a page is UTF-8");
            out.push((name, text));
        }
    }
    out.sort();
    out
}

/// `capsa-run.1` -> `capsa-run(1)`.
fn reference(file: &str) -> String {
    match file.rsplit_once('.') {
        Some((name, section)) => format!("{name}({section})"),
        None => file.to_owned(),
    }
}

/// The `.SH` titles of a page's roff.
fn titles(roff: &str) -> Vec<String> {
    roff.lines()
        .filter_map(|l| l.strip_prefix(".SH "))
        .map(|t| t.trim_matches('"').to_owned())
        .collect()
}

/// The pages SEE ALSO names, read from the roff.
fn see_also(roff: &str) -> Vec<String> {
    let section: String = roff
        .lines()
        .skip_while(|l| *l != ".SH SEE ALSO" && *l != ".SH \"SEE ALSO\"")
        .skip(1)
        .take_while(|l| !l.starts_with(".SH"))
        .map(|l| {
            l.replace("\\-", "-")
                .replace("\\fR", "")
                .replace("\\fB", "")
                .replace(" (", "(")
        })
        .collect::<Vec<_>>()
        .join(" ");
    text::references(&section)
}

#[test]
fn man_pages_are_fresh() {
    let dir = man_dir();
    let pages = pages();
    let update = std::env::var_os("CAPSA_UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for p in &pages {
        let path = dir.join(&p.file);
        if update {
            std::fs::write(&path, &p.roff).expect("man/ is writable");
        } else if std::fs::read(&path).ok().as_deref() != Some(p.roff.as_bytes()) {
            stale.push(p.file.clone());
        }
    }
    let generated: BTreeSet<&str> = pages.iter().map(|p| p.file.as_str()).collect();
    for e in std::fs::read_dir(&dir).expect("man/ is readable").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".1") && !generated.contains(name.as_str()) {
            match update {
                true => std::fs::remove_file(e.path()).expect("man/ is writable"),
                false => stale.push(format!("{name} (no such command)")),
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale man pages {stale:?}: run CAPSA_UPDATE_MAN=1 cargo test -p capsa man_pages"
    );
}

#[test]
fn man_pages_have_every_section() {
    let mut missing = Vec::new();
    let all = pages()
        .into_iter()
        .map(|p| (p.file, p.roff))
        .chain(written_pages());
    for (file, roff) in all {
        let have = titles(&roff);
        // A file format (section 5) has no exit status and reads no environment.
        let needed = SECTIONS
            .iter()
            .filter(|s| file.ends_with(".1") || !matches!(**s, "EXIT STATUS" | "ENVIRONMENT"));
        for s in needed.filter(|s| !have.iter().any(|h| h == *s)) {
            missing.push(format!("{file}: {s}"));
        }
    }
    assert!(
        missing.is_empty(),
        "missing sections {missing:#?}: a command's come from its after_long_help (src/cli/help.rs)"
    );
    let repeating: Vec<String> = pages()
        .into_iter()
        .filter(|p| p.description.trim().is_empty() || p.description.trim() == p.about.trim())
        .map(|p| p.file)
        .collect();
    assert!(
        repeating.is_empty(),
        "{repeating:?}: DESCRIPTION only repeats the NAME line: give the command's doc comment \
         a second paragraph"
    );
}

#[test]
fn man_pages_see_also_names_only_pages_in_man() {
    let pages = pages();
    let written = written_pages();
    let known: BTreeSet<String> = pages
        .iter()
        .map(|p| reference(&p.file))
        .chain(written.iter().map(|(f, _)| reference(f)))
        .collect();
    let mut unknown = Vec::new();
    let all = pages
        .iter()
        .map(|p| (p.file.clone(), p.roff.clone()))
        .chain(written);
    for (file, roff) in all {
        let refs = see_also(&roff);
        assert!(!refs.is_empty(), "{file}: SEE ALSO names no page");
        unknown.extend(
            refs.into_iter()
                .filter(|r| !known.contains(r))
                .map(|r| format!("{file}: {r}")),
        );
    }
    assert!(
        unknown.is_empty(),
        "SEE ALSO names pages not in man/: {unknown:#?}"
    );
}

/// Runs `cmd` on `page`; what it prints on standard error are the warnings.
fn warnings(mut cmd: Process, page: &Path) -> Option<String> {
    let out = cmd
        .arg(page)
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    Some(match out.status.success() {
        true => err,
        false => format!("{}: {err}", out.status),
    })
}

#[test]
fn man_pages_render_without_warnings() {
    let tools = ["groff", "man"].map(|t| Process::new(t).arg("--version").output().is_ok());
    if tools.contains(&false) {
        let msg = "man and groff are needed (Debian: man-db, which brings groff-base)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("skipped: {msg}");
        return;
    }
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut files = Vec::new();
    for p in pages() {
        let path = tmp.path().join(&p.file);
        std::fs::write(&path, &p.roff).expect("the temporary directory is writable");
        files.push(path);
    }
    files.extend(written_pages().iter().map(|(f, _)| man_dir().join(f)));
    let mut bad = Vec::new();
    for f in &files {
        let mut groff = Process::new("groff");
        groff.args(["-man", "-Tutf8", "-ww", "-z"]);
        let mut man = Process::new("man");
        man.args(["-l", "--warnings"]);
        for (tool, cmd) in [("groff -ww", groff), ("man -l", man)] {
            match warnings(cmd, f) {
                Some(w) if w.trim().is_empty() => {}
                Some(w) => bad.push(format!("{tool} {}: {w}", f.display())),
                None => bad.push(format!("{tool} {}: cannot run", f.display())),
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Every argument of every command says what it is, in more than two words.
#[test]
fn every_argument_has_help() {
    fn walk(cmd: &Command, path: &str, bad: &mut Vec<String>) {
        if cmd.get_about().is_none() {
            bad.push(format!("{path}: no about"));
        }
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if matches!(a.get_id().as_str(), "help" | "version") {
                continue;
            }
            let help = a.get_long_help().or(a.get_help()).map(|h| h.to_string());
            let words = help
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .count();
            if words < 3 {
                bad.push(format!("{path} {}: help {help:?}", a.get_id()));
            }
        }
        for sub in shown(cmd) {
            walk(sub, &format!("{path} {}", sub.get_name()), bad);
        }
    }
    let mut bad = Vec::new();
    walk(&built(), "capsa", &mut bad);
    assert!(
        bad.is_empty(),
        "arguments without a help line of three words or more (doc comments in src/cli.rs, \
         src/cli/*.rs): {bad:#?}"
    );
}

/// The words of a shell command line: quotes removed, up to a redirection or pipe.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut started) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => (quote, started) = (Some(c), true),
            (None, ' ') => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            (None, '>' | '|') => break,
            (None, c) => (started, word) = (true, word + &c.to_string()),
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Every example that runs capsa is a command line capsa accepts.
#[test]
fn man_page_examples_are_valid_capsa_commands() {
    fn walk(cmd: &Command, found: &mut Vec<(String, String)>) {
        let help = cmd.get_after_long_help().or(cmd.get_after_help());
        let text = help.map(|h| h.to_string()).unwrap_or_default();
        let sections = text::parse(&text).unwrap_or_default();
        for s in sections.iter().filter(|s| s.title == "EXAMPLES") {
            for b in &s.blocks {
                if let text::Block::Entry { term, .. } = b {
                    found.push((cmd.get_name().to_owned(), term.clone()));
                }
            }
        }
        shown(cmd).for_each(|s| walk(s, found));
    }
    let mut examples = Vec::new();
    walk(&built(), &mut examples);
    let mut bad = Vec::new();
    let mut checked = 0;
    for (cmd, line) in &examples {
        for part in line.split("&&").map(str::trim) {
            // What follows an environment assignment (`SOURCE_DATE_EPOCH=$(...) capsa pack`).
            let Some(at) = part
                .find("capsa ")
                .filter(|&i| i == 0 || part[..i].ends_with(' '))
            else {
                continue;
            };
            checked += 1;
            let words = shell_words(&part[at..]);
            if let Err(e) = crate::cli::Cli::try_parse_from(&words) {
                if e.kind() != clap::error::ErrorKind::DisplayHelp {
                    bad.push(format!("{cmd}: {part}: {}", e.kind()));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} examples found");
    assert!(bad.is_empty(), "examples capsa refuses: {bad:#?}");
}
