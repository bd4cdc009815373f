//! `capsa capture`: trace a run, write the starter recipe (never over an existing file unless
//! `--force`, and atomically: a temporary file beside it, renamed into place).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use packer::scout::Scout;

use crate::cli::CaptureArgs;

pub fn run(a: CaptureArgs) -> anyhow::Result<ExitCode> {
    if a.output.exists() && !a.force {
        anyhow::bail!(
            "{} exists: give another --output, or --force to replace it",
            a.output.display()
        );
    }
    let helper =
        super::pack::trace_helper().context("cannot find the capsa binary to trace with")?;
    let scout = Scout {
        argv: a.command.clone(),
        timeout: Duration::from_secs(a.timeout),
        helper,
    };
    let (starter, trace) = scout.run()?;
    let text = starter.to_toml();
    let dir = a
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".capsa-capture-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write a recipe in {}", dir.display()))?;
    // A recipe is no secret: the usual mode of a new file (tempfile makes 0600).
    use std::os::unix::fs::PermissionsExt;
    tmp.write_all(text.as_bytes())
        .and_then(|_| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    tmp.persist(&a.output)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&trace)?);
    }
    eprintln!(
        "capsa: the traced run ended: {}; {} paths, {} programs, {} connects seen",
        starter.ended,
        trace.accesses.len(),
        trace.execs.len(),
        trace.connects.len()
    );
    for (p, why) in &starter.skipped {
        eprintln!("capsa: not put in the recipe ({why}): {p}");
    }
    eprintln!(
        "capsa: wrote {}: read it, edit what it guessed, then `capsa pack {}`",
        a.output.display(),
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
