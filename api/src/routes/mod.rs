//! Route modules. Every route is registered in `crate::router`, so the OpenAPI
//! document is generated from the same list the server uses.

pub mod system;
