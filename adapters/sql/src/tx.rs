//! A transaction that belongs to one tenant.

use gatehouse_adapter_kit::AdapterError;
use gatehouse_core::TenantId;
use sqlx::{PgPool, Postgres, Transaction};

/// A transaction in which row-level security shows only `tenant`'s rows. Queries take it
/// (never a bare pool) and also bind [`TenantTx::tenant`] in their own conditions, so
/// every statement names its tenant twice: once by the policy, once by the query.
pub struct TenantTx {
    /// The transaction.
    pub tx: Transaction<'static, Postgres>,
    tenant: TenantId,
}

impl TenantTx {
    /// Begins a transaction for `tenant`.
    ///
    /// # Errors
    /// [`AdapterError::Unavailable`] when PostgreSQL cannot be reached.
    pub async fn begin(pool: &PgPool, tenant: &TenantId) -> Result<Self, AdapterError> {
        let tx = gatehouse_schemas::tenant_tx(pool, tenant)
            .await
            .map_err(|e| AdapterError::from_db(e, "tenant"))?;
        Ok(Self {
            tx,
            tenant: tenant.clone(),
        })
    }

    /// The tenant, as bound in queries (owned, so that it can be bound while the
    /// transaction is borrowed to run the query).
    pub fn tenant(&self) -> String {
        self.tenant.as_str().to_string()
    }

    /// Commits.
    ///
    /// # Errors
    /// The database error, as an [`AdapterError`].
    pub async fn commit(self) -> Result<(), AdapterError> {
        self.tx
            .commit()
            .await
            .map_err(|e| AdapterError::from_db(e, "transaction"))
    }
}
