//! `state`: print the OCI state JSON.

use std::path::Path;

use crate::state::{State, StateError, Status};

pub fn state(root: &Path, id: &str) -> Result<serde_json::Value, StateError> {
    match State::load(root, id) {
        Ok(st) => {
            let status = st.status(root);
            Ok(st.oci_json(status))
        }
        // The directory exists but create has not written the state yet.
        Err(StateError::NotFound(_)) if crate::paths::container_dir(root, id).is_dir() => Ok(serde_json::json!({
            "ociVersion": crate::state::OCI_VERSION, "id": id, "status": Status::Creating, "pid": 0, "bundle": "",
        })),
        Err(e) => Err(e),
    }
}
