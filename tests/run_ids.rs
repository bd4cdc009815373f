//! Calls on user and group ids answer inside `capsa run` what they answer on the host: a C probe
//! (compiled here, static) prints the errno of `setuid(65534)`, `setgid(65534)`,
//! `setresuid(-1,65534,-1)`, `setgroups`, `chown` to a foreign id and to the caller's own ids,
//! on the host and in the sandbox, and the two outputs must be equal.
//!
//! The sandbox's app has the caller's uid and no capability. As an ordinary user the host
//! side is the probe run plainly. As root the host side is the probe run as root with every
//! capability dropped (`setpriv`): root in the sandbox is uid 0 without capabilities, so that
//! is its host equivalent (plain root would succeed at `setuid(65534)`, which no sandboxed
//! app can). Without the seccomp id rules the sandbox answers EINVAL (unmapped id) where the
//! host says EPERM, and the comparison fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;

const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
/* Raw syscalls: the errnos are the kernel's, with no wrapper in between. */
static void row(const char *name, long r) {
    printf("%s %s\n", name, r == 0 ? "success" : strerrorname_np(errno));
}
int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: ids-probe FILE\n"); return 2; }
    const char *file = argv[1];
    unsigned long u = getuid(), g = getgid();
    unsigned int nobody[1] = {65534};
    int fd = open(file, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) { perror(file); return 2; }
    row("setuid(65534)", syscall(SYS_setuid, 65534));
    row("setgid(65534)", syscall(SYS_setgid, 65534));
    row("setresuid(-1,65534,-1)", syscall(SYS_setresuid, -1, 65534, -1));
    row("setregid(own,65534)", syscall(SYS_setregid, g, 65534));
    row("setgroups(1,[65534])", syscall(SYS_setgroups, 1, nobody));
    row("setgroups(0)", syscall(SYS_setgroups, 0, NULL));
    row("fchownat(file,65534,-1)", syscall(SYS_fchownat, AT_FDCWD, file, 65534, -1, 0));
    row("fchown(fd,-1,65534)", syscall(SYS_fchown, fd, -1, 65534));
#ifdef SYS_chown
    row("chown(file,65534,-1)", syscall(SYS_chown, file, 65534, -1));
    row("lchown(file,own,65534)", syscall(SYS_lchown, file, u, 65534));
#endif
    row("chown(file,own,own)", syscall(SYS_fchownat, AT_FDCWD, file, u, g, 0));
    row("setuid(-1)", syscall(SYS_setuid, -1));
    row("setresuid(-1,-1,-1)", syscall(SYS_setresuid, -1, -1, -1));
    row("setuid(own)", syscall(SYS_setuid, u));
    row("setresgid(own,own,own)", syscall(SYS_setresgid, g, g, g));
    unlink(file);
    return 0;
}
"#;

/// Where the bundle puts the probe; it is the bundle's command.
const IN_BUNDLE: &str = "/usr/local/bin/ids-probe";

/// The probe, built static once per test binary.
fn probe() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let dir = shared_tmp().join("ids-probe");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ids.c"), PROBE_C).unwrap();
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let o = Command::new(cc)
            .args(["-static", "-O2", "-o", "ids-probe", "ids.c"])
            .current_dir(&dir)
            .output()
            .expect("run cc");
        assert!(
            o.status.success(),
            "building the probe failed: {}",
            text(&o)
        );
        dir.join("ids-probe")
    })
}

/// A bundle whose command is the probe.
fn bundle() -> PathBuf {
    let recipe = probe().with_file_name("capsa.toml");
    std::fs::write(
        &recipe,
        format!(
            "[app]\nid = \"org.capsa.IdsProbe\"\nname = \"Ids probe\"\nversion = \"1.0\"\n\
             command = [\"{IN_BUNDLE}\"]\n\n[capture]\nfiles = {{ \"{IN_BUNDLE}\" = \"ids-probe\" }}\n"
        ),
    )
    .unwrap();
    let out = shared_tmp().join("ids-probe.capsa");
    ok(&[
        "pack",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    out
}

/// The probe on the host, as the sandboxed app would be there: this uid, no capabilities.
fn on_host(file: &Path) -> String {
    let root = host_ids().0 == 0;
    let mut c = if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--ambient-caps=-all",
        ])
        .arg(probe());
        c
    } else {
        Command::new(probe())
    };
    let o = c.arg(file).output().expect("run the probe on the host");
    assert!(o.status.success(), "the probe on the host: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn id_calls_answer_the_hosts_errno() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let host = on_host(&iso.path().join("host-file"));
    let b = bundle();
    let o = iso.run(&["run", b.to_str().unwrap(), "--", "/tmp/ids-probe-file"]);
    assert!(o.status.success(), "capsa run: {}", text(&o));
    let inside = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("host:\n{host}\nsandbox:\n{inside}");
    assert_eq!(inside, host, "the sandbox's errnos differ from the host's");
    // The test's own expectations, not only equality: refusals are EPERM, own ids work.
    for (name, want) in [
        ("setuid(65534)", "EPERM"),
        ("setgid(65534)", "EPERM"),
        ("setresuid(-1,65534,-1)", "EPERM"),
        ("setgroups(1,[65534])", "EPERM"),
        ("fchownat(file,65534,-1)", "EPERM"),
        ("chown(file,own,own)", "success"),
        ("setuid(own)", "success"),
        ("setuid(-1)", "EINVAL"),
    ] {
        let line = format!("{name} {want}");
        assert!(inside.lines().any(|l| l == line), "no line {line:?}");
    }
}
