//! `pack`: recipe → capture set → closure → layer plans → layer blobs → manifest → bundle file.
//! Layer blobs are streamed into temporary files beside the output (never held in memory)
//! and the bundle is renamed into place only when complete.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bundle_format::layer::compress_meta;
use bundle_format::manifest::{Desktop, LAYER_MEDIA_TYPE, SCHEMA};
use bundle_format::{
    canonical, BlobData, BlobRef, BundlePath, Compression, Digest, Layer, LayerRole, LayerWriter,
    Manifest, Requires, SecretKey,
};
use serde::Serialize;

use crate::capture::{CaptureSet, ItemKind};
use crate::closure::Closure;
use crate::error::PackError;
use crate::layers::{file_role, plan, LayerPlan, Planned};
use crate::ldcache::LdCache;
use crate::origin::Origin;
use crate::recipe::Recipe;

/// Options beyond the recipe.
pub struct PackOptions {
    /// Output file; default `<id>-<version>.capsa` in the current directory.
    pub output: Option<PathBuf>,
    pub compression: Compression,
    pub sign: Vec<SecretKey>,
    /// Accept every unresolved library.
    pub allow_missing: bool,
    /// `SOURCE_DATE_EPOCH`: the manifest's `created` and the newest mtime stored.
    pub source_date_epoch: Option<u64>,
    /// Written into the manifest's `generator`.
    pub generator: String,
    /// The loader cache to resolve with; default `/etc/ld.so.cache`.
    pub ld_cache: Option<PathBuf>,
    /// The program that starts traced commands (`capsa __trace-exec --`); a recipe with
    /// `trace` fails without one.
    pub trace_helper: Option<crate::traced::TraceHelper>,
}

/// Receives progress while packing: the bytes of the layers' tar streams zstd has compressed
/// (not merely read: at high levels most of the time is spent after the last file was read),
/// of about `total_bytes` in all.
pub trait Progress {
    fn start(&mut self, _total_bytes: u64) {}
    /// The bytes compressed so far (it only grows).
    fn compressed(&mut self, _bytes: u64) {}
    fn finish(&mut self) {}
}

/// A progress sink that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// One line of the capture report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportEntry {
    pub path: String,
    pub layer: &'static str,
    /// The capture stages that brought the file, typed.
    pub origins: Vec<Origin>,
    pub reasons: Vec<String>,
    /// The dpkg package that owns the file on the packing host, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

/// Why each file is in, and what was noticed on the way (stored in the bundle).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub files: Vec<ReportEntry>,
    pub warnings: Vec<String>,
    pub allowed_missing: Vec<String>,
    /// The traced commands and how they ended.
    pub traces: Vec<crate::traced::TraceRun>,
    /// Paths the traced commands used that were left out, and why.
    pub skipped: Vec<crate::traced::Skipped>,
    /// Paths the traced commands looked for and did not find.
    pub missing: Vec<String>,
}

/// The result of a pack.
pub struct Packed {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub manifest_digest: Digest,
    pub report: Report,
    pub file_size: u64,
}

fn arch_of(facts: &crate::closure::ClosureFacts) -> Result<String, PackError> {
    let mut arches: Vec<&str> = facts.kinds.iter().filter_map(|k| k.arch()).collect();
    arches.sort_unstable();
    arches.dedup();
    match arches.as_slice() {
        [] => Ok(std::env::consts::ARCH.to_owned()),
        [one] => Ok((*one).to_owned()),
        many => Err(PackError::MixedArch(many.join(", "))),
    }
}

/// Captures everything the recipe asks for, with the closure (no tracing: a recipe with
/// `trace` fails; see [`capture_traced`]).
pub fn capture(
    recipe: &Recipe,
    allow_missing: bool,
    ld_cache: &Path,
) -> Result<(CaptureSet, crate::closure::ClosureFacts), PackError> {
    capture_traced(recipe, allow_missing, ld_cache, None).map(|(s, f, _)| (s, f))
}

/// What [`capture_traced`] gives: the set, the closure's facts, the trace stage's outcome.
pub type Captured = (
    CaptureSet,
    crate::closure::ClosureFacts,
    crate::traced::TraceOutcome,
);

/// Captures everything the recipe asks for, tracing its `trace` commands with `helper`,
/// widening by units, with the closure.
pub fn capture_traced(
    recipe: &Recipe,
    allow_missing: bool,
    ld_cache: &Path,
    helper: Option<&crate::traced::TraceHelper>,
) -> Result<Captured, PackError> {
    let mut set = CaptureSet::new(&recipe.capture.exclude)?;
    check_not_provided(recipe)?;
    set.origin = Origin::Listed;
    for b in &recipe.capture.binaries {
        let real = set.add_path(Path::new(b), LayerRole::App, "recipe binary")?;
        if !crate::capture::looks_like_elf(&real) {
            return Err(PackError::Capture {
                path: b.into(),
                problem: "is not an ELF program (list scripts under capture.paths)".into(),
            });
        }
        set.enqueue(&real, Vec::new(), true);
    }
    for p in &recipe.capture.paths {
        let reason = format!("listed path {p}");
        let real = set.add_path(Path::new(p), LayerRole::App, &reason)?;
        if real.is_dir() {
            set.add_tree(&real, LayerRole::App, &reason)?;
        } else {
            set.enqueue(&real, Vec::new(), false);
        }
    }
    for (dst, src) in &recipe.capture.files {
        let source = recipe.host_path(src);
        set.add_file(
            Path::new(dst),
            &source,
            LayerRole::App,
            &format!("recipe file from {}", source.display()),
        )?;
        if crate::capture::looks_like_elf(&source) {
            set.queue.push_back(crate::capture::Pending {
                path: dst.into(),
                source,
                inherited_rpath: Vec::new(),
                required: true,
            });
        }
    }
    set.origin = Origin::Trace {
        command: String::new(),
    };
    let traced = crate::traced::stage(&mut set, recipe, helper)?;
    // Origin::Package { name } is set for each package inside the stage.
    crate::dpkg::add_packages(&mut set, recipe)?;
    // Hits are what the recipe, its packages and its traces brought, not the base (whose
    // terminfo entries and locale must not pull in whole folders).
    set.origin = Origin::Unit {
        name: String::new(),
    };
    widen_units(&mut set, recipe, &traced.hits)?;
    if recipe.capture.base {
        set.origin = Origin::Base;
        crate::base::add(&mut set)?;
    }
    set.origin = Origin::Closure;
    let path_env = recipe
        .app
        .env
        .get("PATH")
        .map_or(crate::shebang::DEFAULT_PATH, String::as_str);
    crate::shebang::add_interpreters(&mut set, path_env)?;
    let cache = LdCache::load(ld_cache)?;
    let library_path: Vec<PathBuf> = recipe
        .app
        .env
        .get("LD_LIBRARY_PATH")
        .map(|v| {
            v.split(':')
                .filter(|s| s.starts_with('/'))
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let facts = {
        let mut closure = Closure::new(
            &mut set,
            cache,
            library_path,
            &recipe.capture.allow_missing,
            allow_missing,
        );
        closure.run()?;
        closure.facts
    };
    if !facts.unresolved.is_empty() {
        return Err(PackError::Unresolved(facts.unresolved));
    }
    Ok((set, facts, traced))
}

/// The widening stage: every captured path so far and every traced hit is a hit; the
/// recipe's `units` are taken whole, its `no-units` never.
fn widen_units(set: &mut CaptureSet, recipe: &Recipe, traced: &[PathBuf]) -> Result<(), PackError> {
    let c = &recipe.capture;
    let units = crate::units::resolve(&c.unit, &c.units, &c.no_units)?;
    let mut hits: Vec<PathBuf> = set.items.keys().map(|k| k.to_absolute()).collect();
    hits.extend(traced.iter().cloned());
    hits.sort();
    hits.dedup();
    let plan = crate::units::widen::plan(&units, &hits, &c.units, &c.no_units);
    let places = crate::traced::Places::of_host(recipe);
    crate::units::widen::apply(set, &plan, &places);
    Ok(())
}

/// A path the recipe lists explicitly must not be one the sandbox provides.
fn check_not_provided(recipe: &Recipe) -> Result<(), PackError> {
    let c = &recipe.capture;
    let listed = c.binaries.iter().chain(&c.paths).chain(c.files.keys());
    match listed
        .into_iter()
        .find(|p| crate::provided::is_provided(Path::new(p)))
    {
        Some(p) => Err(PackError::Provided(p.clone())),
        None => Ok(()),
    }
}

/// Packs the app described by `recipe`.
pub fn pack(
    recipe: &Recipe,
    opts: &PackOptions,
    progress: &mut dyn Progress,
) -> Result<Packed, PackError> {
    let ld_cache = opts
        .ld_cache
        .clone()
        .unwrap_or_else(|| PathBuf::from("/etc/ld.so.cache"));
    let (mut set, facts, traced) = capture_traced(
        recipe,
        opts.allow_missing,
        &ld_cache,
        opts.trace_helper.as_ref(),
    )?;
    let in_bundle = |p: &str| {
        BundlePath::from_host(Path::new(p))
            .ok()
            .and_then(|k| set.items.get(&k))
    };
    let command = &recipe.app.command[0];
    if !set
        .resolve(Path::new(command))
        .is_some_and(|i| matches!(i.kind, ItemKind::File { .. }))
    {
        return Err(PackError::CommandNotCaptured(command.clone()));
    }
    let icon = recipe.desktop.as_ref().and_then(|d| d.icon.clone());
    if let Some(icon) = &icon {
        match in_bundle(icon).map(|i| &i.kind) {
            Some(ItemKind::File { source, size, .. }) => check_icon(icon, source, *size)?,
            _ => return Err(PackError::IconNotCaptured(icon.clone())),
        }
    }
    let out = opts.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!("{}-{}.capsa", recipe.app.id, recipe.app.version))
    });
    let out_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let tmp = tempfile::Builder::new()
        .prefix(".capsa-pack-")
        .tempdir_in(&out_dir)
        .map_err(PackError::Temp)?;
    let created = opts.source_date_epoch.unwrap_or(0);
    if recipe.capture.base {
        crate::base::add_generated(&mut set, &facts, &ld_cache, tmp.path(), created)?;
    } else if !facts.cache_entries.is_empty() {
        add_loader_cache(&mut set, &facts.cache_entries, tmp.path(), created)?;
    }
    let plans = plan(&set.items)?;
    progress.start(plans.iter().map(|p| p.tar_size_estimate()).sum());

    // Layers are independent: write them at once (a layer below zstd's job size, 4 windows,
    // is one job, so this is what keeps every core busy). From level 17 up, zstd's match
    // tables take over 100 MiB a layer: write those one after another, to keep memory flat.
    // The output does not depend on it.
    // Each layer's writer publishes its counter of bytes compressed here.
    let counters: Vec<OnceLock<Arc<AtomicU64>>> = plans.iter().map(|_| OnceLock::new()).collect();
    let compressed = || -> u64 {
        counters
            .iter()
            .filter_map(|c| c.get())
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    };
    let at_once = if opts.compression.level >= 17 {
        1
    } else {
        plans.len().max(1)
    };
    let mut results: Vec<Result<WrittenLayer, PackError>> = Vec::new();
    for (batch, slots) in plans.chunks(at_once).zip(counters.chunks(at_once)) {
        results.extend(std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .zip(slots)
                .map(|(lp, slot)| scope.spawn(|| write_layer(lp, tmp.path(), opts, created, slot)))
                .collect();
            while !handles.iter().all(|h| h.is_finished()) {
                progress.compressed(compressed());
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            handles
                .into_iter()
                .map(|h| h.join().expect("layer writer panicked"))
                .collect::<Vec<_>>()
        }));
    }
    progress.compressed(compressed());
    let mut layers = Vec::new();
    let mut blobs: Vec<(Digest, BlobData)> = Vec::new();
    for r in results {
        let (layer, layer_blobs) = r?;
        layers.push(layer);
        blobs.extend(layer_blobs);
    }

    let owners = match crate::dpkg::Dpkg::open(Path::new("/")) {
        Ok(db) => Some(db),
        Err(crate::dpkg::DpkgError::NoDatabase { .. }) => None,
        Err(e) => {
            set.warnings
                .push(format!("the report names no packages: {e}"));
            None
        }
    };
    let report = Report {
        files: set
            .items
            .iter()
            .filter(|(_, i)| !matches!(i.kind, ItemKind::Dir))
            .map(|(k, i)| ReportEntry {
                path: k.to_string(),
                layer: match i.kind {
                    ItemKind::File { .. } => file_role(i).as_str(),
                    _ => i
                        .roles
                        .iter()
                        .next()
                        .copied()
                        .unwrap_or(LayerRole::App)
                        .as_str(),
                },
                origins: i.origins.iter().cloned().collect(),
                reasons: i.reasons.clone(),
                package: owners
                    .as_ref()
                    .and_then(|db| db.owner(&k.to_absolute()))
                    .map(str::to_owned),
            })
            .collect(),
        warnings: set.warnings.clone(),
        allowed_missing: facts.allowed_missing.clone(),
        traces: traced.runs,
        skipped: traced.skipped,
        missing: traced.missing,
    };
    let report_bytes = compress_meta(
        &canonical::to_vec(&report).map_err(|e| bundle_format::Error::Compose(e.to_string()))?,
    );
    let report_ref = BlobRef {
        digest: Digest::of(&report_bytes),
        size: report_bytes.len() as u64,
    };
    blobs.push((report_ref.digest, BlobData::Bytes(report_bytes)));

    let manifest = Manifest {
        schema: SCHEMA,
        id: recipe.app.id.clone(),
        name: recipe.app.name.clone(),
        version: recipe.app.version.clone(),
        arch: arch_of(&facts)?,
        created,
        command: recipe.app.command.clone(),
        env: recipe.app.env.clone(),
        workdir: recipe.app.workdir.clone(),
        permissions: recipe.permissions()?,
        desktop: recipe.desktop.as_ref().map(|d| Desktop {
            name: d.name.clone(),
            comment: d.comment.clone(),
            icon: icon
                .as_deref()
                .and_then(|i| BundlePath::from_host(Path::new(i)).ok()),
            categories: d.categories.clone(),
            mime_types: d.mime_types.clone(),
            terminal: d.terminal,
            mime_definitions: d
                .mime_definitions
                .iter()
                .map(|m| bundle_format::manifest::MimeDefinition {
                    mime_type: m.mime_type.clone(),
                    comment: m.comment.clone(),
                    globs: m.globs.clone(),
                })
                .collect(),
        }),
        requires: Requires {
            glibc: facts
                .max_glibc
                .as_ref()
                .map(|v| v.trim_start_matches("GLIBC_").to_owned()),
            kernel: facts.min_kernel.map(|(a, b, c)| format!("{a}.{b}.{c}")),
            features: Vec::new(),
        },
        layers,
        report: Some(report_ref),
        generator: opts.generator.clone(),
    };
    let signatures = bundle_format::writer::sign_all(&manifest, &opts.sign)?;
    bundle_format::write_bundle(&out, &manifest, &blobs, &signatures)?;
    progress.finish();
    let file_size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let manifest_digest = Digest::of(&manifest.to_bytes().map_err(bundle_format::Error::from)?);
    Ok(Packed {
        path: out,
        manifest,
        manifest_digest,
        report,
        file_size,
    })
}

/// The bundle has no host `/etc/ld.so.cache`, so libraries the host's cache found outside the
/// loader's default directories (`/usr/local/lib`, `ld.so.conf.d` entries) need a cache of
/// the bundle's own: generated here, at `/etc/ld.so.cache` in the `app` layer.
fn add_loader_cache(
    set: &mut CaptureSet,
    entries: &[(String, PathBuf, i32)],
    tmp: &Path,
    created: u64,
) -> Result<(), PackError> {
    let flags = entries[0].2;
    let list: Vec<(String, PathBuf)> = entries
        .iter()
        .map(|(s, p, _)| (s.clone(), p.clone()))
        .collect();
    let bytes = crate::ldcache::write(&list, flags);
    let source = tmp.join("ld.so.cache");
    std::fs::write(&source, &bytes).map_err(PackError::Temp)?;
    let key = BundlePath::new("etc/ld.so.cache").expect("valid path");
    if set.items.contains_key(&key) {
        return Err(PackError::Capture {
            path: key.to_absolute(),
            problem: "is captured, but the bundle needs a generated loader cache there".into(),
        });
    }
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    set.items.insert(
        key,
        crate::capture::Item {
            kind: ItemKind::File {
                source,
                executable: false,
                size: bytes.len() as u64,
                mtime: created,
                inode: (u64::MAX, 0),
            },
            roles: [LayerRole::App].into(),
            reasons: vec![format!("generated loader cache for {}", names.join(", "))],
            origins: [Origin::Generated].into(),
        },
    );
    Ok(())
}

/// A layer written to disk: its manifest entry and its blobs (layer and TOC).
type WrittenLayer = (Layer, Vec<(Digest, BlobData)>);

/// Writes one planned layer into `dir`; returns its manifest entry and its two blobs (TOC and
/// layer). The writer's counter of bytes compressed goes into `progress`, for the bar.
fn write_layer(
    lp: &LayerPlan,
    dir: &Path,
    opts: &PackOptions,
    created: u64,
    progress: &OnceLock<Arc<AtomicU64>>,
) -> Result<WrittenLayer, PackError> {
    let name = lp.role.as_str();
    let werr = |source| PackError::WriteLayer {
        layer: name,
        source,
    };
    let blob_path = dir.join(format!("{name}.tar.zst"));
    let file = File::create(&blob_path).map_err(werr)?;
    // Headers and padding: at most a few 512-byte blocks an entry (long names, links).
    let expected = lp.content_size() + lp.entries.len() as u64 * 2048 + 1024;
    let mut w = LayerWriter::for_size(file, opts.compression, created, expected).map_err(werr)?;
    let _ = progress.set(w.compressed());
    for (path, entry) in &lp.entries {
        match entry {
            Planned::Dir => w.add_dir(path).map_err(werr)?,
            Planned::Symlink { target } => w.add_symlink(path, target).map_err(werr)?,
            Planned::Hardlink { target } => w.add_hardlink(path, target).map_err(werr)?,
            Planned::File {
                source,
                executable,
                size,
                mtime,
            } => {
                let read_err = |e| PackError::ReadSource {
                    path: source.clone(),
                    source: e,
                };
                let f = File::open(source).map_err(read_err)?;
                let mtime = opts
                    .source_date_epoch
                    .map_or(*mtime, |sde| (*mtime).min(sde));
                w.add_file_at(path, *executable, mtime, *size, f)
                    .map_err(read_err)?;
            }
        }
    }
    let (file, stats, toc) = w.finish()?;
    file.sync_all().map_err(werr)?;
    let toc_bytes = compress_meta(&toc.to_canonical());
    let toc_ref = BlobRef {
        digest: Digest::of(&toc_bytes),
        size: toc_bytes.len() as u64,
    };
    let layer = Layer {
        role: lp.role,
        media_type: LAYER_MEDIA_TYPE.into(),
        digest: stats.digest,
        size: stats.size,
        diff_id: stats.diff_id,
        tar_size: stats.tar_size,
        entries: toc.entries.len() as u64,
        unpacked_size: toc.content_size(),
        toc: toc_ref,
    };
    Ok((
        layer,
        vec![
            (toc_ref.digest, BlobData::Bytes(toc_bytes)),
            (stats.digest, BlobData::File(blob_path)),
        ],
    ))
}

/// An icon must be a PNG or an SVG of at most 1 MiB (the desktop export copies it).
fn check_icon(icon: &str, source: &Path, size: u64) -> Result<(), PackError> {
    use std::io::Read;
    let bad = |problem: &str| PackError::Capture {
        path: icon.into(),
        problem: problem.into(),
    };
    if size > 1 << 20 {
        return Err(bad("icon is larger than 1 MiB"));
    }
    let mut head = [0u8; 512];
    let n = File::open(source)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| PackError::ReadSource {
            path: source.into(),
            source: e,
        })?;
    let head = &head[..n];
    let png = head.starts_with(b"\x89PNG\r\n\x1a\n") && icon.ends_with(".png");
    let svg = icon.ends_with(".svg") && String::from_utf8_lossy(head).contains("<svg");
    if !png && !svg {
        return Err(bad("icon is not a PNG (.png) or SVG (.svg) image"));
    }
    Ok(())
}

/// Environment helper: `SOURCE_DATE_EPOCH` as a number, if set and valid.
pub fn source_date_epoch_from_env() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

/// Groups report lines by layer (for `--explain`).
pub fn report_by_layer(report: &Report) -> BTreeMap<&'static str, Vec<&ReportEntry>> {
    let mut m: BTreeMap<&'static str, Vec<&ReportEntry>> = BTreeMap::new();
    for e in &report.files {
        m.entry(e.layer).or_default().push(e);
    }
    m
}
