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
        open_files: a.open_files,
    };
    let is_file = a.app.exists() || a.app.to_string_lossy().contains('/');
    let mut cmd = if is_file {
        Command::new(&a.app)
    } else {
        let id = a.app.to_string_lossy().into_owned();
        let layout = store::Layout::user();
        let installed = store::Release::current(&layout, &id)
            .and_then(|r| Ok((r.source(&layout), store::overrides::load(&layout, &id)?)));
        match installed {
            Ok((source, stored)) => {
                let mut c = Command::from_source(source);
                c.overrides(store::overrides::combine(&stored, &overrides));
                c
            }
            Err(e) => {
                eprintln!(
                    "capsa: error: {}",
                    crate::output::error_chain(&anyhow::Error::new(e))
                );
                return ExitCode::from(125);
            }
        }
    };
    if is_file {
        cmd.overrides(overrides);
    }
    cmd.report(a.report).trusted_key(key);
    match cmd.status(&mut |r| eprint!("{}", r.render())) {
        Ok(status) => ExitCode::from(status.code().clamp(0, 255) as u8),
        Err(e) => fail(e),
    }
}
