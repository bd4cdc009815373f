//! End to end, whom `capsa run` trusts with what (issue 7 §1, §2):
//!
//! - The merge: a run's `--deny` of a kind takes away every grant of that kind, also a stored
//!   override's narrower one (`network=tcp:443`, `filesystem=home:ro`), seen from inside.
//! - Identity is (app id, publisher): a bundle file carrying an installed app's id, unsigned or
//!   signed by another key, gets state of its own and never sees or leaves files in the
//!   installed app's; an install from another publisher is refused and changes nothing; two
//!   unsigned bundles of one id share nothing; the user's stored overrides follow the identity
//!   to a bundle file of it.
//! - No silent grants: a bundle file asking beyond the safe default, with nobody to ask, runs
//!   with the safe default and says what it withheld and how to grant it; `--yes` grants and
//!   remembers; a bundle of the same identity asking for more is asked about again; the
//!   terminal prompt and the desktop dialog (zenity on Xvfb, answered with xdotool; a
//!   screenshot is kept in `target/capsa-consent-dialog.png`) show the grants and are obeyed.
//! - Names: an app id is never a file in the current directory; a missing bundle file is
//!   named as such.
//!
//! The bundles are `dash` with `ls`, `cat` and `readlink` (packed in a moment), so a test sees
//! from inside what it was given: the network namespace, the home, the root.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

const PY: &str = "org.python.Python3";
/// A file in the user's real home: visible inside only under a home grant.
const MARKER: &str = "real-home-marker";

// ---- Bundles and keys ----

/// A signing key made with `capsa keygen`, once per name per test process: its secret key
/// file and its public key's hex.
fn key(name: &str) -> (PathBuf, String) {
    static KEYS: Mutex<BTreeMap<String, (PathBuf, String)>> = Mutex::new(BTreeMap::new());
    let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    keys.entry(name.to_owned())
        .or_insert_with(|| {
            let dir = shared_tmp().join("keys");
            fs::create_dir_all(&dir).unwrap();
            let base = dir.join(name);
            ok(&["keygen", base.to_str().unwrap()]);
            let public = fs::read_to_string(base.with_extension("pub")).unwrap();
            let hex = public
                .split_whitespace()
                .last()
                .expect("a public key file ends with the key")
                .to_owned();
            assert_eq!(hex.len(), 64, "{public}");
            (base.with_extension("key"), hex)
        })
        .clone()
}

/// How `capsa` names a key's publisher: `key` and its first 16 hex digits.
fn publisher_of(key_hex: &str) -> String {
    let key = bundle_format::PublicKey::from_hex(key_hex).expect("a public key");
    format!("key {}", key.key_id())
}

/// Packs a bundle of `dash` (its command, so `-- -c SCRIPT` runs a script), `ls`, `cat` and
/// `readlink`, with `/etc/capsa-label` holding `name`, and `permissions` as its recipe's
/// `[permissions]` section; signed with the key `sign` names (see [`key`]) when given.
fn shell_bundle(
    name: &str,
    id: &str,
    version: &str,
    permissions: &str,
    sign: Option<&str>,
) -> PathBuf {
    let dir = shared_tmp().join("trust").join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("label.txt"), format!("{name}\n")).unwrap();
    let recipe = dir.join("capsa.toml");
    fs::write(
        &recipe,
        format!(
            r#"[app]
id = "{id}"
name = "Trust test"
version = "{version}"
command = ["/bin/sh"]

[capture]
binaries = ["/bin/sh", "/bin/ls", "/bin/cat", "/bin/readlink"]
files = {{ "/etc/capsa-label" = "label.txt" }}

[permissions]
{permissions}
"#
        ),
    )
    .unwrap();
    let out = shared_tmp().join("trust").join(format!("{name}.capsa"));
    let mut args = vec![
        "pack".to_owned(),
        recipe.display().to_string(),
        "-o".to_owned(),
        out.display().to_string(),
    ];
    if let Some(k) = sign {
        args.extend(["--sign".to_owned(), key(k).0.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args);
    out
}

// ---- A private user ----

/// A private user: home, XDG data, cache and config homes in a temporary directory, no
/// display and stdin from /dev/null, so nobody can be asked.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("capsa-trust-")
            .tempdir()
            .unwrap();
        for d in ["home", "data", "cache", "config", "cwd"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        fs::write(
            dir.path().join("home").join(MARKER),
            "the user's own file\n",
        )
        .unwrap();
        Self { dir }
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }
    /// An empty directory to run commands in.
    fn cwd(&self) -> PathBuf {
        self.dir.path().join("cwd")
    }
    /// `prog` as this user: its home and XDG directories, no display, in [`Env::cwd`].
    fn command(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(prog);
        c.env("HOME", self.home())
            .env("XDG_DATA_HOME", self.data())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("XDG_CONFIG_HOME", self.config())
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("SOURCE_DATE_EPOCH")
            .current_dir(self.cwd());
        c
    }
    /// `capsa ARGS` as this user, stdin from /dev/null.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.command(capsa_bin());
        c.args(args).stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run capsa")
    }
    /// Asserts success and returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "capsa {args:?} failed: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn install(&self, bundle: &Path) {
        self.ok(&["install", "--yes", bundle.to_str().unwrap()]);
    }
    /// The state directories of every identity of `id`.
    fn states(&self, id: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = fs::read_dir(self.data().join("capsa/state"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{id}@")))
            })
            .collect();
        dirs.sort();
        dirs
    }
    /// Every path below the data and config homes with its type, size, mode, mtime and link
    /// target: two equal snapshots mean nothing of the store or the apps' state was touched.
    fn snapshot(&self) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        let mut stack = vec![self.data(), self.config()];
        while let Some(p) = stack.pop() {
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            out.push(format!(
                "{} mode={:o} size={} mtime={}.{} -> {:?}",
                p.display(),
                m.mode(),
                if m.is_dir() { 0 } else { m.len() },
                m.mtime(),
                m.mtime_nsec(),
                fs::read_link(&p).ok()
            ));
            // Overlayfs's `work/work` is mode 000: listed, not entered (unless root).
            if let (true, Ok(rd)) = (m.is_dir(), fs::read_dir(&p)) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
        out.sort();
        out
    }
}

impl Drop for Env {
    /// Unpacked layers have read-only directories and overlayfs leaves a mode-000
    /// `work/work`: make every directory writable so the temporary directory can go.
    fn drop(&mut self) {
        make_dirs_writable(self.dir.path());
    }
}

// ---- What the app sees ----

/// What a shell bundle saw from inside its sandbox (see [`LOOK`]).
#[derive(Debug, Default)]
struct Seen {
    /// `readlink /proc/self/ns/net`.
    net: String,
    /// Interfaces in /proc/net/dev.
    ifaces: BTreeSet<String>,
    /// Names in `$HOME`.
    home: BTreeSet<String>,
    /// Names in `/usr/bin` (the root, backed by the app's writable layer).
    root: BTreeSet<String>,
    /// What the script printed after its sections.
    rest: String,
}

/// The shell script that prints what the app sees, in sections.
const LOOK: &str = "echo \"@net $(readlink /proc/self/ns/net)\"\n\
                    echo @ifaces; cat /proc/net/dev\n\
                    echo @home; ls -1a \"$HOME\"\n\
                    echo @root; ls -1a /usr/bin\n\
                    echo @rest\n";

fn seen(out: &str) -> Seen {
    let mut s = Seen::default();
    let mut section = "";
    for line in out.lines().map(|l| l.trim_end_matches('\r')) {
        // On a terminal the first line follows the prompt.
        if let Some(at) = line.find("@net ") {
            s.net = line[at + "@net ".len()..].trim().to_owned();
            continue;
        }
        if let Some(name) = line
            .strip_prefix('@')
            .filter(|n| ["ifaces", "home", "root", "rest"].contains(n))
        {
            section = name;
            continue;
        }
        let name = line.trim();
        match section {
            "ifaces" => {
                if let Some((iface, _)) = name.split_once(':') {
                    s.ifaces.insert(iface.trim().to_owned());
                }
            }
            "home" | "root" if !name.is_empty() && name != "." && name != ".." => {
                let set = if section == "home" {
                    &mut s.home
                } else {
                    &mut s.root
                };
                set.insert(name.to_owned());
            }
            "rest" => {
                s.rest.push_str(line);
                s.rest.push('\n');
            }
            _ => {}
        }
    }
    s
}

/// This process's network namespace.
fn host_net() -> String {
    fs::read_link("/proc/self/ns/net")
        .unwrap()
        .display()
        .to_string()
}

/// Runs `capsa run APP ARGS -- -c LOOK+then` as `env`; asserts that it ran (exit 0) and
/// returns what the app saw and capsa's stderr.
fn look(env: &Env, app: &str, args: &[&str], then: &str) -> (Seen, String) {
    let script = format!("{LOOK}{then}");
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend([app, "--", "-c", &script]);
    let o = env.run(&all);
    assert!(
        o.status.success(),
        "capsa {:?} failed: {}",
        &all[..all.len() - 1],
        text(&o)
    );
    let s = seen(&String::from_utf8_lossy(&o.stdout));
    assert!(!s.net.is_empty(), "the script did not run: {}", text(&o));
    (s, String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts the safe default: a network namespace of its own with only loopback, and a
/// private home (the real home's marker not visible).
fn assert_safe_default(s: &Seen, ctx: &str) {
    assert_ne!(
        s.net,
        host_net(),
        "{ctx}: the host's network namespace: {s:?}"
    );
    assert_eq!(
        s.ifaces,
        BTreeSet::from(["lo".to_owned()]),
        "{ctx}: interfaces other than loopback: {s:?}"
    );
    assert!(
        !s.home.contains(MARKER),
        "{ctx}: the real home is visible: {s:?}"
    );
}

/// Asserts the grants `network` and `filesystem=home`: the host's network namespace and the
/// real home.
fn assert_network_and_home(s: &Seen, ctx: &str) {
    assert_eq!(
        s.net,
        host_net(),
        "{ctx}: not the host's network namespace: {s:?}"
    );
    assert!(
        s.home.contains(MARKER),
        "{ctx}: the real home is not visible: {s:?}"
    );
}

/// Asserts that capsa's stderr says it ran without each of `withheld` and how to grant them.
fn assert_withheld(stderr: &str, withheld: &[&str], ctx: &str) {
    let line = stderr
        .lines()
        .find(|l| l.contains("warning") && l.contains("running without"))
        .unwrap_or_else(|| panic!("{ctx}: no warning of withheld grants: {stderr}"));
    for w in withheld {
        assert!(line.contains(w), "{ctx}: {w} not named: {line}");
    }
    assert!(
        line.contains("--yes") && line.contains("--allow"),
        "{ctx}: no way to grant them named: {line}"
    );
}

/// Asserts that capsa warned of nothing withheld.
fn assert_nothing_withheld(stderr: &str, ctx: &str) {
    assert!(
        !stderr.contains("running without"),
        "{ctx}: a grant was withheld: {stderr}"
    );
}

// ---- 1. The merge ----

/// Issue 7 §2: a run's `--deny KIND` takes away a stored override of that kind, also a
/// narrower one; before, capsa refused to start ("contradict each other").
#[test]
fn a_run_deny_takes_away_stored_grants_of_its_kind() {
    if !userns() {
        return;
    }
    let env = Env::new();
    env.install(python_bundle());
    env.ok(&["override", PY, "--allow", "network=tcp:443"]);
    env.ok(&["override", PY, "--allow", "filesystem=home:ro"]);
    let code = format!(
        "import os, socket\n\
         print('net', os.readlink('/proc/self/ns/net'))\n\
         print('ifaces', ' '.join(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:])))\n\
         print('home', os.path.exists(os.path.join(os.environ['HOME'], '{MARKER}')))\n\
         try:\n    open(os.path.join(os.environ['HOME'], 'new'), 'w'); print('write ok')\n\
         except OSError as e:\n    print('write errno', e.errno)\n\
         s = socket.socket()\n\
         s.settimeout(3)\n\
         try:\n    s.connect(('192.0.2.1', 443)); print('connect ok')\n\
         except OSError as e:\n    print('connect errno', e.errno)"
    );
    let run = |extra: &[&str]| -> BTreeMap<String, String> {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend([PY, "--", "-c", &code]);
        let o = env.run(&args);
        assert!(o.status.success(), "capsa {extra:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    // The stored overrides are in force: the host's network, the real home (read-only).
    let stored = run(&[]);
    assert_eq!(stored["net"], host_net(), "{stored:?}");
    assert_eq!(stored["home"], "True", "{stored:?}");
    // Read-only: the mount refuses (EROFS) or Landlock does (EACCES).
    assert!(
        ["errno 30", "errno 13"].contains(&stored["write"].as_str()),
        "{stored:?}"
    );

    let no_net = run(&["--deny", "network"]);
    assert_ne!(no_net["net"], host_net(), "--deny network: {no_net:?}");
    assert_eq!(no_net["ifaces"], "lo", "--deny network: {no_net:?}");
    // Landlock refuses the connect (EACCES) before the empty namespace can (ENETUNREACH).
    assert!(
        ["errno 101", "errno 13"].contains(&no_net["connect"].as_str()),
        "--deny network: {no_net:?}"
    );
    assert_eq!(no_net["home"], "True", "only the network kind is denied");

    let no_home = run(&["--deny", "filesystem=home"]);
    assert_eq!(
        no_home["home"], "False",
        "--deny filesystem=home: {no_home:?}"
    );
    assert_eq!(no_home["net"], host_net(), "only the home kind is denied");
    assert_eq!(
        no_home["write"], "ok",
        "the private home is writable: {no_home:?}"
    );

    let neither = run(&["--deny", "network", "--deny", "filesystem=home"]);
    assert_eq!(neither["home"], "False", "{neither:?}");
    assert_eq!(neither["ifaces"], "lo", "{neither:?}");
}

// ---- 2. Identity ----

/// Issue 7 §1: a bundle file with an installed app's id, unsigned or signed by another key,
/// neither sees the installed app's files (private home, writable root) nor leaves files the
/// installed app then sees.
#[test]
fn a_bundle_with_an_installed_apps_id_never_reaches_its_state() {
    if !userns() {
        return;
    }
    let id = "org.capsa.TrustIdentity";
    let env = Env::new();
    let installed = shell_bundle("identity-a", id, "1.0", "", Some("identity-a"));
    let unsigned = shell_bundle("identity-u", id, "1.0", "", None);
    let other = shell_bundle("identity-b", id, "1.0", "", Some("identity-b"));
    env.install(&installed);
    let write = |who: &str| {
        format!(
            "echo {who} > \"$HOME/from-{who}\"; echo {who} > /usr/bin/from-{who}; echo written\n"
        )
    };
    let (s, _) = look(&env, id, &[], &write("a"));
    assert_eq!(s.rest, "written\n", "{s:?}");
    let (s, _) = look(&env, id, &[], "");
    assert!(
        s.home.contains("from-a") && s.root.contains("from-a"),
        "the installed app keeps no state: {s:?}"
    );

    for (who, bundle) in [("u", &unsigned), ("b", &other)] {
        let read = format!(
            "cat \"$HOME/from-a\" /usr/bin/from-a 2>/dev/null; {}",
            write(who)
        );
        let (s, _) = look(&env, bundle.to_str().unwrap(), &[], &read);
        let ctx = format!("the bundle {}", bundle.display());
        assert!(!s.home.contains("from-a"), "{ctx} sees the home: {s:?}");
        assert!(!s.root.contains("from-a"), "{ctx} sees the root: {s:?}");
        assert_eq!(s.rest, "written\n", "{ctx} read the installed app's files");
        assert!(s.root.contains("sh"), "{ctx}: {s:?}");
    }

    let (s, _) = look(&env, id, &[], "");
    for who in ["u", "b"] {
        let name = format!("from-{who}");
        assert!(
            !s.home.contains(&name),
            "the installed app sees {name}: {s:?}"
        );
        assert!(
            !s.root.contains(&name),
            "the installed app sees {name}: {s:?}"
        );
    }
    assert!(
        s.home.contains("from-a") && s.root.contains("from-a"),
        "the installed app lost its own files: {s:?}"
    );
    // On the host: one state directory per identity, each with only its own files.
    let states = env.states(id);
    assert_eq!(states.len(), 3, "one state per identity: {states:?}");
    for who in ["a", "u", "b"] {
        let name = format!("from-{who}");
        let holders: Vec<&PathBuf> = states
            .iter()
            .filter(|d| {
                d.join("home").join(&name).is_file()
                    || d.join("upper/usr/bin").join(&name).is_file()
            })
            .collect();
        assert_eq!(holders.len(), 1, "{name} in {holders:?}");
        assert!(holders[0].join("home").join(&name).is_file(), "{holders:?}");
        assert!(
            holders[0].join("upper/usr/bin").join(&name).is_file(),
            "{holders:?}"
        );
    }
}

/// Issue 7 §1: `capsa install` of a bundle from another publisher over an installed app is
/// refused, naming both publishers, and leaves the store as it was.
#[test]
fn an_install_from_another_publisher_is_refused_and_changes_nothing() {
    if !userns() {
        return;
    }
    let id = "org.capsa.TrustPublisher";
    let env = Env::new();
    let installed = shell_bundle("publisher-a", id, "1.0", "", Some("publisher-a"));
    // A newer version, so that the store would take it as an update.
    let other = shell_bundle("publisher-b", id, "2.0", "", Some("publisher-b"));
    let unsigned = shell_bundle("publisher-u", id, "2.0", "", None);
    env.install(&installed);
    let (_, a_hex) = key("publisher-a");
    let (_, b_hex) = key("publisher-b");
    let (s, _) = look(&env, id, &[], "echo a > \"$HOME/kept\"");
    assert!(!s.net.is_empty());
    let before = env.snapshot();
    for (bundle, new) in [
        (&other, publisher_of(&b_hex)),
        (&unsigned, "unsigned".to_owned()),
    ] {
        let o = env.run(&["install", "--yes", bundle.to_str().unwrap()]);
        let out = text(&o);
        assert_eq!(
            o.status.code(),
            Some(1),
            "installed over another publisher: {out}"
        );
        assert!(
            out.contains(&publisher_of(&a_hex)) && out.contains(&new),
            "the refusal names neither publisher: {out}"
        );
        assert_eq!(
            env.snapshot(),
            before,
            "the refused install changed the store"
        );
    }
    let list = env.ok(&["list"]);
    assert!(
        list.contains(id) && list.contains("1.0") && list.contains(&publisher_of(&a_hex)),
        "{list}"
    );
}

/// Issue 7 §1: two unsigned bundle files of one id (different manifests) are two identities.
#[test]
fn two_unsigned_bundles_of_one_id_share_no_state() {
    if !userns() {
        return;
    }
    let id = "org.capsa.TrustUnsigned";
    let env = Env::new();
    let one = shell_bundle("unsigned-1", id, "1.0", "", None);
    let two = shell_bundle("unsigned-2", id, "1.1", "", None);
    let (s, _) = look(
        &env,
        one.to_str().unwrap(),
        &[],
        "echo 1 > \"$HOME/from-one\"; echo 1 > /usr/bin/from-one",
    );
    assert!(!s.net.is_empty());
    let (s, _) = look(
        &env,
        two.to_str().unwrap(),
        &[],
        "cat \"$HOME/from-one\" /usr/bin/from-one 2>/dev/null; echo done",
    );
    assert!(
        !s.home.contains("from-one") && !s.root.contains("from-one"),
        "the second unsigned bundle sees the first one's files: {s:?}"
    );
    assert_eq!(s.rest, "done\n", "it read them");
    assert_eq!(env.states(id).len(), 2, "{:?}", env.states(id));
    // The same bundle again finds its own files.
    let (s, _) = look(&env, one.to_str().unwrap(), &[], "");
    assert!(
        s.home.contains("from-one") && s.root.contains("from-one"),
        "{s:?}"
    );
}

/// Overrides belong to an identity (issue 7 §1), and the merge is manifest, consent,
/// overrides, run (§2): a bundle file of an installed app's identity (the same publisher's
/// key) gets the user's stored denies too, even with `--yes`. Before the fix, a bundle file
/// skipped the overrides, so a double-clicked update of an app the user had cut off the
/// network got it back, with the installed app's private home.
#[test]
fn stored_overrides_follow_the_identity_to_a_bundle_file() {
    if !userns() {
        return;
    }
    let id = "org.capsa.TrustOverrides";
    let perms = "network = true\nfilesystem = [\"home\"]";
    let env = Env::new();
    let installed = shell_bundle("overrides-1", id, "1.0", perms, Some("overrides"));
    let update = shell_bundle("overrides-2", id, "1.1", perms, Some("overrides"));
    env.install(&installed);
    let (s, _) = look(&env, id, &[], "");
    assert_network_and_home(&s, "installed, consented at install");
    env.ok(&[
        "override",
        id,
        "--deny",
        "network",
        "--deny",
        "filesystem=home",
    ]);
    let (s, _) = look(&env, id, &[], "");
    assert_safe_default(&s, "installed, overrides deny");
    let (s, err) = look(&env, update.to_str().unwrap(), &["--yes"], "");
    assert_safe_default(&s, "a bundle file of the same identity, --yes");
    assert_nothing_withheld(&err, "the overrides deny, consent withholds nothing");
    // Nobody to ask: what the overrides deny is not asked about, nor said to be withheld.
    let fresh = shell_bundle("overrides-3", id, "1.2", perms, Some("overrides"));
    let (s, err) = look(&env, fresh.to_str().unwrap(), &[], "");
    assert_safe_default(&s, "a bundle file of the same identity, no terminal");
    assert_nothing_withheld(&err, "what the overrides deny");
    // The run's own level still comes last.
    let (s, _) = look(&env, update.to_str().unwrap(), &["--allow", "network"], "");
    assert_eq!(s.net, host_net(), "--allow after the overrides: {s:?}");
    assert!(!s.home.contains(MARKER), "{s:?}");
}

// ---- 3. No silent grants ----

const NET_AND_HOME: &str = "network = true\nfilesystem = [\"home\"]";

/// Issue 7 §1: with no terminal and no display, a bundle file asking for the network and the
/// home runs with the safe default and says so; `--yes` grants and remembers; a bundle of the
/// same (signed) identity asking for more gets what was agreed, and the rest is withheld.
#[test]
fn a_bundle_file_gets_no_grant_without_consent() {
    if !userns() {
        return;
    }
    let id = "org.capsa.TrustConsent";
    let env = Env::new();
    let b = shell_bundle("consent-1", id, "1.0", NET_AND_HOME, Some("consent"));
    let b = b.to_str().unwrap();
    let (s, err) = look(&env, b, &[], "");
    assert_safe_default(&s, "no terminal, no display");
    assert_withheld(&err, &["network", "filesystem=home"], "no terminal");
    // Nothing was agreed: the next run is the same.
    let (s, err) = look(&env, b, &[], "");
    assert_safe_default(&s, "again");
    assert_withheld(&err, &["network", "filesystem=home"], "again");

    let (s, err) = look(&env, b, &["--yes"], "");
    assert_network_and_home(&s, "--yes");
    assert_nothing_withheld(&err, "--yes");
    let (s, err) = look(&env, b, &[], "");
    assert_network_and_home(&s, "remembered after --yes");
    assert_nothing_withheld(&err, "remembered after --yes");

    // A new version of the same publisher's app that asks for more.
    let more = format!("{NET_AND_HOME}\nsockets = [\"x11\"]\ndevices = [\"dri\"]");
    let b2 = shell_bundle("consent-2", id, "2.0", &more, Some("consent"));
    let (s, err) = look(&env, b2.to_str().unwrap(), &[], "");
    assert_network_and_home(&s, "what was agreed stays agreed");
    assert_withheld(&err, &["socket=x11", "device=dri"], "asks for more");
    assert!(
        !err.contains("running without network") && !err.contains(", network"),
        "{err}"
    );
    // `--allow` grants one for this run only.
    let (_, err) = look(&env, b2.to_str().unwrap(), &["--allow", "device=dri"], "");
    assert_withheld(&err, &["socket=x11"], "--allow device=dri");
    // (A host without /dev/dri gets a warning naming it, but it is not withheld.)
    assert!(
        !err.lines()
            .any(|l| l.contains("running without") && l.contains("device=dri")),
        "{err}"
    );
    let (_, err) = look(&env, b2.to_str().unwrap(), &[], "");
    assert_withheld(
        &err,
        &["socket=x11", "device=dri"],
        "--allow is not remembered",
    );
}

/// `s` quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `capsa ARGS` on a pseudo-terminal (`script`), typing `input`; returns what the
/// terminal showed (stdout and stderr of capsa and the app, and the echoed input).
fn on_terminal(env: &Env, args: &[&str], input: &str) -> (Option<i32>, String) {
    let line: Vec<String> = std::iter::once(capsa_bin().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| sh_quote(&a))
        .collect();
    let o = common::on_terminal(env.command("script"), &line.join(" "), input);
    (o.status.code(), text(&o).replace('\r', ""))
}

/// Issue 7 §1: on a terminal, capsa shows the grants a bundle file asks for and asks
/// `Allow? [y/N]`; yes grants and remembers, no (or anything else) runs with the safe
/// default, and a terminal asks again next time.
#[test]
fn the_terminal_prompt_shows_the_grants_and_is_obeyed() {
    if !userns() {
        return;
    }
    if !have("script") {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_SANDBOX").is_none(),
            "script (bsdutils) is required (CAPSA_REQUIRE_SANDBOX) but missing"
        );
        eprintln!("skipped: script (bsdutils) is not installed");
        return;
    }
    let id = "org.capsa.TrustPrompt";
    let env = Env::new();
    let b = shell_bundle("prompt", id, "1.0", NET_AND_HOME, Some("prompt"));
    let (_, key_hex) = key("prompt");
    let b = b.to_str().unwrap();
    let args = ["run", b, "--", "-c", LOOK];
    let check_prompt = |out: &str| {
        let asks = out
            .find("asks for:")
            .unwrap_or_else(|| panic!("no prompt: {out}"));
        let prompt = out[asks..]
            .find("Allow? [y/N]")
            .unwrap_or_else(|| panic!("no question: {out}"));
        let listed = &out[asks..asks + prompt];
        assert!(
            listed.contains("    network\n") && listed.contains("    filesystem=home\n"),
            "the grants are not listed: {out}"
        );
        let head = &out[..asks];
        assert!(
            head.contains(id) && head.contains(&publisher_of(&key_hex)),
            "the prompt does not say who asks: {out}"
        );
    };

    for answer in ["n\n", "\n", "yes please\n"] {
        let (code, out) = on_terminal(&env, &args, answer);
        assert_eq!(code, Some(0), "{out}");
        check_prompt(&out);
        assert_safe_default(&seen(&out), &format!("answered {answer:?}"));
        assert_withheld(&out, &["network", "filesystem=home"], "declined");
    }
    let (s, err) = look(&env, b, &[], "");
    assert_safe_default(&s, "no terminal after a decline");
    assert_withheld(&err, &["network"], "no terminal after a decline");

    let (code, out) = on_terminal(&env, &args, "y\n");
    assert_eq!(code, Some(0), "{out}");
    check_prompt(&out);
    assert_network_and_home(&seen(&out), "answered y");
    assert_nothing_withheld(&out, "answered y");
    // Remembered: no question on a terminal, nothing withheld without one.
    let (_, out) = on_terminal(&env, &args, "");
    assert!(!out.contains("Allow?"), "asked again: {out}");
    assert_network_and_home(&seen(&out), "remembered, on a terminal");
    let (s, err) = look(&env, b, &[], "");
    assert_network_and_home(&s, "remembered, no terminal");
    assert_nothing_withheld(&err, "remembered, no terminal");
}

// ---- 3. The desktop dialog ----

/// A private X server (Xvfb), killed on drop.
struct Xvfb {
    display: String,
    child: Child,
}

impl Xvfb {
    fn start(log: &Path) -> Self {
        let (child, display) = start_xvfb(log);
        Self { display, child }
    }
    fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new(prog);
        c.args(args)
            .env("DISPLAY", &self.display)
            .stdin(Stdio::null());
        c
    }
    /// Runs an X tool; asserts success and returns its trimmed stdout.
    fn out(&self, prog: &str, args: &[&str]) -> String {
        let o = self.cmd(prog, args).output().expect(prog);
        assert!(o.status.success(), "{prog} {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }
    /// The windows titled like capsa's consent dialog.
    fn dialogs(&self) -> Vec<String> {
        let o = self
            .cmd(
                "xdotool",
                &["search", "--onlyvisible", "--name", "^Capsa: "],
            )
            .output()
            .expect("xdotool");
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM first, so that Xvfb removes its socket and lock file.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `capsa run` in the background, with its output in files; killed on drop.
struct Background {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    fn spawn(env: &Env, x: &Xvfb, bundle: &str, name: &str) -> Self {
        let out = env.dir.path().join(format!("{name}.out"));
        let err = env.dir.path().join(format!("{name}.err"));
        let child = env
            .cmd(&["run", bundle, "--", "-c", LOOK])
            .env("DISPLAY", &x.display)
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("run capsa");
        Self { child, out, err }
    }
    fn output(&self) -> String {
        format!(
            "{}{}",
            fs::read_to_string(&self.out).unwrap_or_default(),
            fs::read_to_string(&self.err).unwrap_or_default()
        )
    }
    /// Polls until the dialog shows (its window id) or capsa has exited (`None`).
    fn dialog(&mut self, x: &Xvfb) -> Option<String> {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(w) = x.dialogs().into_iter().next() {
                return Some(w);
            }
            if self.child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(
                Instant::now() < end,
                "neither a dialog nor an exit in 60s: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    /// Waits (at most 60 s) for capsa to exit 0; returns what the app saw and capsa's stderr.
    fn finish(&mut self) -> (Seen, String) {
        let end = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < end,
                "capsa did not exit: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "capsa failed: {}", self.output());
        let s = seen(&fs::read_to_string(&self.out).unwrap());
        assert!(!s.net.is_empty(), "the app did not run: {}", self.output());
        (s, fs::read_to_string(&self.err).unwrap())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `--text=` of the zenity dialog asking about `Trust test` (its argument: GTK shows it
/// as given, `--no-markup`).
fn dialog_text() -> String {
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv[0].ends_with("zenity") && argv.iter().any(|a| a == "--title=Capsa: Trust test") {
            if let Some(t) = argv.iter().find_map(|a| a.strip_prefix("--text=")) {
                return t.to_owned();
            }
        }
    }
    panic!("no zenity process asks about Trust test");
}

/// Whether Xvfb, zenity, xdotool and ImageMagick's `import` are here; fails when CI requires
/// them (CAPSA_REQUIRE_GUI).
fn dialog_tools() -> bool {
    let missing: Vec<&str> = ["Xvfb", "zenity", "xdotool", "import"]
        .into_iter()
        .filter(|p| !have(p))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CAPSA_REQUIRE_GUI").is_none(),
        "the dialog test is required (CAPSA_REQUIRE_GUI) but {missing:?} are missing \
         (xvfb, zenity, xdotool, imagemagick)"
    );
    eprintln!("skipped: {} not installed", missing.join(", "));
    false
}

/// Issue 7 §1: with a display and no terminal (a bundle double-clicked in a file manager),
/// capsa asks with a desktop dialog naming the grants; Allow grants and remembers, Escape
/// runs with the safe default and the decline is remembered for that bundle.
#[test]
fn the_desktop_dialog_asks_when_there_is_no_terminal() {
    if !userns() || !dialog_tools() {
        return;
    }
    let env = Env::new();
    let x = Xvfb::start(&env.dir.path().join("xvfb.log"));
    let allowed = shell_bundle(
        "dialog-allow",
        "org.capsa.TrustDialog",
        "1.0",
        NET_AND_HOME,
        Some("dialog"),
    );
    let allowed = allowed.to_str().unwrap();

    let mut run = Background::spawn(&env, &x, allowed, "allow");
    let w = run
        .dialog(&x)
        .unwrap_or_else(|| panic!("capsa ran without asking: {}", run.output()));
    assert_eq!(
        x.out("xdotool", &["getwindowname", &w]),
        "Capsa: Trust test"
    );
    let text = dialog_text();
    assert!(
        text.contains("org.capsa.TrustDialog")
            && text.contains("\u{2022} filesystem=home\n\u{2022} network"),
        "the dialog does not show the grants, riskiest first: {text:?}"
    );
    // No window manager: focus the dialog, then Tab from its default (deny) button to Allow.
    x.out("xdotool", &["windowfocus", "--sync", &w]);
    x.out("xdotool", &["key", "Tab"]);
    std::thread::sleep(Duration::from_millis(300));
    let shot = env.dir.path().join("dialog.png");
    x.out("import", &["-window", "root", shot.to_str().unwrap()]);
    let kept = src().join("target/capsa-consent-dialog.png");
    fs::create_dir_all(kept.parent().unwrap()).unwrap();
    fs::copy(&shot, &kept).unwrap();
    println!("screenshot: {}", kept.display());
    x.out("xdotool", &["key", "Return"]);
    let (s, err) = run.finish();
    assert_network_and_home(&s, "Allow in the dialog");
    assert_nothing_withheld(&err, "Allow in the dialog");

    // Remembered: the next double-click runs at once, with the grants.
    let mut again = Background::spawn(&env, &x, allowed, "again");
    if let Some(w) = again.dialog(&x) {
        let _ = x.cmd("xdotool", &["windowclose", &w]).status();
        panic!("asked again after Allow: {}", again.output());
    }
    let (s, err) = again.finish();
    assert_network_and_home(&s, "remembered after Allow");
    assert_nothing_withheld(&err, "remembered after Allow");

    let denied = shell_bundle(
        "dialog-deny",
        "org.capsa.TrustDialogDeny",
        "1.0",
        NET_AND_HOME,
        None,
    );
    let denied = denied.to_str().unwrap();
    let mut run = Background::spawn(&env, &x, denied, "deny");
    let w = run
        .dialog(&x)
        .unwrap_or_else(|| panic!("capsa ran without asking: {}", run.output()));
    x.out("xdotool", &["windowfocus", "--sync", &w]);
    x.out("xdotool", &["key", "Escape"]);
    let (s, err) = run.finish();
    assert_safe_default(&s, "Escape in the dialog");
    assert_withheld(
        &err,
        &["network", "filesystem=home"],
        "Escape in the dialog",
    );
    // The decline is remembered for this bundle: no dialog again, still the safe default.
    let mut again = Background::spawn(&env, &x, denied, "deny-again");
    if let Some(w) = again.dialog(&x) {
        let _ = x.cmd("xdotool", &["windowclose", &w]).status();
        panic!("asked again after a decline: {}", again.output());
    }
    let (s, err) = again.finish();
    assert_safe_default(&s, "remembered decline");
    assert_withheld(&err, &["network"], "remembered decline");
}

// ---- 4. Names ----

/// Issue 7 §1: `capsa run NAME` with a name that is neither a path nor `*.capsa` is an
/// installed app, never a file of that name in the current directory.
#[test]
fn an_app_id_is_never_a_file_in_the_current_directory() {
    if !userns() {
        return;
    }
    let id = "org.capsa.TrustName";
    let env = Env::new();
    let installed = shell_bundle("name-installed", id, "1.0", "", None);
    let planted = shell_bundle("name-planted", "org.capsa.TrustPlanted", "1.0", "", None);
    env.install(&installed);
    fs::copy(&planted, env.cwd().join(id)).unwrap();
    let label = env.ok(&["run", id, "--", "-c", "cat /etc/capsa-label"]);
    assert_eq!(
        label.trim(),
        "name-installed",
        "ran the file in the current directory"
    );

    // A file named like an app id that is not installed is not run either.
    let absent = "org.capsa.TrustAbsent";
    fs::copy(&planted, env.cwd().join(absent)).unwrap();
    let o = env.run(&["run", absent, "--", "-c", "cat /etc/capsa-label"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(
        !text(&o).contains("name-planted"),
        "ran the file: {}",
        text(&o)
    );
    assert!(text(&o).contains(absent), "{}", text(&o));
}

/// A missing bundle file is reported as that, whatever the command and however it is named.
#[test]
fn a_missing_bundle_file_is_named() {
    let env = Env::new();
    for name in ["missing.capsa", "./missing.capsa", "sub/missing"] {
        let o = env.run(&["run", name]);
        assert_eq!(o.status.code(), Some(125), "run {name}: {}", text(&o));
        let out = text(&o);
        assert!(
            out.contains(&format!("no such file: {name}")),
            "run {name}: {out}"
        );
        assert!(!out.contains("not an app id"), "run {name}: {out}");
    }
    let o = env.run(&["install", "missing.capsa"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("no such file: missing.capsa"), "{out}");
    assert!(!out.contains("not a terminal"), "{out}");
}
