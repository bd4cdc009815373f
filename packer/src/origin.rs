//! Where a captured file came from: the typed first column of the capture report
//! (`capsa inspect --report`, `capsa pack --explain`). Every capture stage sets
//! [`crate::capture::CaptureSet::origin`] before it adds files, and every item records the
//! origins that brought it, so the report never guesses from reason texts.

use serde::Serialize;

/// One source of captured files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// The recipe's `binaries`, `paths` or `files`.
    Listed,
    /// The ELF closure of a captured object, or the `#!` interpreter of a captured script.
    Closure,
    /// A dpkg package's file list (`packages`).
    Package { name: String },
    /// The base of system data every bundle gets (`base = true`).
    Base,
    /// A widening unit taken whole because a captured or traced file lies in it.
    Unit { name: String },
    /// Seen in a traced run of this command (`trace`).
    Trace { command: String },
    /// Made by the packer (the bundle's loader cache).
    Generated,
}

impl Origin {
    /// A short label for text output: `listed`, `closure`, `package zenity`, `trace git log`.
    pub fn label(&self) -> String {
        match self {
            Self::Listed => "listed".into(),
            Self::Closure => "closure".into(),
            Self::Package { name } => format!("package {name}"),
            Self::Base => "base".into(),
            Self::Unit { name } => format!("unit {name}"),
            Self::Trace { command } => format!("trace {command}"),
            Self::Generated => "generated".into(),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}
