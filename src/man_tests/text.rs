//! The sections of a command's `after_long_help`, in the layout `src/cli/help.rs` defines
//! (headings, two-space entries with six-space descriptions, column-0 paragraphs), parsed and
//! rendered as roff.
//!
//! Invariants: a line that fits none of the layout's forms is an error naming it, so text
//! that would render badly never reaches a page; roff text goes through the `roff` crate,
//! which escapes it.

use roff::{bold, roman, Roff};

/// A line the layout has no place for, or one too long for `--help`.
#[derive(Debug)]
pub struct BadLine(pub String);

/// One block of a section.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Lines at column 0, joined.
    Para(String),
    /// A two-space entry and its six-space description, joined.
    Entry { term: String, text: String },
}

/// A heading and what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

/// The widest line `--help` shows unwrapped at clap's default width, with room to spare.
const MAX_WIDTH: usize = 92;

fn is_heading(line: &str) -> bool {
    line.len() > 1
        && line.starts_with(|c: char| c.is_ascii_uppercase())
        && line
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == ' ' || c == '-')
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn join(to: &mut String, line: &str) {
    if !to.is_empty() {
        to.push(' ');
    }
    to.push_str(line.trim());
}

/// Splits `text` into its sections.
pub fn parse(text: &str) -> Result<Vec<Section>, BadLine> {
    let mut sections: Vec<Section> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if line.chars().count() > MAX_WIDTH {
            return Err(BadLine(format!(
                "longer than {MAX_WIDTH} columns: {line:?}"
            )));
        }
        if line.trim().is_empty() {
            open = false;
            continue;
        }
        if is_heading(line) {
            sections.push(Section {
                title: line.to_owned(),
                blocks: Vec::new(),
            });
            open = false;
            continue;
        }
        let Some(section) = sections.last_mut() else {
            return Err(BadLine(format!("text before any heading: {line:?}")));
        };
        match (indent(line), section.blocks.last_mut()) {
            (0, Some(Block::Para(p))) if open => join(p, line),
            (0, _) => section.blocks.push(Block::Para(line.to_owned())),
            (2, _) => section.blocks.push(Block::Entry {
                term: line.trim().to_owned(),
                text: String::new(),
            }),
            (6, Some(Block::Entry { text, .. })) => join(text, line),
            _ => {
                return Err(BadLine(format!(
                    "indented neither 0, 2 nor 6 (after an entry): {line:?}"
                )))
            }
        }
        open = true;
    }
    Ok(sections)
}

/// The section's blocks as roff (after its `.SH`).
pub fn render(s: &Section) -> Roff {
    let mut r = Roff::new();
    for (i, b) in s.blocks.iter().enumerate() {
        match b {
            Block::Para(p) => {
                if i > 0 {
                    r.control("PP", []);
                }
                r.text([roman(p.as_str())]);
            }
            Block::Entry { term, text } => {
                r.control("TP", []);
                r.text([bold(term.as_str())]);
                if !text.is_empty() {
                    r.text([roman(text.as_str())]);
                }
            }
        }
    }
    r
}

/// The `name(section)` references in `text`.
pub fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    for (i, _) in text.match_indices('(') {
        let closes = b.get(i + 2) == Some(&b')');
        if !closes || !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            continue;
        }
        let name_start = text[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
            .map_or(0, |j| j + 1);
        if name_start < i {
            out.push(text[name_start..i + 3].to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_layout_and_refuses_what_does_not_fit() {
        let s = parse("EXAMPLES\n  capsa list\n      One line\n      per app.\n\nA para\ngraph.\n")
            .unwrap();
        assert_eq!(s[0].title, "EXAMPLES");
        assert_eq!(
            s[0].blocks,
            [
                Block::Entry {
                    term: "capsa list".into(),
                    text: "One line per app.".into()
                },
                Block::Para("A para graph.".into())
            ]
        );
        assert!(parse("EXAMPLES\n   three").is_err());
        assert!(parse("EXAMPLES\n      no entry").is_err());
        assert!(parse("before\nEXAMPLES").is_err());
    }

    #[test]
    fn finds_page_references() {
        assert_eq!(
            references("capsa-run(1), capsa.toml(5) and (x) f(12)"),
            ["capsa-run(1)", "capsa.toml(5)"]
        );
    }
}
