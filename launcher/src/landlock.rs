//! Landlock, the second wall behind the mount namespace, applied by the app's process after
//! pivot_root from the plan's rule set ([`LandlockPlan`]). Built best effort against the
//! plan's ABI (all the kernel has, or `abi_cap`); what the kernel really holds comes back from
//! rust-landlock's `RestrictionStatus` as a typed [`Outcome`], and every right the plan wanted
//! that the kernel's (or the capped) ABI lacks is listed in it as [`Missing`]. A required
//! rule set refuses to start when anything is missing or not fully enforced.

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use serde::{Deserialize, Serialize};

use crate::error::{Call, ChildError};
use crate::plan::{FsAccess, LandlockPlan};

/// The newest ABI whose rights Capsa asks for (6: scoping).
const WANTED_ABI: u8 = 6;

/// Landlock on the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kernel {
    /// Built in but turned off (`lsm=` without landlock).
    NotEnabled,
    /// Not built into this kernel.
    NotImplemented,
    /// Available with this ABI.
    Abi(u8),
}

/// How much of the rule set the kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Enforced {
    Fully,
    Partially,
    Not,
}

/// A right the plan wanted that the ABI in use lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Missing {
    /// ABI 2: moving files between directories (`refer`) is not restricted.
    Refer,
    /// ABI 3: truncating files is not restricted.
    Truncate,
    /// ABI 4: TCP port rules (the granted ports are not enforced by Landlock).
    TcpRules,
    /// ABI 5: ioctl on devices is not restricted.
    IoctlDev,
    /// ABI 6: abstract unix sockets and signals are not scoped to the sandbox.
    Scoping,
}

impl Missing {
    pub fn abi(self) -> u8 {
        match self {
            Self::Refer => 2,
            Self::Truncate => 3,
            Self::TcpRules => 4,
            Self::IoctlDev => 5,
            Self::Scoping => 6,
        }
    }
    pub fn text(self) -> &'static str {
        match self {
            Self::Refer => "moving files between directories is not restricted",
            Self::Truncate => "truncating files is not restricted",
            Self::TcpRules => "TCP ports are not restricted by Landlock",
            Self::IoctlDev => "ioctl on devices is not restricted",
            Self::Scoping => "abstract unix sockets and signals are not scoped to the sandbox",
        }
    }
}

/// What the kernel returned, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub kernel: Kernel,
    /// The ABI in use: the kernel's, or the cap when lower (0 without Landlock).
    pub abi: u8,
    pub ruleset: Enforced,
    pub missing: Vec<Missing>,
}

impl Outcome {
    /// Whether `m` is enforced by the kernel.
    pub fn holds(&self, m: Missing) -> bool {
        self.ruleset != Enforced::Not && !self.missing.contains(&m)
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> ChildError {
    // Landlock errors carry no errno we can rely on; EPERM stands for "refused".
    ChildError::new(
        &format!("apply Landlock ({what}: {e})"),
        Call::Landlock,
        None,
        libc::EPERM,
    )
}

fn add(
    created: &mut landlock::RulesetCreated,
    path: &std::path::Path,
    access: landlock::BitFlags<AccessFs>,
) -> Result<(), ChildError> {
    // A mount point a later grant covered (e.g. `/etc/localtime` under `filesystem=/etc`) or a
    // top-level directory the app deleted may not resolve: what covers it has its own rule.
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

/// Applies the rule set to the calling process and says what holds.
pub fn restrict(plan: &LandlockPlan) -> Result<Outcome, ChildError> {
    let target = plan.abi_cap.unwrap_or(WANTED_ABI).min(WANTED_ABI);
    let abi = ABI::from(target as i32);
    let read = AccessFs::from_read(abi);
    let all = AccessFs::from_all(abi);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(|e| fail("filesystem", e))?;
    let tcp = plan.tcp_connect.as_ref().filter(|_| target >= 4);
    if tcp.is_some() {
        ruleset = ruleset
            .handle_access(AccessNet::ConnectTcp | AccessNet::BindTcp)
            .map_err(|e| fail("network", e))?;
    }
    if plan.scope && target >= 6 {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(|e| fail("scopes", e))?;
    }
    let mut created = ruleset.create().map_err(|e| fail("create", e))?;
    for (path, access) in &plan.rules {
        let a = match access {
            FsAccess::Read => read,
            FsAccess::ReadWrite => all,
        };
        add(&mut created, path, a)?;
    }
    for port in tcp.into_iter().flatten() {
        (&mut created)
            .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
            .map_err(|e| fail("tcp rule", e))?;
    }
    let status = created.restrict_self().map_err(|e| fail("restrict", e))?;
    let kernel = match status.landlock {
        LandlockStatus::NotEnabled => Kernel::NotEnabled,
        LandlockStatus::NotImplemented => Kernel::NotImplemented,
        LandlockStatus::Available { effective_abi, .. } => Kernel::Abi(effective_abi as u8),
    };
    let used = match kernel {
        Kernel::Abi(k) => k.min(target),
        _ => 0,
    };
    let ruleset = match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partially,
        RulesetStatus::NotEnforced => Enforced::Not,
    };
    let missing = missing_at(plan, used);
    let out = Outcome {
        kernel,
        abi: used,
        ruleset,
        missing,
    };
    if plan.required && (out.ruleset != Enforced::Fully || !out.missing.is_empty()) {
        return Err(ChildError::new(
            &describe_gap(&out),
            Call::Landlock,
            None,
            libc::EPERM,
        ));
    }
    Ok(out)
}

/// The rights `plan` wants that ABI `abi` lacks.
pub fn missing_at(plan: &LandlockPlan, abi: u8) -> Vec<Missing> {
    [
        Missing::Refer,
        Missing::Truncate,
        Missing::TcpRules,
        Missing::IoctlDev,
        Missing::Scoping,
    ]
    .into_iter()
    .filter(|m| match m {
        Missing::TcpRules => plan.tcp_connect.is_some(),
        Missing::Scoping => plan.scope,
        _ => true,
    })
    .filter(|m| abi < m.abi())
    .collect()
}

/// What a required rule set lacks, in words.
pub fn describe_gap(o: &Outcome) -> String {
    match o.kernel {
        Kernel::NotEnabled => "the kernel has Landlock turned off".into(),
        Kernel::NotImplemented => "the kernel has no Landlock".into(),
        Kernel::Abi(k) => {
            let gaps: Vec<String> = o
                .missing
                .iter()
                .map(|m| format!("{} (needs ABI {})", m.text(), m.abi()))
                .collect();
            format!(
                "ABI {} is in use (kernel ABI {k}): {}",
                o.abi,
                if gaps.is_empty() {
                    "the rule set is not fully enforced".into()
                } else {
                    gaps.join("; ")
                }
            )
        }
    }
}
