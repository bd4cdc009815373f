//! Parsing a tracee's `struct sockaddr` (read as bytes, at most `sockaddr_storage` long):
//! AF_UNIX (path, abstract, unnamed), AF_INET, AF_INET6. Anything else, or a short buffer,
//! gives `None`. A relative AF_UNIX path is made absolute against the tracee's cwd.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;

use nix::unistd::Pid;

use crate::paths::{resolve, Base};
use crate::SockAddr;

/// `sizeof(struct sockaddr_storage)`.
pub(crate) const MAX_LEN: usize = 128;

/// The address in `b` (the `addrlen` bytes the call passed).
pub(crate) fn parse(tid: Pid, b: &[u8]) -> Option<SockAddr> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    match i32::from(family) {
        libc::AF_UNIX => unix(tid, &b[2..]),
        libc::AF_INET => {
            let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SockAddr::Inet {
                ip: IpAddr::V4(Ipv4Addr::from(ip)),
                port,
            })
        }
        libc::AF_INET6 => {
            let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some(SockAddr::Inet {
                ip: IpAddr::V6(Ipv6Addr::from(ip)),
                port,
            })
        }
        _ => None,
    }
}

fn unix(tid: Pid, path: &[u8]) -> Option<SockAddr> {
    match path.first() {
        None => None, // unnamed (autobind)
        Some(0) => Some(SockAddr::Abstract(
            String::from_utf8_lossy(&path[1..]).into_owned(),
        )),
        Some(_) => {
            let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
            let p = &path[..end];
            if p.first() == Some(&b'/') {
                Some(SockAddr::Unix(OsStr::from_bytes(p).into()))
            } else {
                resolve(tid, Base::Cwd, p, false, &mut None).map(SockAddr::Unix)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(f: i32) -> [u8; 2] {
        (f as u16).to_ne_bytes()
    }

    #[test]
    fn parses_families_and_rejects_short_input() {
        let me = nix::unistd::getpid();
        let mut v4 = fam(libc::AF_INET).to_vec();
        v4.extend_from_slice(&[0x1f, 0x90, 127, 0, 0, 1]);
        assert_eq!(
            parse(me, &v4),
            Some(SockAddr::Inet {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: 8080
            })
        );
        assert_eq!(parse(me, &v4[..5]), None);
        let mut v6 = fam(libc::AF_INET6).to_vec();
        v6.extend_from_slice(&[0, 80, 0, 0, 0, 0]);
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        assert_eq!(
            parse(me, &v6),
            Some(SockAddr::Inet {
                ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
                port: 80
            })
        );
        let mut un = fam(libc::AF_UNIX).to_vec();
        un.extend_from_slice(b"/run/x.sock\0garbage");
        assert_eq!(parse(me, &un), Some(SockAddr::Unix("/run/x.sock".into())));
        let mut ab = fam(libc::AF_UNIX).to_vec();
        ab.extend_from_slice(b"\0bus");
        assert_eq!(parse(me, &ab), Some(SockAddr::Abstract("bus".into())));
        assert_eq!(parse(me, &fam(libc::AF_UNIX)), None);
        assert_eq!(parse(me, &[1]), None);
        assert_eq!(parse(me, &fam(libc::AF_NETLINK)), None);
    }
}
