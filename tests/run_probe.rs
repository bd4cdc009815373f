//! The sandbox probe (tests/probe/probe.c) inside `capsa run`: every row of its table holds,
//! checked against this file's own list, not only the probe's verdict. Two controls show the
//! rows can fail: with the network granted exactly the network rows change (and the probe, not
//! told, fails on exactly those), and in a plain user namespace without Capsa's sandbox the
//! seccomp, capability and mount rows fail.

mod common;

use std::collections::BTreeMap;
use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::PathBuf;

use common::*;

/// Rows every run prints with these values (threats.md §1.2 and the plan's mounts); rows that
/// depend on the caller, the kernel or the network are added by [`expected_rows`].
const FIXED_ROWS: &[(&str, &str)] = &[
    ("fds", "0,1,2"),
    ("CapInh", "0000000000000000"),
    ("CapPrm", "0000000000000000"),
    ("CapEff", "0000000000000000"),
    ("CapBnd", "0000000000000000"),
    ("CapAmb", "0000000000000000"),
    ("NoNewPrivs", "1"),
    ("Seccomp", "2"),
    ("setgroups", "deny"),
    ("setgroups(0)", "EPERM"),
    ("passwd-entry", "found"),
    ("unshare(CLONE_NEWUSER)", "EPERM"),
    ("clone(CLONE_NEWNS)", "EPERM"),
    ("clone(CLONE_NEWCGROUP)", "EPERM"),
    ("clone(CLONE_NEWUTS)", "EPERM"),
    ("clone(CLONE_NEWIPC)", "EPERM"),
    ("clone(CLONE_NEWUSER)", "EPERM"),
    ("clone(CLONE_NEWPID)", "EPERM"),
    ("clone(CLONE_NEWNET)", "EPERM"),
    ("setns", "EPERM"),
    ("mount", "EPERM"),
    ("umount2", "EPERM"),
    ("pivot_root", "EPERM"),
    ("chroot", "EPERM"),
    ("add_key", "EPERM"),
    ("keyctl", "EPERM"),
    ("request_key", "EPERM"),
    ("bpf", "EPERM"),
    ("perf_event_open", "EPERM"),
    ("userfaultfd", "EPERM"),
    ("lookup_dcookie", "EPERM"),
    ("ptrace", "EPERM"),
    ("process_vm_readv", "EPERM"),
    ("process_vm_writev", "EPERM"),
    ("pidfd_getfd", "EPERM"),
    ("acct", "EPERM"),
    ("quotactl", "EPERM"),
    ("quotactl_fd", "EPERM"),
    ("syslog", "EPERM"),
    ("kexec_load", "EPERM"),
    ("kexec_file_load", "EPERM"),
    ("init_module", "EPERM"),
    ("finit_module", "EPERM"),
    ("delete_module", "EPERM"),
    ("reboot", "EPERM"),
    ("swapon", "EPERM"),
    ("swapoff", "EPERM"),
    ("settimeofday", "EPERM"),
    ("clock_settime", "EPERM"),
    ("sethostname", "EPERM"),
    ("setdomainname", "EPERM"),
    ("fanotify_init", "EPERM"),
    ("open_by_handle_at", "EPERM"),
    ("mbind", "EPERM"),
    ("set_mempolicy", "EPERM"),
    ("get_mempolicy", "EPERM"),
    ("migrate_pages", "EPERM"),
    ("move_pages", "EPERM"),
    ("set_mempolicy_home_node", "EPERM"),
    ("personality(READ_IMPLIES_EXEC)", "EPERM"),
    ("ioctl(TIOCSTI)", "EPERM"),
    ("ioctl(TIOCSTI|1<<32)", "EPERM"),
    ("ioctl(TIOCLINUX)", "EPERM"),
    ("syscall-1000", "ENOSYS"),
    ("clone3", "ENOSYS"),
    ("open_tree", "ENOSYS"),
    ("open_tree_attr", "ENOSYS"),
    ("move_mount", "ENOSYS"),
    ("fsopen", "ENOSYS"),
    ("fsconfig", "ENOSYS"),
    ("fsmount", "ENOSYS"),
    ("fspick", "ENOSYS"),
    ("mount_setattr", "ENOSYS"),
    ("io_uring_setup", "ENOSYS"),
    ("io_uring_enter", "ENOSYS"),
    ("io_uring_register", "ENOSYS"),
    ("socket(AF_PACKET)", "EAFNOSUPPORT"),
    ("socket(AF_ALG)", "EAFNOSUPPORT"),
    ("socket(AF_KEY)", "EAFNOSUPPORT"),
    ("socket(AF_VSOCK)", "EAFNOSUPPORT"),
    ("getpid", "success"),
    ("socket(AF_UNIX)", "success"),
    ("socket(AF_INET)", "success"),
    ("socket(AF_NETLINK)", "success"),
    ("personality(query)", "success"),
    ("ioctl(TIOCGWINSZ)", "ENOTTY"), // stdin is /dev/null
    ("memfd_create", "success"),
    ("fork", "exit-7"),
    ("pthread_create", "success"),
    ("kill(hostpid,0)", "ESRCH"),
    ("ptrace(ATTACH,1)", "EPERM"),
    ("open(/proc/1/environ)", "EACCES"),
    ("open(/proc/1/exe,O_PATH)", "EACCES"),
    ("getcwd", "reachable"),
    ("/dev/null", "char-1:3"),
    ("/proc-fstype", "procfs"),
    ("mount-flags:/", "nosuid,nodev"),
    ("mount-flags:/tmp", "nosuid,nodev"),
    ("mount-flags:$HOME", "nosuid,nodev"),
    ("create:/usr/capsa-probe-file", "success"),
    ("write:/proc/sys/kernel/hostname", "EACCES|EPERM|EROFS"),
    ("setxattr(security.capability)", "EPERM"),
];

/// Rows only x86_64 has: its legacy syscalls, and the x32 and i386 ABIs.
const X86_64_ROWS: &[(&str, &str)] = &[
    ("modify_ldt", "EPERM"),
    ("iopl", "EPERM"),
    ("ioperm", "EPERM"),
    ("uselib", "EPERM"),
    ("ustat", "EPERM"),
    ("sysfs", "EPERM"),
    ("x32-getpid", "ENOSYS"),
    ("int0x80-getpid", "SIGSYS|SIGSEGV"),
];

/// A TCP listener on 127.0.0.1 and an abstract unix socket on the host, for the probe to try.
struct HostListeners {
    tcp: TcpListener,
    unix: UnixListener,
    name: String,
}

impl HostListeners {
    fn new(tag: &str) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let name = format!("capsa-probe-{}-{tag}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let unix = UnixListener::bind_addr(&addr).unwrap();
        tcp.set_nonblocking(true).unwrap();
        unix.set_nonblocking(true).unwrap();
        Self { tcp, unix, name }
    }

    fn args(&self) -> Vec<String> {
        vec![
            format!("port={}", self.tcp.local_addr().unwrap().port()),
            format!("abstract={}", self.name),
        ]
    }

    /// Whether a connection from the probe reached (TCP, abstract socket).
    fn reached(&self) -> (bool, bool) {
        (self.tcp.accept().is_ok(), self.unix.accept().is_ok())
    }
}

/// Host paths that exist here and must not exist inside: system files, the source tree and
/// this binary, the test's temporary and XDG directories, and entries of the real home
/// (not the home itself or its ancestors: the private home appears there).
fn host_paths_to_hide(iso: &Isolated) -> Vec<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
    let mut paths: Vec<PathBuf> = [
        "/etc/shadow",
        "/etc/hostname",
        "/etc/ssh",
        "/var",
        "/home",
        "/root",
        "/srv",
        "/boot",
        "/usr/bin/sudo",
        "/usr/bin/su",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    paths.extend([
        src(),
        capsa_bin(),
        shared_tmp().to_path_buf(),
        iso.path().into(),
    ]);
    let mut in_home: Vec<PathBuf> = std::fs::read_dir(&home)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    in_home.sort();
    paths.extend(in_home.into_iter().take(5));
    paths.retain(|p| p.symlink_metadata().is_ok() && !home.starts_with(p));
    assert!(paths.len() >= 5, "too few host paths to check: {paths:?}");
    paths
}

/// The Landlock ABI `--report` says is enforced (0 for none).
fn landlock_abi(report: &str) -> u32 {
    report
        .lines()
        .find(|l| l.trim_start().starts_with("landlock"))
        .and_then(|l| l.split("ABI ").nth(1))
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or(0)
}

/// The host's interfaces, in /proc/net/dev order, comma-separated.
fn host_interfaces() -> String {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    let names: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    names.join(",")
}

/// What a UDP connect to 1.1.1.1:53 gives on the host (a route lookup; no packet is sent).
fn host_route() -> &'static str {
    match UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect("1.1.1.1:53")) {
        Ok(()) => "success",
        Err(e) if e.raw_os_error() == Some(101) => "ENETUNREACH",
        Err(e) => panic!("UDP connect to 1.1.1.1:53 on the host: {e}"),
    }
}

/// Every row a run should print, with the values the test allows.
fn expected_rows(abi: u32, network: bool, hidden: &[PathBuf]) -> BTreeMap<String, String> {
    let (uid, gid) = host_ids();
    let mut rows: BTreeMap<String, String> = FIXED_ROWS
        .iter()
        .chain(if cfg!(target_arch = "x86_64") {
            X86_64_ROWS
        } else {
            &[]
        })
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    rows.extend([
        ("getuid".into(), uid.to_string()),
        ("getgid".into(), gid.to_string()),
        ("uid_map".into(), format!("{uid},{uid},1")),
        ("gid_map".into(), format!("{gid},{gid},1")),
        (
            "setuid(0)".into(),
            if uid == 0 { "success" } else { "EINVAL|EPERM" }.into(),
        ),
    ]);
    if abi > 0 {
        rows.insert("landlock:create:/capsa-probe-file".into(), "EACCES".into());
        rows.insert("landlock:write:/proc/self/comm".into(), "EACCES".into());
    } else {
        rows.insert(
            "create:/proc/self/capsa-probe-file".into(),
            "ENOENT|EACCES|EPERM".into(),
        );
    }
    let (netdevs, udp, tcp, abstract_socket) = if network {
        let scoped = if abi >= 6 { "EPERM" } else { "success" };
        (host_interfaces(), host_route(), "success", scoped)
    } else {
        // Its own network namespace: only its own loopback, where nothing listens.
        (
            "lo".to_owned(),
            "ENETUNREACH",
            "ECONNREFUSED",
            "ECONNREFUSED",
        )
    };
    rows.insert("netdevs".into(), netdevs);
    rows.insert("udp-connect:1.1.1.1:53".into(), udp.into());
    rows.insert("tcp-connect:host-port".into(), tcp.into());
    rows.insert(
        "connect:host-abstract-socket".into(),
        abstract_socket.into(),
    );
    for p in hidden {
        rows.insert(format!("absent:{}", p.display()), "ENOENT|ENOTDIR".into());
    }
    rows
}

/// Runs the probe bundle with `grants` and `args` for the probe; returns the output and the
/// probe's rows.
fn run_probe(
    iso: &Isolated,
    grants: &[&str],
    args: &[String],
) -> (std::process::Output, BTreeMap<String, ProbeRow>) {
    let mut argv = vec!["run", "--report"];
    for g in grants {
        argv.extend(["--allow", g]);
    }
    argv.extend([probe_bundle().to_str().unwrap(), "--"]);
    argv.extend(args.iter().map(String::as_str));
    let o = iso.run(&argv);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("probe table (grants {grants:?}):\n{out}");
    (o, probe_rows(&out))
}

/// Asserts that the rows are exactly `expected` and each got an allowed value.
fn assert_rows(rows: &BTreeMap<String, ProbeRow>, expected: &BTreeMap<String, String>) {
    let names: Vec<&String> = rows.keys().collect();
    let wanted: Vec<&String> = expected.keys().collect();
    assert_eq!(names, wanted, "the probe's rows are not the test's");
    for (name, allowed) in expected {
        assert_row(rows, name, allowed);
    }
}

#[test]
fn every_row_holds_inside_the_sandbox() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let host = HostListeners::new("table");
    let hidden = host_paths_to_hide(&iso);
    let mut args = probe_args();
    args.extend(host.args());
    args.extend(hidden.iter().map(|p| format!("absent={}", p.display())));
    let (o, rows) = run_probe(&iso, &[], &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let abi = landlock_abi(&String::from_utf8_lossy(&o.stderr));

    // Only pid 1 and the probe itself are in the sandbox's pid namespace.
    let pids: Vec<&str> = rows["proc-pids"].got.split(',').collect();
    assert!(
        pids.len() == 2 && pids[0] == "1" && pids[1].parse::<u32>().is_ok_and(|p| p > 1),
        "{pids:?}"
    );
    let mut expected = expected_rows(abi, false, &hidden);
    expected.insert("proc-pids".into(), rows["proc-pids"].got.clone());
    assert_rows(&rows, &expected);
    assert_eq!(host.reached(), (false, false), "the probe reached the host");
}

#[test]
fn granting_the_network_changes_exactly_the_network_rows() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let host = HostListeners::new("network");
    let mut args = probe_args();
    args.extend(host.args());

    // Told that the network is granted, the probe sees the host's.
    let mut told = args.clone();
    told.extend([
        format!("net={}", host_interfaces()),
        format!("route={}", host_route()),
    ]);
    let (o, rows) = run_probe(&iso, &["network"], &told);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let abi = landlock_abi(&String::from_utf8_lossy(&o.stderr));
    let mut expected = expected_rows(abi, true, &[]);
    expected.insert("proc-pids".into(), rows["proc-pids"].got.clone());
    assert_rows(&rows, &expected);
    assert_eq!(
        host.reached(),
        (true, rows["connect:host-abstract-socket"].got == "success"),
        "the probe's connections to the host"
    );

    // Not told, it fails on the network rows, and on no other.
    let (o, rows) = run_probe(&iso, &["network"], &args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let failed: Vec<&str> = rows
        .iter()
        .filter(|(_, r)| !r.ok)
        .map(|(n, _)| n.as_str())
        .collect();
    let mut want = vec!["connect:host-abstract-socket", "tcp-connect:host-port"];
    if host_interfaces() != "lo" {
        want.insert(1, "netdevs");
    }
    if host_route() == "success" {
        want.push("udp-connect:1.1.1.1:53");
    }
    assert_eq!(failed, want, "rows that fail when the network is granted");
    assert_ne!(rows["udp-connect:1.1.1.1:53"].got, "ENETUNREACH");
}

#[test]
fn outside_the_sandbox_the_probe_fails() {
    if !userns() {
        return;
    }
    // A plain user namespace chrooted into the bundle's files: no seccomp, capabilities in the
    // namespace, no /proc, no nosuid.
    let root = extract(probe_bundle(), "probe-root");
    let mut argv = vec![PROBE.to_owned()];
    argv.extend(probe_args());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let o = run_in_root(&root, &argv, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    eprintln!("probe table outside the sandbox:\n{out}");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let rows = probe_rows(&out);
    for name in [
        "Seccomp",
        "NoNewPrivs",
        "CapEff",
        "clone(CLONE_NEWUSER)",
        "mount",
        "clone3",
        "open_tree",
        "ioctl(TIOCSTI)",
        "ioctl(TIOCSTI|1<<32)",
        "personality(READ_IMPLIES_EXEC)",
        "kill(hostpid,0)",
        "mount-flags:/",
        "/proc-fstype",
    ] {
        assert!(
            !rows[name].ok,
            "row {name} passed without the sandbox: {out}"
        );
    }
}
