//! `capsa capture`: run a program traced on this machine, then turn what it did into a
//! [`Starter`] recipe.
//!
//! The run uses the caller's terminal, display and environment (it is the user's own run of
//! the app). What the trace kept (the same policy as a pack's trace stage,
//! [`crate::traced::decide`]) is compared with what a pack of the starter would capture
//! without it (the program, its package, the base, the closure): only files outside that go
//! into `paths`. A file inside a widening unit is listed once per unit root (the pack widens
//! it again), so the recipe stays short and says why each line is there.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bundle_format::BundlePath;
use trace::{Exit, Trace, TraceCommand};

use crate::error::PackError;
use crate::propose::{Proposal, UserDirs};
use crate::recipe::Recipe;
use crate::starter::{PackageFacts, Starter};
use crate::traced::{Places, TraceHelper};

/// What `capsa capture` was asked.
pub struct Scout {
    /// The command: a program (a path, or a name looked up in `PATH`) and its arguments.
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub helper: TraceHelper,
}

/// The program as the recipe names it: absolute, links not resolved (`/usr/bin/python3`).
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return std::path::absolute(name).ok().filter(|p| p.is_file());
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The desktop entry whose `Exec=` runs `program`, and its `Name=`.
fn desktop_entry(program: &Path) -> Option<(PathBuf, String)> {
    let base = program.file_name()?.to_str()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir("/usr/share/applications")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "desktop"))
        .collect();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let mut exec_matches = false;
        let mut name = None;
        for line in text
            .lines()
            .skip_while(|l| l.trim() != "[Desktop Entry]")
            .skip(1)
        {
            if line.starts_with('[') {
                break;
            }
            if let Some(e) = line.strip_prefix("Exec=") {
                let first = e.split_whitespace().next().unwrap_or("");
                exec_matches = first == base || Path::new(first) == program;
            } else if let Some(n) = line.strip_prefix("Name=") {
                name = Some(n.trim().to_owned());
            }
        }
        if let (true, Some(n)) = (exec_matches, name) {
            return Some((f, n));
        }
    }
    None
}

fn user_dirs() -> UserDirs {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let xdg = userdata::dirs::user_dirs_of(&home)
        .into_iter()
        .filter(|(name, _)| bundle_format::permissions::XDG_DIRS.contains(&name.as_str()))
        .collect();
    UserDirs { home, runtime, xdg }
}

fn ended(t: &Trace, timeout: Duration) -> String {
    match (t.timed_out, t.exit) {
        (true, _) => format!("killed at the {} s timeout", timeout.as_secs()),
        (false, Exit::Code(c)) => format!("exit {c}"),
        (false, Exit::Signal(s)) => format!("killed by signal {s}"),
    }
}

impl Scout {
    /// Runs the command traced and writes nothing: returns the starter and the trace.
    pub fn run(&self) -> Result<(Starter, Trace), PackError> {
        let name = self.argv.first().ok_or_else(|| PackError::Capture {
            path: PathBuf::new(),
            problem: "no command given (capsa capture -- PROGRAM [ARGS])".into(),
        })?;
        let program = find_program(name).ok_or_else(|| PackError::Capture {
            path: name.into(),
            problem: "is not a program here (give a path, or a name in PATH)".into(),
        })?;
        let mut argv = self.argv.clone();
        argv[0] = program.to_string_lossy().into_owned();
        let command = crate::traced::command_text(&argv);
        let cmd = TraceCommand {
            argv: argv.iter().map(OsString::from).collect(),
            cwd: None,
            env: Vec::new(),
            timeout: self.timeout,
            helper: self.helper.program.clone(),
            helper_args: self.helper.args.clone(),
            exact: false,
        };
        let t = trace::run(&cmd).map_err(|source| PackError::Trace {
            command: command.clone(),
            source,
        })?;
        let dpkg = crate::dpkg::Dpkg::open(Path::new("/")).ok();
        let package = dpkg.as_ref().and_then(|d| {
            let name = d.owner(&program)?.to_owned();
            let version = d.version(&name)?.to_owned();
            Some(PackageFacts { name, version })
        });
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let places = Places::new(home.as_deref(), &passwd, Vec::new());
        let probes = crate::units::probe_helpers().map_err(PackError::Units)?;
        let d = crate::traced::decide(&t, &command, &places, &probes, &|_| false);
        let program_is_elf = crate::capture::looks_like_elf(&program);
        let covered = self.covered(&argv[0], program_is_elf, package.as_ref())?;
        let paths = list_paths(&d.take, &covered)?;
        let mut skipped: Vec<(String, String)> = d
            .skipped
            .iter()
            .filter(|s| {
                use crate::traced::SkipReason as R;
                matches!(s.reason, R::Home | R::OutsidePrefixes | R::ProbeHelper)
                    && !Path::new(&s.path).is_dir()
            })
            .map(|s| (s.path.clone(), s.reason.as_str().to_owned()))
            .collect();
        skipped.sort();
        skipped.dedup();
        let starter = Starter {
            argv,
            program_is_elf,
            package,
            desktop: desktop_entry(&program),
            paths,
            skipped,
            ended: ended(&t, self.timeout),
            proposal: Proposal::from_trace(&t, &user_dirs()),
        };
        Ok((starter, t))
    }

    /// What a pack of the starter without `paths` and `trace` would capture.
    fn covered(
        &self,
        program: &str,
        elf: bool,
        package: Option<&PackageFacts>,
    ) -> Result<BTreeSet<BundlePath>, PackError> {
        let dir = tempfile::tempdir().map_err(PackError::Temp)?;
        let file = dir.path().join("capsa.toml");
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut text = format!(
            "[app]\nid = \"org.example.Scout\"\nname = \"s\"\nversion = \"0\"\ncommand = [{}]\n[capture]\n",
            q(program)
        );
        if elf {
            text.push_str(&format!("binaries = [{}]\n", q(program)));
        } else {
            text.push_str(&format!("paths = [{}]\n", q(program)));
        }
        if let Some(p) = package {
            text.push_str(&format!("packages = [{}]\n", q(&p.name)));
        }
        std::fs::write(&file, text).map_err(PackError::Temp)?;
        let recipe = Recipe::load(&file)?;
        let (set, _) = crate::pack::capture(&recipe, true, Path::new("/etc/ld.so.cache"))?;
        Ok(set.items.into_keys().collect())
    }
}

/// The traced files a pack would not capture otherwise, one hit per widening root.
fn list_paths(
    take: &[PathBuf],
    covered: &BTreeSet<BundlePath>,
) -> Result<Vec<(String, String)>, PackError> {
    let units = crate::units::resolve(&[], &[], &[])?;
    let mut out = Vec::new();
    // One hit per root and exclude set: a hit inside a unit's excluded part (a test suite the
    // app ran) lifts that exclude, so it must reach the pack beside the root's first hit.
    let mut roots_done: BTreeSet<(PathBuf, Vec<String>)> = BTreeSet::new();
    for p in take {
        let Ok(real) = std::fs::canonicalize(p) else {
            continue;
        };
        if !real.is_file() {
            continue;
        }
        let known = |x: &Path| BundlePath::from_host(x).is_ok_and(|k| covered.contains(&k));
        // The sandbox provides some files, and the pack writes the loader cache itself.
        let made = |x: &Path| {
            crate::provided::is_provided(x)
                || ["/etc/ld.so.cache", "/etc/nsswitch.conf", "/etc/hosts"]
                    .iter()
                    .any(|g| x == Path::new(g))
        };
        if known(p) || known(&real) || made(p) || made(&real) {
            continue;
        }
        let plan = crate::units::widen::plan(&units, std::slice::from_ref(p), &[], &[]);
        match plan.first() {
            Some(w) => {
                if roots_done.insert((w.root.clone(), w.exclude.clone())) {
                    let lifted = units
                        .get(&w.unit)
                        .is_some_and(|u| u.exclude.len() > w.exclude.len());
                    let also = if lifted {
                        ", with the part it leaves out that the run used"
                    } else {
                        ""
                    };
                    let why = format!("unit {} brings {}{also}", w.unit, w.root.display());
                    out.push((p.to_string_lossy().into_owned(), why));
                }
            }
            None => out.push((
                p.to_string_lossy().into_owned(),
                "used by the traced run".into(),
            )),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_in_a_units_excluded_part_is_listed_beside_the_roots_first_hit() {
        let lib = Path::new("/usr/lib/python3.11");
        let (os, t1, t2) = (
            lib.join("os.py"),
            lib.join("test/__init__.py"),
            lib.join("test/support/__init__.py"),
        );
        if ![&os, &t1, &t2].iter().all(|p| p.is_file()) {
            eprintln!("skipped: python3.11 and its test suite are not installed");
            return;
        }
        let listed = list_paths(&[os.clone(), t1.clone(), t2], &BTreeSet::new()).unwrap();
        let paths: Vec<&str> = listed.iter().map(|(p, _)| p.as_str()).collect();
        // os.py stands for the standard library; the first test file for the test suite, whose
        // exclude it lifts; the second test file adds nothing new.
        assert_eq!(
            paths,
            [os.to_str().unwrap(), t1.to_str().unwrap()],
            "{listed:?}"
        );
    }
}
