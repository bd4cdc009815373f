//! `socket=` grants: each host socket is bound at a fixed place inside, with the variable
//! that names it; a socket the host does not have is noted, not faked.

use std::path::{Path, PathBuf};

use bundle_format::permissions::Socket;

use super::{BindWhy, Builder, Flags, Note};

impl Builder<'_> {
    /// Binds a host socket (or its directory), or notes that the host has none.
    fn expose(&mut self, src: &Path, dst: &Path, what: &str) -> bool {
        if self.bind(src, dst, Flags::RW, BindWhy::Socket, false) {
            return true;
        }
        self.notes.push(Note::Missing {
            grant: format!("socket={what}"),
            path: src.to_path_buf(),
        });
        false
    }
}

pub(super) fn socket(b: &mut Builder, s: Socket, run_user: &Path) {
    let host = b.host;
    let runtime = host.runtime_dir.clone().unwrap_or_default();
    match s {
        Socket::X11 => {
            let Some(display) = host.env.get("DISPLAY") else {
                b.notes.push(Note::NoDisplay);
                return;
            };
            let x11 = Path::new("/tmp/.X11-unix");
            if b.expose(x11, x11, "x11") {
                b.env.push(("DISPLAY".into(), display.clone()));
            }
            if let Some(xa) = host.env.get("XAUTHORITY").map(PathBuf::from) {
                if b.bind(&xa, &xa, Flags::RO, BindWhy::Socket, false) {
                    b.env.push(("XAUTHORITY".into(), xa.display().to_string()));
                }
            }
        }
        Socket::Wayland => {
            let name = host
                .env
                .get("WAYLAND_DISPLAY")
                .cloned()
                .unwrap_or_else(|| "wayland-0".into());
            let src = if name.starts_with('/') {
                PathBuf::from(&name)
            } else {
                runtime.join(&name)
            };
            if b.expose(&src, &run_user.join("wayland-0"), "wayland") {
                b.env.push(("WAYLAND_DISPLAY".into(), "wayland-0".into()));
            }
        }
        Socket::Pulseaudio => {
            let dst = run_user.join("pulse/native");
            if b.expose(&runtime.join("pulse/native"), &dst, "pulseaudio") {
                b.env
                    .push(("PULSE_SERVER".into(), format!("unix:{}", dst.display())));
            }
        }
        Socket::Pipewire => {
            b.expose(
                &runtime.join("pipewire-0"),
                &run_user.join("pipewire-0"),
                "pipewire",
            );
        }
        Socket::SessionBus => {
            let addr = host
                .env
                .get("DBUS_SESSION_BUS_ADDRESS")
                .cloned()
                .unwrap_or_default();
            let path = addr
                .split(',')
                .find_map(|p| p.strip_prefix("unix:path="))
                .map(PathBuf::from)
                .unwrap_or_else(|| runtime.join("bus"));
            let dst = run_user.join("bus");
            if b.expose(&path, &dst, "session-bus") {
                b.env.push((
                    "DBUS_SESSION_BUS_ADDRESS".into(),
                    format!("unix:path={}", dst.display()),
                ));
            }
        }
    }
}
