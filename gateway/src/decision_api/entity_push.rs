//! Entities pushed by tenant apps that keep their own data (not on Gatehouse's adapters):
//! upserted and deleted in the caller's tenant only, each checked against the Cedar
//! schema before anything is written, all of a call in one transaction.

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid};
use serde::Deserialize;
use serde_json::{Value, json};

use gatehouse_pdp::uid;

use super::{ApiError, Caller, DecisionApi, Permit, Reply, database, parse};

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

impl DecisionApi {
    /// The pool to write with, once the caller's `pdp:entities` is allowed.
    async fn may_push(&self, caller: &Caller) -> Result<(&sqlx::PgPool, Permit), ApiError> {
        let pool = self.writable_pool().await?;
        let permit = self
            .permitted(caller, "pdp:entities", uid::tenant(&caller.tenant))
            .await?;
        Ok((pool, permit))
    }

    /// `PUT /gatehouse/v1/entities`: upserts.
    pub(super) async fn upsert_entities(
        &self,
        caller: &Caller,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let (pool, permit) = self.may_push(caller).await?;
        let upsert: UpsertIn = parse(body)?;
        too_many(upsert.entities.len())?;
        let bundle = self.authorizer.pdp().bundle().snapshot();
        let checked = upsert
            .entities
            .into_iter()
            .enumerate()
            .map(|(i, e)| check_entity(bundle.schema(), caller, e).map_err(|e| in_item(i, e)))
            .collect::<Result<Vec<Checked>, ApiError>>()?;
        let mut tx = gatehouse_schemas::tenant_tx(pool, &caller.tenant)
            .await
            .map_err(database)?;
        for e in &checked {
            kept_by_adapter(&mut tx, caller, &e.kind, &e.id).await?;
            if e.kind == "Agent" {
                revoke_if_user_changes(&mut tx, caller, &e.id, &e.attrs["acts_for"]).await?;
            }
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
        self.record_each(
            caller,
            PUSHED,
            &permit,
            checked.iter().map(|e| (&*e.kind, &*e.id)),
        );
        Ok(Reply::ok(json!({ "upserted": checked.len() })))
    }

    /// `DELETE /gatehouse/v1/entities`: deletes by uid.
    pub(super) async fn delete_entities(
        &self,
        caller: &Caller,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let (pool, permit) = self.may_push(caller).await?;
        let delete: DeleteIn = parse(body)?;
        too_many(delete.uids.len())?;
        for (i, uid) in delete.uids.iter().enumerate() {
            pushable(&uid.kind).map_err(|e| in_item(i, e))?;
        }
        let mut tx = gatehouse_schemas::tenant_tx(pool, &caller.tenant)
            .await
            .map_err(database)?;
        let mut deleted = 0;
        for uid in &delete.uids {
            kept_by_adapter(&mut tx, caller, &uid.kind, &uid.id).await?;
            forget_what_belongs_to(&mut tx, caller, &uid.kind, &uid.id).await?;
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
        let uids = delete.uids.iter().map(|u| (&*u.kind, &*u.id));
        self.record_each(caller, DELETED, &permit, uids);
        Ok(Reply::ok(json!({ "deleted": deleted })))
    }
}

/// The audit routes of the entities written and deleted.
const PUSHED: &str = "PUT /gatehouse/v1/entities";
const DELETED: &str = "DELETE /gatehouse/v1/entities";

impl DecisionApi {
    /// One audit record per entity written or deleted, naming it as the resource of the
    /// caller's `pdp:entities` permission (decided on the tenant), so the log says what
    /// each push changed.
    fn record_each<'e>(
        &self,
        caller: &Caller,
        route: &str,
        permit: &Permit,
        uids: impl Iterator<Item = (&'e str, &'e str)>,
    ) {
        for (kind, id) in uids {
            let Ok(kind) = kind.parse::<EntityTypeName>() else {
                continue;
            };
            let mut request = permit.request.clone();
            request.resource = EntityUid::from_type_name_and_id(kind, EntityId::new(id));
            let origin = caller.origin(route, &request);
            self.authorizer
                .record_covered(&request, &permit.decision, &origin);
        }
    }
}

/// Checks one pushed entity: a pushable type of the schema, in the caller's tenant (the
/// `tenant` attribute is set to it), capabilities only through grants, and attributes and
/// parents as the schema declares them. What is stored is Cedar's own rendering of the
/// parsed entity, never the request's JSON: whatever spelling Cedar accepted, the stored
/// parents are plain `{"type", "id"}` pairs that the checks here and the store's queries
/// read.
fn check_entity(
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
    if entity.get("parents").is_none() {
        entity["parents"] = json!([]);
    }
    let own = json!({ "__entity": { "type": "Tenant", "id": caller.tenant.as_str() } });
    if let Some(given) = entity["attrs"].get("tenant") {
        let names_own =
            *given == own || (given["type"] == "Tenant" && given["id"] == own["__entity"]["id"]);
        if !names_own {
            return Err(ApiError::bad(
                "tenant_mismatch",
                format!(
                    "{kind}::{id:?} names another tenant; entities are pushed into the caller's"
                ),
            ));
        }
    }
    entity["attrs"]["tenant"] = own;
    let invalid = |e: &dyn std::fmt::Display| {
        ApiError::bad(
            "invalid_entity",
            format!("{kind}::{id:?} does not fit the schema: {e}"),
        )
    };
    let parsed = Entity::from_json_value(entity, Some(schema)).map_err(|e| invalid(&e))?;
    let mut normal = parsed.to_json_value().map_err(|e| invalid(&e))?;
    let parents = normal["parents"].take();
    let capability = |p: &Value| p["type"] == "Capability";
    if kind == "Agent" && parents.as_array().is_some_and(|p| p.iter().any(capability)) {
        return Err(ApiError::bad(
            "capability_via_grants",
            "an agent's capabilities are granted with POST /gatehouse/v1/agents/{id}/grants",
        ));
    }
    Ok(Checked {
        kind,
        id,
        attrs: normal["attrs"].take(),
        parents,
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// Folders and documents of the documents adapter are changed through it: the entity and
/// its table row (name, classification, shares) must never disagree.
async fn kept_by_adapter(
    tx: &mut Tx,
    caller: &Caller,
    kind: &str,
    id: &str,
) -> Result<(), ApiError> {
    let table = match kind {
        "Document" => "documents",
        "Folder" => "folders",
        _ => return Ok(()),
    };
    let kept: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE tenant_id = $1 AND id = $2)"
    ))
    .bind(caller.tenant.as_str())
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(database)?;
    if kept {
        return Err(ApiError::new(
            409,
            "kept_by_adapter",
            format!("{kind}::{id:?} is kept by the documents adapter: change it through its API"),
        ));
    }
    Ok(())
}

/// An agent that comes to act for another user loses the grants made for the former one.
async fn revoke_if_user_changes(
    tx: &mut Tx,
    caller: &Caller,
    agent: &str,
    acts_for: &Value,
) -> Result<(), ApiError> {
    let stored: Option<Value> = sqlx::query_scalar(
        "SELECT attrs->'acts_for' FROM entities WHERE tenant_id = $1 AND entity_type = 'Agent' AND entity_id = $2",
    )
    .bind(caller.tenant.as_str())
    .bind(agent)
    .fetch_optional(&mut **tx)
    .await
    .map_err(database)?;
    if stored.is_some_and(|stored| stored != *acts_for) {
        revoke_all(tx, caller, agent).await?;
    }
    Ok(())
}

/// What goes with an entity: an agent's grants (revoked, so no later agent of the same id
/// inherits them), a memory lane's items.
async fn forget_what_belongs_to(
    tx: &mut Tx,
    caller: &Caller,
    kind: &str,
    id: &str,
) -> Result<(), ApiError> {
    match kind {
        "Agent" => revoke_all(tx, caller, id).await,
        "MemoryLane" => {
            sqlx::query("DELETE FROM memory_items WHERE tenant_id = $1 AND lane_id = $2")
                .bind(caller.tenant.as_str())
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(database)?;
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn revoke_all(tx: &mut Tx, caller: &Caller, agent: &str) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE agent_grants SET revoked_at = clock_timestamp(), revoked_by = $3 \
         WHERE tenant_id = $1 AND agent_id = $2 AND revoked_at IS NULL",
    )
    .bind(caller.tenant.as_str())
    .bind(agent)
    .bind(caller.principal.uid.to_string())
    .execute(&mut **tx)
    .await
    .map_err(database)?;
    Ok(())
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
fn in_item(index: usize, mut error: ApiError) -> ApiError {
    error.message = format!("item {index}: {}", error.message);
    error
}
