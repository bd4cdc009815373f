//! glibc's `/etc/ld.so.cache` (the `glibc-ld.so.cache1.1` format, glibc ≥ 2.32): a reader (a
//! leading old-format `ld.so-1.7.0` block is skipped) and a writer. Pure Rust: `ldconfig` is
//! never run.
//!
//! The loader consults this cache after DT_RPATH/DT_RUNPATH and before its default
//! directories. It binary-searches the entries, so they must be in descending
//! [`libcmp`] order, as `ldconfig` writes them.

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

/// glibc's `_dl_cache_libcmp`: bytewise, except that runs of digits compare as numbers and a
/// digit sorts after a non-digit.
pub fn libcmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        let (ca, cb) = (a[i], b.get(j).copied().unwrap_or(0));
        match (ca.is_ascii_digit(), cb.is_ascii_digit()) {
            (true, true) => {
                let num = |s: &[u8], k: &mut usize| {
                    let mut v: u64 = 0;
                    while *k < s.len() && s[*k].is_ascii_digit() {
                        v = v.saturating_mul(10).saturating_add(u64::from(s[*k] - b'0'));
                        *k += 1;
                    }
                    v
                };
                let (va, vb) = (num(a, &mut i), num(b, &mut j));
                if va != vb {
                    return va.cmp(&vb);
                }
            }
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) if ca != cb => return ca.cmp(&cb),
            _ => {
                i += 1;
                j += 1;
            }
        }
    }
    0u8.cmp(&b.get(j).copied().unwrap_or(0))
}

/// Writes a cache mapping each soname to a path, for objects whose cache flags are `flags`
/// (e.g. `0x0303` for x86-64 libc6). Later duplicates of a soname are dropped.
pub fn write(entries: &[(String, PathBuf)], flags: i32) -> Vec<u8> {
    let mut list: Vec<&(String, PathBuf)> = Vec::new();
    for e in entries {
        if !list.iter().any(|x| x.0 == e.0) {
            list.push(e);
        }
    }
    list.sort_by(|x, y| libcmp(&y.0, &x.0));
    let strings_at = HEADER_LEN + list.len() * ENTRY_LEN;
    let mut strings: Vec<u8> = Vec::new();
    let mut rows = Vec::new();
    for (name, path) in list {
        let key = strings_at + strings.len();
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        let value = strings_at + strings.len();
        strings.extend_from_slice(path.as_os_str().as_encoded_bytes());
        strings.push(0);
        rows.push((key as u32, value as u32));
    }
    let mut out = Vec::with_capacity(strings_at + strings.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    out.push(2); // flags: little-endian
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&[0; 16]); // extension offset, unused
    for (key, value) in rows {
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
        out.extend_from_slice(&[0; 12]); // osversion, hwcap
    }
    out.extend_from_slice(&strings);
    out
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
    fn libcmp_matches_the_order_of_the_host_cache() {
        let Ok(bytes) = std::fs::read("/etc/ld.so.cache") else {
            return;
        };
        let b = &bytes[bytes.windows(MAGIC.len()).position(|w| w == MAGIC).unwrap()..];
        let n = u32_at(b, 20).unwrap() as usize;
        let keys: Vec<&str> = (0..n)
            .map(|i| {
                cstr_at(
                    b,
                    u32_at(b, HEADER_LEN + i * ENTRY_LEN + 4).unwrap() as usize,
                )
                .unwrap()
            })
            .collect();
        for w in keys.windows(2) {
            assert_ne!(
                libcmp(w[0], w[1]),
                std::cmp::Ordering::Less,
                "{} before {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(
            libcmp("libz3.so", "libzstd.so"),
            std::cmp::Ordering::Greater
        );
        assert_eq!(
            libcmp("libfoo.so.10", "libfoo.so.9"),
            std::cmp::Ordering::Greater
        );
    }

    #[test]
    fn written_caches_read_back_and_satisfy_ldconfig() {
        let entries = vec![
            ("libb.so.1".to_owned(), PathBuf::from("/opt/b/libb.so.1")),
            ("liba.so.10".to_owned(), PathBuf::from("/opt/a/liba.so.10")),
            ("liba.so.9".to_owned(), PathBuf::from("/opt/a/liba.so.9")),
        ];
        let bytes = write(&entries, 0x0303);
        let c = LdCache::parse(&bytes).unwrap();
        assert_eq!(
            c.lookup("liba.so.10")[0].path,
            PathBuf::from("/opt/a/liba.so.10")
        );
        assert_eq!(c.len(), 3);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ld.so.cache");
        std::fs::write(&p, &bytes).unwrap();
        if let Ok(out) = std::process::Command::new("ldconfig")
            .arg("-p")
            .arg("-C")
            .arg(&p)
            .output()
        {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.starts_with("3 libs found"), "{text}");
            assert!(
                text.contains("libb.so.1 (libc6,x86-64) => /opt/b/libb.so.1")
                    || !cfg!(target_arch = "x86_64"),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(LdCache::parse(b"not a cache").is_err());
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[0xff; 28]);
        assert!(LdCache::parse(&b).is_err());
    }
}
