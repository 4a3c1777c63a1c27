//! rind's own wire definitions, shared by `rindd` and `rind`.

pub mod v1 {
    tonic::include_proto!("rind.v1");
}

pub const API_VERSION: &str = "1";
