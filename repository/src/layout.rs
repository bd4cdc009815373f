//! Where things are in a repository, as paths relative to its root (the same strings name a
//! file under a publisher's directory and a URL under a server's base).
//!
//! Invariant: every path here is built from a validated digest, an app-id-free number or a
//! fixed name, so no repository data can steer a path (the catalog and app documents are
//! reached only through digests the signed index names).

use bundle_format::Digest;

/// The newest root, a copy of `roots/<N>.json`.
pub const ROOT: &str = "root.json";
/// The signed top of the repository: the only file whose change publishes anything.
pub const INDEX: &str = "index.json";
/// The catalog page.
pub const CATALOG: &str = "index.html";
/// Directories, in the order a mirror must copy them before the files above.
pub const IMMUTABLE_DIRS: [&str; 4] = ["objects", "blobs", "roots", "keys"];

/// `roots/<version>.json`.
pub fn root(version: u64) -> String {
    format!("roots/{version}.json")
}

/// `blobs/sha256/<hex>`: any blob, named by the sha256 of its bytes.
pub fn blob(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// `objects/sha256/<hh>/<hex>.zst`: one regular file's content, zstd-compressed, named by
/// the sha256 of the uncompressed content.
pub fn object(d: &Digest) -> String {
    let hex = d.hex();
    format!("objects/sha256/{}/{hex}.zst", &hex[..2])
}

/// `keys/<key id>.pub`: a convenience copy of a signer's public key.
pub fn key(key_id: &str) -> String {
    format!("keys/{key_id}.pub")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_fixed_shapes() {
        let d = Digest::of(b"x");
        assert_eq!(blob(&d), format!("blobs/sha256/{}", d.hex()));
        assert!(object(&d).starts_with(&format!("objects/sha256/{}/", &d.hex()[..2])));
        assert_eq!(root(3), "roots/3.json");
    }
}
