//! Gatehouse's schemas: the Cedar schema of the platform and the SQL migrations of its
//! PostgreSQL tables, applied in order, each exactly once, by [`migrate`].

use gatehouse_core::TenantId;
use sqlx::PgPool;

/// The Cedar schema (`gatehouse.cedarschema`).
pub const CEDAR_SCHEMA: &str = include_str!("../gatehouse.cedarschema");

/// The SQL migrations, in order: (version, name, SQL). Never edit one that has shipped:
/// add the next.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "audit", include_str!("../sql/0001_audit.sql")),
    (2, "entities", include_str!("../sql/0002_entities.sql")),
    (
        3,
        "audit row-level security",
        include_str!("../sql/0003_audit_rls.sql"),
    ),
    (4, "documents", include_str!("../sql/0004_documents.sql")),
    (
        5,
        "tenant keys",
        include_str!("../sql/0005_tenant_keys.sql"),
    ),
    (6, "outbox", include_str!("../sql/0006_outbox.sql")),
    (
        7,
        "list filters",
        include_str!("../sql/0007_list_filters.sql"),
    ),
    (
        8,
        "agent grants",
        include_str!("../sql/0008_agent_grants.sql"),
    ),
    (9, "memory lanes", include_str!("../sql/0009_memory.sql")),
    (
        10,
        "audit policies",
        include_str!("../sql/0010_audit_policies.sql"),
    ),
    (
        11,
        "extraction status",
        include_str!("../sql/0011_extraction_status.sql"),
    ),
];

/// Begins a transaction in which row-level security shows and accepts only `tenant`'s
/// rows. The setting is local to the transaction, so a pooled connection never carries
/// one tenant into the next checkout.
///
/// # Errors
/// The database error.
pub async fn tenant_tx(
    pool: &PgPool,
    tenant: &TenantId,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Applies the migrations not applied yet, each in its own transaction, serialized across
/// processes by an advisory lock. Run as the owner of the tables (not the application role).
///
/// # Errors
/// The failing migration's error; it is rolled back and later ones are not tried.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::Error> {
    migrate_to(pool, i64::MAX).await
}

/// Applies the migrations not applied yet up to version `last` (for tests of an upgrade
/// from an older schema).
///
/// # Errors
/// As [`migrate`].
pub async fn migrate_to(pool: &PgPool, last: i64) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS gatehouse_migrations (\
           version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(pool)
    .await?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v <= last) {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7425001)")
            .execute(&mut *tx)
            .await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM gatehouse_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_none() {
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO gatehouse_migrations (version, name) VALUES ($1, $2)")
                .bind(version)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}
