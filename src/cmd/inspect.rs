//! `capsa inspect`: a bundle's manifest, layers, permissions, signature state and launcher
//! stub (as its note records it; `capsa verify` checks it).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use bundle_format::{Bundle, EntryKind, SignatureState, StubState};

use super::store::safe;

use crate::cli::InspectArgs;
use crate::output::size;

fn signature_text(s: &SignatureState) -> String {
    match s {
        SignatureState::Unsigned => "unsigned".into(),
        SignatureState::Untrusted { key_ids } => {
            format!("signed by key {} (valid; not checked against a trusted key: use `capsa verify --key`)", key_ids.join(", "))
        }
        SignatureState::Trusted { key_id } => format!("signed by trusted key {key_id}"),
    }
}

/// The launcher stub as JSON: none, recorded (its note, not checked: `verify` does),
/// unrecorded or damaged.
fn stub_json(s: &StubState) -> serde_json::Value {
    match s {
        StubState::None => serde_json::Value::Null,
        StubState::Recorded(note) => {
            let mut v = super::verify::stub_json(note, None);
            v["state"] = "recorded".into();
            v
        }
        StubState::Unrecorded { len } => {
            serde_json::json!({"state": "unrecorded", "stub_len": len})
        }
        StubState::Damaged { len, problem } => {
            serde_json::json!({"state": "damaged", "stub_len": len, "problem": problem.to_string()})
        }
    }
}

fn stub_text(s: &StubState) -> Option<String> {
    Some(match s {
        StubState::None => return None,
        StubState::Recorded(n) => format!(
            "capsa {}, {} ELF in a {} stub, reads format versions up to {}, {} (checked by `capsa verify`)",
            safe(&n.capsa_version),
            size(n.elf_len),
            size(n.region_len().unwrap_or(0)),
            n.reads_format,
            if n.signatures.is_empty() {
                "unsigned".to_owned()
            } else {
                let ids: Vec<String> = n.signatures.iter().map(|s| s.public_key.key_id()).collect();
                format!("signed by {}", ids.join(", "))
            }
        ),
        StubState::Unrecorded { len } => format!(
            "unrecorded: {} in front of the payload without a stub note (not made by `capsa pack --self-exec`; nothing vouches for it)",
            size(*len)
        ),
        StubState::Damaged { len, problem } => {
            format!("{} with a damaged note: {problem}", size(*len))
        }
    })
}

/// The manifest's `created`: the SOURCE_DATE_EPOCH it was packed with, or 0 for none.
fn created_text(created: u64) -> String {
    match created {
        0 => "not recorded (packed without SOURCE_DATE_EPOCH)".into(),
        t => format!(
            "{} (SOURCE_DATE_EPOCH {t})",
            repository::client::text::utc(t)
        ),
    }
}

pub fn run(a: InspectArgs) -> anyhow::Result<ExitCode> {
    let b = super::bundle_file::open(&a.bundle)?;
    show(&b, &a, &a.bundle)
}

/// Prints what `a` asks for about `b`, calling the file `name`.
pub fn show(b: &Bundle, a: &InspectArgs, name: &Path) -> anyhow::Result<ExitCode> {
    let stub = b
        .stub()
        .with_context(|| format!("cannot read the launcher stub of {}", name.display()))?;
    let sig = b
        .check_signatures(None)
        .with_context(|| format!("bad signature in {}", name.display()))?;
    let m = b.manifest();
    let tocs = if a.files {
        Some(
            b.tocs()
                .with_context(|| format!("cannot read {}", name.display()))?,
        )
    } else {
        None
    };
    let report = if a.report {
        b.report()
            .with_context(|| format!("cannot read the capture report of {}", name.display()))?
    } else {
        None
    };
    if a.json {
        let mut v = serde_json::json!({
            "path": name,
            "file_size": b.file_len(),
            "stub_size": b.stub_len(),
            "stub": stub_json(&stub),
            "manifest_digest": b.manifest_digest().to_string(),
            "unpacked_size": m.unpacked_size(),
            "manifest": m,
            "signature": sig,
        });
        if let Some(tocs) = &tocs {
            v["files"] = serde_json::to_value(tocs)?;
        }
        if let Some(r) = report {
            v["report"] = r;
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{} {} ({}): {}", m.id, m.version, m.arch, m.name);
    outln!("  manifest     {}", b.manifest_digest());
    outln!("  file         {} ({})", name.display(), size(b.file_len()));
    if let Some(t) = stub_text(&stub) {
        outln!("  stub         {t}");
    }
    outln!("  unpacked     {}", size(m.unpacked_size()));
    outln!("  created      {}", created_text(m.created));
    outln!("  command      {}", m.command.join(" "));
    let grants: Vec<String> = m.permissions.grants.iter().map(|g| g.to_string()).collect();
    outln!(
        "  permissions  {} (landlock {})",
        if grants.is_empty() {
            "none".into()
        } else {
            grants.join(", ")
        },
        m.permissions.landlock.as_str()
    );
    let mut req = Vec::new();
    if let Some(g) = &m.requires.glibc {
        req.push(format!("GLIBC_{g} (bundled)"));
    }
    if let Some(k) = &m.requires.kernel {
        req.push(format!("kernel >= {k}"));
    }
    outln!(
        "  requires     {}",
        if req.is_empty() {
            "-".into()
        } else {
            req.join(", ")
        }
    );
    if let Some(d) = &m.desktop {
        outln!(
            "  desktop      {} mime types: {}",
            d.name.as_deref().unwrap_or(&m.name),
            if d.mime_types.is_empty() {
                "-".into()
            } else {
                d.mime_types.join(", ")
            }
        );
    }
    outln!("  signature    {}", signature_text(&sig));
    outln!("  layers");
    for l in &m.layers {
        outln!(
            "    {:<5} {}  {:>9} compressed  {:>9} unpacked  {} entries",
            l.role.as_str(),
            l.digest.short(),
            size(l.size),
            size(l.unpacked_size),
            l.entries
        );
    }
    if let Some(tocs) = tocs {
        for (l, toc) in m.layers.iter().zip(tocs) {
            outln!("files of layer {}:", l.role.as_str());
            for e in toc.entries {
                let t = match e.kind {
                    EntryKind::Dir => 'd',
                    EntryKind::File => '-',
                    EntryKind::Symlink => 'l',
                    EntryKind::Hardlink => 'h',
                };
                let target = e.target.map(|t| format!(" -> {t}")).unwrap_or_default();
                outln!("  {t} {:o} {:>10} {}{target}", e.mode, e.size, e.path);
            }
        }
    }
    if let Some(r) = report {
        print_report(&r)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One origin of the report's JSON as text: `listed`, `package git`, `trace git log`.
fn origin_label(o: &serde_json::Value) -> String {
    let kind = o["kind"].as_str().unwrap_or("?");
    match (o["name"].as_str(), o["command"].as_str()) {
        (Some(n), _) => format!("{kind} {n}"),
        (_, Some(c)) => format!("{kind} `{c}`"),
        _ => kind.to_owned(),
    }
}

fn strings(v: &serde_json::Value) -> impl Iterator<Item = &str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str())
}

/// The capture report as text: per file its layer, origins (reports from before origins
/// existed show none), package and reasons; then the traced runs, what they left out and
/// what they looked for in vain.
fn print_report(r: &serde_json::Value) -> anyhow::Result<()> {
    outln!("capture report:");
    for f in r["files"].as_array().into_iter().flatten() {
        let origins: Vec<String> = f["origins"]
            .as_array()
            .into_iter()
            .flatten()
            .map(origin_label)
            .collect();
        let pkg = f["package"]
            .as_str()
            .map(|p| format!(" (package {p})"))
            .unwrap_or_default();
        let reasons: Vec<&str> = strings(&f["reasons"]).collect();
        outln!(
            "  [{}] {}  from {}{pkg}  <- {}",
            f["layer"].as_str().unwrap_or("?"),
            f["path"].as_str().unwrap_or("?"),
            if origins.is_empty() {
                "?".into()
            } else {
                origins.join(", ")
            },
            reasons.join("; ")
        );
    }
    for t in r["traces"].as_array().into_iter().flatten() {
        let timed_out = if t["timed_out"].as_bool() == Some(true) {
            ", killed at the timeout"
        } else {
            ""
        };
        outln!(
            "  traced: {}  ({}{timed_out})",
            t["command"].as_str().unwrap_or("?"),
            t["exit"]
        );
    }
    for s in r["skipped"].as_array().into_iter().flatten() {
        outln!(
            "  not captured ({}): {}  [trace `{}`]",
            s["reason"].as_str().unwrap_or("?"),
            s["path"].as_str().unwrap_or("?"),
            s["command"].as_str().unwrap_or("?")
        );
    }
    for m in strings(&r["missing"]) {
        outln!("  looked for, missing on this machine: {m}");
    }
    for w in strings(&r["warnings"]) {
        outln!("  warning: {w}");
    }
    for w in strings(&r["allowed_missing"]) {
        outln!("  missing (accepted): {w}");
    }
    Ok(())
}
