//! Compile the OCI seccomp section into a libseccomp filter. The filter is
//! built in the parent (errors surface before any process exists) and loaded
//! by the child as the last step before execve.

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {what}")]
    Lib {
        what: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("seccomp: {0}")]
    Invalid(String),
}

fn lib(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Lib { what, source }
}

const DEFAULT_ERRNO: i32 = libc::EPERM;

pub fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SeccompError> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno.map(|e| e as i32).unwrap_or(DEFAULT_ERRNO)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno.map(|e| e as u16).unwrap_or(DEFAULT_ERRNO as u16)),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn compare(arg: &oci_spec::runtime::LinuxSeccompArg) -> ScmpArgCompare {
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
    };
    let datum = if arg.op() == LinuxSeccompOperator::ScmpCmpMaskedEq { arg.value_two().unwrap_or(0) } else { arg.value() };
    ScmpArgCompare::new(arg.index() as u32, op, datum)
}

/// Whether any rule notifies a seccomp agent (and so needs listenerPath).
pub fn uses_notify(spec: &LinuxSeccomp) -> bool {
    spec.default_action() == LinuxSeccompAction::ScmpActNotify
        || spec.syscalls().iter().flatten().any(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
}

/// Checks what libseccomp would accept but the spec forbids.
pub fn validate(spec: &LinuxSeccomp) -> Result<(), SeccompError> {
    if spec.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::Invalid("SCMP_ACT_NOTIFY cannot be the default action".into()));
    }
    if uses_notify(spec) && spec.listener_path().is_none() {
        return Err(SeccompError::Invalid("SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath".into()));
    }
    for s in spec.syscalls().iter().flatten() {
        if s.action() == LinuxSeccompAction::ScmpActNotify && s.names().iter().any(|n| n == "write") {
            // The runtime writes the notify fd to the agent after loading the filter.
            return Err(SeccompError::Invalid("SCMP_ACT_NOTIFY on write would block the runtime".into()));
        }
    }
    Ok(())
}

/// Builds the filter. Syscall names this libseccomp does not know are skipped,
/// as runc does, so one profile serves several kernels.
pub fn build(spec: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompError> {
    validate(spec)?;
    let default = action(spec.default_action(), spec.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("create filter"))?;
    // libseccomp sets no_new_privs on load by default; the spec leaves that to
    // process.noNewPrivileges.
    ctx.set_ctl_nnp(false).map_err(lib("clear nnp"))?;
    for arch in spec.architectures().iter().flatten() {
        let a: ScmpArch = arch.to_string().parse().map_err(lib(format!("architecture {arch}")))?;
        ctx.add_arch(a).map_err(lib(format!("add architecture {arch}")))?;
    }
    for flag in spec.flags().iter().flatten() {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map_err(lib("flag log"))?,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map_err(lib("flag spec_allow"))?,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true).map_err(lib("flag tsync"))?,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                ctx.set_ctl_waitkill(true).map_err(lib("flag wait_killable_recv"))?
            }
        };
    }
    for rule in spec.syscalls().iter().flatten() {
        add_rule(&mut ctx, rule, default)?;
    }
    Ok(ctx)
}

fn add_rule(ctx: &mut ScmpFilterContext, rule: &LinuxSyscall, default: ScmpAction) -> Result<(), SeccompError> {
    let act = action(rule.action(), rule.errno_ret())?;
    if act == default {
        // libseccomp refuses rules that repeat the default action; they change nothing.
        return Ok(());
    }
    let args = rule.args().clone().unwrap_or_default();
    let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
    indexes.sort();
    indexes.dedup();
    // Conditions on distinct arguments are ANDed in one rule; several conditions
    // on the same argument become separate rules (ORed), as runc does.
    let groups: Vec<Vec<ScmpArgCompare>> = if indexes.len() == args.len() {
        vec![args.iter().map(compare).collect()]
    } else {
        args.iter().map(|a| vec![compare(a)]).collect()
    };
    for name in rule.names() {
        let Ok(sc) = ScmpSyscall::from_name(name) else {
            tracing::debug!(syscall = %name, "seccomp: unknown syscall skipped");
            continue;
        };
        for conds in &groups {
            let r = if conds.is_empty() { ctx.add_rule(act, sc) } else { ctx.add_rule_conditional(act, sc, conds) };
            r.map_err(lib(format!("rule for {name}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_accepts_docker_like_profile() {
        let spec: LinuxSeccomp = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "syscalls":[{"names":["read","write","no_such_syscall"],"action":"SCMP_ACT_ALLOW"},
                {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
                {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        )
        .unwrap();
        build(&spec).unwrap();
    }

    #[test]
    fn action_maps_errno_and_rejects_notify() {
        assert_eq!(action(LinuxSeccompAction::ScmpActErrno, Some(38)).unwrap(), ScmpAction::Errno(38));
        assert_eq!(action(LinuxSeccompAction::ScmpActErrno, None).unwrap(), ScmpAction::Errno(libc::EPERM));
        assert_eq!(action(LinuxSeccompAction::ScmpActNotify, None).unwrap(), ScmpAction::Notify);
    }

    #[test]
    fn build_rejects_unknown_arch() {
        let spec: LinuxSeccomp =
            serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"]}"#).unwrap();
        build(&spec).unwrap();
    }
}
