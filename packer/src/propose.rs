//! Proposing a recipe's `[permissions]` from what a traced run did (`capsa capture`).
//!
//! Every proposed grant carries its evidence (the syscall, the address or path, the program
//! and how often), so the user can judge each line. The rules (capture.md §6):
//! - TCP connects to non-loopback addresses propose `network = "tcp:P,..."`; UDP (DNS) or
//!   anything else non-loopback proposes `network = true`; loopback alone proposes nothing
//!   (the sandbox has a loopback of its own).
//! - AF_UNIX connects map to sockets: X11 (`/tmp/.X11-unix/X<n>`, also abstract), Wayland,
//!   PulseAudio, PipeWire, the session bus; known host services Capsa does not grant (the
//!   system bus, CUPS, ssh and gpg agents) are listed as unmapped, never granted.
//! - `/dev/dri` proposes `devices = ["dri"]`; `/dev/snd` is covered by PulseAudio; other
//!   device nodes are listed as unmapped.
//! - Files used below the home: XDG user folders propose `xdg-<dir>` (`:ro` unless written);
//!   `~/.config`, `~/.cache`, `~/.local` are the app's private home in the sandbox and propose
//!   nothing; other folders propose `~/<first folder>` (`:ro` unless written).
//!
//! Input is a [`trace::Trace`]; output is plain data, rendered by [`Proposal::to_toml`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use bundle_format::permissions::{Device, Socket};
use trace::{Op, SockAddr, Trace};

/// One grant and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// What was seen: `connect /tmp/.X11-unix/X0`.
    pub seen: String,
    /// The program that did it (its executable), if known.
    pub by: Option<PathBuf>,
    pub count: usize,
}

/// The network the run used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetProposal {
    /// Nothing, or loopback only.
    #[default]
    None,
    /// TCP to these ports only.
    TcpPorts(Vec<u16>),
    /// UDP, DNS or other protocols.
    All,
}

/// What a traced run suggests the app needs.
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    pub network: NetProposal,
    pub network_evidence: Vec<Evidence>,
    /// Loopback use: reported, not granted.
    pub loopback: Vec<Evidence>,
    pub sockets: BTreeMap<Socket, Vec<Evidence>>,
    pub devices: BTreeMap<Device, Vec<Evidence>>,
    /// `filesystem` entries (`xdg-download:ro`, `~/Projects`) with their evidence.
    pub filesystem: BTreeMap<String, Vec<Evidence>>,
    /// Host services and devices seen that no permission grants.
    pub unmapped: Vec<Evidence>,
}

/// Facts about the user the run belonged to.
#[derive(Debug, Clone)]
pub struct UserDirs {
    pub home: PathBuf,
    /// `$XDG_RUNTIME_DIR` (`/run/user/UID`).
    pub runtime: Option<PathBuf>,
    /// XDG user folders by permission name: `xdg-download` → `/home/u/Downloads`.
    pub xdg: Vec<(String, PathBuf)>,
}

fn add(list: &mut Vec<Evidence>, seen: String, by: Option<&PathBuf>) {
    match list
        .iter_mut()
        .find(|e| e.seen == seen && e.by.as_ref() == by)
    {
        Some(e) => e.count += 1,
        None => list.push(Evidence {
            seen,
            by: by.cloned(),
            count: 1,
        }),
    }
}

/// The socket an AF_UNIX address stands for, or a name for an unmapped host service.
fn unix_socket(path: &str, dirs: &UserDirs) -> Option<Result<Socket, &'static str>> {
    let name = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if path.starts_with("/tmp/.X11-unix/X") {
        return Some(Ok(Socket::X11));
    }
    let in_runtime = dirs
        .runtime
        .as_ref()
        .is_some_and(|r| Path::new(path).starts_with(r));
    if in_runtime && name.starts_with("wayland-") {
        return Some(Ok(Socket::Wayland));
    }
    if path.ends_with("/pulse/native") {
        return Some(Ok(Socket::Pulseaudio));
    }
    if in_runtime && name.starts_with("pipewire-") {
        return Some(Ok(Socket::Pipewire));
    }
    if in_runtime && name == "bus" || path.contains("/dbus-") && !path.contains("system") {
        return Some(Ok(Socket::SessionBus));
    }
    if path.contains("system_bus_socket") {
        return Some(Err("the system bus"));
    }
    if path.contains("cups") {
        return Some(Err("CUPS (printing)"));
    }
    if name.starts_with("S.gpg-agent") {
        return Some(Err("the gpg agent"));
    }
    if path.contains("ssh") && name.contains("agent") || name == "pcscd.comm" {
        return Some(Err("an ssh agent or smart-card service"));
    }
    None
}

fn is_loopback(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

impl Proposal {
    /// Reads the run's connects and file accesses.
    pub fn from_trace(t: &Trace, dirs: &UserDirs) -> Self {
        let exe_of: BTreeMap<u32, PathBuf> =
            t.execs.iter().map(|e| (e.pid, e.exe.clone())).collect();
        let mut p = Proposal::default();
        let mut ports: Vec<u16> = Vec::new();
        let mut all_net = false;
        // EINPROGRESS: a non-blocking connect, under way.
        const EINPROGRESS: i32 = 115;
        for c in t
            .connects
            .iter()
            .filter(|c| c.errno.is_none() || c.errno == Some(EINPROGRESS))
        {
            let by = exe_of.get(&c.pid);
            match &c.addr {
                SockAddr::Inet { ip, port } if is_loopback(ip) => add(
                    &mut p.loopback,
                    format!("connect {ip}:{port} (loopback)"),
                    by,
                ),
                SockAddr::Inet { ip, port } => {
                    // sock_type 1 is SOCK_STREAM; 0 means the tracer did not see the socket.
                    if c.sock_type == 1 && *port != 53 {
                        ports.push(*port);
                    } else {
                        all_net = true;
                    }
                    add(&mut p.network_evidence, format!("connect {ip}:{port}"), by);
                }
                SockAddr::Unix(path) => p.unix(&path.to_string_lossy(), by, dirs),
                SockAddr::Abstract(name) => p.unix(name, by, dirs),
            }
        }
        ports.sort_unstable();
        ports.dedup();
        p.network = if all_net {
            NetProposal::All
        } else if ports.is_empty() {
            NetProposal::None
        } else {
            NetProposal::TcpPorts(ports)
        };
        p.files(t, &exe_of, dirs);
        p
    }

    fn unix(&mut self, path: &str, by: Option<&PathBuf>, dirs: &UserDirs) {
        let seen = format!("connect {path}");
        match unix_socket(path, dirs) {
            Some(Ok(s)) => add(self.sockets.entry(s).or_default(), seen, by),
            Some(Err(what)) => add(&mut self.unmapped, format!("{seen} ({what})"), by),
            None => {}
        }
    }

    fn files(&mut self, t: &Trace, exe_of: &BTreeMap<u32, PathBuf>, dirs: &UserDirs) {
        // Per proposed entry: was anything written below it?
        let mut written: BTreeMap<String, bool> = BTreeMap::new();
        let mut seen: BTreeMap<String, Vec<Evidence>> = BTreeMap::new();
        for a in t.accesses.iter().filter(|a| a.errno.is_none()) {
            let by = exe_of.get(&a.pid);
            let writes = matches!(a.op, Op::Open { write: true, .. } | Op::Change);
            if a.path.starts_with("/dev/dri") {
                add(
                    self.devices.entry(Device::Dri).or_default(),
                    format!("open {}", a.path.display()),
                    by,
                );
                continue;
            }
            if a.path.starts_with("/dev/snd") {
                add(
                    self.sockets.entry(Socket::Pulseaudio).or_default(),
                    format!("open {} (ALSA comes with pulseaudio)", a.path.display()),
                    by,
                );
                continue;
            }
            if ["/dev/input", "/dev/bus/usb", "/dev/video", "/dev/hidraw"]
                .iter()
                .any(|d| a.path.to_string_lossy().starts_with(d))
            {
                add(
                    &mut self.unmapped,
                    format!("open {} (device=all would grant it)", a.path.display()),
                    by,
                );
                continue;
            }
            let Some(entry) = home_entry(&a.path, dirs) else {
                continue;
            };
            *written.entry(entry.clone()).or_default() |= writes;
            let verb = if writes { "write" } else { "read" };
            add(
                seen.entry(entry).or_default(),
                format!("{verb} {}", a.path.display()),
                by,
            );
        }
        for (entry, ev) in seen {
            let text = if written.get(&entry).copied().unwrap_or(false) {
                entry
            } else {
                format!("{entry}:ro")
            };
            self.filesystem.insert(text, ev);
        }
    }
}

/// The `filesystem` entry a path in the home calls for, if any.
fn home_entry(path: &Path, dirs: &UserDirs) -> Option<String> {
    let rel = path.strip_prefix(&dirs.home).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    if rel.components().count() < 2 {
        // The home itself, or a file directly in it (dotfiles: shell and tool settings the
        // sandbox's private home replaces).
        return None;
    }
    if [".config", ".cache", ".local", ".pki", ".Xauthority"].contains(&first) {
        return None;
    }
    for (name, dir) in &dirs.xdg {
        if path.starts_with(dir) && dir != &dirs.home {
            return Some(name.clone());
        }
    }
    Some(format!("~/{first}"))
}

#[cfg(test)]
#[path = "propose_tests.rs"]
mod tests;
