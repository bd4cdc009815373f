//! The `capsa` binary: parses the command line, dispatches to the libraries, reports errors.
//! No logic lives here beyond presentation.

#[macro_use]
mod output;
mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
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
