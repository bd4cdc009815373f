//! `capsa verify`: every byte of the payload, then the launcher stub of a self-executable
//! file (its ELF against its note, the note bound to this payload, zero padding, the note's
//! signatures; with `--key` one by that key), and whether that stub is this capsa's own ELF.

use std::path::Path;
use std::process::ExitCode;

use bundle_format::stub::StubCheck;
use bundle_format::{Bundle, Digest, PublicKey, SignatureState, StubNote};

use crate::cli::VerifyArgs;
use crate::output::bar;

/// What verify found.
struct Verified {
    bundle: Bundle,
    signature: SignatureState,
    stub: Option<StubCheck>,
}

fn check(path: &Path, key: Option<&PublicKey>) -> bundle_format::Result<Verified> {
    let b = Bundle::open(path)?;
    let pb = bar("verifying");
    pb.set_length(b.manifest().layers.iter().map(|l| l.size).sum());
    let r = b.verify(key, &mut |done| pb.set_position(done));
    pb.finish_and_clear();
    let signature = r?;
    let stub = b.verify_stub(key)?;
    Ok(Verified {
        bundle: b,
        signature,
        stub,
    })
}

fn signature_text(state: &SignatureState, unsigned: &str) -> String {
    match state {
        SignatureState::Unsigned => unsigned.to_owned(),
        SignatureState::Untrusted { key_ids } => {
            format!("signed by {} (no trusted key given)", key_ids.join(", "))
        }
        SignatureState::Trusted { key_id } => format!("signed by trusted key {key_id}"),
    }
}

/// A stub note as JSON; `check` adds its signature state and whether it is this capsa's ELF.
pub fn stub_json(note: &StubNote, check: Option<(&SignatureState, bool)>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "capsa_version": note.capsa_version,
        "elf_len": note.elf_len,
        "elf_sha256": note.elf_sha256.to_string(),
        "reads_format": note.reads_format,
        "stub_len": note.region_len(),
        "signed_by": note.signatures.iter().map(|s| s.public_key.key_id()).collect::<Vec<_>>(),
    });
    if let Some((state, same)) = check {
        v["signature"] = serde_json::to_value(state).unwrap_or_default();
        v["same_as_this_capsa"] = same.into();
    }
    v
}

/// Whether `sha` is this capsa's own ELF; a warning (and `false`) when that cannot be read.
fn is_own_elf(sha: &Digest) -> bool {
    match super::stub::own_elf().and_then(|e| e.sha256()) {
        Ok(own) => own == *sha,
        Err(e) => {
            eprintln!("capsa: warning: {}", crate::output::error_chain(&e));
            false
        }
    }
}

/// An error and its sources on one line, as `output::error_chain` writes them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.last().is_some_and(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}

pub fn run(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    verify_named(&a.bundle, &a.bundle, a.key.as_deref(), a.json)
}

/// Verifies the bundle at `path`, calling it `name` in what it prints.
pub fn verify_named(
    path: &Path,
    name: &Path,
    key: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let key = key.map(PublicKey::load).transpose()?;
    if path.symlink_metadata().is_err() {
        let e = super::bundle_file::missing(name, "");
        if !json {
            return Err(e);
        }
        let v = serde_json::json!({"ok": false, "error": e.to_string()});
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::from(1));
    }
    let result = check(path, key.as_ref());
    let same = match &result {
        Ok(Verified { stub: Some(s), .. }) => is_own_elf(&s.note.elf_sha256),
        _ => false,
    };
    if json {
        let v = match &result {
            Ok(r) => serde_json::json!({
                "ok": true,
                "manifest_digest": r.bundle.manifest_digest().to_string(),
                "signature": r.signature,
                "stub": r.stub.as_ref().map(|s| stub_json(&s.note, Some((&s.signature, same)))),
            }),
            Err(e) => serde_json::json!({
                "ok": false,
                "error": match e {
                    bundle_format::Error::Open { .. } => chain(e),
                    e => format!("{} failed verification: {}", name.display(), chain(e)),
                },
            }),
        };
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let r = result.map_err(|e| match e {
        // Its message names the file, and says why it cannot be opened.
        bundle_format::Error::Open { .. } => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(format!("{} failed verification", name.display())),
    })?;
    let m = r.bundle.manifest();
    outln!(
        "{}: ok ({} {}, {}, manifest {})",
        name.display(),
        m.id,
        m.version,
        signature_text(&r.signature, "unsigned"),
        r.bundle.manifest_digest()
    );
    if let Some(s) = &r.stub {
        let this = if same {
            "the same ELF as this capsa".to_owned()
        } else {
            format!(
                "not this capsa's ELF (this is capsa {})",
                super::stub::VERSION
            )
        };
        outln!(
            "  stub: capsa {}, ELF {}, matches its record; {}; {this}",
            s.note.capsa_version,
            s.note.elf_sha256,
            signature_text(&s.signature, "unsigned (integrity only)"),
        );
    }
    Ok(ExitCode::SUCCESS)
}
