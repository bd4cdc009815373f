//! Globs over host paths for widening units: `*` matches within one path component (never
//! `/`), `**` any number of components. Expanding a glob reads only the folders its literal
//! components lead to, one component at a time, so `/usr/lib/*/gio/modules` lists `/usr/lib`
//! and nothing else.
//!
//! Invariants: expansion never follows more than [`MAX_MATCHES`] candidates and never returns
//! a path that does not exist; results are sorted.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

/// Most paths one glob expands to (more is a broken unit, not a folder to capture).
pub const MAX_MATCHES: usize = 4096;

/// Compiles a glob the way units use it (`*` stops at `/`).
pub fn compile(glob: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.to_string())
}

fn is_pattern(c: &str) -> bool {
    c.contains(['*', '?', '[', '{'])
}

/// The existing host paths `glob` (absolute) matches, sorted. `**` is not expanded here.
pub fn expand(glob: &str) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("/")];
    for comp in Path::new(glob).components() {
        let Component::Normal(c) = comp else {
            continue;
        };
        let Some(c) = c.to_str() else {
            return Vec::new();
        };
        let mut next = Vec::new();
        if is_pattern(c) {
            let Ok(m) = compile(c) else {
                return Vec::new();
            };
            for dir in &found {
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                for e in rd.flatten() {
                    if m.is_match(e.file_name()) && next.len() < MAX_MATCHES {
                        next.push(dir.join(e.file_name()));
                    }
                }
            }
        } else {
            next = found
                .iter()
                .map(|d| d.join(c))
                .filter(|p| p.symlink_metadata().is_ok())
                .collect();
        }
        found = next;
        if found.is_empty() {
            break;
        }
    }
    found.sort();
    found.retain(|p| p != Path::new("/"));
    found
}

/// The shallowest of `path` and its ancestors that `glob` matches.
pub fn folder_of(glob: &GlobMatcher, path: &Path) -> Option<PathBuf> {
    let mut ancestors: Vec<&Path> = path.ancestors().collect();
    ancestors.reverse();
    ancestors
        .into_iter()
        .find(|a| *a != Path::new("/") && glob.is_match(a))
        .map(Path::to_path_buf)
}

/// `rel` taken against `base` with `.` and `..` folded lexically (never above `/`).
pub fn join_lexical(base: &Path, rel: &str) -> PathBuf {
    let mut out = base.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir => out = PathBuf::from("/"),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_stays_within_a_component() {
        let g = compile("/usr/lib/*/gio/modules").unwrap();
        assert!(g.is_match("/usr/lib/x86_64-linux-gnu/gio/modules"));
        assert!(!g.is_match("/usr/lib/a/b/gio/modules"));
        let hit = Path::new("/usr/lib/x86_64-linux-gnu/gio/modules/libgiognutls.so");
        assert_eq!(
            folder_of(&g, hit).as_deref(),
            Some(Path::new("/usr/lib/x86_64-linux-gnu/gio/modules"))
        );
        assert_eq!(folder_of(&g, Path::new("/usr/lib/x/gio/other.so")), None);
    }

    #[test]
    fn expands_against_real_folders() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for p in ["a1/x/f", "a2/x/f", "b/x/f", "a3/y/f"] {
            std::fs::create_dir_all(r.join(p)).unwrap();
        }
        let got = expand(&format!("{}/a*/x", r.display()));
        assert_eq!(got, vec![r.join("a1/x"), r.join("a2/x")]);
        assert!(expand(&format!("{}/zz*/x", r.display())).is_empty());
        assert!(expand(&format!("{}/b/nothere", r.display())).is_empty());
    }

    #[test]
    fn relative_paths_fold_dots() {
        let base = Path::new("/usr/lib/t/gdk-pixbuf-2.0/2.10.0/loaders");
        assert_eq!(
            join_lexical(base, "../loaders.cache"),
            Path::new("/usr/lib/t/gdk-pixbuf-2.0/2.10.0/loaders.cache")
        );
        assert_eq!(join_lexical(Path::new("/a"), "../../../x"), Path::new("/x"));
    }
}
