//! The starter recipe `capsa capture` writes: a `capsa.toml` a user edits and packs.
//!
//! Everything in it is derived from facts passed in (the traced command, the program's
//! package, the paths the trace stage kept, the [`Proposal`]), and every line that was
//! guessed says so in a comment. The output is valid TOML that [`crate::Recipe::load`]
//! accepts unchanged (a test checks it), so "edit, then pack" starts from a working recipe.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bundle_format::manifest::validate_app_id;

use crate::propose::{Evidence, NetProposal, Proposal};

/// The program's Debian package, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFacts {
    pub name: String,
    /// The full Debian version (`1:2.39.5-0+deb12u2`).
    pub version: String,
}

/// What the starter recipe is made from.
#[derive(Debug, Clone)]
pub struct Starter {
    /// The traced command: absolute program path, then its arguments.
    pub argv: Vec<String>,
    /// The program is an ELF file (else a script: listed under `paths`).
    pub program_is_elf: bool,
    pub package: Option<PackageFacts>,
    /// A desktop entry naming the program (`/usr/share/applications/org.gnome.Zenity.desktop`)
    /// and its `Name=`.
    pub desktop: Option<(PathBuf, String)>,
    /// Paths the trace stage kept, beyond the package, the base and the closure, each with
    /// the reason (a widening unit, or the traced hit).
    pub paths: Vec<(String, String)>,
    /// Paths the trace saw and left out, with the reason, for comments.
    pub skipped: Vec<(String, String)>,
    /// How the traced run ended (`exit 0`, `killed at the 20 s timeout`).
    pub ended: String,
    pub proposal: Proposal,
}

/// A TOML basic string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn sanitize(part: &str) -> String {
    let mut s: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// The upstream part of a Debian version: no epoch, no Debian revision.
pub fn upstream_version(debian: &str) -> String {
    let no_epoch = debian.split_once(':').map_or(debian, |(_, v)| v);
    let upstream = no_epoch.rsplit_once('-').map_or(no_epoch, |(v, _)| v);
    upstream.to_owned()
}

impl Starter {
    fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("/")
    }

    fn basename(&self) -> String {
        Path::new(self.program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "app".into())
    }

    /// The app id and the comment saying where it came from.
    pub fn app_id(&self) -> (String, &'static str) {
        if let Some((file, _)) = &self.desktop {
            if let Some(stem) = file.file_stem().and_then(|s| s.to_str()) {
                if validate_app_id(stem).is_ok() {
                    return (stem.to_owned(), "from its desktop entry");
                }
            }
        }
        let name = self
            .package
            .as_ref()
            .map_or_else(|| self.basename(), |p| p.name.clone());
        let id = format!("org.debian.{}", sanitize(&name));
        if validate_app_id(&id).is_ok() {
            (
                id,
                "guessed from its package: use a reverse-DNS name of your own",
            )
        } else {
            (
                "org.example.App".into(),
                "could not guess one: choose yours",
            )
        }
    }

    /// Renders the recipe.
    pub fn to_toml(&self) -> String {
        let mut o = String::new();
        let (id, why_id) = self.app_id();
        let name = self
            .desktop
            .as_ref()
            .map_or_else(|| self.basename(), |(_, n)| n.clone());
        let (version, why_version) = match &self.package {
            Some(p) => (
                upstream_version(&p.version),
                format!("from package {} {}", p.name, p.version),
            ),
            None => ("0".into(), "no package: set the app's version".into()),
        };
        let _ = writeln!(o, "# Written by `capsa capture` from a traced run of:");
        let _ = writeln!(o, "#   {}", self.argv.join(" "));
        let _ = writeln!(
            o,
            "# The run ended: {}. Edit, then `capsa pack`.",
            self.ended
        );
        let _ = writeln!(o, "\n[app]");
        let _ = writeln!(o, "id = {}  # {why_id}", q(&id));
        let _ = writeln!(o, "name = {}", q(&name));
        let _ = writeln!(o, "version = {}  # {why_version}", q(&version));
        let _ = writeln!(
            o,
            "command = [{}]  # the program alone: `capsa run BUNDLE -- ARGS` adds arguments",
            q(self.program())
        );
        self.capture(&mut o);
        self.permissions(&mut o);
        o
    }

    fn capture(&self, o: &mut String) {
        let _ = writeln!(o, "\n[capture]");
        if self.program_is_elf {
            let _ = writeln!(o, "binaries = [{}]", q(self.program()));
        }
        if let Some(p) = &self.package {
            let _ = writeln!(
                o,
                "packages = [{}]  # the package {} comes from: its helpers and data",
                q(&p.name),
                self.program()
            );
        }
        let mut paths: Vec<(String, String)> = self.paths.clone();
        if !self.program_is_elf {
            paths.insert(
                0,
                (self.program().to_owned(), "the program (a script)".into()),
            );
        }
        if paths.is_empty() {
            let _ = writeln!(o, "paths = []");
        } else {
            let _ = writeln!(o, "paths = [");
            for (p, why) in &paths {
                let _ = writeln!(o, "    {},  # {why}", q(p));
            }
            let _ = writeln!(o, "]");
        }
        let argv: Vec<String> = self.argv.iter().map(|a| q(a)).collect();
        let _ = writeln!(
            o,
            "trace = [[{}]]  # run traced at pack time: what it uses is captured too",
            argv.join(", ")
        );
        if !self.skipped.is_empty() {
            let _ = writeln!(o, "# Seen in the run and left out:");
            for (p, why) in self.skipped.iter().take(40) {
                let _ = writeln!(o, "#   {p}  ({why})");
            }
            if self.skipped.len() > 40 {
                let _ = writeln!(o, "#   ... and {} more", self.skipped.len() - 40);
            }
        }
    }

    fn permissions(&self, o: &mut String) {
        let p = &self.proposal;
        let _ = writeln!(o, "\n[permissions]");
        match &p.network {
            NetProposal::None if p.loopback.is_empty() => {
                let _ = writeln!(o, "network = false  # no network use seen");
            }
            NetProposal::None => {
                let _ = writeln!(
                    o,
                    "network = false  # loopback only: the sandbox has a loopback of its own"
                );
                evidence(o, &p.loopback);
            }
            NetProposal::TcpPorts(ports) => {
                let list: Vec<String> = ports.iter().map(|p| format!("tcp:{p}")).collect();
                let _ = writeln!(
                    o,
                    "network = {}  # TCP to these ports only",
                    q(&list.join(","))
                );
                evidence(o, &p.network_evidence);
                let _ = writeln!(o, "# network = true  # wider: any protocol, any port");
            }
            NetProposal::All => {
                let _ = writeln!(o, "network = true  # UDP, DNS or other protocols seen");
                evidence(o, &p.network_evidence);
            }
        }
        list(
            o,
            "sockets",
            p.sockets.iter().map(|(s, e)| (s.as_str().to_owned(), e)),
        );
        list(
            o,
            "devices",
            p.devices.iter().map(|(d, e)| (d.as_str().to_owned(), e)),
        );
        list(
            o,
            "filesystem",
            p.filesystem.iter().map(|(f, e)| (f.clone(), e)),
        );
        if !p.unmapped.is_empty() {
            let _ = writeln!(o, "# unmapped: seen, and no permission grants them:");
            evidence(o, &p.unmapped);
        }
    }
}

fn evidence(o: &mut String, ev: &[Evidence]) {
    for e in ev.iter().take(8) {
        let by =
            e.by.as_ref()
                .map(|b| format!(" by {}", b.display()))
                .unwrap_or_default();
        let times = if e.count > 1 {
            format!(" x{}", e.count)
        } else {
            String::new()
        };
        let _ = writeln!(o, "#   seen: {}{by}{times}", e.seen);
    }
    if ev.len() > 8 {
        let _ = writeln!(o, "#   ... and {} more", ev.len() - 8);
    }
}

fn list<'a>(o: &mut String, key: &str, items: impl Iterator<Item = (String, &'a Vec<Evidence>)>) {
    let items: Vec<(String, &Vec<Evidence>)> = items.collect();
    if items.is_empty() {
        let _ = writeln!(o, "{key} = []  # none seen");
        return;
    }
    let _ = writeln!(o, "{key} = [");
    for (name, ev) in items {
        let _ = writeln!(o, "    {},", q(&name));
        evidence(o, ev);
    }
    let _ = writeln!(o, "]");
}

#[cfg(test)]
#[path = "starter_tests.rs"]
mod tests;
