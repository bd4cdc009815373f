//! `capsa pack`: packs a recipe into a bundle; with `--self-exec` (or the recipe's
//! `[bundle] self-exec`) the plain bundle is packed into a private directory beside the output
//! and the self-executable file made from it ([`super::stub`]) is what lands at the output.

use std::process::ExitCode;

use std::path::{Path, PathBuf};

use anyhow::Context;
use bundle_format::{Bundle, Compression};
use packer::pack::{report_by_layer, source_date_epoch_from_env};
use packer::{PackOptions, Recipe};

use crate::cli::PackArgs;
use crate::output::{size, PackBar};

/// This binary as the tracee's helper: `capsa __trace-exec -- ARGV`.
pub fn trace_helper() -> Option<packer::TraceHelper> {
    std::env::current_exe()
        .ok()
        .map(|program| packer::TraceHelper {
            program,
            args: vec!["__trace-exec".into(), "--".into()],
        })
}

pub fn run(a: PackArgs) -> anyhow::Result<ExitCode> {
    if let Some(from) = &a.from {
        return super::stub::pack_from(&a, from);
    }
    let recipe = Recipe::load(&a.recipe)?;
    let sign = super::stub::load_keys(&a.sign)?;
    let self_exec = a.self_exec || recipe.bundle.self_exec;
    if self_exec && sign.len() > bundle_format::stub::MAX_NOTE_SIGNATURES {
        return Err(bundle_format::StubError::TooManyKeys(sign.len()).into());
    }
    if a.stub.is_some() && !self_exec {
        anyhow::bail!(
            "--stub needs --self-exec (or self-exec = true in the recipe's [bundle] table)"
        );
    }
    // A self-executable file is made from the plain bundle, packed into a private directory
    // beside the output; only the finished file is renamed into place.
    let out = a.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!("{}-{}.capsa", recipe.app.id, recipe.app.version))
    });
    let staging = if self_exec {
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Some(
            tempfile::Builder::new()
                .prefix(".capsa-self-exec-")
                .tempdir_in(dir)
                .with_context(|| {
                    format!("cannot create a temporary directory in {}", dir.display())
                })?,
        )
    } else {
        None
    };
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let opts = PackOptions {
        output: Some(match &staging {
            Some(dir) => dir.path().join("plain.capsa"),
            None => out.clone(),
        }),
        compression: Compression {
            level: a.level,
            threads,
        },
        sign,
        allow_missing: a.allow_missing,
        source_date_epoch: source_date_epoch_from_env(),
        generator: format!("capsa {}", env!("CARGO_PKG_VERSION")),
        ld_cache: None,
        trace_helper: trace_helper(),
    };
    let mut progress = PackBar::new("compressing");
    let mut packed = packer::pack(&recipe, &opts, &mut progress)
        .with_context(|| format!("cannot pack {}", a.recipe.display()))?;
    let stub = match &staging {
        Some(_) => {
            let plain = Bundle::open(&packed.path)
                .with_context(|| format!("cannot open {}", packed.path.display()))?;
            let note = super::stub::write(
                &out,
                &plain,
                a.stub.as_deref(),
                &super::stub::load_keys(&a.sign)?,
            )?;
            packed.path = out.clone();
            packed.file_size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            Some(note)
        }
        None => None,
    };
    drop(staging);
    if a.json {
        let v = serde_json::json!({
            "path": packed.path,
            "id": packed.manifest.id,
            "version": packed.manifest.version,
            "manifest_digest": packed.manifest_digest.to_string(),
            "size": packed.file_size,
            "layers": packed.manifest.layers,
            "report": if a.explain { serde_json::to_value(&packed.report)? } else { serde_json::Value::Null },
            "stub": stub.as_ref().map(|n| super::verify::stub_json(n, None)),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if a.explain {
        for (layer, entries) in report_by_layer(&packed.report) {
            outln!("[{layer}]");
            for e in entries {
                let pkg = e
                    .package
                    .as_ref()
                    .map(|p| format!(" (package {p})"))
                    .unwrap_or_default();
                outln!("  {}  <- {}{pkg}", e.path, e.reasons.join("; "));
            }
        }
        for w in &packed.report.warnings {
            outln!("warning: {w}");
        }
        for m in &packed.report.allowed_missing {
            outln!("missing (accepted): {m}");
        }
    }
    for line in packer::traced::summary(&packed.report.skipped) {
        eprintln!("capsa: {line}");
    }
    let files: u64 = packed.manifest.layers.iter().map(|l| l.entries).sum();
    let unpacked: u64 = packed.manifest.layers.iter().map(|l| l.unpacked_size).sum();
    outln!(
        "packed {} {} into {} ({}, {} entries, {} unpacked)",
        packed.manifest.id,
        packed.manifest.version,
        packed.path.display(),
        size(packed.file_size),
        files,
        size(unpacked)
    );
    if let Some(note) = &stub {
        outln!("  self-executable: {}", super::stub::describe(note));
    }
    if !packed.report.warnings.is_empty() && !a.explain {
        eprintln!(
            "capsa: {} warnings (see `capsa inspect --report {}`)",
            packed.report.warnings.len(),
            packed.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
