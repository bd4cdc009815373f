//! The launcher's standard streams, checked before the sandbox inherits them.

use crate::error::LaunchError;

/// A standard stream that was not a terminal, pipe, socket, regular file or character
/// device, and was replaced by `/dev/null` (a host directory on fd 0 would be a way out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    pub fd: i32,
    /// What it was: "directory", "block device", ...
    pub was: &'static str,
}

/// Replaces standard streams that are anything but a terminal, pipe, socket, regular file
/// or character device with `/dev/null`.
pub(crate) fn sanitize_stdio() -> Result<Vec<Replaced>, LaunchError> {
    use nix::sys::stat::{fstat, SFlag};
    use std::os::fd::AsFd;
    let mut out = Vec::new();
    for fd in 0..3 {
        let st = match fd {
            0 => fstat(std::io::stdin().as_fd()),
            1 => fstat(std::io::stdout().as_fd()),
            _ => fstat(std::io::stderr().as_fd()),
        };
        let Ok(st) = st else {
            continue; // closed
        };
        let was = match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => "a directory",
            SFlag::S_IFBLK => "a block device",
            _ => continue,
        };
        let null = std::fs::OpenOptions::new()
            .read(fd == 0)
            .write(fd != 0)
            .open("/dev/null")
            .map_err(|source| LaunchError::Prepare {
                path: "/dev/null".into(),
                source,
            })?;
        match fd {
            0 => nix::unistd::dup2_stdin(&null),
            1 => nix::unistd::dup2_stdout(&null),
            _ => nix::unistd::dup2_stderr(&null),
        }
        .map_err(|source| LaunchError::Sys {
            call: "dup2",
            source,
        })?;
        out.push(Replaced { fd, was });
    }
    Ok(out)
}
