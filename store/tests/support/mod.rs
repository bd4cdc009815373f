//! What the store's library tests share: bundles written with the bundle-format crate's own
//! writer (layers shared between bundles by building them once), sparse copies of a bundle
//! file with holes where some blobs would be, and a private store per test.
//!
//! The store keeps consent records and exports in the XDG directories the environment names,
//! so [`Store::new`] points them (once per test process, before any install) at a private
//! directory that lives as long as the process.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bundle_format::container::{decode_table, Header, Trailer, HEADER_LEN, TRAILER_LEN};
use bundle_format::{canonical, layer, manifest, BlobData, BlobRef, BundlePath, Digest, Toc};
use store::{InstallOptions, Installed, Layout, StoreError};

/// The mtime of every entry.
pub const MTIME: u64 = 1_700_000_000;

/// One layer blob with its TOC, built once and put into as many bundles as share it.
pub struct Built {
    pub layer: bundle_format::Layer,
    pub toc: Toc,
    pub blob: PathBuf,
    pub toc_blob: Vec<u8>,
    /// The regular files' contents, by bundle path.
    pub files: Vec<(String, Vec<u8>)>,
}

/// A layer of `role` with the directories `dirs` and the files `files` (path, content), in
/// any order, its blob written below `dir`.
pub fn layer(
    dir: &Path,
    role: bundle_format::LayerRole,
    dirs: &[&str],
    files: &[(&str, &[u8])],
) -> Built {
    enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8]),
    }
    let mut entries: Vec<E> = dirs.iter().map(|d| E::Dir(d)).collect();
    entries.extend(files.iter().map(|(p, c)| E::File(p, c)));
    let path = |e: &E| match e {
        E::Dir(p) | E::File(p, _) => p.to_string(),
    };
    entries.sort_by_key(|e| path(e).into_bytes());
    fs::create_dir_all(dir).unwrap();
    let file = tempfile::Builder::new()
        .prefix("layer-")
        .tempfile_in(dir)
        .unwrap()
        .keep()
        .unwrap();
    let compression = bundle_format::Compression {
        level: 3,
        threads: 1,
    };
    let mut w = bundle_format::LayerWriter::new(file.0, compression, MTIME).unwrap();
    let bp = |p: &str| BundlePath::new(p).unwrap();
    for e in &entries {
        match e {
            E::Dir(p) => w.add_dir(&bp(p)).unwrap(),
            E::File(p, c) => w.add_file(&bp(p), false, c.len() as u64, *c).unwrap(),
        }
    }
    let (_, stats, toc) = w.finish().unwrap();
    let toc_blob = layer::compress_meta(&canonical::to_vec(&toc).unwrap());
    let layer = bundle_format::Layer {
        role,
        media_type: manifest::LAYER_MEDIA_TYPE.into(),
        digest: stats.digest,
        size: stats.size,
        diff_id: stats.diff_id,
        tar_size: stats.tar_size,
        entries: toc.entries.len() as u64,
        unpacked_size: toc.content_size(),
        toc: BlobRef {
            digest: Digest::of(&toc_blob),
            size: toc_blob.len() as u64,
        },
    };
    Built {
        layer,
        toc,
        blob: file.1,
        toc_blob,
        files: files
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_vec()))
            .collect(),
    }
}

/// An unsigned bundle of app `id` at `version` with `layers`, written to `out`. Its desktop
/// entry's comment is `release <version>`, so the exports show which release is current.
pub fn bundle(out: &Path, id: &str, version: &str, layers: &[&Built]) -> PathBuf {
    let m = bundle_format::Manifest {
        schema: manifest::SCHEMA,
        id: id.into(),
        name: "Test app".into(),
        version: version.into(),
        arch: std::env::consts::ARCH.into(),
        created: MTIME,
        command: vec!["/usr/bin/app".into()],
        env: Default::default(),
        workdir: None,
        permissions: Default::default(),
        desktop: Some(bundle_format::Desktop {
            comment: Some(format!("release {version}")),
            ..Default::default()
        }),
        requires: Default::default(),
        layers: layers.iter().map(|b| b.layer.clone()).collect(),
        report: None,
        generator: "store tests".into(),
    };
    let mut blobs = Vec::new();
    for b in layers {
        blobs.push((b.layer.toc.digest, BlobData::Bytes(b.toc_blob.clone())));
        blobs.push((b.layer.digest, BlobData::File(b.blob.clone())));
    }
    bundle_format::write_bundle(out, &m, &blobs, &[]).unwrap();
    out.to_path_buf()
}

/// Where each blob of a bundle file is: digest → (file offset, length).
pub fn blob_offsets(bundle: &Path) -> Vec<(Digest, u64, u64)> {
    let f = fs::File::open(bundle).unwrap();
    let len = f.metadata().unwrap().len();
    let mut trailer = [0u8; 64];
    f.read_exact_at(&mut trailer, len - TRAILER_LEN).unwrap();
    let trailer = Trailer::decode(&trailer).unwrap();
    let start = len - trailer.payload_len;
    let mut header = [0u8; 64];
    f.read_exact_at(&mut header, start).unwrap();
    let header = Header::decode(&header).unwrap();
    let mut table = vec![0u8; header.table_len as usize];
    f.read_exact_at(&mut table, start + HEADER_LEN + header.manifest_len)
        .unwrap();
    let region = start + header.blobs_offset().unwrap();
    decode_table(&table, header.blobs_len)
        .unwrap()
        .into_iter()
        .map(|e| (e.digest, region + e.offset, e.len))
        .collect()
}

/// A copy of `bundle` at `out` in which the blobs `holes` were never written: a sparse file
/// reading zeros there (what a repository client assembles when it has those layers). Every
/// other byte (header, manifest, table, TOCs, other blobs, signatures, trailer) is intact.
pub fn with_holes(bundle: &Path, out: &Path, holes: &[Digest]) -> PathBuf {
    let bytes = fs::read(bundle).unwrap();
    let spans: Vec<(u64, u64)> = blob_offsets(bundle)
        .into_iter()
        .filter(|(d, ..)| holes.contains(d))
        .map(|(_, at, len)| (at, at + len))
        .collect();
    assert_eq!(
        spans.len(),
        holes.len(),
        "every hole is a blob of the bundle"
    );
    let f = fs::File::create(out).unwrap();
    f.set_len(bytes.len() as u64).unwrap();
    let mut at = 0u64;
    let mut spans = spans;
    spans.sort();
    spans.push((bytes.len() as u64, bytes.len() as u64));
    for (from, to) in spans {
        f.write_all_at(&bytes[at as usize..from as usize], at)
            .unwrap();
        at = to;
    }
    out.to_path_buf()
}

/// The private XDG directories of this test process.
fn xdg() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::Builder::new()
            .prefix("capsa-store-lib-")
            .tempdir()
            .unwrap()
            .keep();
        for (var, sub) in [
            ("XDG_DATA_HOME", "data"),
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_CACHE_HOME", "cache"),
        ] {
            std::env::set_var(var, d.join(sub));
        }
        d
    })
}

/// A private store (its own `$XDG_DATA_HOME/capsa`), removed on drop.
pub struct Store {
    dir: tempfile::TempDir,
    pub layout: Layout,
}

impl Store {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("store-")
            .tempdir_in(xdg())
            .unwrap();
        let layout = Layout {
            root: dir.path().join("data/capsa"),
        };
        Self { dir, layout }
    }

    /// A directory for the test's own files.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn exe(&self) -> PathBuf {
        PathBuf::from("/usr/bin/capsa")
    }

    /// Installs `bundle`, agreeing to everything.
    pub fn install(&self, bundle: &Path) -> Result<Installed, StoreError> {
        let opts = InstallOptions {
            trusted: None,
            default_for: Vec::new(),
            exe: self.exe(),
        };
        store::install(&self.layout, bundle, &opts, &mut |_| true)
    }

    /// The app's exported desktop entry.
    pub fn desktop_entry(&self, id: &str) -> String {
        let data = self.layout.root.parent().unwrap();
        fs::read_to_string(data.join(format!("applications/{id}.desktop"))).unwrap()
    }

    /// The version of the app's release behind the link `name` (`current` or `previous`).
    pub fn version(&self, id: &str, name: &str) -> Option<String> {
        let app = self.layout.app(id);
        let target = fs::read_link(app.join(name)).ok()?;
        store::Release::read(&app.join(target), id)
            .ok()
            .map(|r| r.manifest.version)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Unpacked layers have read-only directories only when a TOC says so; be thorough.
        userdata::cache::make_writable(self.dir.path());
    }
}
