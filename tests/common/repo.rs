//! Helpers for the repository tests (`repo_e2e`, `repo_attacks`): a publisher's work directory
//! with its keys and repository ([`Repo`]), the python3 sample with marker files, hello
//! releases that differ in one small file, and re-signing a repository's `index.json` or
//! rewriting an app document the way an attacker holding (or not holding) the key would.
//!
//! Directories the sandboxed app must see at their own paths are never below `/tmp` (the
//! sandbox has its own `/tmp`): `Repo::new` works below `/var/tmp`.

use std::path::{Path, PathBuf};

use bundle_format::{BlobRef, Digest, SecretKey};
use repository::layout;
use repository::meta::{self, AppDoc, Index};

use super::*;

pub const PY: &str = "org.python.Python3";
pub const HELLO: &str = "org.capsa.Hello";
/// Where the hello releases of [`Repo::hello`] keep their marker file, inside the bundle.
pub const HELLO_MARKER: &str = "/usr/share/capsa-hello/marker.txt";
pub const MARKERS: usize = 14;

/// A publisher's work directory: `repo.key` signs the repository (in `www/`), `publisher.key`
/// the bundles.
pub struct Repo {
    work: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Repo {
    /// In a new directory below `/var/tmp`, removed when dropped.
    pub fn new() -> Self {
        // Not below /tmp: the sandbox has its own /tmp, and the marker files must be seen
        // at their original paths inside it.
        let tmp = tempfile::Builder::new()
            .prefix("capsa-repo-e2e-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let work = tmp.path().to_path_buf();
        Self::init(work, Some(tmp))
    }

    /// In `work` (created), which the caller removes.
    pub fn in_dir(work: &Path) -> Self {
        std::fs::create_dir_all(work).unwrap();
        Self::init(work.to_path_buf(), None)
    }

    fn init(work: PathBuf, tmp: Option<tempfile::TempDir>) -> Self {
        let r = Self { work, _tmp: tmp };
        for k in ["repo", "publisher"] {
            ok(&["keygen", r.path(k).to_str().unwrap()]);
        }
        ok(&[
            "repo",
            "init",
            r.dir().to_str().unwrap(),
            "--key",
            r.path("repo.key").to_str().unwrap(),
        ]);
        r
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    pub fn dir(&self) -> PathBuf {
        self.path("www")
    }

    pub fn add(&self, bundle: &Path, extra: &[&str]) {
        let dir = self.dir();
        let mut args = vec![
            "repo",
            "add",
            dir.to_str().unwrap(),
            bundle.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ok(&args);
    }

    pub fn pubkey(&self) -> String {
        self.path("repo.pub").to_string_lossy().into_owned()
    }

    /// The python3 sample at `version`, with the marker files: `changed` of them edited.
    pub fn python(&self, version: &str, changed: usize) -> PathBuf {
        let lib = self.path("markers");
        if !lib.exists() {
            std::fs::create_dir_all(&lib).unwrap();
        }
        for (i, src) in marker_sources().iter().enumerate() {
            let mut text = std::fs::read(src).unwrap();
            if i < changed {
                text.extend_from_slice(format!("\n# edited for {version}\n").as_bytes());
            }
            std::fs::write(lib.join(format!("m{i:02}.py")), text).unwrap();
        }
        let recipe = std::fs::read_to_string(src().join("samples/python3/capsa.toml"))
            .unwrap()
            .replace("version = \"3.11\"", &format!("version = \"{version}\""))
            .replace(
                "paths = [\"/usr/bin/python3\", \"/usr/lib/python3.11\"]",
                &format!(
                    "paths = [\"/usr/bin/python3\", \"/usr/lib/python3.11\", \"{}\"]",
                    lib.display()
                ),
            );
        let r = self.path(&format!("python-{version}.toml"));
        std::fs::write(&r, recipe).unwrap();
        let out = self.path(&format!("python-{version}.capsa"));
        ok(&[
            "pack",
            r.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--sign",
            self.path("publisher.key").to_str().unwrap(),
        ]);
        out
    }

    /// The hello sample as app `id` at `version`, with [`HELLO_MARKER`] holding
    /// [`hello_marker`]`(id, version)`, signed by the secret key `signer` (a file in the work
    /// directory, e.g. `publisher.key`).
    pub fn hello(&self, id: &str, version: &str, signer: &str) -> PathBuf {
        let name = format!("{id}-{version}-{signer}");
        let dir = self.path(&format!("src-{name}"));
        let recipe = build_hello(&dir);
        std::fs::write(dir.join("marker.txt"), hello_marker(id, version)).unwrap();
        let text = std::fs::read_to_string(&recipe)
            .unwrap()
            .replace("id = \"org.capsa.Hello\"", &format!("id = \"{id}\""))
            .replace("version = \"1.0\"", &format!("version = \"{version}\""))
            .replace(
                "files = { \"/usr/local/bin/capsa-hello\" = \"build/capsa-hello\" }",
                &format!(
                    "files = {{ \"/usr/local/bin/capsa-hello\" = \"build/capsa-hello\", \"{HELLO_MARKER}\" = \"marker.txt\" }}"
                ),
            );
        std::fs::write(&recipe, text).unwrap();
        let out = self.path(&format!("{name}.capsa"));
        ok(&[
            "pack",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--sign",
            self.path(signer).to_str().unwrap(),
        ]);
        out
    }
}

/// The content of [`HELLO_MARKER`] in [`Repo::hello`]'s release `version` of `id`: one line
/// naming both, then filler, so that its object is more than a few bytes.
pub fn hello_marker(id: &str, version: &str) -> String {
    let mut s = format!("{id} {version}\n");
    for i in 0..40 {
        s.push_str(&format!("line {i} of the marker of {id} {version}\n"));
    }
    s
}

/// The first line of [`HELLO_MARKER`] as the installed app `id` sees it, from `capsa run`.
pub fn hello_seen(env: &StoreEnv, id: &str) -> String {
    let out = env.ok(&["run", id, "--", HELLO_MARKER]);
    let (_, after) = out
        .split_once(&format!("from {HELLO_MARKER}: "))
        .unwrap_or_else(|| panic!("capsa-hello did not read its marker: {out}"));
    after.lines().next().unwrap_or("").to_owned()
}

/// 14 stdlib modules of some size, always the same ones.
pub fn marker_sources() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/python3.11")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .filter(|p| p.metadata().is_ok_and(|m| m.len() > 20_000))
        .collect();
    v.sort();
    assert!(v.len() >= MARKERS, "{v:?}");
    v.truncate(MARKERS);
    v
}

/// The hello sample, signed by the publisher key.
pub fn signed_hello(r: &Repo) -> PathBuf {
    let recipe = build_hello(&r.path("hello-src"));
    let out = r.path("hello.capsa");
    ok(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--sign",
        r.path("publisher.key").to_str().unwrap(),
    ]);
    out
}

/// The last line of python marker file `i` as the installed python3 sample sees it.
pub fn marker(env: &StoreEnv, r: &Repo, i: usize) -> String {
    let path = r.path("markers").join(format!("m{i:02}.py"));
    let code = format!("print(open('{}').read().splitlines()[-1])", path.display());
    env.ok(&["run", PY, "--", "-c", &code]).trim().to_owned()
}

/// The last line of the original of python marker file `i`.
pub fn marker_last_line(i: usize) -> String {
    let text = std::fs::read_to_string(&marker_sources()[i]).unwrap();
    text.lines().last().unwrap().trim().to_owned()
}

/// The version of `id` the store has current (`capsa info --json`).
pub fn store_version(env: &StoreEnv, id: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["info", "--json", id])).unwrap();
    v["version"].as_str().unwrap().to_owned()
}

/// Copies the tree `from` into `to` (created), files replaced, `index.json` last (as a
/// publisher writes it), each file through a temporary name and a rename.
pub fn copy_tree(from: &Path, to: &Path) {
    let mut index = None;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        std::fs::create_dir_all(to.join(&rel)).unwrap();
        for e in std::fs::read_dir(from.join(&rel)).unwrap().flatten() {
            let r = rel.join(e.file_name());
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(r);
            } else if r == Path::new(layout::INDEX) {
                index = Some(r);
            } else if t.is_file() {
                copy_file(&from.join(&r), &to.join(&r));
            }
        }
    }
    if let Some(r) = index {
        copy_file(&from.join(&r), &to.join(&r));
    }
}

fn copy_file(from: &Path, to: &Path) {
    write_file(to, &std::fs::read(from).unwrap());
}

/// Writes `bytes` to `path` through a temporary name and a rename (a web server serving it
/// meanwhile sends the old file or the new one).
pub fn write_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".tmp-{}",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The signed index of the repository `dir` (the signatures are not checked).
pub fn read_index(dir: &Path) -> Index {
    let bytes = std::fs::read(dir.join(layout::INDEX)).unwrap();
    let opened: meta::Opened<Index> = meta::open(&bytes, meta::MAX_INDEX).unwrap();
    opened.env.signed
}

/// Writes `index` as `dir`'s `index.json`, signed by the secret key file `key`.
pub fn write_index(dir: &Path, index: &Index, key: &Path) {
    let key = SecretKey::load(key).unwrap();
    let sealed = meta::seal(index, meta::INDEX_CONTEXT, &[&key]).unwrap();
    write_file(&dir.join(layout::INDEX), &sealed);
}

/// Re-signs `dir`'s index with `edit` applied and its version raised by one, by `key`.
pub fn resign_index(dir: &Path, key: &Path, edit: impl FnOnce(&mut Index)) -> Index {
    let mut ix = read_index(dir);
    ix.version += 1;
    edit(&mut ix);
    write_index(dir, &ix, key);
    ix
}

/// The app document of `app` that `dir`'s index names.
pub fn read_app_doc(dir: &Path, app: &str) -> AppDoc {
    let r = &read_index(dir).apps[app];
    let bytes = std::fs::read(dir.join(layout::blob(&r.digest))).unwrap();
    meta::open_app_doc(&bytes).unwrap()
}

/// Stores `doc` as a blob of `dir` and returns its reference (what an index entry holds).
pub fn write_app_doc(dir: &Path, doc: &AppDoc) -> BlobRef {
    let bytes = meta::app_doc_bytes(doc).unwrap();
    let digest = Digest::of(&bytes);
    write_file(&dir.join(layout::blob(&digest)), &bytes);
    BlobRef {
        digest,
        size: bytes.len() as u64,
    }
}
