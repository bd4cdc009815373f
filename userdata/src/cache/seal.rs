//! The seal of a layer cache entry: one small stamp file, `<entry>/sealed`, written once the
//! entry's tree was unpacked, or fully checked again, and found to match its table of contents.
//! A start then checks the stamp and the tree's top directory only, never every entry.
//!
//! The stamp is ASCII text of exactly these seven lines, in this order, each ending in `\n`:
//!
//! ```text
//! capsa-layer-seal 2
//! digest sha256:<64 lowercase hex digits>
//! toc sha256:<64 lowercase hex digits>
//! entries <number of TOC entries>
//! entry <st_dev> <st_ino>
//! tree <st_dev> <st_ino> <ctime seconds> <ctime nanoseconds>
//! max-ctime <seconds> <nanoseconds>
//! ```
//!
//! `toc` is the digest of the TOC blob the tree was checked against (the manifest's
//! `layers[i].toc.digest`): the entry is named by the layer's digest only, and a tree built
//! from loose files (`LayerCache::build`) was never checked against that layer's blob,
//! so a seal vouches for the pair. A version 1 stamp, which names no TOC, is no seal.
//!
//! `entry` is the entry directory's identity and `tree` the tree directory's identity and inode
//! change time, both taken after unpacking (the entry directory keeps its inode when it is
//! renamed into place; its ctime does not, and writing the stamp changes it too, so it is not
//! recorded). `max-ctime` is the newest ctime in the tree right after unpacking: the reference
//! of the full check when the tree's top changed.
//!
//! Invariants: the stamp is read relative to the entry directory's `O_PATH` fd (the directory
//! is opened once, without following a symlink), as a regular file, at most [`MAX_STAMP`] bytes;
//! decoding accepts only the exact form above and never panics, whatever the bytes. A seal
//! holds only when it names the layer's digest, its TOC's digest and its entry count and both
//! directories still have the recorded identity and the tree the recorded ctime (which any
//! entry added, removed or renamed at the tree's top, or any change of the tree directory
//! itself, moves forward).

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use bundle_format::Digest;
use nix::fcntl::{open, openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};

/// The stamp's file name in the entry directory.
pub const STAMP: &str = "sealed";
/// Most bytes read from a stamp (a real one is under 300).
pub const MAX_STAMP: u64 = 4096;
const MAGIC: &str = "capsa-layer-seal";
const VERSION: &str = "2";

/// An inode change time: seconds and nanoseconds.
pub type Ctime = (i64, i64);

/// Which inode a directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident {
    pub dev: u64,
    pub ino: u64,
}

/// What `fstat` says about a directory, as far as the seal is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStat {
    pub ident: Ident,
    pub ctime: Ctime,
    pub is_dir: bool,
}

impl DirStat {
    #[allow(clippy::unnecessary_cast)] // dev_t, ino_t and time_t differ between targets
    fn of(st: &FileStat) -> Self {
        Self {
            ident: Ident {
                dev: st.st_dev as u64,
                ino: st.st_ino as u64,
            },
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
            is_dir: st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits(),
        }
    }
}

/// The decoded stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    pub digest: Digest,
    /// The digest of the TOC blob the tree was checked against.
    pub toc: Digest,
    pub entries: u64,
    pub entry: Ident,
    pub tree: Ident,
    pub tree_ctime: Ctime,
    pub max_ctime: Ctime,
}

/// Why a stamp's bytes are not a seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadStamp {
    /// Longer than [`MAX_STAMP`].
    TooLarge,
    /// The first line is not `capsa-layer-seal 2` (a version 1 stamp names no TOC: no seal).
    Version,
    /// Line `n` (1-based) is missing, has another key or a malformed value, or there is more.
    Line(usize),
}

/// Why a seal does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// The entry directory cannot be opened, or the stamp is missing, not a regular file or
    /// cannot be read.
    Unreadable,
    Malformed(BadStamp),
    /// The stamp names another layer, another TOC (the tree was checked against another
    /// table of contents, so it is no reference for this one), or another entry count.
    Digest,
    Toc,
    Entries,
    /// The stamp is this layer's, but the entry directory or the tree is another inode (or the
    /// tree is missing or no directory), or the tree's ctime moved: its `max_ctime` is still
    /// this layer's reference for the full check.
    Replaced {
        max_ctime: Ctime,
    },
    Changed {
        max_ctime: Ctime,
    },
}

impl Broken {
    /// The newest ctime after unpacking, when the stamp was this layer's own.
    pub fn max_ctime(&self) -> Option<Ctime> {
        match self {
            Broken::Replaced { max_ctime } | Broken::Changed { max_ctime } => Some(*max_ctime),
            _ => None,
        }
    }
}

impl Seal {
    pub fn encode(&self) -> String {
        let mut s = format!("{MAGIC} {VERSION}\n");
        let _ = writeln!(s, "digest {}", self.digest);
        let _ = writeln!(s, "toc {}", self.toc);
        let _ = writeln!(s, "entries {}", self.entries);
        let _ = writeln!(s, "entry {} {}", self.entry.dev, self.entry.ino);
        let _ = writeln!(
            s,
            "tree {} {} {} {}",
            self.tree.dev, self.tree.ino, self.tree_ctime.0, self.tree_ctime.1
        );
        let _ = writeln!(s, "max-ctime {} {}", self.max_ctime.0, self.max_ctime.1);
        s
    }

    /// Decodes exactly the form [`Seal::encode`] writes.
    pub fn decode(bytes: &[u8]) -> Result<Self, BadStamp> {
        if bytes.len() as u64 > MAX_STAMP {
            return Err(BadStamp::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| BadStamp::Version)?;
        let body = text.strip_suffix('\n').ok_or(BadStamp::Version)?;
        let mut lines = body.split('\n');
        if lines.next() != Some(&format!("{MAGIC} {VERSION}")) {
            return Err(BadStamp::Version);
        }
        let mut line = 1;
        let mut field = |key: &str, n: usize| -> Result<Vec<&str>, BadStamp> {
            line += 1;
            let values: Vec<&str> = lines
                .next()
                .and_then(|l| l.strip_prefix(key))
                .and_then(|l| l.strip_prefix(' '))
                .map(|l| l.split(' ').collect())
                .unwrap_or_default();
            if values.len() != n {
                return Err(BadStamp::Line(line));
            }
            Ok(values)
        };
        let digest = field("digest", 1)?;
        let toc = field("toc", 1)?;
        let entries = field("entries", 1)?;
        let entry = field("entry", 2)?;
        let tree = field("tree", 4)?;
        let max = field("max-ctime", 2)?;
        if lines.next().is_some() {
            return Err(BadStamp::Line(8));
        }
        let bad = BadStamp::Line;
        let ident = |v: &[&str], l| -> Result<Ident, BadStamp> {
            Ok(Ident {
                dev: number(v[0]).ok_or(bad(l))?,
                ino: number(v[1]).ok_or(bad(l))?,
            })
        };
        let ctime = |s: &str, ns: &str, l| -> Result<Ctime, BadStamp> {
            let ns = number(ns).filter(|&n| n < 1_000_000_000).ok_or(bad(l))?;
            let s = s
                .parse::<i64>()
                .ok()
                .filter(|_| canonical(s))
                .ok_or(bad(l))?;
            Ok((s, ns as i64))
        };
        Ok(Seal {
            digest: digest[0].parse().map_err(|_| bad(2))?,
            toc: toc[0].parse().map_err(|_| bad(3))?,
            entries: number(entries[0]).ok_or(bad(4))?,
            entry: ident(&entry, 5)?,
            tree: ident(&tree, 6)?,
            tree_ctime: ctime(tree[2], tree[3], 6)?,
            max_ctime: ctime(max[0], max[1], 7)?,
        })
    }

    /// Whether this seal still holds for the layer `digest` with the TOC blob `toc` of
    /// `entries` entries, given what the entry directory and its tree are now.
    pub fn check(
        &self,
        digest: &Digest,
        toc: &Digest,
        entries: u64,
        entry: &DirStat,
        tree: Option<&DirStat>,
    ) -> Result<(), Broken> {
        let max_ctime = self.max_ctime;
        if &self.digest != digest {
            return Err(Broken::Digest);
        }
        if &self.toc != toc {
            return Err(Broken::Toc);
        }
        if self.entries != entries {
            return Err(Broken::Entries);
        }
        let Some(tree) = tree.filter(|t| t.is_dir) else {
            return Err(Broken::Replaced { max_ctime });
        };
        if entry.ident != self.entry || tree.ident != self.tree {
            return Err(Broken::Replaced { max_ctime });
        }
        if tree.ctime != self.tree_ctime {
            return Err(Broken::Changed { max_ctime });
        }
        Ok(())
    }
}

/// A decimal number without sign, leading zeros or spaces.
fn number(s: &str) -> Option<u64> {
    s.parse::<u64>().ok().filter(|_| canonical(s))
}

/// Written the one way `Display` writes it (so one seal has one encoding).
fn canonical(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0"
}

/// The entry directory, opened once without following a symlink.
pub fn open_entry(entry: &Path) -> nix::Result<OwnedFd> {
    open(
        entry,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The entry directory's and its tree's identity now (`None` for a missing tree).
pub fn stat_entry(dir: &OwnedFd) -> nix::Result<(DirStat, Option<DirStat>)> {
    let entry = DirStat::of(&fstat(dir)?);
    let tree = fstatat(dir, "tree", AtFlags::AT_SYMLINK_NOFOLLOW)
        .ok()
        .map(|s| DirStat::of(&s));
    Ok((entry, tree))
}

/// Reads and decodes the stamp in the entry directory `dir`.
pub fn read(dir: &OwnedFd) -> Result<Seal, Broken> {
    // O_NONBLOCK: a FIFO in its place must not hang the start.
    let fd = openat(
        dir,
        STAMP,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|_| Broken::Unreadable)?;
    let st = fstat(&fd).map_err(|_| Broken::Unreadable)?;
    if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() {
        return Err(Broken::Unreadable);
    }
    let mut bytes = Vec::new();
    fs::File::from(fd)
        .take(MAX_STAMP + 1)
        .read_to_end(&mut bytes)
        .map_err(|_| Broken::Unreadable)?;
    Seal::decode(&bytes).map_err(Broken::Malformed)
}

/// Whether the seal of the entry `entry` holds for the layer `digest` with the TOC blob
/// `toc` (the manifest's `layers[i].toc.digest`) of `entries` entries: one open, one stamp
/// read, two `fstat`s.
pub fn holds(entry: &Path, digest: &Digest, toc: &Digest, entries: u64) -> Result<(), Broken> {
    let dir = open_entry(entry).map_err(|_| Broken::Unreadable)?;
    let seal = read(&dir)?;
    let (e, tree) = stat_entry(&dir).map_err(|_| Broken::Unreadable)?;
    seal.check(digest, toc, entries, &e, tree.as_ref())
}

/// The seal of the entry `entry` (the layer `digest`, checked against the TOC blob `toc`) as
/// its directories are now, and writes it there (to a temporary file renamed over the stamp,
/// so a reader sees the old stamp or the new one).
pub fn write(
    entry: &Path,
    digest: Digest,
    toc: Digest,
    entries: u64,
    max_ctime: Ctime,
) -> io::Result<Seal> {
    let dir = open_entry(entry)?;
    let (e, tree) = stat_entry(&dir)?;
    let tree = tree
        .filter(|t| t.is_dir)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the tree is no directory"))?;
    let seal = Seal {
        digest,
        toc,
        entries,
        entry: e.ident,
        tree: tree.ident,
        tree_ctime: tree.ctime,
        max_ctime: max_ctime.max(tree.ctime),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".sealed-")
        .tempfile_in(entry)?;
    tmp.write_all(seal.encode().as_bytes())?;
    tmp.persist(entry.join(STAMP)).map_err(|e| e.error)?;
    Ok(seal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Seal {
        Seal {
            digest: Digest::of(b"layer"),
            toc: Digest::of(b"toc"),
            entries: 25_000,
            entry: Ident { dev: 2049, ino: 7 },
            tree: Ident {
                dev: 2049,
                ino: 1_234_567,
            },
            tree_ctime: (1_700_000_000, 999_999_999),
            max_ctime: (1_700_000_001, 0),
        }
    }

    fn stat(ident: Ident, ctime: Ctime) -> DirStat {
        DirStat {
            ident,
            ctime,
            is_dir: true,
        }
    }

    #[test]
    fn a_seal_round_trips_and_is_small() {
        let s = sample();
        let text = s.encode();
        assert!(text.starts_with("capsa-layer-seal 2\n"), "{text}");
        assert!((text.len() as u64) < 400, "{text}");
        assert_eq!(Seal::decode(text.as_bytes()), Ok(s));
        let negative = Seal {
            tree_ctime: (-5, 3),
            ..sample()
        };
        assert_eq!(Seal::decode(negative.encode().as_bytes()), Ok(negative));
    }

    #[test]
    fn anything_but_the_exact_form_is_refused() {
        let good = sample().encode();
        let edit = |from: &str, to: &str| good.replacen(from, to, 1);
        let toc_line = format!("toc {}\n", Digest::of(b"toc"));
        let toc_hex = Digest::of(b"toc").hex();
        let cases: Vec<(String, BadStamp)> = vec![
            (String::new(), BadStamp::Version),
            (good.trim_end().to_owned(), BadStamp::Version),
            (edit("seal 2", "seal 1"), BadStamp::Version),
            (edit("seal 2", "seal 3"), BadStamp::Version),
            (edit("digest sha256:", "digest md5:"), BadStamp::Line(2)),
            (edit("toc sha256:", "toc md5:"), BadStamp::Line(3)),
            (edit("toc sha256:", "toc  sha256:"), BadStamp::Line(3)),
            (edit("toc sha256:", "tocs sha256:"), BadStamp::Line(3)),
            (good.replace(&toc_line, ""), BadStamp::Line(3)),
            (
                good.replace(&toc_line, &toc_line.to_uppercase()),
                BadStamp::Line(3),
            ),
            (
                good.replace(
                    &toc_line,
                    &toc_line.replace(&toc_hex, &toc_hex.to_uppercase()),
                ),
                BadStamp::Line(3),
            ),
            (
                good.replace(&toc_line, &toc_line.replacen("sha256:", "sha256:0", 1)),
                BadStamp::Line(3),
            ),
            (edit("entries 25000", "entries 025000"), BadStamp::Line(4)),
            (edit("entries 25000", "entries -1"), BadStamp::Line(4)),
            (edit("entries 25000", "entries  25000"), BadStamp::Line(4)),
            (
                edit("entries 25000", "entries 99999999999999999999"),
                BadStamp::Line(4),
            ),
            (edit("entry 2049 7", "entry 2049"), BadStamp::Line(5)),
            (edit("entry 2049 7", "entry 2049 7 8"), BadStamp::Line(5)),
            (edit("999999999\n", "1000000000\n"), BadStamp::Line(6)),
            (edit("999999999\n", "-1\n"), BadStamp::Line(6)),
            (edit("tree 2049", "tree 0x801"), BadStamp::Line(6)),
            (
                edit("max-ctime 1700000001", "max-ctime -0"),
                BadStamp::Line(7),
            ),
            (edit("max-ctime", "newest"), BadStamp::Line(7)),
            (format!("{good}extra\n"), BadStamp::Line(8)),
            (format!("{good}\n"), BadStamp::Line(8)),
            (edit("\n", "\r\n"), BadStamp::Version),
            (good.replace("entries 25000\n", ""), BadStamp::Line(4)),
        ];
        for (text, want) in cases {
            assert_eq!(Seal::decode(text.as_bytes()), Err(want), "{text:?}");
        }
        assert_eq!(Seal::decode(&[0xff; 20]), Err(BadStamp::Version));
        // A whole, well-formed version 1 stamp (no `toc` line) is no seal.
        let v1 = good.replace("seal 2", "seal 1").replace(&toc_line, "");
        assert_eq!(Seal::decode(v1.as_bytes()), Err(BadStamp::Version));
        let huge = vec![b'a'; MAX_STAMP as usize + 1];
        assert_eq!(Seal::decode(&huge), Err(BadStamp::TooLarge));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Seal::decode(&bytes);
        }

        #[test]
        fn mangled_seals_never_panic(cut in 0usize..300, byte in any::<u8>()) {
            let mut b = sample().encode().into_bytes();
            let i = cut.min(b.len() - 1);
            b[i] = byte;
            let _ = Seal::decode(&b);
            b.truncate(i);
            prop_assert!(Seal::decode(&b).is_err());
        }
    }

    #[test]
    fn a_seal_holds_only_for_its_layer_and_the_same_directories() {
        let s = sample();
        let entry = stat(s.entry, (1, 0));
        let tree = stat(s.tree, s.tree_ctime);
        let (d, t) = (s.digest, s.toc);
        assert_eq!(s.check(&d, &t, s.entries, &entry, Some(&tree)), Ok(()));
        // Another TOC for the same layer digest: the tree is no reference for it.
        let other_toc = Digest::of(b"other toc");
        assert_eq!(
            s.check(&d, &other_toc, s.entries, &entry, Some(&tree)),
            Err(Broken::Toc)
        );
        assert_eq!(Broken::Toc.max_ctime(), None);
        let other = Digest::of(b"other");
        assert_eq!(
            s.check(&other, &t, s.entries, &entry, Some(&tree)),
            Err(Broken::Digest)
        );
        assert_eq!(
            s.check(&d, &t, s.entries + 1, &entry, Some(&tree)),
            Err(Broken::Entries)
        );
        let max_ctime = s.max_ctime;
        let replaced = Err(Broken::Replaced { max_ctime });
        let moved = stat(Ident { dev: 2049, ino: 8 }, (1, 0));
        assert_eq!(s.check(&d, &t, s.entries, &moved, Some(&tree)), replaced);
        let new_tree = stat(Ident { dev: 2049, ino: 9 }, s.tree_ctime);
        assert_eq!(
            s.check(&d, &t, s.entries, &entry, Some(&new_tree)),
            replaced
        );
        let other_dev = stat(Ident { dev: 1, ..s.tree }, s.tree_ctime);
        assert_eq!(
            s.check(&d, &t, s.entries, &entry, Some(&other_dev)),
            replaced
        );
        assert_eq!(s.check(&d, &t, s.entries, &entry, None), replaced);
        let not_dir = DirStat {
            is_dir: false,
            ..tree
        };
        assert_eq!(s.check(&d, &t, s.entries, &entry, Some(&not_dir)), replaced);
        let touched = stat(s.tree, (s.tree_ctime.0, s.tree_ctime.1 + 1));
        assert_eq!(
            s.check(&d, &t, s.entries, &entry, Some(&touched)),
            Err(Broken::Changed { max_ctime })
        );
        assert_eq!(Broken::Changed { max_ctime }.max_ctime(), Some(max_ctime));
        assert_eq!(Broken::Digest.max_ctime(), None);
    }

    fn entry_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("tree")).unwrap();
        d
    }

    #[test]
    fn a_written_seal_holds_until_the_trees_top_changes() {
        let d = entry_dir();
        let digest = Digest::of(b"layer");
        let toc = Digest::of(b"toc");
        let s = write(d.path(), digest, toc, 3, (0, 0)).unwrap();
        assert!(s.max_ctime >= s.tree_ctime, "the tree's own ctime counts");
        assert_eq!(holds(d.path(), &digest, &toc, 3), Ok(()));
        assert_eq!(holds(d.path(), &digest, &toc, 4), Err(Broken::Entries));
        let other_toc = Digest::of(b"other toc");
        assert_eq!(holds(d.path(), &digest, &other_toc, 3), Err(Broken::Toc));
        // An entry added at the top is seen (past the timestamp granularity, a kernel tick).
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(d.path().join("tree/junk"), b"").unwrap();
        let max_ctime = s.max_ctime;
        assert_eq!(
            holds(d.path(), &digest, &toc, 3),
            Err(Broken::Changed { max_ctime })
        );
        write(d.path(), digest, toc, 3, max_ctime).unwrap();
        assert_eq!(holds(d.path(), &digest, &toc, 3), Ok(()));
        fs::remove_file(d.path().join(STAMP)).unwrap();
        assert_eq!(holds(d.path(), &digest, &toc, 3), Err(Broken::Unreadable));
        let leftovers: Vec<_> = fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(leftovers.len(), 1, "only the tree: {leftovers:?}");
    }

    #[test]
    fn a_hostile_stamp_is_refused_without_hanging_or_reading_it_all() {
        let d = entry_dir();
        let digest = Digest::of(b"layer");
        let toc = Digest::of(b"toc");
        let stamp = d.path().join(STAMP);
        // Huge: refused after MAX_STAMP + 1 bytes (a sparse 1 GiB file).
        let f = fs::File::create(&stamp).unwrap();
        f.set_len(1 << 30).unwrap();
        assert_eq!(
            holds(d.path(), &digest, &toc, 3),
            Err(Broken::Malformed(BadStamp::TooLarge))
        );
        fs::remove_file(&stamp).unwrap();
        // A FIFO (opening it for reading would block), a symlink to a good stamp, a directory.
        nix::unistd::mkfifo(&stamp, Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(holds(d.path(), &digest, &toc, 3), Err(Broken::Unreadable));
        fs::remove_file(&stamp).unwrap();
        let elsewhere = entry_dir();
        write(elsewhere.path(), digest, toc, 3, (0, 0)).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join(STAMP), &stamp).unwrap();
        assert_eq!(holds(d.path(), &digest, &toc, 3), Err(Broken::Unreadable));
        fs::remove_file(&stamp).unwrap();
        fs::create_dir(&stamp).unwrap();
        assert_eq!(holds(d.path(), &digest, &toc, 3), Err(Broken::Unreadable));
        // The entry directory itself a symlink to a sealed entry: not followed.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();
        assert_eq!(holds(&link, &digest, &toc, 3), Err(Broken::Unreadable));
        assert_eq!(holds(elsewhere.path(), &digest, &toc, 3), Ok(()));
        // A seal copied to another entry names the other entry's directories.
        fs::remove_dir(&stamp).unwrap();
        fs::copy(elsewhere.path().join(STAMP), &stamp).unwrap();
        assert!(matches!(
            holds(d.path(), &digest, &toc, 3),
            Err(Broken::Replaced { .. })
        ));
    }
}
