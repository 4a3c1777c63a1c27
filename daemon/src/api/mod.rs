//! Transport adapters: the gRPC API over the services. Errors become gRPC
//! statuses in one place.

pub mod inspect;
pub mod rind;
pub mod stream;
