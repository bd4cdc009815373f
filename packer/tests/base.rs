//! The base on this host: what it holds, that it holds nothing the sandbox provides, and its
//! size (printed: the number quoted in design notes).

use std::path::Path;

use packer::capture::ItemKind;
use packer::origin::Origin;
use packer::Recipe;

fn recipe(dir: &Path, base: bool) -> Recipe {
    std::fs::write(dir.join("x"), "x\n").unwrap();
    std::fs::write(
        dir.join("capsa.toml"),
        format!(
            "[app]\nid = \"org.capsa.Base\"\nname = \"b\"\nversion = \"1\"\ncommand = [\"/usr/bin/x\"]\n\
             [capture]\nfiles = {{ \"/usr/bin/x\" = \"x\" }}\nbase = {base}\n"
        ),
    )
    .unwrap();
    Recipe::load(&dir.join("capsa.toml")).unwrap()
}

#[test]
fn the_base_holds_the_system_data_and_nothing_provided() {
    let t = tempfile::tempdir().unwrap();
    let (set, _) = packer::pack::capture(
        &recipe(t.path(), true),
        false,
        Path::new("/etc/ld.so.cache"),
    )
    .unwrap();
    let (mut files, mut bytes, mut closure_bytes) = (0u64, 0u64, 0u64);
    for (k, item) in &set.items {
        assert!(
            !packer::provided::is_provided(&k.to_absolute()),
            "{k} is sandbox-provided"
        );
        if let ItemKind::File { size, .. } = item.kind {
            if item.origins.contains(&Origin::Base) {
                files += 1;
                bytes += size;
            } else if item.origins.contains(&Origin::Closure) {
                closure_bytes += size;
            }
        }
    }
    let has = |p: &str| set.resolve(Path::new(p)).is_some();
    assert!(has("/bin/sh") && has("/sbin/ldconfig"));
    if Path::new("/usr/lib/locale/C.utf8/LC_CTYPE").exists() {
        assert!(has("/usr/lib/locale/C.utf8/LC_CTYPE"));
    }
    if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        assert!(has("/etc/ssl/certs/ca-certificates.crt") && has("/usr/lib/ssl/cert.pem"));
    }
    assert!(has("/lib/terminfo/x/xterm") || has("/usr/share/terminfo/x/xterm"));
    eprintln!(
        "base: {files} files, {bytes} bytes (their closure, libc included: {closure_bytes} bytes)"
    );
    assert!(
        files > 10 && bytes > 100_000,
        "{files} files, {bytes} bytes"
    );

    let t2 = tempfile::tempdir().unwrap();
    let (without, _) = packer::pack::capture(
        &recipe(t2.path(), false),
        false,
        Path::new("/etc/ld.so.cache"),
    )
    .unwrap();
    assert!(without
        .items
        .values()
        .all(|i| !i.origins.contains(&Origin::Base)));
    assert!(without.resolve(Path::new("/bin/sh")).is_none());
}
