//! `capsa keygen`.

use std::process::ExitCode;

use bundle_format::SecretKey;

use crate::cli::KeygenArgs;

pub fn run(a: KeygenArgs) -> anyhow::Result<ExitCode> {
    let key = SecretKey::generate()?;
    let (secret, public) = key.save(&a.name)?;
    outln!(
        "key {}: secret {} (keep private), public {}",
        key.public().key_id(),
        secret.display(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}
