//! The PostgreSQL adapter: the document platform's folders, documents, versions, comments
//! and shares, and the agents' memory lanes ([`memory`]), as an HTTP service behind the
//! gateway.
//!
//! Every handler follows the same steps: admit the call (the gateway's signed context,
//! for exactly this action and resource: [`gatehouse_adapter_kit::ContextGuard`]), open a
//! transaction scoped to the context's tenant ([`gatehouse_adapter_sql::TenantTx`]: row-level security shows
//! nothing else), do the work, keep the Cedar entities the gateway decides with in step
//! (same transaction: [`entities`]), commit. Errors are
//! [`AdapterError`](gatehouse_adapter_kit::AdapterError)s.

pub mod api;
mod bulk;
pub mod cedar_entities;
mod comments;
pub mod documents;
mod folders;
mod input;
pub mod listing;
pub mod memory;
pub mod seed;
mod shares;

pub use api::{DocumentsApi, router};
pub use documents::Document;
pub use folders::Folder;
pub use input::Page;
