//! The command line of a self-executable bundle: leading `--capsa-…` arguments are the
//! launcher's own options, `--` ends them, and everything else (from the first argument that
//! is not a launcher option on) goes to the app untouched, `--help` and `--ephemeral` included.

use std::ffi::OsString;
use std::path::PathBuf;

/// What the launcher is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the app (`capsa run FILE -- ARGS`).
    Run,
    Info,
    Report,
    Extract(PathBuf),
    Install,
    Verify,
    Help,
}

impl Action {
    fn option(&self) -> &'static str {
        match self {
            Action::Run => "(run)",
            Action::Info => "--capsa-info",
            Action::Report => "--capsa-report",
            Action::Extract(_) => "--capsa-extract",
            Action::Install => "--capsa-install",
            Action::Verify => "--capsa-verify",
            Action::Help => "--capsa-help",
        }
    }
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubArgs {
    pub action: Action,
    /// `--capsa-yes`: grant without asking (a run, remembered) or install without asking.
    pub yes: bool,
    /// The app's arguments.
    pub app_args: Vec<String>,
}

/// Why a command line is refused (exit 125, as `capsa run`'s own usage errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

fn usage(s: impl Into<String>) -> Usage {
    Usage(format!("{} (see --capsa-help)", s.into()))
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Result<StubArgs, Usage> {
    let mut it = args.into_iter().peekable();
    let mut action = Action::Run;
    let mut yes = false;
    while let Some(arg) = it.peek() {
        let Some(text) = arg.to_str() else { break };
        if text == "--" {
            it.next();
            break;
        }
        let Some(opt) = text.strip_prefix("--capsa-") else {
            break;
        };
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (opt.to_owned(), None),
        };
        it.next();
        let next = match name.as_str() {
            "info" => Action::Info,
            "report" => Action::Report,
            "install" => Action::Install,
            "verify" => Action::Verify,
            "help" => Action::Help,
            "extract" => {
                let dir = match value.clone() {
                    Some(v) => OsString::from(v),
                    None => it
                        .next()
                        .ok_or_else(|| usage("--capsa-extract needs a directory"))?,
                };
                Action::Extract(PathBuf::from(dir))
            }
            "yes" => {
                yes = true;
                Action::Run
            }
            _ => return Err(usage(format!("unknown launcher option --capsa-{name}"))),
        };
        if value.is_some() && !matches!(next, Action::Extract(_)) {
            return Err(usage(format!("--capsa-{name} takes no value")));
        }
        if next != Action::Run {
            if action != Action::Run {
                return Err(usage(format!(
                    "{} and {} cannot be given together",
                    action.option(),
                    next.option()
                )));
            }
            action = next;
        }
    }
    let app_args = it
        .enumerate()
        .map(|(i, a)| {
            a.into_string()
                .map_err(|_| usage(format!("the app's argument {} is not valid UTF-8", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if action != Action::Run && !app_args.is_empty() {
        return Err(usage(format!(
            "{} takes no app arguments (got {:?})",
            action.option(),
            app_args[0]
        )));
    }
    if yes && !matches!(action, Action::Run | Action::Install) {
        return Err(usage(format!(
            "--capsa-yes goes with a run or --capsa-install, not {}",
            action.option()
        )));
    }
    Ok(StubArgs {
        action,
        yes,
        app_args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<StubArgs, Usage> {
        parse(args.iter().map(OsString::from).collect())
    }

    fn run_with(args: &[&str]) -> Vec<String> {
        let a = p(args).unwrap();
        assert_eq!(a.action, Action::Run);
        a.app_args
    }

    #[test]
    fn app_arguments_pass_through_untouched() {
        assert_eq!(run_with(&[]), Vec::<String>::new());
        assert_eq!(
            run_with(&["--help", "--ephemeral"]),
            ["--help", "--ephemeral"]
        );
        assert_eq!(run_with(&["-c", "--capsa-info"]), ["-c", "--capsa-info"]);
        assert_eq!(
            run_with(&["--", "--capsa-info", "--"]),
            ["--capsa-info", "--"]
        );
        assert_eq!(run_with(&["x", "--", "y"]), ["x", "--", "y"]);
        let a = p(&["--capsa-yes", "--", "--capsa-yes"]).unwrap();
        assert!(a.yes);
        assert_eq!(a.app_args, ["--capsa-yes"]);
    }

    #[test]
    fn launcher_options() {
        assert_eq!(p(&["--capsa-info"]).unwrap().action, Action::Info);
        assert_eq!(p(&["--capsa-report"]).unwrap().action, Action::Report);
        assert_eq!(p(&["--capsa-verify"]).unwrap().action, Action::Verify);
        assert_eq!(p(&["--capsa-help"]).unwrap().action, Action::Help);
        let e = Action::Extract("d".into());
        assert_eq!(p(&["--capsa-extract", "d"]).unwrap().action, e);
        assert_eq!(p(&["--capsa-extract=d"]).unwrap().action, e);
        let i = p(&["--capsa-install", "--capsa-yes"]).unwrap();
        assert_eq!((i.action, i.yes), (Action::Install, true));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for (args, want) in [
            (
                &["--capsa-nope"][..],
                "unknown launcher option --capsa-nope",
            ),
            (&["--capsa-extract"], "needs a directory"),
            (&["--capsa-info=x"], "takes no value"),
            (
                &["--capsa-info", "--capsa-verify"],
                "cannot be given together",
            ),
            (&["--capsa-info", "x"], "takes no app arguments"),
            (&["--capsa-yes", "--capsa-verify"], "--capsa-yes goes with"),
        ] {
            let e = p(args).unwrap_err().0;
            assert!(
                e.contains(want) && e.ends_with("(see --capsa-help)"),
                "{args:?}: {e}"
            );
        }
    }
}
