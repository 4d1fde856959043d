//! PostgreSQL for the gateway: a configured server, or a private cluster; migrations; and
//! the audit service that writes decision records to it.

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use std::sync::Arc;

use gatehouse_audit::checkpoint::CheckpointSigner;
use gatehouse_audit::{AuditStore, AuditWorker, Spooled, WriterConfig};
use gatehouse_core::secret_file::replace_secret_file;
use gatehouse_pgcluster::PgCluster;
use gatehouse_schemas::migrate;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use std::collections::HashMap;

use gatehouse_core::TenantId;

use crate::config::{AuditConfig, DatabaseConfig};
use crate::runtime::entity_store as entities;

/// Where the private cluster's application URL is written at each start:
/// `<data_dir>.url`, mode 600.
pub fn app_url_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    let mut name = data_dir.as_os_str().to_owned();
    name.push(".url");
    name.into()
}

/// The database the gateway writes to.
pub struct Database {
    /// The private cluster, when no URL was configured: held, not read, so that it
    /// stops when the database is dropped.
    _cluster: Option<PgCluster>,
    /// The application role's URL.
    pub app_url: String,
    /// The tenant directory at start: tenant id to plan.
    pub directory: HashMap<TenantId, String>,
}

impl Database {
    /// Connects to the configured server or starts the private cluster, runs the
    /// migrations (as the owner), and checks that the application role cannot bypass
    /// row-level security.
    ///
    /// # Errors
    /// When PostgreSQL cannot be started or reached, a migration fails, or the
    /// application role is a superuser or has BYPASSRLS.
    pub fn prepare(config: &DatabaseConfig, seed_json: Option<&str>) -> anyhow::Result<Self> {
        let (cluster, app_url, owner_url) = match &config.url {
            Some(url) => (
                None,
                url.expose().to_string(),
                config
                    .owner_url
                    .as_ref()
                    .map(|owner| owner.expose().to_string()),
            ),
            None => {
                let cluster =
                    PgCluster::start(&config.data_dir, config.port).with_context(|| {
                        format!(
                            "starting the private PostgreSQL in {}",
                            config.data_dir.display()
                        )
                    })?;
                let urls = cluster.provision("gatehouse")?;
                // For the operator's tools (`platformctl audit … --database-url`): the
                // application role's URL, password included, readable by the owner only.
                let url_file = app_url_file(&config.data_dir);
                replace_secret_file(&url_file, urls.app_url.as_bytes())
                    .with_context(|| format!("writing {}", url_file.display()))?;
                (Some(cluster), urls.app_url, Some(urls.owner_url))
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let directory_result = runtime.block_on(async {
            if let Some(owner_url) = &owner_url {
                let owner = PgPoolOptions::new().max_connections(2).connect(owner_url).await.context("connecting as the owner")?;
                migrate(&owner).await.context("running the migrations")?;
                if let Some(json) = seed_json {
                    let seeded = entities::seed(&owner, json).await.context("seeding the entities")?;
                    if seeded > 0 {
                        tracing::info!(target: "gatehouse::entities", entities = seeded, "seeded an empty database");
                    }
                    let entities: Vec<serde_json::Value> = serde_json::from_str(json)?;
                    let rows = gatehouse_adapter_pg::seed::import(&owner, &entities).await.context("seeding the documents")?;
                    if rows > 0 {
                        tracing::info!(target: "gatehouse::adapter", rows, "seeded the demo folders and documents");
                    }
                }
                let granted = entities::capabilities_to_grants(&owner).await.context("moving agents' capabilities into grants")?;
                if granted > 0 {
                    tracing::info!(target: "gatehouse::entities", grants = granted, "agents' stored capabilities are grants now");
                }
                owner.close().await;
            }
            let app = PgPoolOptions::new().max_connections(1).connect(&app_url).await.context("connecting as the application role")?;
            let privileged: bool =
                sqlx::query_scalar("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
                    .fetch_one(&app)
                    .await?;
            anyhow::ensure!(
                !privileged,
                "the database role may bypass row-level security (SUPERUSER or BYPASSRLS): use a role without"
            );
            let directory = entities::directory(&app).await.unwrap_or_default();
            app.close().await;
            anyhow::Ok(directory)
        })?;
        let directory = directory_result;
        Ok(Self {
            _cluster: cluster,
            app_url,
            directory,
        })
    }
}

/// Writes spooled audit records to the database until shutdown.
pub struct AuditService {
    /// Taken by the worker when the service starts.
    spooled: std::sync::Mutex<Option<Spooled>>,
    database: PgConnectOptions,
    config: AuditConfig,
    checkpoints: Option<Arc<CheckpointSigner>>,
}

impl AuditService {
    /// The service writing what the spooler hands over (`spooled`) to the database at
    /// `app_url`, and signing checkpoints with the configured key (created on first
    /// start).
    ///
    /// # Errors
    /// When the database URL cannot be used or the checkpoint key cannot be read or
    /// created.
    pub fn new(spooled: Spooled, app_url: &str, config: AuditConfig) -> anyhow::Result<Self> {
        let database = audit_database(app_url, &config).context("the audit log's database URL")?;
        let (key_file, file) = config.checkpoint_paths();
        let signer = CheckpointSigner::load_or_create(&key_file, file)
            .with_context(|| format!("the audit checkpoint key {}", key_file.display()))?;
        tracing::info!(target: "gatehouse::audit", public_key = signer.public_key_pem(), "signing audit checkpoints");
        Ok(Self {
            spooled: std::sync::Mutex::new(Some(spooled)),
            database,
            config,
            checkpoints: Some(Arc::new(signer)),
        })
    }
}

#[async_trait]
impl BackgroundService for AuditService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let Some(spooled) = self.spooled.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        let config = WriterConfig {
            batch_max: self.config.batch_max,
            flush_every: Duration::from_millis(self.config.flush_interval_ms),
            write_timeout: Duration::from_millis(self.config.write_timeout_ms),
            checkpoints: self.checkpoints.clone(),
            checkpoint_every: Duration::from_secs(self.config.checkpoint_interval_seconds),
        };
        let pool = audit_pool(self.database.clone());
        AuditWorker::new(spooled, AuditStore::new(pool), config)
            .run(shutdown)
            .await;
    }
}

/// The audit log's connection options: every statement and lock wait is bounded by the
/// write timeout, so a stalled PostgreSQL or a held lock holds up the writer for that
/// long at most (and never the spool).
fn audit_database(url: &str, config: &AuditConfig) -> Result<PgConnectOptions, sqlx::Error> {
    let timeout = config.write_timeout_ms.to_string();
    Ok(url.parse::<PgConnectOptions>()?.options([
        ("statement_timeout", timeout.as_str()),
        ("lock_timeout", timeout.as_str()),
        ("idle_in_transaction_session_timeout", timeout.as_str()),
    ]))
}

/// A pool on `database`, connecting when first used. Needs a Tokio runtime.
fn audit_pool(database: PgConnectOptions) -> sqlx::PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy_with(database)
}

/// After the server and the spooler stopped: writes the spool (at most ten seconds; what
/// remains is written at the next start).
pub fn drain_spool_after_shutdown(app_url: &str, config: &AuditConfig) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        let Ok(database) = audit_database(app_url, config) else { return };
        let store = AuditStore::new(audit_pool(database));
        let drained = tokio::time::timeout(Duration::from_secs(10), gatehouse_audit::drain_spool(&store, &config.spool)).await;
        match drained {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(target: "gatehouse::audit", error = %e, "audit spool kept for the next start"),
            Err(_) => tracing::warn!(target: "gatehouse::audit", "audit spool kept for the next start (timeout)"),
        }
    });
}
