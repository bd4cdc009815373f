//! Showing repository data to a person: strings escaped before they reach a terminal, dates
//! in UTC, and why a channel gave this client its release.
//!
//! Invariant: [`display`] output holds no control, bidi-override or isolate character (the
//! set of [`crate::meta::check::is_unsafe_char`]), whatever its input; the CLI shows every
//! repository string through it.

use crate::meta::check::is_unsafe_char;
use crate::meta::choose::Why;

/// `s` with every character that could rewrite a terminal or reorder text escaped as
/// `\u{…}` (and `\` itself doubled, so the escaping cannot be forged).
pub fn display(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Why a channel gave this client its release, in words (for `capsa update --check`).
pub fn why(w: &Why) -> String {
    match w {
        Why::Channel => "the channel's release".into(),
        Why::InRollout { bucket, percent } => {
            format!("in the staged rollout (this client's bucket {bucket} is below {percent}%)")
        }
        Why::OutsideRollout { bucket, percent } => format!(
            "the fallback: outside the staged rollout (this client's bucket {bucket} is not below {percent}%)"
        ),
        Why::Halted => "the fallback: the staged rollout was halted".into(),
        Why::Yanked => "the fallback: the channel's release was yanked".into(),
    }
}

/// What `update` does with a plan, in words.
pub fn action(a: super::Action) -> &'static str {
    use super::Action;
    match a {
        Action::UpToDate => "up to date with",
        Action::Update => "updates to",
        Action::PulledBack => "goes back (the publisher pulled the installed release) to",
        Action::Downgrade => "would downgrade (only with --allow-downgrade) to",
        Action::Held => "holds (rolled back from it)",
    }
}

/// Now, in Unix seconds.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls_and_bidi() {
        assert_eq!(display("Foo 2 ü"), "Foo 2 ü");
        let shown = display("a\u{1b}]0;owned\u{7}b\u{202e}c\\u{1b}");
        assert!(!shown.chars().any(is_unsafe_char), "{shown}");
        assert_eq!(shown, "a\\u{1b}]0;owned\\u{7}b\\u{202e}c\\\\u{1b}");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}
