//! Landlock, the second wall behind the mount namespace, applied by the app's process after
//! pivot_root. The rules mirror the mounts: everything readable and executable, write access
//! only where a writable mount is (the root's top-level directories, which the writable overlay
//! backs; writable binds and tmpfs), outgoing TCP only to granted ports, and abstract unix
//! sockets and signals scoped to the sandbox. Best effort unless required; the outcome is
//! returned for the report, never hidden.

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use crate::error::ChildError;
use crate::plan::LandlockRules;

fn fail(what: &str, e: impl std::fmt::Display) -> ChildError {
    // Landlock errors carry no errno we can rely on; EPERM stands for "refused".
    ChildError {
        step: format!("apply Landlock ({what}: {e})"),
        call: "landlock_restrict_self".into(),
        path: None,
        errno: libc::EPERM,
    }
}

/// Applies the rules to the calling process; returns a one-line description of what is enforced.
pub fn restrict(rules: &LandlockRules) -> Result<String, ChildError> {
    let kernel_abi = crate::sys::landlock_abi();
    if kernel_abi == 0 {
        if rules.required {
            return Err(fail(
                "required, but the kernel has no Landlock",
                "unsupported",
            ));
        }
        return Ok("not enforced: the kernel has no Landlock (best effort)".into());
    }
    let abi = ABI::from(kernel_abi.min(9) as i32);
    let level = if rules.required {
        CompatLevel::HardRequirement
    } else {
        CompatLevel::BestEffort
    };
    let read = AccessFs::from_read(abi);
    let all = AccessFs::from_all(abi);
    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(all)
        .map_err(|e| fail("filesystem", e))?;
    if rules.tcp_connect.is_some() {
        ruleset = ruleset
            .handle_access(AccessNet::ConnectTcp | AccessNet::BindTcp)
            .map_err(|e| fail("network", e))?;
    }
    if kernel_abi >= 6 || rules.required {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(|e| fail("scopes", e))?;
    }
    let mut created = ruleset.create().map_err(|e| fail("create", e))?;
    fn add(
        created: &mut landlock::RulesetCreated,
        path: &std::path::Path,
        access: landlock::BitFlags<AccessFs>,
    ) -> Result<(), ChildError> {
        // A mount point a later grant covered (e.g. `/etc/localtime` under `filesystem=/etc`)
        // may not resolve any more: what covers it has its own rule.
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        // Directory-only rights on a file would be dropped, and mark the ruleset partial.
        let access = if meta.is_dir() {
            access
        } else {
            access & AccessFs::from_file(ABI::V7)
        };
        let fd = PathFd::new(path).map_err(|e| fail(&path.display().to_string(), e))?;
        created
            .add_rule(PathBeneath::new(fd, access))
            .map(|_| ())
            .map_err(|e| fail(&path.display().to_string(), e))
    }
    add(&mut created, std::path::Path::new("/"), read)?;
    let mut writable = 0;
    for entry in std::fs::read_dir("/")
        .map_err(|e| fail("list /", e))?
        .flatten()
    {
        let p = entry.path();
        let is_mount = rules.not_root.contains(&p);
        let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(true);
        if !is_mount && !is_link {
            add(&mut created, &p, all)?;
            writable += 1;
        }
    }
    for p in &rules.read_write {
        add(&mut created, p, all)?;
    }
    for p in &rules.read_only {
        add(&mut created, p, read)?;
    }
    let mut net = "outgoing TCP not restricted by Landlock".to_owned();
    if let Some(ports) = &rules.tcp_connect {
        for port in ports {
            (&mut created)
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(|e| fail("tcp rule", e))?;
        }
        net = if ports.is_empty() {
            "no TCP connect or bind".into()
        } else {
            format!("TCP connect only to ports {ports:?}, no bind")
        };
    }
    let status = created.restrict_self().map_err(|e| fail("restrict", e))?;
    let state = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced",
    };
    if rules.required && status.ruleset != RulesetStatus::FullyEnforced {
        return Err(fail("required", state));
    }
    let scopes = if kernel_abi >= 6 {
        "abstract unix sockets and signals scoped to the sandbox"
    } else {
        "no scoping (kernel ABI < 6)"
    };
    Ok(format!(
        "ABI {kernel_abi}, {state} ({}): read and execute everywhere, write beneath {writable} root directories and {} writable mounts; {net}; {scopes}",
        if rules.required { "required" } else { "best effort" },
        rules.read_write.len()
    ))
}
