//! The capture set: every host path that goes into the bundle, at its original path, with the
//! layer(s) it belongs to and why it is in.
//!
//! Invariants: an item's key is the path the loader or the app uses, and no item lies below a
//! symlink item: a path is walked component by component, each symlink met on the way is
//! captured as a symlink and the walk continues at its target, so soname chains and merged-/usr
//! links (`/lib -> usr/lib`) are kept as links and the files land at their real paths. Every
//! ELF object captured, from any source, has its dependency closure followed (see
//! [`crate::closure`]). Paths the sandbox provides ([`crate::provided`]) are never recorded
//! nor walked through, whatever stage brings them: each is dropped with one warning.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use bundle_format::{BundlePath, LayerRole};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::PackError;
use crate::origin::Origin;

/// Most reasons kept per item (the rest are counted).
const MAX_REASONS: usize = 6;
/// Most symlinks followed while walking one path (the kernel's limit).
const MAX_LINK_HOPS: usize = 40;

/// What a captured path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    File {
        source: PathBuf,
        executable: bool,
        size: u64,
        mtime: u64,
        inode: (u64, u64),
    },
    Symlink {
        target: String,
    },
    Dir,
}

/// One captured path.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: ItemKind,
    pub roles: BTreeSet<LayerRole>,
    pub reasons: Vec<String>,
    /// The capture stages that brought it (typed; the report's first column).
    pub origins: BTreeSet<Origin>,
}

/// An ELF object waiting for its closure: where the loader sees it, where its bytes are, and
/// the DT_RPATH directories inherited from its loaders.
#[derive(Debug, Clone)]
pub struct Pending {
    pub path: PathBuf,
    pub source: PathBuf,
    pub inherited_rpath: Vec<PathBuf>,
    /// Failing to parse it is an error (recipe binaries) rather than a warning (tree files).
    pub required: bool,
}

/// The growing capture set.
#[derive(Debug)]
pub struct CaptureSet {
    pub items: BTreeMap<BundlePath, Item>,
    pub warnings: Vec<String>,
    pub queue: VecDeque<Pending>,
    /// The stage now adding files: recorded on every item it notes.
    pub origin: Origin,
    excludes: Option<GlobSet>,
    /// Sandbox-provided paths met and dropped (each warned about once).
    dropped: BTreeSet<PathBuf>,
}

fn capture_err(path: &Path, problem: impl Into<String>) -> PackError {
    PackError::Capture {
        path: path.into(),
        problem: problem.into(),
    }
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> PackError + '_ {
    move |source| PackError::ReadSource {
        path: path.into(),
        source,
    }
}

/// True when the file starts with the ELF magic.
pub fn looks_like_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && crate::elf::is_elf(&head)
}

impl CaptureSet {
    /// A set that leaves out paths matching `exclude` (globs of absolute paths; `dir/**` also
    /// leaves out `dir` itself).
    pub fn new(exclude: &[String]) -> Result<Self, PackError> {
        let mut b = GlobSetBuilder::new();
        for g in exclude {
            for pattern in [Some(g.as_str()), g.strip_suffix("/**")]
                .into_iter()
                .flatten()
            {
                let glob = GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| capture_err(Path::new(g), e.to_string()))?;
                b.add(glob);
            }
        }
        let set = b
            .build()
            .map_err(|e| capture_err(Path::new("exclude"), e.to_string()))?;
        Ok(Self {
            items: BTreeMap::new(),
            warnings: Vec::new(),
            queue: VecDeque::new(),
            origin: Origin::Listed,
            excludes: Some(set),
            dropped: BTreeSet::new(),
        })
    }

    /// True when the sandbox provides `p`: then it is dropped, with one warning per path.
    pub fn drop_provided(&mut self, p: &Path) -> bool {
        if !crate::provided::is_provided(p) {
            return false;
        }
        if self.dropped.insert(p.to_path_buf()) {
            self.warnings.push(crate::provided::dropped_warning(p));
        }
        true
    }

    /// The item `path` leads to inside the bundle, following captured symlinks the way the
    /// kernel will inside the sandbox (absolute targets from the bundle root).
    pub fn resolve(&self, path: &Path) -> Option<&Item> {
        let mut parts: VecDeque<String> = path
            .to_str()?
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_owned)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = parts.pop_front() {
            if c == ".." {
                done.pop();
                continue;
            }
            done.push(c);
            let key = BundlePath::new(&done.join("/")).ok()?;
            let Some(item) = self.items.get(&key) else {
                // Directories on the way are implicit; only the last component must exist.
                if parts.is_empty() {
                    return None;
                }
                continue;
            };
            if let ItemKind::Symlink { target } = &item.kind {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return None;
                }
                let resolved = key.resolve_link(target)?;
                done.clear();
                let mut restart: VecDeque<String> = resolved.into();
                restart.extend(parts);
                parts = restart;
            } else if parts.is_empty() {
                return Some(item);
            }
        }
        None
    }

    pub fn is_excluded(&self, p: &Path) -> bool {
        self.excludes.as_ref().is_some_and(|g| g.is_match(p))
    }

    fn key(path: &Path) -> Result<BundlePath, PackError> {
        BundlePath::from_host(path)
            .map_err(|e| capture_err(path, format!("cannot be stored in a bundle: {e}")))
    }

    fn note(
        &mut self,
        key: BundlePath,
        kind: ItemKind,
        role: LayerRole,
        reason: &str,
    ) -> Result<(), PackError> {
        if self.drop_provided(&key.to_absolute()) {
            return Ok(());
        }
        let item = self.items.entry(key.clone()).or_insert_with(|| Item {
            kind: kind.clone(),
            roles: BTreeSet::new(),
            reasons: Vec::new(),
            origins: BTreeSet::new(),
        });
        if item.kind != kind
            && !matches!(
                (&item.kind, &kind),
                (ItemKind::File { .. }, ItemKind::File { .. })
            )
        {
            return Err(capture_err(
                &key.to_absolute(),
                "captured twice as different kinds of file",
            ));
        }
        item.roles.insert(role);
        item.origins.insert(self.origin.clone());
        if item.reasons.len() < MAX_REASONS && !item.reasons.iter().any(|r| r == reason) {
            item.reasons.push(reason.to_owned());
        }
        Ok(())
    }

    /// Captures a regular file from `source` at bundle path `at`.
    pub fn add_file(
        &mut self,
        at: &Path,
        source: &Path,
        role: LayerRole,
        reason: &str,
    ) -> Result<(), PackError> {
        let meta = fs::metadata(source).map_err(read_err(source))?;
        if !meta.is_file() {
            return Err(capture_err(source, "is not a regular file"));
        }
        fs::File::open(source).map_err(read_err(source))?;
        if meta.mode() & 0o7000 != 0 {
            self.warnings.push(format!(
                "{}: setuid, setgid and sticky bits dropped",
                at.display()
            ));
        }
        let kind = ItemKind::File {
            source: source.into(),
            executable: meta.mode() & 0o111 != 0,
            size: meta.len(),
            // Bundles bound mtimes at the end of the year 9999 (SPEC): clamp, do not refuse.
            mtime: (meta.mtime().max(0) as u64).min(bundle_format::limits::MAX_MTIME),
            inode: (meta.dev(), meta.ino()),
        };
        self.note(Self::key(at)?, kind, role, reason)
    }

    fn add_symlink(
        &mut self,
        at: &Path,
        role: LayerRole,
        reason: &str,
    ) -> Result<PathBuf, PackError> {
        let target = fs::read_link(at).map_err(read_err(at))?;
        let text = target
            .to_str()
            .ok_or_else(|| capture_err(at, "symlink target is not UTF-8"))?;
        let key = Self::key(at)?;
        let stored = match key.resolve_link(text) {
            Some(_) => text.to_owned(),
            // Climbing above `/` stops at `/` in the kernel: store the equivalent absolute target.
            None => {
                let clamped: PathBuf =
                    Path::new("/").join(text.trim_start_matches("../").trim_start_matches('/'));
                self.warnings.push(format!(
                    "{}: symlink target {text:?} climbs above /, stored as {}",
                    at.display(),
                    clamped.display()
                ));
                clamped.to_string_lossy().into_owned()
            }
        };
        if stored.chars().any(bundle_format::path::is_forbidden_char) {
            return Err(capture_err(at, "symlink target has control characters"));
        }
        self.note(key, ItemKind::Symlink { target: stored }, role, reason)?;
        Ok(target)
    }

    /// Captures `path` as the loader or app would reach it: every symlink on the way is kept as
    /// a symlink, and the file or directory it leads to is captured at its real path.
    /// Returns that real path (or the sandbox-provided path where the walk stopped).
    pub fn add_path(
        &mut self,
        path: &Path,
        role: LayerRole,
        reason: &str,
    ) -> Result<PathBuf, PackError> {
        if !path.is_absolute() {
            return Err(capture_err(path, "is not an absolute path"));
        }
        let owned = |p: &Path| -> VecDeque<Option<std::ffi::OsString>> {
            // `None` stands for `..`; the root and `.` need no entry (handled below).
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(Some(n.to_os_string())),
                    Component::ParentDir => Some(None),
                    _ => None,
                })
                .collect()
        };
        let mut queue = owned(path);
        let mut cur = PathBuf::from("/");
        let mut hops = 0;
        while let Some(c) = queue.pop_front() {
            let Some(name) = c else {
                cur.pop();
                continue;
            };
            let next = cur.join(&name);
            if self.drop_provided(&next) {
                return Ok(next);
            }
            let meta = fs::symlink_metadata(&next).map_err(|e| {
                let at = if next == path {
                    String::new()
                } else {
                    format!(" ({})", next.display())
                };
                capture_err(path, format!("{e}{at}"))
            })?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(capture_err(path, "too many levels of symbolic links"));
                }
                let link_reason = format!("link on the way to {}", path.display());
                let target = self.add_symlink(&next, role, &link_reason)?;
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                let mut restart = owned(&target);
                restart.extend(queue);
                queue = restart;
            } else {
                if !queue.is_empty() && !meta.is_dir() {
                    return Err(capture_err(
                        &next,
                        format!("is not a directory (on the way to {})", path.display()),
                    ));
                }
                cur = next;
            }
        }
        let meta = fs::metadata(&cur).map_err(read_err(&cur))?;
        if meta.is_file() {
            self.add_file(&cur, &cur, role, reason)?;
        } else if meta.is_dir() {
            if cur != Path::new("/") {
                self.note(Self::key(&cur)?, ItemKind::Dir, role, reason)?;
            }
        } else {
            return Err(capture_err(&cur, "is not a regular file or directory"));
        }
        Ok(cur)
    }

    /// Queues an ELF object for the closure pass.
    pub fn enqueue(&mut self, path: &Path, inherited_rpath: Vec<PathBuf>, required: bool) {
        if looks_like_elf(path) {
            self.queue.push_back(Pending {
                path: path.into(),
                source: path.into(),
                inherited_rpath,
                required,
            });
        }
    }

    /// Captures a whole directory tree as it is (symlinks as symlinks, their file targets too),
    /// skipping excluded paths and special files.
    pub fn add_tree(
        &mut self,
        root: &Path,
        role: LayerRole,
        reason: &str,
    ) -> Result<(), PackError> {
        if self.drop_provided(root) {
            return Ok(());
        }
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        let excludes = self.excludes.clone();
        let mut walker =
            walker.filter_entry(|e| !excludes.as_ref().is_some_and(|g| g.is_match(e.path())));
        while let Some(entry) = walker.next() {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(root).to_path_buf();
                PackError::ReadSource {
                    path,
                    source: e.into(),
                }
            })?;
            let p = entry.path();
            let ft = entry.file_type();
            if self.drop_provided(p) {
                if ft.is_dir() {
                    walker.skip_current_dir();
                }
                continue;
            }
            if ft.is_dir() {
                self.note(Self::key(p)?, ItemKind::Dir, role, reason)?;
            } else if ft.is_file() {
                self.add_file(p, p, role, reason)?;
                self.enqueue(p, Vec::new(), false);
            } else if ft.is_symlink() {
                let target = self.add_symlink(p, role, reason)?;
                let abs = p.parent().unwrap_or(Path::new("/")).join(&target);
                let link_reason = format!("target of symlink {}", p.display());
                if self.drop_provided(&abs) {
                    continue;
                }
                match fs::metadata(&abs) {
                    Ok(m) if m.is_file() && !self.is_excluded(&abs) => {
                        let real = self.add_path(&abs, role, &link_reason)?;
                        self.enqueue(&real, Vec::new(), false);
                    }
                    Ok(m) if m.is_dir() => {
                        if !abs.starts_with(root) {
                            self.warnings.push(format!(
                                "{}: symlink to directory {} not followed",
                                p.display(),
                                target.display()
                            ));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => self.warnings.push(format!(
                        "{}: dangling symlink to {}",
                        p.display(),
                        target.display()
                    )),
                }
            } else {
                self.warnings.push(format!(
                    "{}: special file (device, fifo or socket) skipped",
                    p.display()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn keeps_symlink_chains_and_real_paths() {
        let d = tempfile::tempdir_in("/var/tmp").unwrap(); // /tmp is sandbox-provided
        let root = d.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::write(root.join("usr/lib/libx.so.1.2"), b"x").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("libx.so.1.2", root.join("usr/lib/libx.so.1")).unwrap();
        let mut set = CaptureSet::new(&[]).unwrap();
        let real = set
            .add_path(&root.join("lib/libx.so.1"), LayerRole::Deps, "test")
            .unwrap();
        assert_eq!(real, root.join("usr/lib/libx.so.1.2"));
        let kinds: Vec<(String, &ItemKind)> = set
            .items
            .iter()
            .map(|(k, v)| (k.to_string(), &v.kind))
            .collect();
        let base = root.display().to_string();
        assert!(kinds.iter().any(|(k, v)| *k == format!("{base}/lib")
            && matches!(v, ItemKind::Symlink { target } if target == "usr/lib")));
        assert!(kinds
            .iter()
            .any(|(k, v)| *k == format!("{base}/usr/lib/libx.so.1")
                && matches!(v, ItemKind::Symlink { .. })));
        assert!(kinds
            .iter()
            .any(|(k, v)| *k == format!("{base}/usr/lib/libx.so.1.2")
                && matches!(v, ItemKind::File { .. })));
    }

    #[test]
    fn resolves_commands_through_captured_links() {
        let d = tempfile::tempdir_in("/var/tmp").unwrap(); // /tmp is sandbox-provided
        let root = d.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/dash"), b"x").unwrap();
        symlink("dash", root.join("usr/bin/sh")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        let mut set = CaptureSet::new(&[]).unwrap();
        set.add_path(&root.join("bin/sh"), LayerRole::App, "test")
            .unwrap();
        let r = root.display();
        assert!(matches!(
            set.resolve(Path::new(&format!("{r}/bin/sh")))
                .map(|i| &i.kind),
            Some(ItemKind::File { .. })
        ));
        assert!(set.resolve(Path::new(&format!("{r}/bin/bash"))).is_none());
    }

    #[test]
    fn trees_honour_excludes_and_skip_special_files() {
        let d = tempfile::tempdir_in("/var/tmp").unwrap(); // /tmp is sandbox-provided
        let root = d.path().join("t");
        fs::create_dir_all(root.join("keep")).unwrap();
        fs::create_dir_all(root.join("test/deep")).unwrap();
        fs::write(root.join("keep/a.py"), b"a").unwrap();
        fs::write(root.join("test/deep/b.py"), b"b").unwrap();
        fs::write(root.join("keep/c.pyc"), b"c").unwrap();
        std::os::unix::net::UnixListener::bind(root.join("keep/sock")).unwrap();
        let r = root.display();
        let mut set = CaptureSet::new(&[format!("{r}/test/**"), "**/*.pyc".into()]).unwrap();
        set.add_tree(&root, LayerRole::App, "listed").unwrap();
        let names: Vec<String> = set
            .items
            .keys()
            .map(|k| k.to_string().replace(&r.to_string(), ""))
            .collect();
        assert!(names.contains(&"/keep/a.py".to_owned()), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.contains("test") || n.ends_with(".pyc") || n.ends_with("sock")),
            "{names:?}"
        );
        assert!(set.warnings.iter().any(|w| w.contains("special file")));
    }
}
