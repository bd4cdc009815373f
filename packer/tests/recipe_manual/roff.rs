//! Reads what `man/capsa.toml.5` documents, by the markers the page defines (its header
//! comment says them): a table is a `.SH` or `.SS` titled `[name]` or `[[name]]`; a key is a
//! `.TP` whose next line starts with `\fBkey\fR`, under its table's heading; examples are
//! `.EX` ... `.EE` blocks: in a table section a fragment of that table (or, when it starts
//! with a `[header]` line, a complete piece of TOML), in EXAMPLES a complete recipe.
//!
//! Invariants: a heading that is not a table ends the table; `.PP` ends a key's entry; code
//! in `.EX` blocks must survive copy and paste, so it may not hold a bare `-`, `'` or `` ` ``
//! (groff prints hyphens and quotes there); each such problem is reported with its line.

use std::collections::{BTreeMap, BTreeSet};

/// One `.EX` block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The table section it is in (`capture`, `capture.unit`), if any.
    pub table: Option<String>,
    /// The line of its `.EX`, counted from 1.
    pub line: usize,
    /// The text, unescaped.
    pub text: String,
}

/// What the manual documents.
#[derive(Debug, Default)]
pub struct Manual {
    /// Tables (`capture`) and keys (`capture.paths`), as dotted paths.
    pub keys: BTreeSet<String>,
    /// Tables written as arrays of tables (`[[capture.unit]]`).
    pub arrays: BTreeSet<String>,
    /// Each key's entry text (its tag line and paragraph), unescaped.
    pub entries: BTreeMap<String, String>,
    /// Examples in the table sections.
    pub fragments: Vec<Block>,
    /// Complete recipes, from the EXAMPLES section.
    pub recipes: Vec<Block>,
    /// Escaping problems in code, with their lines.
    pub problems: Vec<String>,
}

/// Requests whose arguments are text in another font.
const FONT_MACROS: &[&str] = &[".B", ".I", ".BR", ".RB", ".IR", ".RI", ".BI", ".IB"];

#[derive(PartialEq)]
enum Section {
    Table(String),
    Examples,
    Other,
}

/// `[name]` or `[[name]]`: the table's dotted name and whether it is an array of tables.
fn table_title(title: &str) -> Option<(String, bool)> {
    let t = unescape(title.trim().trim_matches('"'));
    let (inner, array) = match t.strip_prefix("[[").and_then(|s| s.strip_suffix("]]")) {
        Some(i) => (i, true),
        None => (t.strip_prefix('[')?.strip_suffix(']')?, false),
    };
    let ok = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    ok.then(|| (inner.to_owned(), array))
}

/// Roff text as it reads: escapes replaced, fonts dropped.
pub fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let esc = &rest[i + 1..];
        let (text, len) = match esc.chars().next() {
            Some('-') => ("-", 1),
            Some('e') | Some('\\') => ("\\", 1),
            Some('&') | Some('|') | Some('^') => ("", 1),
            Some(' ') => (" ", 1),
            Some('f') if esc.starts_with("f(CW") => ("", 4),
            Some('f') => ("", 2),
            Some('(') => (named(esc.get(1..3).unwrap_or("")), 3),
            Some('*') if esc.starts_with("*(Aq") => ("'", 4),
            _ => ("\\", 0),
        };
        out.push_str(text);
        rest = esc.get(len..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

fn named(name: &str) -> &'static str {
    match name {
        "aq" => "'",
        "dq" => "\"",
        "ga" => "`",
        "em" => "\u{2014}",
        "en" => "\u{2013}",
        "bu" => "\u{2022}",
        "ti" => "~",
        "ha" => "^",
        _ => "\u{fffd}",
    }
}

/// Characters groff would not print as typed, outside escapes.
fn bare_specials(line: &str) -> Vec<char> {
    let mut found = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '-' | '\'' | '`' => found.push(c),
            _ => {}
        }
    }
    found
}

/// Parses the manual's text.
pub fn parse(text: &str) -> Manual {
    let mut m = Manual::default();
    let mut section = Section::Other;
    let mut key: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let (request, rest) = line.split_once(' ').unwrap_or((line, ""));
        match request {
            ".SH" | ".SS" => {
                key = None;
                match table_title(rest) {
                    Some((name, array)) => {
                        m.keys.insert(name.clone());
                        if array {
                            m.arrays.insert(name.clone());
                        }
                        section = Section::Table(name);
                    }
                    None if request == ".SS" => {}
                    None if unescape(rest.trim_matches('"')) == "EXAMPLES" => {
                        section = Section::Examples
                    }
                    None => section = Section::Other,
                }
            }
            ".PP" | ".LP" | ".P" => key = None,
            ".TP" => {
                if let (Section::Table(t), Some(tag)) = (&section, lines.get(i + 1)) {
                    if let Some(name) = tag
                        .strip_prefix("\\fB")
                        .and_then(|s| s.split("\\fR").next())
                    {
                        let path = format!("{t}.{}", unescape(name));
                        m.keys.insert(path.clone());
                        m.entries.insert(path.clone(), unescape(tag));
                        key = Some(path);
                        i += 1;
                    }
                }
            }
            ".EX" => {
                let start = i + 1;
                let mut body = Vec::new();
                i += 1;
                while i < lines.len() && lines[i] != ".EE" {
                    let specials = bare_specials(lines[i]);
                    if !specials.is_empty() {
                        m.problems.push(format!(
                            "line {}: {specials:?} in code: write \\-, \\(aq, \\(ga",
                            i + 1
                        ));
                    }
                    body.push(unescape(lines[i]));
                    i += 1;
                }
                let block = |table| Block {
                    table,
                    line: start,
                    text: body.join("\n") + "\n",
                };
                match &section {
                    Section::Table(t) => m.fragments.push(block(Some(t.clone()))),
                    Section::Examples => m.recipes.push(block(None)),
                    Section::Other => {}
                }
            }
            _ if !line.starts_with('.') || FONT_MACROS.contains(&request) => {
                if let Some(k) = &key {
                    let text = if line.starts_with('.') { rest } else { line };
                    let entry = m.entries.entry(k.clone()).or_default();
                    entry.push('\n');
                    entry.push_str(&unescape(&text.replace('"', "")));
                }
            }
            _ => {}
        }
        i += 1;
    }
    m
}
