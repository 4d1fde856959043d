//! Keeping the Cedar entities the gateway decides with in step with the adapter's tables,
//! in the same transaction: a folder or document exists for the policies exactly when it
//! exists here. Grant parents (shares) on an entity are kept when its attributes change.

use gatehouse_adapter_kit::AdapterError;
use serde_json::{Value, json};

use gatehouse_adapter_sql::TenantTx;

/// A reference to an entity in Cedar's JSON entity format.
pub fn entity_ref(entity_type: &str, id: &str) -> Value {
    json!({ "__entity": { "type": entity_type, "id": id } })
}

/// A new folder or document entity: its tenant, name, owner and legal hold (plus
/// `extra` attributes), `in` its parent folder.
pub async fn insert(
    tx: &mut TenantTx,
    entity_type: &str,
    id: &str,
    mut attrs: Value,
    parent_folder: Option<&str>,
) -> Result<(), AdapterError> {
    attrs["tenant"] = entity_ref("Tenant", &tx.tenant());
    let parents: Vec<Value> = parent_folder
        .map(|f| json!({ "type": "Folder", "id": f }))
        .into_iter()
        .collect();
    sqlx::query(
        "INSERT INTO entities (tenant_id, entity_type, entity_id, attrs, parents) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tx.tenant())
    .bind(entity_type)
    .bind(id)
    .bind(attrs)
    .bind(Value::Array(parents))
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "entity"))?;
    Ok(())
}

/// Sets one attribute of an entity.
pub async fn set_attr(
    tx: &mut TenantTx,
    entity_type: &str,
    id: &str,
    attr: &str,
    value: Value,
) -> Result<(), AdapterError> {
    sqlx::query(
        "UPDATE entities SET attrs = jsonb_set(attrs, ARRAY[$4], $5), updated_at = now() \
         WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
    )
    .bind(tx.tenant())
    .bind(entity_type)
    .bind(id)
    .bind(attr)
    .bind(value)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "entity"))?;
    Ok(())
}

/// Removes entities of one type.
pub async fn delete(
    tx: &mut TenantTx,
    entity_type: &str,
    ids: &[String],
) -> Result<(), AdapterError> {
    sqlx::query(
        "DELETE FROM entities WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = ANY($3)",
    )
    .bind(tx.tenant())
    .bind(entity_type)
    .bind(ids)
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "entity"))?;
    Ok(())
}

/// Makes `folder` the one folder parent of an entity (grant parents stay).
pub async fn set_folder(
    tx: &mut TenantTx,
    entity_type: &str,
    id: &str,
    folder: &str,
) -> Result<(), AdapterError> {
    sqlx::query(
        "UPDATE entities SET parents = COALESCE((SELECT jsonb_agg(p) FROM jsonb_array_elements(parents) p \
             WHERE p ->> 'type' <> 'Folder'), '[]') || jsonb_build_array($4::jsonb), updated_at = now() \
         WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
    )
    .bind(tx.tenant())
    .bind(entity_type)
    .bind(id)
    .bind(json!({ "type": "Folder", "id": folder }))
    .execute(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "entity"))?;
    Ok(())
}
