//! Gatehouse's shared domain types.
//!
//! This crate is deliberately small: the types that every layer of Gatehouse passes
//! around (the gateway, the decision point, the adapters, the CLI) are defined here once,
//! so that no layer keeps its own copy. The first of them is [`TenantId`]: a tenant is
//! never a bare `String`, so that a function that must be scoped to a tenant says so in
//! its signature and cannot be called without one.

pub mod error;
pub mod filter;
pub mod forwarded;
pub mod ids;
pub mod secret_file;
mod tenant;
pub mod time;
pub mod uid;

pub use tenant::{TenantId, TenantIdError};
