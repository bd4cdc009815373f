//! What each layer of the sandbox really enforces, for `capsa run --report`. Filled from the
//! plan and the seccomp policy in the parent, and from the Landlock outcome the child reports.

use serde::Serialize;

use crate::plan::{Plan, Step, Upper};
use crate::seccomp::SeccompPolicy;

/// One row per sandbox layer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub app: String,
    pub rows: Vec<(String, String)>,
}

impl Report {
    pub fn new(
        app: &str,
        plan: &Plan,
        seccomp: &SeccompPolicy,
        uid: u32,
        gid: u32,
        cache_note: &str,
    ) -> Self {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        row(
            "namespaces",
            format!(
                "user (uid {uid} and gid {gid} mapped to themselves, setgroups denied), mount, pid (pid 1 reaps and forwards signals), ipc, uts, {}",
                if plan.unshare_net { "net (loopback only)" } else { "net shared with the host (network granted)" }
            ),
        );
        let root = match &plan.root.upper {
            Upper::Disabled { tree } => format!("the layers merged read-only ({cache_note}) from {}: no writable layer; nosuid, nodev", tree.display()),
            upper => {
                let upper = match upper {
                    Upper::Persistent { upper, .. } => format!("persistent writable layer {}", upper.display()),
                    _ if cache_note.contains("busy") => "tmpfs writable layer: another instance holds this app's state, so changes here are discarded".to_owned(),
                    _ => "tmpfs writable layer (ephemeral: changes are discarded)".to_owned(),
                };
                format!("overlayfs of {} read-only layers ({cache_note}), {upper}; nosuid, nodev", plan.root.lowers.len())
            }
        };
        row(
            "root",
            format!("{root}; host root detached after pivot_root"),
        );
        for s in &plan.steps {
            let text = match s {
                Step::Bind {
                    src,
                    dst,
                    read_only,
                    dev,
                } => {
                    format!(
                        "{} <- {} ({}{})",
                        dst.display(),
                        src.display(),
                        if *read_only { "ro" } else { "rw" },
                        if *dev { ", device" } else { ", nosuid, nodev" }
                    )
                }
                Step::Tmpfs { dst, mode } => {
                    format!("{} tmpfs (mode {mode:o}, nosuid, nodev)", dst.display())
                }
                Step::Proc { dst } => {
                    format!("{} proc of the sandbox's pid namespace", dst.display())
                }
                Step::Devpts { dst } => format!("{} devpts, new instance", dst.display()),
                Step::Symlink { target, dst } => {
                    format!("{} -> {}", dst.display(), target.display())
                }
                Step::File { dst, .. } => format!("{} generated (ro)", dst.display()),
                Step::Mask { dst } => format!("{} hidden (capsa's own data)", dst.display()),
            };
            row("mount", text);
        }
        row(
            "landlock",
            "(applied by the app's process; see below)".into(),
        );
        for line in &seccomp.summary {
            row("seccomp", line.clone());
        }
        row(
            "capabilities",
            "none: bounding, permitted, effective, inheritable and ambient sets cleared".into(),
        );
        row(
            "no_new_privs",
            "set (setuid and file capabilities cannot raise privileges)".into(),
        );
        for n in &plan.notes {
            row("note", n.clone());
        }
        Self {
            app: app.to_owned(),
            rows,
        }
    }

    pub fn set_landlock(&mut self, text: &str) {
        for (k, v) in &mut self.rows {
            if k == "landlock" {
                *v = text.to_owned();
            }
        }
    }

    /// Text for a terminal.
    pub fn render(&self) -> String {
        let mut out = format!("sandbox for {}:\n", self.app);
        for (k, v) in &self.rows {
            out.push_str(&format!("  {k:<13} {v}\n"));
        }
        out
    }
}
