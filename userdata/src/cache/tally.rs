//! The bytes removing some trees frees: each file's blocks count once, and only when every
//! link to it is among the trees (a merged root hardlinks its layers' files, so removing the
//! root alone frees little). The walk never follows a symlink.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::DataError;

/// An inode with several links: the links seen, its link count, its bytes, the last tree seen.
struct Shared {
    seen: u64,
    nlink: u64,
    bytes: u64,
    tree: usize,
}

/// Bytes per tree (by index), filled by [`Tally::walk`] and [`Tally::finish`].
#[derive(Default)]
pub(crate) struct Tally {
    own: HashMap<usize, u64>,
    shared: HashMap<(u64, u64), Shared>,
}

impl Tally {
    /// Counts the tree at `path` (a directory, a file or a link) as tree number `tree`.
    pub(crate) fn walk(&mut self, path: &Path, tree: usize) -> Result<(), DataError> {
        let mut stack = vec![path.to_path_buf()];
        while let Some(p) = stack.pop() {
            let Ok(m) = p.symlink_metadata() else {
                continue;
            };
            let bytes = m.blocks().saturating_mul(512);
            if m.is_dir() {
                *self.own.entry(tree).or_default() += bytes;
                let rd = std::fs::read_dir(&p).map_err(|source| DataError::Walk {
                    path: p.clone(),
                    source,
                })?;
                stack.extend(rd.flatten().map(|e| e.path()));
            } else if m.nlink() > 1 {
                let s = self.shared.entry((m.dev(), m.ino())).or_insert(Shared {
                    seen: 0,
                    nlink: m.nlink(),
                    bytes,
                    tree,
                });
                s.seen += 1;
                s.tree = tree;
            } else {
                *self.own.entry(tree).or_default() += bytes;
            }
        }
        Ok(())
    }

    /// Adds each tree's bytes to `bytes[tree]`: a shared inode's to the tree that held its
    /// last link, when all its links were seen.
    pub(crate) fn finish(self, bytes: &mut [u64]) {
        let mut add = |tree: usize, n: u64| {
            if let Some(b) = bytes.get_mut(tree) {
                *b = b.saturating_add(n);
            }
        };
        for (tree, n) in self.own {
            add(tree, n);
        }
        for s in self.shared.into_values() {
            if s.seen >= s.nlink {
                add(s.tree, s.bytes);
            }
        }
    }
}
