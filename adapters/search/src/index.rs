//! What a search index is to Gatehouse, whatever the engine: documents in, per tenant;
//! ids out, per tenant. The tenant is an argument of every method, typed, so no query can
//! be made without one.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gatehouse_adapter_sql::rows::RowFilter;
use gatehouse_core::TenantId;
use serde::Serialize;

/// A document as the index holds it. The index is a projection of PostgreSQL, which stays
/// the truth: searches return ids, and the rows are read back under row-level security.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexedDocument {
    /// The document's id.
    pub id: String,
    /// Its name (searched, boosted).
    pub name: String,
    /// The text of its current content (searched).
    pub text: String,
    /// Its folder and every folder above it, so "under folder F" is one term.
    pub folders: Vec<String>,
    /// The owner's user id (the author facet).
    pub owner: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The kind of its current content ([`crate::extract::Kind::as_str`]), if it has one.
    pub kind: Option<String>,
    /// Its classification.
    pub classification: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The order of results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Best match first (newest first when there are no words to match).
    #[default]
    Relevance,
    /// Most recently changed first.
    Newest,
    /// Least recently changed first.
    Oldest,
}

/// A search within one tenant.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// The words to find (all of them) in names and texts; empty matches every document.
    pub text: String,
    /// Only documents owned by one of these users.
    pub owners: Vec<String>,
    /// Only documents with all of these tags.
    pub tags: Vec<String>,
    /// Only documents of one of these kinds.
    pub kinds: Vec<String>,
    /// Only documents in this folder or below it.
    pub folder: Option<String>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_until: Option<DateTime<Utc>>,
    /// Changed at or after.
    pub updated_from: Option<DateTime<Utc>>,
    /// Changed before.
    pub updated_until: Option<DateTime<Utc>>,
    /// Which documents the searcher may read (the read policy, compiled and resolved to
    /// documents and folders): applied inside the engine, so totals, facets and pages hold
    /// only readable documents. Must be [`indexable`].
    pub access: RowFilter,
    /// The order.
    pub sort: Sort,
    /// How many matches to skip.
    pub offset: usize,
    /// How many to return (at least 1).
    pub limit: usize,
}

impl Default for SearchQuery {
    fn default() -> Self {
        Self {
            text: String::new(),
            owners: Vec::new(),
            tags: Vec::new(),
            kinds: Vec::new(),
            folder: None,
            created_from: None,
            created_until: None,
            updated_from: None,
            updated_until: None,
            access: RowFilter::Always,
            sort: Sort::default(),
            offset: 0,
            limit: 1,
        }
    }
}

/// Whether an access filter can be applied by the engines: the index holds ids, folders,
/// owners and classifications, not legal holds or exact names.
///
/// # Errors
/// What the index does not hold.
pub fn indexable(access: &RowFilter) -> Result<(), String> {
    match access {
        RowFilter::All(parts) | RowFilter::Any(parts) => parts.iter().try_for_each(indexable),
        RowFilter::Not(inner) => indexable(inner),
        RowFilter::LegalHold(_) => Err("the index holds no legal hold".into()),
        RowFilter::Name(_) => Err("the index holds no exact name".into()),
        RowFilter::Always
        | RowFilter::Never
        | RowFilter::Owner(_)
        | RowFilter::Classification(_)
        | RowFilter::Ids(_)
        | RowFilter::Under(_) => Ok(()),
    }
}

/// Counts of matching documents by value, for each facet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facets {
    /// By owner.
    pub owner: BTreeMap<String, u64>,
    /// By tag.
    pub tags: BTreeMap<String, u64>,
    /// By kind of content.
    #[serde(rename = "type")]
    pub kind: BTreeMap<String, u64>,
}

/// The most values counted per facet.
pub const FACET_SIZE: usize = 20;

/// What a search found: one page of ids, best first, and counts over all matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// The page's document ids, with the match score where the order is by relevance.
    pub hits: Vec<(String, Option<f32>)>,
    /// How many documents match in all (an estimate for Meilisearch).
    pub total: u64,
    /// Counts by facet over all matches.
    pub facets: Facets,
}

/// Why an index could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The engine cannot be reached or failed (retry later; searches answer 503).
    #[error("the search index is unavailable: {0}")]
    Unavailable(String),
}

/// A search engine holding each tenant's documents apart.
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// The engine's name, for logs and metrics.
    fn engine(&self) -> &'static str;

    /// Adds these documents to `tenant`'s, replacing any with the same id.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`].
    async fn upsert(
        &self,
        tenant: &TenantId,
        documents: Vec<IndexedDocument>,
    ) -> Result<(), IndexError>;

    /// Removes these documents from `tenant`'s (ids not there are ignored).
    ///
    /// # Errors
    /// [`IndexError::Unavailable`].
    async fn remove(&self, tenant: &TenantId, ids: Vec<String>) -> Result<(), IndexError>;

    /// Searches `tenant`'s documents.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`].
    async fn search(&self, tenant: &TenantId, query: &SearchQuery) -> Result<Found, IndexError>;

    /// Removes every document of `tenant` (offboarding).
    ///
    /// # Errors
    /// [`IndexError::Unavailable`].
    async fn remove_tenant(&self, tenant: &TenantId) -> Result<(), IndexError>;
}
