//! Folders: a tree per tenant, with materialized paths for subtree queries.
//!
//! "Everything under F" is `path ~>=~ lower AND path ~<~ upper` ([`subtree`]): a range
//! scan of `(tenant_id, path text_pattern_ops)`. Not `LIKE 'prefix%'`: under row-level
//! security a condition with a function that is not LEAKPROOF (as LIKE's is not) is only
//! evaluated after the policy, so the index would be used for the tenant alone.

use chrono::{DateTime, Utc};
use gatehouse_adapter_kit::{AdapterError, Call, Decider};
use serde::Serialize;
use serde_json::json;

use crate::cedar_entities;
use crate::input::Page;
use gatehouse_adapter_sql::TenantTx;
use gatehouse_adapter_sql::rows::subtree;

/// A folder as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Folder {
    /// Its id.
    pub id: String,
    /// Its parent's id; none for a root folder.
    pub parent_id: Option<String>,
    /// Its name.
    pub name: String,
    /// The owning user's id.
    pub owner_id: String,
    /// Under legal hold: it and its contents cannot be deleted.
    pub legal_hold: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, parent_id, name, owner_id, legal_hold, created_at";

/// The folder `id`.
pub async fn get(tx: &mut TenantTx, id: &str) -> Result<Folder, AdapterError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM folders WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tx.tenant())
    .bind(id)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "folder"))
}

/// The materialized path of folder `id` (`/<root>/…/<id>/`).
pub async fn path(tx: &mut TenantTx, id: &str) -> Result<String, AdapterError> {
    sqlx::query_scalar("SELECT path FROM folders WHERE tenant_id = $1 AND id = $2")
        .bind(tx.tenant())
        .bind(id)
        .fetch_one(&mut *tx.tx)
        .await
        .map_err(|e| AdapterError::from_db(e, "folder"))
}

/// Creates folder `name` in `parent_id`, owned by `owner_id`.
pub async fn create(
    tx: &mut TenantTx,
    parent_id: &str,
    name: &str,
    owner_id: &str,
) -> Result<Folder, AdapterError> {
    let id = uuid::Uuid::now_v7().to_string();
    let path = format!("{}{id}/", path(tx, parent_id).await?);
    let folder: Folder = sqlx::query_as(&format!(
        "INSERT INTO folders (tenant_id, id, parent_id, name, path, owner_id) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(&id)
    .bind(parent_id)
    .bind(name)
    .bind(&path)
    .bind(owner_id)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "folder"))?;
    let attrs = json!({
        "name": name,
        "owner": cedar_entities::entity_ref("User", owner_id),
        "legal_hold": false,
    });
    cedar_entities::insert(tx, "Folder", &id, attrs, Some(parent_id)).await?;
    Ok(folder)
}

/// Renames folder `id`.
pub async fn rename(tx: &mut TenantTx, id: &str, name: &str) -> Result<Folder, AdapterError> {
    let folder: Folder = sqlx::query_as(&format!(
        "UPDATE folders SET name = $3 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(name)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "folder"))?;
    cedar_entities::set_attr(tx, "Folder", id, "name", json!(name)).await?;
    Ok(folder)
}

/// Moves folder `id` (with everything under it) into folder `parent_id`.
pub async fn move_to(tx: &mut TenantTx, id: &str, parent_id: &str) -> Result<Folder, AdapterError> {
    let old = path(tx, id).await?;
    let destination = path(tx, parent_id).await?;
    if destination.starts_with(&old) {
        return Err(AdapterError::Conflict(
            "a folder cannot move into itself".into(),
        ));
    }
    let new = format!("{destination}{id}/");
    let (lower, upper) = subtree(&old);
    for table in ["folders", "documents"] {
        sqlx::query(&format!(
            "UPDATE {table} SET path = $4 || substr(path, length($2) + 1) \
             WHERE tenant_id = $1 AND path ~>=~ $2 AND path ~<~ $3"
        ))
        .bind(tx.tenant())
        .bind(&lower)
        .bind(&upper)
        .bind(&new)
        .execute(&mut *tx.tx)
        .await
        .map_err(|e| AdapterError::from_db(e, "folder"))?;
    }
    let folder: Folder = sqlx::query_as(&format!(
        "UPDATE folders SET parent_id = $3 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(id)
    .bind(parent_id)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "folder"))?;
    cedar_entities::set_folder(tx, "Folder", id, parent_id).await?;
    Ok(folder)
}

/// Whether `id` is `ancestor` or somewhere below it.
pub async fn is_within(tx: &mut TenantTx, id: &str, ancestor: &str) -> Result<bool, AdapterError> {
    let inner = path(tx, id).await?;
    Ok(inner.starts_with(&path(tx, ancestor).await?))
}

/// Deletes folder `id` with everything under it, if the principal may delete every
/// document there (each decided and audited: a restricted document its owner could not
/// delete without MFA does not go with its folder either), and nothing there is under
/// legal hold. Returns how many folders and documents were deleted.
///
/// # Errors
/// The first document's [`AdapterError::Forbidden`] (then nothing is deleted),
/// [`AdapterError::LegalHold`], the database's errors.
pub async fn delete_decided(
    decider: &dyn Decider,
    call: &Call,
    tx: &mut TenantTx,
    id: &str,
) -> Result<(usize, usize), AdapterError> {
    let (lower, upper) = subtree(&path(tx, id).await?);
    // A hold anywhere below stops it whatever the decisions would be (409, not 403).
    refuse_held(tx, &lower, &upper).await?;
    let documents: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM documents WHERE tenant_id = $1 AND path ~>=~ $2 AND path ~<~ $3",
    )
    .bind(tx.tenant())
    .bind(&lower)
    .bind(&upper)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "folder"))?;
    for document in &documents {
        decider
            .decide(call, "document:delete", "Document", document)
            .await?;
    }
    let (folders, deleted) = delete(tx, id).await?;
    // A document moved or created in the subtree since it was read would go undecided:
    // then nothing is deleted (the caller's transaction is not committed).
    let decided: std::collections::HashSet<&String> = documents.iter().collect();
    if deleted.iter().any(|d| !decided.contains(d)) {
        return Err(AdapterError::Conflict(
            "the folder changed while it was being deleted: try again".into(),
        ));
    }
    Ok((folders, deleted.len()))
}

/// Deletes folder `id` with everything under it, unless anything there is under legal
/// hold. Returns how many folders were deleted, and which documents.
async fn delete(tx: &mut TenantTx, id: &str) -> Result<(usize, Vec<String>), AdapterError> {
    let (lower, upper) = subtree(&path(tx, id).await?);
    refuse_held(tx, &lower, &upper).await?;
    let documents: Vec<String> = sqlx::query_scalar(
        "DELETE FROM documents WHERE tenant_id = $1 AND path ~>=~ $2 AND path ~<~ $3 RETURNING id",
    )
    .bind(tx.tenant())
    .bind(&lower)
    .bind(&upper)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "folder"))?;
    // One statement: the parent links are checked at its end, when all are gone.
    let folders: Vec<String> = sqlx::query_scalar(
        "DELETE FROM folders WHERE tenant_id = $1 AND path ~>=~ $2 AND path ~<~ $3 RETURNING id",
    )
    .bind(tx.tenant())
    .bind(&lower)
    .bind(&upper)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "folder"))?;
    cedar_entities::delete(tx, "Document", &documents).await?;
    cedar_entities::delete(tx, "Folder", &folders).await?;
    Ok((folders.len(), documents))
}

/// [`AdapterError::LegalHold`] when a folder or document in the subtree from `lower` to
/// `upper` is under legal hold.
async fn refuse_held(tx: &mut TenantTx, lower: &str, upper: &str) -> Result<(), AdapterError> {
    let held: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM folders WHERE tenant_id = $1 AND path ~>=~ $2 AND path ~<~ $3 AND legal_hold) \
             OR EXISTS (SELECT 1 FROM documents WHERE tenant_id = $1 AND path ~>=~ $2 AND path ~<~ $3 AND legal_hold)",
    )
    .bind(tx.tenant())
    .bind(lower)
    .bind(upper)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "folder"))?;
    if held {
        return Err(AdapterError::LegalHold);
    }
    Ok(())
}

/// One page of the folders in `parent_id`, by name.
pub async fn children(
    tx: &mut TenantTx,
    parent_id: &str,
    page: &Page,
) -> Result<Vec<Folder>, AdapterError> {
    let (after_name, after_id) = page.after.clone().unzip();
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM folders WHERE tenant_id = $1 AND parent_id = $2 \
           AND ($3::text IS NULL OR (name, id) > ($3, $4)) \
         ORDER BY name, id LIMIT $5"
    ))
    .bind(tx.tenant())
    .bind(parent_id)
    .bind(after_name)
    .bind(after_id)
    .bind(page.limit)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "folder"))
}
