//! `http://` and `https://` sources: the ureq agent and one GET, redirects followed here.
//!
//! The agent never follows a redirect itself (`max_redirects(0)`): ureq 3.5 would follow a
//! `Location` of any scheme it can give a port to, which includes `socks4://` and `socks5://`.
//! So this module follows at most [`MAX_REDIRECTS`] of 301, 302, 303, 307 and 308, each only to
//! `http://` or `https://`, and never from `https` down to `http`; the `Range` header goes
//! along. Status codes are answers here, not errors (`http_status_as_error(false)`), mapped to
//! typed [`Problem`]s. No content coding is asked for or decoded (`Accept-Encoding: identity`
//! and ureq's `gzip` feature off), so the body is the file's bytes.
//!
//! Timeouts: the connection (with the name lookup) must be up within the connect timeout;
//! every read and write of the socket, headers and body alike, must progress within the stall
//! timeout, and the whole response head must arrive within it too.

use std::io::Read;
use std::time::Duration;

use ureq::http::{header, StatusCode, Uri};
use ureq::Agent;

use super::source::RelPath;
use super::Answer;
use crate::error::Problem;

/// The most redirects followed for one file.
pub const MAX_REDIRECTS: u32 = 5;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("capsa/", env!("CARGO_PKG_VERSION"));

/// The agent shared by all requests of one fetcher.
pub(crate) fn agent(connect: Duration, stall: Duration) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_resolve(Some(connect))
        .timeout_connect(Some(connect))
        .timeout_send_request(Some(stall))
        .timeout_recv_response(Some(stall))
        .timeout_per_read(Some(stall))
        .timeout_per_write(Some(stall))
        .user_agent(USER_AGENT)
        .accept_encoding("identity")
        .build()
        .into()
}

/// GETs `base` + `rel`, from byte `from` on when `from > 0`, following redirects.
pub(crate) fn get(
    agent: &Agent,
    base: &str,
    rel: &RelPath<'_>,
    from: u64,
) -> Result<Answer<'static>, Problem> {
    let url = format!("{base}{}", rel.as_str());
    let mut uri: Uri = url.parse().map_err(|_| Problem::BadRedirect {
        location: url.clone(),
    })?;
    for _ in 0..=MAX_REDIRECTS {
        let mut request = agent.get(uri.clone());
        if from > 0 {
            request = request.header(header::RANGE, format!("bytes={from}-"));
        }
        let response = request.call()?;
        let status = response.status();
        if is_redirect(status) {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            uri = redirect_target(&uri, location)?;
            continue;
        }
        let offset = answer_offset(status, response.headers(), from)?;
        let body: Box<dyn Read> = Box::new(response.into_body().into_reader());
        return Ok(Answer { offset, body });
    }
    Err(Problem::TooManyRedirects { max: MAX_REDIRECTS })
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Where the body of a non-redirect answer starts in the file, or the problem it is.
fn answer_offset(
    status: StatusCode,
    headers: &ureq::http::HeaderMap,
    from: u64,
) -> Result<u64, Problem> {
    match status.as_u16() {
        200 => Ok(0),
        206 => {
            let content_range = headers
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            match range_start(content_range) {
                Some(start) if from > 0 && start == from => Ok(from),
                _ => Err(Problem::BadContentRange {
                    content_range: content_range.to_owned(),
                    asked: from,
                }),
            }
        }
        404 | 410 => Err(Problem::NotFound),
        416 if from > 0 => Err(Problem::RangeNotSatisfiable { from }),
        other => Err(Problem::Status(other)),
    }
}

/// The first byte of `bytes START-END/TOTAL` (or `/*`).
fn range_start(content_range: &str) -> Option<u64> {
    let spec = content_range.trim().strip_prefix("bytes ")?;
    let (range, _total) = spec.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    (start <= end).then_some(start)
}

/// The URL a `Location` sends `current` to, when it may be followed (see the module doc).
pub(crate) fn redirect_target(current: &Uri, location: &str) -> Result<Uri, Problem> {
    let bad = || Problem::BadRedirect {
        location: location.to_owned(),
    };
    let location_no_fragment = location.split('#').next().unwrap_or("");
    let scheme = current.scheme_str().unwrap_or("http");
    let authority = current.authority().map(|a| a.as_str()).ok_or_else(bad)?;
    let joined = match scheme_of(location_no_fragment) {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
            location_no_fragment.to_owned()
        }
        Some(_) => {
            return Err(Problem::RedirectScheme {
                location: location.to_owned(),
            })
        }
        None if location_no_fragment.starts_with("//") => {
            format!("{scheme}:{location_no_fragment}")
        }
        None if location_no_fragment.starts_with('/') => {
            format!("{scheme}://{authority}{location_no_fragment}")
        }
        None if location_no_fragment.is_empty() => return Err(bad()),
        None => {
            let path = current.path();
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            let dir = if dir.is_empty() { "/" } else { dir };
            format!("{scheme}://{authority}{dir}{location_no_fragment}")
        }
    };
    let target: Uri = joined.parse().map_err(|_| bad())?;
    if target.host().is_none_or(str::is_empty) {
        return Err(bad());
    }
    if scheme.eq_ignore_ascii_case("https")
        && !target
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        return Err(Problem::RedirectDowngrade {
            location: location.to_owned(),
        });
    }
    Ok(target)
}

/// The scheme of an absolute URI reference (RFC 3986: `ALPHA *(ALPHA / DIGIT / + / - / .)`
/// before the first `:`, with no `/`, `?` or `#` before it), or `None` for a relative one.
fn scheme_of(reference: &str) -> Option<&str> {
    let end = reference.find(':')?;
    let scheme = &reference[..end];
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    (first_ok && rest_ok).then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(current: &str, location: &str) -> Result<String, Problem> {
        redirect_target(&current.parse().unwrap(), location).map(|u| u.to_string())
    }

    #[test]
    fn redirects_resolve_like_a_browser() {
        let base = "http://a.example/repo/blobs/x";
        assert_eq!(target(base, "y").unwrap(), "http://a.example/repo/blobs/y");
        assert_eq!(target(base, "/z").unwrap(), "http://a.example/z");
        assert_eq!(target(base, "//b.example/w").unwrap(), "http://b.example/w");
        assert_eq!(
            target(base, "HTTPS://c.example/v#frag").unwrap(),
            "https://c.example/v"
        );
    }

    #[test]
    fn redirects_to_other_schemes_are_refused() {
        let base = "http://a.example/repo/x";
        for location in [
            "file:///etc/passwd",
            "socks5://127.0.0.1:1080/x",
            "ftp://a.example/x",
            "data:text/plain,hi",
        ] {
            assert!(
                matches!(target(base, location), Err(Problem::RedirectScheme { .. })),
                "{location}"
            );
        }
        assert!(matches!(target(base, ""), Err(Problem::BadRedirect { .. })));
    }

    #[test]
    fn https_never_redirects_down_to_http() {
        let base = "https://a.example/repo/x";
        assert!(matches!(
            target(base, "http://a.example/repo/x"),
            Err(Problem::RedirectDowngrade { .. })
        ));
        assert!(target(base, "https://b.example/x").is_ok());
        assert!(target(base, "/y").is_ok());
    }

    #[test]
    fn content_range_start() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes 100-199/*"), Some(100));
        assert_eq!(range_start("bytes 200-100/300"), None);
        assert_eq!(range_start("bytes */300"), None);
        assert_eq!(range_start(""), None);
    }
}
