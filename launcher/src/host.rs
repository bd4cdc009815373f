//! Facts about the calling user and the host the sandbox is built from: ids, names, home,
//! working directory, the environment variables the app may inherit, XDG user directories and
//! the sockets that `socket=` permissions expose. Gathered once in the parent.
//!
//! The user's account is read from `/etc/passwd` itself, never through `getpwuid`: capsa is
//! one statically linked file, and a static glibc answers NSS look-ups by loading the host's
//! `libnss_*` modules (built for another glibc) whenever `nsswitch.conf` names more than
//! `files`. `USER` and `HOME` come first anyway; the account only fills in what they lack.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
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
        let pw = std::fs::read(PASSWD)
            .ok()
            .and_then(|text| account_of(&text, uid));
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| pw.as_ref().map(|p| p.name.clone()))
            .unwrap_or_else(|| format!("u{uid}"));
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .or_else(|| pw.as_ref().map(|p| p.home.clone()))
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

/// The host's account database, read by [`account_of`].
const PASSWD: &str = "/etc/passwd";

/// A user's name and home, as `/etc/passwd` states them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    name: String,
    home: PathBuf,
}

/// The first well-formed entry of `uid` in the text of a passwd file (first wins, as in
/// glibc's `files` service); malformed lines never match.
fn account_of(passwd: &[u8], uid: u32) -> Option<Account> {
    passwd
        .split(|&b| b == b'\n')
        .filter_map(passwd_line)
        .find(|(u, _)| *u == uid)
        .map(|(_, a)| a)
}

/// One `name:password:uid:gid:gecos:home:shell` line, strictly: seven fields, a non-empty
/// UTF-8 name without blanks, decimal ids, an absolute home. `None` for anything else,
/// including comments and NIS compat entries (`+name`, `-name`), which need NSS.
fn passwd_line(line: &[u8]) -> Option<(u32, Account)> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
    let [name, _password, uid, gid, _gecos, home, _shell] = fields.as_slice() else {
        return None;
    };
    let name = std::str::from_utf8(name).ok()?;
    let bad_name = name.is_empty()
        || name.starts_with(['+', '-', '#'])
        || name.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad_name || !home.starts_with(b"/") || home.contains(&0) {
        return None;
    }
    decimal_id(gid)?;
    let uid = decimal_id(uid)?;
    let home = PathBuf::from(std::ffi::OsStr::from_bytes(home));
    Some((
        uid,
        Account {
            name: name.to_owned(),
            home,
        },
    ))
}

/// A uid or gid field: ASCII digits only (no sign, no blanks), within u32.
fn decimal_id(field: &[u8]) -> Option<u32> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
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

    const PASSWD_TEXT: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n\
        # a comment:x:1000:1000::/nope:/bin/sh\n\
        +nis:x:1000:1000::/nis:/bin/sh\n\
        short:x:1000:1000:/short\n\
        spaced :x:1000:1000::/spaced:/bin/sh\n\
        signed:x:+1000:1000::/signed:/bin/sh\n\
        relative:x:1000:1000::home/rel:/bin/sh\n\
        huge:x:4294967296:1::/huge:/bin/sh\n\
        \n\
        u:x:1000:1000:U Ser,,,:/home/u \xe9t\xe9:/bin/sh\n\
        second:x:1000:1000::/second:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin";

    #[test]
    fn the_first_well_formed_entry_of_the_uid_wins() {
        let a = account_of(PASSWD_TEXT, 1000).expect("u's entry");
        assert_eq!(a.name, "u");
        assert_eq!(a.home.as_os_str().as_bytes(), b"/home/u \xe9t\xe9");
        assert_eq!(account_of(PASSWD_TEXT, 0).unwrap().home, Path::new("/root"));
        assert_eq!(account_of(PASSWD_TEXT, 65534).unwrap().name, "nobody");
    }

    #[test]
    fn malformed_lines_never_match() {
        for line in [
            &b"# c:x:7:7::/c:/bin/sh"[..],
            b"+nis:x:7:7::/nis:/bin/sh",
            b"-nis:x:7:7::/nis:/bin/sh",
            b"six:x:7:7:/six:/bin/sh",
            b"eight:x:7:7:::/eight:/bin/sh",
            b":x:7:7::/empty:/bin/sh",
            b"sp ace:x:7:7::/s:/bin/sh",
            b"neg:x:-7:7::/n:/bin/sh",
            b"hex:x:0x7:7::/h:/bin/sh",
            b"gid:x:7:g::/g:/bin/sh",
            b"rel:x:7:7::rel:/bin/sh",
            b"big:x:99999999999:7::/b:/bin/sh",
            b"\xff:x:7:7::/b:/bin/sh",
        ] {
            assert_eq!(passwd_line(line), None, "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(account_of(b"", 0), None);
        assert_eq!(account_of(PASSWD_TEXT, 4), None);
    }
}
