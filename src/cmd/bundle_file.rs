//! A bundle file named on the command line: a missing one is said to be missing (with the
//! bundle files beside it, for a mistyped name), and any other failure to open it is one line
//! that names the file once.

use std::path::Path;

use bundle_format::Bundle;

/// How many bundle files beside a missing one are named.
const SHOWN: usize = 5;

/// Opens the bundle at `path`, or fails naming it: [`missing`] when there is no such file.
pub fn open(path: &Path) -> anyhow::Result<Bundle> {
    Bundle::open(path).map_err(|e| match e {
        bundle_format::Error::Open { ref source, .. }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            missing(path, "")
        }
        // Its message names the file and its source says why.
        bundle_format::Error::Open { .. } => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(format!("cannot open bundle {}", path.display())),
    })
}

/// `no such file: PATH`, then `why` (e.g. why the name was taken as a file), then the bundle
/// files in the same directory when there are some.
pub fn missing(path: &Path, why: &str) -> anyhow::Error {
    let mut msg = format!("no such file: {}{why}", path.display());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut near: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".capsa") && !n.starts_with('.'))
        .collect();
    near.sort();
    if !near.is_empty() {
        let more = near.len().saturating_sub(SHOWN);
        near.truncate(SHOWN);
        let names: Vec<String> = near.iter().map(|n| super::store::safe(n)).collect();
        msg.push_str(&format!(
            "; bundle files in {}: {}{}",
            dir.display(),
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    } else if !dir.is_dir() {
        msg.push_str(&format!("; there is no directory {}", dir.display()));
    }
    anyhow::anyhow!(msg)
}
