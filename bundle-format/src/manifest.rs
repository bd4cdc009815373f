//! The manifest: what a bundle is, how to start it, what it may do, and the digests of its
//! layers. It holds digests, never file offsets, so a signature over its bytes stays valid
//! wherever the same blobs are stored (single file, store, repository).
//!
//! Invariant: a `Manifest` returned by [`Manifest::from_bytes`] is canonical JSON of at most
//! [`MAX_MANIFEST_LEN`] bytes and passed [`Manifest::validate`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::digest::Digest;
use crate::limits::{human_size, MAX_LAYER_SIZE, MAX_MTIME};
use crate::path::{is_forbidden_char, BundlePath};
use crate::permissions::Permissions;

/// The schema this crate writes and reads.
pub const SCHEMA: u32 = 1;
/// Largest manifest accepted.
pub const MAX_MANIFEST_LEN: usize = 1 << 20;
/// Media type of layer blobs: exactly OCI's zstd-compressed tar layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Most layers a bundle may have.
pub const MAX_LAYERS: usize = 64;
const MAX_TEXT: usize = 4096;

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("manifest is larger than {MAX_MANIFEST_LEN} bytes")]
    TooLarge,
    #[error("manifest is not canonical JSON of the expected schema")]
    Decode(#[source] canonical::CanonicalError),
    #[error("manifest field `{field}`: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// Which part of an app a layer holds; layers are stacked bottom to top in manifest order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerRole {
    /// The dynamic loader, glibc and libgcc_s: identical for every app packed on one system.
    Libc,
    /// Other shared libraries.
    Deps,
    /// The app's own files.
    App,
}

impl LayerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Libc => "libc",
            Self::Deps => "deps",
            Self::App => "app",
        }
    }
}

/// A reference to a blob by digest and exact size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: u64,
}

/// One layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub role: LayerRole,
    pub media_type: String,
    /// sha256 and size of the compressed blob.
    pub digest: Digest,
    pub size: u64,
    /// sha256 of the uncompressed tar stream (OCI `diff_id`) and its exact length.
    pub diff_id: Digest,
    pub tar_size: u64,
    /// Number of entries and total bytes of regular files.
    pub entries: u64,
    pub unpacked_size: u64,
    /// The layer's table of contents (zstd-compressed canonical JSON).
    pub toc: BlobRef,
}

/// Desktop metadata used by `capsa install`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Desktop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// An icon file inside the bundle (PNG or SVG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<BundlePath>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub mime_types: Vec<String>,
    #[serde(default)]
    pub terminal: bool,
    /// MIME types the app defines (new types only; see `SPEC.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mime_definitions: Vec<MimeDefinition>,
}

/// A MIME type an app defines: its name, a comment, and `*.ext` globs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimeDefinition {
    #[serde(rename = "type")]
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub globs: Vec<String>,
}

/// A glob a MIME definition may use: `*.` and 1 to 32 of `[A-Za-z0-9._+-]`.
pub fn valid_glob(g: &str) -> bool {
    g.strip_prefix("*.").is_some_and(|ext| {
        (1..=32).contains(&ext.len())
            && ext
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
    })
}

/// What the bundle needs from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// Highest `GLIBC_x.y` symbol version any captured object needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glibc: Option<String>,
    /// Oldest kernel the captured glibc supports (from its ABI note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Kernel features the launcher needs.
    #[serde(default)]
    pub features: Vec<String>,
}

/// The manifest (see the module docs and `SPEC.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: u32,
    pub id: String,
    pub name: String,
    pub version: String,
    /// `x86_64`, `aarch64`, ...: the machine of the captured ELF objects.
    pub arch: String,
    /// Seconds since the epoch used as every entry's mtime (`SOURCE_DATE_EPOCH`).
    pub created: u64,
    /// Program and arguments, inside the sandbox; the program is an absolute path.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    pub permissions: Permissions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<Desktop>,
    pub requires: Requires,
    pub layers: Vec<Layer>,
    /// The capture report (zstd-compressed canonical JSON), when the packer stored one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<BlobRef>,
    /// The program that wrote the bundle, e.g. `capsa 0.1.0`.
    pub generator: String,
}

impl Manifest {
    /// Canonical bytes of the manifest (what is stored and signed).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        self.validate()?;
        let bytes = canonical::to_vec(self).map_err(ManifestError::Decode)?;
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLarge);
        }
        Ok(bytes)
    }

    /// Parses and validates manifest bytes read from a bundle.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLarge);
        }
        let m: Manifest = canonical::from_slice(bytes).map_err(ManifestError::Decode)?;
        m.validate()?;
        Ok(m)
    }

    /// Every blob the manifest references, in storage order (each layer's TOC, then the layer;
    /// then the report).
    pub fn blobs(&self) -> Vec<BlobRef> {
        let mut out = Vec::new();
        for l in &self.layers {
            out.push(l.toc);
            out.push(BlobRef {
                digest: l.digest,
                size: l.size,
            });
        }
        out.extend(self.report);
        out
    }

    /// Total bytes of regular files over all layers: what extracting the bundle writes. Exact
    /// for a validated manifest (its bounds keep the sum far below `u64::MAX`); saturates
    /// otherwise.
    pub fn unpacked_size(&self) -> u64 {
        self.layers
            .iter()
            .try_fold(0u64, |sum, l| sum.checked_add(l.unpacked_size))
            .unwrap_or(u64::MAX)
    }

    /// Checks every field (see `SPEC.md` for the rules).
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.schema != SCHEMA {
            return Err(invalid(
                "schema",
                format!(
                    "{} is not supported (this capsa reads {SCHEMA})",
                    self.schema
                ),
            ));
        }
        validate_app_id(&self.id).map_err(|p| invalid("id", p))?;
        text("name", &self.name, false)?;
        text("version", &self.version, false)?;
        text("generator", &self.generator, false)?;
        if !matches!(
            self.arch.as_str(),
            "x86_64" | "aarch64" | "i686" | "armv7" | "riscv64" | "ppc64le" | "s390x"
        ) {
            return Err(invalid(
                "arch",
                format!("unknown architecture {:?}", self.arch),
            ));
        }
        if self.created > MAX_MTIME {
            return Err(invalid(
                "created",
                format!(
                    "{} is after the year 9999 (at most {MAX_MTIME})",
                    self.created
                ),
            ));
        }
        let Some(program) = self.command.first() else {
            return Err(invalid("command", "empty"));
        };
        if !program.starts_with('/') {
            return Err(invalid(
                "command",
                "the program must be an absolute path inside the bundle",
            ));
        }
        for arg in &self.command {
            if arg.contains('\0') || arg.len() > MAX_TEXT {
                return Err(invalid(
                    "command",
                    "argument with NUL or longer than 4096 bytes",
                ));
            }
        }
        if self.env.len() > 256 {
            return Err(invalid("env", "more than 256 variables"));
        }
        for (k, v) in &self.env {
            let valid_key = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_key || v.contains('\0') || v.len() > MAX_TEXT {
                return Err(invalid("env", format!("invalid variable {k:?}")));
            }
        }
        if let Some(w) = &self.workdir {
            if !w.starts_with('/') || w.chars().any(is_forbidden_char) {
                return Err(invalid("workdir", "must be an absolute path"));
            }
        }
        if let Some(d) = &self.desktop {
            validate_desktop(d)?;
        }
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(invalid("layers", format!("need 1 to {MAX_LAYERS} layers")));
        }
        for l in &self.layers {
            if l.media_type != LAYER_MEDIA_TYPE {
                return Err(invalid(
                    "layers",
                    format!("unsupported media type {:?}", l.media_type),
                ));
            }
            validate_layer_numbers(l)?;
        }
        if let Some(r) = &self.report {
            bounded("report.size", "the capture report", r.size)?;
        }
        let mut seen = std::collections::HashSet::new();
        for b in self.blobs() {
            if !seen.insert(b.digest) {
                return Err(invalid(
                    "layers",
                    format!("blob {} is listed twice", b.digest),
                ));
            }
        }
        Ok(())
    }
}

/// Refuses a size above [`MAX_LAYER_SIZE`].
fn bounded(field: &'static str, what: &str, n: u64) -> Result<(), ManifestError> {
    if n > MAX_LAYER_SIZE {
        return Err(invalid(
            field,
            format!(
                "{what}: {n} bytes is more than the limit of {MAX_LAYER_SIZE} ({})",
                human_size(MAX_LAYER_SIZE)
            ),
        ));
    }
    Ok(())
}

/// Bounds a layer's sizes and entry count (see [`crate::limits`]), so that sums over the
/// bundle and the TOC size cap derived from `entries` cannot overflow.
fn validate_layer_numbers(l: &Layer) -> Result<(), ManifestError> {
    let what = format!("layer {}", l.role.as_str());
    bounded("layers.size", &what, l.size)?;
    bounded("layers.tar_size", &what, l.tar_size)?;
    bounded("layers.unpacked_size", &what, l.unpacked_size)?;
    bounded("layers.toc.size", &what, l.toc.size)?;
    if l.entries > crate::toc::MAX_ENTRIES as u64 {
        return Err(invalid(
            "layers.entries",
            format!(
                "{what}: {} entries is more than the limit of {}",
                l.entries,
                crate::toc::MAX_ENTRIES
            ),
        ));
    }
    Ok(())
}

fn text(field: &'static str, s: &str, empty_ok: bool) -> Result<(), ManifestError> {
    if (!empty_ok && s.trim().is_empty()) || s.len() > MAX_TEXT || s.chars().any(is_forbidden_char)
    {
        return Err(invalid(
            field,
            "empty, longer than 4096 bytes, or has control characters",
        ));
    }
    Ok(())
}

/// Checks a reverse-DNS application id (Flatpak's rules): at least three dot-separated
/// elements of `[A-Za-z0-9_-]`, none empty or starting with a digit, 255 bytes at most.
pub fn validate_app_id(id: &str) -> Result<(), String> {
    if id.len() > 255 {
        return Err("longer than 255 bytes".into());
    }
    let parts: Vec<&str> = id.split('.').collect();
    if parts.len() < 3 {
        return Err(format!(
            "{id:?} is not reverse-DNS with at least three elements, like org.example.App"
        ));
    }
    for p in parts {
        if p.is_empty()
            || p.starts_with(|c: char| c.is_ascii_digit())
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "{id:?}: element {p:?} must be [A-Za-z0-9_-]+ and not start with a digit"
            ));
        }
    }
    Ok(())
}

/// The Desktop Menu Specification's registered categories (main and additional); others
/// must start with `X-`.
pub const REGISTERED_CATEGORIES: &[&str] = &[
    "AudioVideo",
    "Audio",
    "Video",
    "Development",
    "Education",
    "Game",
    "Graphics",
    "Network",
    "Office",
    "Science",
    "Settings",
    "System",
    "Utility",
    "Building",
    "Debugger",
    "IDE",
    "GUIDesigner",
    "Profiling",
    "RevisionControl",
    "Translation",
    "Calendar",
    "ContactManagement",
    "Database",
    "Dictionary",
    "Chart",
    "Email",
    "Finance",
    "FlowChart",
    "PDA",
    "ProjectManagement",
    "Presentation",
    "Spreadsheet",
    "WordProcessor",
    "2DGraphics",
    "VectorGraphics",
    "RasterGraphics",
    "3DGraphics",
    "Scanning",
    "OCR",
    "Photography",
    "Publishing",
    "Viewer",
    "TextTools",
    "DesktopSettings",
    "HardwareSettings",
    "Printing",
    "PackageManager",
    "Dialup",
    "InstantMessaging",
    "Chat",
    "IRCClient",
    "Feed",
    "FileTransfer",
    "HamRadio",
    "News",
    "P2P",
    "RemoteAccess",
    "Telephony",
    "TelephonyTools",
    "VideoConference",
    "WebBrowser",
    "WebDevelopment",
    "Midi",
    "Mixer",
    "Sequencer",
    "Tuner",
    "TV",
    "AudioVideoEditing",
    "Player",
    "Recorder",
    "DiscBurning",
    "ActionGame",
    "AdventureGame",
    "ArcadeGame",
    "BoardGame",
    "BlocksGame",
    "CardGame",
    "KidsGame",
    "LogicGame",
    "RolePlaying",
    "Shooter",
    "Simulation",
    "SportsGame",
    "StrategyGame",
    "Art",
    "Construction",
    "Music",
    "Languages",
    "ArtificialIntelligence",
    "Astronomy",
    "Biology",
    "Chemistry",
    "ComputerScience",
    "DataVisualization",
    "Economy",
    "Electricity",
    "Geography",
    "Geology",
    "Geoscience",
    "History",
    "Humanities",
    "ImageProcessing",
    "Literature",
    "Maps",
    "Math",
    "NumericalAnalysis",
    "MedicalSoftware",
    "Physics",
    "Robotics",
    "Spirituality",
    "Sports",
    "ParallelComputing",
    "Amusement",
    "Archiving",
    "Compression",
    "Electronics",
    "Emulator",
    "Engineering",
    "FileTools",
    "FileManager",
    "TerminalEmulator",
    "Filesystem",
    "Monitor",
    "Security",
    "Accessibility",
    "Calculator",
    "Clock",
    "TextEditor",
    "Documentation",
    "Adult",
    "Core",
    "KDE",
    "GNOME",
    "XFCE",
    "DDE",
    "GTK",
    "Qt",
    "Motif",
    "Java",
    "ConsoleOnly",
];

/// Whether a category may appear in a desktop entry.
pub fn registered_category(c: &str) -> bool {
    REGISTERED_CATEGORIES.contains(&c) || (c.starts_with("X-") && c.len() > 2)
}

/// Checks a MIME type's syntax (`type/subtype`, RFC 6838 restricted names).
pub fn valid_mime_type(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 127
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    matches!(s.split_once('/'), Some((t, st)) if ok(t) && ok(st))
}

fn validate_desktop(d: &Desktop) -> Result<(), ManifestError> {
    if let Some(n) = &d.name {
        text("desktop.name", n, false)?;
    }
    if let Some(c) = &d.comment {
        text("desktop.comment", c, true)?;
    }
    for c in &d.categories {
        if c.is_empty()
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "desktop.categories",
                format!("invalid category {c:?}"),
            ));
        }
    }
    for m in &d.mime_types {
        if !valid_mime_type(m) {
            return Err(invalid(
                "desktop.mime_types",
                format!("invalid MIME type {m:?}"),
            ));
        }
    }
    if d.mime_types.len() > 64 || d.mime_definitions.len() > 16 || d.categories.len() > 16 {
        return Err(invalid(
            "desktop",
            "too many MIME types, definitions or categories",
        ));
    }
    for def in &d.mime_definitions {
        if !valid_mime_type(&def.mime_type)
            || def.globs.is_empty()
            || def.globs.len() > 16
            || !def.globs.iter().all(|g| valid_glob(g))
        {
            return Err(invalid(
                "desktop.mime_definitions",
                format!(
                    "invalid definition of {:?} (globs are *.ext)",
                    def.mime_type
                ),
            ));
        }
        if let Some(c) = &def.comment {
            text("desktop.mime_definitions.comment", c, true)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        let d = Digest::of(b"x");
        Manifest {
            schema: SCHEMA,
            id: "org.example.Hello".into(),
            name: "Hello".into(),
            version: "1.0".into(),
            arch: "x86_64".into(),
            created: 0,
            command: vec!["/usr/bin/hello".into()],
            env: BTreeMap::new(),
            workdir: None,
            permissions: Permissions::default(),
            desktop: None,
            requires: Requires::default(),
            layers: vec![Layer {
                role: LayerRole::App,
                media_type: LAYER_MEDIA_TYPE.into(),
                digest: d,
                size: 1,
                diff_id: d,
                tar_size: 1024,
                entries: 0,
                unpacked_size: 0,
                toc: BlobRef {
                    digest: Digest::of(b"toc"),
                    size: 1,
                },
            }],
            report: None,
            generator: "capsa test".into(),
        }
    }

    #[test]
    fn round_trips_and_rejects_noncanonical() {
        let m = sample();
        let bytes = m.to_bytes().unwrap();
        assert_eq!(Manifest::from_bytes(&bytes).unwrap(), m);
        let mut spaced = b" ".to_vec();
        spaced.extend_from_slice(&bytes);
        assert!(Manifest::from_bytes(&spaced).is_err());
        let dup =
            String::from_utf8(bytes.clone())
                .unwrap()
                .replacen("{", r#"{"arch":"x86_64","#, 1);
        assert!(
            Manifest::from_bytes(dup.as_bytes()).is_err(),
            "duplicate key accepted"
        );
        let unknown = String::from_utf8(bytes)
            .unwrap()
            .replacen("{", r#"{"aaa":1,"#, 1);
        assert!(
            Manifest::from_bytes(unknown.as_bytes()).is_err(),
            "unknown field accepted"
        );
    }

    #[test]
    fn validates_fields() {
        type Change = Box<dyn Fn(&mut Manifest)>;
        let bad: Vec<Change> = vec![
            Box::new(|m| m.id = "../x".into()),
            Box::new(|m| m.id = "a/b.c.d".into()),
            Box::new(|m| m.id = "org.example".into()),
            Box::new(|m| m.id = "org.1example.App".into()),
            Box::new(|m| m.name = "evil\u{1b}[2J".into()),
            Box::new(|m| m.command = vec!["relative".into()]),
            Box::new(|m| m.command.clear()),
            Box::new(|m| m.arch = "pdp11".into()),
            Box::new(|m| {
                m.env
                    .insert("A=B".into(), "x".into())
                    .map(|_| ())
                    .unwrap_or(())
            }),
            Box::new(|m| m.layers.clear()),
            Box::new(|m| m.layers[0].toc.digest = m.layers[0].digest),
            Box::new(|m| {
                m.desktop = Some(Desktop {
                    mime_types: vec!["text".into()],
                    ..Default::default()
                })
            }),
            Box::new(|m| m.schema = 2),
        ];
        for (i, f) in bad.iter().enumerate() {
            let mut m = sample();
            f(&mut m);
            assert!(m.validate().is_err(), "case {i} accepted");
        }
    }
}
