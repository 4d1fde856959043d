//! Crypto-shredding a tenant: its keys are destroyed, so no stored object of it can ever
//! be opened again, and every plaintext copy Gatehouse made of its contents goes with
//! them: the text extracted for search (in PostgreSQL) and the search index.

use gatehouse_adapter_blobs::{KeyError, KeyRing};
use gatehouse_core::TenantId;
use sqlx::PgPool;

use crate::{IndexError, SearchIndex};

/// What a shred removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shredded {
    /// Tenant keys destroyed.
    pub keys: u64,
    /// Extracted texts deleted.
    pub texts: u64,
}

/// Why a shred did not finish (run it again: each step can be repeated).
#[derive(Debug, thiserror::Error)]
pub enum ShredError {
    /// The keys could not be destroyed.
    #[error("the tenant's keys: {0}")]
    Keys(#[from] KeyError),
    /// The extracted texts could not be deleted.
    #[error("the extracted texts: {0}")]
    Database(#[from] sqlx::Error),
    /// The index could not drop the tenant's documents.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Shreds `tenant`. The keys go first, so that nothing can be extracted again once the
/// texts are gone (other processes' key caches forget them within
/// [`gatehouse_adapter_blobs::keys::UNWRAPPED_FOR`]); then, holding the tenant's outbox lock
/// so that no worker is indexing meanwhile, its texts and pending index jobs (the object
/// deletions stay queued); then its index.
///
/// # Errors
/// [`ShredError`] naming the step that failed; the steps before it stay done.
pub async fn shred_tenant(
    keys: &KeyRing,
    pool: &PgPool,
    index: &dyn SearchIndex,
    tenant: &TenantId,
) -> Result<Shredded, ShredError> {
    let destroyed = keys.destroy(tenant).await?;
    let mut tx = gatehouse_schemas::tenant_tx(pool, tenant).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('gatehouse_outbox:' || $1, 0))")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    let texts = sqlx::query("DELETE FROM document_texts WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM outbox WHERE tenant_id = $1 AND kind = 'index'")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    index.remove_tenant(tenant).await?;
    Ok(Shredded {
        keys: destroyed,
        texts,
    })
}
