//! Gatehouse's search adapter: documents are indexed from a transactional outbox written
//! by the database itself, their text extracted from their contents, and searched within
//! one tenant, on an embedded engine (an index per tenant, the default) or Meilisearch.

pub mod api;
pub mod embedded;
pub mod extract;
pub mod index;
pub mod meili;
pub mod outbox;
pub mod sandbox;
pub mod shred;

pub use embedded::EmbeddedIndex;
pub use index::{Facets, Found, IndexError, IndexedDocument, SearchIndex, SearchQuery, Sort};
pub use meili::MeiliIndex;
