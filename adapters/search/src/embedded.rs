//! The embedded search engine (tantivy): no server to run, an index per tenant in its own
//! directory, so one tenant's query cannot even open another's documents.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gatehouse_adapter_sql::rows::RowFilter;
use gatehouse_core::TenantId;
use serde_json::json;
use tantivy::aggregation::AggregationCollector;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, Query, QueryParser, RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, TantivyDocument, Value,
};
use tantivy::{DocAddress, Index, IndexReader, Order, ReloadPolicy, Term};

use crate::index::{
    FACET_SIZE, Facets, Found, IndexError, IndexedDocument, SearchIndex, SearchQuery, Sort,
};

/// The memory an index writer may buffer before it writes a segment.
const WRITER_BUDGET_BYTES: usize = 32 * 1024 * 1024;

/// Indexes under one directory, a subdirectory per tenant.
pub struct EmbeddedIndex {
    root: PathBuf,
    fields: Fields,
    writer_budget: usize,
    open: Mutex<HashMap<TenantId, Arc<TenantIndex>>>,
}

struct TenantIndex {
    index: Index,
    reader: IndexReader,
    /// One writer at a time per index (tantivy's lock would refuse a second).
    writing: Mutex<()>,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    name: Field,
    text: Field,
    folders: Field,
    owner: Field,
    tags: Field,
    kind: Field,
    classification: Field,
    created_at: Field,
    updated_at: Field,
}

impl Fields {
    fn schema() -> (Schema, Self) {
        let mut b = Schema::builder();
        let fields = Self {
            id: b.add_text_field("id", STRING | STORED),
            name: b.add_text_field("name", TEXT),
            text: b.add_text_field("text", TEXT),
            folders: b.add_text_field("folders", STRING),
            owner: b.add_text_field("owner", STRING | FAST),
            tags: b.add_text_field("tags", STRING | FAST),
            kind: b.add_text_field("type", STRING | FAST),
            classification: b.add_text_field("classification", STRING),
            created_at: b.add_date_field("created_at", INDEXED | FAST),
            updated_at: b.add_date_field("updated_at", INDEXED | FAST),
        };
        (b.build(), fields)
    }
}

impl EmbeddedIndex {
    /// Indexes kept under `root` (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let (_, fields) = Fields::schema();
        Self {
            root: root.into(),
            fields,
            writer_budget: WRITER_BUDGET_BYTES,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The memory a writer buffers before writing a segment (bulk loads go faster with
    /// more); at least 15 MB.
    #[must_use]
    pub fn with_writer_budget(mut self, bytes: usize) -> Self {
        self.writer_budget = bytes.max(15_000_000);
        self
    }

    fn directory(&self, tenant: &TenantId) -> PathBuf {
        // A TenantId is lowercase letters, digits and '-': a safe directory name.
        self.root.join(tenant.as_str())
    }

    /// `tenant`'s index; `None` when it has none and `create` is false.
    fn tenant(&self, tenant: &TenantId, create: bool) -> tantivy::Result<Option<Arc<TenantIndex>>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = open.get(tenant) {
            return Ok(Some(index.clone()));
        }
        let directory = self.directory(tenant);
        if !create && !directory.join("meta.json").exists() {
            return Ok(None);
        }
        // Indexes hold the documents' text: readable by the owner only.
        gatehouse_core::secret_file::create_private_dir(&directory)?;
        let index = Index::open_or_create(
            tantivy::directory::MmapDirectory::open(&directory)?,
            Fields::schema().0,
        )?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let opened = Arc::new(TenantIndex {
            index,
            reader,
            writing: Mutex::new(()),
        });
        open.insert(tenant.clone(), opened.clone());
        Ok(Some(opened))
    }

    fn write(
        &self,
        tenant: &TenantId,
        change: impl FnOnce(&tantivy::IndexWriter, Fields) -> tantivy::Result<()>,
    ) -> tantivy::Result<()> {
        let Some(index) = self.tenant(tenant, true)? else {
            return Ok(());
        };
        let _one_writer = index.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut writer = index.index.writer_with_num_threads(1, self.writer_budget)?;
        change(&writer, self.fields)?;
        writer.commit()?;
        writer.wait_merging_threads()?;
        index.reader.reload()
    }

    fn upsert_now(
        &self,
        tenant: &TenantId,
        documents: Vec<IndexedDocument>,
    ) -> tantivy::Result<()> {
        self.write(tenant, |writer, f| {
            for document in documents {
                writer.delete_term(Term::from_field_text(f.id, &document.id));
                writer.add_document(f.document(document))?;
            }
            Ok(())
        })
    }

    fn remove_now(&self, tenant: &TenantId, ids: Vec<String>) -> tantivy::Result<()> {
        if self.tenant(tenant, false)?.is_none() {
            return Ok(());
        }
        self.write(tenant, |writer, f| {
            for id in ids {
                writer.delete_term(Term::from_field_text(f.id, &id));
            }
            Ok(())
        })
    }

    fn remove_tenant_now(&self, tenant: &TenantId) -> std::io::Result<()> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(tenant);
        match std::fs::remove_dir_all(self.directory(tenant)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn search_now(&self, tenant: &TenantId, query: &SearchQuery) -> tantivy::Result<Found> {
        let Some(index) = self.tenant(tenant, false)? else {
            return Ok(Found::default());
        };
        let f = self.fields;
        let searcher = index.reader.searcher();
        let matching = f.query(&index.index, query);
        let page = TopDocs::with_limit(query.limit.max(1)).and_offset(query.offset);
        let facets = AggregationCollector::from_aggs(facet_request(), Default::default());
        let newest_first = match query.sort {
            Sort::Relevance if !query.text.trim().is_empty() => None,
            Sort::Oldest => Some(Order::Asc),
            _ => Some(Order::Desc),
        };
        let (addresses, total, counts): (
            Vec<(Option<f32>, DocAddress)>,
            usize,
            AggregationResults,
        ) = match newest_first {
            None => {
                let (top, total, counts) =
                    searcher.search(&matching, &(page.order_by_score(), Count, facets))?;
                (
                    top.into_iter().map(|(s, a)| (Some(s), a)).collect(),
                    total,
                    counts,
                )
            }
            Some(order) => {
                let by_date = page.order_by_fast_field::<tantivy::DateTime>("updated_at", order);
                let (top, total, counts) = searcher.search(&matching, &(by_date, Count, facets))?;
                (
                    top.into_iter().map(|(_, a)| (None, a)).collect(),
                    total,
                    counts,
                )
            }
        };
        let mut hits = Vec::with_capacity(addresses.len());
        for (score, address) in addresses {
            let stored: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = stored.get_first(f.id).and_then(|v| v.as_str()) {
                hits.push((id.to_string(), score));
            }
        }
        Ok(Found {
            hits,
            total: total as u64,
            facets: facets_of(&counts),
        })
    }
}

impl Fields {
    fn document(&self, d: IndexedDocument) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        doc.add_text(self.id, &d.id);
        doc.add_text(self.name, &d.name);
        doc.add_text(self.text, &d.text);
        for folder in &d.folders {
            doc.add_text(self.folders, folder);
        }
        doc.add_text(self.owner, &d.owner);
        for tag in &d.tags {
            doc.add_text(self.tags, tag);
        }
        if let Some(kind) = &d.kind {
            doc.add_text(self.kind, kind);
        }
        doc.add_text(self.classification, &d.classification);
        doc.add_date(self.created_at, date(d.created_at));
        doc.add_date(self.updated_at, date(d.updated_at));
        doc
    }

    fn query(&self, index: &Index, q: &SearchQuery) -> BooleanQuery {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if q.text.trim().is_empty() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        } else {
            let mut parser = QueryParser::for_index(index, vec![self.name, self.text]);
            parser.set_conjunction_by_default();
            parser.set_field_boost(self.name, 2.0);
            // Lenient: whatever a user types is a query, never an error.
            let (words, _) = parser.parse_query_lenient(&q.text);
            clauses.push((Occur::Must, words));
        }
        let term = |field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        let any_of = |field, values: &[String]| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                values
                    .iter()
                    .map(|v| (Occur::Should, term(field, v)))
                    .collect(),
            ))
        };
        if !q.owners.is_empty() {
            clauses.push((Occur::Must, any_of(self.owner, &q.owners)));
        }
        if !q.kinds.is_empty() {
            clauses.push((Occur::Must, any_of(self.kind, &q.kinds)));
        }
        for tag in &q.tags {
            clauses.push((Occur::Must, term(self.tags, tag)));
        }
        if let Some(folder) = &q.folder {
            clauses.push((Occur::Must, term(self.folders, folder)));
        }
        for (field, from, until) in [
            (self.created_at, q.created_from, q.created_until),
            (self.updated_at, q.updated_from, q.updated_until),
        ] {
            if from.is_some() || until.is_some() {
                let bound = |at: Option<DateTime<Utc>>, inclusive: bool| match at {
                    None => Bound::Unbounded,
                    Some(at) => {
                        let term = Term::from_field_date_for_search(field, date(at));
                        if inclusive {
                            Bound::Included(term)
                        } else {
                            Bound::Excluded(term)
                        }
                    }
                };
                clauses.push((
                    Occur::Must,
                    Box::new(RangeQuery::new(bound(from, true), bound(until, false))),
                ));
            }
        }
        clauses.push((Occur::Must, self.access(&q.access)));
        BooleanQuery::new(clauses)
    }

    /// The access filter as a query (see [`crate::index::indexable`]; a term the index
    /// does not hold matches nothing: fail closed).
    fn access(&self, access: &RowFilter) -> Box<dyn Query> {
        let term = |field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        let combined = |occur: Occur, parts: Vec<Box<dyn Query>>| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                parts.into_iter().map(|p| (occur, p)).collect(),
            ))
        };
        match access {
            RowFilter::Always => Box::new(AllQuery),
            RowFilter::All(parts) => {
                combined(Occur::Must, parts.iter().map(|p| self.access(p)).collect())
            }
            RowFilter::Any(parts) => combined(
                Occur::Should,
                parts.iter().map(|p| self.access(p)).collect(),
            ),
            RowFilter::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, self.access(inner)),
            ])),
            RowFilter::Owner(owner) => term(self.owner, owner),
            RowFilter::Classification(c) => term(self.classification, c),
            RowFilter::Ids(ids) => combined(
                Occur::Should,
                ids.iter().map(|id| term(self.id, id)).collect(),
            ),
            RowFilter::Under(subtrees) => combined(
                Occur::Should,
                subtrees
                    .iter()
                    .map(|s| term(self.folders, &s.folder_id))
                    .collect(),
            ),
            RowFilter::Never | RowFilter::LegalHold(_) | RowFilter::Name(_) => Box::new(EmptyQuery),
        }
    }
}

fn date(at: DateTime<Utc>) -> tantivy::DateTime {
    tantivy::DateTime::from_timestamp_micros(at.timestamp_micros())
}

fn facet_request() -> Aggregations {
    let terms = |field: &str| json!({ "terms": { "field": field, "size": FACET_SIZE } });
    serde_json::from_value(json!({
        "owner": terms("owner"),
        "tags": terms("tags"),
        "type": terms("type"),
    }))
    .expect("a fixed, valid aggregation request")
}

fn facets_of(results: &AggregationResults) -> Facets {
    let json = serde_json::to_value(results).unwrap_or_default();
    let counts = |name: &str| {
        json[name]["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| Some((b["key"].as_str()?.to_string(), b["doc_count"].as_u64()?)))
            .collect()
    };
    Facets {
        owner: counts("owner"),
        tags: counts("tags"),
        kind: counts("type"),
    }
}

fn unavailable(e: impl std::fmt::Display) -> IndexError {
    IndexError::Unavailable(e.to_string())
}

/// Runs `work` off the async threads (tantivy blocks on disk).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, IndexError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(unavailable)?
}

#[async_trait]
impl SearchIndex for Arc<EmbeddedIndex> {
    fn engine(&self) -> &'static str {
        "embedded"
    }

    async fn upsert(
        &self,
        tenant: &TenantId,
        documents: Vec<IndexedDocument>,
    ) -> Result<(), IndexError> {
        let (this, tenant) = (self.clone(), tenant.clone());
        blocking(move || this.upsert_now(&tenant, documents).map_err(unavailable)).await
    }

    async fn remove(&self, tenant: &TenantId, ids: Vec<String>) -> Result<(), IndexError> {
        let (this, tenant) = (self.clone(), tenant.clone());
        blocking(move || this.remove_now(&tenant, ids).map_err(unavailable)).await
    }

    async fn search(&self, tenant: &TenantId, query: &SearchQuery) -> Result<Found, IndexError> {
        let (this, tenant, query) = (self.clone(), tenant.clone(), query.clone());
        blocking(move || this.search_now(&tenant, &query).map_err(unavailable)).await
    }

    async fn remove_tenant(&self, tenant: &TenantId) -> Result<(), IndexError> {
        let (this, tenant) = (self.clone(), tenant.clone());
        blocking(move || this.remove_tenant_now(&tenant).map_err(unavailable)).await
    }
}
