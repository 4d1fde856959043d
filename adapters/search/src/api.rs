//! The search API, behind the gateway: `GET /search` within the caller's tenant.
//!
//! The searcher's read policy, compiled by the decision point and resolved against the
//! documents' folders and shares, is part of the engine's query: pages, totals and facets
//! hold only documents the searcher may read. The index answers with ids; the documents
//! are then read from PostgreSQL under row-level security (the truth: a document deleted
//! a moment ago is not shown), and checked again with the decision point at the post-check
//! sample rate (every hit when the policies could not be compiled). Hits withheld are
//! counted in the answer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use gatehouse_adapter_kit::{AdapterError, Call, ContextGuard, Decider, FilterEvent};
use gatehouse_adapter_sql::TenantTx;
use gatehouse_adapter_sql::readable::{Filtering, postcheck_reads, read_access};
use gatehouse_adapter_sql::rows::RowFilter;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::extract::Kind;
use crate::index::{Found, SearchIndex, SearchQuery, Sort, indexable};

/// The routes, as (method, path, Cedar action, resource type).
pub const ROUTES: &[(&str, &str, &str, &str)] = &[("GET", "/search", "search:query", "Tenant")];

/// Results per page by default, and at most.
pub const DEFAULT_LIMIT: usize = 20;
/// The most results a page may have.
pub const MAX_LIMIT: usize = 100;
/// The deepest page (deeper paging costs the engine more than it helps anyone).
pub const MAX_OFFSET: usize = 10_000;
const MAX_TEXT_CHARS: usize = 512;

/// The search adapter's state.
pub struct SearchApi {
    pool: PgPool,
    guard: ContextGuard,
    index: Arc<dyn SearchIndex>,
    decider: Arc<dyn Decider>,
}

impl SearchApi {
    /// The API over `pool` (the application role) and `index`, checking hits with
    /// `decider`.
    pub fn new(
        pool: PgPool,
        guard: ContextGuard,
        index: Arc<dyn SearchIndex>,
        decider: Arc<dyn Decider>,
    ) -> Self {
        Self {
            pool,
            guard,
            index,
            decider,
        }
    }
}

/// The adapter's routes.
pub fn router(api: Arc<SearchApi>) -> Router {
    let router = Router::new()
        .route("/search", get(search))
        .fallback(|| async { AdapterError::NotFound("route") });
    gatehouse_adapter_kit::with_json_rejections(router).with_state(api)
}

/// A hit as the database has it now.
#[derive(sqlx::FromRow)]
struct HitRow {
    id: String,
    name: String,
    folder_id: String,
    owner_id: String,
    tags: Vec<String>,
    classification: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    content_type: Option<String>,
    size_bytes: Option<i64>,
}

async fn search(
    State(api): State<Arc<SearchApi>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, AdapterError> {
    let call = api.guard.admit(&headers)?;
    call.expect("search:query", "Tenant", call.tenant().as_str())?;
    let mut query = parse_query(raw.as_deref().unwrap_or_default())?;
    let filtering = match access(&api, &call).await? {
        Some(access) => {
            query.access = access;
            Filtering::Compiled
        }
        None => Filtering::ItemByItem,
    };
    let found = if query.access == RowFilter::Never {
        Found::default()
    } else {
        api.index.search(call.tenant(), &query).await.map_err(|e| {
            tracing::error!(target: "gatehouse::search", tenant = %call.tenant(), error = %e, "search failed");
            AdapterError::Unavailable
        })?
    };
    let ids: Vec<String> = found.hits.iter().map(|(id, _)| id.clone()).collect();
    // Rows deleted since they were indexed are simply not read back (the outbox catches up).
    let mut rows = read_hits(&api.pool, &call, &ids).await?;
    let rank: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let rank_of = |row: &HitRow| rank.get(row.id.as_str()).copied().unwrap_or(usize::MAX);
    rows.sort_by_key(rank_of);
    let row_ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    // Unfiltered hits are always decided; filtered ones at the sample rate, where a deny
    // is a mismatch of the filter.
    let compiled = filtering == Filtering::Compiled;
    let permitted = if !compiled || api.decider.sample_postcheck() {
        postcheck_reads(api.decider.as_ref(), &call, &row_ids, compiled).await?
    } else {
        vec![true; row_ids.len()]
    };
    let mut hits = Vec::new();
    let mut withheld = 0;
    for (row, allowed) in rows.into_iter().zip(permitted) {
        if allowed {
            let score = found.hits.get(rank_of(&row)).and_then(|(_, score)| *score);
            hits.push(hit_json(row, score));
        } else {
            withheld += 1;
        }
    }
    if !compiled {
        // The engine counted and faceted documents the searcher may not read, and the
        // withheld hits are such documents: none of it may be told.
        return Ok(Json(json!({
            "total": null,
            "offset": query.offset,
            "limit": query.limit,
            "hits": hits,
            "filtering": filtering,
        })));
    }
    Ok(Json(json!({
        "total": found.total,
        "offset": query.offset,
        "limit": query.limit,
        "hits": hits,
        "withheld": withheld,
        "facets": found.facets,
        "filtering": filtering,
    })))
}

/// The searcher's read access as a filter the engines apply; `None` when the policies or
/// the index cannot express it (reported): hits are then decided one by one, and the
/// answer has no total or facets (the engine's would count documents the searcher may not
/// read).
async fn access(api: &SearchApi, call: &Call) -> Result<Option<RowFilter>, AdapterError> {
    let mut tx = TenantTx::begin(&api.pool, call.tenant()).await?;
    let Some(access) = read_access(api.decider.as_ref(), call, &mut tx, "search").await? else {
        return Ok(None);
    };
    if let Err(reason) = indexable(&access) {
        let event = FilterEvent::Fallback {
            adapter: "search",
            reason,
        };
        api.decider.report(call, event).await;
        return Ok(None);
    }
    Ok(Some(access))
}

async fn read_hits(
    pool: &PgPool,
    call: &Call,
    ids: &[String],
) -> Result<Vec<HitRow>, AdapterError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let db = |e| AdapterError::from_db(e, "document");
    let mut tx = gatehouse_schemas::tenant_tx(pool, call.tenant())
        .await
        .map_err(db)?;
    sqlx::query_as(
        "SELECT d.id, d.name, d.folder_id, d.owner_id, d.tags, d.classification, d.created_at, d.updated_at, \
                v.content_type, v.size_bytes \
         FROM documents d \
         LEFT JOIN document_versions v ON v.tenant_id = d.tenant_id AND v.document_id = d.id AND v.version = d.current_version \
         WHERE d.tenant_id = $1 AND d.id = ANY($2)",
    )
    .bind(call.tenant().as_str())
    .bind(ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)
}

fn hit_json(row: HitRow, score: Option<f32>) -> Value {
    let kind = row
        .content_type
        .as_deref()
        .and_then(Kind::of)
        .map(Kind::as_str);
    json!({
        "id": row.id,
        "name": row.name,
        "folder_id": row.folder_id,
        "owner_id": row.owner_id,
        "tags": row.tags,
        "classification": row.classification,
        "type": kind,
        "content_type": row.content_type,
        "size_bytes": row.size_bytes,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "score": score,
    })
}

/// The query string: `q`, repeated `owner`, `tag` and `type`, `folder`,
/// `created_from`/`created_until`/`updated_from`/`updated_until` (RFC 3339), `sort`
/// (`relevance`, `newest`, `oldest`), `limit`, `offset`. Anything else is refused, so a
/// misspelt filter never silently widens a search.
///
/// # Errors
/// [`AdapterError::InvalidInput`] naming the parameter.
pub fn parse_query(raw: &str) -> Result<SearchQuery, AdapterError> {
    let invalid = |name: &str, why: &str| AdapterError::InvalidInput(format!("{name}: {why}"));
    let mut query = SearchQuery {
        limit: DEFAULT_LIMIT,
        ..SearchQuery::default()
    };
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        let value = value.into_owned();
        let date = |value: &str| {
            DateTime::parse_from_rfc3339(value)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| invalid(&name, "expected an RFC 3339 date-time"))
        };
        match name.as_ref() {
            "q" if value.chars().count() <= MAX_TEXT_CHARS => query.text = value,
            "q" => return Err(invalid("q", "longer than 512 characters")),
            "owner" => query.owners.push(value),
            "tag" => query.tags.push(value),
            "type" if Kind::ALL.iter().any(|k| k.as_str() == value) => query.kinds.push(value),
            "type" => return Err(invalid("type", "one of text, markdown, html, pdf, docx")),
            "folder" => query.folder = Some(value),
            "created_from" => query.created_from = Some(date(&value)?),
            "created_until" => query.created_until = Some(date(&value)?),
            "updated_from" => query.updated_from = Some(date(&value)?),
            "updated_until" => query.updated_until = Some(date(&value)?),
            "sort" => {
                query.sort = match value.as_str() {
                    "relevance" => Sort::Relevance,
                    "newest" => Sort::Newest,
                    "oldest" => Sort::Oldest,
                    _ => return Err(invalid("sort", "one of relevance, newest, oldest")),
                }
            }
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| invalid("limit", "a number from 1 to 100"))?;
            }
            "offset" => {
                query.offset = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= MAX_OFFSET)
                    .ok_or_else(|| invalid("offset", "a number from 0 to 10000"))?;
            }
            other => return Err(invalid(other, "unknown parameter")),
        }
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_filters_and_dates() {
        let q = parse_query("q=annual+report&tag=a&tag=b&owner=u1&type=pdf&folder=f1&created_from=2026-01-01T00:00:00Z&sort=newest&limit=5&offset=10").unwrap();
        assert_eq!(q.text, "annual report");
        assert_eq!(q.tags, ["a", "b"]);
        assert_eq!(q.owners, ["u1"]);
        assert_eq!(q.kinds, ["pdf"]);
        assert_eq!(q.folder.as_deref(), Some("f1"));
        assert_eq!(
            q.created_from.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        assert_eq!((q.sort, q.limit, q.offset), (Sort::Newest, 5, 10));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for bad in [
            "tags=x",
            "type=exe",
            "limit=0",
            "limit=101",
            "offset=10001",
            "sort=random",
            "created_from=yesterday",
        ] {
            let error = parse_query(bad).unwrap_err();
            assert!(matches!(error, AdapterError::InvalidInput(_)), "{bad}");
        }
        assert!(parse_query(&format!("q={}", "x".repeat(513))).is_err());
    }
}
