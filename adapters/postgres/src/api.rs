//! The HTTP API. Each route names the Cedar action and resource the gateway must have
//! decided for it; the same table is the gateway's route configuration.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use gatehouse_adapter_kit::{AdapterError, Call, ContextGuard, Decider};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::bulk::{self, Items, Operation, Outcome};
use crate::comments::{self, Comment};
use crate::documents::{self, Document, DocumentChange, NewDocument, Scope};
use crate::folders::{self, Folder};
use crate::input::{self, PageQuery};
use crate::listing::{self, ReadableDocuments};
use crate::memory::{self, MemoryItem, NewItem};
use crate::shares::{self, Grantee, NewLink, Share};
use gatehouse_adapter_sql::TenantTx;

/// The adapter's state: the database (as the application role), the context guard, and
/// the decision point for what a call touches beyond its own resource.
pub struct DocumentsApi {
    pool: PgPool,
    guard: ContextGuard,
    decider: Arc<dyn Decider>,
}

impl DocumentsApi {
    /// An API over `pool` (connected as a role without BYPASSRLS) admitting calls with
    /// `guard` and deciding moves' destinations and bulk items with `decider`.
    pub fn new(pool: PgPool, guard: ContextGuard, decider: Arc<dyn Decider>) -> Self {
        Self {
            pool,
            guard,
            decider,
        }
    }

    /// Admits a call for `action` on `resource_type::"id"` and opens its tenant's transaction.
    async fn begin(
        &self,
        headers: &HeaderMap,
        action: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<(Call, TenantTx), AdapterError> {
        let call = self.guard.admit(headers)?;
        call.expect(action, resource_type, id)?;
        let tx = TenantTx::begin(&self.pool, call.tenant()).await?;
        Ok((call, tx))
    }
}

/// The routes, as (method, path, Cedar action, resource type): what the gateway's
/// `[[route]]` entries for this adapter must say.
#[rustfmt::skip]
pub const ROUTES: &[(&str, &str, &str, &str)] = &[
    ("GET", "/documents", "document:list", "Tenant"),
    ("GET", "/folders/{id}", "folder:read", "Folder"),
    ("PATCH", "/folders/{id}", "folder:write", "Folder"),
    ("DELETE", "/folders/{id}", "folder:delete", "Folder"),
    ("GET", "/folders/{id}/folders", "folder:read", "Folder"),
    ("POST", "/folders/{id}/folders", "folder:create", "Folder"),
    ("GET", "/folders/{id}/documents", "folder:read", "Folder"),
    ("POST", "/folders/{id}/documents", "folder:create", "Folder"),
    ("GET", "/documents/{id}", "document:read", "Document"),
    ("PATCH", "/documents/{id}", "document:write", "Document"),
    ("DELETE", "/documents/{id}", "document:delete", "Document"),
    ("GET", "/documents/{id}/versions", "document:version", "Document"),
    ("POST", "/documents/{id}/restore", "document:restore", "Document"),
    ("GET", "/documents/{id}/comments", "document:read", "Document"),
    ("POST", "/documents/{id}/comments", "document:comment", "Document"),
    ("GET", "/documents/{id}/shares", "document:share", "Document"),
    ("POST", "/documents/{id}/shares", "document:share", "Document"),
    ("DELETE", "/documents/{id}/shares", "document:share", "Document"),
    ("POST", "/documents/{id}/links", "document:share", "Document"),
    ("GET", "/folders/{id}/shares", "folder:share", "Folder"),
    ("POST", "/folders/{id}/shares", "folder:share", "Folder"),
    ("DELETE", "/folders/{id}/shares", "folder:share", "Folder"),
    ("POST", "/folders/{id}/bulk-move", "folder:create", "Folder"),
    ("POST", "/folders/{id}/bulk-delete", "folder:write", "Folder"),
    ("GET", "/memory/{id}/items", "memory:read", "MemoryLane"),
    ("GET", "/memory/{id}/item", "memory:read", "MemoryLane"),
    ("PUT", "/memory/{id}/item", "memory:write", "MemoryLane"),
    ("DELETE", "/memory/{id}/item", "memory:write", "MemoryLane"),
    ("GET", "/memory/{id}/search", "memory:search", "MemoryLane"),
];

/// The adapter's routes.
pub fn router(api: Arc<DocumentsApi>) -> Router {
    let router = Router::new()
        .route(
            "/folders/{id}",
            get(get_folder).patch(update_folder).delete(delete_folder),
        )
        .route(
            "/folders/{id}/folders",
            get(list_folders).post(create_folder),
        )
        .route(
            "/folders/{id}/documents",
            get(list_documents).post(create_document),
        )
        .route("/documents", get(readable_documents))
        .route(
            "/documents/{id}",
            get(get_document)
                .patch(update_document)
                .delete(delete_document),
        )
        .route("/documents/{id}/versions", get(list_versions))
        .route("/documents/{id}/restore", post(restore_version))
        .route(
            "/documents/{id}/comments",
            get(list_comments).post(add_comment),
        )
        .route(
            "/documents/{id}/shares",
            get(document_shares)
                .post(share_document)
                .delete(unshare_document),
        )
        .route("/documents/{id}/links", post(create_link))
        .route(
            "/folders/{id}/shares",
            get(folder_shares).post(share_folder).delete(unshare_folder),
        )
        .route("/folders/{id}/bulk-move", post(bulk_move))
        .route("/folders/{id}/bulk-delete", post(bulk_delete))
        .route("/memory/{id}/items", get(list_memory))
        .route(
            "/memory/{id}/item",
            get(get_memory).put(put_memory).delete(forget_memory),
        )
        .route("/memory/{id}/search", get(search_memory))
        .fallback(|| async { AdapterError::NotFound("route") });
    gatehouse_adapter_kit::with_json_rejections(router).with_state(api)
}

type Api = State<Arc<DocumentsApi>>;
type Answer<T> = Result<T, AdapterError>;

/// A page of items and the cursor of the next page, if there is one.
#[derive(Serialize)]
struct Listing<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

fn page_query(query: Result<Query<PageQuery>, QueryRejection>) -> Answer<PageQuery> {
    query
        .map(|Query(q)| q)
        .map_err(|e| AdapterError::InvalidInput(format!("query: {}", e.body_text())))
}

async fn get_folder(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<Folder>> {
    let (_, mut tx) = api.begin(&headers, "folder:read", "Folder", &id).await?;
    Ok(Json(folders::get(&mut tx, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFolder {
    name: String,
}

async fn create_folder(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<(StatusCode, Json<Folder>)> {
    let (call, mut tx) = api.begin(&headers, "folder:create", "Folder", &id).await?;
    let new: NewFolder = input::json_body(&body)?;
    let folder = folders::create(&mut tx, &id, input::name(&new.name)?, call.user_id()?).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(folder)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderChange {
    #[serde(default)]
    name: Option<String>,
    /// Move it into this folder (decided separately: creating in the destination).
    #[serde(default)]
    parent_id: Option<String>,
}

async fn update_folder(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<Folder>> {
    let (call, mut tx) = api.begin(&headers, "folder:write", "Folder", &id).await?;
    let change: FolderChange = input::json_body(&body)?;
    let mut folder = folders::get(&mut tx, &id).await?;
    if let Some(name) = &change.name {
        folder = folders::rename(&mut tx, &id, input::name(name)?).await?;
    }
    if let Some(parent) = &change.parent_id {
        api.decider
            .decide(&call, "folder:create", "Folder", parent)
            .await?;
        folder = folders::move_to(&mut tx, &id, parent).await?;
    }
    tx.commit().await?;
    Ok(Json(folder))
}

async fn delete_folder(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<Value>> {
    let (call, mut tx) = api.begin(&headers, "folder:delete", "Folder", &id).await?;
    let (folders, documents) =
        folders::delete_decided(api.decider.as_ref(), &call, &mut tx, &id).await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "deleted": { "folders": folders, "documents": documents } }),
    ))
}

async fn list_folders(
    State(api): Api,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<Json<Listing<Folder>>> {
    let (_, mut tx) = api.begin(&headers, "folder:read", "Folder", &id).await?;
    let page = page_query(query)?.page()?;
    folders::path(&mut tx, &id).await?;
    let items = folders::children(&mut tx, &id, &page).await?;
    let next_cursor = full_page(&items, page.limit).map(|f| input::next_cursor(&f.name, &f.id));
    Ok(Json(Listing { items, next_cursor }))
}

async fn list_documents(
    State(api): Api,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<Json<ReadableDocuments>> {
    let (call, mut tx) = api.begin(&headers, "folder:read", "Folder", &id).await?;
    let page = page_query(query)?.page()?;
    let scope = Scope::Folder(id);
    let listing =
        listing::readable_documents(api.decider.as_ref(), &call, &mut tx, &scope, &page, false)
            .await?;
    Ok(Json(listing))
}

/// `GET /documents`: the documents of the tenant (or of a folder, or of a subtree) that
/// the principal may read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentsQuery {
    /// Only the documents directly in this folder.
    folder: Option<String>,
    /// Only the documents in this folder or below it.
    under: Option<String>,
    /// Also count them all.
    #[serde(default)]
    count: bool,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn readable_documents(
    State(api): Api,
    query: Result<Query<DocumentsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<Json<ReadableDocuments>> {
    let call = api.guard.admit(&headers)?;
    call.expect("document:list", "Tenant", call.tenant().as_str())?;
    let Query(q) =
        query.map_err(|e| AdapterError::InvalidInput(format!("query: {}", e.body_text())))?;
    let page = PageQuery::new(q.limit, q.cursor).page()?;
    let scope = match (q.folder, q.under) {
        (None, None) => Scope::Tenant,
        (Some(folder), None) => Scope::Folder(folder),
        (None, Some(under)) => Scope::Under(under),
        (Some(_), Some(_)) => {
            return Err(AdapterError::InvalidInput(
                "folder or under, not both".into(),
            ));
        }
    };
    let mut tx = TenantTx::begin(&api.pool, call.tenant()).await?;
    let listing =
        listing::readable_documents(api.decider.as_ref(), &call, &mut tx, &scope, &page, q.count)
            .await?;
    Ok(Json(listing))
}

/// The last item of a full page (there may be more after it).
fn full_page<T>(items: &[T], limit: i64) -> Option<&T> {
    (items.len() as i64 == limit)
        .then(|| items.last())
        .flatten()
}

async fn create_document(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<(StatusCode, Json<Document>)> {
    let (call, mut tx) = api.begin(&headers, "folder:create", "Folder", &id).await?;
    let new: NewDocument = input::json_body(&body)?;
    let document = documents::create(&mut tx, &id, new, call.user_id()?, call.principal()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(document)))
}

async fn get_document(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<Document>> {
    let (_, mut tx) = api
        .begin(&headers, "document:read", "Document", &id)
        .await?;
    Ok(Json(documents::get(&mut tx, &id).await?))
}

async fn update_document(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<Document>> {
    let (call, mut tx) = api
        .begin(&headers, "document:write", "Document", &id)
        .await?;
    let mut change: DocumentChange = input::json_body(&body)?;
    let destination = change.folder_id.take();
    let mut document = documents::update(&mut tx, &id, change).await?;
    if let Some(folder) = destination {
        api.decider
            .decide(&call, "folder:create", "Folder", &folder)
            .await?;
        document = documents::move_to(&mut tx, &id, &folder).await?;
    }
    tx.commit().await?;
    Ok(Json(document))
}

async fn delete_document(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<StatusCode> {
    let (_, mut tx) = api
        .begin(&headers, "document:delete", "Document", &id)
        .await?;
    documents::delete(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_versions(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<Value>> {
    let (_, mut tx) = api
        .begin(&headers, "document:version", "Document", &id)
        .await?;
    let versions = documents::versions(&mut tx, &id).await?;
    Ok(Json(json!({ "items": versions })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Restore {
    version: i32,
}

async fn restore_version(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<(StatusCode, Json<documents::Version>)> {
    let (call, mut tx) = api
        .begin(&headers, "document:restore", "Document", &id)
        .await?;
    let Restore { version } = input::json_body(&body)?;
    if version < 1 {
        return Err(AdapterError::InvalidInput(
            "version: a positive number".into(),
        ));
    }
    let restored = documents::restore(&mut tx, &id, version, call.principal()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(restored)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewComment {
    body: String,
}

async fn add_comment(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<(StatusCode, Json<Comment>)> {
    let (call, mut tx) = api
        .begin(&headers, "document:comment", "Document", &id)
        .await?;
    let NewComment { body } = input::json_body(&body)?;
    let comment = comments::add(&mut tx, &id, call.user_id()?, &body).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

async fn list_comments(
    State(api): Api,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<Json<Listing<Comment>>> {
    let (_, mut tx) = api
        .begin(&headers, "document:read", "Document", &id)
        .await?;
    let page = page_query(query)?.page()?;
    let items = comments::list(&mut tx, &id, &page).await?;
    let next_cursor = full_page(&items, page.limit).map(|c| input::next_cursor(&c.id, &c.id));
    Ok(Json(Listing { items, next_cursor }))
}

/// Folders and documents are shared the same way; these name which.
#[derive(Clone, Copy)]
struct Shared {
    resource_type: &'static str,
    action: &'static str,
}

const DOCUMENT: Shared = Shared {
    resource_type: "Document",
    action: "document:share",
};
const FOLDER: Shared = Shared {
    resource_type: "Folder",
    action: "folder:share",
};

async fn list_shares(
    api: &DocumentsApi,
    what: Shared,
    id: &str,
    headers: &HeaderMap,
) -> Answer<Json<Value>> {
    let (_, mut tx) = api
        .begin(headers, what.action, what.resource_type, id)
        .await?;
    let items = shares::list(&mut tx, what.resource_type, id).await?;
    Ok(Json(json!({ "items": items })))
}

async fn share(
    api: &DocumentsApi,
    what: Shared,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer<(StatusCode, Json<Share>)> {
    let (call, mut tx) = api
        .begin(headers, what.action, what.resource_type, id)
        .await?;
    let grantee: Grantee = input::json_body(body)?;
    let share = shares::grant(&mut tx, what.resource_type, id, &grantee, call.principal()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(share)))
}

async fn unshare(
    api: &DocumentsApi,
    what: Shared,
    id: &str,
    headers: &HeaderMap,
    grantee: Result<Query<Grantee>, QueryRejection>,
) -> Answer<StatusCode> {
    let (_, mut tx) = api
        .begin(headers, what.action, what.resource_type, id)
        .await?;
    let Query(grantee) =
        grantee.map_err(|e| AdapterError::InvalidInput(format!("query: {}", e.body_text())))?;
    shares::revoke(&mut tx, what.resource_type, id, &grantee).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn document_shares(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<Value>> {
    list_shares(&api, DOCUMENT, &id, &headers).await
}

async fn folder_shares(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<Value>> {
    list_shares(&api, FOLDER, &id, &headers).await
}

async fn share_document(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<(StatusCode, Json<Share>)> {
    share(&api, DOCUMENT, &id, &headers, &body).await
}

async fn share_folder(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<(StatusCode, Json<Share>)> {
    share(&api, FOLDER, &id, &headers, &body).await
}

async fn unshare_document(
    State(api): Api,
    Path(id): Path<String>,
    query: Result<Query<Grantee>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<StatusCode> {
    unshare(&api, DOCUMENT, &id, &headers, query).await
}

async fn unshare_folder(
    State(api): Api,
    Path(id): Path<String>,
    query: Result<Query<Grantee>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<StatusCode> {
    unshare(&api, FOLDER, &id, &headers, query).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    expires_in_seconds: i64,
}

async fn create_link(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<(StatusCode, Json<NewLink>)> {
    let (call, mut tx) = api
        .begin(&headers, "document:share", "Document", &id)
        .await?;
    let LinkRequest { expires_in_seconds } = input::json_body(&body)?;
    let link = shares::create_link(&mut tx, &id, expires_in_seconds, call.principal()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(link)))
}

async fn bulk(
    api: &DocumentsApi,
    operation: Operation,
    action: &str,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer<Json<Value>> {
    let (call, mut tx) = api.begin(headers, action, "Folder", id).await?;
    let items: Items = input::json_body(body)?;
    let outcomes: Vec<Outcome> =
        bulk::apply(&mut tx, api.decider.as_ref(), &call, id, operation, &items).await?;
    tx.commit().await?;
    Ok(Json(json!({ "items": outcomes })))
}

async fn bulk_move(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<Value>> {
    bulk(&api, Operation::Move, "folder:create", &id, &headers, &body).await
}

async fn bulk_delete(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<Value>> {
    bulk(
        &api,
        Operation::Delete,
        "folder:write",
        &id,
        &headers,
        &body,
    )
    .await
}

/// `?key=` of a memory item.
#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

fn key_query(query: Result<Query<KeyQuery>, QueryRejection>) -> Answer<String> {
    let Query(KeyQuery { key }) =
        query.map_err(|e| AdapterError::InvalidInput(format!("query: {}", e.body_text())))?;
    memory::key(&key)?;
    Ok(key)
}

async fn list_memory(
    State(api): Api,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<Json<Listing<MemoryItem>>> {
    let (_, mut tx) = api
        .begin(&headers, "memory:read", "MemoryLane", &id)
        .await?;
    let page = page_query(query)?.page()?;
    let items = memory::list(&mut tx, &id, &page).await?;
    let next_cursor = full_page(&items, page.limit).map(|i| input::next_cursor(&i.key, &i.key));
    Ok(Json(Listing { items, next_cursor }))
}

async fn get_memory(
    State(api): Api,
    Path(id): Path<String>,
    query: Result<Query<KeyQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<Json<MemoryItem>> {
    let (_, mut tx) = api
        .begin(&headers, "memory:read", "MemoryLane", &id)
        .await?;
    let key = key_query(query)?;
    Ok(Json(memory::get(&mut tx, &id, &key).await?))
}

async fn put_memory(
    State(api): Api,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<MemoryItem>> {
    let (call, mut tx) = api
        .begin(&headers, "memory:write", "MemoryLane", &id)
        .await?;
    let item: NewItem = input::json_body(&body)?;
    let written = memory::put(&mut tx, &id, &item, call.principal()).await?;
    tx.commit().await?;
    Ok(Json(written))
}

async fn forget_memory(
    State(api): Api,
    Path(id): Path<String>,
    query: Result<Query<KeyQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<Json<Value>> {
    let (_, mut tx) = api
        .begin(&headers, "memory:write", "MemoryLane", &id)
        .await?;
    let key = key_query(query)?;
    let deleted = memory::delete(&mut tx, &id, &key).await?;
    tx.commit().await?;
    Ok(Json(json!({ "deleted": deleted })))
}

/// `?q=` words to find, `limit` results (default 20, at most 200).
#[derive(Deserialize)]
struct MemorySearch {
    q: String,
    limit: Option<i64>,
}

async fn search_memory(
    State(api): Api,
    Path(id): Path<String>,
    query: Result<Query<MemorySearch>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<Json<Value>> {
    let (_, mut tx) = api
        .begin(&headers, "memory:search", "MemoryLane", &id)
        .await?;
    let Query(search) =
        query.map_err(|e| AdapterError::InvalidInput(format!("query: {}", e.body_text())))?;
    let limit = search.limit.unwrap_or(20);
    if !(1..=input::MAX_PAGE).contains(&limit) {
        return Err(AdapterError::InvalidInput(format!(
            "limit: 1 to {}",
            input::MAX_PAGE
        )));
    }
    let items = memory::search(&mut tx, &id, &search.q, limit).await?;
    Ok(Json(json!({ "items": items })))
}
