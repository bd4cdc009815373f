//! Desktop entries (Desktop Entry Specification 1.5), generated, never copied from a bundle.
//!
//! `Exec` is built here: the absolute path of capsa, `run`, `--open-files`, the app id, `--`,
//! then `%F` when the app opens files. Every string value is escaped (`\s \n \t \r \\`); the
//! bundle supplies only the name, comment, categories and MIME types, each validated by the
//! manifest rules (no control characters) and escaped again here. No `TryExec`, no
//! `Hidden`/`X-GNOME-Autostart`, no `[Desktop Action]`: nothing of the bundle's choosing runs.

use std::path::Path;

use bundle_format::Manifest;

/// Escapes a string value (spec §4: `\s`, `\n`, `\t`, `\r`, `\\`).
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' ' if i == 0 => out.push_str("\\s"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Quotes one `Exec` argument (spec "The Exec key"): in double quotes when it has a reserved
/// character, with `"`, `` ` ``, `$` and `\` backslash-escaped; `%` doubled.
pub fn quote_arg(arg: &str) -> String {
    let arg = arg.replace('%', "%%");
    let reserved = |c: char| " \t\n\"'\\><~|&;$*?#()`".contains(c);
    if !arg.chars().any(reserved) {
        return arg;
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The desktop entry for an installed app.
pub fn entry(m: &Manifest, exe: &Path, has_icon: bool) -> String {
    let d = m.desktop.clone().unwrap_or_default();
    let takes_files = !d.mime_types.is_empty();
    let mut exec = vec![quote_arg(&exe.display().to_string()), "run".into()];
    if takes_files {
        exec.push("--open-files".into());
    }
    exec.push(quote_arg(&m.id));
    if takes_files {
        exec.extend(["--".into(), "%F".into()]);
    }
    let mut out = String::from("[Desktop Entry]\nType=Application\n");
    out.push_str(&format!(
        "Name={}\n",
        escape_value(d.name.as_deref().unwrap_or(&m.name))
    ));
    if let Some(c) = d.comment.as_deref().filter(|c| !c.is_empty()) {
        out.push_str(&format!("Comment={}\n", escape_value(c)));
    }
    // The Exec value is itself a string: its backslashes are escaped once more.
    out.push_str(&format!("Exec={}\n", exec.join(" ").replace('\\', "\\\\")));
    if has_icon {
        out.push_str(&format!("Icon={}\n", m.id));
    }
    out.push_str(&format!("Terminal={}\n", d.terminal));
    // Unregistered categories would make the entry invalid: keep the registered ones only.
    let categories: Vec<&str> = d
        .categories
        .iter()
        .map(String::as_str)
        .filter(|c| bundle_format::manifest::registered_category(c))
        .collect();
    if !categories.is_empty() {
        out.push_str(&format!("Categories={};\n", categories.join(";")));
    }
    if takes_files {
        out.push_str(&format!("MimeType={};\n", d.mime_types.join(";")));
    }
    out.push_str(&format!("X-Capsa-App={}\n", m.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_exec_arguments_are_escaped() {
        assert_eq!(escape_value(" a\\b\nc"), "\\sa\\\\b\\nc");
        assert_eq!(escape_value("x\u{7}y"), "xy");
        assert_eq!(quote_arg("/usr/bin/capsa"), "/usr/bin/capsa");
        assert_eq!(quote_arg("/opt/my apps/capsa"), "\"/opt/my apps/capsa\"");
        assert_eq!(quote_arg("$(id)"), "\"\\$(id)\"");
        assert_eq!(quote_arg("100%"), "100%%");
        assert_eq!(quote_arg("a;rm -rf ~"), "\"a;rm -rf ~\"");
    }
}
