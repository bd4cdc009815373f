//! Reading a stopped tracee's memory: byte ranges and NUL-terminated strings (paths, argv[0]).
//! `process_vm_readv` first, `/proc/TID/mem` if that is refused. Strings are read a page at a
//! time so one that ends just before an unmapped page is still read, and are cut at
//! `PATH_MAX`: a string without a NUL in that many bytes is not a path (`None`). Most paths
//! are short: the first read is of [`FIRST`] bytes into a stack buffer, so a short string
//! costs one `process_vm_readv` and one allocation of its own length.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;

use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

/// The longest path the kernel accepts, NUL included.
pub(crate) const PATH_MAX: usize = libc::PATH_MAX as usize;
const PAGE: u64 = 4096;
/// The first read of a string.
const FIRST: usize = 256;

/// Reads up to `buf.len()` bytes at `addr`; returns how many were read (0 on failure).
fn read_some(tid: Pid, addr: u64, buf: &mut [u8]) -> usize {
    let Ok(base) = usize::try_from(addr) else {
        return 0;
    };
    let remote = [RemoteIoVec {
        base,
        len: buf.len(),
    }];
    match process_vm_readv(tid, &mut [IoSliceMut::new(buf)], &remote) {
        Ok(n) if n > 0 => n,
        Ok(_) => 0,
        Err(_) => read_proc_mem(tid, addr, buf),
    }
}

fn read_proc_mem(tid: Pid, addr: u64, buf: &mut [u8]) -> usize {
    match File::open(format!("/proc/{tid}/mem")) {
        Ok(f) => f.read_at(buf, addr).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Exactly `len` bytes at `addr`, or `None`.
pub(crate) fn read_bytes(tid: Pid, addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let at = addr.checked_add(done as u64)?;
        let n = read_some(tid, at, &mut buf[done..]);
        if n == 0 {
            return None;
        }
        done += n;
    }
    Some(buf)
}

/// A native-endian u64 at `addr` (a pointer in an argv array or a struct).
pub(crate) fn read_u64(tid: Pid, addr: u64) -> Option<u64> {
    let b = read_bytes(tid, addr, 8)?;
    Some(u64::from_ne_bytes(b.try_into().ok()?))
}

/// The NUL-terminated string at `addr` (without the NUL), at most `PATH_MAX - 1` bytes.
pub(crate) fn read_cstr(tid: Pid, addr: u64) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut first = [0u8; FIRST];
    let want = FIRST.min(to_page_end(addr));
    let n = read_some(tid, addr, &mut first[..want]);
    if n == 0 {
        return None;
    }
    if let Some(end) = first[..n].iter().position(|&b| b == 0) {
        return Some(first[..end].to_vec());
    }
    let mut out = first[..n].to_vec();
    let mut at = addr.checked_add(n as u64)?;
    let mut chunk = vec![0u8; PAGE as usize];
    while out.len() < PATH_MAX {
        let want = to_page_end(at).min(PATH_MAX - out.len());
        let n = read_some(tid, at, &mut chunk[..want]);
        if n == 0 {
            return None;
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Some(out);
        }
        out.extend_from_slice(&chunk[..n]);
        at = at.checked_add(n as u64)?;
    }
    None
}

/// Bytes from `addr` to the end of its page (1..=PAGE).
fn to_page_end(addr: u64) -> usize {
    (PAGE - addr % PAGE) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_strings_across_a_page() {
        // Our own memory: a string placed to straddle a page boundary.
        let mut buf = vec![b'x'; 3 * PAGE as usize];
        let start = buf.as_ptr() as u64;
        let cross = (PAGE - start % PAGE) + PAGE - 5; // 5 bytes before a boundary
        let off = cross as usize;
        buf[off + 10] = 0;
        let me = nix::unistd::getpid();
        let s = read_cstr(me, start + cross).expect("read");
        assert_eq!(s.len(), 10);
        assert_eq!(read_cstr(me, 0), None);
        let long = vec![b'y'; PATH_MAX + 10];
        assert_eq!(
            read_cstr(me, long.as_ptr() as u64),
            None,
            "no NUL in PATH_MAX"
        );
        assert_eq!(read_u64(me, (&7u64) as *const u64 as u64), Some(7));
        // Longer than the first read, shorter than PATH_MAX.
        let mut mid = vec![b'z'; 3000];
        mid.push(0);
        let got = read_cstr(me, mid.as_ptr() as u64).expect("read");
        assert_eq!(got.len(), 3000);
    }
}
