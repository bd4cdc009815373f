//! Bounds on the numbers a bundle declares, so that no later arithmetic on them can overflow.
//!
//! Every size, count and time in a manifest or table of contents is checked against these
//! bounds where it is first parsed ([`crate::Manifest::validate`], [`crate::Toc::validate`]).
//! Invariant: with at most [`crate::manifest::MAX_LAYERS`] layers of at most
//! [`MAX_LAYER_SIZE`] bytes each, any sum of sizes over a whole bundle is below 2^57, so it fits
//! in a `u64` and in an `i64` (`off_t`) with room to spare; a time of at most [`MAX_MTIME`]
//! seconds fits in a `SystemTime`, a `time_t` and a `timespec` on every 64-bit system.

/// Latest modification or creation time accepted: 9999-12-31T23:59:59Z, in seconds since the
/// epoch.
pub const MAX_MTIME: u64 = 253_402_300_799;

/// Largest size of one layer (compressed blob, tar stream or unpacked content), of one file in
/// a layer, and of any other blob: 1 PiB.
pub const MAX_LAYER_SIZE: u64 = 1 << 50;

/// `n` bytes for humans, in binary units (`12.3 MiB`), with the exact count for small values.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_leave_room_for_sums_and_times() {
        let most = (crate::manifest::MAX_LAYERS as u64) * MAX_LAYER_SIZE;
        assert!(most < i64::MAX as u64 / 64);
        let t = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(MAX_MTIME));
        assert!(t.is_some());
        assert!(MAX_MTIME < i64::MAX as u64);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(MAX_LAYER_SIZE), "1.0 PiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }
}
