//! The five capability sets of a process: planned from the spec, applied
//! around the uid switch (bounding and inheritable before, the rest after).

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("set {set} capabilities")]
    Set {
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapPlan {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

fn convert(set: &Option<oci_spec::runtime::Capabilities>, available: &CapsHashSet) -> CapsHashSet {
    set.iter()
        .flatten()
        .filter_map(|c| format!("CAP_{c}").parse::<Capability>().ok())
        // A capability this kernel or our bounding set lacks cannot be granted; runc skips it too.
        .filter(|c| available.contains(c))
        .collect()
}

/// Plans the sets; `available` is what this process could grant (its bounding set).
pub fn plan(caps: Option<&LinuxCapabilities>, available: &CapsHashSet) -> CapPlan {
    let Some(c) = caps else {
        return CapPlan::default();
    };
    let permitted = convert(c.permitted(), available);
    let inheritable = convert(c.inheritable(), available);
    // The kernel raises an ambient capability only if it is permitted and
    // inheritable; runc skips the others with a warning, so do we (silently:
    // the child's stderr belongs to the container).
    let ambient = convert(c.ambient(), available).into_iter().filter(|a| permitted.contains(a) && inheritable.contains(a)).collect();
    CapPlan { bounding: convert(c.bounding(), available), effective: convert(c.effective(), available), permitted, inheritable, ambient }
}

fn set(which: CapSet, name: &'static str, v: &CapsHashSet) -> Result<(), CapsError> {
    caps::set(None, which, v).map_err(|source| CapsError::Set { set: name, source })
}

impl CapPlan {
    /// Before the uid switch: shrink the bounding set and set inheritable.
    pub fn apply_before_user(&self) -> Result<(), CapsError> {
        let current = caps::read(None, CapSet::Bounding).map_err(|source| CapsError::Set { set: "bounding", source })?;
        for c in current.difference(&self.bounding) {
            caps::drop(None, CapSet::Bounding, *c).map_err(|source| CapsError::Set { set: "bounding", source })?;
        }
        set(CapSet::Inheritable, "inheritable", &self.inheritable)
    }

    /// After the uid switch (with keepcaps): permitted, effective, ambient.
    pub fn apply_after_user(&self) -> Result<(), CapsError> {
        set(CapSet::Effective, "effective", &CapsHashSet::new())?;
        set(CapSet::Permitted, "permitted", &self.permitted)?;
        set(CapSet::Effective, "effective", &self.effective)?;
        if !self.ambient.is_empty() {
            set(CapSet::Ambient, "ambient", &self.ambient)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_converts_and_filters_unavailable() {
        let c: LinuxCapabilities =
            serde_json::from_str(r#"{"bounding":["CAP_KILL","CAP_SYS_RESOURCE"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}"#)
                .unwrap();
        let available: CapsHashSet = [Capability::CAP_KILL].into();
        let p = plan(Some(&c), &available);
        assert_eq!(p.bounding, available);
        assert_eq!(p.effective, available);
        assert!(p.inheritable.is_empty());
    }

    #[test]
    fn plan_keeps_ambient_only_if_permitted_and_inheritable() {
        let c: LinuxCapabilities =
            serde_json::from_str(r#"{"permitted":["CAP_KILL","CAP_CHOWN"],"inheritable":["CAP_KILL"],"ambient":["CAP_KILL","CAP_CHOWN"]}"#)
                .unwrap();
        let available: CapsHashSet = [Capability::CAP_KILL, Capability::CAP_CHOWN].into();
        assert_eq!(plan(Some(&c), &available).ambient, [Capability::CAP_KILL].into());
    }

    #[test]
    fn unknown_capability_name_is_a_parse_error() {
        let r: Result<LinuxCapabilities, _> = serde_json::from_str(r#"{"bounding":["CAP_NOT_A_THING"]}"#);
        assert!(r.is_err());
    }
}
