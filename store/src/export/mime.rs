//! MIME: types the app defines go to `mime/packages/<app-id>.xml` — only new types (`x-` or
//! `vnd.` subtypes the system does not know), with `*.ext` globs at weight 5 and never any
//! magic, so an app cannot take over well-known types. Default handlers in `mimeapps.list`
//! change only when the user asks.

use std::path::Path;

use bundle_format::manifest::MimeDefinition;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether the system's shared-mime-info database already knows `t`.
fn known(t: &str) -> bool {
    ["/usr/share/mime", "/usr/local/share/mime"]
        .iter()
        .any(|d| Path::new(d).join(format!("{t}.xml")).exists())
}

/// The package XML for the app's own types, with the refused ones as warnings.
pub fn package(defs: &[MimeDefinition]) -> (Option<String>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut body = String::new();
    for d in defs {
        let sub = d.mime_type.split_once('/').map(|(_, s)| s).unwrap_or("");
        if !(sub.starts_with("x-") || sub.starts_with("vnd.")) || known(&d.mime_type) {
            warnings.push(format!(
                "MIME type {} not defined: only new x- or vnd. types may be",
                d.mime_type
            ));
            continue;
        }
        body.push_str(&format!(
            "  <mime-type type=\"{}\">\n",
            xml_escape(&d.mime_type)
        ));
        if let Some(c) = d.comment.as_deref().filter(|c| !c.is_empty()) {
            body.push_str(&format!("    <comment>{}</comment>\n", xml_escape(c)));
        }
        for g in &d.globs {
            body.push_str(&format!(
                "    <glob pattern=\"{}\" weight=\"5\"/>\n",
                xml_escape(g)
            ));
        }
        body.push_str("  </mime-type>\n");
    }
    if body.is_empty() {
        return (None, warnings);
    }
    let xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mime-info xmlns=\"http://www.freedesktop.org/standards/shared-mime-info\">\n{body}</mime-info>\n");
    (Some(xml), warnings)
}

/// `mimeapps.list` with `types` (default handler `desktop`) set, or with every default that
/// names `desktop` removed when `types` is empty. Other lines are kept as they are.
pub fn edit_mimeapps(text: &str, desktop: &str, types: &[String]) -> String {
    let mut out = Vec::new();
    let mut in_defaults = false;
    let mut saw_defaults = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if in_defaults {
                out.extend(types.iter().map(|ty| format!("{ty}={desktop};")));
            }
            in_defaults = t == "[Default Applications]";
            saw_defaults |= in_defaults;
            out.push(line.to_owned());
            continue;
        }
        if in_defaults {
            if let Some((k, v)) = t.split_once('=') {
                if types.iter().any(|ty| ty == k.trim())
                    || (types.is_empty() && v.split(';').any(|e| e.trim() == desktop))
                {
                    continue;
                }
            }
        }
        out.push(line.to_owned());
    }
    if in_defaults {
        out.extend(types.iter().map(|ty| format!("{ty}={desktop};")));
    } else if !saw_defaults && !types.is_empty() {
        out.push("[Default Applications]".into());
        out.extend(types.iter().map(|ty| format!("{ty}={desktop};")));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(t: &str) -> MimeDefinition {
        MimeDefinition {
            mime_type: t.into(),
            comment: Some("A <note>".into()),
            globs: vec!["*.capsanote".into()],
        }
    }

    #[test]
    fn only_new_types_without_magic() {
        let (xml, warnings) = package(&[
            def("text/x-capsa-note"),
            def("text/html"),
            def("application/pdf"),
        ]);
        let xml = xml.unwrap();
        assert!(
            xml.contains("type=\"text/x-capsa-note\"")
                && xml.contains("weight=\"5\"")
                && xml.contains("A &lt;note&gt;")
        );
        assert!(!xml.contains("text/html") && !xml.contains("magic"));
        assert_eq!(warnings.len(), 2);
    }

    #[test]
    fn mimeapps_edits_keep_other_lines() {
        let text = "[Added Associations]\ntext/plain=gedit.desktop;\n[Default Applications]\ntext/plain=gedit.desktop;\nimage/png=old.desktop;\n";
        let set = edit_mimeapps(text, "org.x.A.desktop", &["image/png".into()]);
        assert!(
            set.contains("image/png=org.x.A.desktop;")
                && !set.contains("old.desktop")
                && set.contains("text/plain=gedit.desktop;")
        );
        let removed = edit_mimeapps(&set, "org.x.A.desktop", &[]);
        assert!(!removed.contains("org.x.A") && removed.contains("[Added Associations]"));
        assert_eq!(
            edit_mimeapps("", "a.desktop", &["x/y".into()]),
            "[Default Applications]\nx/y=a.desktop;\n"
        );
    }
}
