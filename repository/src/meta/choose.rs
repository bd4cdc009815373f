//! Which release of a channel this client gets: staged rollouts decided by each client from
//! signed static data, with no server logic.
//!
//! A client's bucket for a rollout is `u64_be(SHA-256("rollout\0" ‖ seed ‖ "\0" ‖ app ‖ "\0" ‖
//! client_id)[0..8]) mod 100`; it is in the rollout when the bucket is below the percentage.
//! The same client keeps its bucket while the percentage grows, so nobody who got a release
//! loses it by a widening; a new seed reshuffles. A yanked release is never chosen.

use sha2::{Digest as _, Sha256};

use super::{AppDoc, ReleaseDoc};

/// The client's bucket, 0..=99.
pub fn bucket(seed: &str, app: &str, client_id: &str) -> u8 {
    let mut h = Sha256::new();
    for part in [
        b"rollout".as_slice(),
        seed.as_bytes(),
        app.as_bytes(),
        client_id.as_bytes(),
    ] {
        h.update(part);
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// Why a release was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The channel's release, with no rollout.
    Channel,
    /// In the rollout: bucket below percent.
    InRollout { bucket: u8, percent: u8 },
    /// The fallback: outside the rollout.
    OutsideRollout { bucket: u8, percent: u8 },
    /// The fallback: the rollout was halted.
    Halted,
    /// The fallback: the channel's release was yanked.
    Yanked,
}

/// What a channel gives this client, or `None` when the channel does not exist or it has
/// nothing to give (no fallback where one is needed, or only yanked releases).
pub fn choose<'a>(
    doc: &'a AppDoc,
    channel: &str,
    client_id: &str,
) -> Option<(&'a ReleaseDoc, Why)> {
    let c = doc.channels.get(channel)?;
    let main = doc.release(c.release)?;
    let fallback = || {
        c.fallback
            .and_then(|s| doc.release(s))
            .filter(|r| r.yanked.is_none())
    };
    if main.yanked.is_some() {
        return fallback().map(|r| (r, Why::Yanked));
    }
    let Some(r) = &c.rollout else {
        return Some((main, Why::Channel));
    };
    if r.halted {
        return fallback().map(|f| (f, Why::Halted));
    }
    let b = bucket(&r.seed, &doc.app, client_id);
    if b < r.percent {
        Some((
            main,
            Why::InRollout {
                bucket: b,
                percent: r.percent,
            },
        ))
    } else {
        fallback().map(|f| {
            (
                f,
                Why::OutsideRollout {
                    bucket: b,
                    percent: r.percent,
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("s", "org.a.B", "c1"), bucket("s", "org.a.B", "c1"));
        let ids: Vec<String> = (0..1000).map(|i| format!("{i:032x}")).collect();
        let inside = ids
            .iter()
            .filter(|c| bucket("1.2-r1", "org.a.B", c) < 50)
            .count();
        assert!(
            (450..=550).contains(&inside),
            "{inside} of 1000 in a 50% rollout"
        );
        // Widening keeps everyone who was in.
        let at10: Vec<_> = ids
            .iter()
            .filter(|c| bucket("x", "org.a.B", c) < 10)
            .collect();
        assert!(at10.iter().all(|c| bucket("x", "org.a.B", c) < 30));
        // Separators matter: ("ab","c") and ("a","bc") are different inputs.
        let differ = ids
            .iter()
            .any(|c| bucket("ab", "c.d.E", c) != bucket("a", "bc.d.E", c));
        assert!(differ);
    }
}
