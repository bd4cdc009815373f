//! End to end: `keygen`, `pack --sign`, `verify --key`: a signature by the trusted key is
//! required when a key is given; another key, or no signature, fails.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

#[test]
fn signed_bundles_verify_only_with_their_key() {
    let dir = shared_tmp().join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let me = dir.join("me");
    let other = dir.join("other");
    ok(&["keygen", me.to_str().unwrap()]);
    ok(&["keygen", other.to_str().unwrap()]);
    let mode = std::fs::metadata(dir.join("me.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "secret key is readable by others");
    // keygen never overwrites a key.
    fails(&["keygen", me.to_str().unwrap()]);

    let recipe = build_hello(&shared_tmp().join("signed"));
    let signed = shared_tmp().join("signed.capsa");
    let key = dir.join("me.key");
    ok(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        signed.to_str().unwrap(),
        "--sign",
        key.to_str().unwrap(),
    ]);

    let s = signed.to_str().unwrap();
    let mine = dir.join("me.pub");
    let theirs = dir.join("other.pub");
    let out = ok(&["verify", s, "--key", mine.to_str().unwrap()]);
    assert!(out.contains("signed by trusted key"), "{out}");
    let err = fails(&["verify", s, "--key", theirs.to_str().unwrap()]);
    assert!(err.contains("not signed by the trusted key"), "{err}");
    let unsigned = hello_bundle().to_str().unwrap();
    fails(&["verify", unsigned, "--key", mine.to_str().unwrap()]);
    let inspect = ok(&["inspect", s]);
    assert!(inspect.contains("signed by key"), "{inspect}");
    // A secret key is not a public key.
    fails(&["verify", s, "--key", key.to_str().unwrap()]);
}
