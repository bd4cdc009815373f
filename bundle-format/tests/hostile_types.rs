//! Hostile layer entries, part 2 (threats.md probes BND-07, BND-08, BND-12): devices, FIFOs,
//! sparse files and other entry types; setuid, setgid, sticky and world-writable modes; PAX
//! records (xattrs such as `security.capability`, and `path`, `linkpath`, `size` overrides that
//! make parsers disagree). Same harness and rules as `hostile.rs`.

mod common;

use common::*;
use tar::EntryType;

fn cases() -> Vec<Case> {
    let pwned = b"pwned";
    let mut out = Vec::new();
    // BND-07: devices, fifos and other special types.
    for (name, t) in [
        ("char device", EntryType::Char),
        ("block device", EntryType::Block),
        ("fifo", EntryType::Fifo),
        ("contiguous", EntryType::Continuous),
        ("GNU sparse", EntryType::GNUSparse),
        ("pax global header", EntryType::XGlobalHeader),
        ("unknown type Z", EntryType::new(b'Z')),
    ] {
        out.push(case(
            name,
            vec![Raw::new(t, b"dev", 0o644)],
            vec![f("dev", b"")],
            TYPE,
        ));
    }
    // BND-08: special modes.
    for (name, raw, toc) in [
        (
            "setuid file",
            rfile(b"x", pwned).mode(0o4755),
            f("x", pwned),
        ),
        (
            "setgid file",
            rfile(b"x", pwned).mode(0o2755),
            f("x", pwned),
        ),
        ("0666 file", rfile(b"x", pwned).mode(0o666), f("x", pwned)),
        ("0777 file", rfile(b"x", pwned).mode(0o777), f("x", pwned)),
        ("0600 file", rfile(b"x", pwned).mode(0o600), f("x", pwned)),
        (
            "S_IFREG bits",
            rfile(b"x", pwned).mode(0o100644),
            f("x", pwned),
        ),
        ("sticky dir", rdir(b"d/").mode(0o1777), d("d")),
        ("0777 dir", rdir(b"d/").mode(0o777), d("d")),
        ("setgid dir", rdir(b"d/").mode(0o2755), d("d")),
        ("setuid symlink", rsym(b"l", b"x").mode(0o4777), s("l", "x")),
    ] {
        out.push(case(name, vec![raw], vec![toc], MISMATCH));
    }
    // BND-08 and BND-12: PAX records (xattrs, overriding path, link or size).
    let smuggled = tar_block(EntryType::Regular, b"../evil", 0o644, 5, b"", pwned);
    for (name, raw) in [
        (
            "xattr security.capability",
            rfile(b"x", pwned).pax(
                "SCHILY.xattr.security.capability",
                b"\x01\0\0\x02\xff\xff\xff\xff",
            ),
        ),
        (
            "xattr trusted.overlay.opaque",
            rfile(b"x", pwned).pax("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ),
        (
            "pax path ../evil",
            rfile(b"x", pwned).pax("path", b"../evil"),
        ),
        (
            "pax path over a GNU long name",
            rfile(b"../evil", pwned).pax("path", b"x").long(),
        ),
        (
            "pax linkpath",
            rsym(b"x", b"y").pax("linkpath", b"/etc/shadow"),
        ),
        (
            "pax uid/gid",
            rfile(b"x", pwned).pax("uid", b"0").pax("gid", b"0"),
        ),
        ("pax mtime", rfile(b"x", pwned).pax("mtime", b"1.5")),
        (
            "pax size 0 hiding a header",
            rfile(b"x", &smuggled).pax("size", b"0"),
        ),
    ] {
        out.push(case(name, vec![raw], vec![f("x", pwned)], TYPE));
    }
    out
}

#[test]
fn special_types_modes_and_pax_records_are_refused() {
    let (root, _victim, path) = scratch();
    check_cases(cases(), root.path(), &path);
}
