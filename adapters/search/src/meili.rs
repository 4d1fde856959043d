//! Meilisearch as the search engine: one index for every tenant, each document carrying
//! its tenant, and every query, delete and facet count filtered by it. The filter is built
//! here from a [`TenantId`] for each call: no method takes a query without one.
//!
//! The index's settings (filterable, sortable and searchable attributes) are set on first
//! use. Writes wait for Meilisearch to finish the task, so the outbox deletes a job only
//! once its change is searchable.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use gatehouse_adapter_sql::rows::RowFilter;
use gatehouse_core::TenantId;
use meilisearch_sdk::client::Client;
use meilisearch_sdk::documents::DocumentDeletionQuery;
use meilisearch_sdk::errors::{Error, ErrorCode};
use meilisearch_sdk::indexes::Index;
use meilisearch_sdk::search::{SearchResults, Selectors};
use meilisearch_sdk::task_info::TaskInfo;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::index::{
    FACET_SIZE, Facets, Found, IndexError, IndexedDocument, SearchIndex, SearchQuery, Sort,
};

const TASK_POLL: Duration = Duration::from_millis(50);
const TASK_TIMEOUT: Duration = Duration::from_secs(60);
const FILTERABLE: &[&str] = &[
    "tenant",
    "id",
    "folders",
    "owner",
    "classification",
    "tags",
    "type",
    "created_at",
    "updated_at",
];

/// A Meilisearch index shared by the tenants.
pub struct MeiliIndex {
    client: Client,
    uid: String,
    ready: OnceCell<()>,
}

/// A document as Meilisearch stores it.
#[derive(Serialize)]
struct MeiliDocument {
    /// `<tenant>_<id in URL-safe base64>`: unique across tenants, in Meilisearch's id
    /// alphabet whatever the document id is.
    key: String,
    tenant: String,
    id: String,
    name: String,
    text: String,
    folders: Vec<String>,
    owner: String,
    tags: Vec<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    classification: String,
    created_at: i64,
    updated_at: i64,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

impl MeiliIndex {
    /// The index `uid` on the Meilisearch at `url`.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] for a URL the client refuses.
    pub fn new(url: &str, api_key: Option<&str>, uid: &str) -> Result<Self, IndexError> {
        Ok(Self {
            client: Client::new(url, api_key).map_err(unavailable)?,
            uid: uid.to_string(),
            ready: OnceCell::new(),
        })
    }

    async fn index(&self) -> Result<Index, IndexError> {
        self.ready.get_or_try_init(|| self.set_up()).await?;
        Ok(self.client.index(&self.uid))
    }

    async fn set_up(&self) -> Result<(), IndexError> {
        match self.client.create_index(&self.uid, Some("key")).await {
            Ok(task) => {
                // An index that already exists is what we wanted.
                let task = task
                    .wait_for_completion(&self.client, Some(TASK_POLL), Some(TASK_TIMEOUT))
                    .await
                    .map_err(unavailable)?;
                if task.is_failure() {
                    let error = task.unwrap_failure();
                    if error.error_code != ErrorCode::IndexAlreadyExists {
                        return Err(unavailable(error));
                    }
                }
            }
            Err(e) => return Err(unavailable(e)),
        }
        let index = self.client.index(&self.uid);
        self.finish(index.set_filterable_attributes(FILTERABLE).await)
            .await?;
        self.finish(index.set_sortable_attributes(["updated_at"]).await)
            .await?;
        self.finish(index.set_searchable_attributes(["name", "text"]).await)
            .await
    }

    /// Waits for a task; its failure is an error.
    async fn finish(&self, task: Result<TaskInfo, Error>) -> Result<(), IndexError> {
        let task = task
            .map_err(unavailable)?
            .wait_for_completion(&self.client, Some(TASK_POLL), Some(TASK_TIMEOUT))
            .await
            .map_err(unavailable)?;
        if task.is_failure() {
            return Err(unavailable(task.unwrap_failure()));
        }
        Ok(())
    }
}

/// A string value in a filter expression, quoted and escaped.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn tenant_filter(tenant: &TenantId) -> String {
    format!("tenant = {}", quoted(tenant.as_str()))
}

fn any_of(attribute: &str, values: &[String]) -> String {
    let values: Vec<String> = values.iter().map(|v| quoted(v)).collect();
    format!("{attribute} IN [{}]", values.join(", "))
}

/// The filter of a query: the tenant first, then every filter asked for.
fn filter(tenant: &TenantId, q: &SearchQuery) -> String {
    let mut clauses = vec![tenant_filter(tenant)];
    if !q.owners.is_empty() {
        clauses.push(any_of("owner", &q.owners));
    }
    if !q.kinds.is_empty() {
        clauses.push(any_of("type", &q.kinds));
    }
    for tag in &q.tags {
        clauses.push(format!("tags = {}", quoted(tag)));
    }
    if let Some(folder) = &q.folder {
        clauses.push(format!("folders = {}", quoted(folder)));
    }
    let ranges = [
        ("created_at", ">=", q.created_from),
        ("created_at", "<", q.created_until),
        ("updated_at", ">=", q.updated_from),
        ("updated_at", "<", q.updated_until),
    ];
    for (attribute, operator, at) in ranges {
        if let Some(at) = at {
            clauses.push(format!("{attribute} {operator} {}", at.timestamp_micros()));
        }
    }
    if q.access != RowFilter::Always {
        clauses.push(access_filter(&q.access));
    }
    clauses.join(" AND ")
}

/// The access filter as a filter expression (see [`crate::index::indexable`]; a term the
/// index does not hold matches nothing: fail closed).
fn access_filter(access: &RowFilter) -> String {
    let joined = |parts: &[RowFilter], op: &str| {
        let parts: Vec<String> = parts.iter().map(access_filter).collect();
        format!("({})", parts.join(op))
    };
    match access {
        RowFilter::Always => "tenant EXISTS".into(),
        RowFilter::All(parts) => joined(parts, " AND "),
        RowFilter::Any(parts) => joined(parts, " OR "),
        RowFilter::Not(inner) => format!("NOT ({})", access_filter(inner)),
        RowFilter::Owner(owner) => format!("owner = {}", quoted(owner)),
        RowFilter::Classification(c) => format!("classification = {}", quoted(c)),
        RowFilter::Ids(ids) => any_of("id", ids),
        RowFilter::Under(subtrees) => {
            let folders: Vec<String> = subtrees.iter().map(|s| s.folder_id.clone()).collect();
            any_of("folders", &folders)
        }
        RowFilter::Never | RowFilter::LegalHold(_) | RowFilter::Name(_) => {
            "NOT tenant EXISTS".into()
        }
    }
}

fn top_counts(
    counts: Option<&std::collections::HashMap<String, usize>>,
) -> std::collections::BTreeMap<String, u64> {
    let mut counts: Vec<(String, u64)> = counts
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), *v as u64))
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.into_iter().take(FACET_SIZE).collect()
}

fn unavailable(e: impl std::fmt::Display) -> IndexError {
    IndexError::Unavailable(e.to_string())
}

#[async_trait]
impl SearchIndex for MeiliIndex {
    fn engine(&self) -> &'static str {
        "meilisearch"
    }

    async fn upsert(
        &self,
        tenant: &TenantId,
        documents: Vec<IndexedDocument>,
    ) -> Result<(), IndexError> {
        let documents: Vec<MeiliDocument> = documents
            .into_iter()
            .map(|d| MeiliDocument {
                key: format!(
                    "{}_{}",
                    tenant.as_str(),
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.id)
                ),
                tenant: tenant.as_str().to_string(),
                id: d.id,
                name: d.name,
                text: d.text,
                folders: d.folders,
                owner: d.owner,
                tags: d.tags,
                kind: d.kind,
                classification: d.classification,
                created_at: d.created_at.timestamp_micros(),
                updated_at: d.updated_at.timestamp_micros(),
            })
            .collect();
        let index = self.index().await?;
        self.finish(index.add_or_replace(&documents, Some("key")).await)
            .await
    }

    async fn remove(&self, tenant: &TenantId, ids: Vec<String>) -> Result<(), IndexError> {
        let index = self.index().await?;
        let expression = format!("{} AND {}", tenant_filter(tenant), any_of("id", &ids));
        let mut deletion = DocumentDeletionQuery::new(&index);
        deletion.with_filter(&expression);
        self.finish(index.delete_documents_with(&deletion).await)
            .await
    }

    async fn search(&self, tenant: &TenantId, q: &SearchQuery) -> Result<Found, IndexError> {
        let index = self.index().await?;
        let expression = filter(tenant, q);
        let by_relevance = q.sort == Sort::Relevance && !q.text.trim().is_empty();
        let sort: &[&str] = match q.sort {
            Sort::Oldest => &["updated_at:asc"],
            _ => &["updated_at:desc"],
        };
        let mut search = index.search();
        search
            .with_query(&q.text)
            .with_filter(&expression)
            .with_facets(Selectors::Some(&["owner", "tags", "type"]))
            .with_attributes_to_retrieve(Selectors::Some(&["id"]))
            .with_offset(q.offset)
            .with_limit(q.limit.max(1))
            .with_show_ranking_score(by_relevance);
        if !by_relevance {
            search.with_sort(sort);
        }
        let results: SearchResults<IdOnly> = search.execute().await.map_err(unavailable)?;
        let facets = results.facet_distribution.as_ref();
        Ok(Found {
            total: results
                .estimated_total_hits
                .or(results.total_hits)
                .unwrap_or(0) as u64,
            facets: Facets {
                owner: top_counts(facets.and_then(|f| f.get("owner"))),
                tags: top_counts(facets.and_then(|f| f.get("tags"))),
                kind: top_counts(facets.and_then(|f| f.get("type"))),
            },
            hits: results
                .hits
                .into_iter()
                .map(|hit| (hit.result.id, hit.ranking_score.map(|s| s as f32)))
                .collect(),
        })
    }

    async fn remove_tenant(&self, tenant: &TenantId) -> Result<(), IndexError> {
        let index = self.index().await?;
        let expression = tenant_filter(tenant);
        let mut deletion = DocumentDeletionQuery::new(&index);
        deletion.with_filter(&expression);
        self.finish(index.delete_documents_with(&deletion).await)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_starts_with_the_tenant_and_quotes_values() {
        let tenant = TenantId::parse("acme").unwrap();
        let q = SearchQuery {
            owners: vec!["u\"1".into()],
            tags: vec!["a\\b".into()],
            folder: Some("f1".into()),
            ..SearchQuery::default()
        };
        assert_eq!(
            filter(&tenant, &q),
            r#"tenant = "acme" AND owner IN ["u\"1"] AND tags = "a\\b" AND folders = "f1""#
        );
    }
}
