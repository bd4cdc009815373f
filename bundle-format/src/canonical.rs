//! Canonical JSON: what the manifest, the table of contents and the signature block are written in.
//!
//! Canonical form: UTF-8, no insignificant white space, object keys sorted bytewise, no floats,
//! serde_json's string escaping. Readers re-encode what they parsed and require the same bytes,
//! which rejects duplicate keys, reordered keys, padding and any other second spelling.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Why bytes are not the canonical JSON of a `T`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    #[error("invalid JSON")]
    Parse(#[source] serde_json::Error),
    #[error("not in canonical form (duplicate or unsorted keys, white space, or floats)")]
    NotCanonical,
    #[error("floating-point numbers are not allowed")]
    Float,
}

/// Encodes `value` canonically.
pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let v = serde_json::to_value(value).map_err(CanonicalError::Parse)?;
    let mut out = Vec::new();
    write_value(&v, &mut out)?;
    Ok(out)
}

/// Decodes `bytes`, requiring them to be the canonical encoding of the result.
pub fn from_slice<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, CanonicalError> {
    let value: T = serde_json::from_slice(bytes).map_err(CanonicalError::Parse)?;
    if to_vec(&value)? != bytes {
        return Err(CanonicalError::NotCanonical);
    }
    Ok(value)
}

fn write_value(v: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match v {
        Value::Null | Value::Bool(_) | Value::String(_) => {
            serde_json::to_writer(&mut *out, v).map_err(CanonicalError::Parse)?
        }
        Value::Number(n) => {
            if n.is_f64() {
                return Err(CanonicalError::Float);
            }
            serde_json::to_writer(&mut *out, n).map_err(CanonicalError::Parse)?
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).map_err(CanonicalError::Parse)?;
                out.push(b':');
                write_value(&map[k], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn sorts_keys_and_rejects_other_spellings() {
        let mut m = BTreeMap::new();
        m.insert("b".to_owned(), 1u32);
        m.insert("a".to_owned(), 2u32);
        let bytes = to_vec(&m).unwrap();
        assert_eq!(bytes, br#"{"a":2,"b":1}"#);
        assert_eq!(from_slice::<BTreeMap<String, u32>>(&bytes).unwrap(), m);
        for bad in [
            &br#"{"b":1,"a":2}"#[..],
            br#"{"a":2, "b":1}"#,
            br#"{"a":2,"a":2,"b":1}"#,
        ] {
            assert!(
                from_slice::<BTreeMap<String, u32>>(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
