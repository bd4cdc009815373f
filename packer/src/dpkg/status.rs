//! A careful parser of dpkg's `status` file (deb822 paragraphs: `Field: value` lines,
//! continuation lines starting with a space or tab, paragraphs separated by blank lines) and of
//! the relation fields (`Depends: a (>= 1), b | c:any`).
//!
//! Invariants: every problem is an error naming the file and the 1-based line; no input panics;
//! only the fields the packer uses are kept; version constraints and architecture qualifiers in
//! relations are dropped (the closure takes the first installed or provided alternative, as the
//! installed system already satisfies them).

use std::collections::BTreeMap;
use std::path::Path;

use super::DpkgError;

/// One installed package as the status file describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub architecture: Option<String>,
    pub version: String,
    /// `Essential: yes` or `Priority: required`: part of every Debian system.
    pub base: bool,
    /// `Multi-Arch: same`: its file list is `info/<name>:<arch>.list`.
    pub multi_arch_same: bool,
    pub provides: Vec<String>,
    /// `Pre-Depends` then `Depends`: each group is a list of alternatives (package names).
    pub depends: Vec<Vec<String>>,
}

/// One paragraph's fields, with the line each started on.
type Fields = BTreeMap<String, (usize, String)>;

fn parse_err(path: &Path, line: usize, problem: impl Into<String>) -> DpkgError {
    DpkgError::Parse {
        path: path.into(),
        line,
        problem: problem.into(),
    }
}

/// Splits `text` into paragraphs of fields.
fn paragraphs(path: &Path, text: &str) -> Result<Vec<(usize, Fields)>, DpkgError> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, Fields)> = None;
    let mut last: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            out.extend(cur.take());
            last = None;
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            let field = last
                .as_ref()
                .and_then(|f| cur.as_mut().and_then(|(_, p)| p.get_mut(f)))
                .ok_or_else(|| parse_err(path, n, "continuation line before any field"))?;
            field.1.push('\n');
            field.1.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            parse_err(path, n, "line is neither `Field: value` nor a continuation")
        })?;
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(parse_err(path, n, format!("bad field name {name:?}")));
        }
        let (_, fields) = cur.get_or_insert_with(|| (n, Fields::new()));
        let key = name.to_ascii_lowercase();
        if fields
            .insert(key.clone(), (n, value.trim().to_owned()))
            .is_some()
        {
            return Err(parse_err(path, n, format!("field {name} given twice")));
        }
        last = Some(key);
    }
    out.extend(cur);
    Ok(out)
}

/// The package names of a relation field: `,` separates groups, `|` alternatives.
pub fn relations(path: &Path, line: usize, value: &str) -> Result<Vec<Vec<String>>, DpkgError> {
    let mut groups = Vec::new();
    for group in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let mut alts = Vec::new();
        for alt in group.split('|').map(str::trim) {
            let name = alt
                .split(|c: char| c.is_whitespace() || c == '(' || c == '[' || c == '<')
                .next()
                .unwrap_or_default();
            let name = name.split(':').next().unwrap_or_default();
            if !valid_name(name) {
                return Err(parse_err(path, line, format!("bad relation {alt:?}")));
            }
            alts.push(name.to_owned());
        }
        groups.push(alts);
    }
    Ok(groups)
}

/// Debian Policy §5.6.1: lowercase letters, digits, `+ - .`, at least two, starting alnum.
pub fn valid_name(n: &str) -> bool {
    n.len() >= 2
        && n.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// The packages whose `Status` is `install ok installed`.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<Package>, DpkgError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        parse_err(path, line, "not UTF-8")
    })?;
    let mut out = Vec::new();
    for (start, f) in paragraphs(path, text)? {
        let get = |k: &str| f.get(k).map(|(_, v)| v.as_str());
        let name = get("package")
            .ok_or_else(|| parse_err(path, start, "paragraph without a Package field"))?;
        if !valid_name(name) {
            return Err(parse_err(path, start, format!("bad package name {name:?}")));
        }
        if get("status") != Some("install ok installed") {
            continue;
        }
        let mut depends = Vec::new();
        for k in ["pre-depends", "depends"] {
            if let Some((line, v)) = f.get(k) {
                depends.extend(relations(path, *line, v)?);
            }
        }
        let provides = match f.get("provides") {
            Some((line, v)) => relations(path, *line, v)?.into_iter().flatten().collect(),
            None => Vec::new(),
        };
        out.push(Package {
            name: name.to_owned(),
            architecture: get("architecture").map(str::to_owned),
            version: get("version").unwrap_or_default().to_owned(),
            base: get("essential") == Some("yes") || get("priority") == Some("required"),
            multi_arch_same: get("multi-arch") == Some("same"),
            provides,
            depends,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "Package: less\nStatus: install ok installed\nPriority: important\n\
Architecture: amd64\nVersion: 590-2\nDepends: libc6 (>= 2.34), libtinfo6 (>= 6) | libncurses6:any\n\
Description: pager\n a long\n .\n description\n\n\
Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
Package: libc6\nStatus: install ok installed\nPriority: required\nMulti-Arch: same\n\
Architecture: amd64\nVersion: 2.36\nProvides: libc6-x (= 1)\n";

    #[test]
    fn reads_installed_packages_and_relations() {
        let p = parse(Path::new("status"), GOOD.as_bytes()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "less");
        assert_eq!(p[0].version, "590-2");
        assert!(!p[0].base);
        assert_eq!(
            p[0].depends,
            vec![
                vec!["libc6".to_owned()],
                vec!["libtinfo6".into(), "libncurses6".into()]
            ]
        );
        assert!(p[1].base && p[1].multi_arch_same);
        assert_eq!(p[1].provides, vec!["libc6-x".to_owned()]);
    }

    #[test]
    fn broken_input_names_the_line() {
        for (text, line) in [
            (" leading continuation\n", 1),
            (
                "Package: aa\nStatus: install ok installed\ngarbage line\n",
                3,
            ),
            ("Package: aa\n\nVersion: 1\n", 3),
            ("Package: aa\nPackage: bb\n", 2),
            (
                "Package: aa\nStatus: install ok installed\nDepends: b(, c\n",
                3,
            ),
            ("Package: Bad_Name\n", 1),
        ] {
            match parse(Path::new("/x/status"), text.as_bytes()) {
                Err(DpkgError::Parse { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let bad = b"Package: aa\nVersion: 1\xff\n";
        match parse(Path::new("/x/status"), bad) {
            Err(e @ DpkgError::Parse { line: 2, .. }) => {
                assert!(e.to_string().contains("/x/status:2"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}
