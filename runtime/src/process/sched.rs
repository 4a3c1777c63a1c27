//! Process attributes set just before the exec: personality, I/O priority and
//! the scheduler (sched_setattr(2)), translated from the spec by pure functions.

use std::io;

use oci_spec::runtime::{IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy, Scheduler};

#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

const PER_LINUX: libc::c_ulong = 0x0000;
const PER_LINUX32: libc::c_ulong = 0x0008;

pub fn personality_value(p: &LinuxPersonality) -> Result<libc::c_ulong, SchedError> {
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(SchedError::Invalid("personality flags are not supported".into()));
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    })
}

/// ioprio_set(2)'s value: class in the top bits, level below.
pub fn ioprio_value(class: IOPriorityClass, level: i64) -> Result<i32, SchedError> {
    if !(0..=7).contains(&level) {
        return Err(SchedError::Invalid(format!("ioPriority.priority {level} is not in 0..7")));
    }
    let c = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    Ok((c << 13) | level as i32)
}

/// struct sched_attr of sched_setattr(2), version 1 (with utilization clamps).
#[repr(C)]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

pub fn sched_attr(s: &Scheduler) -> Result<SchedAttr, SchedError> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => return Err(SchedError::Invalid("SCHED_ISO is not supported by Linux".into())),
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        util_min: 0,
        util_max: 0,
    })
}

/// Applies what the process asks for; each call names what failed.
pub fn apply(process: &oci_spec::runtime::Process, personality: Option<&LinuxPersonality>) -> Result<(), SchedError> {
    let sys = |what: String| move || SchedError::Sys { what, source: io::Error::last_os_error() };
    if let Some(p) = personality {
        let v = personality_value(p)?;
        // SAFETY: personality(2) takes a plain value.
        if unsafe { libc::personality(v) } < 0 {
            return Err(sys(format!("personality {:?}", p.domain()))());
        }
    }
    if let Some(io) = process.io_priority() {
        let v = ioprio_value(io.class(), io.priority())?;
        // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, 0 = self, value).
        if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, v) } < 0 {
            return Err(sys(format!("ioprio_set {:?} {}", io.class(), io.priority()))());
        }
    }
    if let Some(s) = process.scheduler() {
        let attr = sched_attr(s)?;
        // SAFETY: sched_setattr(0 = self, attr, 0) reads attr, sized by attr.size.
        if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } < 0 {
            return Err(sys(format!("sched_setattr {:?}", s.policy()))());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioprio_value_packs_class_and_level() {
        assert_eq!(ioprio_value(IOPriorityClass::IoprioClassBe, 4).unwrap(), (2 << 13) | 4);
        assert!(ioprio_value(IOPriorityClass::IoprioClassIdle, 8).is_err());
    }

    #[test]
    fn sched_attr_from_spec() {
        // oci-spec 0.10 spells this flag SCHED_RESET_ON_FORK (the spec: SCHED_FLAG_RESET_ON_FORK).
        let s: Scheduler = serde_json::from_str(r#"{"policy":"SCHED_BATCH","nice":5,"flags":["SCHED_RESET_ON_FORK"]}"#).unwrap();
        let a = sched_attr(&s).unwrap();
        assert_eq!((a.policy, a.nice, a.flags), (3, 5, 1));
        assert_eq!(a.size, 56);
    }

    #[test]
    fn personality_domains() {
        let p: LinuxPersonality = serde_json::from_str(r#"{"domain":"LINUX32"}"#).unwrap();
        assert_eq!(personality_value(&p).unwrap(), PER_LINUX32);
        let p: LinuxPersonality = serde_json::from_str(r#"{"domain":"LINUX","flags":["X"]}"#).unwrap();
        assert!(personality_value(&p).is_err());
    }
}
