//! `#!` interpreters: every captured executable regular file that starts with `#!` gets its
//! interpreter captured (links kept, ELF closure followed), since the kernel loads it without
//! any open the trace would see. `#!/usr/bin/env NAME` (and `env -S "NAME args"`) is followed
//! to NAME, looked up in the app's `PATH` (`app.env.PATH`, else `/usr/local/bin:/usr/bin:/bin`).
//!
//! Invariants: only the first line within the kernel's 256 bytes is read; a missing
//! interpreter is a warning naming the script, never an error; an interpreter that is itself a
//! script is followed too, until nothing new appears (each file is read once).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use bundle_format::LayerRole;

use crate::capture::{CaptureSet, ItemKind};
use crate::error::PackError;

/// The kernel's `BINPRM_BUF_SIZE`: how much of a script it reads for the `#!` line.
const LINE_MAX: usize = 256;

/// The default `PATH` when the recipe sets none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The programs a script's `#!` line runs: the interpreter, and for `env` the program it finds.
pub fn interpreters(script: &Path, path_env: &str) -> Vec<PathBuf> {
    let mut head = Vec::with_capacity(LINE_MAX);
    let read =
        std::fs::File::open(script).and_then(|f| f.take(LINE_MAX as u64).read_to_end(&mut head));
    if read.is_err() || !head.starts_with(b"#!") {
        return Vec::new();
    }
    let line = head[2..].split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let Some(interp) = words.next() else {
        return Vec::new();
    };
    let mut out = vec![PathBuf::from(interp)];
    if Path::new(interp).file_name().is_some_and(|n| n == "env") {
        // `env -S "a b"` splits its argument; other options and VAR=value come before NAME.
        let name = words
            .flat_map(|w| w.trim_matches(|c| c == '"' || c == '\'').split_whitespace())
            .find(|w| !w.starts_with('-') && !w.contains('=') && !w.is_empty());
        if let Some(found) = name.and_then(|n| lookup(n, path_env)) {
            out.push(found);
        }
    }
    out
}

/// NAME as `env` finds it: an absolute or relative path as given, else the first executable
/// file named NAME in `path_env`.
fn lookup(name: &str, path_env: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|p| p.is_absolute());
    }
    path_env
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Captures the interpreters of every captured script, and theirs, until none is new.
pub fn add_interpreters(set: &mut CaptureSet, path_env: &str) -> Result<(), PackError> {
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    loop {
        let scripts: Vec<(PathBuf, PathBuf)> = set
            .items
            .iter()
            .filter_map(|(k, i)| match &i.kind {
                ItemKind::File {
                    source,
                    executable: true,
                    ..
                } if !seen.contains(source) => Some((k.to_absolute(), source.clone())),
                _ => None,
            })
            .collect();
        if scripts.is_empty() {
            return Ok(());
        }
        for (at, source) in scripts {
            seen.insert(source.clone());
            for interp in interpreters(&source, path_env) {
                if std::fs::metadata(&interp).is_err() {
                    set.warnings.push(format!(
                        "{}: #! interpreter {} is not on this host",
                        at.display(),
                        interp.display()
                    ));
                    continue;
                }
                let reason = format!("#! interpreter of {}", at.display());
                let real = set.add_path(&interp, LayerRole::Deps, &reason)?;
                if real.is_file() {
                    set.enqueue(&real, Vec::new(), false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn reads_direct_env_and_env_s_lines() {
        let t = tempfile::tempdir_in("/var/tmp").unwrap();
        let d = t.path();
        let bin = d.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = script(&bin, "tool3.1", "#!/bin/sh\necho tool\n");
        symlink("tool3.1", bin.join("tool3")).unwrap();
        let path = format!("/nonexistent:{}", bin.display());
        let direct = script(d, "a", "#! /bin/sh -e\necho a\n");
        assert_eq!(interpreters(&direct, &path), [PathBuf::from("/bin/sh")]);
        let env = script(d, "b", "#!/usr/bin/env tool3\n");
        assert_eq!(
            interpreters(&env, &path),
            [PathBuf::from("/usr/bin/env"), bin.join("tool3")]
        );
        let env_s = script(d, "c", "#!/usr/bin/env -S tool3 -u -x\n");
        assert_eq!(interpreters(&env_s, &path)[1], bin.join("tool3"));
        let missing = script(d, "e", "#!/usr/bin/env no-such-tool\n");
        assert_eq!(
            interpreters(&missing, &path),
            [PathBuf::from("/usr/bin/env")]
        );
        let plain = script(d, "f", "echo no shebang\n");
        assert!(interpreters(&plain, &path).is_empty());
        let long = script(d, "g", &format!("#!{}\n", "/x".repeat(300)));
        assert!(interpreters(&long, &path)[0].as_os_str().len() <= LINE_MAX);

        // Captured: the env target's link chain, the interpreter of that script, and env.
        let mut set = CaptureSet::new(&[]).unwrap();
        set.add_path(&env, LayerRole::App, "test").unwrap();
        add_interpreters(&mut set, &path).unwrap();
        for p in [
            bin.join("tool3"),
            tool,
            PathBuf::from("/bin/sh"),
            PathBuf::from("/usr/bin/env"),
        ] {
            assert!(set.resolve(&p).is_some(), "{} not captured", p.display());
        }
        assert!(
            !set.queue.is_empty(),
            "the interpreters' closure was not queued"
        );
    }
}
