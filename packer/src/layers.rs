//! Splits the capture set into layers by how often they change — `libc` (loader, glibc,
//! libgcc_s), `deps` (other libraries), `app` (the rest) — and plans each layer's entries.
//!
//! Planning is pure: a regular file goes to exactly one layer (libc before app before deps);
//! a symlink goes to every layer whose files it leads to; each layer gets the directories
//! above its entries. Entries are sorted bytewise, so two packs of the same files produce the
//! same plan, and the `libc` layer of two apps packed on one system is the same.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use bundle_format::{BundlePath, LayerRole};

use crate::capture::{Item, ItemKind};
use crate::error::PackError;

/// One planned entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    Dir,
    File {
        source: PathBuf,
        executable: bool,
        size: u64,
        mtime: u64,
    },
    Symlink {
        target: String,
    },
    Hardlink {
        target: BundlePath,
    },
}

/// One planned layer.
#[derive(Debug, Clone)]
pub struct LayerPlan {
    pub role: LayerRole,
    pub entries: BTreeMap<BundlePath, Planned>,
}

impl LayerPlan {
    /// About the bytes of this layer's tar stream (what zstd compresses): a 512-byte header an
    /// entry, its content padded to 512, GNU long-name and long-link entries, the 1024-byte end.
    pub fn tar_size_estimate(&self) -> u64 {
        let block = |n: u64| n.div_ceil(512) * 512;
        let long = |len: usize| match len > 100 {
            true => 512 + block(len as u64 + 1),
            false => 0,
        };
        let entries: u64 = self
            .entries
            .iter()
            .map(|(path, e)| {
                let (size, target) = match e {
                    Planned::File { size, .. } => (*size, 0),
                    Planned::Symlink { target } => (0, target.len()),
                    Planned::Hardlink { target } => (0, target.as_str().len()),
                    Planned::Dir => (0, 0),
                };
                512 + block(size) + long(path.as_str().len()) + long(target)
            })
            .sum();
        entries + 1024
    }

    pub fn content_size(&self) -> u64 {
        self.entries
            .values()
            .map(|e| {
                if let Planned::File { size, .. } = e {
                    *size
                } else {
                    0
                }
            })
            .sum()
    }
}

/// The layer a regular file belongs to.
pub fn file_role(item: &Item) -> LayerRole {
    [LayerRole::Libc, LayerRole::App, LayerRole::Deps]
        .into_iter()
        .find(|r| item.roles.contains(r))
        .unwrap_or(LayerRole::App)
}

/// Plans the layers, bottom to top, leaving out empty ones.
pub fn plan(items: &BTreeMap<BundlePath, Item>) -> Result<Vec<LayerPlan>, PackError> {
    // No entry may sit below a non-directory entry: it would be written through a link.
    for key in items.keys() {
        let mut anc = key.parent();
        while let Some(a) = anc {
            if let Some(i) = items.get(&a) {
                if !matches!(i.kind, ItemKind::Dir) {
                    return Err(PackError::Capture {
                        path: key.to_absolute(),
                        problem: format!(
                            "lies below {}, which is not a directory in the bundle",
                            a
                        ),
                    });
                }
            }
            anc = a.parent();
        }
    }
    let mut layers = Vec::new();
    for role in [LayerRole::Libc, LayerRole::Deps, LayerRole::App] {
        let mut entries: BTreeMap<BundlePath, Planned> = BTreeMap::new();
        for (key, item) in items {
            let planned = match &item.kind {
                ItemKind::File {
                    source,
                    executable,
                    size,
                    mtime,
                    ..
                } if file_role(item) == role => Planned::File {
                    source: source.clone(),
                    executable: *executable,
                    size: *size,
                    mtime: *mtime,
                },
                ItemKind::Symlink { target } if item.roles.contains(&role) => Planned::Symlink {
                    target: target.clone(),
                },
                ItemKind::Dir if item.roles.contains(&role) => Planned::Dir,
                _ => continue,
            };
            entries.insert(key.clone(), planned);
        }
        if entries.values().all(|e| matches!(e, Planned::Dir)) {
            continue; // a layer of directories alone carries nothing
        }
        let parents: Vec<BundlePath> = entries
            .keys()
            .flat_map(|k| std::iter::successors(k.parent(), |p| p.parent()))
            .collect();
        for p in parents {
            entries.entry(p).or_insert(Planned::Dir);
        }
        link_hardlinks(items, &mut entries);
        layers.push(LayerPlan { role, entries });
    }
    Ok(layers)
}

/// Files of one layer that are the same inode on the host become hardlinks to the first one.
fn link_hardlinks(items: &BTreeMap<BundlePath, Item>, entries: &mut BTreeMap<BundlePath, Planned>) {
    let mut first: HashMap<(u64, u64), BundlePath> = HashMap::new();
    for (key, planned) in entries.iter_mut() {
        let Some(Item {
            kind: ItemKind::File { inode, .. },
            ..
        }) = items.get(key)
        else {
            continue;
        };
        if !matches!(planned, Planned::File { .. }) {
            continue;
        }
        match first.get(inode) {
            Some(target) => {
                *planned = Planned::Hardlink {
                    target: target.clone(),
                }
            }
            None => {
                first.insert(*inode, key.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn item(kind: ItemKind, roles: &[LayerRole]) -> Item {
        Item {
            kind,
            roles: roles.iter().copied().collect::<BTreeSet<_>>(),
            reasons: vec![],
            origins: BTreeSet::new(),
        }
    }
    fn file(ino: u64) -> ItemKind {
        ItemKind::File {
            source: "/x".into(),
            executable: false,
            size: 1,
            mtime: 0,
            inode: (1, ino),
        }
    }
    fn bp(s: &str) -> BundlePath {
        BundlePath::new(s).unwrap()
    }

    #[test]
    fn splits_by_role_with_parents_and_shared_links() {
        let mut items = BTreeMap::new();
        items.insert(
            bp("lib"),
            item(
                ItemKind::Symlink {
                    target: "usr/lib".into(),
                },
                &[LayerRole::Libc, LayerRole::Deps],
            ),
        );
        items.insert(
            bp("usr/lib/libc.so.6"),
            item(file(1), &[LayerRole::Libc, LayerRole::Deps]),
        );
        items.insert(bp("usr/lib/libz.so.1"), item(file(2), &[LayerRole::Deps]));
        items.insert(
            bp("usr/bin/app"),
            item(file(3), &[LayerRole::App, LayerRole::Deps]),
        );
        items.insert(bp("usr/bin/app2"), item(file(3), &[LayerRole::App]));
        let layers = plan(&items).unwrap();
        let names = |i: usize| {
            layers[i]
                .entries
                .keys()
                .map(|k| k.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            layers.iter().map(|l| l.role).collect::<Vec<_>>(),
            [LayerRole::Libc, LayerRole::Deps, LayerRole::App]
        );
        assert_eq!(names(0), ["lib", "usr", "usr/lib", "usr/lib/libc.so.6"]);
        assert_eq!(names(1), ["lib", "usr", "usr/lib", "usr/lib/libz.so.1"]);
        assert_eq!(names(2), ["usr", "usr/bin", "usr/bin/app", "usr/bin/app2"]);
        assert_eq!(
            layers[2].entries[&bp("usr/bin/app2")],
            Planned::Hardlink {
                target: bp("usr/bin/app")
            }
        );
    }

    #[test]
    fn refuses_entries_below_links() {
        let mut items = BTreeMap::new();
        items.insert(
            bp("lib"),
            item(
                ItemKind::Symlink {
                    target: "usr/lib".into(),
                },
                &[LayerRole::Libc],
            ),
        );
        items.insert(bp("lib/x"), item(file(1), &[LayerRole::App]));
        assert!(plan(&items).unwrap_err().to_string().contains("below /lib"));
    }
}
