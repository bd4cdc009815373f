//! `capsa verify`.

use std::process::ExitCode;

use anyhow::Context;
use bundle_format::{Bundle, PublicKey};

use crate::cli::VerifyArgs;
use crate::output::bar;

pub fn run(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = a.key.as_deref().map(PublicKey::load).transpose()?;
    let result = Bundle::open(&a.bundle).and_then(|b| {
        let pb = bar("verifying");
        pb.set_length(b.manifest().layers.iter().map(|l| l.size).sum());
        let r = b.verify(key.as_ref(), &mut |done| pb.set_position(done));
        pb.finish_and_clear();
        r.map(|state| (b, state))
    });
    if a.json {
        let v = match &result {
            Ok((b, state)) => {
                serde_json::json!({"ok": true, "manifest_digest": b.manifest_digest().to_string(), "signature": state})
            }
            Err(e) => {
                serde_json::json!({"ok": false, "error": crate::output::error_chain(&anyhow::anyhow!(e.to_string()))})
            }
        };
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let (b, state) =
        result.with_context(|| format!("{} failed verification", a.bundle.display()))?;
    let sig = match state {
        bundle_format::SignatureState::Unsigned => "unsigned".to_owned(),
        bundle_format::SignatureState::Untrusted { key_ids } => {
            format!("signed by {} (no trusted key given)", key_ids.join(", "))
        }
        bundle_format::SignatureState::Trusted { key_id } => {
            format!("signed by trusted key {key_id}")
        }
    };
    outln!(
        "{}: ok ({} {}, {}, manifest {})",
        a.bundle.display(),
        b.manifest().id,
        b.manifest().version,
        sig,
        b.manifest_digest()
    );
    Ok(ExitCode::SUCCESS)
}
