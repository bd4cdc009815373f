//! Launcher stubs on the command line: `capsa pack --self-exec` (after packing, or `--from` an
//! existing bundle), `capsa strip-stub`, and this capsa's own ELF (the default stub, and what
//! `verify` compares a stub with).
//!
//! The running capsa's ELF is `/proc/self/exe`, whole; when capsa itself runs from a
//! self-executable file, only the ELF its stub note records (an unrecorded stub is refused:
//! nothing says where its ELF ends).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use bundle_format::container::{TRAILER_LEN, TRAILER_MAGIC};
use bundle_format::digest::Hasher;
use bundle_format::stub::{self, ElfSource};
use bundle_format::{Bundle, Digest, SecretKey, StubNote, StubState};

use crate::cli::{PackArgs, StripStubArgs};
use crate::output::size;

/// The executable this process runs: the inode that was executed, whatever its path is now.
pub const SELF_EXE: &str = "/proc/self/exe";

/// This capsa's version, as stub notes record it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether `file` ends with a bundle trailer's magic (any version: a newer one is named by the
/// reader's error, not taken for a plain executable).
pub fn ends_with_trailer(file: &File) -> bool {
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    let mut magic = [0u8; 8];
    len >= TRAILER_LEN
        && file.read_exact_at(&mut magic, len - TRAILER_LEN).is_ok()
        && magic == TRAILER_MAGIC
}

/// Where an ELF is: the first `len` bytes of `file`, with their recorded sha256 if known.
pub struct Elf {
    pub file: File,
    pub len: u64,
    pub recorded: Option<Digest>,
}

impl Elf {
    pub fn source(&self) -> ElfSource<'_> {
        ElfSource {
            file: &self.file,
            len: self.len,
            expected: self.recorded,
        }
    }

    /// The ELF's sha256 (read and hashed).
    pub fn sha256(&self) -> anyhow::Result<Digest> {
        if let Some(d) = self.recorded {
            return Ok(d);
        }
        let mut h = Hasher::default();
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0;
        while pos < self.len {
            let want = buf.len().min((self.len - pos) as usize);
            let n = self
                .file
                .read_at(&mut buf[..want], pos)
                .context("cannot read an executable")?;
            if n == 0 {
                bail!("an executable became shorter while it was read");
            }
            h.update(&buf[..n]);
            pos += n as u64;
        }
        Ok(h.finish())
    }
}

/// The ELF of the executable at `path`: all of it, or a self-executable file's stub ELF.
pub fn elf_of(path: &Path) -> anyhow::Result<Elf> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if !ends_with_trailer(&file) {
        let len = file.metadata()?.len();
        return Ok(Elf {
            file,
            len,
            recorded: None,
        });
    }
    let b = Bundle::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    match b.stub()? {
        StubState::Recorded(note) => Ok(Elf {
            file,
            len: note.elf_len,
            recorded: Some(note.elf_sha256),
        }),
        _ => bail!(
            "{} is a bundle whose launcher stub has no note, so nothing says where its ELF ends: give a stub with --stub FILE",
            path.display()
        ),
    }
}

/// This capsa's own ELF.
pub fn own_elf() -> anyhow::Result<Elf> {
    elf_of(Path::new(SELF_EXE)).context("cannot read this capsa's own executable")
}

/// Writes `out`: the stub (`stub`, or this capsa's ELF) in front of `payload`'s payload.
pub fn write(
    out: &Path,
    payload: &Bundle,
    stub: Option<&Path>,
    keys: &[SecretKey],
) -> anyhow::Result<StubNote> {
    let elf = match stub {
        Some(p) => elf_of(p)?,
        None => own_elf()?,
    };
    stub::write_self_exec(out, elf.source(), payload, keys, VERSION)
        .with_context(|| format!("cannot write {}", out.display()))
}

/// The secret keys of `--sign`.
pub fn load_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<SecretKey>> {
    Ok(paths
        .iter()
        .map(|k| SecretKey::load(k))
        .collect::<Result<Vec<_>, _>>()?)
}

/// One line about a stub that was written.
pub fn describe(note: &StubNote) -> String {
    let signed = if note.signatures.is_empty() {
        "unsigned".to_owned()
    } else {
        let ids: Vec<String> = note
            .signatures
            .iter()
            .map(|s| s.public_key.key_id())
            .collect();
        format!("signed by {}", ids.join(", "))
    };
    format!(
        "launcher stub: capsa {}, {} ELF {}, {signed}",
        note.capsa_version,
        size(note.elf_len),
        note.elf_sha256
    )
}

/// `capsa pack --self-exec --from BUNDLE -o OUT`.
pub fn pack_from(a: &PackArgs, from: &Path) -> anyhow::Result<ExitCode> {
    let out = a.output.as_deref().context("--from needs --output")?;
    let keys = load_keys(&a.sign)?;
    let b = super::bundle_file::open(from)?;
    b.check_signatures(None)
        .with_context(|| format!("bad signature in {}", from.display()))?;
    let note = write(out, &b, a.stub.as_deref(), &keys)?;
    let m = b.manifest();
    let file_size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    if a.json {
        let v = serde_json::json!({
            "path": out,
            "id": m.id,
            "version": m.version,
            "manifest_digest": b.manifest_digest().to_string(),
            "size": file_size,
            "stub": super::verify::stub_json(&note, None),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let replaced = match b.stub_len() {
        0 => String::new(),
        n => format!(" (replacing its {} stub)", size(n)),
    };
    outln!(
        "added a launcher stub to {} {} from {}{replaced}: {} ({})",
        m.id,
        m.version,
        from.display(),
        out.display(),
        size(file_size)
    );
    outln!("  {}", describe(&note));
    Ok(ExitCode::SUCCESS)
}

/// `capsa strip-stub BUNDLE -o OUT`.
pub fn strip(a: StripStubArgs) -> anyhow::Result<ExitCode> {
    let b = super::bundle_file::open(&a.bundle)?;
    stub::write_plain(&a.output, &b)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    match b.stub_len() {
        0 => outln!(
            "{} has no launcher stub: copied it unchanged to {}",
            a.bundle.display(),
            a.output.display()
        ),
        n => outln!(
            "removed the {} launcher stub of {}: {}",
            size(n),
            a.bundle.display(),
            a.output.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
