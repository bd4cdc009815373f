//! The network [`Source`]: the [`Fetcher`] (HTTP(S) and `file://`, with mirrors) behind the
//! client's trait. Every check is the fetcher's (sizes, digests, caps, redirects, timeouts);
//! this only maps its answers onto the trait's contract: a missing metadata file is `None`,
//! everything else an error naming the remote.

use std::io::Write;
use std::path::Path;

use bundle_format::Digest;

use super::error::ClientError;
use super::remote::Remote;
use super::source::Source;
use crate::error::FetchError;
use crate::fetch::Fetcher;

/// A remote reached through the fetcher.
pub struct Net {
    remote: String,
    fetcher: Fetcher,
}

impl Net {
    pub fn new(remote: &Remote) -> Result<Self, ClientError> {
        let fetcher = Fetcher::from_urls(&remote.url, &remote.mirrors).map_err(|source| {
            ClientError::Fetcher {
                remote: remote.name.clone(),
                source,
            }
        })?;
        Ok(Self {
            remote: remote.name.clone(),
            fetcher,
        })
    }

    fn err(&self, source: FetchError) -> ClientError {
        ClientError::Fetcher {
            remote: self.remote.clone(),
            source,
        }
    }
}

impl Source for Net {
    fn meta(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, ClientError> {
        match self.fetcher.get_meta(rel, cap) {
            Ok(b) => Ok(Some(b)),
            Err(FetchError::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    fn blob(&self, rel: &str, digest: &Digest, size: u64, dest: &Path) -> Result<(), ClientError> {
        self.fetcher
            .get_blob(rel, digest, size, dest, &mut |_, _| {})
            .map_err(|e| self.err(e))
    }

    fn object(
        &self,
        rel: &str,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
    ) -> Result<(), ClientError> {
        self.fetcher
            .get_object(rel, digest, size, out)
            .map_err(|e| self.err(e))
    }

    fn bytes_received(&self) -> u64 {
        self.fetcher.received()
    }
}

/// The [`super::Connect`] of the `capsa` binary: the fetcher for every remote, `file://`
/// ones included (the library's tests also use [`super::source::DirSource`]).
pub fn connect(remote: &Remote) -> Result<Box<dyn Source>, ClientError> {
    Ok(Box::new(Net::new(remote)?))
}
