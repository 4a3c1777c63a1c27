//! The lifecycle of one process, the init or an exec, as a pure transition
//! function: every verb from every state is either the next state or a
//! refusal naming the state (containerd's runc shim keeps the same table in
//! `init_state.go` and `exec_state.go`).
//!
//! ```text
//!   created ──start──► running ◄──resume── paused      pause/resume: the init only
//!      │                  │ └────pause─────►  │
//!      │ exit             │ exit              │ exit
//!      ├────────────────► stopped ◄───────────┘
//!      │ delete           │ delete
//!      └────────────────► deleted               every verb here is NOT_FOUND
//! ```

use std::fmt;

/// The init (the container) or one of its exec processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    Exec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The runtime created it (the init waits in the runtime's init; an
    /// exec is only registered): nothing of the user's code runs yet.
    Created,
    Running,
    /// The init's cgroup is frozen.
    Paused,
    /// The reaper saw it exit and its exit is recorded.
    Stopped,
    /// Gone: the verb that got here held the lock, the next one finds this.
    Deleted,
}

/// What can be asked of a process. `Exit` is the reaper's, not a client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Pause,
    Resume,
    Kill,
    Update,
    /// Register an exec process in the init's container.
    Exec,
    Delete,
    Exit,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Stopped => "stopped",
            State::Deleted => "deleted",
        })
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Start => "start",
            Verb::Pause => "pause",
            Verb::Resume => "resume",
            Verb::Kill => "kill",
            Verb::Update => "update",
            Verb::Exec => "exec in",
            Verb::Delete => "delete",
            Verb::Exit => "record the exit of",
        })
    }
}

/// Why a verb does not apply; the caller adds which process it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `verb` does not apply to a process in `state`.
    InState { verb: Verb, state: State },
    /// Pause, resume, update and exec apply to the init (the container) only.
    InitOnly { verb: Verb },
}

impl Refusal {
    /// A deleted process is gone, and signalling a stopped one finds no
    /// process: containerd's clients take both as NOT_FOUND (a Kill that
    /// finds nothing means "already stopped" to them).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Refusal::InState { state: State::Deleted, .. } | Refusal::InState { verb: Verb::Kill, state: State::Stopped })
    }
}

/// The state `verb` leads to from `state`, or why it is refused.
pub fn next(kind: Kind, state: State, verb: Verb) -> Result<State, Refusal> {
    use State::*;
    use Verb::*;
    match (kind, verb, state) {
        (Kind::Exec, Pause | Resume | Update | Exec, _) => Err(Refusal::InitOnly { verb }),
        (_, Start, Created) => Ok(Running),
        (Kind::Init, Pause, Running) => Ok(Paused),
        (Kind::Init, Resume, Paused) => Ok(Running),
        // A created init is the runtime's init process, which a signal reaches;
        // a created exec has no process yet.
        (Kind::Init, Kill, Created) => Ok(Created),
        (_, Kill, Running | Paused) => Ok(state),
        (Kind::Init, Update, Created | Running | Paused) => Ok(state),
        // runc refuses to exec in a paused or stopped container; say so before starting one.
        (Kind::Init, Exec, Created | Running) => Ok(state),
        (_, Delete, Created | Stopped) => Ok(Deleted),
        (_, Exit, Created | Running | Paused) => Ok(Stopped),
        _ => Err(Refusal::InState { verb, state }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATES: [State; 5] = [State::Created, State::Running, State::Paused, State::Stopped, State::Deleted];
    const VERBS: [Verb; 8] = [Verb::Start, Verb::Pause, Verb::Resume, Verb::Kill, Verb::Update, Verb::Exec, Verb::Delete, Verb::Exit];

    /// Every verb from every state, written out as a table rather than
    /// derived from `next`: "=" stays, a state name moves there, "x" is
    /// refused, "404" is refused as NOT_FOUND, "init" is for the init only.
    #[test]
    fn next_matches_the_table_for_every_verb_and_state() {
        // columns: created running paused stopped deleted
        let init: [(Verb, [&str; 5]); 8] = [
            (Verb::Start, ["running", "x", "x", "x", "404"]),
            (Verb::Pause, ["x", "paused", "x", "x", "404"]),
            (Verb::Resume, ["x", "x", "running", "x", "404"]),
            (Verb::Kill, ["=", "=", "=", "404", "404"]),
            (Verb::Update, ["=", "=", "=", "x", "404"]),
            (Verb::Exec, ["=", "=", "x", "x", "404"]),
            (Verb::Delete, ["deleted", "x", "x", "deleted", "404"]),
            (Verb::Exit, ["stopped", "stopped", "stopped", "x", "404"]),
        ];
        let exec: [(Verb, [&str; 5]); 8] = [
            (Verb::Start, ["running", "x", "x", "x", "404"]),
            (Verb::Pause, ["init"; 5]),
            (Verb::Resume, ["init"; 5]),
            (Verb::Kill, ["x", "=", "=", "404", "404"]),
            (Verb::Update, ["init"; 5]),
            (Verb::Exec, ["init"; 5]),
            (Verb::Delete, ["deleted", "x", "x", "deleted", "404"]),
            (Verb::Exit, ["stopped", "stopped", "stopped", "x", "404"]),
        ];
        for (kind, table) in [(Kind::Init, init), (Kind::Exec, exec)] {
            assert_eq!(table.map(|(v, _)| v), VERBS, "the table covers every verb");
            for (verb, row) in table {
                for (state, want) in STATES.into_iter().zip(row) {
                    let got = next(kind, state, verb);
                    let ok = match want {
                        "=" => got == Ok(state),
                        "x" => got.is_err_and(|r| r == Refusal::InState { verb, state } && !r.is_not_found()),
                        "404" => got.is_err_and(|r| r == Refusal::InState { verb, state } && r.is_not_found()),
                        "init" => got == Err(Refusal::InitOnly { verb }),
                        name => got.is_ok_and(|s| s.to_string() == name),
                    };
                    assert!(ok, "{kind:?} {verb:?} from {state:?}: want {want}, got {got:?}");
                }
            }
        }
    }

    #[test]
    fn display_reads_as_a_sentence() {
        assert_eq!(format!("cannot {} x: it is {}", Verb::Exec, State::Paused), "cannot exec in x: it is paused");
    }
}
