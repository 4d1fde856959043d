//! The audit table in PostgreSQL.

use std::collections::BTreeMap;

use gatehouse_core::TenantId;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::record::{AuditRecord, GENESIS_HASH, chain_hash};

/// Why the audit store failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// PostgreSQL could not be reached or refused the statement.
    #[error("audit store: {0}")]
    Database(#[from] sqlx::Error),
    /// The spool file cannot be read or removed.
    #[error("audit spool: {0}")]
    Spool(String),
    /// A write took longer than allowed and was abandoned.
    #[error("audit store: no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// A stored record does not parse.
    #[error("audit store: corrupt record at seq {seq}: {message}")]
    Corrupt {
        /// Its sequence number.
        seq: i64,
        /// What is wrong.
        message: String,
    },
}

/// A record as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its position in the tenant's chain, from 1.
    pub seq: i64,
    /// The record.
    pub record: AuditRecord,
}

/// What to look for. Every query is scoped to one tenant.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// The tenant (required).
    pub tenant: TenantId,
    /// Exact principal uid.
    pub principal: Option<String>,
    /// Exact action uid.
    pub action: Option<String>,
    /// Exact resource uid.
    pub resource: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// A policy id among the determining policies.
    pub policy: Option<String>,
    /// From this time (inclusive), microseconds since 1970.
    pub since_us: Option<i64>,
    /// Until this time (exclusive), microseconds since 1970.
    pub until_us: Option<i64>,
    /// At most this many records, newest last.
    pub limit: i64,
}

impl AuditQuery {
    /// Everything of `tenant`, up to 1,000 records.
    pub fn tenant(tenant: TenantId) -> Self {
        Self {
            tenant,
            principal: None,
            action: None,
            resource: None,
            decision: None,
            policy: None,
            since_us: None,
            until_us: None,
            limit: 1_000,
        }
    }
}

/// The result of checking a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The tenant.
    pub tenant: TenantId,
    /// Records checked.
    pub records: i64,
    /// The first broken link: its sequence number and what is wrong.
    pub broken: Option<(i64, String)>,
}

/// A batch of one tenant's records as columns, chained after `seq` and `prev`.
struct ChainedRows {
    seq: Vec<i64>,
    id: Vec<String>,
    time_us: Vec<i64>,
    trace_id: Vec<String>,
    principal: Vec<String>,
    action: Vec<String>,
    resource: Vec<String>,
    decision: Vec<String>,
    /// The determining policies, as a JSON array per row (UNNEST flattens nested arrays).
    policies: Vec<String>,
    canonical: Vec<String>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl ChainedRows {
    fn new(tenant: &TenantId, mut seq: i64, mut prev: Vec<u8>, records: &[&&AuditRecord]) -> Self {
        let n = records.len();
        let mut rows = Self {
            seq: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            time_us: Vec::with_capacity(n),
            trace_id: Vec::with_capacity(n),
            principal: Vec::with_capacity(n),
            action: Vec::with_capacity(n),
            resource: Vec::with_capacity(n),
            decision: Vec::with_capacity(n),
            policies: Vec::with_capacity(n),
            canonical: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        };
        for record in records {
            debug_assert_eq!(&record.tenant, tenant);
            seq += 1;
            let canonical = record.canonical();
            let hash = chain_hash(&prev, &canonical).to_vec();
            rows.seq.push(seq);
            rows.id.push(record.id.clone());
            rows.time_us.push(record.time_us);
            rows.trace_id.push(record.trace_id.clone());
            rows.principal.push(record.principal.clone());
            rows.action.push(record.action.clone());
            rows.resource.push(record.resource.clone());
            rows.decision.push(record.decision.clone());
            rows.policies.push(
                serde_json::to_string(&record.determining_policies).expect("strings serialize"),
            );
            rows.canonical.push(canonical);
            rows.prev_hash
                .push(std::mem::replace(&mut prev, hash.clone()));
            rows.hash.push(hash);
        }
        rows
    }
}

/// The audit table.
#[derive(Debug, Clone)]
pub struct AuditStore {
    pool: PgPool,
}

impl AuditStore {
    /// The store behind `pool` (connected as the application role, or an auditor's role).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Appends records, chaining each tenant's after its last one. Records whose id is
    /// already stored are skipped, so a replayed batch is never written twice.
    ///
    /// # Errors
    /// [`AuditError::Database`]; nothing of the failing tenant's batch is written.
    pub async fn append(&self, records: &[AuditRecord]) -> Result<usize, AuditError> {
        let mut by_tenant: BTreeMap<&TenantId, Vec<&AuditRecord>> = BTreeMap::new();
        for r in records {
            by_tenant.entry(&r.tenant).or_default().push(r);
        }
        let mut written = 0;
        for (tenant, batch) in by_tenant {
            written += self.append_tenant(tenant, &batch).await?;
        }
        Ok(written)
    }

    /// Appends one tenant's batch. Ids are new in the common case, so the batch is first
    /// inserted as it is; only when the log already holds one of its ids (a replay after
    /// a crash, or a retry after a commit whose answer was lost) is it written again,
    /// without the stored ones. Checking every batch up front cost 500 index probes per
    /// flush.
    async fn append_tenant(
        &self,
        tenant: &TenantId,
        batch: &[&AuditRecord],
    ) -> Result<usize, AuditError> {
        match self.insert_chained(tenant, batch, Replay::Unlikely).await {
            Err(AuditError::Database(e)) if is_duplicate_id(&e) => {
                self.insert_chained(tenant, batch, Replay::SkipStored).await
            }
            written => written,
        }
    }

    async fn insert_chained(
        &self,
        tenant: &TenantId,
        batch: &[&AuditRecord],
        replay: Replay,
    ) -> Result<usize, AuditError> {
        let mut tx = self.tenant_tx(tenant).await?;
        // One writer per tenant chain at a time, across gateway replicas.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7425))")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        let existing: Vec<Uuid> = match replay {
            Replay::Unlikely => Vec::new(),
            // Ids are unique across the whole log, not per tenant. They are bound as
            // uuids: a text array cast in the query would be re-evaluated for every row
            // the planner filters. An id that is not a uuid cannot be stored anyway.
            Replay::SkipStored => {
                let ids: Vec<Uuid> = batch.iter().filter_map(|r| r.id.parse().ok()).collect();
                sqlx::query_scalar("SELECT id FROM audit_log WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await?
            }
        };
        let head = sqlx::query(
            "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let (seq, prev): (i64, Vec<u8>) = match head {
            Some(row) => (row.try_get(0)?, row.try_get(1)?),
            None => (0, GENESIS_HASH.to_vec()),
        };
        let fresh: Vec<&&AuditRecord> = batch
            .iter()
            .filter(|r| !is_stored(&r.id, &existing))
            .collect();
        if fresh.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let rows = ChainedRows::new(tenant, seq, prev, &fresh);
        // One statement of fixed text for any batch size (prepared once per connection),
        // the rows as arrays.
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, seq, id, time_us, trace_id, principal, action, resource, decision, policies, canonical, prev_hash, hash)
             SELECT $1, seq, id::uuid, time_us, trace_id, principal, action, resource, decision,
                    ARRAY(SELECT jsonb_array_elements_text(policies::jsonb)), canonical, prev_hash, hash
             FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::bytea[])
               AS r(seq, id, time_us, trace_id, principal, action, resource, decision, policies, canonical, prev_hash, hash)",
        )
        .bind(tenant.as_str())
        .bind(rows.seq)
        .bind(rows.id)
        .bind(rows.time_us)
        .bind(rows.trace_id)
        .bind(rows.principal)
        .bind(rows.action)
        .bind(rows.resource)
        .bind(rows.decision)
        .bind(rows.policies)
        .bind(rows.canonical)
        .bind(rows.prev_hash)
        .bind(rows.hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(fresh.len())
    }

    /// Records matching `query`, oldest first.
    ///
    /// # Errors
    /// [`AuditError`] on a database failure or a corrupt record.
    pub async fn query(&self, query: &AuditQuery) -> Result<Vec<StoredRecord>, AuditError> {
        let mut sql: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT seq, canonical FROM audit_log WHERE tenant_id = ");
        sql.push_bind(query.tenant.as_str());
        let exact = [
            ("principal", &query.principal),
            ("action", &query.action),
            ("resource", &query.resource),
            ("decision", &query.decision),
        ];
        for (column, value) in exact {
            if let Some(value) = value {
                sql.push(format_args!(" AND {column} = "))
                    .push_bind(value.clone());
            }
        }
        if let Some(policy) = &query.policy {
            // New rows name their policies in `policies`, older ones in `record`.
            sql.push(" AND (policies @> ARRAY[")
                .push_bind(policy.clone())
                .push("]::text[] OR record -> 'determining_policies' ? ")
                .push_bind(policy.clone())
                .push(")");
        }
        if let Some(since) = query.since_us {
            sql.push(" AND time_us >= ").push_bind(since);
        }
        if let Some(until) = query.until_us {
            sql.push(" AND time_us < ").push_bind(until);
        }
        sql.push(" ORDER BY seq DESC LIMIT ").push_bind(query.limit);
        let rows = sql
            .build()
            .fetch_all(&mut *self.tenant_tx(&query.tenant).await?)
            .await?;
        let mut out = rows
            .into_iter()
            .map(|row| {
                let seq: i64 = row.try_get(0)?;
                let canonical: String = row.try_get(1)?;
                let record = serde_json::from_str(&canonical).map_err(|e| AuditError::Corrupt {
                    seq,
                    message: e.to_string(),
                })?;
                Ok(StoredRecord { seq, record })
            })
            .collect::<Result<Vec<_>, AuditError>>()?;
        out.reverse();
        Ok(out)
    }

    /// A transaction that sees (and may write) only `tenant`'s audit records: the table
    /// is under row-level security, and the tenant is set for this transaction only.
    async fn tenant_tx(
        &self,
        tenant: &TenantId,
    ) -> Result<sqlx::Transaction<'static, Postgres>, AuditError> {
        Ok(gatehouse_schemas::tenant_tx(&self.pool, tenant).await?)
    }

    /// The head of `tenant`'s chain: its last sequence number and hash.
    ///
    /// # Errors
    /// [`AuditError::Database`].
    pub async fn head(&self, tenant: &TenantId) -> Result<Option<(i64, Vec<u8>)>, AuditError> {
        let head = sqlx::query_as(
            "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *self.tenant_tx(tenant).await?)
        .await?;
        Ok(head)
    }

    /// Checks `tenant`'s records against its signed checkpoints: each must be signed by
    /// `key`, and the record at its sequence number must still have its hash. Returns the
    /// first mismatch, as `(seq, what)`.
    ///
    /// # Errors
    /// [`AuditError::Database`].
    pub async fn verify_checkpoints(
        &self,
        tenant: &TenantId,
        checkpoints: &[crate::checkpoint::Checkpoint],
        key: &ed25519_dalek::VerifyingKey,
    ) -> Result<Option<(i64, String)>, AuditError> {
        let mut tx = self.tenant_tx(tenant).await?;
        for checkpoint in checkpoints.iter().filter(|c| &c.tenant == tenant) {
            if !checkpoint.is_signed_by(key) {
                return Ok(Some((
                    checkpoint.seq,
                    "a checkpoint's signature does not verify".into(),
                )));
            }
            let hash: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT hash FROM audit_log WHERE tenant_id = $1 AND seq = $2")
                    .bind(tenant.as_str())
                    .bind(checkpoint.seq)
                    .fetch_optional(&mut *tx)
                    .await?;
            match hash {
                None => {
                    return Ok(Some((
                        checkpoint.seq,
                        "a checkpointed record is missing".into(),
                    )));
                }
                Some(hash) if crate::checkpoint::hex(&hash) != checkpoint.hash => {
                    return Ok(Some((
                        checkpoint.seq,
                        "the chain differs from its signed checkpoint: rewritten".into(),
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(None)
    }

    /// The tenants of the tenant directory (whose chains `verify` can walk one by one:
    /// row-level security hides every other tenant's records).
    ///
    /// # Errors
    /// [`AuditError::Database`].
    pub async fn tenants(&self) -> Result<Vec<TenantId>, AuditError> {
        let names: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM tenants ORDER BY 1")
            .fetch_all(&self.pool)
            .await?;
        Ok(names
            .iter()
            .filter_map(|n| TenantId::parse(n).ok())
            .collect())
    }

    /// Walks `tenant`'s chain from its first record: every hash must follow from the
    /// previous one and the record's canonical text, sequence numbers must have no gap,
    /// and the indexed columns must say what the canonical record says.
    ///
    /// # Errors
    /// [`AuditError::Database`] when the chain cannot be read (a broken chain is not an
    /// error: it is reported in [`VerifyReport::broken`]).
    pub async fn verify(&self, tenant: &TenantId) -> Result<VerifyReport, AuditError> {
        let rows = sqlx::query(
            "SELECT seq, id::text, time_us, principal, action, resource, decision, canonical, prev_hash, hash \
             FROM audit_log WHERE tenant_id = $1 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *self.tenant_tx(tenant).await?)
        .await?;
        let mut prev = GENESIS_HASH.to_vec();
        let mut count = 0;
        for (expected_seq, row) in (1..).zip(rows) {
            count = expected_seq;
            let seq: i64 = row.try_get(0)?;
            let broken = |why: &str| Ok(report(tenant, count, Some((seq, why.to_string()))));
            if seq != expected_seq {
                return broken(&format!("expected seq {expected_seq}: a record is missing"));
            }
            let stored_prev: Vec<u8> = row.try_get(8)?;
            let stored_hash: Vec<u8> = row.try_get(9)?;
            let canonical: String = row.try_get(7)?;
            if stored_prev != prev {
                return broken("prev_hash does not match the previous record's hash");
            }
            if stored_hash != chain_hash(&prev, &canonical) {
                return broken("hash does not match the record: the record was altered");
            }
            let Ok(record) = serde_json::from_str::<AuditRecord>(&canonical) else {
                return broken("the canonical record does not parse");
            };
            let columns: (String, i64, String, String, String, String) = (
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
            );
            let from_record = (
                record.id.clone(),
                record.time_us,
                record.principal,
                record.action,
                record.resource,
                record.decision,
            );
            if columns != from_record || record.tenant != *tenant {
                return broken("the indexed columns differ from the hashed record");
            }
            prev = stored_hash;
        }
        Ok(report(tenant, count, None))
    }
}

fn report(tenant: &TenantId, records: i64, broken: Option<(i64, String)>) -> VerifyReport {
    VerifyReport {
        tenant: tenant.clone(),
        records,
        broken,
    }
}

/// Whether the record id `id` is among the `stored` ones.
fn is_stored(id: &str, stored: &[Uuid]) -> bool {
    id.parse::<Uuid>().is_ok_and(|id| stored.contains(&id))
}

/// Whether a batch may hold records the log already has.
#[derive(Debug, Clone, Copy)]
enum Replay {
    /// Insert as is: a duplicate id fails the whole transaction.
    Unlikely,
    /// Look the ids up first and leave out the stored ones.
    SkipStored,
}

/// Whether `e` is the log refusing an id it already holds.
fn is_duplicate_id(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation() && d.constraint() == Some("audit_log_id_key"))
}
