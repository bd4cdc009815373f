//! Facts about the calling user and the host the sandbox is built from: ids, names, home,
//! working directory, the environment variables the app may inherit, XDG user directories and
//! the sockets that `socket=` permissions expose. Gathered once in the parent.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Variables passed from the host environment to every app (nothing that changes how the
/// loader or libraries behave: no LD_*, no PATH from the host).
pub const PASSED_ENV: &[&str] = &[
    "TERM",
    "COLORTERM",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_COLLATE",
    "LC_MONETARY",
    "TZ",
    "NO_COLOR",
];

/// The calling user and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub home: PathBuf,
    pub cwd: PathBuf,
    /// Host variables the app may see (see `PASSED_ENV`) plus those sockets need.
    pub env: BTreeMap<String, String>,
    pub runtime_dir: Option<PathBuf>,
    /// `xdg-download` → `/home/u/Downloads`, ...
    pub user_dirs: BTreeMap<String, PathBuf>,
    pub localtime: Option<PathBuf>,
}

impl Host {
    /// Reads the current process's view of the host.
    pub fn current() -> Self {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let pw = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| pw.as_ref().map(|p| p.name.clone()))
            .unwrap_or_else(|| format!("u{uid}"));
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .or_else(|| pw.as_ref().map(|p| p.dir.clone()))
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut env = BTreeMap::new();
        for k in PASSED_ENV.iter().chain(&[
            "DISPLAY",
            "XAUTHORITY",
            "WAYLAND_DISPLAY",
            "DBUS_SESSION_BUS_ADDRESS",
            "PULSE_SERVER",
        ]) {
            if let Ok(v) = std::env::var(k) {
                env.insert((*k).to_owned(), v);
            }
        }
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let user_dirs = userdata::dirs::user_dirs_of(&home);
        let localtime = std::fs::canonicalize("/etc/localtime")
            .ok()
            .filter(|p| p.is_file());
        Self {
            uid,
            gid,
            user,
            home,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            env,
            runtime_dir,
            user_dirs,
            localtime,
        }
    }

    /// `/etc/passwd` for the sandbox: the user (at the same uid, home and name), root, nobody.
    pub fn passwd(&self) -> String {
        format!(
            "root:x:0:0:root:/root:/bin/sh\n{u}:x:{uid}:{gid}:{u}:{h}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            u = self.user,
            uid = self.uid,
            gid = self.gid,
            h = self.home.display()
        )
    }

    /// `/etc/group` for the sandbox.
    pub fn group(&self) -> String {
        format!(
            "root:x:0:\n{u}:x:{gid}:\nnogroup:x:65534:\n",
            u = self.user,
            gid = self.gid
        )
    }
}

/// A file's identity on the host: what a later open must find again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A host path resolved once: absolute, without symlinks, with what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: PathBuf,
    pub id: FileId,
    pub is_dir: bool,
}

/// How the planner sees the host's files (the real one, or a table in tests).
pub trait HostFs {
    /// `path` with every symlink resolved, or `None` when it does not exist.
    fn resolve(&self, path: &Path) -> Option<Resolved>;
}

/// The host's real file system.
pub struct RealFs;

impl HostFs for RealFs {
    fn resolve(&self, path: &Path) -> Option<Resolved> {
        let real = std::fs::canonicalize(path).ok()?;
        let m = std::fs::symlink_metadata(&real).ok()?;
        Some(Resolved {
            id: FileId {
                dev: m.dev(),
                ino: m.ino(),
            },
            is_dir: m.is_dir(),
            path: real,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_dirs_follow_the_config_and_default() {
        let d = userdata::dirs::user_dirs(Path::new("/home/u"), Some("# comment\nXDG_DOWNLOAD_DIR=\"$HOME/Téléchargements\"\nXDG_MUSIC_DIR=\"/srv/music\"\nXDG_BOGUS_DIR=\"$HOME/x\"\n"));
        assert_eq!(d["xdg-download"], Path::new("/home/u/Téléchargements"));
        assert_eq!(d["xdg-music"], Path::new("/srv/music"));
        assert_eq!(d["xdg-pictures"], Path::new("/home/u/Pictures"));
        assert_eq!(d["xdg-public-share"], Path::new("/home/u/Public"));
        assert!(!d.contains_key("xdg-bogus"));
    }
}
