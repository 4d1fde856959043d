//! The outbox worker: makes the search index and the object store follow the documents.
//!
//! Triggers in PostgreSQL (migration 0006) write a job in the same transaction as every
//! change to a document, and notify `gatehouse_outbox` with the tenant on commit. The
//! worker drains one tenant at a time inside that tenant's transaction (row-level security
//! as for any request), holding a per-tenant advisory lock so that two workers never apply
//! one tenant's changes out of order. A job is deleted only once its effect is done; a
//! failed batch is kept and retried with backoff, so a crash anywhere loses nothing.
//! Notifications only wake the worker early: a sweep over every tenant at start and then
//! periodically finds whatever a missed notification left.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use gatehouse_adapter_blobs::{BlobError, BlobStore, KeyError, KeyRing, StoreError, sealed};
use gatehouse_core::TenantId;
use sqlx::{PgPool, Postgres, Transaction};

use crate::extract::{self, ExtractError, Kind};
use crate::index::{IndexError, IndexedDocument, SearchIndex};
use crate::sandbox::Sandbox;

/// The channel the triggers notify.
pub const CHANNEL: &str = "gatehouse_outbox";
/// Jobs taken in one transaction.
const BATCH: i64 = 200;

/// Where the worker reads contents from, and what extracts their text.
#[derive(Clone)]
pub struct Contents {
    /// The tenant keys.
    pub keys: KeyRing,
    /// The object store.
    pub store: BlobStore,
    /// Extracts text in bounded child processes.
    pub extractor: Sandbox,
}

/// How many times extracting one content may be started before it is quarantined (a
/// start that never finished is a crash of the whole worker).
pub const MAX_EXTRACTION_ATTEMPTS: i32 = 3;

/// Why a batch of jobs could not be done (it is kept and retried).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The object store failed, or is not configured while objects must be deleted.
    #[error("object store: {0}")]
    Store(String),
    /// No extractor could be started (not the document's fault: retried).
    #[error("extractor: {0}")]
    Extractor(String),
}

/// Asks for every document of `tenant` to be indexed again (after switching engines, or
/// losing an index): one job each, in the tenant's transaction, and a notification so a
/// running worker starts at once. The number of documents queued.
///
/// # Errors
/// The database error.
pub async fn request_reindex(pool: &PgPool, tenant: &TenantId) -> Result<u64, sqlx::Error> {
    let mut tx = gatehouse_schemas::tenant_tx(pool, tenant).await?;
    let queued = sqlx::query(
        "INSERT INTO outbox (tenant_id, kind, document_id) \
         SELECT tenant_id, 'index', id FROM documents WHERE tenant_id = $1",
    )
    .bind(tenant.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(queued)
}

/// Drains the outbox into the index and the object store.
pub struct Worker {
    pool: PgPool,
    index: Arc<dyn SearchIndex>,
    contents: Option<Contents>,
}

#[derive(sqlx::FromRow)]
struct Job {
    id: i64,
    kind: String,
    document_id: String,
    object_key: Option<String>,
}

/// A document's row with its current content and the text already extracted from it.
#[derive(sqlx::FromRow)]
struct DocumentRow {
    id: String,
    name: String,
    path: String,
    owner_id: String,
    tags: Vec<String>,
    classification: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    content_type: Option<String>,
    size_bytes: Option<i64>,
    sha256: Option<String>,
    object_key: Option<String>,
    text_sha256: Option<String>,
    text: Option<String>,
    text_status: Option<String>,
    text_attempts: Option<i32>,
}

impl Worker {
    /// A worker over `pool` (the application role) into `index`, extracting text from
    /// `contents` when there is a store (without one, documents are indexed by metadata).
    pub fn new(pool: PgPool, index: Arc<dyn SearchIndex>, contents: Option<Contents>) -> Self {
        Self {
            pool,
            index,
            contents,
        }
    }

    /// Runs until `stop` resolves: woken by notifications, sweeping every tenant at start
    /// and every `sweep_every`.
    pub async fn run(self, sweep_every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut listener = match sqlx::postgres::PgListener::connect_with(&self.pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => Some(listener),
                Err(e) => {
                    tracing::warn!(target: "gatehouse::search", error = %e, "cannot listen for outbox notifications; sweeping only");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(target: "gatehouse::search", error = %e, "cannot listen for outbox notifications; sweeping only");
                None
            }
        };
        let mut sweep = tokio::time::interval(sweep_every);
        loop {
            let notified = async {
                match listener.as_mut() {
                    Some(listener) => listener.recv().await.ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut stop => return,
                _ = sweep.tick() => self.sweep().await,
                notification = notified => {
                    if let Some(tenant) = notification.and_then(|n| TenantId::parse(n.payload()).ok()) {
                        self.drain_logged(&tenant).await;
                    }
                }
            }
        }
    }

    /// Drains every tenant's due jobs.
    pub async fn sweep(&self) {
        let tenants: Vec<String> = match sqlx::query_scalar(
            "SELECT tenant_id FROM tenants ORDER BY tenant_id",
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(tenants) => tenants,
            Err(e) => {
                tracing::warn!(target: "gatehouse::search", error = %e, "outbox sweep cannot list tenants");
                return;
            }
        };
        for tenant in tenants.iter().filter_map(|t| TenantId::parse(t).ok()) {
            self.drain_logged(&tenant).await;
        }
    }

    async fn drain_logged(&self, tenant: &TenantId) {
        match self.drain(tenant).await {
            Ok(0) => {}
            Ok(done) => {
                tracing::info!(target: "gatehouse::search", tenant = %tenant, jobs = done, engine = self.index.engine(), "outbox drained")
            }
            Err(e) => {
                tracing::warn!(target: "gatehouse::search", tenant = %tenant, error = %e, "outbox jobs kept for a retry")
            }
        }
    }

    /// Does `tenant`'s due jobs, a batch per transaction, until none is left; the number
    /// done. Another worker draining the tenant makes this return 0 at once.
    ///
    /// # Errors
    /// The first batch that failed (it is kept, with its attempt counted and a backoff).
    pub async fn drain(&self, tenant: &TenantId) -> Result<usize, WorkerError> {
        let mut done = 0;
        loop {
            let mut tx = gatehouse_schemas::tenant_tx(&self.pool, tenant).await?;
            let ours: bool = sqlx::query_scalar(
                "SELECT pg_try_advisory_xact_lock(hashtextextended('gatehouse_outbox:' || $1, 0))",
            )
            .bind(tenant.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if !ours {
                return Ok(done);
            }
            let jobs: Vec<Job> = sqlx::query_as(
                "SELECT id, kind, document_id, object_key FROM outbox \
                 WHERE tenant_id = $1 AND not_before <= now() ORDER BY id LIMIT $2",
            )
            .bind(tenant.as_str())
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
            if jobs.is_empty() {
                return Ok(done);
            }
            let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
            match self.apply(&mut tx, tenant, &jobs).await {
                Ok(()) => {
                    sqlx::query("DELETE FROM outbox WHERE tenant_id = $1 AND id = ANY($2)")
                        .bind(tenant.as_str())
                        .bind(&ids)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    done += jobs.len();
                }
                Err(e) => {
                    drop(tx);
                    self.postpone(tenant, &ids, &e).await?;
                    return Err(e);
                }
            }
        }
    }

    /// Counts a failed attempt and waits 2^attempts seconds (at most an hour) before the
    /// next.
    async fn postpone(
        &self,
        tenant: &TenantId,
        ids: &[i64],
        error: &WorkerError,
    ) -> Result<(), sqlx::Error> {
        let mut tx = gatehouse_schemas::tenant_tx(&self.pool, tenant).await?;
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $3, \
             not_before = now() + least(interval '1 second' * power(2, attempts), interval '1 hour') \
             WHERE tenant_id = $1 AND id = ANY($2)",
        )
        .bind(tenant.as_str())
        .bind(ids)
        .bind(error.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        tenant: &TenantId,
        jobs: &[Job],
    ) -> Result<(), WorkerError> {
        let to_index: BTreeSet<&str> = jobs
            .iter()
            .filter(|j| j.kind == "index")
            .map(|j| j.document_id.as_str())
            .collect();
        if !to_index.is_empty() {
            self.index_documents(tx, tenant, to_index.into_iter().collect())
                .await?;
        }
        let objects: BTreeSet<&str> = jobs
            .iter()
            .filter(|j| j.kind == "blob_delete")
            .filter_map(|j| j.object_key.as_deref())
            .collect();
        for object in objects {
            self.delete_object(tx, tenant, object).await?;
        }
        Ok(())
    }

    /// Indexes the documents that exist, as they are now, and removes the others.
    async fn index_documents(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        tenant: &TenantId,
        ids: Vec<&str>,
    ) -> Result<(), WorkerError> {
        let rows: Vec<DocumentRow> = sqlx::query_as(
            "SELECT d.id, d.name, d.path, d.owner_id, d.tags, d.classification, d.created_at, d.updated_at, \
                    v.content_type, v.size_bytes, v.sha256, v.object_key, t.sha256 AS text_sha256, t.text, \
                    t.status AS text_status, t.attempts AS text_attempts \
             FROM documents d \
             LEFT JOIN document_versions v ON v.tenant_id = d.tenant_id AND v.document_id = d.id AND v.version = d.current_version \
             LEFT JOIN document_texts t ON t.tenant_id = d.tenant_id AND t.document_id = d.id \
             WHERE d.tenant_id = $1 AND d.id = ANY($2)",
        )
        .bind(tenant.as_str())
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        let present: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let gone: Vec<String> = ids
            .iter()
            .filter(|id| !present.contains(*id))
            .map(|id| id.to_string())
            .collect();
        let mut documents = Vec::with_capacity(rows.len());
        for row in rows {
            let text = self.current_text(tx, tenant, &row).await?;
            documents.push(IndexedDocument {
                folders: row
                    .path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                kind: row
                    .content_type
                    .as_deref()
                    .and_then(Kind::of)
                    .map(|k| k.as_str().to_string()),
                id: row.id,
                name: row.name,
                text,
                owner: row.owner_id,
                tags: row.tags,
                classification: row.classification,
                created_at: row.created_at,
                updated_at: row.updated_at,
            });
        }
        if !documents.is_empty() {
            self.index.upsert(tenant, documents).await?;
        }
        if !gone.is_empty() {
            self.index.remove(tenant, gone).await?;
        }
        Ok(())
    }

    /// The text of the document's current content: kept from an earlier extraction of the
    /// same content, or extracted now and kept. A content whose extraction fails, goes past
    /// its limits or was started [`MAX_EXTRACTION_ATTEMPTS`] times without finishing is
    /// indexed by its metadata alone, and never extracted again.
    async fn current_text(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        tenant: &TenantId,
        row: &DocumentRow,
    ) -> Result<String, WorkerError> {
        let (Some(sha256), Some(object)) = (&row.sha256, &row.object_key) else {
            return Ok(String::new());
        };
        let same_content = row.text_sha256.as_ref() == Some(sha256);
        let unfinished = same_content && row.text_status.as_deref() == Some("started");
        if same_content && !unfinished {
            return Ok(row.text.clone().unwrap_or_default());
        }
        let Some(contents) = &self.contents else {
            return Ok(String::new());
        };
        let attempts = if unfinished {
            row.text_attempts.unwrap_or(0) + 1
        } else {
            1
        };
        let size = u64::try_from(row.size_bytes.unwrap_or(0)).unwrap_or(0);
        let content_type = row.content_type.clone().unwrap_or_default();
        let outcome = if attempts > MAX_EXTRACTION_ATTEMPTS {
            tracing::error!(target: "gatehouse::search", tenant = %tenant, document = row.id, attempts = attempts - 1, "extraction never finished: quarantined, indexed by metadata");
            Extraction::quarantined("extraction was started and never finished".into())
        } else if size > extract::MAX_INPUT_BYTES || Kind::of(&content_type).is_none() {
            Extraction::done(String::new())
        } else {
            // Counted before it runs, and committed: a crash on the way counts too.
            self.record_text(
                None,
                tenant,
                &row.id,
                sha256,
                &Extraction::started(),
                attempts,
            )
            .await?;
            match read_content(contents, tenant, object, sha256).await? {
                Some(bytes) => {
                    let extracted = contents.extractor.extract(&content_type, bytes).await;
                    Extraction::of(tenant, &row.id, extracted)?
                }
                None => Extraction::done(String::new()),
            }
        };
        self.record_text(Some(tx), tenant, &row.id, sha256, &outcome, attempts)
            .await?;
        Ok(outcome.text)
    }

    /// Keeps how the extraction of `sha256` went, in `tx`, or committed at once without.
    async fn record_text(
        &self,
        tx: Option<&mut Transaction<'static, Postgres>>,
        tenant: &TenantId,
        document: &str,
        sha256: &str,
        extraction: &Extraction,
        attempts: i32,
    ) -> Result<(), WorkerError> {
        let query = sqlx::query(
            "INSERT INTO document_texts (tenant_id, document_id, sha256, text, status, attempts, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, document_id) DO UPDATE SET sha256 = EXCLUDED.sha256, text = EXCLUDED.text, \
             status = EXCLUDED.status, attempts = EXCLUDED.attempts, error = EXCLUDED.error, extracted_at = now()",
        )
        .bind(tenant.as_str())
        .bind(document)
        .bind(sha256)
        .bind(&extraction.text)
        .bind(extraction.status)
        .bind(attempts)
        .bind(&extraction.error);
        match tx {
            Some(tx) => {
                query.execute(&mut **tx).await?;
            }
            None => {
                let mut own = gatehouse_schemas::tenant_tx(&self.pool, tenant).await?;
                query.execute(&mut *own).await?;
                own.commit().await?;
            }
        }
        Ok(())
    }

    /// Deletes an object no version points at any more (restored versions share theirs).
    async fn delete_object(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        tenant: &TenantId,
        object: &str,
    ) -> Result<(), WorkerError> {
        // Keys are built by the blob adapter with the tenant's prefix; anything else is
        // not this tenant's to delete.
        if !object.starts_with(&format!("tenants/{}/", tenant.as_str())) {
            tracing::error!(target: "gatehouse::search", tenant = %tenant, "an outbox job names an object outside its tenant; ignored");
            return Ok(());
        }
        let still_used: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM document_versions WHERE tenant_id = $1 AND object_key = $2)",
        )
        .bind(tenant.as_str())
        .bind(object)
        .fetch_one(&mut **tx)
        .await?;
        if still_used {
            return Ok(());
        }
        let contents = self
            .contents
            .as_ref()
            .ok_or_else(|| WorkerError::Store("no object store is configured".into()))?;
        match contents.store.delete(object).await {
            Ok(()) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(WorkerError::Store(e.to_string())),
        }
    }
}

/// The plaintext of an object, or `None` when it is gone for good (deleted, or its
/// tenant's key destroyed). An unreachable store is an error: the job is retried.
async fn read_content(
    contents: &Contents,
    tenant: &TenantId,
    object: &str,
    sha256: &str,
) -> Result<Option<Vec<u8>>, WorkerError> {
    let stream = match sealed::get(&contents.keys, &contents.store, tenant, object, sha256).await {
        Ok(stream) => stream,
        Err(BlobError::Key(KeyError::Gone) | BlobError::Store(StoreError::NotFound)) => {
            return Ok(None);
        }
        Err(e) => return Err(WorkerError::Store(e.to_string())),
    };
    let mut stream = std::pin::pin!(stream);
    let mut bytes = Vec::new();
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(piece) => bytes.extend_from_slice(&piece),
            Err(BlobError::Store(e)) => return Err(WorkerError::Store(e.to_string())),
            Err(e) => {
                tracing::error!(target: "gatehouse::search", tenant = %tenant, error = %e, "stored content failed its checks; indexed without text");
                return Ok(None);
            }
        }
    }
    Ok(Some(bytes))
}

/// How extracting a content went: its text (empty when there is none) and its status.
struct Extraction {
    text: String,
    status: &'static str,
    error: Option<String>,
}

impl Extraction {
    fn done(text: String) -> Self {
        Self {
            text,
            status: "done",
            error: None,
        }
    }

    fn started() -> Self {
        Self {
            text: String::new(),
            status: "started",
            error: None,
        }
    }

    fn quarantined(why: String) -> Self {
        Self {
            text: String::new(),
            status: "quarantined",
            error: Some(why),
        }
    }

    /// The outcome of an extractor's run; an extractor that could not run is the worker's
    /// error (the job is retried), not the document's.
    fn of(
        tenant: &TenantId,
        id: &str,
        extracted: Result<String, ExtractError>,
    ) -> Result<Self, WorkerError> {
        match extracted {
            Ok(text) => Ok(Self::done(text)),
            Err(ExtractError::Unavailable(e)) => Err(WorkerError::Extractor(e)),
            Err(ExtractError::Limit(e)) => {
                tracing::error!(target: "gatehouse::search", tenant = %tenant, document = id, error = %e, "extraction went past its limits: quarantined, indexed by metadata");
                Ok(Self::quarantined(e))
            }
            Err(e) => {
                tracing::warn!(target: "gatehouse::search", tenant = %tenant, document = id, error = %e, "no text extracted; indexed by metadata");
                Ok(Self {
                    text: String::new(),
                    status: "failed",
                    error: Some(e.to_string()),
                })
            }
        }
    }
}
