//! Paths the sandbox provides and a bundle must never carry: the running user's identity
//! files, per-machine and per-network files, the time zone, and the kernel's and the session's
//! virtual trees. A captured copy would bake the packer's identity into the bundle or collide
//! with what the launcher mounts (Debian's `/usr/share/zoneinfo/localtime` links to
//! `/etc/localtime`, and capturing it made bundles unrunnable).
//!
//! Invariant: [`is_provided`] is a pure, lexical test on an absolute path (`.` and `..` are
//! folded first, so `/etc/../etc/passwd` is caught); [`crate::capture::CaptureSet`] asks it for
//! every path it would record or walk through, whatever stage brings the path.

use std::path::{Component, Path, PathBuf};

/// Single files the sandbox provides.
pub const PROVIDED_FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/machine-id",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/localtime",
    "/etc/timezone",
    "/usr/share/zoneinfo/localtime",
];

/// Trees the sandbox provides (virtual file systems and per-session scratch space).
pub const PROVIDED_TREES: &[&str] = &["/proc", "/sys", "/dev", "/run", "/tmp"];

/// `p` with `.` and `..` folded away (`..` at `/` stays at `/`, as in the kernel).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// True when the sandbox provides `p` (a file of [`PROVIDED_FILES`], or a path inside one of
/// [`PROVIDED_TREES`], the tree's root included).
pub fn is_provided(p: &Path) -> bool {
    let p = lexical(p);
    PROVIDED_FILES.iter().any(|f| p == Path::new(f))
        || PROVIDED_TREES.iter().any(|t| p.starts_with(t))
}

/// The warning recorded once for each dropped path.
pub fn dropped_warning(p: &Path) -> String {
    format!("dropped {}: the sandbox provides it", p.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_trees_and_tricks() {
        for p in [
            "/etc/passwd",
            "/etc/localtime",
            "/usr/share/zoneinfo/localtime",
            "/proc",
            "/proc/self/exe",
            "/run/systemd/resolve/stub-resolv.conf",
            "/tmp/x",
            "/etc/../etc/./shadow",
            "/usr/../dev/null",
        ] {
            assert!(is_provided(Path::new(p)), "{p}");
        }
        for p in [
            "/etc",
            "/etc/passwd-",
            "/etc/hosts",
            "/usr/share/zoneinfo/UTC",
            "/procfs",
            "/tmpdir/a",
            "/usr/share/zoneinfo",
        ] {
            assert!(!is_provided(Path::new(p)), "{p}");
        }
    }
}
