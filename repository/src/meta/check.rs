//! What every string and number in repository metadata must be, and the error for metadata
//! that is not so. Repository strings reach terminals and the catalog page: they are bounded
//! here and escaped where they are shown, never trusted.

/// Why metadata bytes were refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    #[error("metadata is larger than its cap of {cap} bytes")]
    TooLarge { cap: u64 },
    #[error("metadata is not canonical JSON of the expected document")]
    Decode(#[source] bundle_format::canonical::CanonicalError),
    #[error("metadata cannot be encoded")]
    Encode(#[source] bundle_format::canonical::CanonicalError),
    #[error("invalid metadata: {0}")]
    Invalid(String),
    #[error("the {what} is not signed by the keys this client trusts")]
    Signature { what: &'static str },
    #[error("root version {got} where {expected} was expected")]
    RootVersion { expected: u64, got: u64 },
}

/// The longest string accepted anywhere in metadata.
pub const MAX_STRING: usize = 4096;

/// A bounded string without control or bidi-override characters.
pub fn check_string(what: &str, s: &str) -> Result<(), MetaError> {
    if s.len() > MAX_STRING {
        return Err(MetaError::Invalid(format!(
            "{what} is longer than {MAX_STRING} bytes"
        )));
    }
    if s.chars().any(is_unsafe_char) {
        return Err(MetaError::Invalid(format!(
            "{what} contains a control or bidi character"
        )));
    }
    Ok(())
}

/// Characters that could rewrite a terminal or reorder what a reader sees.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// A release's version text: 1 to 64 printable ASCII characters, no space.
pub fn check_version_text(v: &str) -> Result<(), MetaError> {
    let ok = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(MetaError::Invalid(format!(
            "{:?} is not a version (1-64 printable ASCII characters)",
            v
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_with_escapes_or_bidi_are_refused() {
        assert!(check_string("name", "Foo 2").is_ok());
        assert!(check_string("name", "Foo\u{1b}[2J").is_err());
        assert!(check_string("name", "Foo\u{202e}oof").is_err());
        assert!(check_string("name", &"x".repeat(MAX_STRING + 1)).is_err());
        assert!(check_version_text("1.0-rc1").is_ok());
        assert!(check_version_text("1 0").is_err());
        assert!(check_version_text("").is_err());
    }
}
