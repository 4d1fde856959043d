//! Sharing: grants of a role on a folder or document to a user or a group, and external
//! links that let anyone holding them read one document until they expire.
//!
//! A grant is entity data for the policies (see `schemas/gatehouse.cedarschema`): the node
//! `Grant::"<user|group>:<id>/<role>"` becomes a parent of the shared folder or document,
//! and the grantees carry that node in their `viewer_grants` or `editor_grants`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use gatehouse_adapter_kit::AdapterError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cedar_entities;
use gatehouse_adapter_sql::TenantTx;

/// A grant as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Share {
    /// Its id.
    pub id: String,
    /// `Folder` or `Document`.
    pub resource_type: String,
    /// The folder's or document's id.
    pub resource_id: String,
    /// `User` or `Group`.
    pub grantee_type: String,
    /// The user's or group's id.
    pub grantee_id: String,
    /// `viewer` or `editor`.
    pub role: String,
    /// The principal that shared.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Who gets which role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grantee {
    /// `User` or `Group`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Their id.
    pub id: String,
    /// `viewer` or `editor`.
    pub role: String,
}

impl Grantee {
    fn check(&self) -> Result<(), AdapterError> {
        if !matches!(self.kind.as_str(), "User" | "Group") {
            return Err(AdapterError::InvalidInput("type: User or Group".into()));
        }
        if !matches!(self.role.as_str(), "viewer" | "editor") {
            return Err(AdapterError::InvalidInput("role: viewer or editor".into()));
        }
        Ok(())
    }

    /// The grant node's id, e.g. `group:acme-legal/editor`.
    fn node(&self) -> String {
        format!(
            "{}:{}/{}",
            self.kind.to_ascii_lowercase(),
            self.id,
            self.role
        )
    }
}

const COLUMNS: &str =
    "id, resource_type, resource_id, grantee_type, grantee_id, role, created_by, created_at";

/// Grants `grantee` its role on `resource_type::resource_id` (which must exist).
pub async fn grant(
    tx: &mut TenantTx,
    resource_type: &'static str,
    resource_id: &str,
    grantee: &Grantee,
    created_by: &str,
) -> Result<Share, AdapterError> {
    grantee.check()?;
    exists(tx, resource_type, resource_id).await?;
    exists(tx, &grantee.kind, &grantee.id)
        .await
        .map_err(|_| AdapterError::NotFound("grantee"))?;
    let share: Share = sqlx::query_as(&format!(
        "INSERT INTO shares (tenant_id, id, resource_type, resource_id, grantee_type, grantee_id, role, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(resource_type)
    .bind(resource_id)
    .bind(&grantee.kind)
    .bind(&grantee.id)
    .bind(&grantee.role)
    .bind(created_by)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "share"))?;
    let node = json!({ "type": "Grant", "id": grantee.node() });
    sqlx::query(
        "UPDATE entities SET parents = parents || jsonb_build_array($4::jsonb), updated_at = now() \
         WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3 AND NOT parents @> jsonb_build_array($4::jsonb)",
    )
    .bind(tx.tenant())
    .bind(resource_type)
    .bind(resource_id)
    .bind(&node)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "share"))?;
    carry_node(tx, grantee).await?;
    Ok(share)
}

/// Makes the grantee (or every member of the grantee group) carry the grant node.
async fn carry_node(tx: &mut TenantTx, grantee: &Grantee) -> Result<(), AdapterError> {
    let attr = format!("{}_grants", grantee.role);
    let node_ref = cedar_entities::entity_ref("Grant", &grantee.node());
    let member_of = json!([{ "type": "Group", "id": grantee.id }]);
    sqlx::query(
        "UPDATE entities SET attrs = jsonb_set(attrs, ARRAY[$2], COALESCE(attrs -> $2, '[]') || jsonb_build_array($3::jsonb)), \
           updated_at = now() \
         WHERE tenant_id = $1 AND entity_type = 'User' \
           AND (($4 = 'User' AND entity_id = $5) OR ($4 = 'Group' AND parents @> $6)) \
           AND NOT COALESCE(attrs -> $2, '[]') @> jsonb_build_array($3::jsonb)",
    )
    .bind(tx.tenant())
    .bind(attr)
    .bind(node_ref)
    .bind(&grantee.kind)
    .bind(&grantee.id)
    .bind(member_of)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "share"))?;
    Ok(())
}

/// The grants on `resource_type::resource_id`.
pub async fn list(
    tx: &mut TenantTx,
    resource_type: &'static str,
    resource_id: &str,
) -> Result<Vec<Share>, AdapterError> {
    exists(tx, resource_type, resource_id).await?;
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM shares WHERE tenant_id = $1 AND resource_type = $2 AND resource_id = $3 \
         ORDER BY created_at, id"
    ))
    .bind(tx.tenant())
    .bind(resource_type)
    .bind(resource_id)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "share"))
}

/// Takes back `grantee`'s role on `resource_type::resource_id`.
pub async fn revoke(
    tx: &mut TenantTx,
    resource_type: &'static str,
    resource_id: &str,
    grantee: &Grantee,
) -> Result<(), AdapterError> {
    grantee.check()?;
    let removed = sqlx::query(
        "DELETE FROM shares WHERE tenant_id = $1 AND resource_type = $2 AND resource_id = $3 \
           AND grantee_type = $4 AND grantee_id = $5 AND role = $6",
    )
    .bind(tx.tenant())
    .bind(resource_type)
    .bind(resource_id)
    .bind(&grantee.kind)
    .bind(&grantee.id)
    .bind(&grantee.role)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "share"))?;
    if removed.rows_affected() == 0 {
        return Err(AdapterError::NotFound("share"));
    }
    let node = json!({ "type": "Grant", "id": grantee.node() });
    sqlx::query(
        "UPDATE entities SET parents = COALESCE((SELECT jsonb_agg(p) FROM jsonb_array_elements(parents) p WHERE p <> $4), '[]'), \
           updated_at = now() \
         WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
    )
    .bind(tx.tenant())
    .bind(resource_type)
    .bind(resource_id)
    .bind(node)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "share"))?;
    Ok(())
}

/// A new external link; its token is shown once and only its hash is kept.
#[derive(Debug, Serialize)]
pub struct NewLink {
    /// The link's id (its `ShareLink` entity).
    pub id: String,
    /// The secret to hand out: `<tenant>.<id>.<random>`.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// The longest a link may live.
pub const MAX_LINK_SECONDS: i64 = 30 * 24 * 3600;

/// Creates a link to read document `document_id` for `seconds`.
pub async fn create_link(
    tx: &mut TenantTx,
    document_id: &str,
    seconds: i64,
    created_by: &str,
) -> Result<NewLink, AdapterError> {
    if !(1..=MAX_LINK_SECONDS).contains(&seconds) {
        return Err(AdapterError::InvalidInput(format!(
            "expires_in_seconds: 1 to {MAX_LINK_SECONDS}"
        )));
    }
    exists(tx, "Document", document_id).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let token = format!("{}.{id}.{secret}", tx.tenant());
    let expires_at = Utc::now() + chrono::Duration::seconds(seconds);
    sqlx::query(
        "INSERT INTO share_links (tenant_id, id, document_id, token_sha256, expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tx.tenant())
    .bind(&id)
    .bind(document_id)
    .bind(format!("{:x}", Sha256::digest(token.as_bytes())))
    .bind(expires_at)
    .bind(created_by)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "share link"))?;
    let attrs = json!({
        "document": cedar_entities::entity_ref("Document", document_id),
        "expires_at": { "__extn": { "fn": "datetime", "arg": expires_at.format("%Y-%m-%dT%H:%M:%SZ").to_string() } },
    });
    cedar_entities::insert(tx, "ShareLink", &id, attrs, None).await?;
    Ok(NewLink {
        id,
        token,
        expires_at,
    })
}

/// Fails with [`AdapterError::NotFound`] unless the entity exists in this tenant.
async fn exists(tx: &mut TenantTx, entity_type: &str, id: &str) -> Result<(), AdapterError> {
    let found: Option<Value> = sqlx::query_scalar(
        "SELECT attrs FROM entities WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
    )
    .bind(tx.tenant())
    .bind(entity_type)
    .bind(id)
    .fetch_optional(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "entity"))?;
    found
        .map(|_| ())
        .ok_or(AdapterError::NotFound(match entity_type {
            "Folder" => "folder",
            "Document" => "document",
            _ => "entity",
        }))
}
