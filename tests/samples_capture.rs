//! The captured samples (`samples/{perl,node,curl,git,zenity}`; `python3-tests` has a file
//! of its own): recipes written by `capsa capture` with light edits (each recipe says which). Each test packs its sample
//! (which re-runs the recipe's traces on this machine), runs the real program in the sandbox,
//! and compares with the same program on the host: the output, a page through the pager
//! under tmux, a screenshot under Xvfb.
//!
//! The programs come from Debian packages that `.ci/run` installs; when one is missing the
//! test is skipped, unless `CAPSA_REQUIRE_SANDBOX` (CI) makes that a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Whether every program in `tools` is installed; fails when CI requires the samples.
fn have_all(tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools.iter().filter(|t| !Path::new(t).exists()).collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_SANDBOX").is_none(),
            "the sample tests are required (CI) but {missing:?} are missing: run .ci/run as root"
        );
        eprintln!("skipped: {missing:?} not installed");
        return false;
    }
    userns()
}

/// Packs `samples/NAME/capsa.toml` into the test's temporary directory.
fn pack_sample(name: &str, env: &[(&str, &str)]) -> PathBuf {
    let recipe = src().join("samples").join(name).join("capsa.toml");
    let out = shared_tmp().join(format!("{name}.capsa"));
    let o = capsa(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .envs(env.iter().copied())
    .output()
    .expect("run capsa pack");
    assert!(o.status.success(), "packing {name} failed: {}", text(&o));
    out
}

/// `capsa run --yes BUNDLE ARGS...` (the flags before `--`, the app's arguments after).
fn run_app(iso: &Isolated, bundle: &Path, flags: &[&str], args: &[&str]) -> Output {
    let mut all = vec!["run", "--yes"];
    all.extend_from_slice(flags);
    all.push(bundle.to_str().unwrap());
    all.push("--");
    all.extend_from_slice(args);
    iso.run(&all)
}

fn host(argv: &[&str]) -> Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .expect("run on the host")
}

fn assert_same(what: &str, host: &Output, sandbox: &Output) {
    assert!(host.status.success(), "{what} on the host: {}", text(host));
    assert!(
        sandbox.status.success(),
        "{what} in the sandbox: {}",
        text(sandbox)
    );
    assert_eq!(
        String::from_utf8_lossy(&sandbox.stdout),
        String::from_utf8_lossy(&host.stdout),
        "{what}: the sandbox printed something else than the host; stderr: {}",
        String::from_utf8_lossy(&sandbox.stderr)
    );
}

#[test]
fn perl_script_with_posix_and_encode_runs_as_on_the_host() {
    if !have_all(&["/usr/bin/perl"]) {
        return;
    }
    let bundle = pack_sample("perl", &[]);
    let iso = Isolated::new();
    let script = src().join("samples/perl/report.pl");
    let h = host(&["/usr/bin/perl", script.to_str().unwrap()]);
    let s = run_app(&iso, &bundle, &[], &[]);
    assert_same("report.pl", &h, &s);
    assert!(String::from_utf8_lossy(&s.stdout).contains("00 63 00 61 00 66 00 e9"));
    assert!(
        !String::from_utf8_lossy(&s.stderr).contains("locale"),
        "{}",
        text(&s)
    );
}

#[test]
fn node_runs_a_script_as_on_the_host() {
    if !have_all(&["/usr/bin/node"]) {
        return;
    }
    let bundle = pack_sample("node", &[]);
    let iso = Isolated::new();
    let script = src().join("samples/node/hello.js");
    let h = host(&["/usr/bin/node", script.to_str().unwrap()]);
    let s = run_app(&iso, &bundle, &[], &[]);
    assert_same("hello.js", &h, &s);
}

/// A CA and a certificate for `localhost` signed by it, made with openssl in `dir`.
fn make_ca(dir: &Path) {
    let sh = format!(
        "set -e; cd {d}
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=capsa-test-ca \
           -keyout ca.key -out ca.pem 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout srv.key \
           -out srv.csr 2>/dev/null
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
           -extfile ext -out srv.pem 2>/dev/null
         chmod a+r *",
        d = dir.display()
    );
    let st = Command::new("sh").args(["-c", &sh]).status().unwrap();
    assert!(st.success(), "openssl could not make the test CA");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn curl_fetches_https_from_a_loopback_server_with_its_ca() {
    if !have_all(&["/usr/bin/curl", "/usr/bin/openssl"]) {
        return;
    }
    let bundle = pack_sample("curl", &[]);
    let iso = Isolated::new();
    let dir = iso.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    make_ca(&dir);
    let port = free_port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", "srv.pem", "-key", "srv.key"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://localhost:{port}/");
    let ca = dir.join("ca.pem");
    let grant = format!("filesystem={}:ro", dir.display());
    let flags = ["--allow", "network", "--allow", grant.as_str()];
    let s = run_app(
        &iso,
        &bundle,
        &flags,
        &["-sS", "--cacert", ca.to_str().unwrap(), &url],
    );
    // Without the CA the certificate is refused: the check is real, and the bundle's own
    // CA store (the base) is the one curl looked in.
    let refused = run_app(&iso, &bundle, &flags, &["-sS", &url]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(s.status.success(), "curl in the sandbox: {}", text(&s));
    assert!(
        String::from_utf8_lossy(&s.stdout).contains("s_server"),
        "{}",
        text(&s)
    );
    assert_eq!(refused.status.code(), Some(60), "{}", text(&refused));
}

/// A tmux server of the test's own (its own socket), killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }
    fn pane(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn git_inits_commits_and_logs_through_the_pager_under_tmux() {
    if !have_all(&["/usr/bin/git", "/usr/bin/tmux", "/usr/bin/less"]) {
        return;
    }
    let bundle = pack_sample("git", &[]);
    let iso = Isolated::new();
    // The sandbox's private home is at the real home path: the repository lives there.
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let repo = format!("{home}/capsa-sample-repo");
    let git = |args: &[&str]| run_app(&iso, &bundle, &[], args);
    let init = git(&["init", &repo]);
    assert!(init.status.success(), "{}", text(&init));
    assert!(
        !text(&init).contains("templates not found"),
        "{}",
        text(&init)
    );
    let commit = git(&[
        "-C",
        &repo,
        "-c",
        "user.name=Capsa",
        "-c",
        "user.email=capsa@example.invalid",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "capsa sample commit",
    ]);
    assert!(commit.status.success(), "{}", text(&commit));
    // A shell-script subcommand (git-bisect.sh) runs: /bin/sh and its tools are in.
    let bisect = git(&["-C", &repo, "bisect", "log"]);
    assert!(
        text(&bisect).contains("not bisecting"),
        "git bisect did not run: {}",
        text(&bisect)
    );
    let tmux = Tmux {
        socket: iso.path().join("tmux.sock"),
    };
    let env: Vec<String> = iso
        .env()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.display()))
        .collect();
    let line = format!(
        "env {} {} run --yes --env LESS=R {} -- -C {repo} log; sleep 30",
        env.join(" "),
        capsa_bin().display(),
        bundle.display()
    );
    let st = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        &line,
    ]);
    assert!(st.status.success(), "tmux: {}", text(&st));
    let end = Instant::now() + Duration::from_secs(30);
    let mut pane = String::new();
    while Instant::now() < end {
        pane = tmux.pane();
        if pane.contains("(END)") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        pane.contains("capsa sample commit") && pane.contains("(END)"),
        "git log did not page through less:\n{pane}"
    );
    assert!(!pane.contains("not fully functional"), "{pane}");
    assert!(!pane.contains("cannot run"), "{pane}");
    tmux.cmd(&["send-keys", "-t", "t", "q"]);
}

/// A private X server on a free display, killed on drop.
struct Xvfb {
    display: String,
    child: std::process::Child,
}

impl Xvfb {
    fn start() -> Self {
        for n in 70..120 {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            let display = format!(":{n}");
            let mut child = Command::new("Xvfb")
                .args([
                    display.as_str(),
                    "-screen",
                    "0",
                    "800x600x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start Xvfb");
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                    return Self { display, child };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("no Xvfb display could be started");
    }

    /// The root window as a PNG in `out`.
    fn screenshot(&self, out: &Path) {
        let st = Command::new("import")
            .args(["-window", "root", out.to_str().unwrap()])
            .env("DISPLAY", &self.display)
            .status()
            .unwrap();
        assert!(st.success(), "import could not take a screenshot");
    }

    /// Waits until a window titled `title` is mapped.
    fn wait_window(&self, title: &str, secs: u64) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            let o = Command::new("xdotool")
                .args(["search", "--onlyvisible", "--name", title])
                .env("DISPLAY", &self.display)
                .output()
                .unwrap();
            if o.status.success() && !o.stdout.is_empty() {
                // Let it finish drawing.
                std::thread::sleep(Duration::from_millis(1500));
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ImageMagick's count of differing pixels between two images (5% fuzz).
fn differing_pixels(a: &Path, b: &Path) -> u64 {
    let o = Command::new("compare")
        .args(["-metric", "AE", "-fuzz", "5%"])
        .arg(a)
        .arg(b)
        .arg("null:")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stderr);
    s.split_whitespace()
        .next()
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(f64::MAX) as u64
}

/// The number of distinct colours in an image.
fn colours(img: &Path) -> u64 {
    let o = Command::new("identify")
        .args(["-format", "%k"])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

const ZENITY_TEXT: &str = "Capsa sample: a GTK dialog from a sandbox";

#[test]
fn zenity_shows_its_text_under_xvfb_as_on_the_host() {
    if !have_all(&[
        "/usr/bin/zenity",
        "/usr/bin/Xvfb",
        "/usr/bin/xdotool",
        "/usr/bin/import",
    ]) {
        return;
    }
    let x = Xvfb::start();
    let bundle = pack_sample("zenity", &[("DISPLAY", x.display.as_str())]);
    let iso = Isolated::new();
    let args = [
        "--info",
        "--title",
        "capsa-zenity",
        "--text",
        ZENITY_TEXT,
        "--timeout",
        "20",
    ];
    let shot = |name: &str, mut child: std::process::Child| -> PathBuf {
        let shown = x.wait_window("capsa-zenity", 20);
        let out = iso.path().join(name);
        if shown {
            x.screenshot(&out);
        }
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        assert!(shown, "{name}: no zenity window appeared; {}", text(&o));
        out
    };
    let host_child = Command::new("/usr/bin/zenity")
        .args(args)
        .env("DISPLAY", &x.display)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let host_png = shot("host.png", host_child);
    let mut all = vec![
        "run",
        "--yes",
        "--allow",
        "socket=x11",
        bundle.to_str().unwrap(),
        "--",
    ];
    all.extend_from_slice(&args);
    let sandbox_child = iso
        .capsa(&all)
        .env("DISPLAY", &x.display)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sandbox_png = shot("sandbox.png", sandbox_child);
    // More than a blank window: anti-aliased text and an icon give many colours; and the
    // sandbox draws what the host draws (same fonts, theme and icon), pixel for pixel within
    // a small margin.
    let n = colours(&sandbox_png);
    assert!(n > 30, "the sandboxed dialog looks blank ({n} colours)");
    let diff = differing_pixels(&host_png, &sandbox_png);
    assert!(
        diff < 800 * 600 / 100,
        "the sandboxed dialog differs from the host's in {diff} pixels (see {} and {})",
        host_png.display(),
        sandbox_png.display()
    );
}
