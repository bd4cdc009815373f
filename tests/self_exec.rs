//! Self-executable bundles, for real: `capsa pack --self-exec` (and the recipe's `[bundle]
//! self-exec`), the file run with no capsa on PATH (the app's arguments passed through, even
//! ones that look like capsa's own), its `--capsa-*` options (info, report, extract, install
//! then `capsa run ID` with the capsa it installed, verify), the same identity as `capsa run`,
//! installing, inspecting, verifying and publishing like a plain bundle, `strip-stub` giving
//! the plain bundle back byte for byte, `verify` refusing a patched, swapped or unrecorded stub,
//! a bundle of a newer format version named as such, and restricted user namespaces reported
//! with the hint, the app never started unsandboxed.
//!
//! The stub is the debug `capsa` binary (large): each test writes at most two such files, in
//! temporary directories removed at its end; the tamper test uses a small ELF as the stub.

mod common;

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use bundle_format::Digest;
use common::repo::{read_app_doc, Repo};
use common::*;

const HELLO: &str = "org.capsa.Hello";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A PATH of the system directories without a capsa in them.
fn path_without_capsa() -> String {
    let dirs: Vec<&str> = ["/usr/local/bin", "/usr/bin", "/bin"]
        .into_iter()
        .filter(|d| !Path::new(d).join("capsa").exists())
        .collect();
    dirs.join(":")
}

/// `prog ARGS` in the private session `x`, with no capsa on PATH and stdin closed.
fn in_session(x: &XdgHome, prog: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    x.command(prog)
        .args(args)
        .env("PATH", path_without_capsa())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run")
}

fn ok_in(x: &XdgHome, prog: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let o = in_session(x, prog, args);
    assert!(o.status.success(), "{args:?} failed: {}", text(&o));
    text(&o)
}

/// Patches the trailer's and the header's format version to 2 (each is checked before the
/// meta digest, so nothing else needs recomputing to reach the check).
fn make_version_2(path: &Path) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let mut trailer = [0u8; 64];
    f.read_exact_at(&mut trailer, len - 64).unwrap();
    let payload = u64::from_le_bytes(trailer[16..24].try_into().unwrap());
    f.write_all_at(&2u16.to_le_bytes(), len - payload + 8)
        .unwrap();
    f.write_all_at(&2u16.to_le_bytes(), len - 64 + 8).unwrap();
}

fn version_2_message() -> String {
    format!(
        "this bundle needs bundle format version 2; this capsa ({}) reads up to version 1",
        env!("CARGO_PKG_VERSION")
    )
}

/// The hello sample with a desktop entry, packed signed by the repository's publisher key:
/// plain, and self-executable through the recipe's `[bundle]` table.
fn hello_pair(r: &Repo) -> (PathBuf, PathBuf) {
    let recipe = build_hello(&r.path("src"));
    let text = std::fs::read_to_string(&recipe).unwrap() + "\n[desktop]\nname = \"Hello\"\n";
    std::fs::write(&recipe, &text).unwrap();
    let se_recipe = r.path("src/self-exec.toml");
    std::fs::write(&se_recipe, text + "\n[bundle]\nself-exec = true\n").unwrap();
    let key = r.path("publisher.key");
    let (plain, app) = (r.path("plain.capsa"), r.path("app.capsa"));
    ok(&["pack", s(&recipe), "-o", s(&plain), "--sign", s(&key)]);
    let out = ok(&["pack", s(&se_recipe), "-o", s(&app), "--sign", s(&key)]);
    assert!(
        out.contains("self-executable: launcher stub: capsa"),
        "{out}"
    );
    (plain, app)
}

#[test]
fn a_self_exec_hello_runs_installs_verifies_and_publishes_like_a_plain_bundle() {
    if !userns() {
        return;
    }
    let r = Repo::new();
    let x = XdgHome::new("capsa-self-exec-");
    let (plain, app) = hello_pair(&r);
    let mode = std::fs::metadata(&app).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "a self-executable file is 0755");

    // strip-stub gives back the plain pack, byte for byte.
    let stripped = r.path("stripped.capsa");
    ok(&["strip-stub", s(&app), "-o", s(&stripped)]);
    let plain_bytes = std::fs::read(&plain).unwrap();
    assert!(
        std::fs::read(&stripped).unwrap() == plain_bytes,
        "strip-stub differs"
    );

    // Runs with no capsa on PATH; arguments go to the app, capsa-looking ones included.
    let o = in_session(&x, &app, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("hello from capsa: sqrt(2)=1.414214"),
        "{}",
        text(&o)
    );
    for args in [&["--help"][..], &["--ephemeral"], &["--", "--capsa-info"]] {
        let o = in_session(&x, &app, args);
        let arg = args.last().unwrap();
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains(&format!("{arg}: No such file or directory")),
            "{args:?} did not reach the app: {}",
            text(&o)
        );
    }
    let o = in_session(&x, &app, &["--capsa-bogus"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(
        text(&o).contains("unknown launcher option --capsa-bogus"),
        "{}",
        text(&o)
    );
    assert!(
        !text(&o).contains("hello from capsa"),
        "ran the app: {}",
        text(&o)
    );

    // The same identity (and state) as `capsa run` of the file and of the plain bundle.
    let capsa_data = x.data().join("capsa");
    let state = state_of(&capsa_data, HELLO);
    assert!(state.exists(), "no state at {}", state.display());
    for f in [&app, &plain] {
        let o = x.capsa(&["run", s(f)]).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(state_of(&capsa_data, HELLO), state);
    }

    // Launcher options.
    let info = ok_in(&x, &app, &["--capsa-info"]);
    assert!(
        info.contains("org.capsa.Hello 1.0") && info.contains("stub         capsa 0.1.0"),
        "{info}"
    );
    assert!(info.contains(s(&app)), "info names the file: {info}");
    let report = ok_in(&x, &app, &["--capsa-report"]);
    assert!(
        report.contains("capture report:") && report.contains("capsa-hello"),
        "{report}"
    );
    let dir = x.path().join("extracted");
    ok_in(&x, &app, &["--capsa-extract", s(&dir)]);
    assert!(dir.join("usr/local/bin/capsa-hello").is_file());
    let v = ok_in(&x, &app, &["--capsa-verify"]);
    assert!(
        v.contains(": ok (") && v.contains("; the same ELF as this capsa"),
        "{v}"
    );
    assert!(v.contains("matches its record; signed by"), "{v}");
    let help = ok_in(&x, &app, &["--capsa-help"]);
    assert!(help.contains("--capsa-extract DIR"), "{help}");

    // verify, inspect: the stub's record, its signature by the trusted key, and this capsa.
    let v = ok(&["verify", "--key", s(&r.path("publisher.pub")), s(&app)]);
    assert!(v.contains("stub: capsa 0.1.0, ELF sha256:"), "{v}");
    assert!(
        v.contains("matches its record; signed by trusted key"),
        "{v}"
    );
    let j: serde_json::Value = serde_json::from_str(&ok(&["verify", "--json", s(&app)])).unwrap();
    assert_eq!(j["stub"]["same_as_this_capsa"], true, "{j}");
    assert_eq!(j["stub"]["signature"]["state"], "untrusted", "{j}");
    let elf_len = std::fs::metadata(capsa_bin()).unwrap().len();
    let i = inspect_json(&app);
    assert_eq!(i["stub"]["state"], "recorded", "{i}");
    assert_eq!(i["stub"]["elf_len"], elf_len, "{i}");
    assert_eq!(i["stub_size"].as_u64().unwrap() % 4096, 0, "{i}");

    // --capsa-install with no capsa anywhere: it installs this file's capsa as
    // ~/.local/bin/capsa, which the desktop entry runs, and which runs the app by id.
    let o = in_session(&x, &app, &["--capsa-install"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "installed without consent: {}",
        text(&o)
    );
    let out = ok_in(&x, &app, &["--capsa-install", "--capsa-yes"]);
    assert!(out.contains("installed org.capsa.Hello 1.0"), "{out}");
    let launcher = x.home().join(".local/bin/capsa");
    assert!(out.contains(&format!("as {}", launcher.display())), "{out}");
    assert!(
        std::fs::read(&launcher).unwrap() == std::fs::read(capsa_bin()).unwrap(),
        "the installed capsa is not the stub's ELF"
    );
    let entry =
        std::fs::read_to_string(x.data().join("applications/org.capsa.Hello.desktop")).unwrap();
    assert!(
        entry.contains(&format!("Exec={} run {HELLO}", launcher.display())),
        "{entry}"
    );
    let run = ok_in(&x, &launcher, &["run", HELLO]);
    assert!(run.contains("hello from capsa"), "{run}");
    // `capsa install` of the file, in another store, as of a plain bundle.
    let other = StoreEnv::new();
    let out = other.install(&app);
    assert!(out.contains("installed org.capsa.Hello 1.0"), "{out}");
    let run = other.ok(&["run", HELLO]);
    assert!(run.contains("hello from capsa"), "{run}");

    // A repository publishes the payload alone: the plain bundle's bytes.
    r.add(&app, &[]);
    let doc = read_app_doc(&r.dir(), HELLO);
    assert_eq!(doc.releases[0].bundle.digest, Digest::of(&plain_bytes));
    ok(&["repo", "check", s(&r.dir())]);

    // A newer format version, from the self-executable file and from `capsa run`.
    let v2 = x.path().join("v2.capsa");
    std::fs::copy(&app, &v2).unwrap();
    make_version_2(&v2);
    let o = in_session(&x, &v2, &[]);
    std::fs::remove_file(&v2).unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains(&version_2_message()), "{}", text(&o));
    assert!(text(&o).contains(s(&v2)), "names the file: {}", text(&o));
    let v2 = x.path().join("v2-plain.capsa");
    std::fs::copy(&plain, &v2).unwrap();
    make_version_2(&v2);
    let o = x.capsa(&["run", s(&v2)]).output().unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains(&version_2_message()), "{}", text(&o));

    // No user namespaces: the hint and 125, and the app never runs.
    let o = x
        .command("unshare")
        .args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\"")
        .arg(&app)
        .env("PATH", path_without_capsa())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(
        text(&o).contains("unprivileged user namespaces are disabled or restricted"),
        "no hint: {}",
        text(&o)
    );
    assert!(
        !text(&o).contains("hello from capsa"),
        "ran unsandboxed: {}",
        text(&o)
    );
}

#[test]
fn a_self_exec_python_runs_with_no_capsa_on_path() {
    if !userns() {
        return;
    }
    let x = XdgHome::new("capsa-self-exec-py-");
    let py = x.path().join("python3.capsa");
    let out = ok(&[
        "pack",
        "--self-exec",
        "--from",
        s(python_bundle()),
        "-o",
        s(&py),
    ]);
    assert!(
        out.contains("added a launcher stub to org.python.Python3"),
        "{out}"
    );
    let o = in_session(&x, &py, &["-c", "import ssl, sqlite3; print(1)"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "1", "{}", text(&o));
    let code = "import sys; print(sys.argv[1:])";
    let o = in_session(
        &x,
        &py,
        &["-c", code, "--help", "--ephemeral", "--capsa-info", "--"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "['--help', '--ephemeral', '--capsa-info', '--']"
    );
    let o = in_session(&x, &py, &["-c", "import sys; sys.exit(7)"]);
    assert_eq!(o.status.code(), Some(7), "the app's status: {}", text(&o));
}

/// `capsa verify FILE` fails naming FILE and saying the stub was changed after packing.
fn refused_as_changed(f: &Path) -> String {
    let out = fails(&["verify", s(f)]);
    assert!(
        out.contains(&format!("{} failed verification", f.display())),
        "{out}"
    );
    assert!(out.contains("changed after packing"), "{out}");
    out
}

#[test]
fn verify_refuses_a_patched_swapped_or_unrecorded_stub() {
    let dir = tempfile::Builder::new()
        .prefix("capsa-self-exec-tamper-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let d = dir.path();
    let key = d.join("k");
    ok(&["keygen", s(&key)]);
    let (sk, pk) = (d.join("k.key"), d.join("k.pub"));
    let recipe = build_hello(&d.join("src"));
    let plain = d.join("plain.capsa");
    ok(&["pack", s(&recipe), "-o", s(&plain), "--sign", s(&sk)]);
    // A small ELF as the stub: /bin/true.
    let f = d.join("app.capsa");
    ok(&[
        "pack",
        "--self-exec",
        "--from",
        s(&plain),
        "--stub",
        "/bin/true",
        "-o",
        s(&f),
    ]);
    let v = ok(&["verify", s(&f)]);
    assert!(
        v.contains("unsigned (integrity only); not this capsa's ELF"),
        "{v}"
    );
    let out = fails(&["verify", "--key", s(&pk), s(&f)]);
    assert!(
        out.contains("the launcher stub is not signed by the trusted key"),
        "{out}"
    );
    let signed = d.join("signed.capsa");
    ok(&[
        "pack",
        "--self-exec",
        "--from",
        s(&f),
        "--stub",
        "/bin/true",
        "--sign",
        s(&sk),
        "-o",
        s(&signed),
    ]);
    let v = ok(&["verify", "--key", s(&pk), s(&signed)]);
    assert!(
        v.contains("matches its record; signed by trusted key"),
        "{v}"
    );
    let good = std::fs::read(&signed).unwrap();
    let true_elf = std::fs::read("/bin/true").unwrap();
    assert_eq!(&good[..true_elf.len()], &true_elf[..]);

    // One flipped byte in the ELF part.
    let mut b = good.clone();
    b[1000] ^= 1;
    std::fs::write(&f, &b).unwrap();
    let out = refused_as_changed(&f);
    assert!(out.contains("its ELF's sha256 is"), "{out}");
    // Another ELF of the same length under the same note.
    let other = std::fs::read("/bin/false").unwrap();
    assert_ne!(other, true_elf);
    if other.len() == true_elf.len() {
        let mut b = good.clone();
        b[..other.len()].copy_from_slice(&other);
        std::fs::write(&f, &b).unwrap();
        refused_as_changed(&f);
    }
    // A longer ELF, the note and payload kept.
    let p = good.len() - std::fs::read(&plain).unwrap().len();
    let mut b = [true_elf.clone(), vec![0u8; 8192]].concat();
    b.resize((b.len() + 544).next_multiple_of(4096) - 544, 0);
    b.extend_from_slice(&good[p - 544..]);
    std::fs::write(&f, &b).unwrap();
    refused_as_changed(&f);
    // The stub of this payload in front of another payload.
    let other_plain = d.join("other.capsa");
    let text = std::fs::read_to_string(&recipe).unwrap();
    std::fs::write(
        &recipe,
        text.replace("version = \"1.0\"", "version = \"2.0\""),
    )
    .unwrap();
    ok(&["pack", s(&recipe), "-o", s(&other_plain)]);
    let b = [&good[..p], &std::fs::read(&other_plain).unwrap()[..]].concat();
    std::fs::write(&f, &b).unwrap();
    let out = fails(&["verify", s(&f)]);
    assert!(out.contains("made for another payload"), "{out}");
    // `cat stub bundle`: the payload still opens, the stub is unrecorded and refused.
    let b = [&true_elf[..], &std::fs::read(&plain).unwrap()[..]].concat();
    std::fs::write(&f, &b).unwrap();
    let out = fails(&["verify", s(&f)]);
    assert!(
        out.contains("has no note") && out.contains("capsa strip-stub"),
        "{out}"
    );
    let i = inspect_json(&f);
    assert_eq!(i["stub"]["state"], "unrecorded", "{i}");
    let stripped = d.join("stripped.capsa");
    ok(&["strip-stub", s(&f), "-o", s(&stripped)]);
    assert!(std::fs::read(&stripped).unwrap() == std::fs::read(&plain).unwrap());
    // Every change left the payload valid: only the stub was refused.
    let j: serde_json::Value = serde_json::from_str(&ok(&["inspect", "--json", s(&f)])).unwrap();
    assert_eq!(j["manifest"]["id"], HELLO);
}
