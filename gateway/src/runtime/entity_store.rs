//! The entities the gateway decides with ([`Store`]): from a file, in memory, or from
//! PostgreSQL ([`PgEntityStore`]): the principal, the resource and their ancestors, read
//! under row-level security with the tenant set per transaction, cached by tenant, and
//! dropped from the cache when PostgreSQL says they changed (LISTEN/NOTIFY).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cedar_policy::{Entities, EntityUid};
use gatehouse_core::TenantId;
use gatehouse_pdp::{CurrentBundle, EntityStore, MemoryStore, StoreError};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{Value, json};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Row};
use tokio::sync::OnceCell;

use crate::edge::admission::Tenants;

/// The entity store the gateway decides with.
#[derive(Clone)]
pub enum Store {
    /// Entities loaded from a file into memory.
    Memory(Arc<MemoryStore>),
    /// Entities in PostgreSQL, cached.
    Postgres(Arc<PgEntityStore>),
}

impl EntityStore for Store {
    async fn load(
        &self,
        tenant: &TenantId,
        uids: &[EntityUid],
    ) -> Result<Arc<Entities>, StoreError> {
        match self {
            Self::Memory(store) => store.load(tenant, uids).await,
            Self::Postgres(store) => store.load(tenant, uids).await,
        }
    }
}

/// The channel the `entities` and `tenants` triggers notify on, with the tenant id.
pub const CHANNEL: &str = "gatehouse_entities";

/// A cache key: the tenant (by type, so no key can lack it) and the uids asked for.
type Key = (TenantId, String);

/// Entities as read, and until when they hold (an agent's grant expires then).
#[derive(Clone)]
struct Fetched {
    entities: Arc<Entities>,
    valid_until: Option<SystemTime>,
}

/// The PostgreSQL entity store.
pub struct PgEntityStore {
    url: String,
    pool: OnceCell<PgPool>,
    bundle: Arc<CurrentBundle>,
    cache: moka::sync::Cache<Key, (u64, Fetched)>,
    generations: Mutex<HashMap<TenantId, u64>>,
    everything: AtomicU64,
}

impl PgEntityStore {
    /// A store reading with the application role at `url`, checking entities against the
    /// schema of the serving bundle. The cache holds at most `capacity` entity slices, each
    /// for at most a minute.
    pub fn new(url: String, bundle: Arc<CurrentBundle>, capacity: u64) -> Self {
        Self {
            url,
            pool: OnceCell::new(),
            bundle,
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(60))
                .build(),
            generations: Mutex::new(HashMap::new()),
            everything: AtomicU64::new(0),
        }
    }

    /// Forgets everything cached for `tenant` (`None`: for every tenant).
    pub fn invalidate(&self, tenant: Option<&TenantId>) {
        match tenant {
            Some(t) => {
                if let Ok(mut g) = self.generations.lock() {
                    *g.entry(t.clone()).or_default() += 1;
                }
            }
            None => {
                self.everything.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Whether PostgreSQL answers right now.
    pub async fn ready(&self) -> bool {
        match self.pool().await {
            Ok(pool) => sqlx::query("SELECT 1").execute(pool).await.is_ok(),
            Err(_) => false,
        }
    }

    fn generation(&self, tenant: &TenantId) -> u64 {
        let own = self
            .generations
            .lock()
            .ok()
            .and_then(|g| g.get(tenant).copied())
            .unwrap_or(0);
        own.wrapping_add(self.everything.load(Ordering::SeqCst) << 32)
    }

    pub(crate) async fn pool(&self) -> Result<&PgPool, StoreError> {
        self.pool
            .get_or_try_init(|| async {
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(1))
                    .connect_lazy(&self.url)
            })
            .await
            .map_err(|_| StoreError::new("invalid database URL"))
    }

    async fn fetch(&self, tenant: &TenantId, uids: &[EntityUid]) -> Result<Fetched, StoreError> {
        let unavailable = |e: sqlx::Error| {
            tracing::warn!(target: "gatehouse::entities", tenant = tenant.as_str(), error = %e, "entity store unavailable");
            StoreError::new("entity store unavailable")
        };
        let mut tx = gatehouse_schemas::tenant_tx(self.pool().await?, tenant)
            .await
            .map_err(unavailable)?;
        let types: Vec<String> = uids.iter().map(|u| u.type_name().to_string()).collect();
        let ids: Vec<String> = uids
            .iter()
            .map(|u| u.id().unescaped().to_string())
            .collect();
        // An agent is `in` the capabilities of its active grants (see 0008_agent_grants);
        // the earliest expiry among them bounds how long the answer may be cached.
        let rows = sqlx::query(
            "WITH RECURSIVE wanted(entity_type, entity_id) AS ( \
                 SELECT * FROM unnest($1::text[], $2::text[]) \
               UNION \
                 SELECT p->>'type', p->>'id' \
                 FROM entities e JOIN wanted w USING (entity_type, entity_id), jsonb_array_elements(e.parents) p \
             ), \
             granted AS ( \
                 SELECT g.agent_id AS entity_id, \
                        jsonb_agg(jsonb_build_object('type', 'Capability', 'id', g.capability)) AS parents, \
                        min(g.expires_at) AS expires_at \
                 FROM agent_grants g JOIN wanted w ON w.entity_type = 'Agent' AND w.entity_id = g.agent_id \
                 WHERE g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now()) \
                 GROUP BY g.agent_id \
             ) \
             SELECT e.entity_type, e.entity_id, e.attrs, \
                    CASE WHEN e.entity_type = 'Agent' THEN e.parents || COALESCE(g.parents, '[]') ELSE e.parents END, \
                    extract(epoch FROM g.expires_at)::float8 \
             FROM entities e JOIN wanted USING (entity_type, entity_id) \
             LEFT JOIN granted g ON e.entity_type = 'Agent' AND g.entity_id = e.entity_id",
        )
        .bind(&types)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let directory =
            sqlx::query("SELECT name, plan, region, suspended FROM tenants WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;

        let mut json: Vec<Value> = Vec::with_capacity(rows.len() + 1);
        let mut valid_until: Option<SystemTime> = None;
        for row in rows {
            if let Some(epoch) = row.get::<Option<f64>, _>(4) {
                // An expiry no clock can reach (`infinity`) bounds nothing.
                if let Ok(after) = Duration::try_from_secs_f64(epoch.max(0.0)) {
                    let at = SystemTime::UNIX_EPOCH + after;
                    valid_until = Some(valid_until.map_or(at, |v| v.min(at)));
                }
            }
            let (kind, id): (String, String) = (row.get(0), row.get(1));
            let (attrs, parents): (Value, Value) = (row.get(2), row.get(3));
            json.push(
                json!({ "uid": { "type": kind, "id": id }, "attrs": attrs, "parents": parents }),
            );
        }
        if let Some(t) = directory {
            let attrs = json!({ "name": t.get::<String, _>(0), "plan": t.get::<String, _>(1), "region": t.get::<String, _>(2), "suspended": t.get::<bool, _>(3) });
            json.push(json!({ "uid": { "type": "Tenant", "id": tenant.as_str() }, "attrs": attrs, "parents": [] }));
        }
        let bundle = self.bundle.snapshot();
        let entities = Entities::from_json_value(Value::Array(json), Some(bundle.schema()))
            .map_err(|e| {
                tracing::error!(target: "gatehouse::entities", tenant = tenant.as_str(), error = %e, "stored entities do not fit the schema");
                StoreError::new("stored entities do not fit the schema")
            })?;
        Ok(Fetched {
            entities: Arc::new(entities),
            valid_until,
        })
    }
}

impl EntityStore for PgEntityStore {
    async fn load(
        &self,
        tenant: &TenantId,
        uids: &[EntityUid],
    ) -> Result<Arc<Entities>, StoreError> {
        let mut names: Vec<String> = uids.iter().map(ToString::to_string).collect();
        names.sort();
        let key = (tenant.clone(), names.join("\n"));
        let generation = self.generation(tenant);
        if let Some((cached_at, fetched)) = self.cache.get(&key)
            && cached_at == generation
            && fetched.valid_until.is_none_or(|t| SystemTime::now() < t)
        {
            return Ok(fetched.entities);
        }
        let fetched = self.fetch(tenant, uids).await?;
        let entities = fetched.entities.clone();
        self.cache.insert(key, (generation, fetched));
        Ok(entities)
    }
}

/// Loads a Cedar entities JSON file into empty tables: each tenant's entities under its
/// own `app.tenant_id`, the tenant-less ones (roles, capabilities) as `*`, and a
/// directory row for each `Tenant`. Does nothing when the directory has tenants already.
///
/// # Errors
/// A database error; nothing is written then.
pub async fn seed(owner: &PgPool, entities_json: &str) -> anyhow::Result<usize> {
    let entities: Vec<Value> = serde_json::from_str(entities_json)?;
    let mut tx = owner.begin().await?;
    let known: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&mut *tx)
        .await?;
    if known > 0 {
        return Ok(0);
    }
    let mut written = 0;
    for e in &entities {
        let kind = e["uid"]["type"].as_str().unwrap_or_default();
        let id = e["uid"]["id"].as_str().unwrap_or_default();
        if kind == "Tenant" {
            let a = &e["attrs"];
            sqlx::query("INSERT INTO tenants (tenant_id, name, plan, region, suspended) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(a["name"].as_str().unwrap_or(id))
                .bind(a["plan"].as_str().unwrap_or("free"))
                .bind(a["region"].as_str().unwrap_or("eu"))
                .bind(a["suspended"].as_bool().unwrap_or(false))
                .execute(&mut *tx)
                .await?;
            continue;
        }
        let tenant = e["attrs"]["tenant"]["__entity"]["id"]
            .as_str()
            .unwrap_or("*");
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO entities (tenant_id, entity_type, entity_id, attrs, parents) VALUES ($1, $2, $3, $4, $5)")
            .bind(tenant)
            .bind(kind)
            .bind(id)
            .bind(&e["attrs"])
            .bind(&e["parents"])
            .execute(&mut *tx)
            .await?;
        written += 1;
    }
    tx.commit().await?;
    Ok(written)
}

/// Moves the capabilities stored as an agent's parents (seeded, or written before grants
/// existed) into `agent_grants`, where they can be revoked; tenant by tenant, as row-level
/// security requires. Running it again moves nothing. Returns the grants made.
///
/// # Errors
/// A database error; that tenant's move is rolled back.
pub async fn capabilities_to_grants(owner: &PgPool) -> anyhow::Result<u64> {
    let tenants: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM tenants")
        .fetch_all(owner)
        .await?;
    let mut granted = 0;
    for tenant in tenants.iter().filter_map(|t| TenantId::parse(t).ok()) {
        let mut tx = gatehouse_schemas::tenant_tx(owner, &tenant).await?;
        granted += sqlx::query(
            "INSERT INTO agent_grants (tenant_id, agent_id, capability, granted_by) \
             SELECT e.tenant_id, e.entity_id, p->>'id', 'stored parent' \
             FROM entities e, jsonb_array_elements(e.parents) p \
             WHERE e.tenant_id = $1 AND e.entity_type = 'Agent' AND p->>'type' = 'Capability' \
             ON CONFLICT (tenant_id, agent_id, capability) WHERE revoked_at IS NULL DO NOTHING",
        )
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE entities SET parents = ( \
                 SELECT COALESCE(jsonb_agg(p), '[]'::jsonb) FROM jsonb_array_elements(parents) p \
                 WHERE p->>'type' <> 'Capability') \
             WHERE tenant_id = $1 AND entity_type = 'Agent' \
               AND parents @> '[{\"type\": \"Capability\"}]'::jsonb",
        )
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(granted)
}

/// The tenant directory: id and plan of every tenant.
///
/// # Errors
/// A database error.
pub async fn directory(pool: &PgPool) -> Result<HashMap<TenantId, String>, sqlx::Error> {
    let rows = sqlx::query("SELECT tenant_id, plan FROM tenants")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some((
                TenantId::parse(r.get::<&str, _>(0)).ok()?,
                r.get::<String, _>(1),
            ))
        })
        .collect())
}

/// Listens for entity and tenant changes and drops what they make stale. After a lost
/// connection (notifications may have been missed) it drops everything.
pub struct ChangeListener {
    /// The store whose cache to keep fresh.
    pub store: Arc<PgEntityStore>,
    /// The tenant directory to keep fresh.
    pub tenants: Arc<Tenants>,
    /// The application role's URL.
    pub url: String,
}

#[async_trait]
impl BackgroundService for ChangeListener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                result = self.listen() => {
                    if let Err(e) = result {
                        tracing::warn!(target: "gatehouse::entities", error = %e, "change listener lost; the cache is dropped");
                    }
                    self.store.invalidate(None);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

impl ChangeListener {
    async fn listen(&self) -> Result<(), sqlx::Error> {
        // One connection listens; the other reads the directory.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        // Anything may have changed while nobody listened.
        self.store.invalidate(None);
        self.tenants.replace(directory(&pool).await?);
        loop {
            let note = listener.try_recv().await?.ok_or(sqlx::Error::PoolClosed)?;
            match TenantId::parse(note.payload()) {
                Ok(tenant) => self.store.invalidate(Some(&tenant)),
                Err(_) => self.store.invalidate(None),
            }
            self.tenants.replace(directory(&pool).await?);
        }
    }
}
