//! The ELF closure pass: takes queued objects one by one and captures what the loader would
//! load for them — the program interpreter, every DT_NEEDED library (resolved by
//! [`Resolver`]), hwcaps variants, sonames from `.note.dlopen`, glibc's dlopened run-time pieces
//! (NSS, and gconv when `iconv_open` is used) — then queues those objects too, until nothing new
//! appears. Unresolvable dependencies are collected, not fatal one by one, so the error lists
//! them all.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use bundle_format::LayerRole;

use crate::capture::{CaptureSet, Pending};
use crate::elf::{kind_of, version_key, ElfInfo, ElfKind};
use crate::error::PackError;
use crate::ldcache::LdCache;
use crate::origin::Origin;
use crate::resolve::Resolver;

/// glibc's own shared objects (and libgcc_s, which glibc dlopens for unwinding). They form the
/// `libc` layer, which is the same for every app packed on one system.
pub const GLIBC_SONAMES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libmvec.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libresolv.so.2",
    "libutil.so.1",
    "libanl.so.1",
    "libBrokenLocale.so.1",
    "libc_malloc_debug.so.0",
    "libthread_db.so.1",
    "libnss_files.so.2",
    "libnss_dns.so.2",
    "libnss_compat.so.2",
    "libnss_hesiod.so.2",
    "libgcc_s.so.1",
];

/// True for glibc's objects and the dynamic loader.
pub fn is_glibc(soname: &str) -> bool {
    GLIBC_SONAMES.contains(&soname)
        || soname.starts_with("ld-linux")
        || soname.starts_with("ld64.so")
        || soname == "ld.so.1"
}

/// What the closure pass learned besides the files.
#[derive(Debug, Default)]
pub struct ClosureFacts {
    pub kinds: HashSet<ElfKind>,
    /// The ELF kind of each recipe binary, in recipe order.
    pub binary_kinds: Vec<(PathBuf, ElfKind)>,
    pub max_glibc: Option<String>,
    pub min_kernel: Option<(u32, u32, u32)>,
    pub unresolved: Vec<String>,
    pub allowed_missing: Vec<String>,
    /// Libraries found through the loader cache outside the default directories: soname,
    /// path, cache flags. The bundle gets its own `/etc/ld.so.cache` listing them.
    pub cache_entries: Vec<(String, PathBuf, i32)>,
}

/// Runs the closure pass over `set.queue`.
pub struct Closure<'a> {
    set: &'a mut CaptureSet,
    cache: LdCache,
    library_path: Vec<PathBuf>,
    resolvers: HashMap<ElfKind, Resolver>,
    scanned: HashSet<PathBuf>,
    glibc_dirs: HashSet<PathBuf>,
    gconv_done: bool,
    allow_missing: HashSet<String>,
    allow_all_missing: bool,
    pub facts: ClosureFacts,
}

impl<'a> Closure<'a> {
    pub fn new(
        set: &'a mut CaptureSet,
        cache: LdCache,
        library_path: Vec<PathBuf>,
        allow_missing: &[String],
        allow_all_missing: bool,
    ) -> Self {
        Self {
            set,
            cache,
            library_path,
            resolvers: HashMap::new(),
            scanned: HashSet::new(),
            glibc_dirs: HashSet::new(),
            gconv_done: false,
            allow_missing: allow_missing.iter().cloned().collect(),
            allow_all_missing,
            facts: ClosureFacts::default(),
        }
    }

    /// Processes the queue until it is empty.
    /// Files it adds record [`Origin::Closure`]; the set's origin is restored afterwards.
    pub fn run(&mut self) -> Result<(), PackError> {
        let stage = std::mem::replace(&mut self.set.origin, Origin::Closure);
        let result = self.drain();
        self.set.origin = stage;
        result
    }

    fn drain(&mut self) -> Result<(), PackError> {
        while let Some(p) = self.set.queue.pop_front() {
            let real = std::fs::canonicalize(&p.source).unwrap_or_else(|_| p.source.clone());
            if self.scanned.insert(real) {
                self.scan(p)?;
            }
        }
        Ok(())
    }

    fn resolver(&mut self, kind: ElfKind) -> &Resolver {
        let (cache, lp) = (&self.cache, &self.library_path);
        self.resolvers
            .entry(kind)
            .or_insert_with(|| Resolver::new(kind, cache.clone(), lp.clone()))
    }

    /// Captures a resolved library (and its hwcaps variants) and queues it.
    fn take(
        &mut self,
        path: &Path,
        variants: &[PathBuf],
        role: LayerRole,
        reason: &str,
        rpath: &[PathBuf],
    ) -> Result<(), PackError> {
        for p in std::iter::once(path).chain(variants.iter().map(PathBuf::as_path)) {
            self.set.add_path(p, role, reason)?;
            self.set.queue.push_back(Pending {
                path: p.into(),
                source: p.into(),
                inherited_rpath: rpath.to_vec(),
                required: true,
            });
        }
        Ok(())
    }

    fn missing(&mut self, soname: &str, who: &Path, info: &ElfInfo, optional: bool) {
        let search = self.resolver(info.kind).describe_search(info);
        let line = format!("{soname} needed by {} (searched {search})", who.display());
        if optional || self.allow_all_missing || self.allow_missing.contains(soname) {
            self.facts.allowed_missing.push(line);
        } else {
            self.facts.unresolved.push(line);
        }
    }

    fn scan(&mut self, p: Pending) -> Result<(), PackError> {
        let bytes = std::fs::read(&p.source).map_err(|source| PackError::ReadSource {
            path: p.source.clone(),
            source,
        })?;
        let info = match ElfInfo::parse(&bytes) {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(()),
            Err(source) if p.required => {
                return Err(PackError::Elf {
                    path: p.source,
                    source,
                })
            }
            Err(e) => {
                self.set.warnings.push(format!(
                    "{}: not a readable ELF object ({e}); its dependencies are not followed",
                    p.path.display()
                ));
                return Ok(());
            }
        };
        drop(bytes);
        if info.kind.arch().is_none() {
            self.set.warnings.push(format!(
                "{}: ELF machine {} is not supported; dependencies not followed",
                p.path.display(),
                info.kind.machine
            ));
            return Ok(());
        }
        self.facts.kinds.insert(info.kind);
        if let Some(v) = &info.max_glibc {
            if self
                .facts
                .max_glibc
                .as_deref()
                .is_none_or(|m| version_key(v) > version_key(m))
            {
                self.facts.max_glibc = Some(v.clone());
            }
        }
        if let Some(k) = info.min_kernel {
            self.facts.min_kernel = Some(self.facts.min_kernel.map_or(k, |m| m.max(k)));
        }
        let who = p.path.display().to_string();
        if let Some(interp) = &info.interpreter {
            let ip = PathBuf::from(interp);
            if kind_of(&ip) == Some(info.kind) {
                self.take(
                    &ip,
                    &[],
                    LayerRole::Libc,
                    &format!("program interpreter of {who}"),
                    &[],
                )?;
            } else {
                self.facts.unresolved.push(format!(
                    "program interpreter {interp} of {who} is missing or not a {:?} ELF object",
                    info.kind.arch()
                ));
            }
        }
        let mut child_rpath: Vec<PathBuf> = Vec::new();
        if info.runpath.is_empty() {
            let resolver = self.resolver(info.kind);
            child_rpath.extend(
                info.rpath
                    .iter()
                    .map(|d| PathBuf::from(resolver.expand(d, &p.path))),
            );
        }
        child_rpath.extend(p.inherited_rpath.iter().cloned());
        for soname in &info.needed {
            let found =
                self.resolver(info.kind)
                    .resolve(soname, &p.path, &info, &p.inherited_rpath);
            match found {
                Some(res) => {
                    let role = if is_glibc(soname) {
                        LayerRole::Libc
                    } else {
                        LayerRole::Deps
                    };
                    let reason = format!("NEEDED by {who} (via {})", res.via.as_str());
                    self.take(&res.path, &res.variants, role, &reason, &child_rpath)?;
                    if let Some(flags) = res.cache_only {
                        self.facts
                            .cache_entries
                            .push((soname.clone(), res.path.clone(), flags));
                    }
                    if soname == "libc.so.6" {
                        self.add_glibc_pieces(&res.path, info.kind)?;
                    }
                }
                None => self.missing(soname, &p.path, &info, false),
            }
        }
        for note in &info.dlopen {
            let found = note.sonames.iter().find_map(|s| {
                self.resolver(info.kind)
                    .resolve(s, &p.path, &info, &p.inherited_rpath)
            });
            match found {
                Some(res) => {
                    let reason = format!("dlopen note of {who} ({})", note.priority);
                    self.take(
                        &res.path,
                        &res.variants,
                        LayerRole::Deps,
                        &reason,
                        &child_rpath,
                    )?;
                }
                None => {
                    let optional = note.priority != "required";
                    self.missing(&note.sonames.join("|"), &p.path, &info, optional);
                }
            }
        }
        if info.uses_iconv && !self.gconv_done {
            self.add_gconv(&who, info.kind)?;
        }
        Ok(())
    }

    /// glibc's dlopened pieces that live beside libc: the whole fixed set, so the `libc` layer
    /// does not depend on which of them this app happens to link.
    fn add_glibc_pieces(&mut self, libc: &Path, kind: ElfKind) -> Result<(), PackError> {
        let dir = libc.parent().unwrap_or(Path::new("/")).to_path_buf();
        if !self.glibc_dirs.insert(dir.clone()) {
            return Ok(());
        }
        for name in GLIBC_SONAMES {
            let p = dir.join(name);
            if kind_of(&p) == Some(kind) {
                self.take(
                    &p,
                    &[],
                    LayerRole::Libc,
                    "glibc run-time piece (NSS, dlopened helpers)",
                    &[],
                )?;
            }
        }
        Ok(())
    }

    /// glibc's gconv modules, for programs that call `iconv_open`.
    fn add_gconv(&mut self, who: &str, kind: ElfKind) -> Result<(), PackError> {
        self.gconv_done = true;
        let Some(ma) = kind.multiarch() else {
            return Ok(());
        };
        for dir in [
            format!("/usr/lib/{ma}/gconv"),
            "/usr/lib64/gconv".into(),
            "/usr/lib/gconv".into(),
        ] {
            let dir = PathBuf::from(dir);
            if dir.is_dir() {
                let real = self.set.add_path(
                    &dir,
                    LayerRole::Deps,
                    &format!("gconv modules: iconv_open used by {who}"),
                )?;
                return self.set.add_tree(
                    &real,
                    LayerRole::Deps,
                    &format!("gconv modules: iconv_open used by {who}"),
                );
            }
        }
        Ok(())
    }
}
