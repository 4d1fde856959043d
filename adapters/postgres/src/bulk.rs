//! Bulk moves and deletes: every item decided on its own, done in its own savepoint, and
//! answered on its own, so that one refused item neither stops nor undoes the others.

use gatehouse_adapter_kit::{AdapterError, Call, Decider};
use serde::{Deserialize, Serialize};

use crate::{documents, folders};
use gatehouse_adapter_sql::TenantTx;

/// The most items one bulk call takes.
pub const MAX_ITEMS: usize = 100;

/// The items of a bulk call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Items {
    #[serde(default)]
    folders: Vec<String>,
    #[serde(default)]
    documents: Vec<String>,
}

/// What became of one item.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// `Folder` or `Document`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The item's id.
    pub id: String,
    /// `moved`, `deleted`, or the error code.
    pub result: &'static str,
}

/// Moving into a folder, or deleting from one.
#[derive(Debug, Clone, Copy)]
pub enum Operation {
    /// Move each item into the call's folder.
    Move,
    /// Delete each item, which must be inside the call's folder.
    Delete,
}

impl Items {
    fn each(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let folders = self.folders.iter().map(|id| ("Folder", id.as_str()));
        folders.chain(self.documents.iter().map(|id| ("Document", id.as_str())))
    }
}

/// Applies `operation` to every item, relative to `folder_id`.
///
/// # Errors
/// [`AdapterError::InvalidInput`] for no items or too many; per-item failures are
/// outcomes, not errors.
pub async fn apply(
    tx: &mut TenantTx,
    decider: &dyn Decider,
    call: &Call,
    folder_id: &str,
    operation: Operation,
    items: &Items,
) -> Result<Vec<Outcome>, AdapterError> {
    let count = items.folders.len() + items.documents.len();
    if count == 0 || count > MAX_ITEMS {
        return Err(AdapterError::InvalidInput(format!(
            "folders and documents: 1 to {MAX_ITEMS} items"
        )));
    }
    folders::path(tx, folder_id).await?;
    let mut outcomes = Vec::with_capacity(count);
    for (kind, id) in items.each() {
        let result = match one(tx, decider, call, folder_id, operation, kind, id).await {
            Ok(done) => done,
            Err(e) => e.code(),
        };
        outcomes.push(Outcome {
            kind,
            id: id.to_string(),
            result,
        });
    }
    Ok(outcomes)
}

async fn one(
    tx: &mut TenantTx,
    decider: &dyn Decider,
    call: &Call,
    folder_id: &str,
    operation: Operation,
    kind: &'static str,
    id: &str,
) -> Result<&'static str, AdapterError> {
    let action = match (operation, kind) {
        (Operation::Move, "Folder") => "folder:write",
        (Operation::Move, _) => "document:write",
        (Operation::Delete, "Folder") => "folder:delete",
        (Operation::Delete, _) => "document:delete",
    };
    decider.decide(call, action, kind, id).await?;
    savepoint(tx, "SAVEPOINT bulk_item").await?;
    let done = match (operation, kind) {
        (Operation::Move, "Folder") => folders::move_to(tx, id, folder_id).await.map(|_| "moved"),
        (Operation::Move, _) => documents::move_to(tx, id, folder_id).await.map(|_| "moved"),
        (Operation::Delete, _) => delete_inside(tx, decider, call, folder_id, kind, id)
            .await
            .map(|()| "deleted"),
    };
    let release = if done.is_ok() {
        "RELEASE SAVEPOINT bulk_item"
    } else {
        "ROLLBACK TO SAVEPOINT bulk_item"
    };
    savepoint(tx, release).await?;
    done
}

/// Deletes an item that is inside `folder_id` (the folder the gateway decided on).
async fn delete_inside(
    tx: &mut TenantTx,
    decider: &dyn Decider,
    call: &Call,
    folder_id: &str,
    kind: &str,
    id: &str,
) -> Result<(), AdapterError> {
    let container = match kind {
        "Folder" => id.to_string(),
        _ => documents::folder_of(tx, id).await?,
    };
    if !folders::is_within(tx, &container, folder_id).await?
        || (kind == "Folder" && id == folder_id)
    {
        return Err(AdapterError::NotFound("item in this folder"));
    }
    match kind {
        "Folder" => folders::delete_decided(decider, call, tx, id)
            .await
            .map(|_| ()),
        _ => documents::delete(tx, id).await,
    }
}

async fn savepoint(tx: &mut TenantTx, statement: &'static str) -> Result<(), AdapterError> {
    sqlx::query(statement)
        .execute(&mut *tx.tx)
        .await
        .map_err(|e| AdapterError::from_db(e, "item"))?;
    Ok(())
}
