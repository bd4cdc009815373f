//! `capsa run --trace-missing`: a bundle of `/bin/sh` and `cat` whose command reads a file it
//! does not have. With the flag, the app's exit status passes through and standard error names
//! the missing file first, without the dynamic loader's search noise; without the flag there is
//! no list. The sandbox is the same either way: the `--report` rows for namespaces, mounts,
//! Landlock and seccomp are equal, and only a `trace` row is added.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::*;

const MISSING: &str = "/usr/share/nope/file";

/// The bundle, packed once per test binary.
fn bundle() -> &'static str {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let dir = shared_tmp().join("trace-missing");
        std::fs::create_dir_all(&dir).unwrap();
        let recipe = dir.join("capsa.toml");
        std::fs::write(
            &recipe,
            format!(
                "[app]\nid = \"org.capsa.TraceMissing\"\nname = \"Trace missing\"\n\
                 version = \"1.0\"\ncommand = [\"/bin/sh\", \"-c\", \"cat {MISSING}\"]\n\n\
                 [capture]\nbinaries = [\"/bin/sh\", \"/bin/cat\"]\n"
            ),
        )
        .unwrap();
        let out = dir.join("trace-missing.capsa");
        ok(&[
            "pack",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        out
    })
    .to_str()
    .unwrap()
}

/// The listed paths (the lines after the heading), in order.
fn listed(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .skip_while(|l| !l.starts_with("capsa: the app looked for these paths"))
        .skip(1)
        .filter_map(|l| l.strip_prefix("capsa:     "))
        .map(|l| l.split("  (").next().unwrap_or(l).to_owned())
        .collect()
}

#[test]
fn the_missing_file_is_named_first_and_the_status_passes_through() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let o = iso.run(&["run", "--trace-missing", bundle()]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    eprintln!("{err}");
    assert_eq!(o.status.code(), Some(1), "cat's status: {err}");
    assert!(err.contains("No such file or directory"), "cat ran: {err}");
    let paths = listed(&err);
    assert_eq!(paths.first().map(String::as_str), Some(MISSING), "{err}");
    assert!(
        paths
            .iter()
            .all(|p| !p.contains("glibc-hwcaps") && !p.starts_with("/etc/ld.so.")),
        "loader noise listed: {paths:?}"
    );
    // The shell found cat: its PATH search is not listed.
    assert!(paths.iter().all(|p| !p.ends_with("/cat")), "{paths:?}");

    // Without the flag: the same failure, no list.
    let plain = iso.run(&["run", bundle()]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(listed(&String::from_utf8_lossy(&plain.stderr)).is_empty());
}

#[test]
fn programs_come_first_statuses_and_signals_pass_through_and_json_lists_all() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let script = format!("cat {MISSING}; /opt/tool/bin/run; exit 7");
    let o = iso.run(&[
        "run",
        "--trace-missing",
        "--command",
        "/bin/sh",
        bundle(),
        "--",
        "-c",
        &script,
    ]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(7), "{err}");
    let paths = listed(&err);
    assert_eq!(paths[..2], ["/opt/tool/bin/run", MISSING], "{err}");
    assert!(err.contains("/opt/tool/bin/run  (program)"), "{err}");

    let killed = iso.run(&[
        "run",
        "--trace-missing",
        "--command",
        "/bin/sh",
        bundle(),
        "--",
        "-c",
        "kill -TERM $$",
    ]);
    assert_eq!(killed.status.code(), Some(128 + 15), "{}", text(&killed));

    let j = iso.run(&["run", "--trace-missing", "--json", bundle()]);
    let err = String::from_utf8_lossy(&j.stderr).into_owned();
    let line = err
        .lines()
        .find(|l| l.starts_with("{\"trace_missing\""))
        .unwrap_or_else(|| panic!("no JSON line: {err}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let first = &v["trace_missing"]["missing"]["paths"][0];
    assert_eq!(
        (first["path"].as_str(), first["lookup"].as_str()),
        (Some(MISSING), Some("open"))
    );
    assert!(v["trace_missing"]["missing"]["stops"].as_u64() > Some(0));
}

/// The report's rows of one kind, in order.
fn rows(report: &serde_json::Value, keys: &[&str]) -> Vec<(String, String)> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| Some((r[0].as_str()?.to_owned(), r[1].as_str()?.to_owned())))
        .filter(|(k, _)| keys.contains(&k.as_str()))
        .collect()
}

fn report(iso: &Isolated, trace: bool) -> serde_json::Value {
    let mut args = vec!["run", "--report", "--json"];
    if trace {
        args.push("--trace-missing");
    }
    args.push(bundle());
    let o = iso.run(&args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let line = err
        .lines()
        .find(|l| l.starts_with("{\"app\""))
        .unwrap_or_else(|| panic!("no report: {err}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn the_sandbox_is_the_same_with_tracing_but_for_its_row() {
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let (plain, traced) = (report(&iso, false), report(&iso, true));
    let same = [
        "namespaces",
        "mount",
        "landlock",
        "seccomp",
        "capabilities",
        "no_new_privs",
    ];
    let plain_rows = rows(&plain, &same);
    assert!(plain_rows.iter().any(|(k, _)| k == "seccomp"), "{plain}");
    assert_eq!(rows(&traced, &same), plain_rows);
    assert_eq!(traced["claims"], plain["claims"]);
    assert!(rows(&plain, &["trace"]).is_empty());
    let trace = rows(&traced, &["trace"]);
    assert!(
        trace.len() == 1 && trace[0].1.starts_with("on (--trace-missing)"),
        "{trace:?}"
    );
}

#[test]
fn signals_to_capsa_reach_the_traced_app() {
    use std::io::{BufRead, BufReader};
    if !userns() {
        return;
    }
    let iso = Isolated::new();
    let script = "trap 'exit 9' TERM; echo ready; while :; do cat /nope 2>/dev/null; done";
    let mut child = iso
        .capsa(&[
            "run",
            "--trace-missing",
            "--command",
            "/bin/sh",
            bundle(),
            "--",
            "-c",
            script,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let out = child.stdout.take().unwrap();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // A signal that is not forwarded leaves the app looping: fail after 20 s, not hang.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("SIGTERM did not reach the traced app");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(9),
        "the app's trap ran: SIGTERM was forwarded"
    );
}
