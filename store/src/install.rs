//! `install` and `uninstall`, crash-safe and serialized by the store lock.
//!
//! Install order: verify every byte of the bundle (a layer whose tree the store has sealed
//! for the manifest's layer and TOC digests is not read: a bundle file may have a hole in its
//! place); unpack its layers into `layers/` (each staged and renamed); write the release
//! (staged, synced, renamed into `releases/<manifest-digest>`); switch `previous`, then
//! `current` (rename of a symlink); export the desktop files; collect garbage. A kill at any point leaves the old state or the
//! new one: `recover` (run first by every command that changes the store, and by the others
//! when the store is not marked clean) removes staging leftovers and unreferenced layers,
//! drops apps that never got a `current`, and re-syncs exports.
//!
//! Uninstall order: remove the exports; rename the app directory into trash (the atomic
//! step); delete the trash; collect garbage.

use std::fs;
use std::path::{Path, PathBuf};

use bundle_format::{Bundle, Manifest, PublicKey};
use userdata::cache::LayerCache;
use userdata::Publisher;

use crate::error::{io, StoreError};
use crate::export;
use crate::layout::{switch_link, write_atomic, Layout};
use crate::recover::{begin_change, begin_change_keeping, gc, mark_clean};
use crate::release::Release;

/// Options for `install`.
pub struct InstallOptions {
    pub trusted: Option<PublicKey>,
    /// Make the app the default handler of these MIME types (it must declare them).
    pub default_for: Vec<String>,
    /// The `capsa` executable written into desktop entries.
    pub exe: PathBuf,
}

/// What an install did.
#[derive(Debug)]
pub struct Installed {
    pub id: String,
    pub version: String,
    pub digest: String,
    /// The version it replaced, if any.
    pub replaced: Option<String>,
    /// The same release was installed already: nothing changed.
    pub unchanged: bool,
    pub exports: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// What the user is asked to agree to before an install.
pub struct Asking<'a> {
    pub manifest: &'a Manifest,
    pub publisher: &'a Publisher,
    /// The installed release this one replaces, if any (an update asks about what it adds).
    pub previous: Option<&'a Manifest>,
}

/// Installs the bundle at `path`; `confirm` sees what it asks for (to show its permissions
/// and publisher) and may refuse, which is [`StoreError::Cancelled`].
pub fn install(
    layout: &Layout,
    path: &Path,
    opts: &InstallOptions,
    confirm: &mut dyn FnMut(&Asking) -> bool,
) -> Result<Installed, StoreError> {
    let bundle_err = |source| StoreError::Bundle {
        path: path.to_path_buf(),
        source,
    };
    let bundle = Bundle::open(path).map_err(bundle_err)?;
    // Every byte that is used is checked: the fixed parts, TOCs and report here; each layer
    // by its digest below and again while it is unpacked, unless the store has its tree.
    let (signed, tocs) = bundle
        .verify_all_but_layers(opts.trusted.as_ref())
        .map_err(bundle_err)?;
    let publisher = Publisher::of_bundle(&bundle, &signed).unwrap_or(Publisher::Local);
    check_layer_blobs(layout, &bundle).map_err(|e| match e {
        Checked::Bundle(e) => bundle_err(e),
        Checked::Store(e) => e,
    })?;
    let m = bundle.manifest().clone();
    if m.arch != std::env::consts::ARCH {
        return Err(StoreError::Invalid(format!(
            "{} is for {}, this machine is {}",
            path.display(),
            m.arch,
            std::env::consts::ARCH
        )));
    }
    for t in &opts.default_for {
        if !m.desktop.as_ref().is_some_and(|d| d.mime_types.contains(t)) {
            return Err(StoreError::Invalid(format!(
                "--default-for {t}: {} does not declare that it opens {t}",
                m.id
            )));
        }
    }
    let previous = Release::current(layout, &m.id).ok();
    if let Some(p) = &previous {
        if p.publisher != publisher {
            return Err(StoreError::Publisher {
                id: m.id.clone(),
                installed: p.publisher.to_string(),
                new: publisher.to_string(),
            });
        }
    }
    let asking = Asking {
        manifest: &m,
        publisher: &publisher,
        previous: previous.as_ref().map(|p| &p.manifest),
    };
    if !confirm(&asking) {
        return Err(StoreError::Cancelled);
    }
    let _lock = layout.lock()?;
    // The bundle's layers that the store has (built there for this install, perhaps, and not
    // yet referenced by any release) survive the recovery's garbage collection.
    let layers: Vec<bundle_format::Digest> = m.layers.iter().map(|l| l.digest).collect();
    begin_change_keeping(layout, &opts.exe, &layers)?;

    let cache = LayerCache::new(layout.layers())?;
    // Layers unpack in parallel; each is staged and renamed on its own.
    let unpacked = cache.ensure_all(&bundle, || Ok::<_, userdata::DataError>(tocs.as_slice()));
    if let Err(e) = unpacked {
        // Contents that do not match their table of contents: nothing of this bundle stays.
        gc(layout)?;
        return Err(e.into());
    }
    let digest = bundle.manifest_digest();
    let app = layout.app(&m.id);
    let releases = app.join("releases");
    fs::create_dir_all(&releases).map_err(io(&releases))?;
    let release = releases.join(digest.hex());
    if !release.exists() {
        let staging = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&releases)
            .map_err(io(&releases))?;
        let write = |name: &str, bytes: &[u8]| -> Result<(), StoreError> {
            let p = staging.path().join(name);
            fs::write(&p, bytes).map_err(io(&p))?;
            fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(io(&p))
        };
        write("manifest.json", bundle.manifest_bytes())?;
        for (i, toc) in tocs.iter().enumerate() {
            write(&format!("toc-{i}.json"), &toc.to_canonical())?;
        }
        write(
            "signatures.json",
            &serde_json::to_vec(bundle.signatures()).expect("serializes"),
        )?;
        fs::rename(staging.path(), &release).map_err(io(&release))?;
        let _ = staging.keep();
    }
    let publisher_file = app.join(crate::release::PUBLISHER);
    match fs::read(&publisher_file) {
        Ok(b) if serde_json::from_slice::<Publisher>(&b).ok().as_ref() != Some(&publisher) => {
            return Err(StoreError::Publisher {
                id: m.id.clone(),
                installed: String::from_utf8_lossy(&b).into_owned(),
                new: publisher.to_string(),
            })
        }
        Ok(_) => {}
        Err(_) => write_atomic(
            &publisher_file,
            &serde_json::to_vec(&publisher).expect("serializes"),
            0o600,
        )?,
    }
    let current = app.join("current");
    let old = fs::read_link(&current).ok();
    let replaced = match &old {
        Some(o) => Release::read(&app.join(o), &m.id)
            .ok()
            .map(|r| r.manifest.version),
        None => None,
    };
    let rel_target = Path::new("releases").join(digest.hex());
    let unchanged = old.as_deref() == Some(rel_target.as_path());
    if !unchanged {
        switch(&app, &rel_target, old.as_deref())?;
    }
    let rel = Release::current(layout, &m.id)?;
    // What the user agreed to here holds for bundle files of the same identity too.
    let asked = userdata::Grants::from_list(&m.permissions.grants);
    let mut consent = userdata::consent::Record::load(&rel.identity())?;
    if !consent.missing(&asked).is_empty() {
        consent.allow(&asked, &digest);
        consent.save(&rel.identity())?;
    }
    let (exports, warnings) = export::sync_app(layout, &rel, &opts.exe)?;
    if !opts.default_for.is_empty() {
        export::set_defaults(&m.id, &opts.default_for)?;
    }
    gc(layout)?;
    mark_clean(layout)?;
    export::refresh_databases();
    Ok(Installed {
        unchanged,
        id: m.id.clone(),
        version: m.version.clone(),
        digest: digest.to_string(),
        replaced,
        exports,
        warnings,
    })
}

/// Why [`check_layer_blobs`] failed: the bundle, or the store.
enum Checked {
    Bundle(bundle_format::Error),
    Store(StoreError),
}

/// Every layer blob the install needs matches its digest before the store is touched
/// (hashing is cheap next to decompressing); its contents are checked while it is unpacked.
/// A layer whose tree the store already has, sealed for this very pair of layer digest and
/// TOC digest (the seal names both), is not read from the bundle at all: its tree is what the
/// manifest describes, whatever the bundle holds in its place (a repository update assembles
/// bundle files with holes where such layers' blobs would be). Should that seal stop holding
/// before the layer is used, it is unpacked from the bundle, which checks the blob first.
fn check_layer_blobs(layout: &Layout, bundle: &Bundle) -> Result<(), Checked> {
    let layers = &bundle.manifest().layers;
    // A store that does not exist yet is not created before the user agreed.
    let cache = match layout.layers().is_dir() {
        true => Some(LayerCache::new(layout.layers()).map_err(|e| Checked::Store(e.into()))?),
        false => None,
    };
    for l in layers {
        if cache.as_ref().is_some_and(|c| c.sealed(l).is_ok()) {
            continue;
        }
        let blob = bundle_format::BlobRef {
            digest: l.digest,
            size: l.size,
        };
        bundle
            .check_blob(&blob, &format!("layer {}", l.role.as_str()))
            .map_err(Checked::Bundle)?;
    }
    Ok(())
}

/// The file naming a release switch in progress, in the app's directory.
pub(crate) const SWITCH: &str = "switch.json";

/// A release switch: the new `current`, and the `previous` it keeps (relative link targets).
#[derive(serde::Serialize, serde::Deserialize)]
struct Switch {
    current: PathBuf,
    previous: Option<PathBuf>,
}

/// Points `app`'s `current` at `current` and its `previous` at `previous` (relative link
/// targets), together: the intent is written first (atomically), then applied; a killed
/// switch is finished by `recover`.
pub(crate) fn switch(
    app: &Path,
    current: &Path,
    previous: Option<&Path>,
) -> Result<(), StoreError> {
    let intent = Switch {
        current: current.to_path_buf(),
        previous: previous.map(Path::to_path_buf),
    };
    write_atomic(
        &app.join(SWITCH),
        &serde_json::to_vec(&intent).expect("serializes"),
        0o600,
    )?;
    finish_switch(app)?;
    Ok(())
}

/// Applies a pending switch of `app` (idempotent), then drops its intent file. Returns
/// whether there was one.
pub(crate) fn finish_switch(app: &Path) -> Result<bool, StoreError> {
    let file = app.join(SWITCH);
    let Ok(bytes) = fs::read(&file) else {
        return Ok(false);
    };
    let Ok(s) = serde_json::from_slice::<Switch>(&bytes) else {
        // A torn intent cannot happen (it is renamed into place); refuse to guess.
        return Err(StoreError::Damaged {
            app: app.display().to_string(),
            problem: format!("{} is unreadable", file.display()),
        });
    };
    if let Some(p) = &s.previous {
        switch_link(&app.join("previous"), p)?;
    }
    switch_link(&app.join("current"), &s.current)?;
    fs::remove_file(&file).map_err(io(&file))?;
    Ok(true)
}

/// Removes an app and its exports; its state stays unless `delete_data`.
pub fn uninstall(
    layout: &Layout,
    id: &str,
    delete_data: bool,
    exe: &Path,
) -> Result<(), StoreError> {
    crate::layout::check_id(id)?;
    let _lock = layout.lock()?;
    begin_change(layout, exe)?;
    let app = layout.app(id);
    if !app.exists() {
        return Err(StoreError::NotInstalled(id.into()));
    }
    let who = Release::current(layout, id)?.identity();
    // A running app refuses the whole command when its data is to go.
    let held = match delete_data {
        true => Some(crate::state::lock(layout, &who)?),
        false => None,
    };
    export::remove_app(layout, id)?;
    let trash = tempfile::Builder::new()
        .prefix(".trash-")
        .tempdir_in(layout.apps())
        .map_err(io(&layout.apps()))?;
    fs::rename(&app, trash.path().join(id)).map_err(io(&app))?;
    drop(trash);
    if let Some(held) = held {
        crate::state::delete_data_held(layout, &who, held)?;
    }
    gc(layout)?;
    mark_clean(layout)?;
    export::refresh_databases();
    Ok(())
}
