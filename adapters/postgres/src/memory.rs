//! Memory lanes: an agent's memory kept for one user, as keyed values in PostgreSQL. The
//! lane is the Cedar resource (`MemoryLane`, whose `agent` and `user` the policies
//! compare with the principal), so the gateway decides `memory:read`, `memory:write` and
//! `memory:search` on the lane before any call arrives here; this module only ever sees
//! the lane it was admitted for, in its tenant's transaction.

use chrono::{DateTime, Utc};
use gatehouse_adapter_kit::AdapterError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::input::Page;
use gatehouse_adapter_sql::TenantTx;

/// One remembered item.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MemoryItem {
    /// The lane.
    pub lane_id: String,
    /// Its key within the lane.
    pub key: String,
    /// What is remembered (any JSON).
    pub value: Value,
    /// The text a search finds it by.
    pub text: String,
    /// Who wrote it last (a Cedar uid: the agent, or the user).
    pub written_by: String,
    /// When.
    pub updated_at: DateTime<Utc>,
}

/// An item to write.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// Its key: 1 to 200 characters, no control characters.
    pub key: String,
    /// The value.
    pub value: Value,
    /// The searchable text; a string value is its own text when this is absent.
    #[serde(default)]
    pub text: Option<String>,
}

const MAX_KEY_CHARS: usize = 200;
const MAX_VALUE_BYTES: usize = 64 * 1024;
const MAX_TEXT_CHARS: usize = 10_000;
const COLUMNS: &str = "lane_id, key, value, text, written_by, updated_at";

/// Checks a key.
///
/// # Errors
/// [`AdapterError::InvalidInput`] for an empty, long or control-character key.
pub fn key(value: &str) -> Result<&str, AdapterError> {
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS || value.chars().any(char::is_control) {
        return Err(AdapterError::InvalidInput(format!(
            "key: 1 to {MAX_KEY_CHARS} characters, no control characters"
        )));
    }
    Ok(value)
}

/// Writes (or overwrites) `item` in `lane`, as `writer`.
pub async fn put(
    tx: &mut TenantTx,
    lane: &str,
    item: &NewItem,
    writer: &str,
) -> Result<MemoryItem, AdapterError> {
    key(&item.key)?;
    let value = item.value.to_string();
    if value.len() > MAX_VALUE_BYTES {
        return Err(AdapterError::InvalidInput(format!(
            "value: at most {MAX_VALUE_BYTES} bytes of JSON"
        )));
    }
    // PostgreSQL's jsonb holds no NUL character.
    if value.contains("\\u0000") {
        return Err(AdapterError::InvalidInput(
            "value: no NUL characters".into(),
        ));
    }
    let text = match (&item.text, &item.value) {
        (Some(text), _) => text.clone(),
        (None, Value::String(text)) => text.clone(),
        (None, _) => String::new(),
    };
    if text.chars().count() > MAX_TEXT_CHARS || text.contains('\0') {
        return Err(AdapterError::InvalidInput(format!(
            "text: at most {MAX_TEXT_CHARS} characters"
        )));
    }
    sqlx::query_as(&format!(
        "INSERT INTO memory_items (tenant_id, lane_id, key, value, text, written_by) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, lane_id, key) DO UPDATE SET value = EXCLUDED.value, \
           text = EXCLUDED.text, written_by = EXCLUDED.written_by, updated_at = clock_timestamp() \
         RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant())
    .bind(lane)
    .bind(&item.key)
    .bind(&item.value)
    .bind(&text)
    .bind(writer)
    .fetch_one(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "memory item"))
}

/// The item `key` of `lane`.
pub async fn get(tx: &mut TenantTx, lane: &str, key: &str) -> Result<MemoryItem, AdapterError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM memory_items WHERE tenant_id = $1 AND lane_id = $2 AND key = $3"
    ))
    .bind(tx.tenant())
    .bind(lane)
    .bind(key)
    .fetch_optional(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "memory item"))?
    .ok_or(AdapterError::NotFound("memory item"))
}

/// Forgets the item `key` of `lane`; whether there was one.
pub async fn delete(tx: &mut TenantTx, lane: &str, key: &str) -> Result<bool, AdapterError> {
    let done =
        sqlx::query("DELETE FROM memory_items WHERE tenant_id = $1 AND lane_id = $2 AND key = $3")
            .bind(tx.tenant())
            .bind(lane)
            .bind(key)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| AdapterError::from_db(e, "memory item"))?;
    Ok(done.rows_affected() > 0)
}

/// One page of `lane`'s items, by key.
pub async fn list(
    tx: &mut TenantTx,
    lane: &str,
    page: &Page,
) -> Result<Vec<MemoryItem>, AdapterError> {
    let after = page.after.as_ref().map(|(_, key)| key.clone());
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM memory_items WHERE tenant_id = $1 AND lane_id = $2 \
           AND ($3::text IS NULL OR key > $3) ORDER BY key LIMIT $4"
    ))
    .bind(tx.tenant())
    .bind(lane)
    .bind(after)
    .bind(page.limit)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "memory item"))
}

/// The items of `lane` whose text has every word of `query`, best first.
pub async fn search(
    tx: &mut TenantTx,
    lane: &str,
    query: &str,
    limit: i64,
) -> Result<Vec<MemoryItem>, AdapterError> {
    if query.trim().is_empty() || query.chars().count() > 500 || query.contains('\0') {
        return Err(AdapterError::InvalidInput(
            "q: 1 to 500 characters, no NUL".into(),
        ));
    }
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM memory_items, plainto_tsquery('simple', $3) q \
         WHERE tenant_id = $1 AND lane_id = $2 AND search @@ q \
         ORDER BY ts_rank(search, q) DESC, key LIMIT $4"
    ))
    .bind(tx.tenant())
    .bind(lane)
    .bind(query)
    .bind(limit)
    .fetch_all(&mut *tx.tx)
    .await
    .map_err(|e| AdapterError::from_db(e, "memory item"))
}
