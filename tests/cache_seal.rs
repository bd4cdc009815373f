//! End to end, the sealed layer cache ("verify once, then trust cheaply"): a warm start checks
//! one stamp per layer and decodes no TOC (strace shows no look-up below a cached tree and no
//! thread; a bundle whose TOC blobs are damaged still starts while its layers' seals hold, and
//! is refused as soon as a TOC is needed); a lost stamp over an intact tree is re-sealed after
//! the full check, without unpacking; a lost stamp plus an edited file, or an entry removed at
//! a tree's top, is caught and replaced; an installed layer whose seal and contents are damaged
//! is refused naming it, and listing or starting an installed app reads no TOC; a killed unpack
//! never leaves a seal on a partial tree. A layer built from loose files (`LayerCache::build`,
//! what a repository update does) is checked file by file against its real TOC and sealed; one
//! wrong byte refuses it and leaves nothing.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn layers_of(iso: &Isolated) -> PathBuf {
    iso.path().join("cache/capsa/layers")
}

/// The cache entries (`layers/<digest>`), staging and trash left out.
fn entries(layers: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(layers)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The entry whose tree has `rel`.
fn entry_with(layers: &Path, rel: &str) -> PathBuf {
    entries(layers)
        .into_iter()
        .find(|e| e.join("tree").join(rel).symlink_metadata().is_ok())
        .unwrap_or_else(|| panic!("{rel} is in no cached tree"))
}

const HELLO_BIN: &str = "usr/local/bin/capsa-hello";

fn run_hello(iso: &Isolated, bundle: &Path) -> Output {
    iso.run(&["run", "--report", bundle.to_str().unwrap()])
}

/// Runs `bundle` and asserts the app ran; returns the report and output.
fn hello_ok(iso: &Isolated, bundle: &Path) -> String {
    let o = run_hello(iso, bundle);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("hello from capsa"),
        "{}",
        text(&o)
    );
    text(&o)
}

fn assert_cached(report: &str, ctx: &str) {
    assert!(
        report.contains("layers (cached)") && !report.contains("unpacked now"),
        "{ctx}: not a plain cache hit:\n{report}"
    );
}

/// Entries below `dir`, `dir` itself left out, symlinks not followed.
fn count_entries(dir: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(dir).unwrap().flatten() {
        n += 1;
        if e.file_type().unwrap().is_dir() {
            n += count_entries(&e.path());
        }
    }
    n
}

/// The `entries` line of a stamp.
fn stamp_entries(stamp: &Path) -> u64 {
    let text = fs::read_to_string(stamp).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("entries "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in {}: {text:?}", stamp.display()))
}

/// A copy of `bundle` with a byte of every layer's TOC blob flipped: the manifest (and so
/// the app, its signature state and its layers) is unchanged, but decoding a TOC fails.
fn with_damaged_tocs(bundle: &Path, out: &Path) -> PathBuf {
    let info = inspect_json(bundle);
    let stub = info["stub_size"].as_u64().unwrap();
    let mut bytes = fs::read(bundle).unwrap();
    for layer in info["manifest"]["layers"].as_array().unwrap() {
        let digest = layer["toc"]["digest"].as_str().unwrap();
        let size = layer["toc"]["size"].as_u64().unwrap() as usize;
        // Blobs are 4 KiB aligned from the payload's start, which follows the stub.
        let at = (stub as usize..bytes.len().saturating_sub(size))
            .step_by(4096)
            .find(|&at| bundle_format::Digest::of(&bytes[at..at + size]).to_string() == digest)
            .unwrap_or_else(|| panic!("TOC blob {digest} not found in {}", bundle.display()));
        bytes[at + size / 2] ^= 0x55;
    }
    let p = out.join("damaged-tocs.capsa");
    fs::write(&p, bytes).unwrap();
    p
}

/// What `strace` saw a warm start do below the cached trees: the traced calls whose path is
/// inside `layers/<digest>/tree/`, how many entries were opened for their seal, and whether a
/// thread was started.
struct Trace {
    below_trees: Vec<String>,
    seal_opens: usize,
    threads: usize,
}

fn trace_warm_start(iso: &Isolated, bundle: &Path) -> Trace {
    let out = iso.path().join("strace.out");
    let o = std::process::Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&out)
        .args([
            "-e",
            "trace=open,openat,openat2,stat,lstat,newfstatat,statx,clone,clone3",
        ])
        .arg(capsa_bin())
        .args(["run", bundle.to_str().unwrap()])
        .envs(iso.env())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "strace capsa run: {}", text(&o));
    let log = fs::read_to_string(&out).unwrap();
    let layers = format!("{}/", layers_of(iso).display());
    let mut t = Trace {
        below_trees: Vec::new(),
        seal_opens: 0,
        threads: 0,
    };
    for line in log.lines() {
        if line.contains("CLONE_THREAD") {
            t.threads += 1;
        }
        let Some(path) = line.split('"').nth(1) else {
            continue;
        };
        let Some(rest) = path.strip_prefix(&layers) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() > 2 && parts[1] == "tree" {
            t.below_trees.push(line.to_owned());
        } else if parts.len() == 1 && line.contains("O_PATH") {
            t.seal_opens += 1;
        }
    }
    t
}

#[test]
fn a_warm_start_checks_only_the_seals_and_decodes_no_toc() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let bundle = hello_bundle();
    let first = hello_ok(&iso, bundle);
    assert!(first.contains("unpacked now"), "{first}");
    let n_layers = entries(&layers_of(&iso)).len();
    assert!(
        n_layers >= 2,
        "the hello sample has its app and its libraries"
    );

    if have_strace() {
        let t = trace_warm_start(&iso, bundle);
        assert!(
            t.below_trees.is_empty(),
            "a warm start looked below the cached trees {} times:\n{}",
            t.below_trees.len(),
            t.below_trees.join("\n")
        );
        assert_eq!(t.seal_opens, n_layers, "one open per layer for its seal");
        assert_eq!(t.threads, 0, "a warm start starts no thread");
    }

    // Same manifest, damaged TOC blobs: the seals hold, so no TOC is decoded and it starts.
    let damaged = with_damaged_tocs(bundle, iso.path());
    assert_cached(&hello_ok(&iso, &damaged), "damaged TOCs, seals holding");
    // Once a seal does not hold, the TOC is needed, decoded and its digest checked: refused.
    let stamp = entry_with(&layers_of(&iso), HELLO_BIN).join("sealed");
    fs::remove_file(&stamp).unwrap();
    let o = run_hello(&iso, &damaged);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(
        text(&o).contains("table of contents") && text(&o).contains("damaged-tocs.capsa"),
        "{}",
        text(&o)
    );
    assert!(!stamp.exists(), "nothing was sealed from a damaged bundle");
    // The sound bundle checks the tree in full and seals it again.
    assert_cached(
        &hello_ok(&iso, bundle),
        "the sound bundle after a lost stamp",
    );
    assert!(stamp.is_file());
}

#[test]
fn a_lost_stamp_over_an_intact_tree_is_resealed_without_unpacking() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let bundle = hello_bundle();
    hello_ok(&iso, bundle);
    let layers = layers_of(&iso);
    let bin = entry_with(&layers, HELLO_BIN).join("tree").join(HELLO_BIN);
    let ino = fs::metadata(&bin).unwrap().ino();
    let stamps: Vec<PathBuf> = entries(&layers).iter().map(|e| e.join("sealed")).collect();
    let before: Vec<String> = stamps
        .iter()
        .map(|s| fs::read_to_string(s).unwrap())
        .collect();
    for s in &stamps {
        fs::remove_file(s).unwrap();
    }
    assert_cached(&hello_ok(&iso, bundle), "stamps lost, trees intact");
    assert_eq!(
        fs::metadata(&bin).unwrap().ino(),
        ino,
        "the tree was kept, not unpacked again"
    );
    for (s, old) in stamps.iter().zip(&before) {
        let new = fs::read_to_string(s).unwrap_or_else(|_| panic!("{} not resealed", s.display()));
        // The same layer, TOC, entries and directories; the tree's ctime as it is now.
        let head = |t: &str| t.lines().take(5).collect::<Vec<_>>().join("\n");
        assert_eq!(head(&new), head(old), "{}", s.display());
    }
    assert_cached(&hello_ok(&iso, bundle), "after resealing");
}

#[test]
fn a_lost_stamp_and_an_edited_file_are_caught_and_replaced() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let bundle = hello_bundle();
    hello_ok(&iso, bundle);
    let entry = entry_with(&layers_of(&iso), HELLO_BIN);
    let bin = entry.join("tree").join(HELLO_BIN);
    let original = fs::read(&bin).unwrap();
    // Same size, same mode and mtime: only the bytes (and the inode's ctime) differ.
    let mtime = fs::metadata(&bin).unwrap().modified().unwrap();
    let mut evil = original.clone();
    let mid = evil.len() / 2;
    evil[mid..mid + 8].copy_from_slice(b"tampered");
    fs::write(&bin, &evil).unwrap();
    let f = fs::File::options().write(true).open(&bin).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    fs::remove_file(entry.join("sealed")).unwrap();
    let report = hello_ok(&iso, bundle);
    assert!(
        report.contains("1 unpacked now, a damaged cache entry was replaced"),
        "{report}"
    );
    assert_eq!(fs::read(&bin).unwrap(), original);
    assert!(entry.join("sealed").is_file());
}

#[test]
fn an_entry_removed_at_a_trees_top_is_caught_and_replaced() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let bundle = hello_bundle();
    hello_ok(&iso, bundle);
    // The libraries' layer has `lib64 -> usr/lib64` at its top; a cleaner removes it.
    let entry = entry_with(&layers_of(&iso), "lib64");
    let link = entry.join("tree/lib64");
    let target = fs::read_link(&link).unwrap();
    fs::remove_file(&link).unwrap();
    let report = hello_ok(&iso, bundle);
    assert!(
        report.contains("1 unpacked now, a damaged cache entry was replaced"),
        "{report}"
    );
    assert_eq!(fs::read_link(&link).unwrap(), target);
    assert_cached(&hello_ok(&iso, bundle), "after the repair");
}

const HELLO_ID: &str = "org.capsa.Hello";

fn installed_hello() -> StoreEnv {
    let env = StoreEnv::new();
    env.install(hello_bundle());
    let o = env.run(&["run", HELLO_ID]);
    assert!(o.status.success(), "{}", text(&o));
    env
}

#[test]
fn an_installed_layer_with_a_broken_seal_is_checked_and_refused_when_damaged() {
    if !userns() {
        return;
    }
    let env = installed_hello();
    let layers = env.store().join("layers");
    let entry = entry_with(&layers, HELLO_BIN);
    let stamp = entry.join("sealed");
    // A lost stamp over an intact tree: checked in full, sealed again, started.
    fs::remove_file(&stamp).unwrap();
    let o = env.run(&["run", HELLO_ID]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stamp.is_file(), "the installed layer is sealed again");
    // A lost stamp and a removed file: refused, naming the layer; nothing is repaired.
    fs::remove_file(&stamp).unwrap();
    fs::remove_file(entry.join("tree").join(HELLO_BIN)).unwrap();
    let o = env.run(&["run", HELLO_ID]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    let want = format!(
        "installed layer {} is missing or was modified: reinstall the app",
        entry.display()
    );
    assert!(text(&o).contains(&want), "{}", text(&o));
    assert!(!stamp.exists());
    // An entry added at the top of another layer's tree breaks its seal the same way.
    let libs = entry_with(&layers, "lib64");
    fs::write(libs.join("tree/stray"), b"").unwrap();
    let o = env.run(&["run", HELLO_ID]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
}

#[test]
fn listing_and_starting_an_installed_app_read_no_toc() {
    if !userns() {
        return;
    }
    let env = installed_hello();
    let current = env.app_dir(HELLO_ID).join("current");
    let release = env.app_dir(HELLO_ID).join(fs::read_link(&current).unwrap());
    for toc in fs::read_dir(&release).unwrap().flatten() {
        if toc.file_name().to_string_lossy().starts_with("toc-") {
            fs::write(toc.path(), b"not a table of contents").unwrap();
        }
    }
    assert_eq!(env.list().get(HELLO_ID).map(String::as_str), Some("1.0"));
    assert_eq!(env.info(HELLO_ID)["version"], "1.0");
    let o = env.run(&["run", HELLO_ID]);
    assert!(o.status.success(), "the seals hold: {}", text(&o));
    // What needs the TOCs still reads and checks them.
    let o = env.run(&["diff", HELLO_ID]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("is damaged"), "{}", text(&o));
}

#[test]
fn a_killed_unpack_never_leaves_a_seal_on_a_partial_tree() {
    if !userns() {
        return;
    }
    let bundle = python_bundle().to_str().unwrap().to_owned();
    for delay in [0u64, 5, 30, 150] {
        let iso = Isolated::new();
        let layers = layers_of(&iso);
        let mut child = iso
            .capsa(&["run", &bundle, "--", "-c", "pass"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let staging = || {
            fs::read_dir(&layers)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        };
        while !staging() && start.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        child.wait().unwrap();
        // Whatever was left, an entry (not a staging directory) is whole and sealed.
        for entry in entries(&layers) {
            let stamp = entry.join("sealed");
            assert!(
                stamp.is_file(),
                "delay {delay} ms: {} has no stamp",
                entry.display()
            );
            assert_eq!(
                count_entries(&entry.join("tree")),
                stamp_entries(&stamp),
                "delay {delay} ms: a sealed partial tree in {}",
                entry.display()
            );
        }
        let o = iso.run(&["run", &bundle, "--", "-c", "import json; print('ok')"]);
        assert!(o.status.success(), "delay {delay} ms: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
    }
}

/// A source over the files of an extracted bundle, with one byte of `evil` (if any) flipped.
fn loose_files<'a>(
    root: &'a Path,
    evil: Option<&'a str>,
) -> impl FnMut(
    &bundle_format::TocEntry,
) -> Result<Box<dyn std::io::Read + 'static>, userdata::DataError>
       + 'a {
    move |e| {
        let mut bytes = fs::read(e.path.under(root)).unwrap();
        if evil == Some(e.path.as_str()) {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 1;
        }
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }
}

#[test]
fn a_layer_built_from_loose_files_is_checked_against_its_toc_and_sealed() {
    use userdata::cache::{CacheOutcome, LayerCache};
    let bundle = hello_bundle();
    let files = extract(bundle, "loose-files");
    let b = bundle_format::Bundle::open(bundle).unwrap();
    let tocs = b.tocs().unwrap();
    let layers = &b.manifest().layers;
    let dir = tempfile::tempdir().unwrap();

    // One wrong byte in the app's binary: refused naming the file, and nothing is left.
    let (app, app_toc) = layers
        .iter()
        .zip(&tocs)
        .find(|(_, t)| t.entries.iter().any(|e| e.path.as_str() == HELLO_BIN))
        .unwrap();
    let evil = LayerCache::new(dir.path().join("evil")).unwrap();
    let r = evil.build(app, app_toc, &mut loose_files(&files, Some(HELLO_BIN)));
    match r {
        Err(userdata::DataError::Content(m)) => assert_eq!(m.path, format!("/{HELLO_BIN}")),
        other => panic!("one wrong byte was not refused: {other:?}"),
    }
    let left: Vec<_> = fs::read_dir(evil.dir()).unwrap().flatten().collect();
    assert!(left.is_empty(), "a refused build left {left:?}");
    assert!(evil.sealed(app).is_err());

    // From the sound files: every layer built, its seal holding, the tree as the TOC says.
    let cache = LayerCache::new(dir.path().join("layers")).unwrap();
    for (layer, toc) in layers.iter().zip(&tocs) {
        let (tree, outcome) = cache
            .build(layer, toc, &mut loose_files(&files, None))
            .unwrap();
        assert_eq!(outcome, CacheOutcome::Unpacked, "{}", layer.role.as_str());
        assert_eq!(cache.sealed(layer), Ok(()));
        assert!(userdata::cache::verify::by_content(&tree, toc).is_some());
        let stamp = fs::read_to_string(tree.with_file_name("sealed")).unwrap();
        assert!(
            stamp.contains(&format!("\ntoc {}\n", layer.toc.digest)),
            "{stamp}"
        );
    }
    // They are what unpacking the bundle gives: every layer a hit, nothing unpacked.
    let hits = cache
        .ensure_all(
            &b,
            || -> Result<&[bundle_format::Toc], userdata::DataError> {
                panic!("the TOCs were asked for although every seal holds")
            },
        )
        .unwrap();
    assert!(hits.iter().all(|(_, o)| *o == CacheOutcome::Hit));
}
