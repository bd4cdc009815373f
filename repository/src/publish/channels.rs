//! Edits of an app document: a new release (and where its channel points), promote, rollout,
//! halt and yank. Pure functions on [`AppDoc`]; the commands store and sign the result.
//!
//! Fallbacks: when a channel moves to another release, its clients outside a rollout (or all
//! of them after a halt or a yank) get the fallback, which is what the channel gave before:
//! its release, except when that one was halted or yanked (then its own fallback, so a halted
//! or yanked release never becomes anyone's fallback).

use std::collections::BTreeMap;

use crate::meta::{check::check_string, AppDoc, Channel, DocKind, ReleaseDoc, Rollout};

use super::error::{meta_err, PublishError};

/// A fresh rollout seed: 16 random bytes, hex.
pub fn new_seed() -> Result<String, PublishError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(PublishError::Random)?;
    Ok(hex::encode(b))
}

/// What the channel's clients get now, as the next release's fallback (see the module doc).
fn carried_fallback(doc: &AppDoc, channel: &str) -> Option<u64> {
    let c = doc.channels.get(channel)?;
    let usable = |seq: u64| doc.release(seq).is_some_and(|r| r.yanked.is_none());
    let halted = c.rollout.as_ref().is_some_and(|r| r.halted);
    if !halted && usable(c.release) {
        return Some(c.release);
    }
    c.fallback.filter(|&f| usable(f))
}

/// The fields of a new app's document, before its first release.
pub fn new_doc(app: &str, publisher: &str) -> AppDoc {
    AppDoc {
        kind: DocKind::App,
        app: app.to_owned(),
        publisher: publisher.to_owned(),
        name: String::new(),
        summary: String::new(),
        icon: None,
        releases: Vec::new(),
        channels: BTreeMap::new(),
    }
}

/// Appends `release` (its `seq` is set here: last + 1) and points `channel` at it, with an
/// optional rollout to `rollout` percent of the channel's clients. Returns the seq.
pub fn add_release(
    doc: &mut AppDoc,
    mut release: ReleaseDoc,
    channel: &str,
    rollout: Option<u8>,
) -> Result<u64, PublishError> {
    if doc.by_version(&release.version).is_some() {
        return Err(PublishError::VersionPublished {
            app: doc.app.clone(),
            version: release.version,
        });
    }
    let seq = doc.releases.last().map_or(1, |r| r.seq + 1);
    release.seq = seq;
    let fallback = carried_fallback(doc, channel);
    doc.releases.push(release);
    let rollout = match rollout {
        Some(percent) => Some(Rollout {
            percent,
            seed: new_seed()?,
            halted: false,
        }),
        None => None,
    };
    doc.channels.insert(
        channel.to_owned(),
        Channel {
            release: seq,
            fallback,
            rollout,
        },
    );
    Ok(seq)
}

fn seq_of(doc: &AppDoc, version: &str) -> Result<u64, PublishError> {
    doc.by_version(version)
        .map(|r| r.seq)
        .ok_or_else(|| PublishError::NoVersion {
            app: doc.app.clone(),
            version: version.to_owned(),
        })
}

fn channel_mut<'a>(doc: &'a mut AppDoc, channel: &str) -> Result<&'a mut Channel, PublishError> {
    let app = doc.app.clone();
    doc.channels
        .get_mut(channel)
        .ok_or_else(|| PublishError::NoChannel {
            app,
            channel: channel.to_owned(),
        })
}

/// Makes `version` the channel's release for everyone (a new channel when it does not
/// exist). Promoting the channel's own release ends its rollout.
pub fn promote(doc: &mut AppDoc, version: &str, channel: &str) -> Result<u64, PublishError> {
    let seq = seq_of(doc, version)?;
    if let Some(reason) = doc.release(seq).and_then(|r| r.yanked.clone()) {
        return Err(PublishError::Yanked {
            app: doc.app.clone(),
            version: version.to_owned(),
            reason,
        });
    }
    if let Some(c) = doc.channels.get_mut(channel).filter(|c| c.release == seq) {
        c.rollout = None;
        return Ok(seq);
    }
    let fallback = carried_fallback(doc, channel).filter(|&f| f != seq);
    doc.channels.insert(
        channel.to_owned(),
        Channel {
            release: seq,
            fallback,
            rollout: None,
        },
    );
    Ok(seq)
}

/// What `rollout` does to a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutChange {
    /// Give the channel's release to this percentage of clients (resumes a halted rollout,
    /// with the same seed, so the same clients are in).
    Percent(u8),
    /// Send every client to the fallback.
    Halt,
}

/// Changes the channel's rollout.
pub fn rollout(doc: &mut AppDoc, channel: &str, change: RolloutChange) -> Result<(), PublishError> {
    let app = doc.app.clone();
    let c = channel_mut(doc, channel)?.clone();
    let seed = match &c.rollout {
        Some(r) => r.seed.clone(),
        None => new_seed()?,
    };
    let new = match change {
        RolloutChange::Percent(percent) => Rollout {
            percent: percent.min(100),
            seed,
            halted: false,
        },
        RolloutChange::Halt => {
            let usable = c
                .fallback
                .and_then(|f| doc.release(f))
                .is_some_and(|r| r.yanked.is_none());
            if !usable {
                return Err(PublishError::NoFallback {
                    app,
                    channel: channel.to_owned(),
                });
            }
            Rollout {
                percent: c.rollout.as_ref().map_or(100, |r| r.percent),
                seed,
                halted: true,
            }
        }
    };
    channel_mut(doc, channel)?.rollout = Some(new);
    Ok(())
}

/// Marks `version` yanked (never chosen again; channels fall back). Returns the channels that
/// are then left with nothing to give.
pub fn yank(doc: &mut AppDoc, version: &str, reason: &str) -> Result<Vec<String>, PublishError> {
    check_string("yank reason", reason).map_err(meta_err("the yank reason"))?;
    let seq = seq_of(doc, version)?;
    if let Some(r) = doc.releases.iter_mut().find(|r| r.seq == seq) {
        r.yanked = Some(reason.to_owned());
    }
    let usable = |doc: &AppDoc, s: Option<u64>| {
        s.and_then(|s| doc.release(s))
            .is_some_and(|r| r.yanked.is_none())
    };
    Ok(doc
        .channels
        .iter()
        .filter(|(_, c)| !usable(doc, Some(c.release)) && !usable(doc, c.fallback))
        .map(|(n, _)| n.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::choose::{choose, Why};
    use bundle_format::{BlobRef, Digest};

    fn release(version: &str) -> ReleaseDoc {
        let d = Digest::of(version.as_bytes());
        let blob = BlobRef { digest: d, size: 1 };
        ReleaseDoc {
            seq: 0,
            version: version.into(),
            manifest: d,
            bundle: blob,
            head: blob,
            tail: blob,
            permissions: vec![],
            added: 0,
            yanked: None,
        }
    }

    fn doc() -> AppDoc {
        let mut d = new_doc("org.example.Foo", &"11".repeat(32));
        d.name = "Foo".into();
        d
    }

    fn got(d: &AppDoc, ch: &str) -> Option<(String, Why)> {
        choose(d, ch, "client").map(|(r, w)| (r.version.clone(), w))
    }

    #[test]
    fn releases_carry_the_channels_previous_release_as_fallback() {
        let mut d = doc();
        assert_eq!(
            add_release(&mut d, release("1.0"), "stable", None).unwrap(),
            1
        );
        assert_eq!(d.channels["stable"].fallback, None);
        assert_eq!(
            add_release(&mut d, release("1.1"), "stable", Some(50)).unwrap(),
            2
        );
        let c = &d.channels["stable"];
        assert_eq!((c.release, c.fallback), (2, Some(1)));
        assert_eq!(c.rollout.as_ref().unwrap().percent, 50);
        assert_eq!(c.rollout.as_ref().unwrap().seed.len(), 32);
        assert!(matches!(
            add_release(&mut d, release("1.1"), "stable", None),
            Err(PublishError::VersionPublished { .. })
        ));
        // A halted release never becomes a fallback.
        rollout(&mut d, "stable", RolloutChange::Halt).unwrap();
        assert_eq!(got(&d, "stable"), Some(("1.0".into(), Why::Halted)));
        add_release(&mut d, release("1.2"), "stable", None).unwrap();
        let c = &d.channels["stable"];
        assert_eq!(
            (c.release, c.fallback, c.rollout.is_none()),
            (3, Some(1), true)
        );
        d.validate().unwrap();
    }

    #[test]
    fn promote_rollout_halt_and_yank() {
        let mut d = doc();
        add_release(&mut d, release("1.0"), "stable", None).unwrap();
        add_release(&mut d, release("2.0"), "beta", Some(10)).unwrap();
        assert_eq!(got(&d, "stable").unwrap().0, "1.0");
        // Promote 2.0 to stable: 1.0 becomes the fallback.
        promote(&mut d, "2.0", "stable").unwrap();
        let c = &d.channels["stable"];
        assert_eq!((c.release, c.fallback), (2, Some(1)));
        // Rollout on stable, then widen: the seed stays.
        rollout(&mut d, "stable", RolloutChange::Percent(20)).unwrap();
        let seed = d.channels["stable"].rollout.clone().unwrap().seed;
        rollout(&mut d, "stable", RolloutChange::Percent(100)).unwrap();
        assert_eq!(d.channels["stable"].rollout.clone().unwrap().seed, seed);
        assert_eq!(got(&d, "stable").unwrap().0, "2.0");
        rollout(&mut d, "stable", RolloutChange::Halt).unwrap();
        assert_eq!(got(&d, "stable"), Some(("1.0".into(), Why::Halted)));
        // Resuming keeps the seed; promoting the channel's own release ends the rollout.
        rollout(&mut d, "stable", RolloutChange::Percent(30)).unwrap();
        assert!(!d.channels["stable"].rollout.clone().unwrap().halted);
        promote(&mut d, "2.0", "stable").unwrap();
        assert!(d.channels["stable"].rollout.is_none());
        // Beta has no fallback: halting it is refused.
        assert!(matches!(
            rollout(&mut d, "beta", RolloutChange::Halt),
            Err(PublishError::NoFallback { .. })
        ));
        assert!(matches!(
            rollout(&mut d, "nightly", RolloutChange::Percent(5)),
            Err(PublishError::NoChannel { .. })
        ));
        // Yank 2.0: stable falls back to 1.0; beta is left with nothing.
        let empty = yank(&mut d, "2.0", "crashes on start").unwrap();
        assert_eq!(empty, vec!["beta".to_string()]);
        assert_eq!(got(&d, "stable"), Some(("1.0".into(), Why::Yanked)));
        assert!(matches!(
            promote(&mut d, "2.0", "stable"),
            Err(PublishError::Yanked { .. })
        ));
        assert!(yank(&mut d, "1.0", "bad\u{1b}[2J").is_err());
        assert!(matches!(
            yank(&mut d, "9.9", "x"),
            Err(PublishError::NoVersion { .. })
        ));
        d.validate().unwrap();
    }
}
