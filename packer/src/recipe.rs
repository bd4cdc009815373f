//! The recipe (`capsa.toml`): what to capture and how the app starts. Parsing is strict
//! (unknown keys are errors) and every value is checked before any file is read, so a typo is
//! reported with the recipe's name and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bundle_format::manifest::{valid_mime_type, validate_app_id};
use bundle_format::permissions::{Enforcement, Permission, Permissions};
use serde::Deserialize;

use crate::error::PackError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub app: App,
    #[serde(default)]
    pub capture: Capture,
    #[serde(default)]
    pub permissions: RecipePermissions,
    #[serde(default)]
    pub desktop: Option<RecipeDesktop>,
    /// How the bundle file is written.
    #[serde(default)]
    pub bundle: RecipeBundle,
    /// Directory of the recipe file; relative host paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    #[serde(skip)]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub id: String,
    pub name: String,
    pub version: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capture {
    /// ELF programs: captured with their shared-library closure and the loader.
    #[serde(default)]
    pub binaries: Vec<String>,
    /// Files or folders captured as they are, at the same path.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Globs of absolute paths left out of `paths`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Files placed at a chosen bundle path: `"/usr/bin/hello" = "build/hello"`.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Sonames that may stay unresolved (the app copes without them).
    #[serde(default)]
    pub allow_missing: Vec<String>,
    /// dpkg packages whose listed files are captured (read from `/var/lib/dpkg`).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Also capture the packages' `Depends`/`Pre-Depends` closure, less the base system's
    /// packages (Essential or `Priority: required`).
    #[serde(default)]
    pub package_dependencies: bool,
    /// Commands run traced on the packing machine; what they use is captured.
    #[serde(default)]
    pub trace: Vec<Vec<String>>,
    /// Seconds before a traced command is killed (default 120).
    #[serde(default)]
    pub trace_timeout: Option<u64>,
    /// The base of system data (`/bin/sh`, C.UTF-8, NSS and network files, CA certificates,
    /// terminfo); on unless `false`.
    #[serde(default = "yes")]
    pub base: bool,
    /// Widening units taken whether or not a captured file lies in them.
    #[serde(default)]
    pub units: Vec<String>,
    /// Widening units never taken (names from `packer/units.toml` or `[[capture.unit]]`).
    #[serde(default)]
    pub no_units: Vec<String>,
    /// The recipe's own widening units (`[[capture.unit]]`, the schema of
    /// `packer/units.toml`); one with a built-in's name replaces it.
    #[serde(default)]
    pub unit: Vec<crate::units::UnitDef>,
}

fn yes() -> bool {
    true
}

impl Default for Capture {
    fn default() -> Self {
        Self {
            binaries: Vec::new(),
            paths: Vec::new(),
            exclude: Vec::new(),
            files: BTreeMap::new(),
            allow_missing: Vec::new(),
            packages: Vec::new(),
            package_dependencies: false,
            trace: Vec::new(),
            trace_timeout: None,
            base: true,
            units: Vec::new(),
            no_units: Vec::new(),
            unit: Vec::new(),
        }
    }
}

/// `network` is a boolean or a port list such as `"tcp:443,tcp:80"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "network must be true, false, or a list of TCP ports such as \"tcp:443,tcp:80\""
)]
pub enum NetworkSetting {
    All(bool),
    Ports(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipePermissions {
    #[serde(default)]
    pub network: Option<NetworkSetting>,
    #[serde(default)]
    pub filesystem: Vec<String>,
    #[serde(default)]
    pub sockets: Vec<String>,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub landlock: Option<Enforcement>,
}

/// `[bundle]`: the form of the bundle file (not of what is in it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecipeBundle {
    /// Write a self-executable bundle (a launcher stub in front; `capsa pack --self-exec`).
    #[serde(default)]
    pub self_exec: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecipeDesktop {
    pub name: Option<String>,
    pub comment: Option<String>,
    pub icon: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub mime_types: Vec<String>,
    #[serde(default)]
    pub terminal: bool,
    /// New MIME types the app defines: `[[desktop.mime-definitions]]` with `type`,
    /// `comment` and `globs = ["*.ext"]`.
    #[serde(default)]
    pub mime_definitions: Vec<RecipeMimeDefinition>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeMimeDefinition {
    #[serde(rename = "type")]
    pub mime_type: String,
    pub comment: Option<String>,
    pub globs: Vec<String>,
}

impl Recipe {
    /// Reads and checks the recipe at `path`.
    pub fn load(path: &Path) -> Result<Self, PackError> {
        let text = std::fs::read_to_string(path).map_err(|source| PackError::ReadRecipe {
            path: path.into(),
            source,
        })?;
        let mut r: Recipe = toml::from_str(&text).map_err(|e| PackError::Recipe {
            path: path.into(),
            problem: e.to_string(),
        })?;
        let abs = std::path::absolute(path).map_err(|source| PackError::ReadRecipe {
            path: path.into(),
            source,
        })?;
        r.base_dir = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
        r.file = path.into();
        r.validate()?;
        Ok(r)
    }

    fn bad(&self, problem: impl Into<String>) -> PackError {
        PackError::Recipe {
            path: self.file.clone(),
            problem: problem.into(),
        }
    }

    fn validate(&self) -> Result<(), PackError> {
        validate_app_id(&self.app.id).map_err(|e| self.bad(format!("app.id: {e}")))?;
        if !self.app.command.first().is_some_and(|c| c.starts_with('/')) {
            return Err(self
                .bad("app.command: the first element must be an absolute path inside the bundle"));
        }
        let c = &self.capture;
        if c.binaries.is_empty()
            && c.paths.is_empty()
            && c.files.is_empty()
            && c.packages.is_empty()
            && c.trace.is_empty()
        {
            return Err(self.bad(
                "capture: nothing to capture (give binaries, paths, files, packages or trace)",
            ));
        }
        if let Some(i) = c.trace.iter().position(|t| t.is_empty()) {
            return Err(self.bad(format!("capture.trace[{i}]: an empty command")));
        }
        if c.trace_timeout == Some(0) {
            return Err(self.bad("capture.trace-timeout: must be at least 1 second"));
        }
        for p in self.capture.binaries.iter().chain(&self.capture.paths) {
            if !p.starts_with('/') {
                return Err(self.bad(format!("capture: {p:?} is not an absolute path")));
            }
        }
        for dst in self.capture.files.keys() {
            if !dst.starts_with('/') {
                return Err(self.bad(format!(
                    "capture.files: bundle path {dst:?} is not absolute"
                )));
            }
        }
        crate::units::resolve(&c.unit, &c.units, &c.no_units)
            .map_err(|e| self.bad(format!("capture: {e}")))?;
        for g in &self.capture.exclude {
            globset::Glob::new(g).map_err(|e| self.bad(format!("capture.exclude: {e}")))?;
        }
        self.permissions()?;
        if let Some(d) = &self.desktop {
            if let Some(m) = d.mime_types.iter().find(|m| !valid_mime_type(m)) {
                return Err(self.bad(format!("desktop.mime-types: {m:?} is not a MIME type")));
            }
            if let Some(c) = d
                .categories
                .iter()
                .find(|c| !bundle_format::manifest::registered_category(c))
            {
                return Err(self.bad(format!("desktop.categories: {c:?} is not a registered category (see the Desktop Menu Specification), nor X-prefixed")));
            }
            if d.icon.as_ref().is_some_and(|i| !i.starts_with('/')) {
                return Err(self.bad("desktop.icon: must be an absolute path inside the bundle"));
            }
        }
        Ok(())
    }

    /// The manifest permissions this recipe asks for.
    pub fn permissions(&self) -> Result<Permissions, PackError> {
        let p = &self.permissions;
        let mut texts = Vec::new();
        match &p.network {
            None | Some(NetworkSetting::All(false)) => {}
            Some(NetworkSetting::All(true)) => texts.push("network".to_owned()),
            Some(NetworkSetting::Ports(s)) => match bundle_format::permissions::parse_ports(s) {
                Ok(_) => texts.push(format!("network={s}")),
                Err(_) => {
                    return Err(self.bad(format!(
                        "permissions: network = {s:?}: want true, false, or a list of TCP ports such as \"tcp:443,tcp:80\""
                    )))
                }
            },
        }
        texts.extend(p.filesystem.iter().map(|f| format!("filesystem={f}")));
        texts.extend(p.sockets.iter().map(|s| format!("socket={s}")));
        texts.extend(p.devices.iter().map(|d| format!("device={d}")));
        let grants = texts
            .iter()
            .map(|t| {
                t.parse::<Permission>()
                    .map_err(|e| self.bad(format!("permissions: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut perms = Permissions {
            grants,
            landlock: p.landlock.unwrap_or_default(),
        };
        perms.normalize();
        Ok(perms)
    }

    /// A host path from the recipe, resolved against the recipe's directory when relative.
    pub fn host_path(&self, p: &str) -> PathBuf {
        self.base_dir.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Recipe, PackError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("capsa.toml");
        std::fs::write(&p, text).unwrap();
        Recipe::load(&p)
    }

    const OK: &str = r#"
[app]
id = "org.example.Hello"
name = "Hello"
version = "1"
command = ["/usr/bin/hello"]
[capture]
binaries = ["/usr/bin/hello"]
[permissions]
network = "tcp:443,tcp:80"
sockets = ["x11"]
"#;

    #[test]
    fn parses_and_maps_permissions() {
        let r = load(OK).unwrap();
        let texts: Vec<String> = r
            .permissions()
            .unwrap()
            .grants
            .iter()
            .map(|g| g.to_string())
            .collect();
        assert_eq!(texts, ["network=tcp:80,tcp:443", "socket=x11"]);
    }

    #[test]
    fn a_network_value_that_is_neither_a_boolean_nor_ports_says_what_is_wanted() {
        let r = load(&OK.replace("\"tcp:443,tcp:80\"", "\"yes\""));
        let e = r
            .and_then(|r| r.permissions().map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("network = \"yes\"") && e.contains("want true, false"),
            "{e}"
        );
        assert!(
            !e.contains("network=yes"),
            "shows a form the user did not write: {e}"
        );
    }

    #[test]
    fn the_bundle_table_sets_self_exec() {
        assert!(!load(OK).unwrap().bundle.self_exec);
        let r = load(&format!("{OK}\n[bundle]\nself-exec = true\n")).unwrap();
        assert!(r.bundle.self_exec);
        let e = load(&format!("{OK}\n[bundle]\nself_exec = true\n")).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn refuses_bad_recipes_naming_the_problem() {
        for (edit, want) in [
            (OK.replace("org.example.Hello", "hello"), "app.id"),
            (
                OK.replace("[\"/usr/bin/hello\"]\n[capture]", "[\"hello\"]\n[capture]"),
                "app.command",
            ),
            (OK.replace("sockets", "sokets"), "unknown field"),
            (OK.replace("x11", "ssh"), "permissions"),
            (
                OK.replace(
                    "binaries = [\"/usr/bin/hello\"]",
                    "binaries = [\"usr/bin/hello\"]",
                ),
                "not an absolute path",
            ),
            (
                format!("{OK}\n[desktop]\nmime-types = [\"text\"]\n"),
                "mime-types",
            ),
            ("[app\n".to_owned(), "capsa.toml"),
        ] {
            let e = load(&edit).unwrap_err().to_string();
            assert!(
                e.contains(want) || e.contains("capsa.toml"),
                "{e} should mention {want}"
            );
            assert!(e.contains("capsa.toml"), "{e} should name the file");
        }
    }
}
