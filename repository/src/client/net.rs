//! The network [`Source`]: the [`Fetcher`] (HTTP(S) and `file://`, with mirrors) behind the
//! client's trait. Every check is the fetcher's (sizes, digests, caps, redirects, timeouts);
//! this only maps its answers onto the trait's contract: a missing metadata file is `None`,
//! everything else an error naming the remote.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bundle_format::Digest;

use super::error::ClientError;
use super::remote::Remote;
use super::source::Source;
use crate::error::FetchError;
use crate::fetch::{self, Fetcher};

/// Told `(bytes done, bytes in all)` while a blob downloads (a progress bar).
pub type Progress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A remote reached through the fetcher.
pub struct Net {
    remote: String,
    fetcher: Fetcher,
    progress: Option<Progress>,
}

impl Net {
    /// With the fetcher's default timeouts.
    pub fn new(remote: &Remote) -> Result<Self, ClientError> {
        Self::with_timeouts(remote, fetch::CONNECT_TIMEOUT, fetch::STALL_TIMEOUT)
    }

    /// Connections must be up within `connect`; a transfer fails after `stall` without a byte.
    pub fn with_timeouts(
        remote: &Remote,
        connect: Duration,
        stall: Duration,
    ) -> Result<Self, ClientError> {
        let fetch_err = |source| ClientError::Fetcher {
            remote: remote.name.clone(),
            source,
        };
        let sources = remote
            .urls()
            .iter()
            .map(|u| fetch::Source::parse(u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fetch_err)?;
        let fetcher = Fetcher::with_timeouts(sources, connect, stall).map_err(fetch_err)?;
        Ok(Self {
            remote: remote.name.clone(),
            fetcher,
            progress: None,
        })
    }

    /// Reports each blob's download to `progress`.
    pub fn with_progress(mut self, progress: Option<Progress>) -> Self {
        self.progress = progress;
        self
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
        let progress = self.progress.clone();
        let mut tell = move |done: u64, all: u64| {
            if let Some(p) = &progress {
                p(done, all)
            }
        };
        self.fetcher
            .get_blob(rel, digest, size, dest, &mut tell)
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

/// A [`super::Connect`] like [`connect`] with other timeouts (see [`Net::with_timeouts`]).
pub fn connect_with(
    connect: Duration,
    stall: Duration,
    progress: Option<Progress>,
) -> super::Connect {
    Box::new(move |remote| {
        let net = Net::with_timeouts(remote, connect, stall)?.with_progress(progress.clone());
        Ok(Box::new(net))
    })
}
