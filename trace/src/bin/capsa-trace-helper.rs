//! Test tooling: `capsa-trace-helper ARGV...` traces itself and execs `ARGV` (what
//! `capsa`'s hidden subcommand does), for the crate's own tests.

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let err = trace::child_main(&argv);
    eprintln!("capsa-trace-helper: cannot run the traced command: {err}");
    std::process::exit(127);
}
