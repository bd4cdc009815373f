//! The seccomp program of a traced process: `SECCOMP_RET_TRACE` for the syscalls in
//! [`crate::calls::TRACED`] (some only when a pointer argument is non-NULL), `ALLOW` for the
//! rest. Built with seccompiler, whose arch check kills a process making a syscall of another
//! ABI (an i386 program, `int 0x80`): that one instruction is rewritten to `ALLOW`, so such
//! calls run untraced instead of killing the program. seccompiler compares the number with
//! every traced one in turn, so an untraced call walks the whole chain: a check inserted
//! before it allows every number below the lowest traced one at once (`read` and `write`,
//! 0 and 1 on x86_64, the calls of a program that moves data). Rules of one syscall are alternatives
//! (any matching rule traces), conditions of one rule all must hold.
//!
//! Invariant: the filter is installed only after the tracer set `PTRACE_O_TRACESECCOMP`,
//! else every traced syscall fails with `ENOSYS`.

use std::collections::BTreeMap;
use std::convert::TryInto;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule,
};

use crate::calls::{Traced, TRACED};
use crate::TraceError;

/// BPF `RET | K`: the opcode of the arch check's kill instruction.
const BPF_RET_K: u16 = 0x06;

/// Builds the trace filter for this machine's architecture.
pub fn filter_program() -> Result<BpfProgram, TraceError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| TraceError::Filter(e.to_string()))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for call in TRACED {
        let entry = match call.when {
            Traced::Always => Vec::new(),
            Traced::ArgNonNull(arg) => {
                vec![rule(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::Ne, 0)?]
            }
            // dirfd == AT_FDCWD, or no AT_EMPTY_PATH: an int compares its low 32 bits.
            Traced::UnlessFdStat { dirfd, flags } => vec![
                rule(
                    dirfd,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    u64::from(libc::AT_FDCWD as u32),
                )?,
                rule(
                    flags,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(libc::AT_EMPTY_PATH as u64),
                    0,
                )?,
            ],
        };
        rules.insert(call.nr, entry);
    }
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Trace(0), arch)
        .map_err(|e| TraceError::Filter(e.to_string()))?;
    let mut program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| TraceError::Filter(e.to_string()))?;
    allow_foreign_arch(&mut program)?;
    let lowest = TRACED.iter().map(|c| c.nr).min().unwrap_or(0);
    allow_below(&mut program, u32::try_from(lowest).unwrap_or(0))?;
    Ok(program)
}

/// Installs a program built by [`filter_program`] on the calling thread, after setting
/// `no_new_privs` (seccompiler does both; plain syscalls, no allocation).
pub fn install_program(program: &BpfProgram) -> Result<(), TraceError> {
    seccompiler::apply_filter(program).map_err(|e| TraceError::Filter(e.to_string()))
}

/// A rule of one condition on argument `arg`.
fn rule(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompRule, TraceError> {
    let cond = SeccompCondition::new(arg, len, op, value)
        .map_err(|e| TraceError::Filter(e.to_string()))?;
    SeccompRule::new(vec![cond]).map_err(|e| TraceError::Filter(e.to_string()))
}

/// seccompiler's program starts `LD arch; JEQ native, +1; RET KILL_PROCESS`: make that `RET`
/// allow. Fails if the prologue is not the expected one (a seccompiler change).
fn allow_foreign_arch(program: &mut BpfProgram) -> Result<(), TraceError> {
    match program.get_mut(2) {
        Some(insn) if insn.code == BPF_RET_K && insn.k == libc::SECCOMP_RET_KILL_PROCESS => {
            insn.k = libc::SECCOMP_RET_ALLOW;
            Ok(())
        }
        _ => Err(TraceError::Filter(
            "seccompiler's program does not start with the arch check this crate rewrites".into(),
        )),
    }
}

/// After seccompiler's `LD nr` (instruction 3, after the arch check), inserts
/// `JGE lowest, +1; RET ALLOW`. No jump crosses the insertion point: the arch check jumps to
/// the `LD`, and the chain's jumps are relative within it.
fn allow_below(program: &mut BpfProgram, lowest: u32) -> Result<(), TraceError> {
    const LD_W_ABS: u16 = 0x20;
    const JGE_K: u16 = 0x35;
    match program.get(3) {
        Some(insn) if insn.code == LD_W_ABS && insn.k == 0 => {}
        _ => {
            return Err(TraceError::Filter(
                "seccompiler's program does not load the syscall number where expected".into(),
            ))
        }
    }
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    program.splice(
        4..4,
        [
            insn(JGE_K, 1, 0, lowest),
            insn(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_rewrites_the_arch_check() {
        let program = filter_program().expect("filter builds");
        assert_eq!(program[2].k, libc::SECCOMP_RET_ALLOW);
        assert_eq!(
            (program[4].code, program[4].k),
            (0x35, libc::SYS_open as u32)
        );
        assert_eq!(program[5].k, libc::SECCOMP_RET_ALLOW);
        let traces = program
            .iter()
            .filter(|i| i.code == BPF_RET_K && i.k == libc::SECCOMP_RET_TRACE)
            .count();
        assert!(traces >= 1, "the program has a RET_TRACE");
        assert!(
            !program
                .iter()
                .any(|i| i.code == BPF_RET_K && i.k == libc::SECCOMP_RET_KILL_PROCESS),
            "no kill left"
        );
    }
}
