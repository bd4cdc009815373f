//! One man page per command, rendered section by section: the title, NAME and OPTIONS by
//! clap_mangen; SYNOPSIS (with option values), DESCRIPTION (the long help less the NAME line)
//! and COMMANDS here; then the sections of the command's `after_long_help` ([`super::text`]),
//! in man-pages(7) order, and SEE ALSO.
//!
//! Invariants: a nested command (`capsa repo init`) takes EXIT STATUS, ENVIRONMENT, FILES and
//! the EXAMPLES that run it from its parent when it has none of its own; SEE ALSO always names
//! capsa(1), the parent and the nested pages, plus the text's own references; the roff
//! preamble appears once.

use clap::{Arg, ArgAction, Command};
use clap_mangen::Man;
use roff::{roman, Roff};

use super::text::{self, Block, Section};

/// A rendered page.
pub struct Page {
    /// `capsa-repo-init.1`.
    pub file: String,
    pub roff: String,
    /// The NAME line's description and the DESCRIPTION's text, to compare.
    pub about: String,
    pub description: String,
}

/// Sections the text may give, in the order a page has them (others come first).
const ORDERED: [&str; 4] = ["EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"];
const INHERITED: [&str; 4] = ["EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"];

/// Escapes text for a roff line of our own (what the `roff` crate does for its lines).
fn esc(s: &str) -> String {
    s.replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('\'', "\\(aq")
}

/// Rendered roff without the apostrophe preamble, which every rendering starts with and the
/// page has once.
fn without_preamble(text: &str) -> String {
    text.lines()
        .skip_while(|l| l.starts_with(".ie \\n(.g") || l.starts_with(".el .ds Aq"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn lines(r: &Roff) -> String {
    without_preamble(&r.render())
}

fn clap_section(man: &Man, f: fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    f(man, &mut out).expect("rendering into memory succeeds");
    without_preamble(&String::from_utf8(out).expect("clap_mangen writes UTF-8"))
}

fn is_shown(a: &Arg) -> bool {
    !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version")
}

fn value_names(a: &Arg) -> String {
    let names: Vec<String> = match a.get_value_names() {
        Some(v) => v.iter().map(|n| n.to_string()).collect(),
        None => vec![a.get_id().as_str().to_uppercase()],
    };
    names
        .iter()
        .map(|n| format!("\\fI{}\\fR", esc(n)))
        .collect::<Vec<_>>()
        .join("\\ ")
}

fn synopsis_arg(a: &Arg) -> String {
    let takes = a.get_num_args().is_some_and(|r| r.takes_values());
    let many = a.get_num_args().is_some_and(|r| r.max_values() > 1);
    let mut s = if a.is_positional() {
        let dashes = if a.is_last_set() || a.is_trailing_var_arg_set() {
            "\\fB\\-\\-\\fR\\ "
        } else {
            ""
        };
        format!(
            "{dashes}{}{}",
            value_names(a),
            if many { "..." } else { "" }
        )
    } else {
        let mut flag = match (a.get_short(), a.get_long()) {
            (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR|\\fB\\-\\-{}\\fR", esc(l)),
            (Some(s), None) => format!("\\fB\\-{s}\\fR"),
            (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", esc(l)),
            (None, None) => String::new(),
        };
        if takes {
            flag.push_str(&format!("\\ {}", value_names(a)));
        }
        flag
    };
    if !a.is_required_set() {
        s = format!("[{s}]");
    }
    if !a.is_positional() && matches!(a.get_action(), ArgAction::Append | ArgAction::Count) {
        s.push_str("...");
    }
    s
}

fn synopsis(cmd: &Command) -> String {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    let mut parts = vec![format!("\\fB{}\\fR", esc(name))];
    let args: Vec<&Arg> = cmd.get_arguments().filter(|a| is_shown(a)).collect();
    parts.extend(
        args.iter()
            .filter(|a| !a.is_positional())
            .map(|a| synopsis_arg(a)),
    );
    parts.extend(
        args.iter()
            .filter(|a| a.is_positional())
            .map(|a| synopsis_arg(a)),
    );
    if subcommands(cmd).next().is_some() {
        parts.push("\\fIcommand\\fR\\ [\\fIargs\\fR]".to_owned());
    }
    format!(".SH SYNOPSIS\n{}\n", parts.join(" "))
}

fn subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// The long help without its first paragraph when that is the NAME line.
fn description_text(cmd: &Command) -> (String, String) {
    let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
    let long = cmd
        .get_long_about()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut paras: Vec<&str> = long
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if paras
        .first()
        .is_some_and(|p| p.trim_end_matches('.') == about.trim_end_matches('.'))
    {
        paras.remove(0);
    }
    (about, paras.join("\n\n"))
}

fn description(text: &str) -> String {
    let mut r = Roff::new();
    r.control("SH", ["DESCRIPTION"]);
    for (i, p) in text.split("\n\n").enumerate() {
        if i > 0 {
            r.control("PP", []);
        }
        r.text([roman(p.replace('\n', " "))]);
    }
    lines(&r)
}

fn commands(page: &str, cmd: &Command) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    for sub in subcommands(cmd) {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let mut r = Roff::new();
        r.control("TP", []).text([roman(about)]);
        let body = lines(&r);
        let body = body.trim_start_matches(".TP\n");
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR(1)\n{body}",
            esc(&format!("{page}-{}", sub.get_name()))
        ));
    }
    out
}

/// The command's text sections, with what a nested command inherits from `parent`.
fn text_sections(cmd: &Command, parent: Option<&Command>) -> Result<Vec<Section>, String> {
    let parse = |c: &Command| {
        let help = c
            .get_after_long_help()
            .or(c.get_after_help())
            .map(|h| h.to_string());
        text::parse(help.as_deref().unwrap_or_default())
            .map_err(|e| format!("{}: after_long_help: {}", c.get_name(), e.0))
    };
    let mut own = parse(cmd)?;
    let Some(parent) = parent else {
        return Ok(own);
    };
    let path = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_owned();
    for mut s in parse(parent)? {
        if !INHERITED.contains(&s.title.as_str()) || own.iter().any(|o| o.title == s.title) {
            continue;
        }
        if s.title == "EXAMPLES" {
            let runs = |b: &Block| matches!(b, Block::Entry { term, .. } if term == &path || term.starts_with(&format!("{path} ")));
            if s.blocks.iter().any(runs) {
                s.blocks.retain(runs);
            }
        }
        own.push(s);
    }
    Ok(own)
}

fn see_also(page: &str, cmd: &Command, parent: Option<&str>, refs: &[String]) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if n != format!("{page}(1)") && !names.contains(&n) {
            names.push(n);
        }
    };
    if page != "capsa" {
        add("capsa(1)".into());
    }
    if let Some(p) = parent {
        add(format!("{p}(1)"));
    }
    if page != "capsa" {
        subcommands(cmd).for_each(|s| add(format!("{page}-{}(1)", s.get_name())));
    }
    refs.iter().cloned().for_each(&mut add);
    let lines: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (name, sect) = n.split_once('(').unwrap_or((n, ""));
            let comma = if i + 1 < names.len() { "," } else { "" };
            format!(".BR {} ({sect}{comma}", esc(name))
        })
        .collect();
    format!(".SH SEE ALSO\n{}\n", lines.join("\n"))
}

/// Renders the page `page` (`capsa-repo-init`) of the built command `cmd`, nested in the
/// command whose page is `parent` (and whose definition is `parent_cmd`), if any.
pub fn render(page: &str, cmd: &Command, parent: Option<(&str, &Command)>) -> Result<Page, String> {
    let named = cmd.clone().name(page.to_owned());
    let version = named.get_version().unwrap_or_default().to_owned();
    let man = Man::new(named.clone());
    let mut roff = String::from(".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n");
    // Not Man::render_title: it drops an empty date, and the source then takes its place.
    roff.push_str(&format!(
        ".TH {} 1 \"\" \"capsa {version}\" \"Capsa Manual\"\n",
        esc(page)
    ));
    roff.push_str(&clap_section(&man, Man::render_name_section));
    roff.push_str(&synopsis(cmd));
    let (about, desc) = description_text(cmd);
    roff.push_str(&description(&desc));
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        roff.push_str(&clap_section(&man, Man::render_options_section));
    }
    if subcommands(cmd).next().is_some() {
        roff.push_str(&commands(page, cmd));
    }
    let mut sections = text_sections(cmd, parent.map(|p| p.1))?;
    let rank = |s: &Section| {
        ORDERED
            .iter()
            .position(|t| *t == s.title)
            .map_or(0, |i| i + 1)
    };
    sections.sort_by_key(rank);
    let mut refs = Vec::new();
    for s in &sections {
        if s.title == "SEE ALSO" {
            s.blocks.iter().for_each(|b| match b {
                Block::Para(p) | Block::Entry { text: p, .. } => refs.extend(text::references(p)),
            });
            continue;
        }
        roff.push_str(&format!(".SH {}\n", s.title));
        roff.push_str(&lines(&text::render(s)));
    }
    roff.push_str(&see_also(page, cmd, parent.map(|p| p.0), &refs));
    Ok(Page {
        file: format!("{page}.1"),
        roff,
        about,
        description: desc,
    })
}
