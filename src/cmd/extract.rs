//! `capsa extract`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use bundle_format::Bundle;

use crate::cli::ExtractArgs;
use crate::output::{bar, size};

pub fn run(a: ExtractArgs) -> anyhow::Result<ExitCode> {
    let b = super::bundle_file::open(&a.bundle)?;
    extract_opened(&b, &a.bundle, &a.dir)
}

/// Extracts `b` into `dir`, calling the bundle `name` in what it prints.
pub fn extract_opened(b: &Bundle, name: &Path, dir: &Path) -> anyhow::Result<ExitCode> {
    let pb = bar("extracting");
    pb.set_length(b.manifest().unpacked_size());
    let stats = bundle_format::extract(b, dir, &mut |done| pb.set_position(done))
        .with_context(|| format!("cannot extract {} into {}", name.display(), dir.display()));
    pb.finish_and_clear();
    let stats = stats?;
    outln!(
        "extracted {} entries ({}) into {}",
        stats.entries,
        size(stats.bytes),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
