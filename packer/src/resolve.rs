//! Finds the file the glibc dynamic loader would load for a soname, following its real search
//! order (ld.so(8)): a name with a slash is a path; otherwise DT_RPATH of the object and its
//! loaders (only when the object has no DT_RUNPATH), LD_LIBRARY_PATH (the recipe's, if any),
//! DT_RUNPATH of the object (direct dependencies only), `/etc/ld.so.cache`, then the default
//! directories. `$ORIGIN`, `$LIB` and `$PLATFORM` are expanded. In every directory the
//! glibc-hwcaps (and legacy hwcap) subdirectories are probed first; what is found there is kept
//! as a variant beside the plain file, so the bundle works on CPUs with and without them.
//! A candidate must be an ELF object of the requester's class and machine, as for the loader.

use std::path::{Path, PathBuf};

use crate::elf::{kind_of, ElfInfo, ElfKind};
use crate::ldcache::LdCache;

/// How a dependency was found (for the capture report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Path,
    Rpath,
    LibraryPath,
    Runpath,
    Cache,
    DefaultDir,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Path => "path",
            Via::Rpath => "DT_RPATH",
            Via::LibraryPath => "LD_LIBRARY_PATH",
            Via::Runpath => "DT_RUNPATH",
            Via::Cache => "ld.so.cache",
            Via::DefaultDir => "default directory",
        }
    }
}

/// A resolved dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The path the loader opens (it may go through symlinks).
    pub path: PathBuf,
    /// hwcaps variants found on the way (preferred by capable CPUs).
    pub variants: Vec<PathBuf>,
    pub via: Via,
    /// For `Via::Cache`: the entry's flags, and whether its directory is one the loader would
    /// not search without the cache (the bundle then needs a cache of its own).
    pub cache_only: Option<i32>,
}

/// The search order for objects of one class and machine.
#[derive(Debug, Clone)]
pub struct Resolver {
    kind: ElfKind,
    cache: LdCache,
    default_dirs: Vec<PathBuf>,
    library_path: Vec<PathBuf>,
    lib_token: String,
    platform: &'static str,
    hwcap_subdirs: &'static [&'static str],
}

impl Resolver {
    /// A resolver for `kind` objects using `cache` and the recipe's `LD_LIBRARY_PATH`.
    pub fn new(kind: ElfKind, cache: LdCache, library_path: Vec<PathBuf>) -> Self {
        let multiarch = kind
            .multiarch()
            .filter(|m| Path::new("/usr/lib").join(m).is_dir());
        let mut default_dirs = Vec::new();
        let lib_token = match multiarch {
            Some(m) => {
                default_dirs
                    .extend([format!("/lib/{m}"), format!("/usr/lib/{m}")].map(PathBuf::from));
                format!("lib/{m}")
            }
            None if kind.is_64 => "lib64".to_owned(),
            None => "lib".to_owned(),
        };
        if multiarch.is_none() && kind.is_64 {
            default_dirs.extend(["/lib64", "/usr/lib64"].map(PathBuf::from));
        } else {
            default_dirs.extend(["/lib", "/usr/lib"].map(PathBuf::from));
        }
        let arch = kind.arch().unwrap_or("");
        let hwcap_subdirs: &'static [&'static str] = match arch {
            "x86_64" => &[
                "glibc-hwcaps/x86-64-v4",
                "glibc-hwcaps/x86-64-v3",
                "glibc-hwcaps/x86-64-v2",
                "tls/x86_64",
                "tls",
                "x86_64",
            ],
            "ppc64le" => &["glibc-hwcaps/power10", "glibc-hwcaps/power9", "tls"],
            "s390x" => &[
                "glibc-hwcaps/z16",
                "glibc-hwcaps/z15",
                "glibc-hwcaps/z14",
                "glibc-hwcaps/z13",
                "tls",
            ],
            _ => &["tls"],
        };
        Self {
            kind,
            cache,
            default_dirs,
            library_path,
            lib_token,
            platform: if arch == "i686" {
                "i686"
            } else {
                arch_platform(arch)
            },
            hwcap_subdirs,
        }
    }

    pub fn kind(&self) -> ElfKind {
        self.kind
    }

    /// Expands `$ORIGIN`, `$LIB` and `$PLATFORM` (plain and braced) for an object at `origin_of`.
    pub fn expand(&self, s: &str, origin_of: &Path) -> String {
        let origin = origin_of
            .parent()
            .unwrap_or(Path::new("/"))
            .to_string_lossy()
            .into_owned();
        let mut out = s.to_owned();
        for (token, value) in [
            ("ORIGIN", origin.as_str()),
            ("LIB", self.lib_token.as_str()),
            ("PLATFORM", self.platform),
        ] {
            out = out
                .replace(&format!("${{{token}}}"), value)
                .replace(&format!("${token}"), value);
        }
        out
    }

    fn usable(&self, p: &Path) -> bool {
        p.is_file() && kind_of(p) == Some(self.kind)
    }

    /// Probes one directory: hwcaps variants, then the plain file.
    fn probe(&self, dir: &Path, soname: &str, variants: &mut Vec<PathBuf>) -> Option<PathBuf> {
        for sub in self.hwcap_subdirs {
            let p = dir.join(sub).join(soname);
            if self.usable(&p) && !variants.contains(&p) {
                variants.push(p);
            }
        }
        let p = dir.join(soname);
        self.usable(&p).then_some(p)
    }

    /// Resolves `soname` needed (or dlopened) by `requester`, whose loaders' DT_RPATH
    /// directories (already expanded) are `inherited_rpath`.
    pub fn resolve(
        &self,
        soname: &str,
        requester: &Path,
        info: &ElfInfo,
        inherited_rpath: &[PathBuf],
    ) -> Option<Resolution> {
        let mut variants = Vec::new();
        if soname.contains('/') {
            let p = PathBuf::from(self.expand(soname, requester));
            return (p.is_absolute() && self.usable(&p)).then_some(Resolution {
                path: p,
                variants,
                via: Via::Path,
                cache_only: None,
            });
        }
        let expand_all = |dirs: &[String]| -> Vec<PathBuf> {
            dirs.iter()
                .map(|d| PathBuf::from(self.expand(d, requester)))
                .collect()
        };
        let mut order: Vec<(Via, Vec<PathBuf>)> = Vec::new();
        if info.runpath.is_empty() {
            let mut rpath = expand_all(&info.rpath);
            rpath.extend(inherited_rpath.iter().cloned());
            order.push((Via::Rpath, rpath));
        }
        order.push((Via::LibraryPath, self.library_path.clone()));
        order.push((Via::Runpath, expand_all(&info.runpath)));
        for (via, dirs) in order {
            for dir in dirs.iter().filter(|d| d.is_absolute()) {
                if let Some(path) = self.probe(dir, soname, &mut variants) {
                    return Some(Resolution {
                        path,
                        variants,
                        via,
                        cache_only: None,
                    });
                }
            }
        }
        if info.nodeflib {
            return None;
        }
        let mut base: Option<(PathBuf, i32)> = None;
        for e in self.cache.lookup(soname) {
            if !self.usable(&e.path) {
                continue;
            }
            if e.hwcap != 0 {
                if !variants.contains(&e.path) {
                    variants.push(e.path.clone());
                }
            } else if base.is_none() {
                base = Some((e.path.clone(), e.arch_flags | 0x03));
            }
        }
        if let Some((path, flags)) = base {
            let default = path
                .parent()
                .is_some_and(|d| self.default_dirs.iter().any(|x| x == d));
            return Some(Resolution {
                path,
                variants,
                via: Via::Cache,
                cache_only: (!default).then_some(flags),
            });
        }
        for dir in &self.default_dirs {
            if let Some(path) = self.probe(dir, soname, &mut variants) {
                return Some(Resolution {
                    path,
                    variants,
                    via: Via::DefaultDir,
                    cache_only: None,
                });
            }
        }
        None
    }

    /// Directories a soname was searched in, for error messages.
    pub fn describe_search(&self, info: &ElfInfo) -> String {
        let mut parts = Vec::new();
        if info.runpath.is_empty() && !info.rpath.is_empty() {
            parts.push(format!("DT_RPATH {}", info.rpath.join(":")));
        }
        if !info.runpath.is_empty() {
            parts.push(format!("DT_RUNPATH {}", info.runpath.join(":")));
        }
        parts.push("ld.so.cache".into());
        parts.push(
            self.default_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        );
        parts.join(", ")
    }
}

fn arch_platform(arch: &str) -> &'static str {
    match arch {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        "armv7" => "v7l",
        "riscv64" => "riscv64",
        "ppc64le" => "power8",
        "s390x" => "z13",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::ElfInfo;

    fn host_resolver(bin: &Path) -> (Resolver, ElfInfo) {
        let info = ElfInfo::parse(&std::fs::read(bin).unwrap())
            .unwrap()
            .unwrap();
        let cache = LdCache::load(Path::new("/etc/ld.so.cache")).unwrap();
        (Resolver::new(info.kind, cache, Vec::new()), info)
    }

    #[test]
    fn resolves_libc_like_the_loader() {
        let (r, info) = host_resolver(Path::new("/bin/sh"));
        let res = r
            .resolve("libc.so.6", Path::new("/bin/sh"), &info, &[])
            .expect("libc resolves");
        assert!(res.path.ends_with("libc.so.6"));
        assert_eq!(res.via, Via::Cache);
        assert!(r
            .resolve("libdoes-not-exist.so.9", Path::new("/bin/sh"), &info, &[])
            .is_none());
    }

    #[test]
    fn expands_origin_and_friends() {
        let (r, _) = host_resolver(Path::new("/bin/sh"));
        assert_eq!(
            r.expand("$ORIGIN/../lib", Path::new("/opt/app/bin/x")),
            "/opt/app/bin/../lib"
        );
        assert_eq!(r.expand("${ORIGIN}/lib", Path::new("/opt/x")), "/opt/lib");
        assert!(!r.expand("/usr/$LIB", Path::new("/x")).contains('$'));
    }

    #[test]
    fn rpath_is_searched_before_the_cache_and_runpath_disables_it() {
        let dir = tempfile::tempdir().unwrap();
        let libc = host_resolver(Path::new("/bin/sh"))
            .0
            .resolve(
                "libc.so.6",
                Path::new("/bin/sh"),
                &host_resolver(Path::new("/bin/sh")).1,
                &[],
            )
            .unwrap()
            .path;
        std::fs::copy(&libc, dir.path().join("libc.so.6")).unwrap();
        let (r, mut info) = host_resolver(Path::new("/bin/sh"));
        info.rpath = vec![dir.path().display().to_string()];
        let res = r
            .resolve("libc.so.6", Path::new("/bin/sh"), &info, &[])
            .unwrap();
        assert_eq!(
            (res.path, res.via),
            (dir.path().join("libc.so.6"), Via::Rpath)
        );
        info.runpath = vec!["/nonexistent".into()];
        assert_eq!(
            r.resolve("libc.so.6", Path::new("/bin/sh"), &info, &[])
                .unwrap()
                .via,
            Via::Cache
        );
    }
}
