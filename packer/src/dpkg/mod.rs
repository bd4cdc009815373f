//! dpkg's database read as files, never by running dpkg: `var/lib/dpkg/status` (only
//! `install ok installed` packages), `info/<pkg>[:arch].list` and `diversions`. Alternatives
//! need nothing here: they are plain symlink chains, which the capture keeps link by link.
//!
//! Invariants: the path index is keyed by canonical path — the listed path with its parent
//! directory resolved on the host, so dpkg's `/bin/bash` (merged /usr) is found as
//! `/usr/bin/bash` while a listed symlink stays itself — and diversions are applied first (a
//! diverted file is indexed where it really lies, for every package but the diverting one).
//! Every error names the file (and line, for the status file); no input panics.

mod capture;
mod status;

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

pub use capture::{add_packages, is_documentation};
pub use status::{valid_name, Package};

/// Why the dpkg database could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpkgError {
    #[error("capture.packages needs a dpkg database, but {path} does not exist (not a Debian system? list the files under capture.paths instead)")]
    NoDatabase { path: PathBuf },
    #[error("cannot read dpkg file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {problem}")]
    Parse {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error(
        "package {0} is not installed (dpkg's status has no `install ok installed` entry for it)"
    )]
    NotInstalled(String),
}

/// The installed packages, their file lists, and who owns each path.
#[derive(Debug)]
pub struct Dpkg {
    root: PathBuf,
    packages: BTreeMap<String, Package>,
    /// Virtual package name → installed packages providing it, in status order.
    providers: HashMap<String, Vec<String>>,
    diversions: HashMap<Vec<u8>, Diversion>,
    /// Built on the first [`Dpkg::owner`] call (reading every list takes a while).
    owners: OnceCell<Owners>,
}

/// Canonical path (bytes) → owning package, an index into `names`.
#[derive(Debug, Default)]
struct Owners {
    map: HashMap<Vec<u8>, u32>,
    names: Vec<String>,
}

/// One diversion: `from` of every package but `by` lies at `to` (`by` is `:` for a local one).
#[derive(Debug)]
struct Diversion {
    to: PathBuf,
    by: String,
}

fn read(path: &Path) -> Result<Vec<u8>, DpkgError> {
    std::fs::read(path).map_err(|source| DpkgError::Read {
        path: path.into(),
        source,
    })
}

fn lines_of(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

impl Dpkg {
    /// Reads the database under `root` (`/` normally).
    pub fn open(root: &Path) -> Result<Self, DpkgError> {
        let admin = root.join("var/lib/dpkg");
        let status_path = admin.join("status");
        if !status_path.is_file() {
            return Err(DpkgError::NoDatabase { path: status_path });
        }
        let mut packages = BTreeMap::new();
        let mut providers: HashMap<String, Vec<String>> = HashMap::new();
        for p in status::parse(&status_path, &read(&status_path)?)? {
            for v in &p.provides {
                providers.entry(v.clone()).or_default().push(p.name.clone());
            }
            // A second architecture of the same name keeps the first entry's metadata.
            packages.entry(p.name.clone()).or_insert(p);
        }
        Ok(Self {
            root: root.into(),
            packages,
            providers,
            diversions: read_diversions(&admin.join("diversions"))?,
            owners: OnceCell::new(),
        })
    }

    /// Package `p`'s listed paths with diversions applied (`/.` and relative lines skipped).
    fn list(&self, p: &Package) -> Result<Vec<PathBuf>, DpkgError> {
        let info = self.root.join("var/lib/dpkg/info");
        let arch = p.architecture.as_deref().unwrap_or_default();
        let candidates = [
            format!("{}:{arch}.list", p.name),
            format!("{}.list", p.name),
        ];
        let Some(list) = candidates
            .iter()
            .map(|c| info.join(c))
            .find(|f| f.is_file())
        else {
            return Ok(Vec::new());
        };
        let mut paths = Vec::new();
        for line in lines_of(&read(&list)?) {
            if !line.starts_with(b"/") || line == b"/." {
                continue;
            }
            paths.push(match self.diversions.get(line) {
                Some(d) if d.by != p.name => d.to.clone(),
                _ => PathBuf::from(std::ffi::OsStr::from_bytes(line)),
            });
        }
        Ok(paths)
    }

    /// Every list read into the owner index; an unreadable list is left out.
    fn build_owners(&self) -> Owners {
        let mut canon: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut owners = Owners::default();
        for p in self.packages.values() {
            let Ok(paths) = self.list(p) else {
                continue;
            };
            let id = owners.names.len() as u32;
            owners.names.push(p.name.clone());
            for real in paths {
                let key = canonical(&self.root, real.as_os_str().as_bytes(), &mut canon);
                owners.map.entry(key).or_insert(id);
            }
        }
        owners
    }

    /// The package that owns `path` (any spelling: its parent is resolved on the host).
    pub fn owner(&self, path: &Path) -> Option<&str> {
        let owners = self.owners.get_or_init(|| self.build_owners());
        let key = canonical(&self.root, path.as_os_str().as_bytes(), &mut HashMap::new());
        let id = *owners.map.get(&key)?;
        owners.names.get(id as usize).map(String::as_str)
    }

    /// The paths package `name` installed (diversions applied; directories included).
    pub fn files(&self, name: &str) -> Result<Vec<PathBuf>, DpkgError> {
        let bare = name.split(':').next().unwrap_or_default();
        match self.packages.get(bare) {
            Some(p) => self.list(p),
            None => Err(DpkgError::NotInstalled(name.to_owned())),
        }
    }

    /// The installed version of `name`.
    pub fn version(&self, name: &str) -> Option<&str> {
        self.packages.get(name).map(|p| p.version.as_str())
    }

    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.get(name)
    }

    /// The first alternative of a dependency group that is installed or provided.
    fn pick(&self, group: &[String]) -> Option<&str> {
        group.iter().find_map(|alt| {
            if let Some(p) = self.packages.get(alt) {
                return Some(p.name.as_str());
            }
            self.providers.get(alt)?.first().map(String::as_str)
        })
    }

    /// Breadth-first closure of `start` over `Pre-Depends` and `Depends` (start included).
    fn closure(&self, start: &[String], stop: &HashSet<String>) -> Vec<String> {
        let mut seen: HashSet<String> = start.iter().cloned().collect();
        let mut order: Vec<String> = Vec::new();
        let mut queue: VecDeque<String> = start.iter().cloned().collect();
        while let Some(name) = queue.pop_front() {
            order.push(name.clone());
            let Some(p) = self.packages.get(&name) else {
                continue;
            };
            for group in &p.depends {
                if let Some(dep) = self.pick(group) {
                    if !stop.contains(dep) && seen.insert(dep.to_owned()) {
                        queue.push_back(dep.to_owned());
                    }
                }
            }
        }
        order
    }

    /// The base system: packages `Essential: yes` or `Priority: required`, with their closure.
    pub fn base_packages(&self) -> HashSet<String> {
        let roots: Vec<String> = self
            .packages
            .values()
            .filter(|p| p.base)
            .map(|p| p.name.clone())
            .collect();
        self.closure(&roots, &HashSet::new()).into_iter().collect()
    }

    /// The dependencies of `pkgs` outside the base system, breadth first (`pkgs` left out).
    pub fn depends_closure(&self, pkgs: &[String]) -> Result<Vec<String>, DpkgError> {
        for p in pkgs {
            if !self.packages.contains_key(p) {
                return Err(DpkgError::NotInstalled(p.clone()));
            }
        }
        let base = self.base_packages();
        let mut out = self.closure(pkgs, &base);
        out.retain(|p| !pkgs.contains(p));
        Ok(out)
    }
}

/// `path` with its parent directory resolved below `root`, as bytes (hashing bytes is far
/// cheaper than hashing `Path` components). Directories are memoized and resolved from their
/// parent's real path with one `lstat` each: only a symlink costs a full `canonicalize`.
fn canonical(root: &Path, path: &[u8], memo: &mut HashMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let Some(cut) = path.iter().rposition(|b| *b == b'/') else {
        return path.to_vec();
    };
    let mut out = real_dir(root, &path[..cut], memo);
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(&path[cut + 1..]);
    out
}

/// The real path of directory `dir` (`""` is `/`) below `root`.
fn real_dir(root: &Path, dir: &[u8], memo: &mut HashMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    // Ancestors not yet known, innermost first.
    let mut todo: Vec<&[u8]> = Vec::new();
    let mut cur = dir;
    let mut known: Vec<u8> = b"/".to_vec();
    while !cur.is_empty() && cur != b"/" {
        if let Some(r) = memo.get(cur) {
            known = r.clone();
            break;
        }
        todo.push(cur);
        cur = &cur[..cur.iter().rposition(|b| *b == b'/').unwrap_or(0)];
    }
    for d in todo.into_iter().rev() {
        let name = &d[d.iter().rposition(|b| *b == b'/').map_or(0, |c| c + 1)..];
        let mut joined = known.clone();
        if !joined.ends_with(b"/") {
            joined.push(b'/');
        }
        joined.extend_from_slice(name);
        let rel = Path::new(std::ffi::OsStr::from_bytes(&joined));
        let host = root.join(rel.strip_prefix("/").unwrap_or(rel));
        let is_link = std::fs::symlink_metadata(&host).is_ok_and(|m| m.file_type().is_symlink());
        known = if is_link {
            std::fs::canonicalize(&host)
                .ok()
                .and_then(|c| c.strip_prefix(root).ok().map(|r| Path::new("/").join(r)))
                .map_or(joined, |p| p.into_os_string().into_vec())
        } else {
            joined
        };
        memo.insert(d.to_vec(), known.clone());
    }
    known
}

/// `diversions`: triples of lines (from, to, package). A missing file means none.
fn read_diversions(path: &Path) -> Result<HashMap<Vec<u8>, Diversion>, DpkgError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => {
            return Err(DpkgError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let lines = match lines.last() {
        Some(&[]) => &lines[..lines.len() - 1],
        _ => &lines[..],
    };
    if lines.len() % 3 != 0 {
        return Err(DpkgError::Parse {
            path: path.into(),
            line: lines.len(),
            problem: "not a whole number of (from, to, package) triples".into(),
        });
    }
    let mut out = HashMap::new();
    for (i, t) in lines.chunks_exact(3).enumerate() {
        let from = PathBuf::from(std::ffi::OsStr::from_bytes(t[0]));
        let to = PathBuf::from(std::ffi::OsStr::from_bytes(t[1]));
        if !from.is_absolute() || !to.is_absolute() {
            return Err(DpkgError::Parse {
                path: path.into(),
                line: i * 3 + 1,
                problem: "diversion paths must be absolute".into(),
            });
        }
        let by = String::from_utf8_lossy(t[2]).into_owned();
        out.insert(t[0].to_vec(), Diversion { to, by });
    }
    Ok(out)
}
