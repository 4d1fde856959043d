//! Entities pushed by tenant apps that keep their own data (not on Gatehouse's adapters):
//! upserted and deleted in the caller's tenant only, each checked against the Cedar
//! schema before anything is written, all of a call in one transaction.

use cedar_policy::Entities;
use serde::Deserialize;
use serde_json::{Value, json};

use super::grants::database;
use super::{ApiError, Caller, PdpApi, Reply, parse, tenant_uid};

/// The most entities one call may push or delete.
pub const MAX_ENTITIES: usize = 1000;

/// Types the gateway keeps itself: the tenant directory, the role and capability
/// hierarchies, grant nodes (from shares) and share links.
const NOT_PUSHABLE: [&str; 5] = ["Tenant", "Role", "Capability", "Grant", "ShareLink"];

#[derive(Deserialize)]
struct UpsertIn {
    entities: Vec<Value>,
}

#[derive(Deserialize)]
struct DeleteIn {
    uids: Vec<UidIn>,
}

#[derive(Deserialize)]
struct UidIn {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

/// One entity, checked and ready to write.
struct Checked {
    kind: String,
    id: String,
    attrs: Value,
    parents: Value,
}

impl PdpApi {
    /// `PUT /gatehouse/v1/entities`: upserts.
    pub(super) async fn upsert_entities(
        &self,
        caller: &Caller,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let pool = self.writable_pool().await?;
        self.permitted(caller, "pdp:entities", tenant_uid(&caller.tenant))
            .await?;
        let upsert: UpsertIn = parse(body)?;
        too_many(upsert.entities.len())?;
        let bundle = self.pdp.bundle().snapshot();
        let checked = upsert
            .entities
            .into_iter()
            .enumerate()
            .map(|(i, e)| check(bundle.schema(), caller, e).map_err(|e| at(i, e)))
            .collect::<Result<Vec<Checked>, ApiError>>()?;
        let mut tx = gatehouse_schemas::tenant_tx(pool, &caller.tenant)
            .await
            .map_err(database)?;
        for e in &checked {
            sqlx::query(
                "INSERT INTO entities (tenant_id, entity_type, entity_id, attrs, parents) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, entity_type, entity_id) \
                 DO UPDATE SET attrs = EXCLUDED.attrs, parents = EXCLUDED.parents, updated_at = now()",
            )
            .bind(caller.tenant.as_str())
            .bind(&e.kind)
            .bind(&e.id)
            .bind(&e.attrs)
            .bind(&e.parents)
            .execute(&mut *tx)
            .await
            .map_err(database)?;
        }
        tx.commit().await.map_err(database)?;
        self.changed(caller);
        Ok(Reply::ok(json!({ "upserted": checked.len() })))
    }

    /// `DELETE /gatehouse/v1/entities`: deletes by uid.
    pub(super) async fn delete_entities(
        &self,
        caller: &Caller,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let pool = self.writable_pool().await?;
        self.permitted(caller, "pdp:entities", tenant_uid(&caller.tenant))
            .await?;
        let delete: DeleteIn = parse(body)?;
        too_many(delete.uids.len())?;
        for (i, uid) in delete.uids.iter().enumerate() {
            pushable(&uid.kind).map_err(|e| at(i, e))?;
        }
        let mut tx = gatehouse_schemas::tenant_tx(pool, &caller.tenant)
            .await
            .map_err(database)?;
        let mut deleted = 0;
        for uid in &delete.uids {
            let done = sqlx::query(
                "DELETE FROM entities WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
            )
            .bind(caller.tenant.as_str())
            .bind(&uid.kind)
            .bind(&uid.id)
            .execute(&mut *tx)
            .await
            .map_err(database)?;
            deleted += done.rows_affected();
        }
        tx.commit().await.map_err(database)?;
        self.changed(caller);
        Ok(Reply::ok(json!({ "deleted": deleted })))
    }
}

/// Checks one pushed entity: a pushable type of the schema, in the caller's tenant (the
/// `tenant` attribute is set to it), capabilities only through grants, and attributes and
/// parents as the schema declares them.
fn check(
    schema: &cedar_policy::Schema,
    caller: &Caller,
    mut entity: Value,
) -> Result<Checked, ApiError> {
    let kind = entity["uid"]["type"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id = entity["uid"]["id"].as_str().unwrap_or_default().to_string();
    if kind.is_empty() || id.is_empty() {
        return Err(ApiError::missing("uid.type and uid.id"));
    }
    pushable(&kind)?;
    if !entity["attrs"].is_object() {
        entity["attrs"] = json!({});
    }
    if !entity["parents"].is_array() {
        entity["parents"] = json!([]);
    }
    let own = json!({ "__entity": { "type": "Tenant", "id": caller.tenant.as_str() } });
    match entity["attrs"].get("tenant") {
        None => entity["attrs"]["tenant"] = own,
        Some(given)
            if *given == own
                || given["id"] == own["__entity"]["id"] && given["type"] == "Tenant" =>
        {
            entity["attrs"]["tenant"] = own;
        }
        Some(_) => {
            return Err(ApiError::bad(
                "tenant_mismatch",
                format!(
                    "{kind}::{id:?} names another tenant; entities are pushed into the caller's"
                ),
            ));
        }
    }
    let capability = |p: &Value| p["type"] == "Capability";
    if kind == "Agent"
        && entity["parents"]
            .as_array()
            .is_some_and(|p| p.iter().any(capability))
    {
        return Err(ApiError::bad(
            "capability_via_grants",
            "an agent's capabilities are granted with POST /gatehouse/v1/agents/{id}/grants",
        ));
    }
    Entities::from_json_value(json!([entity]), Some(schema)).map_err(|e| {
        ApiError::bad(
            "invalid_entity",
            format!("{kind}::{id:?} does not fit the schema: {e}"),
        )
    })?;
    Ok(Checked {
        kind,
        id,
        attrs: entity["attrs"].take(),
        parents: entity["parents"].take(),
    })
}

fn pushable(kind: &str) -> Result<(), ApiError> {
    if NOT_PUSHABLE.contains(&kind) {
        return Err(ApiError::bad(
            "type_not_pushable",
            format!("{kind} entities are kept by Gatehouse itself"),
        ));
    }
    Ok(())
}

fn too_many(n: usize) -> Result<(), ApiError> {
    if n > MAX_ENTITIES {
        return Err(ApiError::new(
            413,
            "too_many_entities",
            format!("{n} entities; at most {MAX_ENTITIES} per call"),
        ));
    }
    Ok(())
}

/// An item's error, naming the item.
fn at(index: usize, mut error: ApiError) -> ApiError {
    error.message = format!("item {index}: {}", error.message);
    error
}
