//! A container's status (what its shim last reported) and desired state
//! (what the user asked for), as the store keeps them: Docker's words.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("unknown container status {0:?}: rindd knows created, running, paused, restarting, exited and dead")]
    Status(String),
    #[error("unknown desired state {0:?}: rindd knows running and stopped")]
    Desired(String),
}

/// Docker's container states (`State.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Never started, or a start that failed before its first run.
    Created,
    Running,
    Paused,
    /// Exited; the restart policy will start it again after its back-off.
    Restarting,
    Exited,
    /// Its shim was lost: the exit status is unknown.
    Dead,
}

impl Status {
    pub const ALL: [Status; 6] = [Status::Created, Status::Running, Status::Paused, Status::Restarting, Status::Exited, Status::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// A task exists: the shim holds a running or frozen init.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = StateError;

    fn from_str(s: &str) -> Result<Status, StateError> {
        Status::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| StateError::Status(s.to_string()))
    }
}

/// What the user asked for: `start` and `run` make it running; `stop`,
/// `kill` and `rm -f` stopped. The restart policy reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Desired {
    Running,
    Stopped,
}

impl Desired {
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Desired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Desired {
    type Err = StateError;

    fn from_str(s: &str) -> Result<Desired, StateError> {
        match s {
            "running" => Ok(Desired::Running),
            "stopped" => Ok(Desired::Stopped),
            _ => Err(StateError::Desired(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_text() {
        for s in Status::ALL {
            assert_eq!(s.to_string().parse::<Status>(), Ok(s));
        }
        assert_eq!("Running".parse::<Status>(), Err(StateError::Status("Running".into())), "docker's words exactly");
        assert!(Status::Paused.is_live() && !Status::Restarting.is_live());
    }

    #[test]
    fn desired_round_trips_through_its_text() {
        for d in [Desired::Running, Desired::Stopped] {
            assert_eq!(d.to_string().parse::<Desired>(), Ok(d));
        }
        assert!("".parse::<Desired>().unwrap_err().to_string().contains("\"\""));
    }
}
