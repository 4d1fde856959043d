//! Documents and their versions.

use chrono::{DateTime, Utc};
use gatehouse_adapter_kit::AdapterError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use sqlx::{Postgres, QueryBuilder};

use crate::cedar_entities;
use crate::folders;
use crate::input::{self, Page};
use gatehouse_adapter_sql::TenantTx;
use gatehouse_adapter_sql::rows::RowFilter;

/// A document as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Document {
    /// Its id.
    pub id: String,
    /// The folder it is in.
    pub folder_id: String,
    /// Its name.
    pub name: String,
    /// The owning user's id.
    pub owner_id: String,
    /// `public`, `internal`, `confidential` or `restricted`.
    pub classification: String,
    /// Under legal hold: it cannot be deleted.
    pub legal_hold: bool,
    /// Its tags.
    pub tags: Vec<String>,
    /// Free-form metadata (a JSON object).
    pub metadata: Value,
    /// Its current version.
    pub current_version: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A version of a document.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Version {
    /// 1, 2, 3, …
    pub version: i32,
    /// The principal that made it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// What the author said about it.
    pub note: Option<String>,
    /// For a restore: the version restored.
    pub restored_from: Option<i32>,
    /// The content's type, once stored.
    pub content_type: Option<String>,
    /// The content's size in bytes, once stored.
    pub size_bytes: Option<i64>,
    /// The content's SHA-256 (hex), once stored.
    pub sha256: Option<String>,
}

/// What a new document says about itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    name: String,
    #[serde(default)]
    classification: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// A change to a document's metadata; absent fields stay as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentChange {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    classification: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    metadata: Option<Value>,
    /// Move it into this folder (decided separately: creating in the destination).
    #[serde(default)]
    pub folder_id: Option<String>,
}

const COLUMNS: &str = "id, folder_id, name, owner_id, classification, legal_hold, tags, metadata, \
                       current_version, created_at, updated_at";

/// The document `id`.
pub async fn get(tx: &mut TenantTx, id: &str) -> Result<Document, AdapterError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM documents WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "document"))
}

/// Creates a document in `folder_id`, owned by `owner_id`, with its first version made by
/// `principal`.
pub async fn create(
    tx: &mut TenantTx,
    folder_id: &str,
    new: NewDocument,
    owner_id: &str,
    principal: &str,
) -> Result<Document, AdapterError> {
    let name = input::name(&new.name)?;
    let classification =
        input::classification(new.classification.as_deref().unwrap_or("internal"))?;
    let tags = input::tags(new.tags)?;
    let metadata = input::metadata(new.metadata.unwrap_or_else(|| json!({})))?;
    let path = folders::path(tx, folder_id).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let document: Document = sqlx::query_as(&format!(
        "INSERT INTO documents (tenant_id, id, folder_id, path, name, owner_id, classification, tags, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(&id)
    .bind(folder_id)
    .bind(&path)
    .bind(name)
    .bind(owner_id)
    .bind(classification)
    .bind(&tags)
    .bind(&metadata)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "document"))?;
    insert_first_version(tx, &id, principal).await?;
    let attrs = json!({
        "name": name,
        "owner": cedar_entities::entity_ref("User", owner_id),
        "classification": classification,
        "legal_hold": false,
    });
    cedar_entities::insert(tx, "Document", &id, attrs, Some(folder_id)).await?;
    Ok(document)
}

/// Applies `change` to document `id`.
pub async fn update(
    tx: &mut TenantTx,
    id: &str,
    change: DocumentChange,
) -> Result<Document, AdapterError> {
    let name = change.name.as_deref().map(input::name).transpose()?;
    let classification = change
        .classification
        .as_deref()
        .map(input::classification)
        .transpose()?;
    let tags = change.tags.map(input::tags).transpose()?;
    let metadata = change.metadata.map(input::metadata).transpose()?;
    let document: Document = sqlx::query_as(&format!(
        "UPDATE documents SET name = COALESCE($3, name), classification = COALESCE($4, classification), \
           tags = COALESCE($5, tags), metadata = COALESCE($6, metadata), updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(name)
    .bind(classification)
    .bind(&tags)
    .bind(&metadata)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "document"))?;
    if let Some(name) = name {
        cedar_entities::set_attr(tx, "Document", id, "name", json!(name)).await?;
    }
    if let Some(classification) = classification {
        cedar_entities::set_attr(tx, "Document", id, "classification", json!(classification))
            .await?;
    }
    Ok(document)
}

/// Moves document `id` into folder `folder_id`.
pub async fn move_to(
    tx: &mut TenantTx,
    id: &str,
    folder_id: &str,
) -> Result<Document, AdapterError> {
    let path = folders::path(tx, folder_id).await?;
    let document: Document = sqlx::query_as(&format!(
        "UPDATE documents SET folder_id = $3, path = $4, updated_at = now() \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(folder_id)
    .bind(path)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "document"))?;
    cedar_entities::set_folder(tx, "Document", id, folder_id).await?;
    Ok(document)
}

/// The folder document `id` is in.
pub async fn folder_of(tx: &mut TenantTx, id: &str) -> Result<String, AdapterError> {
    Ok(get(tx, id).await?.folder_id)
}

/// Deletes document `id` (and its versions and comments), unless under legal hold.
pub async fn delete(tx: &mut TenantTx, id: &str) -> Result<(), AdapterError> {
    let held: bool = sqlx::query_scalar(
        "SELECT legal_hold FROM documents WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tx.tenant())
    .bind(id)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "document"))?;
    if held {
        return Err(AdapterError::LegalHold);
    }
    sqlx::query("DELETE FROM documents WHERE tenant_id = $1 AND id = $2")
        .bind(tx.tenant())
        .bind(id)
        .execute(&mut *tx.tx)
        .await
        .map_err(|e| AdapterError::from_db(e, "document"))?;
    cedar_entities::delete(tx, "Document", &[id.to_string()]).await
}

/// Where a list of documents looks.
#[derive(Debug, Clone)]
pub enum Scope {
    /// The whole tenant.
    Tenant,
    /// The documents directly in this folder.
    Folder(String),
    /// The documents in this folder or below it.
    Under(String),
}

/// One page of the documents in `scope` that `access` lets through, by name.
pub async fn listed(
    tx: &mut TenantTx,
    scope: &Scope,
    access: &RowFilter,
    page: &Page,
) -> Result<Vec<Document>, AdapterError> {
    let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM documents WHERE "));
    push_conditions(tx, &mut sql, scope, access).await?;
    if let Some((name, id)) = &page.after {
        sql.push(" AND (name, id) > (")
            .push_bind(name.clone())
            .push(", ")
            .push_bind(id.clone())
            .push(")");
    }
    sql.push(" ORDER BY name, id LIMIT ").push_bind(page.limit);
    sql.build_query_as()
        .fetch_all(&mut *tx.tx)
        .await
        .map_err(|e| AdapterError::from_db(e, "document"))
}

/// How many documents in `scope` `access` lets through.
pub async fn count(
    tx: &mut TenantTx,
    scope: &Scope,
    access: &RowFilter,
) -> Result<i64, AdapterError> {
    let mut sql = QueryBuilder::new("SELECT count(*) FROM documents WHERE ");
    push_conditions(tx, &mut sql, scope, access).await?;
    sql.build_query_scalar()
        .fetch_one(&mut *tx.tx)
        .await
        .map_err(|e| AdapterError::from_db(e, "document"))
}

/// The tenant (always, besides row-level security), the scope and the access filter.
async fn push_conditions(
    tx: &mut TenantTx,
    sql: &mut QueryBuilder<'_, Postgres>,
    scope: &Scope,
    access: &RowFilter,
) -> Result<(), AdapterError> {
    sql.push("tenant_id = ").push_bind(tx.tenant());
    match scope {
        Scope::Tenant => {}
        Scope::Folder(id) => {
            folders::path(tx, id).await?;
            sql.push(" AND folder_id = ").push_bind(id.clone());
        }
        Scope::Under(id) => {
            let (lower, upper) =
                gatehouse_adapter_sql::rows::subtree(&folders::path(tx, id).await?);
            sql.push(" AND path ~>=~ ")
                .push_bind(lower)
                .push(" AND path ~<~ ")
                .push_bind(upper);
        }
    }
    sql.push(" AND ");
    access.push_sql(sql);
    Ok(())
}

const VERSION_COLUMNS: &str =
    "version, created_by, created_at, note, restored_from, content_type, size_bytes, sha256";

/// The versions of document `id`, newest first.
pub async fn versions(tx: &mut TenantTx, id: &str) -> Result<Vec<Version>, AdapterError> {
    get(tx, id).await?;
    sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM document_versions WHERE tenant_id = $1 AND document_id = $2 \
         ORDER BY version DESC"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "document"))
}

/// Restores `version` of document `id`: a new version with its content.
pub async fn restore(
    tx: &mut TenantTx,
    id: &str,
    version: i32,
    principal: &str,
) -> Result<Version, AdapterError> {
    let current: i32 = sqlx::query_scalar(
        "SELECT current_version FROM documents WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tx.tenant())
    .bind(id)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "document"))?;
    let next = current + 1;
    let restored: Version = sqlx::query_as(&format!(
        "INSERT INTO document_versions (tenant_id, document_id, version, created_by, note, restored_from, \
           content_type, size_bytes, sha256, object_key, key_id) \
         SELECT tenant_id, document_id, $3, $4, 'restored', version, content_type, size_bytes, sha256, object_key, key_id \
         FROM document_versions WHERE tenant_id = $1 AND document_id = $2 AND version = $5 \
         RETURNING {VERSION_COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(next)
    .bind(principal)
    .bind(version)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "version"))?;
    set_current_version(tx, id, next).await?;
    Ok(restored)
}

async fn insert_first_version(
    tx: &mut TenantTx,
    id: &str,
    principal: &str,
) -> Result<(), AdapterError> {
    sqlx::query(
        "INSERT INTO document_versions (tenant_id, document_id, version, created_by, note) \
         VALUES ($1, $2, 1, $3, 'created')",
    )
    .bind(tx.tenant())
    .bind(id)
    .bind(principal)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "version"))?;
    Ok(())
}

async fn set_current_version(
    tx: &mut TenantTx,
    id: &str,
    version: i32,
) -> Result<(), AdapterError> {
    sqlx::query(
        "UPDATE documents SET current_version = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tx.tenant())
    .bind(id)
    .bind(version)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "document"))?;
    Ok(())
}
