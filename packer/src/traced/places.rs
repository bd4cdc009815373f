//! Where a traced path lies, as the trace and widening policies see it: in a home
//! (private), virtual (`/proc /sys /dev /run /tmp`), in the system places (`/usr /etc /opt
//! /lib* /bin /sbin`) or in a folder the recipe names.
//!
//! Invariants: `/` is never a home; system users' `passwd` homes (`/usr/sbin`, `/bin`) are not
//! homes; a recipe folder lifts the home rule only below itself and only when it lies strictly
//! inside a home (never for the home itself or a folder holding a home).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::SkipReason;
use crate::recipe::Recipe;

/// Where system files live; a traced path elsewhere needs a recipe-named folder.
const SYSTEM: &[&str] = &[
    "/usr", "/etc", "/opt", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin",
];
const VIRTUAL: &[&str] = &["/proc", "/sys", "/dev", "/run", "/tmp"];

/// `.` and `..` folded without touching the file system.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

pub(super) fn under_any(p: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| p.starts_with(r))
}

/// The places policy: homes, system places and recipe-named folders.
#[derive(Debug, Clone)]
pub struct Places {
    pub homes: Vec<PathBuf>,
    pub listed: Vec<PathBuf>,
}

impl Places {
    /// `$HOME`, `/root`, `/home`, and the homes of root and of users from uid 1000 in
    /// `passwd` (system users' "homes" such as `/usr/sbin` are not homes); `listed` are the
    /// recipe's folders.
    pub fn new(home: Option<&Path>, passwd: &str, listed: Vec<PathBuf>) -> Self {
        let mut homes: BTreeSet<PathBuf> = ["/root", "/home"].iter().map(PathBuf::from).collect();
        homes.extend(home.filter(|h| h.is_absolute()).map(normalize));
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            let (Some(uid), Some(dir)) = (f.get(2).and_then(|u| u.parse::<u64>().ok()), f.get(5))
            else {
                continue;
            };
            let dir = normalize(Path::new(dir));
            let system = SYSTEM.iter().any(|s| dir.starts_with(s));
            if (uid == 0 || (1000..60000).contains(&uid)) && !system && dir.is_absolute() {
                homes.insert(dir);
            }
        }
        homes.remove(Path::new("/"));
        let listed = listed.iter().map(|p| normalize(p)).collect();
        Self {
            homes: homes.into_iter().collect(),
            listed,
        }
    }

    /// From this machine: `$HOME`, `/etc/passwd` and the recipe's listed folders.
    pub fn of_host(recipe: &Recipe) -> Self {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::new(home.as_deref(), &passwd, listed_folders(recipe))
    }

    /// The location rule for one (normalized) path: `None` when it may be captured.
    pub fn location(&self, p: &Path) -> Option<SkipReason> {
        let mut listed = self.listed.iter().filter(|l| p.starts_with(l));
        let named = match self.homes.iter().find(|h| p.starts_with(h)) {
            // Only a recipe folder strictly inside the home opens it (below that folder).
            Some(h) => match listed.any(|l| l.starts_with(h) && l != h) {
                true => return None,
                false => return Some(SkipReason::Home),
            },
            None => listed.next().is_some(),
        };
        if named {
            return None;
        }
        if VIRTUAL.iter().any(|v| p.starts_with(v)) {
            return Some(SkipReason::Virtual);
        }
        if !SYSTEM.iter().any(|s| p.starts_with(s)) {
            return Some(SkipReason::OutsidePrefixes);
        }
        None
    }

    /// True when `p` may go into a bundle by location.
    pub fn may_capture(&self, p: &Path) -> bool {
        self.location(&normalize(p)).is_none()
    }
}

/// The folders a recipe names: `paths` entries (a file's folder) and `binaries`' folders.
pub fn listed_folders(recipe: &Recipe) -> Vec<PathBuf> {
    let c = &recipe.capture;
    let mut out: Vec<PathBuf> = c
        .paths
        .iter()
        .chain(&c.binaries)
        .map(|p| {
            let p = PathBuf::from(p);
            match p.is_dir() {
                true => p,
                false => p.parent().map(Path::to_path_buf).unwrap_or(p),
            }
        })
        .filter(|p| p != Path::new("/"))
        .collect();
    out.sort();
    out.dedup();
    out
}
