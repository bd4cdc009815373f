//! The fetcher against a small misbehaving HTTP/1.1 server of the test's own (plain
//! `TcpListener` on 127.0.0.1, one request per connection, hand-written answers) and against
//! `file://` directories: every check of `repository::fetch` on real sockets and files.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bundle_format::Digest;
use repository::error::{FetchError, Problem};
use repository::fetch::{Fetcher, Source, MAX_REDIRECTS, USER_AGENT};

// ------------------------------------------------------------------------------------------
// The test server
// ------------------------------------------------------------------------------------------

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Req {
    path: String,
    /// Header names lowercased.
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Req, usize, &mut TcpStream) + Send + Sync;

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Req>>>,
}

impl Server {
    /// Serves every connection with `handler(request, index of the request, stream)`.
    fn start(handler: impl Fn(&Req, usize, &mut TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let handler = handler.clone();
                let seen = seen2.clone();
                thread::spawn(move || {
                    let Some(req) = read_request(&mut stream) else {
                        return;
                    };
                    let index = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(req.clone());
                        seen.len() - 1
                    };
                    handler(&req, index, &mut stream);
                });
            }
        });
        Server { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}/repo/", self.addr)
    }

    fn source(&self) -> Source {
        Source::parse(&self.url()).unwrap()
    }

    fn seen(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Req> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Some(Req { path, headers })
}

/// Writes a response head (with `Connection: close`) and a body; errors are the client
/// leaving, which some tests want.
fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let _ = s.flush();
}

fn ok(s: &mut TcpStream, body: &[u8]) {
    respond(
        s,
        "200 OK",
        &[("Content-Length", body.len().to_string())],
        body,
    );
}

fn status(s: &mut TcpStream, status: &str) {
    respond(s, status, &[("Content-Length", "0".into())], b"");
}

fn redirect(s: &mut TcpStream, location: &str) {
    respond(
        s,
        "302 Found",
        &[
            ("Location", location.to_owned()),
            ("Content-Length", "0".into()),
        ],
        b"",
    );
}

/// Answers a `Range: bytes=N-` request with `206` and the rest of `body`, or `200` and all of
/// it without one.
fn ok_ranged(req: &Req, s: &mut TcpStream, body: &[u8]) {
    let from = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match from {
        Some(from) if from < body.len() => respond(
            s,
            "206 Partial Content",
            &[
                ("Content-Length", (body.len() - from).to_string()),
                (
                    "Content-Range",
                    format!("bytes {from}-{}/{}", body.len() - 1, body.len()),
                ),
            ],
            &body[from..],
        ),
        Some(_) => status(s, "416 Range Not Satisfiable"),
        None => ok(s, body),
    }
}

/// Sends `chunk` forever (until the client goes away).
fn endless(s: &mut TcpStream, chunk: &[u8]) {
    while s.write_all(chunk).is_ok() {}
}

/// A port nothing listens on.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/repo/")
}

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// 300 000 bytes of a fixed pseudo-random sequence (more than socket buffers hold).
fn blob_bytes() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn fetcher(sources: Vec<Source>) -> Fetcher {
    Fetcher::with_timeouts(sources, Duration::from_secs(5), Duration::from_secs(5)).unwrap()
}

fn part_of(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

fn get_blob(f: &Fetcher, data: &[u8], dest: &Path) -> Result<(), FetchError> {
    let digest = Digest::of(data);
    f.get_blob(
        "blobs/sha256/b",
        &digest,
        data.len() as u64,
        dest,
        &mut |_, _| {},
    )
}

/// The problems of a `Failed` error, in source order.
fn problems(e: &FetchError) -> &[repository::error::SourceFailure] {
    match e {
        FetchError::Failed { failures, .. } => failures,
        other => panic!("not a Failed error: {other:?}"),
    }
}

fn only_problem(e: &FetchError) -> &Problem {
    let failures = problems(e);
    assert_eq!(failures.len(), 1, "{e}");
    &failures[0].problem
}

// ------------------------------------------------------------------------------------------
// Blobs
// ------------------------------------------------------------------------------------------

#[test]
fn good_blob_arrives_checked_through_part() {
    let data = blob_bytes();
    let served = data.clone();
    let server = Server::start(move |req, _, s| {
        assert_eq!(req.path, "/repo/blobs/sha256/b");
        ok(s, &served)
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let f = fetcher(vec![server.source()]);
    let mut last = (0, 0);
    let mut calls = 0;
    f.get_blob(
        "blobs/sha256/b",
        &Digest::of(&data),
        data.len() as u64,
        &dest,
        &mut |done, total| {
            assert!(done >= last.0, "progress goes forward");
            last = (done, total);
            calls += 1;
        },
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!part_of(&dest).exists());
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the .part is created 0600 and renamed");
    assert_eq!(last, (data.len() as u64, data.len() as u64));
    assert!(calls > 1);
    assert_eq!(f.received(), data.len() as u64);
    let seen = server.seen();
    assert_eq!(seen[0].header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("capsa/"));
    assert!(
        matches!(seen[0].header("accept-encoding"), None | Some("identity")),
        "{:?}",
        seen[0].header("accept-encoding")
    );
    assert_eq!(seen[0].header("range"), None);
}

#[test]
fn flipped_bit_is_refused_and_nothing_kept() {
    let data = blob_bytes();
    let mut bad = data.clone();
    bad[1234] ^= 0x10;
    let server = Server::start(move |_, _, s| ok(s, &bad));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let f = fetcher(vec![server.source()]);
    let e = get_blob(&f, &data, &dest).unwrap_err();
    match only_problem(&e) {
        Problem::DigestMismatch { expected, .. } => assert_eq!(*expected, Digest::of(&data)),
        other => panic!("{other:?}"),
    }
    let message = e.to_string();
    assert!(
        message.contains(&server.url()),
        "names the source: {message}"
    );
    assert!(
        message.contains(&Digest::of(&data).to_string()),
        "names the blob: {message}"
    );
    assert!(!dest.exists());
    assert!(!part_of(&dest).exists(), "a mismatch deletes the .part");
}

#[test]
fn endless_blob_is_cut_one_byte_past_its_size() {
    let data = blob_bytes();
    let server = Server::start(move |_, _, s| {
        respond(s, "200 OK", &[], b"");
        endless(s, &[7u8; 65536]);
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let f = fetcher(vec![server.source()]);
    let e = get_blob(&f, &data, &dest).unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::TooLong { size } if *size == data.len() as u64),
        "{e}"
    );
    assert_eq!(f.received(), data.len() as u64 + 1, "cut at size + 1");
    assert!(!dest.exists());
    assert!(!part_of(&dest).exists());
}

#[test]
fn lying_content_length_never_passes_for_a_blob() {
    let data = blob_bytes();
    let dir = tempfile::tempdir().unwrap();

    // Claims the full size, sends half, closes: an interrupted transfer, the .part kept.
    let half = data[..data.len() / 2].to_vec();
    let size = data.len();
    let server = Server::start(move |_, _, s| {
        respond(s, "200 OK", &[("Content-Length", size.to_string())], &half)
    });
    let dest = dir.path().join("a");
    let e = get_blob(&fetcher(vec![server.source()]), &data, &dest).unwrap_err();
    assert!(matches!(only_problem(&e), Problem::Read(_)), "{e}");
    assert!(!dest.exists());
    let kept = std::fs::read(part_of(&dest)).unwrap();
    assert!(!kept.is_empty() && data.starts_with(&kept));

    // Claims 10 bytes, sends everything: only 10 are taken, and they are not the blob.
    let all = data.clone();
    let server = Server::start(move |_, _, s| {
        respond(s, "200 OK", &[("Content-Length", "10".into())], &all)
    });
    let dest = dir.path().join("b");
    let e = get_blob(&fetcher(vec![server.source()]), &data, &dest).unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::Short { got: 10, .. }),
        "{e}"
    );
    assert!(!dest.exists());

    // Claims 1 byte but is chunked and endless: cut at size + 1.
    let server = Server::start(move |_, _, s| {
        respond(
            s,
            "200 OK",
            &[
                ("Content-Length", "1".into()),
                ("Transfer-Encoding", "chunked".into()),
            ],
            b"",
        );
        let mut chunk = b"10000\r\n".to_vec();
        chunk.extend_from_slice(&[1u8; 0x10000]);
        chunk.extend_from_slice(b"\r\n");
        endless(s, &chunk);
    });
    let dest = dir.path().join("c");
    let f = fetcher(vec![server.source()]);
    let e = get_blob(&f, &data, &dest).unwrap_err();
    assert!(matches!(only_problem(&e), Problem::TooLong { .. }), "{e}");
    assert_eq!(f.received(), data.len() as u64 + 1);
    assert!(!dest.exists());
}

#[test]
fn a_stall_fails_within_the_stall_timeout() {
    // Headers, then silence.
    let server = Server::start(|_, _, s| {
        respond(s, "200 OK", &[("Content-Length", "100".into())], b"abc");
        thread::sleep(Duration::from_secs(10));
    });
    // Nothing at all after the request.
    let mute = Server::start(|_, _, _| thread::sleep(Duration::from_secs(10)));
    for source in [server.source(), mute.source()] {
        let f =
            Fetcher::with_timeouts(vec![source], Duration::from_secs(5), Duration::from_secs(1))
                .unwrap();
        let start = Instant::now();
        let e = f.get_meta("index.json", 1000).unwrap_err();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(4), "took {took:?}");
        assert!(took >= Duration::from_millis(900), "took {took:?}");
        assert!(
            matches!(only_problem(&e), Problem::Read(_) | Problem::Transport(_)),
            "{e}"
        );
    }
}

#[test]
fn a_dead_transfer_resumes_with_range() {
    let data = blob_bytes();
    let served = data.clone();
    let server = Server::start(move |req, index, s| {
        if index == 0 {
            // Dies after 100 000 bytes of a 300 000-byte answer.
            respond(
                s,
                "200 OK",
                &[("Content-Length", served.len().to_string())],
                &served[..100_000],
            );
        } else {
            ok_ranged(req, s, &served);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let f = fetcher(vec![server.source()]);
    let e = get_blob(&f, &data, &dest).unwrap_err();
    assert!(matches!(only_problem(&e), Problem::Read(_)), "{e}");
    assert!(!dest.exists());
    let kept = std::fs::metadata(part_of(&dest)).unwrap().len();
    assert_eq!(kept, 100_000, "the .part keeps what arrived");

    let mut first_progress = None;
    f.get_blob(
        "blobs/sha256/b",
        &Digest::of(&data),
        data.len() as u64,
        &dest,
        &mut |done, _| {
            first_progress.get_or_insert(done);
        },
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!part_of(&dest).exists());
    assert_eq!(first_progress, Some(100_000));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("range"), Some("bytes=100000-"));
    assert_eq!(f.received(), data.len() as u64, "no byte fetched twice");
}

#[test]
fn a_resume_answered_200_or_416_starts_over() {
    let data = blob_bytes();
    let dir = tempfile::tempdir().unwrap();
    let digest = Digest::of(&data);

    // The server ignores Range: the whole body again, from zero.
    let served = data.clone();
    let ignores = Server::start(move |_, _, s| ok(s, &served));
    let dest = dir.path().join("a");
    std::fs::write(part_of(&dest), &data[..5000]).unwrap();
    get_blob(&fetcher(vec![ignores.source()]), &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(ignores.seen()[0].header("range"), Some("bytes=5000-"));

    // 416, then a plain request.
    let served = data.clone();
    let refuses = Server::start(move |req, _, s| {
        if req.header("range").is_some() {
            status(s, "416 Range Not Satisfiable")
        } else {
            ok(s, &served)
        }
    });
    let dest = dir.path().join("b");
    std::fs::write(part_of(&dest), &data[..5000]).unwrap();
    get_blob(&fetcher(vec![refuses.source()]), &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let seen = refuses.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("range"), None);

    // A 206 from another byte than the one asked for, then a plain request.
    let served = data.clone();
    let skewed = Server::start(move |req, _, s| {
        if req.header("range").is_some() {
            let tail = &served[4000..];
            respond(
                s,
                "206 Partial Content",
                &[
                    ("Content-Length", tail.len().to_string()),
                    (
                        "Content-Range",
                        format!("bytes 4000-{}/{}", served.len() - 1, served.len()),
                    ),
                ],
                tail,
            )
        } else {
            ok(s, &served)
        }
    });
    let dest = dir.path().join("skewed");
    std::fs::write(part_of(&dest), &data[..5000]).unwrap();
    get_blob(&fetcher(vec![skewed.source()]), &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let seen = skewed.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("range"), Some("bytes=5000-"));
    assert_eq!(seen[1].header("range"), None);

    // A kept .part longer than the blob: no Range at all.
    let served = data.clone();
    let plain = Server::start(move |req, _, s| ok_ranged(req, s, &served));
    let dest = dir.path().join("c");
    let mut long = data.clone();
    long.push(0);
    std::fs::write(part_of(&dest), &long).unwrap();
    get_blob(&fetcher(vec![plain.source()]), &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(plain.seen()[0].header("range"), None);

    // A complete, correct .part needs no network.
    let dest = dir.path().join("d");
    std::fs::write(part_of(&dest), &data).unwrap();
    let f = fetcher(vec![Source::parse(&dead_url()).unwrap()]);
    f.get_blob(
        "blobs/sha256/b",
        &digest,
        data.len() as u64,
        &dest,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
}

#[test]
fn a_damaged_kept_prefix_is_fetched_again_from_zero() {
    let data = blob_bytes();
    let served = data.clone();
    let server = Server::start(move |req, _, s| ok_ranged(req, s, &served));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let mut prefix = data[..50_000].to_vec();
    prefix[10] ^= 1;
    std::fs::write(part_of(&dest), &prefix).unwrap();
    // The resumed transfer fails its digest: the same source is asked for the whole blob.
    get_blob(&fetcher(vec![server.source()]), &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!part_of(&dest).exists());
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].header("range"), Some("bytes=50000-"));
    assert_eq!(seen[1].header("range"), None);
}

#[test]
fn a_source_whose_blob_is_wrong_is_asked_twice_at_most() {
    let data = blob_bytes();
    let mut served = data.clone();
    served[200_000] ^= 1;
    let server = Server::start(move |req, _, s| ok_ranged(req, s, &served));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    std::fs::write(part_of(&dest), &data[..50_000]).unwrap();
    let e = get_blob(&fetcher(vec![server.source()]), &data, &dest).unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::DigestMismatch { .. }),
        "{e}"
    );
    assert!(!dest.exists());
    assert!(!part_of(&dest).exists());
    assert_eq!(
        server.seen().len(),
        2,
        "the resumed try, then one from zero"
    );
}

#[test]
fn a_part_that_is_a_symlink_is_never_written_through() {
    let data = blob_bytes();
    let served = data.clone();
    let server = Server::start(move |_, _, s| ok(s, &served));
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let dest = dir.path().join("blob");
    std::os::unix::fs::symlink(&victim, part_of(&dest)).unwrap();
    let e = get_blob(&fetcher(vec![server.source()]), &data, &dest).unwrap_err();
    assert!(matches!(e, FetchError::OpenPart { .. }), "{e}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!dest.exists());
    assert!(server.seen().is_empty(), "refused before any request");
}

// ------------------------------------------------------------------------------------------
// Metadata
// ------------------------------------------------------------------------------------------

#[test]
fn metadata_is_capped_while_it_arrives() {
    let body = b"{\"signed\":{}}".to_vec();
    let served = body.clone();
    let good = Server::start(move |_, _, s| ok(s, &served));
    let f = fetcher(vec![good.source()]);
    assert_eq!(f.get_meta("index.json", 1000).unwrap(), body);
    assert_eq!(
        f.get_meta("index.json", body.len() as u64).unwrap(),
        body,
        "exactly the cap passes"
    );
    let e = f.get_meta("index.json", body.len() as u64 - 1).unwrap_err();
    assert!(matches!(only_problem(&e), Problem::TooLarge { .. }), "{e}");

    // Endless, close-delimited.
    let endless_server = Server::start(|_, _, s| {
        respond(s, "200 OK", &[], b"");
        endless(s, &[b'x'; 4096]);
    });
    let f = fetcher(vec![endless_server.source()]);
    let e = f.get_meta("index.json", 100_000).unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::TooLarge { cap: 100_000 }),
        "{e}"
    );
    assert_eq!(f.received(), 100_001, "cut at cap + 1");

    // A lying Content-Length (1 byte) on an endless chunked body.
    let liar = Server::start(|_, _, s| {
        respond(
            s,
            "200 OK",
            &[
                ("Content-Length", "1".into()),
                ("Transfer-Encoding", "chunked".into()),
            ],
            b"",
        );
        endless(
            s,
            b"1000\r\n"
                .iter()
                .chain(&[b'y'; 0x1000])
                .chain(b"\r\n")
                .copied()
                .collect::<Vec<_>>()
                .as_slice(),
        );
    });
    let f = fetcher(vec![liar.source()]);
    let e = f.get_meta("index.json", 50_000).unwrap_err();
    assert!(matches!(only_problem(&e), Problem::TooLarge { .. }), "{e}");
    assert_eq!(f.received(), 50_001);

    // A Content-Length far above the cap with a small body: the body decides.
    let big_claim = Server::start(|_, _, s| {
        respond(s, "200 OK", &[("Content-Length", "5".into())], b"hello");
    });
    let f = fetcher(vec![big_claim.source()]);
    assert_eq!(f.get_meta("root.json", 5).unwrap(), b"hello");
}

#[test]
fn metadata_not_found_is_final_and_mirrors_are_not_asked() {
    let main = Server::start(|_, _, s| status(s, "404 Not Found"));
    let mirror = Server::start(|_, _, s| ok(s, b"{}"));
    let f = fetcher(vec![main.source(), mirror.source()]);
    let e = f.get_meta("roots/2.json", 1000).unwrap_err();
    match &e {
        FetchError::NotFound { url } => assert_eq!(url, &format!("{}roots/2.json", main.url())),
        other => panic!("{other:?}"),
    }
    assert!(mirror.seen().is_empty());
    let gone = Server::start(|_, _, s| status(s, "410 Gone"));
    let e = fetcher(vec![gone.source()])
        .get_meta("roots/2.json", 1000)
        .unwrap_err();
    assert!(matches!(e, FetchError::NotFound { .. }), "{e}");
}

// ------------------------------------------------------------------------------------------
// Redirects
// ------------------------------------------------------------------------------------------

#[test]
fn a_redirect_to_file_is_refused_and_nothing_read() {
    let server = Server::start(|_, _, s| redirect(s, "file:///etc/passwd"));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let f = fetcher(vec![server.source()]);
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let e = get_blob(&f, &passwd, &dest).unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::RedirectScheme { location } if location == "file:///etc/passwd"),
        "{e}"
    );
    assert!(!dest.exists());
    assert!(!part_of(&dest).exists());
    assert_eq!(f.received(), 0);
    let e = f.get_meta("index.json", 1 << 20).unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::RedirectScheme { .. }),
        "{e}"
    );
    assert_eq!(f.received(), 0);
}

#[test]
fn a_redirect_to_socks_is_refused_and_nothing_connects() {
    // ureq 3.5 itself would follow this one (it knows a port for socks5).
    let trap = Server::start(|_, _, s| ok(s, b"{}"));
    let location = format!("socks5://{}/repo/index.json", trap.addr);
    let server = Server::start(move |_, _, s| redirect(s, &location));
    let e = fetcher(vec![server.source()])
        .get_meta("index.json", 1000)
        .unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::RedirectScheme { .. }),
        "{e}"
    );
    thread::sleep(Duration::from_millis(100));
    assert!(trap.seen().is_empty());
}

#[test]
fn five_redirects_are_followed_and_a_loop_is_refused() {
    // /repo/index.json -> /r1 -> ... -> /r5 -> 200.
    let chain = Server::start(|req, _, s| {
        let n: u32 = req
            .path
            .strip_prefix("/r")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if n < MAX_REDIRECTS {
            redirect(s, &format!("/r{}", n + 1))
        } else {
            ok(s, b"end")
        }
    });
    let f = fetcher(vec![chain.source()]);
    assert_eq!(f.get_meta("index.json", 100).unwrap(), b"end");
    assert_eq!(chain.seen().len(), MAX_REDIRECTS as usize + 1);

    let looping = Server::start(|req, _, s| {
        let path = req.path.clone();
        redirect(s, &path)
    });
    let e = fetcher(vec![looping.source()])
        .get_meta("index.json", 100)
        .unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::TooManyRedirects { max: 5 }),
        "{e}"
    );
    assert_eq!(looping.seen().len(), MAX_REDIRECTS as usize + 1);
}

#[test]
fn a_redirect_keeps_the_range() {
    let data = blob_bytes();
    let served = data.clone();
    let server = Server::start(move |req, _, s| {
        if req.path.starts_with("/repo/") {
            redirect(s, "/elsewhere/b")
        } else {
            ok_ranged(req, s, &served)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    std::fs::write(part_of(&dest), &data[..777]).unwrap();
    get_blob(&fetcher(vec![server.source()]), &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let seen = server.seen();
    assert_eq!(seen[1].path, "/elsewhere/b");
    assert_eq!(seen[1].header("range"), Some("bytes=777-"));
}

// ------------------------------------------------------------------------------------------
// Failover
// ------------------------------------------------------------------------------------------

#[test]
fn a_dead_or_failing_source_fails_over_to_the_next() {
    let data = blob_bytes();
    let served = data.clone();
    let good = Server::start(move |_, _, s| ok(s, &served));
    let failing = Server::start(|_, _, s| status(s, "503 Service Unavailable"));
    let dead = Source::parse(&dead_url()).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let f = fetcher(vec![dead.clone(), failing.source(), good.source()]);
    let dest = dir.path().join("blob");
    get_blob(&f, &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(failing.seen().len(), 1);
    assert_eq!(f.get_meta("blobs/sha256/b", 1 << 20).unwrap(), data);

    // Everything fails: every source is named with its problem.
    let f = fetcher(vec![dead.clone(), failing.source()]);
    let e = get_blob(&f, &data, &dir.path().join("other")).unwrap_err();
    let failures = problems(&e);
    assert_eq!(failures.len(), 2);
    assert!(matches!(failures[0].problem, Problem::Transport(_)), "{e}");
    assert!(matches!(failures[1].problem, Problem::Status(503)), "{e}");
    let message = e.to_string();
    assert!(message.contains(&dead.to_string()), "{message}");
    assert!(message.contains(&failing.url()), "{message}");
    assert!(message.contains("503"), "{message}");
}

#[test]
fn a_blob_missing_from_the_main_source_is_asked_of_the_mirror() {
    let data = blob_bytes();
    let served = data.clone();
    let main = Server::start(|_, _, s| status(s, "404 Not Found"));
    let mirror = Server::start(move |_, _, s| ok(s, &served));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    get_blob(&fetcher(vec![main.source(), mirror.source()]), &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
}

#[test]
fn a_bad_answer_from_the_main_source_resumes_at_the_mirror() {
    let data = blob_bytes();
    let first = data[..120_000].to_vec();
    let size = data.len();
    let main = Server::start(move |_, _, s| {
        respond(s, "200 OK", &[("Content-Length", size.to_string())], &first)
    });
    let served = data.clone();
    let mirror = Server::start(move |req, _, s| ok_ranged(req, s, &served));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let f = fetcher(vec![main.source(), mirror.source()]);
    get_blob(&f, &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(mirror.seen()[0].header("range"), Some("bytes=120000-"));
}

// ------------------------------------------------------------------------------------------
// Objects
// ------------------------------------------------------------------------------------------

fn object_server(compressed: Vec<u8>) -> Server {
    Server::start(move |_, _, s| ok(s, &compressed))
}

#[test]
fn objects_are_decompressed_and_checked() {
    let content = blob_bytes();
    let digest = Digest::of(&content);
    let size = content.len() as u64;
    let compressed = zstd::encode_all(&content[..], 19).unwrap();
    let server = object_server(compressed.clone());
    let f = fetcher(vec![server.source()]);
    let rel = "objects/sha256/ab/abcd.zst";
    let mut out = Vec::new();
    f.get_object(rel, &digest, size, &mut out).unwrap();
    assert_eq!(out, content);
    assert_eq!(f.received(), compressed.len() as u64);

    // Another digest.
    let e = f
        .get_object(rel, &Digest::of(b"other"), size, &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::DigestMismatch { .. }),
        "{e}"
    );

    // Claimed smaller than it is: the compressed bound of 1000 bytes (this content does not
    // compress) is passed first.
    let mut out = Vec::new();
    let e = f.get_object(rel, &digest, 1000, &mut out).unwrap_err();
    assert!(matches!(only_problem(&e), Problem::TooLarge { .. }), "{e}");
    assert!(out.len() <= 1000);

    // Claimed smaller than it decompresses to, within the bound: cut at size + 1.
    let text = b"capsa ".repeat(10_000);
    let small = object_server(zstd::encode_all(&text[..], 19).unwrap());
    let mut out = Vec::new();
    let e = fetcher(vec![small.source()])
        .get_object(rel, &Digest::of(&text[..1000]), 1000, &mut out)
        .unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::TooLong { size: 1000 }),
        "{e}"
    );
    assert!(out.len() <= 1000);

    // Claimed larger: short.
    let e = f
        .get_object(rel, &digest, size + 1, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(only_problem(&e), Problem::Short { .. }), "{e}");

    // A truncated stream.
    let cut = object_server(compressed[..compressed.len() / 2].to_vec());
    let e = fetcher(vec![cut.source()])
        .get_object(rel, &digest, size, &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(
            only_problem(&e),
            Problem::Short { .. } | Problem::Decompress(_)
        ),
        "{e}"
    );

    // Not zstd at all.
    let garbage = object_server(content.clone());
    let e = fetcher(vec![garbage.source()])
        .get_object(rel, &digest, size, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(only_problem(&e), Problem::Decompress(_)), "{e}");
}

#[test]
fn a_decompression_bomb_stops_at_the_signed_size() {
    // 256 MiB of zeros in a few kilobytes, claimed to be 4096 bytes.
    let mut encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    let server = object_server(bomb);
    let mut out = Vec::new();
    let start = Instant::now();
    let e = fetcher(vec![server.source()])
        .get_object("objects/x.zst", &Digest::of(&[0u8; 4096]), 4096, &mut out)
        .unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::TooLong { size: 4096 }),
        "{e}"
    );
    assert!(
        out.len() <= 4096 && out.iter().all(|&b| b == 0),
        "{}",
        out.len()
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_endless_object_is_cut_at_its_compressed_bound() {
    // Endless empty zstd frames: no output, ever.
    let empty_frame = zstd::encode_all(&b""[..], 1).unwrap();
    let server = Server::start(move |_, _, s| {
        respond(s, "200 OK", &[], b"");
        endless(s, &empty_frame.repeat(1000));
    });
    let f = fetcher(vec![server.source()]);
    // Without the bound this never returns: wait for it on another thread.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let result = f.get_object("objects/x.zst", &Digest::of(b"hi"), 2, &mut Vec::new());
        let _ = tx.send((result, f.received()));
    });
    let (result, received) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("an endless object must be cut");
    let e = result.unwrap_err();
    let cap = repository::fetch::compressed_cap(2);
    assert!(
        matches!(only_problem(&e), Problem::TooLarge { cap: c } if *c == cap),
        "{e}"
    );
    assert!(received <= cap + 1, "{received}");
}

#[test]
fn an_object_fails_over_only_before_its_first_byte() {
    let content = blob_bytes();
    let digest = Digest::of(&content);
    let compressed = zstd::encode_all(&content[..], 19).unwrap();
    let good = object_server(compressed.clone());
    let failing = Server::start(|_, _, s| status(s, "500 Internal Server Error"));
    let mut out = Vec::new();
    fetcher(vec![failing.source(), good.source()])
        .get_object("o.zst", &digest, content.len() as u64, &mut out)
        .unwrap();
    assert_eq!(out, content);

    // A damaged object (its tail replaced): output started, so the mirror is not asked.
    let mut damaged_content = content.clone();
    let n = damaged_content.len();
    damaged_content[n - 1] ^= 1;
    let damaged = object_server(zstd::encode_all(&damaged_content[..], 3).unwrap());
    let mirror = object_server(compressed);
    let e = fetcher(vec![damaged.source(), mirror.source()])
        .get_object("o.zst", &digest, content.len() as u64, &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::DigestMismatch { .. }),
        "{e}"
    );
    assert!(mirror.seen().is_empty());
}

// ------------------------------------------------------------------------------------------
// file:// sources, paths and URLs
// ------------------------------------------------------------------------------------------

#[test]
fn file_sources_read_below_their_directory_only() {
    let data = blob_bytes();
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("blobs/sha256")).unwrap();
    std::fs::write(repo.path().join("blobs/sha256/b"), &data).unwrap();
    std::fs::write(repo.path().join("index.json"), b"{}").unwrap();
    let url = format!("file://{}", repo.path().display());
    let f = fetcher(vec![Source::parse(&url).unwrap()]);
    assert_eq!(f.get_meta("index.json", 10).unwrap(), b"{}");
    assert!(matches!(
        f.get_meta("roots/2.json", 10),
        Err(FetchError::NotFound { .. })
    ));
    let e = f.get_meta("index.json", 1).unwrap_err();
    assert!(
        matches!(only_problem(&e), Problem::TooLarge { cap: 1 }),
        "{e}"
    );

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("blob");
    get_blob(&f, &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    // Resume from a file source.
    let dest = out.path().join("resumed");
    std::fs::write(part_of(&dest), &data[..1000]).unwrap();
    let before = f.received();
    get_blob(&f, &data, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(f.received() - before, data.len() as u64 - 1000);

    // A symlink to a file outside, and a symlinked directory, are refused.
    std::os::unix::fs::symlink("/etc/passwd", repo.path().join("root.json")).unwrap();
    let e = f.get_meta("root.json", 1 << 20).unwrap_err();
    assert!(matches!(only_problem(&e), Problem::Symlink), "{e}");
    std::os::unix::fs::symlink("/etc", repo.path().join("roots")).unwrap();
    let e = f.get_meta("roots/passwd", 1 << 20).unwrap_err();
    assert!(matches!(only_problem(&e), Problem::Symlink), "{e}");
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let dest = out.path().join("passwd");
    let e = f
        .get_blob(
            "roots/passwd",
            &Digest::of(&passwd),
            passwd.len() as u64,
            &dest,
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(matches!(only_problem(&e), Problem::Symlink), "{e}");
    assert!(!dest.exists() && !part_of(&dest).exists());
    assert_eq!(f.received(), before + data.len() as u64 - 1000);

    // A FIFO is not a regular file, and does not hang the open.
    nix::unistd::mkfifo(
        &repo.path().join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let e = f.get_meta("fifo", 10).unwrap_err();
    assert!(matches!(only_problem(&e), Problem::NotRegular), "{e}");

    // A directory that does not exist is the source's problem, not "not found".
    let missing = format!("file://{}/nope", repo.path().display());
    let e = fetcher(vec![Source::parse(&missing).unwrap()])
        .get_meta("roots/2.json", 10)
        .unwrap_err();
    assert!(matches!(only_problem(&e), Problem::OpenDir(_)), "{e}");
}

#[test]
fn bad_paths_are_refused_before_any_request() {
    let server = Server::start(|_, _, s| ok(s, b"x"));
    let f = fetcher(vec![server.source()]);
    let dir = tempfile::tempdir().unwrap();
    for path in [
        "",
        "../etc/passwd",
        "blobs/../../etc/passwd",
        "..",
        "/etc/passwd",
        "a//b",
        "a/",
        "./a",
        "a/./b",
        "a b",
        "a%2e%2e/b",
        "a?x=1",
        "a#b",
        "caf\u{e9}",
        "a\\b",
        "a\nb",
    ] {
        let e = f.get_meta(path, 10).unwrap_err();
        assert!(matches!(e, FetchError::BadPath { .. }), "{path:?}: {e}");
        let e = f
            .get_blob(
                path,
                &Digest::of(b"x"),
                1,
                &dir.path().join("d"),
                &mut |_, _| {},
            )
            .unwrap_err();
        assert!(matches!(e, FetchError::BadPath { .. }), "{path:?}: {e}");
        let e = f
            .get_object(path, &Digest::of(b"x"), 1, &mut Vec::new())
            .unwrap_err();
        assert!(matches!(e, FetchError::BadPath { .. }), "{path:?}: {e}");
    }
    assert!(server.seen().is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let long = "a".repeat(1025);
    assert!(matches!(
        f.get_meta(&long, 10),
        Err(FetchError::BadPath { .. })
    ));
}

#[test]
fn urls_are_parsed_once_and_others_refused() {
    for url in [
        "ftp://example.org/repo",
        "example.org/repo",
        "/srv/repo",
        "socks5://example.org/",
        "",
    ] {
        match Source::parse(url) {
            Err(e @ FetchError::UnsupportedUrl { .. }) => {
                assert!(e.to_string().contains(&format!("{url:?}")), "{e}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    for url in [
        "http://",
        "https:///repo",
        "https://user:pw@example.org/repo",
        "https://example.org/repo?x=1",
        "https://example.org/repo#x",
        "file://relative/dir",
        "file://host/srv/repo",
        "file:///srv/my%20repo",
    ] {
        assert!(
            matches!(Source::parse(url), Err(FetchError::MalformedUrl { .. })),
            "{url}"
        );
    }
    assert_eq!(
        Source::parse("HTTPS://example.org:8443/repo").unwrap(),
        Source::Http {
            base: "https://example.org:8443/repo/".into()
        }
    );
    assert_eq!(
        Source::parse("http://example.org").unwrap().to_string(),
        "http://example.org/"
    );
    assert_eq!(
        Source::parse("file://localhost/srv/repo").unwrap(),
        Source::File {
            dir: "/srv/repo".into()
        }
    );
    assert_eq!(
        Source::parse("file:///srv/repo/").unwrap().to_string(),
        "file:///srv/repo/"
    );
    assert!(matches!(
        Fetcher::new(Vec::new()),
        Err(FetchError::NoSource)
    ));
    let f = Fetcher::from_urls("https://a.example/r", &["file:///srv/m"]).unwrap();
    assert_eq!(f.sources().len(), 2);
    assert!(Fetcher::from_urls("https://a.example/r", &["gopher://x"]).is_err());
}

#[test]
fn a_fetcher_is_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Fetcher>();
    send_sync::<FetchError>();
}

#[test]
fn errors_read_well() {
    // The whole failure list in one message, each source with its problem.
    let e = fetcher(vec![Source::parse(&dead_url()).unwrap()])
        .get_meta("index.json", 10)
        .unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with("cannot fetch index.json: http://127.0.0.1:"),
        "{message}"
    );
    assert!(
        message.ends_with("check the network and the remote's urls"),
        "{message}"
    );
}
