//! The seccomp program of a traced process: `SECCOMP_RET_TRACE` for the syscalls in
//! [`crate::calls::TRACED`] (some only when a pointer argument is non-NULL), `ALLOW` for the
//! rest. Built with seccompiler, whose arch check kills a process making a syscall of another
//! ABI (an i386 program, `int 0x80`): that one instruction is rewritten to `ALLOW`, so such
//! calls run untraced instead of killing the program.
//!
//! Invariant: the filter is installed only after the tracer set `PTRACE_O_TRACESECCOMP`,
//! else every traced syscall fails with `ENOSYS`.

use std::collections::BTreeMap;
use std::convert::TryInto;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
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
            Traced::ArgNonNull(arg) => vec![non_null(arg)?],
        };
        rules.insert(call.nr, entry);
    }
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Trace(0), arch)
        .map_err(|e| TraceError::Filter(e.to_string()))?;
    let mut program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| TraceError::Filter(e.to_string()))?;
    allow_foreign_arch(&mut program)?;
    Ok(program)
}

/// Installs a program built by [`filter_program`] on the calling thread, after setting
/// `no_new_privs` (seccompiler does both; plain syscalls, no allocation).
pub fn install_program(program: &BpfProgram) -> Result<(), TraceError> {
    seccompiler::apply_filter(program).map_err(|e| TraceError::Filter(e.to_string()))
}

fn non_null(arg: u8) -> Result<SeccompRule, TraceError> {
    let cond = SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::Ne, 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_rewrites_the_arch_check() {
        let program = filter_program().expect("filter builds");
        assert_eq!(program[2].k, libc::SECCOMP_RET_ALLOW);
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
