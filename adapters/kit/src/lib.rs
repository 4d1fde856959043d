//! What every Gatehouse adapter service shares.
//!
//! The gateway decides; an adapter owns data and isolates tenants again, on its own
//! ([`ContextGuard`]): every call must carry the gateway's signed context, unexpired,
//! never seen before, and for exactly the action and resource the adapter is about to
//! touch; the context's tenant is the only tenant the call's queries can see. Every
//! failure is an [`AdapterError`]: a JSON body with a stable code, never SQL, bucket
//! names or another tenant's identifiers.

mod context;
mod decider;
mod error;
mod rejections;
pub mod serve;

pub use context::{Call, ContextGuard};
pub use decider::{Decider, FilterEvent};
pub use error::AdapterError;
pub use rejections::with_json_rejections;
