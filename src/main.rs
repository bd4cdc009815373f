//! The `capsa` binary: parses the command line, dispatches to the libraries, reports errors.
//! No logic lives here beyond presentation. Started from a self-executable bundle (one that
//! ends with a bundle trailer), it is that bundle's launcher instead ([`cmd::selfexec`]).

#[macro_use]
mod output;
mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if cmd::selfexec::detect() {
        return cmd::selfexec::main();
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // `capsa run` fails with 125 whatever went wrong in capsa, as podman does.
        Err(e) if e.use_stderr() && std::env::args().nth(1).as_deref() == Some("run") => {
            let _ = e.print();
            return ExitCode::from(125);
        }
        Err(e) => e.exit(),
    };
    match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("capsa: error: {}", output::error_chain(&err));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod man_tests;
