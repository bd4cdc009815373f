//! `repo check`: verifies a repository as a client would see it, and everything it reaches.
//!
//! The root chain from `roots/1.json` (each root signed by its predecessor's keys and its
//! own); the index signed by the newest root's keys, and not expired; every app document
//! against the index's digest and size; every release's head and tail against the document,
//! their layout, manifest (id, version, digest, permissions) and a valid signature by the
//! app's publisher; every bundle blob by rebuilding the whole bundle and comparing it with the
//! release's digest and size; every object (decompressed) against its TOC's sha256 and size;
//! icons. Read-only and lock-free, so it also runs on a mirror's copy. Each problem is
//! reported and the check goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::Path;

use bundle_format::{Digest, PublicKey};

use super::error::PublishError;
use super::fsio::RepoDir;
use super::reach;
use super::state::{load_roots, now, read_app_doc};
use crate::catalog::date;
use crate::layout;
use crate::meta::{open_index, AppDoc, Index, ReleaseDoc, MAX_INDEX};

/// Warn about an index that expires sooner than this (a refresh is due)...
const SOON: u64 = 7 * 86_400;
/// ...and about a root (renewing it takes a rotation, which users may want to hear about).
const ROOT_SOON: u64 = 30 * 86_400;

/// What `repo check` found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub root_version: u64,
    pub index_version: u64,
    pub apps: usize,
    pub releases: usize,
    pub blobs: usize,
    pub objects: usize,
    /// Bytes of blobs and objects hashed.
    pub bytes: u64,
    /// Each a sentence naming the file or the app.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// `repo check DIR`. Fails only when the directory cannot be opened.
pub fn check(dir: &Path) -> Result<Report, PublishError> {
    let d = RepoDir::open(dir)?;
    let mut rep = Report::default();
    let Some(index) = check_top(&d, &mut rep) else {
        return Ok(rep);
    };
    let mut seen_blobs = BTreeSet::new();
    let mut seen_objects = BTreeMap::new();
    for (app, r) in &index.apps {
        let doc = match read_app_doc(&d, app, r) {
            Ok(doc) => doc,
            Err(e) => {
                rep.problems.push(format!("{app}: {e}"));
                continue;
            }
        };
        rep.apps += 1;
        check_app(&d, &doc, &mut rep, &mut seen_blobs, &mut seen_objects);
    }
    rep.blobs = seen_blobs.len();
    Ok(rep)
}

/// The root chain and the index; `None` when nothing below them can be trusted.
fn check_top(d: &RepoDir, rep: &mut Report) -> Option<Index> {
    let (root, stale) = match load_roots(d) {
        Ok(r) => r,
        Err(e) => {
            rep.problems.push(format!("roots: {e}"));
            return None;
        }
    };
    rep.root_version = root.version;
    if stale {
        rep.warnings.push(format!(
            "root.json is not root {} (a rotation was interrupted: the next publishing command rewrites it)",
            root.version
        ));
    }
    expiry(
        rep,
        &format!("root {}", root.version),
        root.expires,
        ROOT_SOON,
    );
    let bytes = match d.read(layout::INDEX, MAX_INDEX) {
        Ok(Some(b)) => b,
        Ok(None) => {
            rep.problems.push("index.json is missing".into());
            return None;
        }
        Err(e) => {
            rep.problems.push(e.to_string());
            return None;
        }
    };
    let index = match open_index(&root, &bytes) {
        Ok(i) => i,
        Err(e) => {
            rep.problems.push(format!(
                "index.json does not verify with root {}: {e}",
                root.version
            ));
            return None;
        }
    };
    rep.index_version = index.version;
    if index.root > root.version {
        rep.problems.push(format!(
            "index.json names root {}, the newest is {}",
            index.root, root.version
        ));
    }
    expiry(rep, "index.json", index.expires, SOON);
    Some(index)
}

fn expiry(rep: &mut Report, what: &str, expires: u64, soon: u64) {
    let t = now();
    if expires <= t {
        rep.problems.push(format!(
            "{what} expired on {}: clients refuse it (`capsa repo refresh` re-signs the index, `capsa repo rotate-key` renews a root)",
            date(expires)
        ));
    } else if expires - t < soon {
        rep.warnings
            .push(format!("{what} expires on {}", date(expires)));
    }
}

fn check_app(
    d: &RepoDir,
    doc: &AppDoc,
    rep: &mut Report,
    seen_blobs: &mut BTreeSet<Digest>,
    seen_objects: &mut BTreeMap<Digest, u64>,
) {
    let app = &doc.app;
    let Some(publisher) = doc.publisher_key() else {
        rep.problems.push(format!("{app}: publisher is not a key"));
        return;
    };
    if let Some(icon) = &doc.icon {
        if seen_blobs.insert(icon.digest) {
            rep.bytes += icon.size;
            if let Err(e) = reach::read_blob(d, icon, crate::catalog::MAX_ICON) {
                rep.problems.push(format!("{app}: icon: {e}"));
            }
        }
    }
    for r in &doc.releases {
        rep.releases += 1;
        if let Err(e) = check_release(d, doc, &publisher, r, rep, seen_blobs, seen_objects) {
            rep.problems.push(format!("{app} {}: {e}", r.version));
        }
    }
}

fn check_release(
    d: &RepoDir,
    doc: &AppDoc,
    publisher: &PublicKey,
    r: &ReleaseDoc,
    rep: &mut Report,
    seen_blobs: &mut BTreeSet<Digest>,
    seen_objects: &mut BTreeMap<Digest, u64>,
) -> Result<(), String> {
    let rel = reach::release(d, r)?;
    let m = &rel.manifest;
    if m.id != doc.app || m.version != r.version {
        return Err(format!(
            "its manifest is {} {}, not this release",
            m.id, m.version
        ));
    }
    let perms: Vec<String> = m.permissions.grants.iter().map(|g| g.to_string()).collect();
    if perms != r.permissions {
        return Err("the document's permissions differ from the manifest's".into());
    }
    let signed = rel.parts.signatures.signatures.iter().any(|s| {
        s.public_key == publisher.to_hex()
            && s.signature_bytes()
                .is_some_and(|sig| publisher.verify(&rel.parts.manifest_bytes, &sig))
    });
    if !signed {
        return Err(format!(
            "not signed by the app's publisher {}",
            publisher.key_id()
        ));
    }
    seen_blobs.insert(r.head.digest);
    seen_blobs.insert(r.tail.digest);
    let (digest, len) = rel
        .parts
        .assemble(
            &rel.head,
            &rel.tail,
            |b| {
                let rel = layout::blob(&b.digest);
                match d.open_file(&rel) {
                    Ok(Some((f, _))) => Ok(Box::new(f) as Box<dyn Read>),
                    Ok(None) => Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{rel} is missing"),
                    )),
                    Err(e) => Err(io::Error::other(e.to_string())),
                }
            },
            &mut io::sink(),
        )
        .map_err(|e| crate::publish::error_chain(&e))?;
    if digest != r.bundle.digest || len != r.bundle.size {
        return Err(format!(
            "the bundle rebuilt from its head, blobs and tail is {len} bytes of sha256 {digest}, the document says {} of {}",
            r.bundle.size, r.bundle.digest
        ));
    }
    for b in rel.parts.blobs() {
        if seen_blobs.insert(b.digest) {
            rep.bytes += b.size;
        }
    }
    for layer in &m.layers {
        let toc = reach::toc(d, layer)?;
        for (digest, size) in reach::files(&toc) {
            if seen_objects.insert(digest, size).is_some() {
                continue;
            }
            rep.objects += 1;
            rep.bytes += size;
            if let Err(e) = reach::check_object(d, &digest, size) {
                rep.problems.push(format!("{} {}: {e}", doc.app, r.version));
            }
        }
    }
    Ok(())
}
