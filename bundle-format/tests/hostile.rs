//! Hostile layer entries, part 1 (threats.md probes BND-01..06, BND-11, BND-13): climbing and
//! absolute paths, writes through symlinks, hardlinks out of the tree or forward, duplicates,
//! and names that are not plain text. Tar streams are hand-made with raw headers and wrapped
//! in bundles whose digests are all correct, so every attack reaches the TOC and layer parsers.
//! Each case runs twice: with a TOC that describes the tar faithfully (the TOC checks must
//! refuse it) and with a harmless-looking TOC that lies about the tar (the header-against-TOC
//! checks must refuse it). `verify` and `extract` must both fail, the destination must not
//! appear and nothing may change outside the scratch directory (see `common::harness`).

mod common;

use std::os::unix::fs::PermissionsExt;

use bundle_format::Bundle;
use common::*;

fn cases(victim: &str) -> Vec<Case> {
    let v = victim.as_bytes();
    let pwned = b"pwned";
    vec![
        // BND-01: climbing out.
        case(
            "../evil",
            vec![rfile(b"../evil", pwned)],
            vec![f("evil", pwned)],
            BAD_PATH,
        ),
        case(
            "../../../../evil",
            vec![rfile(b"../../../../evil", pwned)],
            vec![f("evil", pwned)],
            BAD_PATH,
        ),
        case(
            "a/../../evil",
            vec![rdir(b"a/"), rfile(b"a/../../evil", pwned)],
            vec![d("a"), f("a/evil", pwned)],
            BAD_PATH,
        ),
        // BND-02: absolute or unnormalized names are refused, not re-rooted or normalized.
        case(
            "/evil",
            vec![rfile(b"/evil", pwned)],
            vec![f("evil", pwned)],
            BAD_PATH,
        ),
        case(
            "/etc/evil",
            vec![rdir(b"etc/"), rfile(b"/etc/evil", pwned)],
            vec![d("etc"), f("etc/evil", pwned)],
            BAD_PATH,
        ),
        case(
            "//evil",
            vec![rfile(b"//evil", pwned)],
            vec![f("evil", pwned)],
            BAD_PATH,
        ),
        case(
            "./x",
            vec![rfile(b"./x", pwned)],
            vec![f("x", pwned)],
            BAD_PATH,
        ),
        case(
            "./././x",
            vec![rfile(b"./././x", pwned)],
            vec![f("x", pwned)],
            BAD_PATH,
        ),
        case(
            "a//x",
            vec![rdir(b"a/"), rfile(b"a//x", pwned)],
            vec![d("a"), f("a/x", pwned)],
            BAD_PATH,
        ),
        case("dir/ twice", vec![rdir(b"a//")], vec![d("a")], BAD_PATH),
        // BND-03: a symlink, then a file written through it.
        case(
            "a -> victim, a/passwd",
            vec![rsym(b"a", v), rfile(b"a/passwd", pwned)],
            vec![d("a"), f("a/passwd", pwned)],
            MISMATCH,
        ),
        case(
            "a -> /etc, a/passwd",
            vec![rsym(b"a", b"/etc"), rfile(b"a/passwd", pwned)],
            vec![d("a"), f("a/passwd", pwned)],
            MISMATCH,
        ),
        // BND-04: s -> .., then s/s/x/y/file (RUSTSEC-2021-0080).
        case(
            "s -> .., s/s/x/y/file",
            vec![
                rsym(b"s", b".."),
                rdir(b"s/s/"),
                rdir(b"s/s/x/"),
                rdir(b"s/s/x/y/"),
                rfile(b"s/s/x/y/file", pwned),
            ],
            vec![
                d("s"),
                d("s/s"),
                d("s/s/x"),
                d("s/s/x/y"),
                f("s/s/x/y/file", pwned),
            ],
            MISMATCH,
        ),
        case(
            "s -> .., s/x",
            vec![rsym(b"s", b".."), rfile(b"s/x", pwned)],
            vec![d("s"), f("s/x", pwned)],
            MISMATCH,
        ),
        case(
            "s -> ../../.., s/x",
            vec![rsym(b"s", b"../../.."), rfile(b"s/x", pwned)],
            vec![s("s", "x")],
            MISMATCH,
        ),
        // BND-05: symlink to a victim directory, then a 0777 directory of the same name.
        case(
            "d -> victim, dir d 0777",
            vec![rsym(b"d", v), rdir(b"d/").mode(0o777)],
            vec![s("d", victim)],
            EXTRA,
        ),
        case(
            "d -> victim, dir d 0777 (TOC: dir)",
            vec![rsym(b"d", v), rdir(b"d/").mode(0o777)],
            vec![d("d")],
            MISMATCH,
        ),
        // BND-06: hardlinks out of the tree, to the host, or forward.
        case(
            "h => /etc/passwd",
            vec![rfile(b"a", pwned), rlink(b"h", b"/etc/passwd")],
            vec![f("a", pwned), h("h", "a")],
            MISMATCH,
        ),
        case(
            "h => ../../x",
            vec![rfile(b"a", pwned), rlink(b"h", b"../../x")],
            vec![f("a", pwned), h("h", "a")],
            MISMATCH,
        ),
        case(
            "h => victim",
            vec![rfile(b"a", pwned), rlink(b"h", v)],
            vec![f("a", pwned), h("h", "a")],
            MISMATCH,
        ),
        case(
            "h => later entry",
            vec![rlink(b"h", b"z"), rfile(b"z", pwned)],
            vec![f("h", b""), f("z", pwned)],
            MISMATCH,
        ),
        case(
            "h => directory",
            vec![rdir(b"d/"), rlink(b"h", b"d")],
            vec![d("d"), s("h", "d")],
            MISMATCH,
        ),
        case(
            "h => symlink",
            vec![rsym(b"a", v), rlink(b"h", b"a")],
            vec![s("a", "x"), s("h", "a")],
            MISMATCH,
        ),
        case(
            "h => itself",
            vec![rlink(b"h", b"h")],
            vec![f("h", b"")],
            MISMATCH,
        ),
        // BND-11: duplicates.
        case(
            "file twice",
            vec![rfile(b"a", b"1"), rfile(b"a", b"2")],
            vec![f("a", b"1")],
            EXTRA,
        ),
        case(
            "file twice (TOC: a, b)",
            vec![rfile(b"a", b"1"), rfile(b"a", b"2")],
            vec![f("a", b"1"), f("b", b"2")],
            MISMATCH,
        ),
        case(
            "file then symlink",
            vec![rfile(b"a", b"1"), rsym(b"a", v)],
            vec![f("a", b"1")],
            EXTRA,
        ),
        case(
            "symlink then dir",
            vec![rsym(b"a", b"x"), rdir(b"a/")],
            vec![s("a", "x")],
            EXTRA,
        ),
        case(
            "dir twice",
            vec![rdir(b"a/"), rdir(b"a/")],
            vec![d("a")],
            EXTRA,
        ),
        // BND-13: names that are not plain text.
        case(
            "NUL in a long name",
            vec![rfile(b"a\0../../evil", pwned).long()],
            vec![f("a", pwned)],
            BAD_PATH,
        ),
        case(
            "newline",
            vec![rfile(b"a\nb", pwned)],
            vec![f("ab", pwned)],
            BAD_PATH,
        ),
        case(
            "ESC",
            vec![rfile(b"a\x1b[2Jb", pwned)],
            vec![f("ab", pwned)],
            BAD_PATH,
        ),
        case(
            "DEL",
            vec![rfile(b"a\x7fb", pwned)],
            vec![f("ab", pwned)],
            BAD_PATH,
        ),
        case(
            "invalid UTF-8",
            vec![rfile(b"a\xff\xfeb", pwned)],
            vec![f("ab", pwned)],
            BAD_PATH,
        ),
        case(
            "bidi override",
            vec![rfile("txt\u{202e}exe.sh".as_bytes(), pwned)],
            vec![f("txtexe.sh", pwned)],
            BAD_PATH,
        ),
        case(
            "C1 control",
            vec![rfile("a\u{85}b".as_bytes(), pwned)],
            vec![f("ab", pwned)],
            BAD_PATH,
        ),
        case(
            "ESC in symlink target",
            vec![rsym(b"s", b"x\x1b[2J")],
            vec![s("s", "x")],
            MISMATCH,
        ),
        case(
            "newline in hardlink target",
            vec![rfile(b"a", pwned), rlink(b"h", b"a\n")],
            vec![f("a", pwned), h("h", "a")],
            MISMATCH,
        ),
    ]
}

#[test]
fn the_harness_accepts_an_honest_hand_made_layer() {
    // Without this, the refusals below could come from a broken test harness.
    let (root, _, path) = scratch();
    let tar = vec![
        rdir(b"a/"),
        rsym(b"a/s", b"x"),
        rfile(b"a/x", b"hi"),
        rfile(&[b"a/".to_vec(), b"y".repeat(200)].concat(), b"long"),
        rlink(b"a/z", b"a/x"),
    ];
    write_raw(&path, &[RawLayer::new(raw_tar(&tar), mirror_toc(&tar))]);
    let b = Bundle::open(&path).unwrap();
    b.verify(None, &mut |_| {}).unwrap();
    let dest = root.path().join("out");
    bundle_format::extract(&b, &dest, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(dest.join("a/z")).unwrap(), b"hi");
    assert_eq!(
        std::fs::read(dest.join("a").join("y".repeat(200))).unwrap(),
        b"long"
    );
}

#[test]
fn hostile_entries_are_refused() {
    let (root, victim, path) = scratch();
    check_cases(cases(victim.to_str().unwrap()), root.path(), &path);
    let meta = std::fs::symlink_metadata(&victim).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o700,
        "the victim's mode changed"
    );
    let empty = std::fs::read_dir(&victim).unwrap().next().is_none();
    assert!(empty, "something was written into the victim");
}
