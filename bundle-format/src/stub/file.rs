//! Stub regions in files: what is in front of an open bundle's payload and whether it is what
//! its note records ([`Bundle::stub`], [`Bundle::verify_stub`]), and writing files: a
//! self-executable one (stub ELF, padding, note, the payload copied byte for byte), a plain
//! one (the payload alone), and the stub's ELF alone. Every write goes to a temporary file in
//! the destination's directory, is synced and renamed into place (the directory synced too).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use super::{NoteProblem, StubError, StubNote, MAX_NOTE_SIGNATURES, NOTE_LEN};
use crate::container::FORMAT_VERSION;
use crate::digest::{Digest, HashingReader};
use crate::error::{read_err, Error, Result};
use crate::reader::{Bundle, SignatureState};
use crate::sign::{PublicKey, SecretKey};

/// What is in front of a bundle's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StubState {
    /// A plain bundle: the payload starts the file.
    None,
    /// A stub with a note that decodes (not yet checked against the bytes it records).
    Recorded(StubNote),
    /// Bytes without a note at their end (`cat stub bundle`).
    Unrecorded { len: u64 },
    /// A note that does not decode.
    Damaged { len: u64, problem: NoteProblem },
}

/// A stub that passed [`Bundle::verify_stub`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubCheck {
    pub note: StubNote,
    pub signature: SignatureState,
}

/// Where a stub's ELF comes from: the first `len` bytes of `file`; with `expected`, their
/// sha256 must be that.
pub struct ElfSource<'a> {
    pub file: &'a File,
    pub len: u64,
    pub expected: Option<Digest>,
}

/// A positional reader over `[pos, end)` of a file.
struct Range<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Range<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf.len().min((self.end - self.pos).min(1 << 20) as usize);
        if max == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..max], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn range(file: &File, from: u64, to: u64) -> Range<'_> {
    Range {
        file,
        pos: from,
        end: to,
    }
}

/// Copies exactly `len` bytes, hashing them; a short source is an error.
/// Copies the stub's ELF to `to`, and fails if it no longer hashes to the note's digest.
fn copy_elf(bundle: &Bundle, note: &StubNote, to: &mut impl Write, what: &str) -> Result<()> {
    let actual = copy_hashed(
        range(bundle.file(), 0, note.elf_len),
        to,
        note.elf_len,
        what,
    )?;
    if actual != note.elf_sha256 {
        return Err(StubError::ElfChanged {
            recorded: note.elf_sha256,
            actual,
        }
        .into());
    }
    Ok(())
}

fn copy_hashed(from: Range<'_>, to: &mut impl Write, len: u64, what: &str) -> Result<Digest> {
    let mut h = HashingReader::new(from);
    let n = io::copy(&mut h, to).map_err(read_err(what))?;
    let (_, digest, _) = h.into_parts();
    if n != len {
        return Err(Error::Read {
            what: what.into(),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "shorter than expected"),
        });
    }
    Ok(digest)
}

impl Bundle {
    /// What is in front of the payload: nothing, a recorded stub, or one that is not.
    pub fn stub(&self) -> Result<StubState> {
        let len = self.stub_len();
        if len == 0 {
            return Ok(StubState::None);
        }
        if len < NOTE_LEN {
            return Ok(StubState::Unrecorded { len });
        }
        let mut b = [0u8; NOTE_LEN as usize];
        self.file()
            .read_exact_at(&mut b, len - NOTE_LEN)
            .map_err(read_err("stub note"))?;
        if !StubNote::has_magic(&b) {
            return Ok(StubState::Unrecorded { len });
        }
        Ok(match StubNote::decode(&b, len) {
            Ok(note) => StubState::Recorded(note),
            Err(problem) => StubState::Damaged { len, problem },
        })
    }

    /// Checks the stub against its note: the note bound to this payload, the ELF's sha256,
    /// zero padding, the signatures (with `trusted`, one by that key is required). `None`
    /// for a plain bundle; an unrecorded or damaged stub is an error.
    pub fn verify_stub(&self, trusted: Option<&PublicKey>) -> Result<Option<StubCheck>> {
        let note = match self.stub()? {
            StubState::None => return Ok(None),
            StubState::Unrecorded { len } => return Err(StubError::Unrecorded { len }.into()),
            StubState::Damaged { problem, .. } => return Err(StubError::Note(problem).into()),
            StubState::Recorded(note) => note,
        };
        if note.payload_digest != self.meta_digest() {
            return Err(StubError::OtherPayload {
                recorded: note.payload_digest,
                actual: self.meta_digest(),
            }
            .into());
        }
        copy_elf(self, &note, &mut io::sink(), "stub")?;
        self.check_stub_padding(note.elf_len, self.stub_len() - NOTE_LEN)?;
        let signature = note.check_signatures(trusted)?;
        // The payload is of the version this reader reads (it opened it).
        if note.reads_format < FORMAT_VERSION {
            return Err(StubError::ReadsOlder {
                capsa_version: note.capsa_version,
                reads: note.reads_format,
                needs: FORMAT_VERSION,
            }
            .into());
        }
        Ok(Some(StubCheck { note, signature }))
    }

    fn check_stub_padding(&self, mut from: u64, to: u64) -> Result<()> {
        let mut buf = vec![0u8; (to - from) as usize];
        self.file()
            .read_exact_at(&mut buf, from)
            .map_err(read_err("stub padding"))?;
        if let Some(i) = buf.iter().position(|&b| b != 0) {
            from += i as u64;
            return Err(StubError::Padding { offset: from }.into());
        }
        Ok(())
    }

    /// A reader over the payload's bytes, `[P, end)`.
    fn payload(&self) -> Range<'_> {
        range(self.file(), self.stub_len(), self.file_len())
    }
}

/// Writes `out` atomically with `mode`: `fill` writes the content into a temporary file
/// beside it, which is synced and renamed over `out`.
fn write_atomic(
    out: &Path,
    mode: u32,
    fill: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<()> {
    let werr = |source: io::Error| Error::Write {
        path: out.to_path_buf(),
        source,
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".capsa-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(werr)?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
    fill(&mut w)?;
    w.flush().map_err(werr)?;
    drop(w);
    let f = tmp.as_file();
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(werr)?;
    f.sync_all().map_err(werr)?;
    tmp.persist(out).map_err(|e| werr(e.error))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(werr)?;
    Ok(())
}

/// Writes `out` (mode 0755): `elf`, zero padding, a note binding it to `payload`'s payload
/// (signed by every key of `keys`), then that payload byte for byte. Returns the note.
pub fn write_self_exec(
    out: &Path,
    elf: ElfSource<'_>,
    payload: &Bundle,
    keys: &[SecretKey],
    capsa_version: &str,
) -> Result<StubNote> {
    if keys.len() > MAX_NOTE_SIGNATURES {
        return Err(StubError::TooManyKeys(keys.len()).into());
    }
    let mut magic = [0u8; 4];
    if elf.file.read_exact_at(&mut magic, 0).is_err() || magic != *b"\x7fELF" {
        return Err(StubError::NotElf.into());
    }
    // Checked before anything is written: the version must fit the note.
    StubNote::new(
        elf.len,
        Digest::of(b""),
        payload.meta_digest(),
        capsa_version,
    )?;
    let region = super::region_len(elf.len).ok_or(StubError::NotElf)?;
    let mut made = None;
    write_atomic(out, 0o755, |w| {
        let werr = |source| Error::Write {
            path: out.to_path_buf(),
            source,
        };
        let sha = copy_hashed(range(elf.file, 0, elf.len), w, elf.len, "stub ELF")?;
        if let Some(recorded) = elf.expected.filter(|&e| e != sha) {
            return Err(StubError::ElfChanged {
                recorded,
                actual: sha,
            }
            .into());
        }
        let mut note = StubNote::new(elf.len, sha, payload.meta_digest(), capsa_version)?;
        for k in keys {
            note.sign(k)?;
        }
        io::copy(&mut io::repeat(0).take(region - NOTE_LEN - elf.len), w).map_err(werr)?;
        w.write_all(&note.encode()).map_err(werr)?;
        let len = payload.file_len() - payload.stub_len();
        copy_hashed(payload.payload(), w, len, "payload")?;
        made = Some(note);
        Ok(())
    })?;
    Ok(made.expect("set by a successful write"))
}

/// Writes `out` (mode 0644) with `bundle`'s payload alone: the plain bundle, byte for byte.
pub fn write_plain(out: &Path, bundle: &Bundle) -> Result<()> {
    let len = bundle.file_len() - bundle.stub_len();
    write_atomic(out, 0o644, |w| {
        copy_hashed(bundle.payload(), w, len, "payload").map(|_| ())
    })
}

/// Writes `out` (mode 0755) with the ELF of `bundle`'s recorded stub, checked against `note`
/// while it is copied (nothing is left when it does not match).
pub fn write_stub_elf(out: &Path, bundle: &Bundle, note: &StubNote) -> Result<()> {
    write_atomic(out, 0o755, |w| copy_elf(bundle, note, w, "stub ELF"))
}
