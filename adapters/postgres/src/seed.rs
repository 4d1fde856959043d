//! The demo data: the folders and documents of a Cedar entities file (such as
//! `policy-tests/fixtures/three-tenants.json`) as rows of the adapter's tables, with the
//! shares their grant parents stand for.

use std::collections::{BTreeMap, HashMap};

use gatehouse_core::TenantId;
use serde_json::Value;
use sqlx::PgPool;

/// Writes the folders and documents among `entities` into the tables of every tenant that
/// has no folder yet; returns how many rows were written. Runs as the tables' owner.
///
/// # Errors
/// The database error; the failing tenant's rows are then not written.
pub async fn import<'a>(owner: &PgPool, entities: &'a [Value]) -> Result<usize, sqlx::Error> {
    let mut by_tenant: BTreeMap<&'a str, Vec<&'a Value>> = BTreeMap::new();
    for e in entities {
        let kind = e["uid"]["type"].as_str().unwrap_or_default();
        let tenant = e["attrs"]["tenant"]["__entity"]["id"].as_str();
        if let (true, Some(tenant)) = (kind == "Folder" || kind == "Document", tenant) {
            by_tenant.entry(tenant).or_default().push(e);
        }
    }
    let mut written = 0;
    for (tenant, items) in by_tenant {
        let Ok(tenant) = TenantId::parse(tenant) else {
            continue;
        };
        let mut tx = gatehouse_schemas::tenant_tx(owner, &tenant).await?;
        let any: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM folders WHERE tenant_id = $1)")
                .bind(tenant.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if any {
            continue;
        }
        let parents: HashMap<&'a str, Option<&'a str>> = items
            .iter()
            .filter(|e| e["uid"]["type"] == "Folder")
            .map(|e| (id(e), parent_folder(e)))
            .collect();
        let path = |folder: &'a str| folder_path(&parents, folder);
        // Parents before children: by depth.
        let mut folders: Vec<(&Value, String)> = items
            .iter()
            .filter(|e| e["uid"]["type"] == "Folder")
            .map(|e| (*e, path(id(e))))
            .collect();
        folders.sort_by_key(|(_, p)| p.matches('/').count());
        for (folder, path) in &folders {
            sqlx::query(
                "INSERT INTO folders (tenant_id, id, parent_id, name, path, owner_id, legal_hold) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant.as_str())
            .bind(id(folder))
            .bind(parent_folder(folder))
            .bind(folder["attrs"]["name"].as_str().unwrap_or(id(folder)))
            .bind(path)
            .bind(owner_id(folder))
            .bind(folder["attrs"]["legal_hold"].as_bool().unwrap_or(false))
            .execute(&mut *tx)
            .await?;
            written += 1;
        }
        for document in items.iter().filter(|e| e["uid"]["type"] == "Document") {
            let Some(folder) = parent_folder(document) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO documents (tenant_id, id, folder_id, path, name, owner_id, classification, legal_hold) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tenant.as_str())
            .bind(id(document))
            .bind(folder)
            .bind(path(folder))
            .bind(document["attrs"]["name"].as_str().unwrap_or(id(document)))
            .bind(owner_id(document))
            .bind(document["attrs"]["classification"].as_str().unwrap_or("internal"))
            .bind(document["attrs"]["legal_hold"].as_bool().unwrap_or(false))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO document_versions (tenant_id, document_id, version, created_by, note) VALUES ($1, $2, 1, 'seed', 'created')",
            )
            .bind(tenant.as_str())
            .bind(id(document))
            .execute(&mut *tx)
            .await?;
            written += 1;
        }
        for item in &items {
            written += import_shares(&mut tx, &tenant, item).await?;
        }
        tx.commit().await?;
    }
    Ok(written)
}

/// The `shares` rows of an entity's grant parents (`Grant::"user:sam/viewer"`), so the
/// table says what the entities say.
async fn import_shares(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    tenant: &TenantId,
    entity: &Value,
) -> Result<usize, sqlx::Error> {
    let grants = entity["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"] == "Grant")
        .filter_map(|p| p["id"].as_str());
    let mut written = 0;
    for node in grants {
        let Some((kind, grantee, role)) = gatehouse_adapter_sql::rows::grant_parts(node) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO shares (tenant_id, id, resource_type, resource_id, grantee_type, grantee_id, role, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant.as_str())
        .bind(format!("seed-{}-{node}", id(entity)))
        .bind(entity["uid"]["type"].as_str().unwrap_or_default())
        .bind(id(entity))
        .bind(kind)
        .bind(grantee)
        .bind(role)
        .bind(owner_id(entity))
        .execute(&mut **tx)
        .await?;
        written += 1;
    }
    Ok(written)
}

fn id(entity: &Value) -> &str {
    entity["uid"]["id"].as_str().unwrap_or_default()
}

fn owner_id(entity: &Value) -> &str {
    entity["attrs"]["owner"]["__entity"]["id"]
        .as_str()
        .unwrap_or_default()
}

fn parent_folder(entity: &Value) -> Option<&str> {
    entity["parents"]
        .as_array()?
        .iter()
        .find(|p| p["type"] == "Folder")
        .and_then(|p| p["id"].as_str())
}

/// `/<root>/…/<folder>/`, following the parent links.
fn folder_path(parents: &HashMap<&str, Option<&str>>, folder: &str) -> String {
    let mut chain = vec![folder];
    let mut current = folder;
    // Bounded, so that a cycle in bad data ends.
    while let Some(Some(parent)) = parents.get(current)
        && chain.len() <= parents.len()
    {
        current = parent;
        chain.push(current);
    }
    chain.reverse();
    format!("/{}/", chain.join("/"))
}
