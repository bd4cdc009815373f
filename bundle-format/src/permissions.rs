//! The sandbox permission vocabulary, shared by recipes, manifests and `capsa run --allow/--deny`.
//!
//! Every permission has one canonical spelling (its `Display`), which is what manifests store.
//! Names follow Flatpak's where they overlap. Parsing rejects unknown names, so a typo is an error
//! before anything starts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// XDG user directories a `filesystem=` grant may name.
pub const XDG_DIRS: &[&str] = &[
    "xdg-desktop",
    "xdg-documents",
    "xdg-download",
    "xdg-music",
    "xdg-pictures",
    "xdg-public-share",
    "xdg-templates",
    "xdg-videos",
];

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Permission {
    /// `network`: full network access (the host's network namespace).
    Network,
    /// `network=tcp:443,tcp:80`: outgoing TCP to these ports only (Landlock network rules).
    NetworkTcp(Vec<u16>),
    /// `filesystem=TARGET[:ro|:rw]`.
    Filesystem { target: FsTarget, read_only: bool },
    /// `socket=NAME`.
    Socket(Socket),
    /// `device=NAME`.
    Device(Device),
}

/// What a `filesystem=` grant exposes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FsTarget {
    /// The user's real home directory.
    Home,
    /// A path below home, written `~/sub/dir`.
    HomeSub(String),
    /// An XDG user directory such as `xdg-download`.
    Xdg(String),
    /// An absolute host path.
    Path(String),
}

macro_rules! name_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            /// Every accepted name.
            pub const ALL: &'static [&'static str] = &[$($text),+];
            pub fn as_str(self) -> &'static str { match self { $(Self::$variant => $text),+ } }
            fn parse(s: &str) -> Option<Self> { match s { $($text => Some(Self::$variant),)+ _ => None } }
        }
    };
}

name_enum!(
    /// Host sockets an app may be given.
    Socket { X11 = "x11", Wayland = "wayland", Pulseaudio = "pulseaudio", Pipewire = "pipewire", SessionBus = "session-bus" }
);
name_enum!(
    /// Host devices an app may be given.
    Device { Dri = "dri", All = "all" }
);

/// A permission string that is not in the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown or malformed permission {text:?}: {why}")]
pub struct BadPermission {
    pub text: String,
    pub why: String,
}

fn bad(text: &str, why: impl Into<String>) -> BadPermission {
    BadPermission {
        text: text.to_owned(),
        why: why.into(),
    }
}

impl FromStr for Permission {
    type Err = BadPermission;
    fn from_str(s: &str) -> Result<Self, BadPermission> {
        if s.chars().any(crate::path::is_forbidden_char) || s.len() > 4096 {
            return Err(bad(s, "control characters or too long"));
        }
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        match (name, value) {
            ("network", None) => Ok(Self::Network),
            ("network", Some(v)) => parse_ports(v)
                .map(Self::NetworkTcp)
                .map_err(|why| bad(s, why)),
            ("filesystem", Some(v)) => parse_filesystem(s, v),
            ("socket", Some(v)) => Socket::parse(v)
                .map(Self::Socket)
                .ok_or_else(|| bad(s, format!("sockets are {}", Socket::ALL.join(", ")))),
            ("device", Some(v)) => Device::parse(v)
                .map(Self::Device)
                .ok_or_else(|| bad(s, format!("devices are {}", Device::ALL.join(", ")))),
            _ => Err(bad(s, "known permissions are network, network=tcp:PORT, filesystem=..., socket=..., device=...")),
        }
    }
}

/// The accepted forms of the network permission, for messages.
pub const NETWORK_FORMS: &str =
    "`network` (the whole network) or `network=tcp:PORT[,tcp:PORT...]` \
     (those TCP ports, 1-65535); in a recipe, network = true, false or \"tcp:443,tcp:80\"";

/// The value of `network=VALUE`: TCP ports, sorted, once each; else why not.
pub fn parse_ports(v: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for part in v.split(',') {
        let port = part
            .strip_prefix("tcp:")
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                let what = match v.contains("tcp:") {
                    true => format!("{part:?} is not a TCP port"),
                    false => format!("{v:?} is not a list of TCP ports"),
                };
                format!("{what}: the accepted forms are {NETWORK_FORMS}")
            })?;
        ports.push(port);
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

fn parse_filesystem(s: &str, v: &str) -> Result<Permission, BadPermission> {
    let (target, read_only) = match v.rsplit_once(':') {
        Some((t, "ro")) => (t, true),
        Some((t, "rw")) => (t, false),
        _ => (v, false),
    };
    let clean = |p: &str| -> Result<String, BadPermission> {
        let trimmed = p.trim_end_matches('/');
        if trimmed
            .split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(bad(s, "paths must be normalized (no `.`, `..` or `//`)"));
        }
        Ok(trimmed.to_owned())
    };
    let target = if target == "home" || target == "~" {
        FsTarget::Home
    } else if let Some(sub) = target.strip_prefix("~/") {
        FsTarget::HomeSub(
            clean(&format!("/{sub}"))?
                .trim_start_matches('/')
                .to_owned(),
        )
    } else if XDG_DIRS.contains(&target) {
        FsTarget::Xdg(target.to_owned())
    } else if target.starts_with('/') {
        let p = clean(target)?;
        if p.is_empty() {
            return Err(bad(s, "granting the whole host root is not supported"));
        }
        FsTarget::Path(p)
    } else {
        return Err(bad(
            s,
            "want home, ~/DIR, /ABSOLUTE/PATH or an xdg-* directory, optionally with :ro or :rw",
        ));
    };
    Ok(Permission::Filesystem { target, read_only })
}

impl fmt::Display for FsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Home => f.write_str("home"),
            Self::HomeSub(s) => write!(f, "~/{s}"),
            Self::Xdg(s) | Self::Path(s) => f.write_str(s),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network => f.write_str("network"),
            Self::NetworkTcp(ports) => {
                let list: Vec<String> = ports.iter().map(|p| format!("tcp:{p}")).collect();
                write!(f, "network={}", list.join(","))
            }
            Self::Filesystem { target, read_only } => {
                write!(
                    f,
                    "filesystem={target}{}",
                    if *read_only { ":ro" } else { "" }
                )
            }
            Self::Socket(s) => write!(f, "socket={}", s.as_str()),
            Self::Device(d) => write!(f, "device={}", d.as_str()),
        }
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let p: Permission = s.parse().map_err(serde::de::Error::custom)?;
        if p.to_string() != s {
            return Err(serde::de::Error::custom(format!(
                "permission {s:?} is not in canonical form ({p})"
            )));
        }
        Ok(p)
    }
}

/// What a `--deny` names: a permission's kind and target, without its access mode or ports
/// (`network`, `filesystem=home`, `socket=x11`, `device=dri`). Every grant has exactly one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Network,
    Filesystem(FsTarget),
    Socket(Socket),
    Device(Device),
}

impl Permission {
    /// The key a deny of this grant names.
    pub fn key(&self) -> Key {
        match self {
            Self::Network | Self::NetworkTcp(_) => Key::Network,
            Self::Filesystem { target, .. } => Key::Filesystem(target.clone()),
            Self::Socket(s) => Key::Socket(*s),
            Self::Device(d) => Key::Device(*d),
        }
    }
}

impl FromStr for Key {
    type Err = BadPermission;
    /// A key is written as the grant it names, without `:ro`/`:rw` or a port list.
    fn from_str(s: &str) -> Result<Self, BadPermission> {
        let p: Permission = s.parse()?;
        match &p {
            Permission::NetworkTcp(_) => Err(bad(
                s,
                "a deny names `network` as a whole (it takes every port away); to keep some ports, deny network and allow network=tcp:PORT",
            )),
            Permission::Filesystem { .. } if s.ends_with(":ro") || s.ends_with(":rw") => Err(bad(
                s,
                "a deny takes no access mode: deny filesystem=TARGET (and allow ...:ro to keep read-only access)",
            )),
            _ => Ok(p.key()),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network => f.write_str("network"),
            Self::Filesystem(t) => write!(f, "filesystem={t}"),
            Self::Socket(s) => write!(f, "socket={}", s.as_str()),
            Self::Device(d) => write!(f, "device={}", d.as_str()),
        }
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Whether Landlock must be fully enforced or is applied as far as the kernel allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    #[default]
    BestEffort,
    Required,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BestEffort => "best-effort",
            Self::Required => "required",
        }
    }
}

/// The `permissions` object of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Granted permissions, sorted and without duplicates.
    pub grants: Vec<Permission>,
    /// How strictly Landlock is applied.
    pub landlock: Enforcement,
}

impl Permissions {
    /// Sorts and deduplicates the grants (the manifest's canonical order).
    pub fn normalize(&mut self) {
        self.grants.sort();
        self.grants.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_spelling() {
        for s in [
            "network",
            "network=tcp:80,tcp:443",
            "filesystem=home",
            "filesystem=home:ro",
            "filesystem=~/notes:ro",
            "filesystem=/srv/data",
            "filesystem=xdg-download",
            "socket=x11",
            "socket=session-bus",
            "device=dri",
            "device=all",
        ] {
            let p: Permission = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        assert_eq!(
            "network=tcp:443,tcp:80"
                .parse::<Permission>()
                .unwrap()
                .to_string(),
            "network=tcp:80,tcp:443"
        );
        assert_eq!(
            "filesystem=/srv/data:rw"
                .parse::<Permission>()
                .unwrap()
                .to_string(),
            "filesystem=/srv/data"
        );
    }

    #[test]
    fn keys_name_kind_and_target() {
        for (grant, key) in [
            ("network=tcp:443", "network"),
            ("network", "network"),
            ("filesystem=home:ro", "filesystem=home"),
            ("filesystem=~/a", "filesystem=~/a"),
            ("socket=x11", "socket=x11"),
            ("device=dri", "device=dri"),
        ] {
            let p: Permission = grant.parse().unwrap();
            assert_eq!(p.key().to_string(), key);
            assert_eq!(key.parse::<Key>().unwrap(), p.key());
        }
        for bad in [
            "network=tcp:443",
            "filesystem=home:ro",
            "filesystem=/srv:rw",
            "netwrok",
        ] {
            assert!(bad.parse::<Key>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        for s in [
            "netwrok",
            "network=udp:53",
            "network=tcp:0",
            "network=tcp:70000",
            "filesystem=relative",
            "filesystem=/a/../b",
            "filesystem=/",
            "socket=ssh-agent",
            "device=kvm",
            "socket=x11\u{1b}",
            "filesystem=",
        ] {
            assert!(s.parse::<Permission>().is_err(), "{s}");
        }
    }
}
