//! The base of system data every bundle gets unless the recipe says `base = false`: `/bin/sh`
//! (for `system()` and `popen()`), the C.UTF-8 locale, network and NSS configuration, CA
//! certificates, a minimal terminfo, gconv's Unicode modules, the static `ldconfig`, and the
//! bundle's own loader cache.
//!
//! Host files are added by [`add`] during capture (so their closure is followed); the files
//! capsa writes itself (`/etc/nsswitch.conf`, `/etc/hosts`, `/etc/ld.so.cache`) are added by
//! [`add_generated`] once the closure is known. Everything lands in the `deps` layer.
//!
//! Invariants: optional pieces the host lacks are skipped (a missing `/bin/sh` is a warning);
//! the identity and per-machine files stay out ([`crate::provided`]); a generated file replaces
//! a captured host copy at its path, with a warning, since the host's names services the
//! bundle does not have (`mdns4_minimal`, `systemd`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bundle_format::{BundlePath, LayerRole};

use crate::capture::{CaptureSet, Item, ItemKind};
use crate::closure::ClosureFacts;
use crate::elf::kind_of;
use crate::error::PackError;
use crate::ldcache::LdCache;
use crate::origin::Origin;

/// Host files of the base, taken when present (links kept as links).
const HOST_FILES: &[&str] = &[
    "/etc/host.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/openssl.cnf",
    "/usr/lib/ssl/cert.pem",
    "/usr/lib/ssl/certs",
    "/usr/lib/ssl/openssl.cnf",
];

/// Terminal descriptions kept (the common terminals and multiplexers).
const TERMINALS: &[&str] = &[
    "xterm",
    "xterm-256color",
    "screen",
    "screen-256color",
    "tmux",
    "tmux-256color",
    "linux",
    "vt100",
    "dumb",
];

/// Where ncurses looks for compiled descriptions, in its order.
const TERMINFO_DIRS: &[&str] = &["/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo"];

/// gconv pieces for UTF-16, UTF-32 and UTF-7 (UTF-8 is built into glibc).
const GCONV_PIECES: &[&str] = &["UTF-16.so", "UTF-32.so", "UTF-7.so", "gconv-modules"];

/// The bundle's name service configuration: only what glibc has built in.
pub const NSSWITCH: &str = "# Written by capsa: the services glibc has built in.\n\
passwd: files\ngroup: files\nshadow: files\ngshadow: files\n\
hosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n\
ethers: files\nrpc: files\nnetgroup: files\n";

/// The bundle's `/etc/hosts` (the launcher binds the host's when the network is shared).
pub const HOSTS: &str =
    "# Written by capsa.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

const REASON: &str = "base";

/// Adds the base's host files to `set` (origin [`Origin::Base`], `deps` layer), queueing its
/// programs for the closure.
pub fn add(set: &mut CaptureSet) -> Result<(), PackError> {
    let stage = std::mem::replace(&mut set.origin, Origin::Base);
    let result = add_host_files(set);
    set.origin = stage;
    result
}

fn add_host_files(set: &mut CaptureSet) -> Result<(), PackError> {
    let role = LayerRole::Deps;
    let mut multiarch = None;
    for program in ["/bin/sh", "/sbin/ldconfig"] {
        if !Path::new(program).exists() {
            set.warnings
                .push(format!("base: {program} is not on this host, left out"));
            continue;
        }
        let real = set.add_path(
            Path::new(program),
            role,
            "base: shell and loader cache tool",
        )?;
        multiarch = multiarch.or_else(|| kind_of(&real).and_then(|k| k.multiarch()));
        set.enqueue(&real, Vec::new(), true);
    }
    add_locale(set)?;
    for f in HOST_FILES {
        if Path::new(f).exists() {
            set.add_path(Path::new(f), role, REASON)?;
        }
    }
    for name in TERMINALS {
        let Some(first) = name.chars().next() else {
            continue;
        };
        let found = TERMINFO_DIRS
            .iter()
            .map(|d| PathBuf::from(format!("{d}/{first}/{name}")))
            .find(|p| p.is_file());
        if let Some(p) = found {
            set.add_path(&p, role, "base: terminfo")?;
        }
    }
    if let Some(ma) = multiarch {
        let dir = PathBuf::from(format!("/usr/lib/{ma}/gconv"));
        for piece in GCONV_PIECES {
            let p = dir.join(piece);
            if p.is_file() {
                let real = set.add_path(&p, role, "base: gconv Unicode modules")?;
                set.enqueue(&real, Vec::new(), false);
            }
        }
    }
    Ok(())
}

/// The C.UTF-8 locale, under whichever name this glibc gives it (and the other name if it is a
/// link).
fn add_locale(set: &mut CaptureSet) -> Result<(), PackError> {
    for name in ["C.utf8", "C.UTF-8"] {
        let p = PathBuf::from("/usr/lib/locale").join(name);
        if std::fs::symlink_metadata(&p).is_err() {
            continue;
        }
        let real = set.add_path(&p, LayerRole::Deps, "base: C.UTF-8 locale")?;
        if real.is_dir() {
            set.add_tree(&real, LayerRole::Deps, "base: C.UTF-8 locale")?;
        }
    }
    Ok(())
}

/// Writes the base's generated files into `tmp` and adds them: `/etc/nsswitch.conf`,
/// `/etc/hosts` and a loader cache of every captured library in the loader's directories
/// (so `ldconfig -p` and `ctypes.util.find_library` work), plus `facts.cache_entries`.
pub fn add_generated(
    set: &mut CaptureSet,
    facts: &ClosureFacts,
    host_cache: &Path,
    tmp: &Path,
    created: u64,
) -> Result<(), PackError> {
    let written = [
        (
            "etc/nsswitch.conf",
            NSSWITCH.as_bytes().to_vec(),
            Origin::Base,
        ),
        ("etc/hosts", HOSTS.as_bytes().to_vec(), Origin::Base),
    ];
    for (at, bytes, origin) in written {
        put(
            set,
            at,
            &bytes,
            origin,
            "base: written by capsa",
            tmp,
            created,
        )?;
    }
    let entries = cache_entries(set, facts);
    if entries.is_empty() {
        return Ok(());
    }
    let flags = match facts.cache_entries.first() {
        Some(e) => e.2,
        None => LdCache::load(host_cache)?
            .lookup("libc.so.6")
            .first()
            .map_or(0x0303, |e| e.arch_flags | 3),
    };
    let bytes = crate::ldcache::write(&entries, flags);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let reason = format!("generated loader cache for {}", names.join(", "));
    put(
        set,
        "etc/ld.so.cache",
        &bytes,
        Origin::Generated,
        &reason,
        tmp,
        created,
    )
}

/// Stores `bytes` as a temporary file and adds it at `at` (relative), replacing a host copy.
fn put(
    set: &mut CaptureSet,
    at: &str,
    bytes: &[u8],
    origin: Origin,
    reason: &str,
    tmp: &Path,
    created: u64,
) -> Result<(), PackError> {
    let key = BundlePath::new(at).map_err(|e| PackError::Capture {
        path: at.into(),
        problem: e.to_string(),
    })?;
    let source = tmp.join(at.replace('/', "_"));
    std::fs::write(&source, bytes).map_err(PackError::Temp)?;
    // The temporary file's own inode: generated files must not look like hardlinks of each other.
    let meta = std::fs::metadata(&source).map_err(PackError::Temp)?;
    if let Some(old) = set.items.get(&key) {
        if !matches!(old.kind, ItemKind::File { .. }) {
            return Err(PackError::Capture {
                path: key.to_absolute(),
                problem: "is captured as a link or directory, but the base writes a file there \
                          (set capture.base = false or leave it out)"
                    .into(),
            });
        }
        set.warnings.push(format!(
            "{}: the host's copy replaced by the one capsa writes",
            key.to_absolute().display()
        ));
    }
    set.items.insert(
        key,
        Item {
            kind: ItemKind::File {
                source,
                executable: false,
                size: bytes.len() as u64,
                mtime: created,
                inode: (meta.dev(), meta.ino()),
            },
            roles: [LayerRole::Deps].into(),
            reasons: vec![reason.to_owned()],
            origins: [origin].into(),
        },
    );
    Ok(())
}

/// The loader cache's entries: the closure's cache-only finds first (they won on the host),
/// then every captured library in the loader's directories whose name is its soname.
fn cache_entries(set: &CaptureSet, facts: &ClosureFacts) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = facts
        .cache_entries
        .iter()
        .map(|(s, p, _)| (s.clone(), p.clone()))
        .collect();
    let mut dirs: Vec<PathBuf> = ["/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for ma in facts.kinds.iter().filter_map(|k| k.multiarch()) {
        for d in ["/lib", "/usr/lib", "/usr/local/lib"] {
            dirs.push(PathBuf::from(format!("{d}/{ma}")));
        }
    }
    for key in set.items.keys() {
        let abs = key.to_absolute();
        let Some(name) = abs.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.contains(".so") || !abs.parent().is_some_and(|p| dirs.iter().any(|d| d == p)) {
            continue;
        }
        let Some(ItemKind::File { source, .. }) = set.resolve(&abs).map(|i| &i.kind) else {
            continue;
        };
        if soname_of(source).as_deref() == Some(name) && !out.iter().any(|e| e.0 == name) {
            out.push((name.to_owned(), abs));
        }
    }
    out
}

/// The `DT_SONAME` of a shared object, if it is one.
fn soname_of(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let elf = goblin::elf::Elf::parse(&bytes).ok()?;
    elf.soname.map(str::to_owned)
}
