//! Regression tests for the known sandbox escapes of threats.md §2 that apply to Capsa, each
//! named after its CVE (or advisory) and driving the real binary: the probe
//! (tests/probe/probe.c) or a shell inside the bundle attempts the attack, and hostile bundles
//! built with the bundle-format crate try to redirect the launcher's mounts to the host.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// Runs `bundle`, whose command is the probe, with the probe's base arguments plus `extra`;
/// returns the output and the probe's rows.
fn probe_run(
    iso: &Isolated,
    bundle: &Path,
    extra: &[&str],
) -> (Output, BTreeMap<String, ProbeRow>) {
    let base = probe_args();
    let mut argv = vec!["run", bundle.to_str().unwrap(), "--"];
    argv.extend(extra);
    argv.extend(base.iter().map(String::as_str));
    let o = iso.run(&argv);
    let rows = probe_rows(&String::from_utf8_lossy(&o.stdout));
    (o, rows)
}

/// The probe bundle run plainly; every row must hold.
fn plain_probe_rows() -> BTreeMap<String, ProbeRow> {
    let iso = Isolated::new();
    let (o, rows) = probe_run(&iso, probe_bundle(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    rows
}

/// Runs a shell script in the probe bundle; `args` become "$@" (with "$0" = sh).
fn sh(iso: &Isolated, script: &str, args: &[&str]) -> Output {
    let mut argv = vec!["run", "--command", "/bin/sh"];
    argv.extend([probe_bundle().to_str().unwrap(), "--", "-c", script, "sh"]);
    argv.extend(args);
    iso.run(&argv)
}

/// Everything below `dir` (relative paths, file contents, modes), to show it did not change.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for rel in std::iter::once(String::new()).chain(tree(dir)) {
        let p = dir.join(&rel);
        let m = p.symlink_metadata().unwrap();
        let data = if m.is_file() {
            std::fs::read(&p).unwrap()
        } else {
            Vec::new()
        };
        out.push((rel, data, m.permissions().mode()));
    }
    out
}

/// A host directory an attack aims at, holding one file.
fn victim(iso: &Isolated) -> PathBuf {
    let v = iso.path().join("victim");
    std::fs::create_dir(&v).unwrap();
    std::fs::write(v.join("marker"), "host data\n").unwrap();
    v
}

#[test]
fn cve_2017_5226_tiocsti_is_blocked_on_a_real_terminal() {
    if !userns() {
        return;
    }
    // `script` makes a pseudo-terminal the sandbox's stdin, so TIOCSTI would reach a real
    // terminal's input queue (CVE-2023-28100: TIOCLINUX, same filter).
    let iso = Isolated::new();
    let mut line = format!(
        "exec '{}' run '{}' --",
        capsa_bin().display(),
        probe_bundle().display()
    );
    for a in probe_args() {
        line.push_str(&format!(" '{a}'"));
    }
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .envs(iso.env())
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o));
    let rows = probe_rows(&out);
    assert_row(&rows, "ioctl(TIOCGWINSZ)", "success"); // stdin is a terminal
    assert_row(&rows, "ioctl(TIOCSTI)", "EPERM");
    assert_row(&rows, "ioctl(TIOCLINUX)", "EPERM");
}

#[test]
fn cve_2019_10063_tiocsti_with_high_bits_is_blocked() {
    if !userns() {
        return;
    }
    // The kernel truncates the command to 32 bits; a filter comparing 64 would let it through.
    assert_row(&plain_probe_rows(), "ioctl(TIOCSTI|1<<32)", "EPERM");
}

#[test]
fn cve_2021_41133_mount_api_and_clone3_are_unavailable() {
    if !userns() {
        return;
    }
    let rows = plain_probe_rows();
    for name in [
        "open_tree",
        "open_tree_attr",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        "clone3",
    ] {
        assert_row(&rows, name, "ENOSYS");
    }
    for name in ["mount", "umount2", "pivot_root", "chroot"] {
        assert_row(&rows, name, "EPERM");
    }
    // clone3's ENOSYS makes glibc fall back to clone: threads still work.
    assert_row(&rows, "pthread_create", "success");
}

#[test]
fn cve_2016_3135_no_namespace_can_be_created_inside() {
    if !userns() {
        return;
    }
    let rows = plain_probe_rows();
    for name in [
        "unshare(CLONE_NEWUSER)",
        "clone(CLONE_NEWNS)",
        "clone(CLONE_NEWCGROUP)",
        "clone(CLONE_NEWUTS)",
        "clone(CLONE_NEWIPC)",
        "clone(CLONE_NEWUSER)",
        "clone(CLONE_NEWPID)",
        "clone(CLONE_NEWNET)",
        "setns",
    ] {
        assert_row(&rows, name, "EPERM");
    }
    assert_row(&rows, "fork", "exit-7");
}

#[test]
fn cve_2016_9962_pid1_cannot_be_traced_or_inspected() {
    if !userns() {
        return;
    }
    // pid 1 is a copy of the launcher: it must be non-dumpable (CVE-2016-8659 too), and ptrace
    // is refused outright (CVE-2017-5206).
    let rows = plain_probe_rows();
    for name in [
        "ptrace(ATTACH,1)",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "pidfd_getfd",
    ] {
        assert_row(&rows, name, "EPERM");
    }
    assert_row(&rows, "open(/proc/1/environ)", "EACCES");
    assert_row(&rows, "kill(hostpid,0)", "ESRCH");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(capsa_bin()).unwrap().permissions().mode();
    assert_eq!(mode & 0o6000, 0, "capsa must not be setuid or setgid");
}

#[test]
fn cve_2019_5736_the_launcher_binary_cannot_be_reached_through_proc() {
    if !userns() {
        return;
    }
    // /proc/1/exe is the host's capsa binary; runc's attack opened it with O_PATH and reopened
    // it for writing once the runtime had exited.
    let before = std::fs::read(capsa_bin()).unwrap();
    let rows = plain_probe_rows();
    assert_row(&rows, "open(/proc/1/exe,O_PATH)", "EACCES");
    assert!(std::fs::read(capsa_bin()).unwrap() == before);
}

#[test]
fn cve_2014_8989_setgroups_is_denied() {
    if !userns() {
        return;
    }
    let rows = plain_probe_rows();
    let (uid, gid) = host_ids();
    assert_row(&rows, "setgroups", "deny");
    assert_row(&rows, "setgroups(0)", "EPERM");
    assert_row(&rows, "uid_map", &format!("{uid},{uid},1"));
    assert_row(&rows, "gid_map", &format!("{gid},{gid},1"));
}

#[test]
fn firejail_x32_and_foreign_abi_syscalls_are_refused() {
    if !userns() {
        return;
    }
    // seccompiler checks only AUDIT_ARCH, which x32 shares with x86_64; i386 numbers differ.
    let rows = plain_probe_rows();
    assert_row(&rows, "syscall-1000", "ENOSYS");
    if cfg!(target_arch = "x86_64") {
        assert_row(&rows, "x32-getpid", "ENOSYS");
        assert_row(&rows, "int0x80-getpid", "SIGSYS|SIGSEGV");
    }
}

#[test]
fn cve_2024_21626_no_host_descriptor_or_directory_leaks_in() {
    if !userns() {
        return;
    }
    // capsa starts with descriptors 3 and 4 open on host directories, in a host working
    // directory the sandbox does not show.
    let iso = Isolated::new();
    let mut argv = vec![
        "-c".to_owned(),
        r#"cd "$1" && exec 3</ 4<. && shift && exec "$@""#.to_owned(),
        "sh".to_owned(),
        iso.path().display().to_string(),
        capsa_bin().display().to_string(),
        "run".to_owned(),
        probe_bundle().display().to_string(),
        "--".to_owned(),
    ];
    argv.extend(probe_args());
    let o = Command::new("sh")
        .args(&argv)
        .envs(iso.env())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rows = probe_rows(&String::from_utf8_lossy(&o.stdout));
    assert_row(&rows, "fds", "0,1,2");
    assert_row(&rows, "getcwd", "reachable");
}

#[test]
fn cve_2025_31133_the_bundles_dev_proc_and_passwd_are_never_used() {
    if !userns() {
        return;
    }
    // A bundle with its own /dev (a regular file for null, a symlink to a host file), a fake
    // /proc/self/status that claims no sandbox, and its own /etc/passwd.
    let iso = Isolated::new();
    let bundle = iso.path().join("decoy.capsa");
    let probe = std::fs::read(probe_binary()).unwrap();
    let status = b"CapEff:\t000001ffffffffff\nNoNewPrivs:\t0\nSeccomp:\t0\n";
    write_layer_bundle(
        &bundle,
        &[
            Entry::Dir("dev"),
            Entry::File("dev/null", b"not a device\n", false),
            Entry::Symlink("dev/console", "/etc/shadow"),
            Entry::Dir("etc"),
            Entry::File("etc/passwd", b"evil:x:4242:4242::/:/bin/sh\n", false),
            Entry::Dir("proc"),
            Entry::Dir("proc/self"),
            Entry::File("proc/self/status", status, false),
            Entry::Dir("usr"),
            Entry::Dir("usr/local"),
            Entry::Dir("usr/local/bin"),
            Entry::File(&PROBE[1..], &probe, true),
        ],
        PROBE,
    );
    let (o, rows) = probe_run(&iso, &bundle, &["absent=/dev/console"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_row(&rows, "/dev/null", "char-1:3");
    assert_row(&rows, "absent:/dev/console", "ENOENT");
    assert_row(&rows, "/proc-fstype", "procfs");
    assert_row(&rows, "CapEff", "0000000000000000");
    assert_row(&rows, "NoNewPrivs", "1");
    assert_row(&rows, "Seccomp", "2");
    assert_row(&rows, "passwd-entry", "found");
}

#[test]
fn cve_2021_30465_symlinks_at_mount_points_are_refused() {
    if !userns() {
        return;
    }
    // Each bundle has a symlink to a host directory where the launcher mounts something or
    // creates a file; followed before pivot_root, it would mount onto, or create files in, the
    // host directory. The home is set to a path the bundle can plant a link at.
    let home = "/home/capsa-probe-user";
    let probe = std::fs::read(probe_binary()).unwrap();
    let iso = Isolated::new();
    let v = victim(&iso);
    let before = snapshot(&v);
    let v_str = v.to_str().unwrap();
    let passwd_target = v.join("passwd");
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        ("tmp", vec![Entry::Symlink("tmp", v_str)]),
        ("run", vec![Entry::Symlink("run", v_str)]),
        ("proc", vec![Entry::Symlink("proc", v_str)]),
        ("dev", vec![Entry::Symlink("dev", v_str)]),
        ("etc", vec![Entry::Symlink("etc", v_str)]),
        (
            "etc/passwd",
            vec![
                Entry::Dir("etc"),
                Entry::Symlink("etc/passwd", passwd_target.to_str().unwrap()),
            ],
        ),
        (
            "home",
            vec![Entry::Dir("home"), Entry::Symlink(&home[1..], v_str)],
        ),
    ];
    for (name, mut entries) in cases {
        entries.extend([
            Entry::Dir("usr"),
            Entry::Dir("usr/local"),
            Entry::Dir("usr/local/bin"),
            Entry::File(&PROBE[1..], &probe, true),
        ]);
        let bundle = iso
            .path()
            .join(format!("link-{}.capsa", name.replace('/', "-")));
        write_layer_bundle(&bundle, &entries, PROBE);
        // Ephemeral: what one case's launcher created in a persistent root would hide the
        // next case's link.
        let mut argv = vec!["run", "--ephemeral", bundle.to_str().unwrap(), "--"];
        let args = probe_args();
        argv.extend(args.iter().map(String::as_str));
        let o = iso.capsa(&argv).env("HOME", home).output().unwrap();
        assert_eq!(o.status.code(), Some(125), "{name}: {}", text(&o));
        assert!(
            text(&o).contains("symlink"),
            "{name}: the error should name the symlink: {}",
            text(&o)
        );
        assert_eq!(snapshot(&v), before, "{name}: the host directory changed");
    }
    assert!(!Path::new(home).exists());
}

#[test]
fn cve_2024_42472_links_the_app_plants_do_not_redirect_later_grants() {
    if !userns() {
        return;
    }
    // GHSA-8688-9x26-hhxj too: the app replaces, in its persistent home and root, the places
    // where a later run mounts a granted host path with links to a host directory.
    let iso = Isolated::new();
    let v = victim(&iso);
    let home = iso.path().join("home");
    std::fs::create_dir_all(home.join("granted")).unwrap();
    std::fs::write(home.join("granted/marker"), "granted data\n").unwrap();
    let (before, granted_before) = (snapshot(&v), snapshot(&home));
    let home_env = [("HOME", home.as_os_str())];

    let plant =
        r#"ln -s "$1" "$HOME/granted" && ln -s "$1/resolv.conf" /etc/resolv.conf && echo planted"#;
    let bundle = probe_bundle().to_str().unwrap();
    let o = iso
        .capsa(&[
            "run",
            "--command",
            "/bin/sh",
            bundle,
            "--",
            "-c",
            plant,
            "sh",
        ])
        .arg(&v)
        .envs(home_env)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "planted",
        "{}",
        text(&o)
    );
    let state = state_of(&iso.data().join("capsa"), "org.capsa.Probe");
    assert!(state
        .join("home/granted")
        .symlink_metadata()
        .unwrap()
        .is_symlink());

    let o = iso
        .capsa(&["run", "--allow", "filesystem=~/granted", bundle])
        .envs(home_env)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("symlink"), "{}", text(&o));

    // The network grant binds the host's /etc/resolv.conf (when it has one).
    let o = iso
        .capsa(&["run", "--allow", "network", bundle])
        .envs(home_env)
        .output()
        .unwrap();
    if Path::new("/etc/resolv.conf").exists() {
        assert_eq!(o.status.code(), Some(125), "{}", text(&o));
        assert!(text(&o).contains("symlink"), "{}", text(&o));
    }
    assert_eq!(snapshot(&v), before, "the host directory changed");
    assert_eq!(
        snapshot(&home),
        granted_before,
        "the granted directory changed"
    );
}

#[test]
fn cve_2023_0386_a_setuid_copy_gains_nothing() {
    if !userns() {
        return;
    }
    // The app makes a setuid copy of a program in its writable root and runs it: nosuid,
    // no_new_privs and the empty bounding set leave it exactly as privileged as before.
    let iso = Isolated::new();
    let script = format!(
        "cp {PROBE} /usr/local/bin/suid-probe && chmod 4755 /usr/local/bin/suid-probe && \
         [ -u /usr/local/bin/suid-probe ] && echo setuid-bit-set && \
         exec /usr/local/bin/suid-probe \"$@\""
    );
    let args = probe_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = sh(&iso, &script, &args);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("setuid-bit-set"), "{}", text(&o));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rows = probe_rows(&out);
    let (uid, _) = host_ids();
    assert_row(&rows, "getuid", &uid.to_string());
    for name in ["CapPrm", "CapEff", "CapBnd"] {
        assert_row(&rows, name, "0000000000000000");
    }
    assert_row(&rows, "NoNewPrivs", "1");
    assert_row(&rows, "mount-flags:/", "nosuid,nodev");
}

#[test]
fn cve_2021_3493_file_capabilities_cannot_be_set() {
    if !userns() {
        return;
    }
    assert_row(
        &plain_probe_rows(),
        "setxattr(security.capability)",
        "EPERM",
    );
}

#[test]
fn cve_2024_32462_a_command_that_looks_like_an_option_is_not_one() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let bundle = probe_bundle().to_str().unwrap();
    let o = iso.run(&["run", "--command=--tmpfs", bundle]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(text(&o).contains("absolute path"), "{}", text(&o));
    // Arguments that look like options reach the app verbatim.
    let o = sh(
        &iso,
        r#"printf '%s|' "$@""#,
        &["--tmpfs", "/", "--bind", "/", "/x"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "--tmpfs|/|--bind|/|/x|");
}
