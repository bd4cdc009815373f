//! `repo add`: publishes a signed bundle as a new release of its app.
//!
//! The bundle is copied (without a launcher stub, if it has one) into an unnamed temporary file
//! in the repository's directory, and everything is read from that copy, which nobody else can
//! change: opened and verified (signatures, padding, every TOC, every layer's content while its
//! objects are stored), cut into head, blobs and tail, stored, and rebuilt from what the
//! repository now holds: only when `head ‖ blobs ‖ tail` hashes to the copy's sha256 is the
//! new app document written and the index signed.
//!
//! Refused: an unsigned bundle; a bundle of a known app not signed by the app document's
//! `publisher`; a version the app already has.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bundle_format::container::{Header, HEADER_LEN, TRAILER_LEN};
use bundle_format::digest::HashingWriter;
use bundle_format::{BlobRef, Bundle, Digest, EntryKind, PublicKey, SignatureState, Toc};

use super::channels;
use super::error::{io_err, meta_err, PublishError};
use super::objects::{self, ObjectStats};
use super::parts::Parts;
use super::state::{now, Repo, SignOpts};
use crate::catalog::MAX_ICON;
use crate::layout;
use crate::meta::{check::check_string, check_channel_name, ReleaseDoc};

/// Options of `repo add`.
#[derive(Debug, Clone)]
pub struct AddOpts {
    pub channel: String,
    /// Give the release to this percentage of the channel's clients.
    pub rollout: Option<u8>,
    pub sign: SignOpts,
}

/// What `repo add` did.
#[derive(Debug, Clone)]
pub struct Added {
    pub app: String,
    pub version: String,
    pub seq: u64,
    pub channel: String,
    pub new_app: bool,
    /// The publisher's key id.
    pub publisher: String,
    /// The launcher stub removed from the front of the file, in bytes (0: none).
    pub stub_stripped: u64,
    /// Bundle blobs (TOCs, layers, report) written, their bytes, and those already stored.
    pub new_blobs: usize,
    pub new_blob_bytes: u64,
    pub shared_blobs: usize,
    pub objects: ObjectStats,
    pub icon: bool,
    pub index_version: u64,
}

/// The private copy of the bundle.
struct Staged {
    file: File,
    bundle: Bundle,
    digest: Digest,
    len: u64,
    stub: u64,
}

/// Copies `src` (from its payload start) into an unnamed file in the repository's directory
/// and opens the copy.
fn stage(dir: &Path, src: &Path) -> Result<Staged, PublishError> {
    let bundle_err = |source| PublishError::Bundle {
        path: src.to_path_buf(),
        source,
    };
    let original = Bundle::open(src).map_err(bundle_err)?;
    let (stub, total) = (original.stub_len(), original.file_len());
    drop(original);
    let mut from = File::open(src).map_err(io_err("open", src))?;
    from.seek(SeekFrom::Start(stub))
        .map_err(io_err("read", src))?;
    let mut file = tempfile::tempfile_in(dir).map_err(io_err("create a temporary file in", dir))?;
    let mut w = HashingWriter::new(&mut file);
    io::copy(&mut from.take(total - stub), &mut w).map_err(io_err("copy", src))?;
    let (_, digest, len) = w.into_parts();
    file.sync_all().map_err(io_err("copy", src))?;
    // The copy is reopened through its own fd's magic link: exactly this inode, never a name.
    let own = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let bundle = Bundle::open(&own).map_err(bundle_err)?;
    if bundle.stub_len() != 0 || bundle.file_len() != len {
        return Err(PublishError::Damaged {
            path: src.display().to_string(),
            problem: "the file changed while it was copied".into(),
        });
    }
    Ok(Staged {
        file,
        bundle,
        digest,
        len,
        stub,
    })
}

/// The key the release must be signed by: the app's publisher, or for a new app the
/// bundle's (first) signer.
fn publisher_key(
    b: &Bundle,
    src: &Path,
    known: Option<&str>,
    app: &str,
) -> Result<PublicKey, PublishError> {
    let state = b
        .check_signatures(None)
        .map_err(|source| PublishError::Bundle {
            path: src.to_path_buf(),
            source,
        })?;
    let SignatureState::Untrusted { key_ids } = state else {
        return Err(PublishError::Unsigned {
            path: src.to_path_buf(),
        });
    };
    let hex = match known {
        Some(p) => p.to_owned(),
        None => b.signatures()[0].public_key.clone(),
    };
    let key = PublicKey::from_hex(&hex).ok_or_else(|| PublishError::Damaged {
        path: app.to_owned(),
        problem: "the publisher is not a public key".into(),
    })?;
    if !b.signatures().iter().any(|s| s.public_key == hex) {
        return Err(PublishError::OtherPublisher {
            app: app.to_owned(),
            publisher: key.key_id(),
            signers: key_ids.join(", "),
        });
    }
    Ok(key)
}

/// The head and tail bytes of the staged copy, and their checked layout.
fn cut(s: &Staged) -> Result<(Vec<u8>, Vec<u8>, Parts), PublishError> {
    let read = |len: u64, at: u64| -> Result<Vec<u8>, PublishError> {
        let mut buf = vec![0u8; len as usize];
        s.file
            .read_exact_at(&mut buf, at)
            .map_err(io_err("read", s.bundle.path()))?;
        Ok(buf)
    };
    let first: [u8; 64] = read(HEADER_LEN, 0)?.try_into().expect("64 bytes");
    let damaged = |problem: String| PublishError::Damaged {
        path: "the bundle copy".into(),
        problem,
    };
    let header = Header::decode(&first).map_err(|e| damaged(e.0))?;
    let head_len = header
        .blobs_offset()
        .ok_or_else(|| damaged("lengths overflow".into()))?;
    let tail_len = header.signatures_len + TRAILER_LEN;
    let head = read(head_len, 0)?;
    let tail = read(tail_len, s.len - tail_len)?;
    let parts = Parts::parse(&head, &tail).map_err(|e| damaged(e.to_string()))?;
    if parts.file_len() != s.len || parts.manifest_bytes != s.bundle.manifest_bytes() {
        return Err(damaged(
            "head and tail do not match the verified bundle".into(),
        ));
    }
    Ok((head, tail, parts))
}

/// The manifest's desktop icon as a (file content digest, size), when it names a regular file
/// (or a hard link to one) of at most [`MAX_ICON`] bytes.
fn icon_file(b: &Bundle, tocs: &[Toc]) -> Option<BlobRef> {
    let icon = b.manifest().desktop.as_ref()?.icon.as_ref()?;
    for toc in tocs {
        let Some(e) = toc.entries.iter().find(|e| e.path == *icon) else {
            continue;
        };
        let e = match e.kind {
            EntryKind::Hardlink => {
                let t = e.target.as_deref()?;
                toc.entries.iter().find(|x| x.path.as_str() == t)?
            }
            _ => e,
        };
        return match (e.kind, e.sha256) {
            (EntryKind::File, Some(d)) if e.size <= MAX_ICON => Some(BlobRef {
                digest: d,
                size: e.size,
            }),
            _ => None,
        };
    }
    None
}

/// Copies the icon's object into a blob (its content, named by the same digest).
fn store_icon(repo: &Repo, icon: &BlobRef) -> Result<(), PublishError> {
    let rel = layout::object(&icon.digest);
    let (f, _) = repo
        .dir
        .open_file(&rel)?
        .ok_or_else(|| PublishError::Damaged {
            path: rel.clone(),
            problem: "the icon's object is missing".into(),
        })?;
    let d = zstd::stream::read::Decoder::new(f).map_err(io_err("read", repo.dir.full(&rel)))?;
    repo.put_blob_from(icon, d)?;
    Ok(())
}

/// `repo add DIR BUNDLE`.
pub fn add(dir: &Path, src: &Path, opts: &AddOpts) -> Result<Added, PublishError> {
    check_channel_name(&opts.channel).map_err(meta_err("--channel"))?;
    let mut repo = Repo::open(dir)?;
    let (key, _) = repo.signer(&opts.sign)?;
    let staged = stage(dir, src)?;
    let b = &staged.bundle;
    let m = b.manifest().clone();
    let existing = repo.app(&m.id)?;
    let publisher = publisher_key(
        b,
        src,
        existing.as_ref().map(|d| d.publisher.as_str()),
        &m.id,
    )?;
    if existing
        .as_ref()
        .is_some_and(|d| d.by_version(&m.version).is_some())
    {
        return Err(PublishError::VersionPublished {
            app: m.id,
            version: m.version,
        });
    }
    let (_, tocs) = b
        .verify_all_but_layers(Some(&publisher))
        .map_err(|source| PublishError::Bundle {
            path: src.to_path_buf(),
            source,
        })?;
    let (head, tail, parts) = cut(&staged)?;
    // Objects first: this streams every layer, which checks its blob and its content.
    let objects = objects::store(&repo.dir, b, &tocs)?;
    let (mut new_blobs, mut new_blob_bytes, mut shared_blobs) = (0, 0, 0);
    for e in &parts.table {
        let r = BlobRef {
            digest: e.digest,
            size: e.len,
        };
        let src_blob = ReadAt::new(&staged.file, parts.offset(e), e.len);
        if repo.put_blob_from(&r, src_blob)? {
            new_blobs += 1;
            new_blob_bytes += e.len;
        } else {
            shared_blobs += 1;
        }
    }
    let head_ref = repo.put_blob(&head)?;
    let tail_ref = repo.put_blob(&tail)?;
    let icon = icon_file(b, &tocs);
    if let Some(i) = &icon {
        store_icon(&repo, i)?;
    }
    repo.dir.sync_dirs()?;
    rebuild_check(&repo, &parts, &head, &tail, &staged)?;

    let mut doc = existing
        .clone()
        .unwrap_or_else(|| channels::new_doc(&m.id, &publisher.to_hex()));
    let desktop = m.desktop.clone().unwrap_or_default();
    doc.name = desktop.name.unwrap_or_else(|| m.name.clone());
    doc.summary = desktop.comment.unwrap_or_default();
    check_string("name", &doc.name).map_err(meta_err("the manifest's name"))?;
    check_string("summary", &doc.summary).map_err(meta_err("the manifest's comment"))?;
    doc.icon = icon;
    let release = ReleaseDoc {
        seq: 0,
        version: m.version.clone(),
        manifest: b.manifest_digest(),
        bundle: BlobRef {
            digest: staged.digest,
            size: staged.len,
        },
        head: head_ref,
        tail: tail_ref,
        permissions: m.permissions.grants.iter().map(|g| g.to_string()).collect(),
        added: now(),
        yanked: None,
    };
    let seq = channels::add_release(&mut doc, release, &opts.channel, opts.rollout)?;
    let index_version = repo.commit(vec![doc], &[&key], opts.sign.expires_days)?;
    remember_key(&mut repo, &opts.sign)?;
    Ok(Added {
        app: m.id,
        version: m.version,
        seq,
        channel: opts.channel.clone(),
        new_app: existing.is_none(),
        publisher: publisher.key_id(),
        stub_stripped: staged.stub,
        new_blobs,
        new_blob_bytes,
        shared_blobs,
        objects,
        icon: icon.is_some(),
        index_version,
    })
}

/// Rebuilds the bundle from the repository's files and compares it with the copy.
fn rebuild_check(
    repo: &Repo,
    parts: &Parts,
    head: &[u8],
    tail: &[u8],
    staged: &Staged,
) -> Result<(), PublishError> {
    let (digest, len) = parts
        .assemble(
            head,
            tail,
            |r| {
                let rel = layout::blob(&r.digest);
                match repo.dir.open_file(&rel) {
                    Ok(Some((f, _))) => Ok(Box::new(f) as Box<dyn Read>),
                    Ok(None) => Err(io::Error::new(io::ErrorKind::NotFound, rel)),
                    Err(e) => Err(io::Error::other(e.to_string())),
                }
            },
            &mut io::sink(),
        )
        .map_err(|e| PublishError::Damaged {
            path: "blobs".into(),
            problem: e.to_string(),
        })?;
    if digest != staged.digest || len != staged.len {
        return Err(PublishError::Rebuild {
            rebuilt: digest.to_string(),
            file: staged.digest.to_string(),
        });
    }
    Ok(())
}

/// Keeps the key path in the config when it has none yet.
pub(super) fn remember_key(repo: &mut Repo, sign: &SignOpts) -> Result<(), PublishError> {
    if repo.config.key.is_none() {
        if let Some(k) = &sign.key {
            repo.config.key = Some(std::path::absolute(k).unwrap_or_else(|_| k.clone()));
            repo.save_config()?;
        }
    }
    Ok(())
}

/// A reader over `len` bytes of `file` from `at`, by `pread`.
struct ReadAt<'a> {
    file: &'a File,
    at: u64,
    left: u64,
}

impl<'a> ReadAt<'a> {
    fn new(file: &'a File, at: u64, left: u64) -> Self {
        Self { file, at, left }
    }
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        if max == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..max], self.at)?;
        self.at += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}
