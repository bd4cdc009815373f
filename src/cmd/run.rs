//! `capsa run`: launcher errors end with 125/126/127 and a hint, as podman and env do; the
//! app's own status passes through.

use std::process::ExitCode;

use launcher::{Command, LaunchError, Overrides};

use crate::cli::RunArgs;

fn fail(e: LaunchError) -> ExitCode {
    let (code, hint) = (e.exit_code(), e.hint());
    eprintln!(
        "capsa: error: {}",
        crate::output::error_chain(&anyhow::Error::new(e))
    );
    if let Some(h) = hint {
        eprintln!("capsa: hint: {h}");
    }
    ExitCode::from(code)
}

pub fn run(a: RunArgs) -> ExitCode {
    let key = match a
        .key
        .as_deref()
        .map(bundle_format::PublicKey::load)
        .transpose()
    {
        Ok(k) => k,
        Err(e) => {
            eprintln!(
                "capsa: error: {}",
                crate::output::error_chain(&anyhow::Error::new(e))
            );
            return ExitCode::from(125);
        }
    };
    let overrides = Overrides {
        allow: a.allow,
        deny: a.deny,
        command: a.command,
        env: a.env,
        args: a.args,
        ephemeral: a.ephemeral,
        require_landlock: a.require_landlock,
    };
    let mut cmd = Command::new(&a.app);
    cmd.overrides(overrides).report(a.report).trusted_key(key);
    match cmd.status(&mut |r| eprint!("{}", r.render())) {
        Ok(status) => ExitCode::from(status.code().clamp(0, 255) as u8),
        Err(e) => fail(e),
    }
}
