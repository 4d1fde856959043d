//! Adapter services run inside the `gatehouse` process, each on its own address, each a
//! Pingora background service. They verify the same signed context the gateway forwards
//! to any upstream: being in-process grants them nothing. Their further decisions go
//! through [`AdapterDecider`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use gatehouse_adapter_blobs::api::{ContentApi, SizeLimits};
use gatehouse_adapter_blobs::{BlobStore, KeyRing, MasterKey, S3Settings};
use gatehouse_adapter_kit::ContextGuard;
use gatehouse_adapter_pg::DocumentsApi;
use gatehouse_core::forwarded::ContextSigner;
use gatehouse_core::secret_file::create_secret_file;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sqlx::postgres::PgPoolOptions;

use gatehouse_adapter_search::api::SearchApi;
use gatehouse_adapter_search::outbox::{Contents, Worker as OutboxWorker};
use gatehouse_adapter_search::sandbox::Sandbox;
use gatehouse_adapter_search::{EmbeddedIndex, MeiliIndex, SearchIndex};

use crate::authorize::adapters::AdapterDecider;

/// The `gatehouse` command that extracts text as a bounded child process of the search
/// adapter ([`gatehouse_adapter_search::sandbox`]).
pub const EXTRACT_COMMAND: &str = "extract-text";
use crate::config::{BlobsConfig, SearchConfig, SearchEngine, Secret};

/// Builds an adapter's router; called once its runtime runs (database pools need one).
type MakeRouter = Box<dyn Fn() -> anyhow::Result<axum::Router> + Send + Sync>;

/// An axum router served until shutdown.
pub struct AdapterService {
    name: &'static str,
    address: String,
    make_router: MakeRouter,
}

impl AdapterService {
    /// The documents adapter on `address`, connecting as the application role at
    /// `app_url`, admitting contexts signed by `signer`.
    ///
    /// # Errors
    /// An invalid database URL or context key.
    pub fn documents(
        address: &str,
        app_url: &str,
        signer: &ContextSigner,
        context_lifetime: Duration,
        decider: Arc<AdapterDecider>,
    ) -> anyhow::Result<Self> {
        let verifier = signer.verifier()?;
        let app_url = app_url.to_string();
        let make_router = move || {
            let pool = app_pool(&app_url)?;
            let guard = ContextGuard::new(verifier.clone(), context_lifetime);
            let api = Arc::new(DocumentsApi::new(pool, guard, decider.clone()));
            Ok(gatehouse_adapter_pg::router(api))
        };
        Ok(Self {
            name: "documents",
            address: address.to_string(),
            make_router: Box::new(make_router),
        })
    }
}

/// The object store and master key of document contents: the blob adapter's, and the
/// search worker's (it reads contents to extract their text).
pub struct BlobSetup {
    settings: S3Settings,
    master: MasterKey,
    /// The local S3 store to run beside them when no endpoint is configured.
    pub local: Option<LocalS3>,
}

impl BlobSetup {
    /// From configuration: the configured S3 or a local one (with a fresh access key per
    /// start: only this process talks to it), and the master key.
    ///
    /// # Errors
    /// An invalid master key or S3 credential reference.
    pub fn from_config(config: &BlobsConfig) -> anyhow::Result<Self> {
        let master = master_key(config)?;
        let (settings, local) = match &config.endpoint {
            Some(endpoint) => {
                let credential = |value: &Option<Secret>, what: &str| {
                    value
                        .as_ref()
                        .map(|secret| secret.expose().to_string())
                        .with_context(|| {
                            format!("adapters.blobs.{what} is needed with an endpoint")
                        })
                };
                let settings = S3Settings {
                    endpoint: endpoint.clone(),
                    region: config.region.clone(),
                    bucket: config.bucket.clone(),
                    access_key: credential(&config.access_key, "access_key")?,
                    secret_key: credential(&config.secret_key, "secret_key")?,
                };
                (settings, None)
            }
            None => {
                let local = LocalS3 {
                    root: config.local_dir.clone(),
                    address: config.local_listen.clone(),
                    access_key: format!("gatehouse-{:016x}", rand::random::<u64>()),
                    secret_key: format!("{:032x}", rand::random::<u128>()),
                };
                let settings = S3Settings {
                    endpoint: format!("http://{}", local.address),
                    region: config.region.clone(),
                    bucket: config.bucket.clone(),
                    access_key: local.access_key.clone(),
                    secret_key: local.secret_key.clone(),
                };
                (settings, Some(local))
            }
        };
        Ok(Self {
            settings,
            master,
            local,
        })
    }
}

/// A pool of the application role, connecting on first use.
fn app_pool(app_url: &str) -> anyhow::Result<sqlx::PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(app_url)?)
}

impl AdapterService {
    /// The blob adapter, storing through `setup`.
    ///
    /// # Errors
    /// An invalid context key.
    pub fn blobs(
        config: &BlobsConfig,
        setup: &BlobSetup,
        app_url: &str,
        signer: &ContextSigner,
        context_lifetime: Duration,
    ) -> anyhow::Result<Self> {
        let verifier = signer.verifier()?;
        let app_url = app_url.to_string();
        let limits = SizeLimits {
            by_plan: config.max_upload_bytes.clone(),
            default: config.default_max_upload_bytes,
        };
        let (settings, master) = (setup.settings.clone(), setup.master.clone());
        let make_router = move || {
            let pool = app_pool(&app_url)?;
            let store = BlobStore::new(&settings);
            tokio::spawn(ensure_bucket(store.clone()));
            let keys = KeyRing::new(master.clone(), pool.clone());
            let guard = ContextGuard::new(verifier.clone(), context_lifetime);
            let api = ContentApi::new(pool, guard, keys, store, limits.clone());
            Ok(gatehouse_adapter_blobs::api::router(Arc::new(api)))
        };
        Ok(Self {
            name: "blobs",
            address: config.listen.clone(),
            make_router: Box::new(make_router),
        })
    }

    /// The search adapter, and its outbox worker (run in the adapter's runtime), reading
    /// contents through `blobs` when there is a blob store.
    ///
    /// # Errors
    /// An invalid context key or Meilisearch setting.
    pub fn search(
        config: &SearchConfig,
        blobs: Option<&BlobSetup>,
        app_url: &str,
        signer: &ContextSigner,
        context_lifetime: Duration,
        decider: Arc<AdapterDecider>,
    ) -> anyhow::Result<Self> {
        let verifier = signer.verifier()?;
        let app_url = app_url.to_string();
        let index = search_index(config)?;
        let blobs = blobs.map(|b| (b.settings.clone(), b.master.clone()));
        let sweep = Duration::from_secs(config.sweep_interval_seconds.max(1));
        // Text is extracted by this very binary, run as a bounded child process.
        let program = std::env::current_exe().context("finding the gatehouse binary")?;
        let extractor = Sandbox::new(program, &[EXTRACT_COMMAND], config.extract_limits());
        let make_router = move || {
            let pool = app_pool(&app_url)?;
            let contents = blobs.as_ref().map(|(settings, master)| Contents {
                keys: KeyRing::new(master.clone(), pool.clone()),
                store: BlobStore::new(settings),
                extractor: extractor.clone(),
            });
            let worker = OutboxWorker::new(pool.clone(), index.clone(), contents);
            tokio::spawn(worker.run(sweep, std::future::pending()));
            let guard = ContextGuard::new(verifier.clone(), context_lifetime);
            let api = SearchApi::new(pool, guard, index.clone(), decider.clone());
            Ok(gatehouse_adapter_search::api::router(Arc::new(api)))
        };
        Ok(Self {
            name: "search",
            address: config.listen.clone(),
            make_router: Box::new(make_router),
        })
    }
}

fn search_index(config: &SearchConfig) -> anyhow::Result<Arc<dyn SearchIndex>> {
    Ok(match config.engine {
        SearchEngine::Embedded => Arc::new(Arc::new(EmbeddedIndex::new(&config.data_dir))),
        SearchEngine::Meilisearch => {
            let url = config.meilisearch_url.as_deref().context(
                "adapters.search.meilisearch_url is needed with engine = \"meilisearch\"",
            )?;
            let key = config.meilisearch_key.as_ref().map(Secret::expose);
            Arc::new(MeiliIndex::new(url, key, &config.meilisearch_index)?)
        }
    })
}

/// Creates the bucket once the store answers (the local one starts beside the adapter).
async fn ensure_bucket(store: BlobStore) {
    for _ in 0..100 {
        if store.ensure_bucket().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::error!(target: "gatehouse::adapter", adapter = "blobs", "the object store's bucket cannot be created");
}

/// The master key from configuration, or from its file, created (mode 600) with a random
/// key on first start.
fn master_key(config: &BlobsConfig) -> anyhow::Result<MasterKey> {
    use base64::Engine as _;
    let text = match &config.master_key {
        Some(secret) => secret.expose().to_string(),
        None => read_or_create_key_file(&config.master_key_file)?,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .context("the master key is not base64")?;
    MasterKey::from_bytes(&bytes).context("the master key must be 32 bytes")
}

fn read_or_create_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    use base64::Engine as _;
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(text);
    }
    let text = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    create_secret_file(path, text.as_bytes())
        .with_context(|| format!("creating the master key file {}", path.display()))?;
    tracing::warn!(target: "gatehouse::adapter", path = %path.display(), "created a master key: losing it makes every stored content unreadable");
    Ok(text)
}

/// The local S3 store (a folder served over the S3 protocol).
pub struct LocalS3 {
    root: std::path::PathBuf,
    address: String,
    access_key: String,
    secret_key: String,
}

#[async_trait]
impl BackgroundService for LocalS3 {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match tokio::net::TcpListener::bind(&self.address).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(target: "gatehouse::adapter", address = self.address, error = %e, "local S3 cannot listen");
                return;
            }
        };
        let stopped = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(e) = gatehouse_adapter_blobs::local_s3::serve(
            &self.root,
            listener,
            &self.access_key,
            &self.secret_key,
            stopped,
        )
        .await
        {
            tracing::error!(target: "gatehouse::adapter", error = %e, "local S3 stopped");
        }
    }
}

#[async_trait]
impl BackgroundService for AdapterService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let router = match (self.make_router)() {
            Ok(router) => router,
            Err(e) => {
                tracing::error!(target: "gatehouse::adapter", adapter = self.name, error = %e, "cannot start");
                return;
            }
        };
        let listener = match tokio::net::TcpListener::bind(&self.address).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(target: "gatehouse::adapter", adapter = self.name, address = self.address, error = %e, "cannot listen");
                return;
            }
        };
        tracing::info!(target: "gatehouse::adapter", adapter = self.name, address = self.address, "listening");
        let stopped = async move {
            let _ = shutdown.changed().await;
        };
        gatehouse_adapter_kit::serve::serve(listener, router, stopped).await;
    }
}
