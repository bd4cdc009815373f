//! What the user agreed an app may use, remembered per identity in
//! `$XDG_DATA_HOME/capsa/consent/<id>@<publisher>.json` (outside anything a sandbox sees).
//!
//! The safe default needs no consent: no network, no host files, no sockets, no devices. Any
//! grant beyond it does: given at install, on a terminal prompt, in a desktop dialog, with
//! `--yes`, or by naming it with `--allow`. A consent covers the grants agreed to, so a later
//! bundle of the same identity that asks for no more is not asked about again; one that asks
//! for more is. A decline is remembered per manifest digest, so a double-click does not keep
//! asking; a terminal asks again.
//!
//! As a policy level ([`Record::level`]), consent denies every kind the manifest asks for and
//! allows back what the user agreed to.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use bundle_format::{Digest, Permission};
use serde::{Deserialize, Serialize};

use crate::dirs::{data_dir, private_dir};
use crate::error::{prep, DataError};
use crate::identity::Identity;
use crate::policy::{Changes, Grants};

/// The remembered answers for one identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Grants the user agreed to.
    #[serde(default)]
    pub allowed: Vec<Permission>,
    /// Manifests whose request the user declined.
    #[serde(default)]
    pub declined: BTreeSet<Digest>,
}

/// The consent file of `who`.
pub fn path(who: &Identity) -> PathBuf {
    data_dir()
        .join("consent")
        .join(format!("{}.json", who.dir_name()))
}

impl Record {
    /// The record of `who` (empty when there is none).
    pub fn load(who: &Identity) -> Result<Self, DataError> {
        let p = path(who);
        match fs::read(&p) {
            Ok(b) if b.len() < 1 << 20 => {
                serde_json::from_slice(&b).map_err(|e| DataError::Record {
                    path: p,
                    why: format!("{e}: remove the file to be asked again"),
                })
            }
            Ok(_) => Err(DataError::Record {
                path: p,
                why: "too large".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(prep(&p)(e)),
        }
    }

    /// Writes the record atomically (temporary file, fsync, rename).
    pub fn save(&self, who: &Identity) -> Result<(), DataError> {
        let p = path(who);
        let dir = p.parent().expect("consent dir");
        private_dir(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".capsa-")
            .tempfile_in(dir)
            .map_err(prep(dir))?;
        fs::write(
            tmp.path(),
            serde_json::to_vec_pretty(self).expect("serializes"),
        )
        .map_err(prep(tmp.path()))?;
        tmp.as_file().sync_all().map_err(prep(tmp.path()))?;
        tmp.persist(&p).map_err(|e| prep(&p)(e.error))?;
        Ok(())
    }

    /// What of `asked` the user has not agreed to.
    pub fn missing(&self, asked: &Grants) -> Vec<Permission> {
        asked.beyond(&Grants::from_list(&self.allowed))
    }

    /// Remembers a yes to `asked` (joined with what was agreed before).
    pub fn allow(&mut self, asked: &Grants, manifest: &Digest) {
        let joined = Grants::from_list(self.allowed.iter().chain(asked.iter()));
        self.allowed = joined.to_vec();
        self.declined.remove(manifest);
    }

    /// Remembers a no to this manifest's request.
    pub fn decline(&mut self, manifest: &Digest) {
        self.declined.insert(*manifest);
    }

    /// This consent as a policy level for a manifest asking `asked`: every asked kind denied,
    /// then what the user agreed to allowed back (each grant at most as strong as asked).
    pub fn level(&self, asked: &Grants) -> Changes {
        let agreed = Grants::from_list(&self.allowed);
        let missing = asked.beyond(&agreed);
        Changes {
            deny: asked.iter().map(Permission::key).collect(),
            allow: asked
                .iter()
                .filter(|g| !missing.contains(g))
                .cloned()
                .collect(),
        }
    }
}

/// The user's answer to "allow these?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allow,
    Deny,
    /// Nobody could be asked (no terminal, no desktop dialog).
    Unavailable,
}

/// What a run of a bundle file gets from consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The consent level for [`crate::policy::merge`].
    pub level: Changes,
    /// Asked-for grants the user has not agreed to: withheld from this run.
    pub withheld: Vec<Permission>,
}

/// Decides the consent for a bundle file run as `who`, asking through `ask` (given what
/// is missing and whether this manifest was declined before) only when something beyond the
/// safe default is asked for and not yet agreed; `yes` agrees without asking. Answers are
/// remembered (yes per identity, no per manifest digest).
pub fn decide(
    who: &Identity,
    manifest: &Digest,
    asked: &Grants,
    yes: bool,
    ask: &mut dyn FnMut(&[Permission], bool) -> Answer,
) -> Result<Decision, DataError> {
    let mut r = Record::load(who)?;
    let missing = r.missing(asked);
    if !missing.is_empty() {
        let answer = if yes {
            Answer::Allow
        } else {
            ask(&missing, r.declined.contains(manifest))
        };
        match answer {
            Answer::Allow => r.allow(asked, manifest),
            Answer::Deny => r.decline(manifest),
            Answer::Unavailable => {}
        }
        if answer != Answer::Unavailable {
            r.save(who)?;
        }
    }
    Ok(Decision {
        level: r.level(asked),
        withheld: r.missing(asked),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::merge;

    fn g(list: &[&str]) -> Grants {
        let v: Vec<Permission> = list.iter().map(|s| s.parse().unwrap()).collect();
        Grants::from_list(&v)
    }

    #[test]
    fn consent_allows_back_only_what_was_agreed() {
        let asked = g(&["network", "filesystem=home", "socket=x11"]);
        let mut r = Record::default();
        let m: Vec<Permission> = asked.to_vec();
        assert!(
            merge(&m, &[&r.level(&asked)]).is_empty(),
            "no consent: safe default"
        );
        r.allow(&g(&["socket=x11", "filesystem=home:ro"]), &Digest::of(b"m"));
        let got: Vec<String> = merge(&m, &[&r.level(&asked)])
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(got, ["socket=x11"], "home:ro agreed does not cover home rw");
        assert_eq!(r.missing(&asked).len(), 2);
        r.allow(&asked, &Digest::of(b"m"));
        assert!(r.missing(&asked).is_empty());
        assert_eq!(merge(&m, &[&r.level(&asked)]), asked);
    }
}
