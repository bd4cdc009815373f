//! capsa is one static file (glibc static-pie, `.cargo/config.toml`): no program interpreter,
//! no shared library, so it runs on a distribution with an older glibc or none, and it can be
//! the stub of a self-executable bundle. Checked on the built binary itself: its ELF headers
//! (goblin), what `file` says, that it runs in an empty root, and that it never asks NSS.
//!
//! A `RUSTFLAGS` in the environment silently replaces the config's flags and makes the binary
//! dynamic again: these tests are what notice. `file` and strace are required when
//! `CAPSA_REQUIRE_PORTABLE` (or `CI=true`) is set.

mod common;

use std::process::Command;

use common::*;

/// Whether CI requires the portability tools (`file`, strace) instead of skipping without them.
fn required() -> bool {
    std::env::var_os("CAPSA_REQUIRE_PORTABLE").is_some()
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

fn capsa_elf_bytes() -> Vec<u8> {
    let bin = capsa_bin();
    std::fs::read(&bin).unwrap_or_else(|e| panic!("read {}: {e}", bin.display()))
}

#[test]
fn capsa_has_no_interpreter_and_needs_no_library() {
    use goblin::elf::program_header::{PT_DYNAMIC, PT_INTERP};
    let bytes = capsa_elf_bytes();
    let elf = goblin::elf::Elf::parse(&bytes).expect("capsa is an ELF file");
    assert!(
        !elf.program_headers.iter().any(|p| p.p_type == PT_INTERP),
        "capsa has a PT_INTERP ({:?}): it is dynamically linked (is RUSTFLAGS set? it \
         replaces .cargo/config.toml's -C target-feature=+crt-static)",
        elf.interpreter
    );
    assert_eq!(elf.interpreter, None);
    assert!(
        elf.libraries.is_empty(),
        "capsa needs shared libraries (DT_NEEDED): {:?}",
        elf.libraries
    );
    // static-pie: position-independent (ET_DYN) with a PT_DYNAMIC for its own relocations.
    assert_eq!(
        elf.header.e_type,
        goblin::elf::header::ET_DYN,
        "capsa is not static-pie"
    );
    assert!(elf.program_headers.iter().any(|p| p.p_type == PT_DYNAMIC));
}

#[test]
fn file_says_capsa_is_statically_linked() {
    if !have("file") {
        assert!(
            !required(),
            "file(1) is required (CAPSA_REQUIRE_PORTABLE) but missing: apt-get install file"
        );
        eprintln!("skipped: file(1) is not installed");
        return;
    }
    let o = Command::new("file")
        .arg("-L")
        .arg(capsa_bin())
        .output()
        .expect("run file");
    let says = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "file failed: {}", text(&o));
    assert!(
        says.contains("static-pie linked") || says.contains("statically linked"),
        "file does not call capsa static: {says}"
    );
    assert!(!says.contains("interpreter"), "{says}");
}

#[test]
fn capsa_runs_in_a_root_that_holds_only_itself() {
    if !userns() {
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("capsa-static-root-")
        .tempdir_in(shared_tmp())
        .unwrap();
    std::fs::copy(capsa_bin(), root.path().join("capsa")).unwrap();
    // Another test thread that forks while the copy is open for writing holds it open until
    // its exec: ETXTBSY for a moment.
    let mut o = run_in_root(root.path(), &["/capsa", "--version"], &[]);
    for _ in 0..50 {
        if !text(&o).contains("Text file busy") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        o = run_in_root(root.path(), &["/capsa", "--version"], &[]);
    }
    assert!(
        o.status.success(),
        "capsa does not start without a loader and libraries: {}",
        text(&o)
    );
    assert!(stdout(&o).starts_with("capsa "), "{}", text(&o));
}

/// Without `USER` and `HOME` the launcher looks the user up: in `/etc/passwd` itself, never
/// through NSS (a static glibc would read nsswitch.conf and dlopen the host's modules).
#[test]
fn capsa_run_reads_passwd_itself_and_never_nsswitch() {
    if !userns() {
        return;
    }
    if !have_strace() {
        assert!(!required(), "strace is required (CAPSA_REQUIRE_PORTABLE)");
        return;
    }
    let iso = Isolated::new();
    let log = iso.path().join("open.log");
    let bundle = hello_bundle();
    let o = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(&log)
        .arg(capsa_bin())
        .args(["run", bundle.to_str().unwrap()])
        .envs(iso.env())
        .env_remove("USER")
        .env_remove("HOME")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run strace");
    assert!(o.status.success(), "capsa run failed: {}", text(&o));
    let opened = std::fs::read_to_string(&log).unwrap();
    assert!(
        opened.contains("\"/etc/passwd\""),
        "capsa did not read /etc/passwd for the user's name and home:\n{opened}"
    );
    // The host's NSS configuration or modules (the bundle's own files are unpacked into the
    // layer cache, under other paths; the hello app itself never asks NSS).
    let nss: Vec<&str> = opened
        .lines()
        .filter(|l| {
            l.contains("\"/etc/nsswitch.conf\"")
                || ["\"/lib", "\"/usr/lib"]
                    .iter()
                    .any(|d| l.contains(d) && l.contains("/libnss_"))
        })
        .collect();
    assert!(
        nss.is_empty(),
        "capsa run went through NSS:\n{}",
        nss.join("\n")
    );
}

/// Repositories by host name: glibc's getaddrinfo, linked in statically, still resolves
/// through `files` (and `dns`) without loading any NSS module.
#[test]
fn a_static_capsa_resolves_localhost_for_a_remote() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            if tx
                .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .is_err()
            {
                return;
            }
        }
    });
    let home = XdgHome::new("capsa-static-dns-");
    let url = format!("http://localhost:{port}/");
    home.ok(&["remote", "add", "local", &url, "--key", &"a".repeat(64)]);
    let o = home.capsa(&["search", "anything"]).output().unwrap();
    let request = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("capsa never reached localhost:{port}: {}", text(&o)));
    assert!(request.starts_with("GET /root.json "), "{request}");
    let host = format!("host: localhost:{port}");
    assert!(request.to_ascii_lowercase().contains(&host), "{request}");
}
