//! The tenant keys, wrapped, in PostgreSQL; unwrapped ones kept in memory by tenant and id.

use std::sync::Arc;

use gatehouse_core::TenantId;
use sqlx::PgPool;

use crate::envelope::{MasterKey, TenantKey};

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key was destroyed (or never existed): its objects cannot be read.
    #[error("the tenant key is gone")]
    Gone,
    /// PostgreSQL cannot be reached.
    #[error("key store unavailable")]
    Unavailable(#[from] sqlx::Error),
    /// A stored key that the master key does not open.
    #[error("a stored tenant key does not open with the master key")]
    Corrupt,
}

/// How long an unwrapped tenant key is kept in memory.
pub const UNWRAPPED_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// Every tenant's keys (clones share the cache of unwrapped keys).
#[derive(Clone)]
pub struct KeyRing {
    master: MasterKey,
    pool: PgPool,
    unwrapped: moka::sync::Cache<(TenantId, [u8; 16]), Arc<TenantKey>>,
}

impl KeyRing {
    /// Keys wrapped by `master`, stored through `pool` (the application role).
    pub fn new(master: MasterKey, pool: PgPool) -> Self {
        Self {
            master,
            pool,
            unwrapped: moka::sync::Cache::builder()
                .max_capacity(10_000)
                // Another process (or KeyRing) may destroy a tenant's keys: an unwrapped
                // copy here outlives that by at most this long.
                .time_to_live(UNWRAPPED_FOR)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// The key new objects of `tenant` are sealed with: its newest, or a new one.
    ///
    /// # Errors
    /// [`KeyError`].
    pub async fn current(&self, tenant: &TenantId) -> Result<Arc<TenantKey>, KeyError> {
        let mut tx = gatehouse_schemas::tenant_tx(&self.pool, tenant).await?;
        let newest: Option<(uuid::Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT key_id, wrapped FROM tenant_keys WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id, wrapped)) = newest {
            return self.unwrap(tenant, *id.as_bytes(), &wrapped);
        }
        let (key, wrapped) = self.master.new_tenant_key(tenant);
        sqlx::query("INSERT INTO tenant_keys (tenant_id, key_id, wrapped) VALUES ($1, $2, $3)")
            .bind(tenant.as_str())
            .bind(uuid::Uuid::from_bytes(key.id()))
            .bind(wrapped)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let key = Arc::new(key);
        self.unwrapped
            .insert((tenant.clone(), key.id()), key.clone());
        Ok(key)
    }

    /// The key `id` of `tenant`, to open an object it sealed.
    ///
    /// # Errors
    /// [`KeyError::Gone`] once destroyed.
    pub async fn get(&self, tenant: &TenantId, id: [u8; 16]) -> Result<Arc<TenantKey>, KeyError> {
        if let Some(key) = self.unwrapped.get(&(tenant.clone(), id)) {
            return Ok(key);
        }
        let mut tx = gatehouse_schemas::tenant_tx(&self.pool, tenant).await?;
        let wrapped: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT wrapped FROM tenant_keys WHERE tenant_id = $1 AND key_id = $2",
        )
        .bind(tenant.as_str())
        .bind(uuid::Uuid::from_bytes(id))
        .fetch_optional(&mut *tx)
        .await?;
        let wrapped = wrapped.ok_or(KeyError::Gone)?;
        self.unwrap(tenant, id, &wrapped)
    }

    /// Destroys every key of `tenant`: all its objects become unreadable, for good.
    /// Returns how many keys were destroyed.
    ///
    /// # Errors
    /// [`KeyError::Unavailable`].
    pub async fn destroy(&self, tenant: &TenantId) -> Result<u64, KeyError> {
        let mut tx = gatehouse_schemas::tenant_tx(&self.pool, tenant).await?;
        let gone = sqlx::query("DELETE FROM tenant_keys WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        let tenant = tenant.clone();
        self.unwrapped
            .invalidate_entries_if(move |(t, _), _| *t == tenant)
            .map_err(|_| KeyError::Corrupt)?;
        self.unwrapped.run_pending_tasks();
        Ok(gone)
    }

    fn unwrap(
        &self,
        tenant: &TenantId,
        id: [u8; 16],
        wrapped: &[u8],
    ) -> Result<Arc<TenantKey>, KeyError> {
        let key = Arc::new(
            self.master
                .unwrap_tenant_key(tenant, id, wrapped)
                .map_err(|_| KeyError::Corrupt)?,
        );
        self.unwrapped.insert((tenant.clone(), id), key.clone());
        Ok(key)
    }
}
