//! A reader for glibc's `/etc/ld.so.cache` (the `glibc-ld.so.cache1.1` format, glibc ≥ 2.32;
//! a leading old-format `ld.so-1.7.0` block is skipped). Pure parsing: it never runs `ldconfig`.
//!
//! The loader consults this cache after DT_RPATH/DT_RUNPATH and before its default
//! directories; entries are in the loader's priority order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const HEADER_LEN: usize = 48;
const ENTRY_LEN: usize = 24;
/// `FLAG_ELF_LIBC6`: the only library type the loader uses on glibc systems.
const FLAG_ELF_LIBC6: i32 = 0x0003;
const FLAG_TYPE_MASK: i32 = 0x00ff;

/// One cache entry for a soname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub path: PathBuf,
    /// Architecture bits of the flags (`0x0300` is x86-64), to match the requesting object.
    pub arch_flags: i32,
    /// Non-zero for a glibc-hwcaps subdirectory entry.
    pub hwcap: u64,
}

/// The parsed cache: soname → entries in cache order.
#[derive(Debug, Default, Clone)]
pub struct LdCache {
    entries: HashMap<String, Vec<CacheEntry>>,
}

/// Why a cache file was not understood.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CacheError(String);

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn cstr_at(b: &[u8], at: usize) -> Option<&str> {
    let rest = b.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

impl LdCache {
    /// Reads the cache at `path`; a missing file is an empty cache (as for the loader).
    pub fn load(path: &Path) -> Result<Self, CacheError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                Self::parse(&bytes).map_err(|e| CacheError(format!("{}: {}", path.display(), e.0)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CacheError(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Parses cache bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, CacheError> {
        let start = bytes
            .windows(MAGIC.len())
            .position(|w| w == MAGIC)
            .ok_or_else(|| CacheError("no glibc-ld.so.cache1.1 header".into()))?;
        let b = &bytes[start..];
        let truncated = || CacheError("truncated".into());
        let nlibs = u32_at(b, 20).ok_or_else(truncated)? as usize;
        if HEADER_LEN + nlibs.checked_mul(ENTRY_LEN).ok_or_else(truncated)? > b.len() {
            return Err(truncated());
        }
        let mut entries: HashMap<String, Vec<CacheEntry>> = HashMap::new();
        for i in 0..nlibs {
            let at = HEADER_LEN + i * ENTRY_LEN;
            let flags = u32_at(b, at).ok_or_else(truncated)? as i32;
            let key = u32_at(b, at + 4).ok_or_else(truncated)? as usize;
            let value = u32_at(b, at + 8).ok_or_else(truncated)? as usize;
            let hwcap = u64::from_le_bytes(b[at + 16..at + 24].try_into().expect("8 bytes"));
            if flags & FLAG_TYPE_MASK != FLAG_ELF_LIBC6 {
                continue;
            }
            let (Some(name), Some(path)) = (cstr_at(b, key), cstr_at(b, value)) else {
                return Err(CacheError(format!(
                    "entry {i} points outside the string table"
                )));
            };
            entries
                .entry(name.to_owned())
                .or_default()
                .push(CacheEntry {
                    path: PathBuf::from(path),
                    arch_flags: flags & !FLAG_TYPE_MASK,
                    hwcap,
                });
        }
        Ok(Self { entries })
    }

    /// Entries for `soname`, in the loader's order.
    pub fn lookup(&self, soname: &str) -> &[CacheEntry] {
        self.entries.get(soname).map_or(&[], Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.entries.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parser agrees with `ldconfig -p` on this machine's real cache.
    #[test]
    fn matches_ldconfig_on_the_host_cache() {
        let Ok(out) = std::process::Command::new("ldconfig").arg("-p").output() else {
            eprintln!("skipped: no ldconfig");
            return;
        };
        let cache = LdCache::load(Path::new("/etc/ld.so.cache")).unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut checked = 0;
        for line in text.lines().skip(1) {
            let Some((left, path)) = line.trim().split_once(" => ") else {
                continue;
            };
            let soname = left.split_whitespace().next().unwrap();
            assert!(
                cache
                    .lookup(soname)
                    .iter()
                    .any(|e| e.path == Path::new(path)),
                "{soname} => {path} missing from parsed cache"
            );
            checked += 1;
        }
        assert!(checked > 10, "ldconfig listed only {checked} entries");
        assert_eq!(cache.len(), checked);
    }

    #[test]
    fn rejects_garbage() {
        assert!(LdCache::parse(b"not a cache").is_err());
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[0xff; 28]);
        assert!(LdCache::parse(&b).is_err());
    }
}
