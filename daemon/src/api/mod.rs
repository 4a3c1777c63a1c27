//! Transport adapters: the gRPC API over the services. Errors become gRPC
//! statuses in one place.

pub mod rind;
