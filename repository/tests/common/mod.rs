//! Test fixtures of the client tests: signed bundles made with the bundle-format crate's own
//! writer, a tiny publisher that lays them out as a repository (roots, index, app documents,
//! heads, tails, blobs and objects, as `repository::layout` names them), and a client with
//! its own directories and store in a temporary directory.
//!
//! The publisher here is the tests' own, so a test can also write what a real publisher never
//! would (an index signed by another key, a document under another app's entry, ...). The
//! lead switches the tests to the real `capsa repo` later.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;

use bundle_format::container::{decode_table, BlobEntry, Header, Trailer};
use bundle_format::{
    canonical, layer, manifest, BlobData, BlobRef, Bundle, BundlePath, Digest, EntryKind,
    LayerRole, SecretKey,
};
use repository::client::{connect_dirs, remote, Client, Dirs};
use repository::layout;
use repository::meta::{
    app_doc_bytes, seal, AppDoc, Channel, DocKind, Index, KeySet, ReleaseDoc, Rollout, Root,
    INDEX_CONTEXT, ROOT_CONTEXT,
};

/// `store::install` keeps consent under `$XDG_DATA_HOME` and reads `$XDG_CONFIG_HOME`: both
/// point into one temporary directory for the whole test process, set before any test does
/// anything else (every test calls this first).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dir = tempfile::Builder::new()
            .prefix("capsa-client-env-")
            .tempdir()
            .unwrap()
            .keep();
        for v in [
            "XDG_DATA_HOME",
            "XDG_CONFIG_HOME",
            "XDG_STATE_HOME",
            "XDG_CACHE_HOME",
        ] {
            std::env::set_var(v, dir.join(v.to_lowercase()));
        }
    });
}

/// Incompressible bytes, the same for the same seed.
pub fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Digest::of(seed.as_bytes());
    while out.len() < len {
        out.extend_from_slice(block.as_bytes());
        block = Digest::of(block.as_bytes());
    }
    out.truncate(len);
    out
}

/// A layer: its role and its files (path, content).
pub type LayerSpec = (LayerRole, Vec<(String, Vec<u8>)>);

/// Writes a bundle of `layers`, signed by `key` when given.
pub fn make_bundle(
    out: &Path,
    id: &str,
    version: &str,
    layers: &[LayerSpec],
    key: Option<&SecretKey>,
) {
    let mtime = 1_700_000_000;
    let mut blobs = Vec::new();
    let mut mlayers = Vec::new();
    for (i, (role, files)) in layers.iter().enumerate() {
        let blob_path = out.with_extension(format!("layer{i}"));
        let file = fs::File::create(&blob_path).unwrap();
        let c = bundle_format::Compression {
            level: 3,
            threads: 1,
        };
        let mut w = bundle_format::LayerWriter::new(file, c, mtime).unwrap();
        let mut dirs = BTreeSet::new();
        for (p, _) in files {
            let mut at = p.as_str();
            while let Some((parent, _)) = at.rsplit_once('/') {
                dirs.insert(parent.to_owned());
                at = parent;
            }
        }
        let mut entries: Vec<(String, Option<&Vec<u8>>)> =
            dirs.into_iter().map(|d| (d, None)).collect();
        entries.extend(files.iter().map(|(p, c)| (p.clone(), Some(c))));
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (p, content) in entries {
            let bp = BundlePath::new(&p).unwrap();
            match content {
                None => w.add_dir(&bp).unwrap(),
                Some(c) => w.add_file(&bp, false, c.len() as u64, &c[..]).unwrap(),
            }
        }
        let (_, stats, toc) = w.finish().unwrap();
        let toc_blob = layer::compress_meta(&canonical::to_vec(&toc).unwrap());
        let toc_ref = BlobRef {
            digest: Digest::of(&toc_blob),
            size: toc_blob.len() as u64,
        };
        blobs.push((toc_ref.digest, BlobData::Bytes(toc_blob)));
        blobs.push((stats.digest, BlobData::File(blob_path)));
        mlayers.push(bundle_format::Layer {
            role: *role,
            media_type: manifest::LAYER_MEDIA_TYPE.into(),
            digest: stats.digest,
            size: stats.size,
            diff_id: stats.diff_id,
            tar_size: stats.tar_size,
            entries: toc.entries.len() as u64,
            unpacked_size: toc.content_size(),
            toc: toc_ref,
        });
    }
    let m = bundle_format::Manifest {
        schema: manifest::SCHEMA,
        id: id.into(),
        name: id.rsplit('.').next().unwrap().into(),
        version: version.into(),
        arch: std::env::consts::ARCH.into(),
        created: mtime,
        command: vec!["/usr/bin/app".into()],
        env: Default::default(),
        workdir: None,
        permissions: Default::default(),
        desktop: None,
        requires: Default::default(),
        layers: mlayers,
        report: None,
        generator: "capsa client tests".into(),
    };
    let sigs: Vec<_> = key.iter().map(|k| k.sign(&m.to_bytes().unwrap())).collect();
    bundle_format::write_bundle(out, &m, &blobs, &sigs).unwrap();
    for (_, b) in blobs {
        if let BlobData::File(p) = b {
            fs::remove_file(p).unwrap();
        }
    }
}

/// Where a bundle's parts are: the blob region's start, the tail's length, the blob table.
pub fn split(bytes: &[u8]) -> (usize, usize, Vec<BlobEntry>) {
    let n = bytes.len();
    let t = Trailer::decode(bytes[n - 64..].try_into().unwrap()).unwrap();
    let start = n - t.payload_len as usize;
    let h = Header::decode(bytes[start..start + 64].try_into().unwrap()).unwrap();
    let blobs_at = start + h.blobs_offset().unwrap() as usize;
    let table_at = start + 64 + h.manifest_len as usize;
    let table = decode_table(
        &bytes[table_at..table_at + h.table_len as usize],
        h.blobs_len,
    )
    .unwrap();
    (blobs_at, h.signatures_len as usize + 64, table)
}

pub fn put(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

fn blob_ref(bytes: &[u8]) -> BlobRef {
    BlobRef {
        digest: Digest::of(bytes),
        size: bytes.len() as u64,
    }
}

/// A repository written by the tests' own publisher.
pub struct Repo {
    pub dir: PathBuf,
    /// The keys of the current root (they sign the index).
    pub keys: Vec<SecretKey>,
    pub root_version: u64,
    pub index_version: u64,
    pub expires: u64,
    pub docs: BTreeMap<String, AppDoc>,
    /// Index entries written over the documents' own (for mix-and-match tests).
    pub entry_override: BTreeMap<String, BlobRef>,
}

pub const FAR: u64 = 4_000_000_000;

impl Repo {
    pub fn new(dir: &Path, key: SecretKey) -> Self {
        fs::create_dir_all(dir).unwrap();
        let root = Root {
            kind: DocKind::Root,
            version: 1,
            expires: FAR,
            signers: KeySet::single(&key.public()),
        };
        let bytes = seal(root, ROOT_CONTEXT, &[&key]).unwrap();
        put(dir, &layout::root(1), &bytes);
        put(dir, layout::ROOT, &bytes);
        let mut r = Self {
            dir: dir.into(),
            keys: vec![key],
            root_version: 1,
            index_version: 0,
            expires: FAR,
            docs: BTreeMap::new(),
            entry_override: BTreeMap::new(),
        };
        r.publish();
        r
    }

    pub fn key(&self) -> &SecretKey {
        &self.keys[0]
    }

    /// Stores a bundle's head, tail, blobs and objects; adds its release to the app's
    /// document (publisher `publisher`), on `channel` (with a rollout when given). Does not
    /// publish the index. Returns the release.
    pub fn add(
        &mut self,
        bundle: &Path,
        publisher: &SecretKey,
        channel: &str,
        rollout: Option<u8>,
    ) -> ReleaseDoc {
        let bytes = fs::read(bundle).unwrap();
        let (blobs_at, tail_len, table) = split(&bytes);
        let head = &bytes[..blobs_at];
        let tail = &bytes[bytes.len() - tail_len..];
        for part in [head, tail] {
            put(&self.dir, &layout::blob(&Digest::of(part)), part);
        }
        for e in &table {
            let at = blobs_at + e.offset as usize;
            put(
                &self.dir,
                &layout::blob(&e.digest),
                &bytes[at..at + e.len as usize],
            );
        }
        let b = Bundle::open(bundle).unwrap();
        for l in &b.manifest().layers {
            let toc = b.toc(l).unwrap();
            b.read_layer(l, &toc, |e, r| {
                if e.kind == EntryKind::File {
                    let mut content = Vec::new();
                    r.read_to_end(&mut content)?;
                    let z = zstd::bulk::compress(&content, 3)?;
                    put(&self.dir, &layout::object(&e.sha256.unwrap()), &z);
                }
                Ok(())
            })
            .unwrap();
        }
        let m = b.manifest();
        let doc = self.docs.entry(m.id.clone()).or_insert_with(|| AppDoc {
            kind: DocKind::App,
            app: m.id.clone(),
            publisher: publisher.public().to_hex(),
            name: m.name.clone(),
            summary: format!("{} for the tests", m.name),
            icon: None,
            releases: Vec::new(),
            channels: BTreeMap::new(),
        });
        let seq = doc.releases.last().map_or(1, |r| r.seq + 1);
        let rel = ReleaseDoc {
            seq,
            version: m.version.clone(),
            manifest: b.manifest_digest(),
            bundle: blob_ref(&bytes),
            head: blob_ref(head),
            tail: blob_ref(tail),
            permissions: Vec::new(),
            added: 0,
            yanked: None,
        };
        doc.releases.push(rel.clone());
        let fallback = doc.channels.get(channel).map(|c| c.release);
        doc.channels.insert(
            channel.into(),
            Channel {
                release: seq,
                fallback,
                rollout: rollout.map(|percent| Rollout {
                    percent,
                    seed: format!("{}-{seq}", m.id),
                    halted: false,
                }),
            },
        );
        rel
    }

    /// The index this repository would publish next, as a document.
    pub fn index_doc(&self, version: u64) -> Index {
        let mut apps = BTreeMap::new();
        for (id, doc) in &self.docs {
            let bytes = app_doc_bytes(doc).unwrap();
            put(&self.dir, &layout::blob(&Digest::of(&bytes)), &bytes);
            apps.insert(id.clone(), blob_ref(&bytes));
        }
        apps.extend(self.entry_override.clone());
        Index {
            kind: DocKind::Index,
            version,
            expires: self.expires,
            root: self.root_version,
            apps,
        }
    }

    /// Writes the documents and a new `index.json` (version + 1) signed by the root's keys.
    pub fn publish(&mut self) -> Vec<u8> {
        self.index_version += 1;
        let ix = self.index_doc(self.index_version);
        let keys: Vec<&SecretKey> = self.keys.iter().collect();
        let bytes = seal(ix, INDEX_CONTEXT, &keys).unwrap();
        put(&self.dir, layout::INDEX, &bytes);
        bytes
    }

    /// Writes `roots/<N+1>.json` and `root.json` for `new` keys, signed by `signers`; the
    /// new keys sign the index from now on.
    pub fn rotate(&mut self, new: SecretKey, signers: &[&SecretKey]) {
        self.root_version += 1;
        let root = Root {
            kind: DocKind::Root,
            version: self.root_version,
            expires: FAR,
            signers: KeySet::single(&new.public()),
        };
        let bytes = seal(root, ROOT_CONTEXT, signers).unwrap();
        put(&self.dir, &layout::root(self.root_version), &bytes);
        put(&self.dir, layout::ROOT, &bytes);
        self.keys = vec![new];
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }
}

/// A user: directories and store of their own, and the remote `main` pinned to `key`.
pub struct User {
    pub dir: tempfile::TempDir,
}

impl User {
    pub fn new() -> Self {
        init();
        Self {
            dir: tempfile::Builder::new()
                .prefix("capsa-client-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn dirs(&self) -> Dirs {
        Dirs::under(self.dir.path())
    }

    pub fn store(&self) -> store::Layout {
        store::Layout {
            root: self.dir.path().join("data/capsa"),
        }
    }

    /// A new client (a new command: sessions are per client).
    pub fn client(&self) -> Client {
        Client::new(self.dirs(), self.store(), Box::new(connect_dirs))
    }

    pub fn add_remote(&self, name: &str, repo: &Repo) {
        remote::add(&self.dirs(), name, &repo.url(), &[], &repo.key().public()).unwrap();
    }

    /// Installs a prepared bundle with the ordinary store install, and records it.
    pub fn install(&self, client: &Client, p: &repository::client::Prepared) {
        let opts = store::InstallOptions {
            trusted: Some(p.publisher.clone()),
            default_for: Vec::new(),
            exe: PathBuf::from("/usr/bin/true"),
        };
        store::install(&self.store(), &p.bundle_path, &opts, &mut |_| true).unwrap();
        client.record_installed(p).unwrap();
    }
}

/// Two layers: `deps` (two 64 KiB files) and `app` (`files` files of 16 KiB, the ones in
/// `changed` with other content than in the first version).
pub fn two_layers(seed: &str, files: usize, changed: &[usize]) -> Vec<LayerSpec> {
    let deps = (0..2)
        .map(|i| {
            (
                format!("usr/lib/lib{i}.so"),
                noise(&format!("deps{i}"), 64 << 10),
            )
        })
        .collect();
    let app = (0..files)
        .map(|i| {
            let s = if changed.contains(&i) {
                format!("{seed}-app{i}")
            } else {
                format!("app{i}")
            };
            (format!("usr/share/app/f{i:03}"), noise(&s, 16 << 10))
        })
        .collect();
    vec![(LayerRole::Deps, deps), (LayerRole::App, app)]
}
