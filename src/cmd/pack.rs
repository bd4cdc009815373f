//! `capsa pack`.

use std::process::ExitCode;

use anyhow::Context;
use bundle_format::{Compression, SecretKey};
use packer::pack::{report_by_layer, source_date_epoch_from_env};
use packer::{PackOptions, Recipe};

use crate::cli::PackArgs;
use crate::output::{bar, size, PackBar};

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
    let recipe = Recipe::load(&a.recipe)?;
    let sign = a
        .sign
        .iter()
        .map(|k| SecretKey::load(k))
        .collect::<Result<Vec<_>, _>>()?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let opts = PackOptions {
        output: a.output,
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
    let mut progress = PackBar(bar("packing"));
    let packed = packer::pack(&recipe, &opts, &mut progress)
        .with_context(|| format!("cannot pack {}", a.recipe.display()))?;
    if a.json {
        let v = serde_json::json!({
            "path": packed.path,
            "id": packed.manifest.id,
            "version": packed.manifest.version,
            "manifest_digest": packed.manifest_digest.to_string(),
            "size": packed.file_size,
            "layers": packed.manifest.layers,
            "report": if a.explain { serde_json::to_value(&packed.report)? } else { serde_json::Value::Null },
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
    if !packed.report.warnings.is_empty() && !a.explain {
        eprintln!(
            "capsa: {} warnings (see `capsa inspect --report {}`)",
            packed.report.warnings.len(),
            packed.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
