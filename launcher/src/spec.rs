//! `SandboxSpec`: what one run is: the app's identity, its effective grants (already merged
//! by [`userdata::policy::merge`] from manifest, consent, overrides and the run's own
//! `--allow`/`--deny`), the command, environment and the files opened with `--open-files`.
//! Built and validated in the parent before anything starts.
//!
//! Opened files are checked here once (a regular file the user can read, opened without
//! following a symlink) and remembered by device and inode; the child binds exactly that
//! object or refuses to start.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bundle_format::{Enforcement, Manifest};
use userdata::{Grants, Identity};

use crate::error::LaunchError;
use crate::host::FileId;

/// The run's own options besides grants (named after `std::process::Command`'s).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replace the program (`--command`).
    pub command: Option<String>,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub ephemeral: bool,
    /// Require Landlock whatever the manifest says.
    pub require_landlock: bool,
    /// Expose each file named in `args` (a path or a `file://` URL), that file alone and
    /// read-write, at its own path; the argument becomes its absolute path. Arguments that
    /// start with `-` are passed as they are.
    pub open_files: bool,
    /// Trace the app (`--trace-missing`) and say which paths it looked for and did not find.
    pub trace_missing: bool,
}

/// A host file given to the app with `--open-files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    /// Absolute, without symlinks.
    pub path: PathBuf,
    pub id: FileId,
}

/// The validated sandbox description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    pub app: Identity,
    pub grants: Grants,
    pub landlock: Enforcement,
    pub argv: Vec<String>,
    /// Manifest env, then `--env`, in that order (later wins).
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub ephemeral: bool,
    pub open_files: Vec<OpenFile>,
    /// The app runs traced by pid 1 (see [`crate::missing`]).
    pub trace_missing: bool,
}

/// `file:///a%20b` → `/a b`; other text unchanged.
fn file_url_to_path(arg: &str) -> String {
    let Some(rest) = arg.strip_prefix("file://") else {
        return arg.to_owned();
    };
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let (b'%', Some(v)) = (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks a file named for `--open-files`: it exists, is a regular file the user can read,
/// and is remembered by identity. The folders on its way are resolved (they are the user's
/// naming: `/home` is a symlink on some systems); the file itself is opened once, without
/// following any symlink, so a name swapped for a symlink (by anything that can write its
/// folder) is refused rather than followed to another file of the user.
pub fn open_file(arg: &str) -> Result<OpenFile, LaunchError> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    let named = PathBuf::from(file_url_to_path(arg));
    let fail = |why: &str| LaunchError::OpenFile {
        path: named.clone(),
        why: why.into(),
    };
    let missing = || {
        fail(
            "no such file; the app is given existing files only (create it first, e.g. with touch)",
        )
    };
    let (Some(parent), Some(name)) = (named.parent(), named.file_name()) else {
        return Err(fail(
            "not a regular file; only files can be opened in an app",
        ));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = std::fs::canonicalize(parent).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => missing(),
        _ => fail(&e.to_string()),
    })?;
    let real = dir.join(name);
    let how = OpenHow::new()
        .flags(
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
        )
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(nix::fcntl::AT_FDCWD, &real, how).map_err(|e| match e {
        nix::Error::ENOENT => missing(),
        nix::Error::ELOOP => fail(
            "it is a symbolic link (or a folder on its way was just replaced by one); name the file it points to",
        ),
        e => fail(&format!("cannot open it: {}", std::io::Error::from(e))),
    })?;
    let m = std::fs::File::from(fd)
        .metadata()
        .map_err(|e| fail(&e.to_string()))?;
    if !m.is_file() {
        return Err(fail(
            "not a regular file; only files can be opened in an app",
        ));
    }
    Ok(OpenFile {
        path: real,
        id: FileId {
            dev: m.dev(),
            ino: m.ino(),
        },
    })
}

impl SandboxSpec {
    /// Builds the spec for `manifest` run as `app` with `grants` and the run's options.
    pub fn new(
        manifest: &Manifest,
        app: Identity,
        grants: Grants,
        o: &RunOptions,
    ) -> Result<Self, LaunchError> {
        let mut argv = manifest.command.clone();
        if let Some(c) = &o.command {
            if !c.starts_with('/') {
                return Err(LaunchError::Usage(format!(
                    "--command {c}: must be an absolute path inside the app"
                )));
            }
            argv = vec![c.clone()];
        }
        let mut open_files = Vec::new();
        for arg in &o.args {
            if o.open_files && !arg.starts_with('-') {
                let f = open_file(arg)?;
                argv.push(f.path.display().to_string());
                open_files.push(f);
            } else {
                argv.push(arg.clone());
            }
        }
        let mut env: Vec<(String, String)> = manifest
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &o.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(LaunchError::Usage(format!(
                    "--env {k}={v}: invalid variable"
                )));
            }
            env.push((k.clone(), v.clone()));
        }
        let landlock = if o.require_landlock {
            Enforcement::Required
        } else {
            manifest.permissions.landlock
        };
        Ok(Self {
            app,
            grants,
            landlock,
            argv,
            env,
            workdir: manifest.workdir.clone(),
            ephemeral: o.ephemeral,
            open_files,
            trace_missing: o.trace_missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let text = format!(
            r#"{{"arch":"x86_64","command":["/usr/bin/app","-x"],"created":0,"env":{{"A":"1"}},"generator":"t","id":"org.example.App","layers":[{{"diff_id":"sha256:{z}","digest":"sha256:{o}","entries":0,"media_type":"application/vnd.oci.image.layer.v1.tar+zstd","role":"app","size":1,"tar_size":1024,"toc":{{"digest":"sha256:{t}","size":1}},"unpacked_size":0}}],"name":"App","permissions":{{"grants":[],"landlock":"best-effort"}},"requires":{{"features":[]}},"schema":1,"version":"1"}}"#,
            z = "0".repeat(64),
            o = "1".repeat(64),
            t = "2".repeat(64),
        );
        Manifest::from_bytes(text.as_bytes()).unwrap()
    }

    fn who() -> Identity {
        Identity {
            id: "org.example.App".into(),
            publisher: userdata::Publisher::Local,
        }
    }

    fn spec(o: &RunOptions) -> Result<SandboxSpec, LaunchError> {
        SandboxSpec::new(&manifest(), who(), Grants::default(), o)
    }

    #[test]
    fn open_files_become_absolute_paths_remembered_by_inode() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a b.txt");
        std::fs::write(&f, "x").unwrap();
        let real = std::fs::canonicalize(&f).unwrap();
        let url = format!("file://{}", real.display().to_string().replace(' ', "%20"));
        // A symlinked folder on the way is the user's naming, and resolved.
        let folder = dir.path().join("folder");
        std::os::unix::fs::symlink(dir.path(), &folder).unwrap();
        let o = RunOptions {
            open_files: true,
            args: vec![
                url,
                "--flag".into(),
                folder.join("a b.txt").display().to_string(),
            ],
            ..Default::default()
        };
        let s = spec(&o).unwrap();
        assert_eq!(s.open_files.len(), 2);
        assert!(s.open_files.iter().all(|o| o.path == real));
        assert_eq!(
            s.argv[2..],
            [
                real.display().to_string(),
                "--flag".into(),
                real.display().to_string()
            ]
        );
        assert_eq!(
            s.open_files[0].id.ino,
            std::fs::metadata(&real).unwrap().ino()
        );
    }

    #[test]
    fn an_open_file_that_is_a_symlink_is_refused_not_followed() {
        // Anything that can write the folder could have swapped the name for this link.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        let link = dir.path().join("doc.txt");
        std::os::unix::fs::symlink(dir.path().join("secret"), &link).unwrap();
        let o = RunOptions {
            open_files: true,
            args: vec![link.display().to_string()],
            ..Default::default()
        };
        let e = spec(&o).unwrap_err().to_string();
        assert!(e.contains("doc.txt") && e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn missing_and_odd_open_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for arg in [
            dir.path().join("new.txt").display().to_string(),
            dir.path().display().to_string(),
            "/dev/null".into(),
        ] {
            let o = RunOptions {
                open_files: true,
                args: vec![arg.clone()],
                ..Default::default()
            };
            let e = spec(&o).unwrap_err().to_string();
            assert!(e.contains(arg.trim_start_matches('/')), "{e}");
        }
    }

    #[test]
    fn command_and_args() {
        let mut o = RunOptions {
            args: vec!["file".into()],
            ..Default::default()
        };
        assert_eq!(spec(&o).unwrap().argv, ["/usr/bin/app", "-x", "file"]);
        o.command = Some("/usr/bin/other".into());
        assert_eq!(spec(&o).unwrap().argv, ["/usr/bin/other", "file"]);
        o.command = Some("other".into());
        assert!(spec(&o).is_err());
    }
}
