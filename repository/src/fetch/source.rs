//! A repository source (one base URL) and a checked path inside a repository.
//!
//! Invariants: a [`Source`] is made only by [`Source::parse`], so an `Http` base is an absolute
//! `http://` or `https://` URL with a host, no credentials, query or fragment, ending with `/`,
//! and a `File` directory is an absolute path. A [`RelPath`] is made only by [`RelPath::new`]:
//! relative, `/`-separated, every component non-empty, not `.` or `..`, and made of RFC 3986
//! unreserved characters (`A-Z a-z 0-9 - . _ ~`), which need no escaping in a URL and mean
//! nothing special to a file system. Every file of the layout (`root.json`, `roots/7.json`,
//! `blobs/sha256/<hex>`, `objects/sha256/<hh>/<hex>.zst`) is such a path.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::FetchError;

/// The longest path accepted inside a repository.
const MAX_REL_PATH: usize = 1024;

/// One base URL of a repository: the main one or a mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `http://` or `https://`: `base` is the normalized URL, lowercase scheme, ending in `/`.
    Http { base: String },
    /// `file://`: the repository directory.
    File { dir: PathBuf },
}

impl Source {
    /// Parses a remote's URL (`https://host/repo`, `http://host:8080/`, `file:///srv/repo`).
    /// Anything else is refused with a message naming the URL.
    pub fn parse(url: &str) -> Result<Source, FetchError> {
        if let Some(rest) = strip_scheme(url, "https://") {
            return http_source(url, "https", rest);
        }
        if let Some(rest) = strip_scheme(url, "http://") {
            return http_source(url, "http", rest);
        }
        if let Some(rest) = strip_scheme(url, "file://") {
            return file_source(url, rest);
        }
        Err(FetchError::UnsupportedUrl {
            url: url.to_owned(),
        })
    }

    /// Whether this is an `http://` or `https://` source.
    pub fn is_http(&self) -> bool {
        matches!(self, Source::Http { .. })
    }

    /// The URL of `rel` at this source, for messages.
    pub(crate) fn url_of(&self, rel: &RelPath<'_>) -> String {
        format!("{self}{}", rel.as_str())
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Http { base } => f.write_str(base),
            Source::File { dir } => {
                let dir = dir.display().to_string();
                let slash = if dir.ends_with('/') { "" } else { "/" };
                write!(f, "file://{dir}{slash}")
            }
        }
    }
}

fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let head = url.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &url[scheme.len()..])
}

fn malformed(url: &str, reason: &'static str) -> FetchError {
    FetchError::MalformedUrl {
        url: url.to_owned(),
        reason,
    }
}

fn http_source(url: &str, scheme: &str, rest: &str) -> Result<Source, FetchError> {
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(malformed(url, "it has no host"));
    }
    if authority.contains('@') {
        return Err(malformed(url, "credentials in the url are not supported"));
    }
    if path.contains(['?', '#']) {
        return Err(malformed(url, "a repository url has no query or fragment"));
    }
    let slash = if path.ends_with('/') { "" } else { "/" };
    let base = format!("{scheme}://{authority}{path}{slash}");
    let uri: ureq::http::Uri = base
        .parse()
        .map_err(|_| malformed(url, "it is not a valid url"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(malformed(url, "it has no host"));
    }
    Ok(Source::Http { base })
}

fn file_source(url: &str, rest: &str) -> Result<Source, FetchError> {
    let path = strip_scheme(rest, "localhost")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(malformed(
            url,
            "a file url needs an absolute path: file:///PATH",
        ));
    }
    if path.contains(['%', '?', '#', '\0']) {
        return Err(malformed(
            url,
            "write the directory plainly, without %-escapes, '?' or '#'",
        ));
    }
    Ok(Source::File {
        dir: Path::new(path).to_path_buf(),
    })
}

/// A checked path inside a repository (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelPath<'a>(&'a str);

impl<'a> RelPath<'a> {
    pub fn new(path: &'a str) -> Result<Self, FetchError> {
        let refuse = |reason| FetchError::BadPath {
            path: path.to_owned(),
            reason,
        };
        if path.is_empty() {
            return Err(refuse("it is empty"));
        }
        if path.len() > MAX_REL_PATH {
            return Err(refuse("it is longer than 1024 bytes"));
        }
        if path.starts_with('/') {
            return Err(refuse("it is absolute"));
        }
        for component in path.split('/') {
            match component {
                "" => return Err(refuse("it has an empty component")),
                "." | ".." => return Err(refuse("it has a '.' or '..' component")),
                _ => {}
            }
            if !component.bytes().all(is_unreserved) {
                return Err(refuse(
                    "it has a character other than A-Z a-z 0-9 - . _ ~ and /",
                ));
            }
        }
        Ok(RelPath(path))
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The components, each a plain name (no `/`, not `.` or `..`, not empty).
    pub(crate) fn components(&self) -> impl Iterator<Item = &'a str> {
        self.0.split('/')
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}
