//! A library the host's loader cache finds outside the default directories (as for
//! `/usr/local/lib`) must still load inside the bundle root, which has no host cache: the packer
//! generates `/etc/ld.so.cache` for it. Proven with the real loader in a new root; removing the
//! generated cache makes the same program fail.

use std::path::Path;
use std::process::Command;

use bundle_format::{Bundle, Compression};
use packer::ldcache::LdCache;
use packer::{NoProgress, PackOptions, Recipe};

fn cc(dir: &Path, args: &[&str]) {
    let st = Command::new("cc")
        .current_dir(dir)
        .args(args)
        .status()
        .expect("run cc");
    assert!(st.success(), "cc {args:?}");
}

#[test]
fn libraries_found_through_the_cache_load_in_the_bundle() {
    // Not below /tmp: the sandbox provides /tmp, so nothing there is captured.
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let dir = t.path();
    let libdir = dir.join("opt/answer/lib");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::write(dir.join("lib.c"), "int capsa_answer(void) { return 42; }\n").unwrap();
    std::fs::write(
        dir.join("main.c"),
        "int capsa_answer(void);\nint main(void) { return capsa_answer() == 42 ? 0 : 1; }\n",
    )
    .unwrap();
    let lib = libdir.join("libcapsaanswer.so.1");
    cc(
        dir,
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libcapsaanswer.so.1",
            "-o",
            lib.to_str().unwrap(),
            "lib.c",
        ],
    );
    cc(dir, &["-o", "main", "main.c", lib.to_str().unwrap()]);

    // A loader cache that knows the library, as ldconfig would after adding its directory.
    let host = LdCache::load(Path::new("/etc/ld.so.cache")).unwrap();
    let flags = host
        .lookup("libc.so.6")
        .first()
        .map_or(0x0303, |e| e.arch_flags | 3);
    let cache = dir.join("ld.so.cache");
    std::fs::write(
        &cache,
        packer::ldcache::write(&[("libcapsaanswer.so.1".into(), lib.clone())], flags),
    )
    .unwrap();

    std::fs::write(
        dir.join("capsa.toml"),
        "[app]\nid = \"org.capsa.Answer\"\nname = \"a\"\nversion = \"1\"\ncommand = [\"/usr/bin/answer\"]\n[capture]\nfiles = { \"/usr/bin/answer\" = \"main\" }\n",
    )
    .unwrap();
    let recipe = Recipe::load(&dir.join("capsa.toml")).unwrap();
    let out = dir.join("answer.capsa");
    let opts = PackOptions {
        output: Some(out.clone()),
        compression: Compression {
            level: 3,
            threads: 1,
        },
        sign: Vec::new(),
        allow_missing: false,
        source_date_epoch: None,
        generator: "test".into(),
        ld_cache: Some(cache),
        trace_helper: None,
    };
    let packed = packer::pack(&recipe, &opts, &mut NoProgress).expect("pack");
    assert!(packed
        .report
        .files
        .iter()
        .any(|f| f.path == "/etc/ld.so.cache" && f.reasons[0].contains("libcapsaanswer.so.1")));

    let root = dir.join("root");
    bundle_format::extract(&Bundle::open(&out).unwrap(), &root, &mut |_| {}).unwrap();
    if !Command::new("unshare")
        .args(["-r", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            std::env::var_os("CAPSA_REQUIRE_SANDBOX").is_none(),
            "user namespaces required"
        );
        eprintln!("skipped: no unprivileged user namespaces");
        return;
    }
    let run = || {
        Command::new("unshare")
            .arg("-r")
            .arg("-R")
            .arg(&root)
            .arg("/usr/bin/answer")
            .output()
            .unwrap()
    };
    let o = run();
    assert!(
        o.status.success(),
        "answer failed in the bundle root: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_file(root.join("etc/ld.so.cache")).unwrap();
    let o = run();
    assert!(
        !o.status.success(),
        "the library loaded without the generated cache: the test proves nothing"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("libcapsaanswer.so.1"));
}
