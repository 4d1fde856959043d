//! The content API: upload and download of a document's content, through the gateway.
//! An upload is sealed and stored first, then recorded as the document's next version
//! (a short transaction, never held open during the transfer).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use gatehouse_adapter_kit::{AdapterError, Call, ContextGuard};
use gatehouse_core::TenantId;
use serde_json::json;
use sqlx::PgPool;

use crate::sealed::{self, BlobError};
use crate::{BlobStore, KeyError, KeyRing, StoreError};

/// The content types an upload may have (text extraction for search knows these).
pub const CONTENT_TYPES: &[&str] = &[
    "text/plain",
    "text/markdown",
    "text/html",
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
];

/// The routes, as (method, path, Cedar action, resource type).
#[rustfmt::skip]
pub const ROUTES: &[(&str, &str, &str, &str)] = &[
    ("PUT", "/documents/{id}/content", "document:write", "Document"),
    ("GET", "/documents/{id}/content", "document:read", "Document"),
];

/// The largest upload by the tenant's plan.
#[derive(Debug, Clone)]
pub struct SizeLimits {
    /// Bytes by plan name.
    pub by_plan: HashMap<String, u64>,
    /// For a plan not listed.
    pub default: u64,
}

/// The content adapter's state.
pub struct ContentApi {
    pool: PgPool,
    guard: ContextGuard,
    keys: KeyRing,
    store: BlobStore,
    limits: SizeLimits,
}

impl ContentApi {
    /// The API over `pool` (the application role), `keys` and `store`.
    pub fn new(
        pool: PgPool,
        guard: ContextGuard,
        keys: KeyRing,
        store: BlobStore,
        limits: SizeLimits,
    ) -> Self {
        Self {
            pool,
            guard,
            keys,
            store,
            limits,
        }
    }

    fn admit(&self, headers: &HeaderMap, action: &str, id: &str) -> Result<Call, AdapterError> {
        let call = self.guard.admit(headers)?;
        call.expect(action, "Document", id)?;
        Ok(call)
    }

    async fn limit(&self, tenant: &TenantId) -> Result<u64, AdapterError> {
        let plan: Option<String> =
            sqlx::query_scalar("SELECT plan FROM tenants WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| AdapterError::from_db(e, "tenant"))?;
        Ok(plan
            .and_then(|p| self.limits.by_plan.get(&p).copied())
            .unwrap_or(self.limits.default))
    }
}

/// The adapter's routes.
pub fn router(api: Arc<ContentApi>) -> Router {
    let router = Router::new()
        .route("/documents/{id}/content", get(download).put(upload))
        .fallback(|| async { AdapterError::NotFound("route") });
    gatehouse_adapter_kit::with_json_rejections(router).with_state(api)
}

type Api = State<Arc<ContentApi>>;

async fn upload(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AdapterError> {
    let call = api.admit(&headers, "document:write", &id)?;
    let tenant = call.tenant().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| CONTENT_TYPES.contains(&v.as_str()))
        .ok_or(AdapterError::UnsupportedMediaType)?;
    let limit = api.limit(&tenant).await?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AdapterError::TooLarge(limit));
    }
    document_exists(&api.pool, &tenant, &id).await?;
    // A fresh key per upload: the version number is only known once it is recorded.
    let object = format!(
        "tenants/{}/documents/{id}/{}",
        tenant.as_str(),
        uuid::Uuid::new_v4()
    );
    let stream = body.into_data_stream();
    let stored = sealed::put(&api.keys, &api.store, &tenant, &object, stream, limit)
        .await
        .map_err(blob_error)?;
    let recorded = record_version(&api.pool, &call, &id, &object, &content_type, &stored).await;
    let version = match recorded {
        Ok(version) => version,
        Err(e) => {
            let _ = api.store.delete(&object).await;
            return Err(e);
        }
    };
    let answer = json!({ "version": version, "size_bytes": stored.size, "sha256": stored.sha256, "content_type": content_type });
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

async fn document_exists(pool: &PgPool, tenant: &TenantId, id: &str) -> Result<(), AdapterError> {
    let mut tx = gatehouse_schemas::tenant_tx(pool, tenant)
        .await
        .map_err(|e| AdapterError::from_db(e, "document"))?;
    sqlx::query_scalar::<_, i32>(
        "SELECT current_version FROM documents WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "document"))?;
    Ok(())
}

async fn record_version(
    pool: &PgPool,
    call: &Call,
    id: &str,
    object: &str,
    content_type: &str,
    stored: &sealed::Stored,
) -> Result<i32, AdapterError> {
    let tenant = call.tenant();
    let db = |e| AdapterError::from_db(e, "document");
    let mut tx = gatehouse_schemas::tenant_tx(pool, tenant)
        .await
        .map_err(db)?;
    let current: i32 = sqlx::query_scalar(
        "SELECT current_version FROM documents WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let next = current + 1;
    sqlx::query(
        "INSERT INTO document_versions (tenant_id, document_id, version, created_by, note, content_type, size_bytes, sha256, object_key, key_id) \
         VALUES ($1, $2, $3, $4, 'content', $5, $6, $7, $8, $9)",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(next)
    .bind(call.principal())
    .bind(content_type)
    .bind(i64::try_from(stored.size).unwrap_or(i64::MAX))
    .bind(&stored.sha256)
    .bind(object)
    .bind(uuid::Uuid::from_bytes(stored.key_id))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    sqlx::query("UPDATE documents SET current_version = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(id)
        .bind(next)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(next)
}

/// The content of a document's current version (none for a version without content).
#[derive(sqlx::FromRow)]
struct CurrentContent {
    object_key: Option<String>,
    sha256: Option<String>,
    content_type: Option<String>,
    size_bytes: Option<i64>,
}

async fn download(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AdapterError> {
    let call = api.admit(&headers, "document:read", &id)?;
    let tenant = call.tenant().clone();
    let db = |e| AdapterError::from_db(e, "content");
    let mut tx = gatehouse_schemas::tenant_tx(&api.pool, &tenant)
        .await
        .map_err(db)?;
    let row: Option<CurrentContent> = sqlx::query_as(
        "SELECT v.object_key, v.sha256, v.content_type, v.size_bytes FROM documents d \
         JOIN document_versions v ON v.tenant_id = d.tenant_id AND v.document_id = d.id AND v.version = d.current_version \
         WHERE d.tenant_id = $1 AND d.id = $2",
    )
    .bind(tenant.as_str())
    .bind(&id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    drop(tx);
    let Some(CurrentContent {
        object_key: Some(object),
        sha256: Some(sha256),
        content_type,
        size_bytes: size,
    }) = row
    else {
        return Err(AdapterError::NotFound("content"));
    };
    let stream = sealed::get(&api.keys, &api.store, &tenant, &object, &sha256)
        .await
        .map_err(blob_error)?;
    let stream = stream.map(|piece| {
        piece.map_err(|e| {
            tracing::error!(target: "gatehouse::blobs", error = %e, "content stream stopped");
            std::io::Error::other("content unavailable")
        })
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    let content_type = content_type.unwrap_or_else(|| "application/octet-stream".into());
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Some(size) = size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Ok(value) = HeaderValue::from_str(&sha256) {
        headers.insert("x-content-sha256", value);
    }
    keep_inert(headers, &content_type);
    Ok(response)
}

/// A tenant's upload is served from the gateway's origin: it must not run there. Browsers
/// may not guess another type (`nosniff`), a page is sandboxed with nothing allowed to
/// load, and HTML is downloaded rather than shown.
fn keep_inert(headers: &mut axum::http::HeaderMap, content_type: &str) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    if content_type.starts_with("text/html") {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
}

fn blob_error(e: BlobError) -> AdapterError {
    match e {
        BlobError::TooLarge(limit) => AdapterError::TooLarge(limit),
        BlobError::Key(KeyError::Gone) | BlobError::Store(StoreError::NotFound) => {
            AdapterError::NotFound("content")
        }
        BlobError::Key(KeyError::Unavailable(_)) | BlobError::Store(StoreError::Unavailable(_)) => {
            AdapterError::Unavailable
        }
        BlobError::Source(_) => AdapterError::InvalidInput("the upload broke off".into()),
        other => {
            tracing::error!(target: "gatehouse::blobs", error = %other, "stored content failed its checks");
            AdapterError::Internal
        }
    }
}
