//! A real nginx (Debian's) serving a directory on loopback, for the repository tests: started
//! as whoever runs the test (no root needed: its prefix, logs, temp files and pid file are in a
//! private temporary directory), stopped when dropped. Its access log records, per request,
//! the URI, the status, the body bytes sent and the Range asked for, so a test counts what a
//! client really fetched.
//!
//! `CAPSA_REQUIRE_NGINX=1` (CI) makes a missing nginx a failure instead of a skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";

/// One request of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub uri: String,
    pub status: u16,
    pub bytes: u64,
    pub range: String,
}

pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// Whether nginx can be used here; panics in CI when it cannot.
pub fn available() -> bool {
    let ok = Path::new(NGINX).exists();
    if !ok && std::env::var_os("CAPSA_REQUIRE_NGINX").is_some() {
        panic!("{NGINX} is missing (apt-get install nginx-light) and CAPSA_REQUIRE_NGINX is set");
    }
    if !ok {
        eprintln!("skipping: {NGINX} is missing");
    }
    ok
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Nginx {
    /// Serves `root` at `http://127.0.0.1:PORT/`.
    pub fn serve(root: &Path) -> Self {
        for _ in 0..5 {
            if let Some(n) = Self::try_serve(root) {
                return n;
            }
        }
        panic!("nginx did not start on a free port five times");
    }

    fn try_serve(root: &Path) -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("capsa-nginx-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let p = dir.path();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {pid};\nerror_log {err} info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               log_format hits '$request_uri $status $body_bytes_sent \"$http_range\"';\n\
               access_log {acc} hits;\n\
               client_body_temp_path {t}/body; proxy_temp_path {t}/proxy;\n\
               fastcgi_temp_path {t}/fcgi; uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;\n\
               types {{ application/json json; text/html html; }}\n\
               default_type application/octet-stream;\n\
               server {{ listen 127.0.0.1:{port}; root {root}; autoindex off; }}\n}}\n",
            pid = p.join("nginx.pid").display(),
            err = p.join("error.log").display(),
            acc = p.join("access.log").display(),
            t = p.display(),
            root = root.display(),
        );
        std::fs::write(p.join("nginx.conf"), conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(p)
            .arg("-c")
            .arg(p.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Self { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(n);
            }
            if let Ok(Some(_)) = n.child.try_wait() {
                return None; // the port was taken meanwhile, or the config failed
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Every request so far. nginx writes a log line when the response is finished.
    pub fn hits(&self) -> Vec<Hit> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| {
                let mut it = l.splitn(4, ' ');
                Some(Hit {
                    uri: it.next()?.to_owned(),
                    status: it.next()?.parse().ok()?,
                    bytes: it.next()?.parse().ok()?,
                    range: it.next()?.trim_matches('"').to_owned(),
                })
            })
            .collect()
    }

    /// Body bytes sent since the log had `since` lines.
    pub fn bytes_since(&self, since: usize) -> u64 {
        self.hits()[since..].iter().map(|h| h.bytes).sum()
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
