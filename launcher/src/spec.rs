//! `SandboxSpec`: the manifest's permissions, the user's per-run `--allow`/`--deny`, and the
//! command, merged into one validated, effective set. Pure data, built in the parent.
//!
//! Rules: `--deny` beats `--allow` and the manifest; a deny names a permission without its
//! access mode or port list (`--deny network`, `--deny filesystem=home`), and removes every grant
//! of that kind and target; among grants of one target, read-write beats read-only and
//! `network` beats `network=tcp:...`. Contradictory or malformed requests are errors before
//! anything starts.

use std::collections::BTreeSet;

use bundle_format::permissions::{Enforcement, FsTarget};
use bundle_format::{Manifest, Permission};

use crate::error::LaunchError;

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    /// Replace the program (`--command`).
    pub command: Option<String>,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub ephemeral: bool,
    /// Require Landlock whatever the manifest says.
    pub require_landlock: bool,
    /// Expose each file named in `args` (a path or a `file://` URL), that file alone and
    /// read-write, at its own path; the argument becomes its absolute path.
    pub open_files: bool,
}

/// `file:///a%20b` → `/a b`; other text unchanged.
fn file_url_to_path(arg: &str) -> String {
    let Some(rest) = arg.strip_prefix("file://") else {
        return arg.to_owned();
    };
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            ) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The validated sandbox description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    pub app_id: String,
    pub grants: BTreeSet<Permission>,
    pub landlock: Enforcement,
    pub argv: Vec<String>,
    /// Manifest env, then `--env`, in that order (later wins).
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub ephemeral: bool,
    /// Host files opened with `--open-files`, each exposed alone.
    pub open_files: Vec<std::path::PathBuf>,
}

/// The identity of a grant for `--deny` matching: kind and target, without access or ports.
fn key(p: &Permission) -> String {
    match p {
        Permission::Network | Permission::NetworkTcp(_) => "network".into(),
        Permission::Filesystem { target, .. } => format!("filesystem={target}"),
        other => other.to_string(),
    }
}

fn parse_deny(s: &str) -> Result<String, LaunchError> {
    let p: Permission = s
        .parse()
        .map_err(|e| LaunchError::Usage(format!("--deny: {e}")))?;
    match &p {
        Permission::NetworkTcp(_) => Err(LaunchError::Usage(format!("--deny {s}: deny `network` as a whole; to allow some ports only, use --deny network --allow network=tcp:PORT"))),
        Permission::Filesystem { read_only: true, .. } => Err(LaunchError::Usage(format!("--deny {s}: deny takes no access mode; use --deny filesystem=TARGET, or --allow ...:ro to narrow"))),
        _ => Ok(key(&p)),
    }
}

/// Merges grants: deny first, then union with the stronger access winning.
fn merge(
    manifest: &[Permission],
    allow: &[Permission],
    denied: &BTreeSet<String>,
) -> BTreeSet<Permission> {
    let mut out: Vec<Permission> = manifest
        .iter()
        .chain(allow)
        .filter(|p| !denied.contains(&key(p)))
        .cloned()
        .collect();
    let has_all_network = out.contains(&Permission::Network);
    let mut ports: BTreeSet<u16> = BTreeSet::new();
    out.retain(|p| match p {
        Permission::NetworkTcp(list) => {
            ports.extend(list);
            false
        }
        _ => true,
    });
    if !has_all_network && !ports.is_empty() {
        out.push(Permission::NetworkTcp(ports.into_iter().collect()));
    }
    let rw_targets: BTreeSet<FsTarget> = out
        .iter()
        .filter_map(|p| match p {
            Permission::Filesystem {
                target,
                read_only: false,
            } => Some(target.clone()),
            _ => None,
        })
        .collect();
    out.retain(|p| !matches!(p, Permission::Filesystem { target, read_only: true } if rw_targets.contains(target)));
    out.into_iter().collect()
}

impl SandboxSpec {
    /// Builds the spec for `manifest` with the user's overrides.
    pub fn new(manifest: &Manifest, o: &Overrides) -> Result<Self, LaunchError> {
        let allow = o
            .allow
            .iter()
            .map(|s| {
                s.parse::<Permission>()
                    .map_err(|e| LaunchError::Usage(format!("--allow: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let denied = o
            .deny
            .iter()
            .map(|s| parse_deny(s))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if let Some(both) = allow.iter().find(|p| denied.contains(&key(p))) {
            return Err(LaunchError::Usage(format!(
                "--allow {both} and --deny {} contradict each other",
                key(both)
            )));
        }
        let mut argv = manifest.command.clone();
        if let Some(c) = &o.command {
            if !c.starts_with('/') {
                return Err(LaunchError::Usage(format!(
                    "--command {c}: must be an absolute path inside the app"
                )));
            }
            argv = vec![c.clone()];
        }
        let mut open_files = Vec::new();
        for arg in &o.args {
            if o.open_files {
                let candidate = std::path::PathBuf::from(file_url_to_path(arg));
                if let Ok(real) = std::fs::canonicalize(&candidate) {
                    if real.is_file() {
                        argv.push(real.display().to_string());
                        open_files.push(real);
                        continue;
                    }
                }
            }
            argv.push(arg.clone());
        }
        let mut env: Vec<(String, String)> = manifest
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &o.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(LaunchError::Usage(format!(
                    "--env {k}={v}: invalid variable"
                )));
            }
            env.push((k.clone(), v.clone()));
        }
        let landlock = if o.require_landlock {
            Enforcement::Required
        } else {
            manifest.permissions.landlock
        };
        Ok(Self {
            app_id: manifest.id.clone(),
            grants: merge(&manifest.permissions.grants, &allow, &denied),
            landlock,
            argv,
            env,
            workdir: manifest.workdir.clone(),
            ephemeral: o.ephemeral,
            open_files,
        })
    }

    pub fn has(&self, p: &Permission) -> bool {
        self.grants.contains(p)
    }

    /// Full network (the host's network namespace).
    pub fn network_all(&self) -> bool {
        self.has(&Permission::Network)
    }

    /// TCP ports allowed when the network is granted by port.
    pub fn tcp_ports(&self) -> Option<&[u16]> {
        self.grants.iter().find_map(|p| match p {
            Permission::NetworkTcp(ports) => Some(ports.as_slice()),
            _ => None,
        })
    }

    /// Whether the sandbox shares the host's network namespace.
    pub fn shares_network(&self) -> bool {
        self.network_all() || self.tcp_ports().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(grants: &[&str]) -> Manifest {
        let text = format!(
            r#"{{"arch":"x86_64","command":["/usr/bin/app","-x"],"created":0,"env":{{"A":"1"}},"generator":"t","id":"org.example.App","layers":[{{"diff_id":"sha256:{z}","digest":"sha256:{o}","entries":0,"media_type":"application/vnd.oci.image.layer.v1.tar+zstd","role":"app","size":1,"tar_size":1024,"toc":{{"digest":"sha256:{t}","size":1}},"unpacked_size":0}}],"name":"App","permissions":{{"grants":[{g}],"landlock":"best-effort"}},"requires":{{"features":[]}},"schema":1,"version":"1"}}"#,
            z = "0".repeat(64),
            o = "1".repeat(64),
            t = "2".repeat(64),
            g = grants
                .iter()
                .map(|g| format!("{g:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        Manifest::from_bytes(text.as_bytes()).unwrap()
    }

    fn grants(spec: &SandboxSpec) -> Vec<String> {
        spec.grants.iter().map(|g| g.to_string()).collect()
    }

    fn o(allow: &[&str], deny: &[&str]) -> Overrides {
        Overrides {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn deny_beats_allow_and_manifest() {
        let m = manifest(&["network", "filesystem=home:ro", "socket=x11"]);
        let s = SandboxSpec::new(&m, &o(&["device=dri"], &["network", "filesystem=home"])).unwrap();
        let mut g = grants(&s);
        g.sort();
        assert_eq!(g, ["device=dri", "socket=x11"]);
        assert!(!s.shares_network());
    }

    #[test]
    fn stronger_access_wins() {
        let m = manifest(&["filesystem=home:ro", "network=tcp:443"]);
        let s = SandboxSpec::new(&m, &o(&["filesystem=home", "network=tcp:80"], &[])).unwrap();
        let mut g = grants(&s);
        g.sort();
        assert_eq!(g, ["filesystem=home", "network=tcp:80,tcp:443"]);
        assert_eq!(s.tcp_ports(), Some(&[80u16, 443][..]));
        let s = SandboxSpec::new(&m, &o(&["network"], &[])).unwrap();
        assert!(s.network_all() && s.tcp_ports().is_none());
    }

    #[test]
    fn conflicts_and_typos_are_errors_before_anything_starts() {
        let m = manifest(&[]);
        for (allow, deny) in [
            (vec!["netwrok"], vec![]),
            (vec![], vec!["socket=ssh"]),
            (vec!["network"], vec!["network"]),
            (vec![], vec!["network=tcp:443"]),
            (vec![], vec!["filesystem=home:ro"]),
        ] {
            assert!(
                SandboxSpec::new(&m, &o(&allow, &deny)).is_err(),
                "{allow:?} {deny:?}"
            );
        }
    }

    #[test]
    fn open_files_become_absolute_paths_and_grants() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a b.txt");
        std::fs::write(&f, "x").unwrap();
        let real = std::fs::canonicalize(&f).unwrap();
        let url = format!("file://{}", real.display().to_string().replace(' ', "%20"));
        let mut ov = o(&[], &[]);
        ov.open_files = true;
        ov.args = vec![url, "--flag".into(), "/nonexistent/file".into()];
        let s = SandboxSpec::new(&manifest(&[]), &ov).unwrap();
        assert_eq!(s.open_files, [real.clone()]);
        assert_eq!(
            s.argv[2..],
            [
                real.display().to_string(),
                "--flag".into(),
                "/nonexistent/file".into()
            ]
        );
        ov.open_files = false;
        assert!(SandboxSpec::new(&manifest(&[]), &ov)
            .unwrap()
            .open_files
            .is_empty());
    }

    #[test]
    fn command_and_args() {
        let m = manifest(&[]);
        let mut ov = o(&[], &[]);
        ov.args = vec!["file".into()];
        assert_eq!(
            SandboxSpec::new(&m, &ov).unwrap().argv,
            ["/usr/bin/app", "-x", "file"]
        );
        ov.command = Some("/usr/bin/other".into());
        assert_eq!(
            SandboxSpec::new(&m, &ov).unwrap().argv,
            ["/usr/bin/other", "file"]
        );
        ov.command = Some("other".into());
        assert!(SandboxSpec::new(&m, &ov).is_err());
    }
}
