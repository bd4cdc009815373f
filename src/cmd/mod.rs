//! One module per subcommand; each turns arguments into a library call and prints the result.

mod bundle_file;
mod capture;
mod extract;
mod gc;
mod inspect;
mod keygen;
mod pack;
mod remote;
mod repo;
mod run;
pub mod selfexec;
mod store;
mod stub;
mod verify;

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Pack(a) => pack::run(a),
        Command::Run(a) => Ok(run::run(a)),
        Command::Install(a) => store::install(a),
        Command::Uninstall(a) => store::uninstall(a),
        Command::List(a) => store::list(a),
        Command::Info(a) => store::info(a),
        Command::Override(a) => store::override_(a),
        Command::Reset(a) => store::reset(a),
        Command::Diff(a) => store::diff(a),
        Command::Integrate(a) => store::integrate(a),
        Command::Gc(a) => gc::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Extract(a) => extract::run(a),
        Command::StripStub(a) => stub::strip(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Remote(a) => remote::remote(a),
        Command::Search(a) => remote::search(a),
        Command::Update(a) => remote::update(a),
        Command::Rollback(a) => remote::rollback(a),
        Command::Repo(a) => repo::run(a),
        Command::Capture(a) => capture::run(a),
        Command::TraceExec(a) => {
            let e = trace::child_main(&a.argv);
            eprintln!("capsa: cannot run the traced command: {e}");
            Ok(ExitCode::from(127))
        }
        Command::Completions(a) => {
            clap_complete::generate(
                a.shell,
                &mut Cli::command(),
                "capsa",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
