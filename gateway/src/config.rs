//! The gateway's configuration: one TOML file, with secrets and addresses overridable
//! from the environment.
//!
//! Any string value may be a reference instead of a literal: `env:NAME` reads the
//! environment variable `NAME`, `file:PATH` reads a file. The listen address can also be
//! set with `GATEHOUSE_LISTEN`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use gatehouse_audit::Durability;
use gatehouse_core::forwarded::MIN_SECRET_BYTES;
use serde::Deserialize;

/// The configuration built into the binary: the demo tenants, run from the repository,
/// in development mode on loopback.
pub const DEMO: &str = concat!(
    include_str!("../defaults/demo.toml"),
    include_str!("../defaults/routes.toml")
);

/// The template `--print-default-config` prints: for production, with tokens from an
/// identity provider only and no secret written in it.
pub const PRODUCTION_TEMPLATE: &str = concat!(
    include_str!("../defaults/production.toml"),
    include_str!("../defaults/routes.toml")
);

/// HS256 secrets that have been published (in this repository's history, or as examples):
/// refused whatever their length.
const PUBLISHED_SECRETS: &[&str] = &["gatehouse-dev-secret-change-me"];

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners and the server's threads and shutdown.
    pub server: ServerConfig,
    /// The policy bundle.
    pub policy: PolicyConfig,
    /// Where entities come from.
    pub entities: EntitiesConfig,
    /// How the tenant of a request is found.
    #[serde(default)]
    pub tenancy: TenancyConfig,
    /// How principals are authenticated.
    pub identity: IdentityConfig,
    /// The signed context forwarded to upstreams.
    #[serde(default)]
    pub forwarding: ForwardingConfig,
    /// Upstream services by name.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    /// Routes, matched in order.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Tenant API keys for service clients.
    #[serde(default, rename = "api_key")]
    pub api_keys: Vec<ApiKeyConfig>,
    /// A built-in echo upstream for the demo.
    #[serde(default)]
    pub demo: DemoConfig,
    /// PostgreSQL: configured, or a private cluster.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// The audit log's batching and spool.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Per-tenant request rates by plan.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The adapter services run inside this process.
    #[serde(default)]
    pub adapters: AdaptersConfig,
}

/// Adapter services run by `gatehouse` itself (each is also an upstream: name it in an
/// `[[upstream]]` with the same address and route to it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptersConfig {
    /// The share of filtered pages (lists, searches) whose items are each decided again
    /// after filtering, from 0.0 to 1.0; an item the decision point then denies is withheld
    /// and audited. 1.0 (every page) unless set lower.
    #[serde(default = "every_page")]
    pub postcheck_sample_rate: f64,
    /// The PostgreSQL documents adapter (folders, documents, versions).
    #[serde(default)]
    pub documents: Option<AdapterConfig>,
    /// The blob adapter (document contents, encrypted per tenant, in S3).
    #[serde(default)]
    pub blobs: Option<BlobsConfig>,
    /// The search adapter (and the outbox worker that indexes documents).
    #[serde(default)]
    pub search: Option<SearchConfig>,
}

impl Default for AdaptersConfig {
    fn default() -> Self {
        Self {
            postcheck_sample_rate: every_page(),
            documents: None,
            blobs: None,
            search: None,
        }
    }
}

fn every_page() -> f64 {
    1.0
}

/// The search adapter: where it listens and which engine holds the indexes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// The adapter's address (loopback: only the gateway calls it).
    pub listen: String,
    /// `embedded` (an index per tenant under `data_dir`) or `meilisearch`.
    #[serde(default)]
    pub engine: SearchEngine,
    /// Where the embedded engine keeps its indexes.
    #[serde(default = "default_search_dir")]
    pub data_dir: PathBuf,
    /// Meilisearch's URL (with `engine = "meilisearch"`).
    #[serde(default)]
    pub meilisearch_url: Option<String>,
    /// Meilisearch's API key (`env:`/`file:` references work).
    #[serde(default)]
    pub meilisearch_key: Option<Secret>,
    /// The Meilisearch index holding every tenant's documents (each query filtered by
    /// tenant).
    #[serde(default = "default_meilisearch_index")]
    pub meilisearch_index: String,
    /// How often every tenant's outbox is looked at, besides the notifications.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_seconds: u64,
    /// The most memory (address space) one text extraction may use, in MiB; it runs in a
    /// child process, and a content that goes past this is quarantined.
    #[serde(default = "default_extract_memory_mb")]
    pub extract_memory_mb: u64,
    /// The most CPU time one extraction may use, in seconds.
    #[serde(default = "default_extract_cpu_seconds")]
    pub extract_cpu_seconds: u64,
    /// The longest one extraction may take, in seconds, before its process is killed.
    #[serde(default = "default_extract_timeout_seconds")]
    pub extract_timeout_seconds: u64,
}

impl SearchConfig {
    /// The limits of one text extraction.
    pub fn extract_limits(&self) -> gatehouse_adapter_search::sandbox::Limits {
        gatehouse_adapter_search::sandbox::Limits {
            memory_bytes: self.extract_memory_mb.saturating_mul(1024 * 1024),
            cpu_seconds: self.extract_cpu_seconds,
            deadline: std::time::Duration::from_secs(self.extract_timeout_seconds),
        }
    }
}

fn default_extract_memory_mb() -> u64 {
    1024
}

fn default_extract_cpu_seconds() -> u64 {
    20
}

fn default_extract_timeout_seconds() -> u64 {
    30
}

/// The search engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchEngine {
    /// tantivy, in this process.
    #[default]
    Embedded,
    /// A Meilisearch server.
    Meilisearch,
}

fn default_search_dir() -> PathBuf {
    PathBuf::from(".gatehouse/search")
}

fn default_meilisearch_index() -> String {
    "gatehouse_documents".into()
}

fn default_sweep_interval() -> u64 {
    30
}

/// The blob adapter: where it listens, which S3, which master key, how large an upload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobsConfig {
    /// The adapter's address (loopback: only the gateway calls it).
    pub listen: String,
    /// The S3 endpoint; absent: a local S3 store on `local_dir`, served by gatehouse.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The folder of the local S3 store.
    #[serde(default = "default_local_dir")]
    pub local_dir: PathBuf,
    /// Where the local S3 store listens.
    #[serde(default = "default_local_listen")]
    pub local_listen: String,
    /// The region to sign for.
    #[serde(default = "default_region")]
    pub region: String,
    /// The bucket (every tenant under its own prefix).
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// The access key id (`env:`/`file:` references work).
    #[serde(default)]
    pub access_key: Option<Secret>,
    /// The secret key (`env:`/`file:`).
    #[serde(default)]
    pub secret_key: Option<Secret>,
    /// The master key: 32 bytes, base64 (`env:`/`file:`). Absent: `master_key_file`.
    #[serde(default)]
    pub master_key: Option<Secret>,
    /// Read, or created with a random key on first start, when `master_key` is absent.
    #[serde(default = "default_master_key_file")]
    pub master_key_file: PathBuf,
    /// The largest upload by plan, in bytes.
    #[serde(default)]
    pub max_upload_bytes: HashMap<String, u64>,
    /// For a plan not listed.
    #[serde(default = "default_max_upload")]
    pub default_max_upload_bytes: u64,
}

fn default_local_dir() -> PathBuf {
    PathBuf::from(".gatehouse/s3")
}

fn default_local_listen() -> String {
    "127.0.0.1:8084".into()
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_bucket() -> String {
    "gatehouse".into()
}

fn default_master_key_file() -> PathBuf {
    PathBuf::from(".gatehouse/master.key")
}

fn default_max_upload() -> u64 {
    10 * 1024 * 1024
}

/// Where an in-process adapter listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    /// The address, e.g. `127.0.0.1:8082` (loopback: only the gateway calls it).
    pub listen: String,
}

/// Per-tenant request rates, by the tenant's plan (its `plan` attribute).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per second for each plan name.
    #[serde(default)]
    pub requests_per_second: HashMap<String, u32>,
    /// For a plan not listed.
    #[serde(default = "default_rps")]
    pub default_requests_per_second: u32,
    /// Requests refused before any decision (a bad credential, another tenant's host, an
    /// unknown tenant) per second from one client address; past it, the address gets 429
    /// `too_many_refusals` until it slows down. Charged to no tenant. 0: no limit.
    #[serde(default = "default_refusals_per_source")]
    pub refusals_per_source_per_second: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_second: HashMap::new(),
            default_requests_per_second: default_rps(),
            refusals_per_source_per_second: default_refusals_per_source(),
        }
    }
}

fn default_refusals_per_source() -> u32 {
    100
}

fn default_rps() -> u32 {
    1_000
}

/// PostgreSQL. Without `url`, `gatehouse` runs a private cluster in `data_dir` from the
/// system's PostgreSQL binaries. `GATEHOUSE_DATABASE_URL` and `GATEHOUSE_DATABASE_OWNER_URL`
/// override `url` and `owner_url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The application role's URL (a role without SUPERUSER or BYPASSRLS).
    #[serde(default)]
    pub url: Option<Secret>,
    /// The tables' owner's URL, to run migrations with; without it none are run.
    #[serde(default)]
    pub owner_url: Option<Secret>,
    /// The private cluster's data directory.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The private cluster's port (a free one when absent).
    #[serde(default)]
    pub port: Option<u16>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            owner_url: None,
            data_dir: default_data_dir(),
            port: None,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(".gatehouse/postgres")
}

/// The audit log's batching and spool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `"sync"` (the default): no answer and no effect without a durable record. A request
    /// that changes data is forwarded once its record is in the synced spool; a read is
    /// forwarded at once and its response held until then. `"async"`: records are spooled
    /// a moment after the answer, and a crash may lose the last few.
    #[serde(default)]
    pub durability: Durability,
    /// Where records are made durable, and wait while PostgreSQL is unreachable.
    #[serde(default = "default_spool")]
    pub spool: PathBuf,
    /// Records per batch, at most.
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// A batch is written to PostgreSQL at least this often, in milliseconds.
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// The longest one write to PostgreSQL may take (statement, lock and transaction),
    /// in milliseconds; what it held is written again later.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: u64,
    /// Unwritten records held in memory, at most, while PostgreSQL is away or behind; the
    /// rest wait in the spool file only.
    #[serde(default = "default_memory_max")]
    pub memory_max: usize,
    /// The Ed25519 key (PKCS#8 PEM) that signs checkpoints of the chains' heads; kept
    /// away from the database. Absent: `audit-checkpoint.pem` beside the spool, created on
    /// first start (its public key in `audit-checkpoint.pem.pub`).
    #[serde(default)]
    pub checkpoint_key_file: Option<PathBuf>,
    /// Where checkpoints are appended (JSON lines). Absent: `audit-checkpoints.jsonl`
    /// beside the spool. Keep a copy somewhere the database's administrators cannot write.
    #[serde(default)]
    pub checkpoint_file: Option<PathBuf>,
    /// How often each tenant's head is checkpointed while it has new records.
    #[serde(default = "default_checkpoint_seconds")]
    pub checkpoint_interval_seconds: u64,
}

impl AuditConfig {
    /// The checkpoint key file and checkpoint file, defaulting to the spool's folder.
    pub fn checkpoint_paths(&self) -> (PathBuf, PathBuf) {
        let beside = |name: &str| {
            self.spool
                .parent()
                .map_or_else(|| PathBuf::from(name), |dir| dir.join(name))
        };
        (
            self.checkpoint_key_file
                .clone()
                .unwrap_or_else(|| beside("audit-checkpoint.pem")),
            self.checkpoint_file
                .clone()
                .unwrap_or_else(|| beside("audit-checkpoints.jsonl")),
        )
    }
}

fn default_checkpoint_seconds() -> u64 {
    10
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            spool: default_spool(),
            batch_max: default_batch_max(),
            flush_interval_ms: default_flush_ms(),
            write_timeout_ms: default_write_timeout_ms(),
            memory_max: default_memory_max(),
            checkpoint_key_file: None,
            checkpoint_file: None,
            checkpoint_interval_seconds: default_checkpoint_seconds(),
        }
    }
}

fn default_write_timeout_ms() -> u64 {
    5_000
}

fn default_spool() -> PathBuf {
    PathBuf::from(".gatehouse/audit.spool")
}

fn default_batch_max() -> usize {
    500
}

fn default_memory_max() -> usize {
    100_000
}

fn default_flush_ms() -> u64 {
    50
}

/// Listeners, threads and shutdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The address the proxy listens on, e.g. `127.0.0.1:8080`.
    pub listen: String,
    /// Proxy workers: each a single-threaded Pingora service with its own socket on
    /// `listen` (`SO_REUSEPORT`, so `listen` needs a fixed port) and its own upstream
    /// connection pool.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Where `/metrics` (Prometheus) is served; not served when absent.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Seconds to keep serving in-flight requests after SIGTERM.
    #[serde(default = "default_grace")]
    pub grace_period_seconds: u64,
}

fn default_threads() -> usize {
    2
}

fn default_grace() -> u64 {
    5
}

/// The policy bundle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The bundle directory (holding `bundle.toml`).
    pub bundle: PathBuf,
    /// How often to look for a changed bundle, in seconds (0: never).
    #[serde(default = "default_reload")]
    pub reload_interval_seconds: u64,
}

fn default_reload() -> u64 {
    2
}

/// Where entities come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitiesConfig {
    /// `postgres` (the `entities` table, cached, under row-level security) or `file`.
    #[serde(default)]
    pub source: EntitySource,
    /// A Cedar entities JSON file: the entities themselves (`file`), or the seed of an
    /// empty database (`postgres`).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Entity slices the cache holds at most (`postgres`).
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: u64,
}

fn default_cache_capacity() -> u64 {
    100_000
}

/// Where entities come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntitySource {
    /// A JSON file, loaded into memory at start.
    #[default]
    File,
    /// PostgreSQL.
    Postgres,
}

/// How the tenant of a request is found.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenancyConfig {
    /// Host names `<tenant>.<base_domain>` name their tenant.
    #[serde(default)]
    pub base_domain: Option<String>,
    /// The token claim that names the tenant: a token without it is refused. Empty: tokens
    /// name no tenant, and the host alone says which tenant a request is for.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            base_domain: None,
            tenant_claim: default_tenant_claim(),
        }
    }
}

fn default_tenant_claim() -> String {
    "tenant".into()
}

/// Token verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The required `iss` claim.
    pub issuer: String,
    /// The required `aud` claim.
    pub audience: String,
    /// A JWKS file with the identity provider's public keys (RS256, ES256, EdDSA).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A shared secret for HS256 tokens (32 bytes or more, as an `env:`/`file:`
    /// reference), only with `allow_hs256`.
    #[serde(default)]
    pub hs256_secret: Option<Secret>,
    /// Accept HS256 tokens signed with `hs256_secret`.
    #[serde(default)]
    pub allow_hs256: bool,
    /// Development mode: HS256 tokens signed with the random secret in `dev_secret_file`
    /// (created on first use, mode 600) are accepted, and `gatehouse dev-token` mints
    /// them. Refused unless every listener is on loopback.
    #[serde(default)]
    pub development: bool,
    /// The development mode's secret.
    #[serde(default = "default_dev_secret_file")]
    pub dev_secret_file: PathBuf,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// The longest a token may be valid for (from `iat`, or from now without one): a
    /// token that claims more is refused.
    #[serde(default = "default_max_token_lifetime")]
    pub max_token_lifetime_seconds: u64,
}

fn default_dev_secret_file() -> PathBuf {
    ".gatehouse/dev-hs256.secret".into()
}

fn default_max_token_lifetime() -> u64 {
    24 * 3600
}

fn default_leeway() -> u64 {
    30
}

/// The signed context forwarded to upstreams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardingConfig {
    /// How contexts are signed: `EdDSA` (the default; upstreams verify with the public
    /// key) or `HS256` (a secret shared with adapters one runs; about 20x cheaper).
    #[serde(default)]
    pub algorithm: ContextAlgorithm,
    /// `EdDSA`: an Ed25519 private key (PKCS#8 PEM, or an `env:`/`file:` reference); a
    /// fresh key per start when absent.
    #[serde(default)]
    pub signing_key: Option<Secret>,
    /// `HS256`: the shared secret (an `env:`/`file:` reference, 32 bytes or more); a fresh
    /// random one per start when absent (adapters in the gateway's process only).
    #[serde(default)]
    pub shared_secret: Option<Secret>,
    /// How long a forwarded context is valid, in seconds.
    #[serde(default = "default_context_lifetime")]
    pub context_lifetime_seconds: u64,
}

impl Default for ForwardingConfig {
    fn default() -> Self {
        Self {
            algorithm: ContextAlgorithm::default(),
            signing_key: None,
            shared_secret: None,
            context_lifetime_seconds: default_context_lifetime(),
        }
    }
}

/// The JWS algorithm of the forwarded context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ContextAlgorithm {
    /// Ed25519.
    #[default]
    EdDSA,
    /// HMAC-SHA256.
    HS256,
}

fn default_context_lifetime() -> u64 {
    30
}

/// One upstream service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Its name, used by routes.
    pub name: String,
    /// `host:port` of a plain-HTTP server.
    pub address: String,
    /// Pass the client's own credentials (`Authorization`, `X-API-Key`) on to it. Off by
    /// default: an upstream gets the signed context instead, and could replay a token
    /// or key it was given.
    #[serde(default)]
    pub forward_credentials: bool,
}

/// One route: method and path pattern to a Cedar action and resource, and an upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path pattern; `{id}` captures the resource id, e.g. `/documents/{id}`.
    pub path: String,
    /// The Cedar action id, e.g. `document:read`.
    pub action: String,
    /// The resource's entity type; `Tenant` means the request's tenant.
    pub resource: String,
    /// The upstream's name.
    pub upstream: String,
}

/// A tenant API key for a service client, stored as the SHA-256 of the key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The tenant the key belongs to.
    pub tenant: String,
    /// The principal the key authenticates, e.g. `User::"acme-svc"`.
    pub principal: String,
    /// Hex SHA-256 of the key.
    pub sha256: String,
}

/// The demo's built-in upstream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Serve an echo upstream on this address (it shows what the gateway forwards).
    #[serde(default)]
    pub echo_upstream: Option<String>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit.
    #[error("{origin}: {message}")]
    Parse {
        /// Where the configuration came from.
        origin: String,
        /// What is wrong, with the line when known.
        message: String,
    },
    /// A value is invalid.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a configuration file.
    ///
    /// # Errors
    /// [`ConfigError`] when unreadable, malformed or inconsistent.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a configuration, applies environment overrides and checks it.
    ///
    /// # Errors
    /// [`ConfigError`] when malformed or inconsistent.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            ConfigError::Parse {
                origin: line.map_or(origin.to_string(), |l| format!("{origin}:{l}")),
                message: e.message().to_string(),
            }
        })?;
        if let Ok(listen) = std::env::var("GATEHOUSE_LISTEN") {
            config.server.listen = listen;
        }
        if let Ok(url) = std::env::var("GATEHOUSE_DATABASE_URL") {
            config.database.url = Some(Secret::resolve(&url)?);
        }
        if let Ok(url) = std::env::var("GATEHOUSE_DATABASE_OWNER_URL") {
            config.database.owner_url = Some(Secret::resolve(&url)?);
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let Ok(listen) = self.server.listen.parse::<SocketAddr>() else {
            return invalid(format!(
                "server.listen {:?} is not host:port",
                self.server.listen
            ));
        };
        // Each worker binds its own socket: port 0 would give each a different port.
        if listen.port() == 0 && self.server.threads > 1 {
            return invalid("server.listen needs a fixed port when server.threads > 1".into());
        }
        let upstreams: HashMap<&str, &UpstreamConfig> = self
            .upstreams
            .iter()
            .map(|u| (u.name.as_str(), u))
            .collect();
        for u in &self.upstreams {
            if u.address.parse::<SocketAddr>().is_err() {
                return invalid(format!(
                    "upstream {} address {:?} is not host:port",
                    u.name, u.address
                ));
            }
        }
        for r in &self.routes {
            if !upstreams.contains_key(r.upstream.as_str()) {
                return invalid(format!(
                    "route {} {} names unknown upstream {:?}",
                    r.method, r.path, r.upstream
                ));
            }
        }
        if self.entities.source == EntitySource::File && self.entities.file.is_none() {
            return invalid("entities.source = \"file\" needs entities.file".into());
        }
        self.check_identity()
    }

    /// HS256 only with a strong, unpublished secret; development mode only on loopback.
    fn check_identity(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let identity = &self.identity;
        if identity.allow_hs256 {
            let Some(secret) = &identity.hs256_secret else {
                return invalid("identity.allow_hs256 needs identity.hs256_secret".into());
            };
            if PUBLISHED_SECRETS.contains(&secret.expose()) {
                return invalid(
                    "identity.hs256_secret is a published secret: anyone could sign tokens with it"
                        .into(),
                );
            }
            if secret.expose().len() < MIN_SECRET_BYTES {
                return invalid(format!(
                    "identity.hs256_secret must be at least {MIN_SECRET_BYTES} bytes"
                ));
            }
        }
        if identity.development && identity.allow_hs256 {
            return invalid("identity.development and identity.allow_hs256 exclude each other: development mode makes its own secret".into());
        }
        let exposed = self.listeners().find(|(_, a)| !is_loopback(a));
        if let (true, Some((name, address))) = (identity.development, exposed) {
            return invalid(format!(
                "identity.development needs every listener on loopback, and {name} is {address:?}: anyone who can reach it could mint tokens"
            ));
        }
        Ok(())
    }

    /// Every address gatehouse listens on, with its setting's name.
    fn listeners(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let adapters = &self.adapters;
        [
            Some(("server.listen", self.server.listen.as_str())),
            self.server
                .metrics_listen
                .as_deref()
                .map(|a| ("server.metrics_listen", a)),
            self.demo
                .echo_upstream
                .as_deref()
                .map(|a| ("demo.echo_upstream", a)),
            adapters
                .documents
                .as_ref()
                .map(|d| ("adapters.documents.listen", d.listen.as_str())),
            adapters
                .blobs
                .as_ref()
                .map(|b| ("adapters.blobs.listen", b.listen.as_str())),
            adapters
                .blobs
                .as_ref()
                .map(|b| ("adapters.blobs.local_listen", b.local_listen.as_str())),
            adapters
                .search
                .as_ref()
                .map(|s| ("adapters.search.listen", s.listen.as_str())),
        ]
        .into_iter()
        .flatten()
    }
}

/// Whether `address` (`host:port`) is on loopback; a name other than `localhost` is not.
fn is_loopback(address: &str) -> bool {
    match address.parse::<SocketAddr>() {
        Ok(address) => address.ip().is_loopback(),
        Err(_) => address
            .rsplit_once(':')
            .is_some_and(|(host, _)| host == "localhost"),
    }
}

/// A secret from the configuration: written inline, or as a reference (`env:NAME`,
/// `file:PATH`) resolved once, when the configuration is parsed. Its value is never
/// printed (`Debug` shows `Secret(..)`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Secret(String);

impl Secret {
    /// Resolves `env:NAME` and `file:PATH` references; anything else is a literal.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the missing variable or file (never its value).
    pub fn resolve(value: &str) -> Result<Self, ConfigError> {
        if let Some(name) = value.strip_prefix("env:") {
            return std::env::var(name).map(Self).map_err(|_| {
                ConfigError::Invalid(format!("environment variable {name} is not set"))
            });
        }
        if let Some(path) = value.strip_prefix("file:") {
            return std::fs::read_to_string(path)
                .map(|s| Self(s.trim_end().to_string()))
                .map_err(|e| ConfigError::Invalid(format!("cannot read {path}: {e}")));
        }
        Ok(Self(value.to_string()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Secret {
    type Error = ConfigError;

    fn try_from(value: String) -> Result<Self, ConfigError> {
        Self::resolve(&value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_openapi_file_describes_exactly_the_adapters_routes() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/openapi/data-plane.json")).unwrap();
        let mut described: Vec<(String, String, String, String)> = Vec::new();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, op) in operations.as_object().unwrap() {
                let action = op["x-cedar-action"].as_str().unwrap();
                let action = action
                    .trim_start_matches("Action::\"")
                    .trim_end_matches('"');
                let resource = op["x-cedar-resource"].as_str().unwrap();
                described.push((
                    method.to_uppercase(),
                    path.clone(),
                    action.into(),
                    resource.into(),
                ));
            }
        }
        let mut served: Vec<(String, String, String, String)> = gatehouse_adapter_pg::api::ROUTES
            .iter()
            .chain(gatehouse_adapter_blobs::api::ROUTES)
            .chain(gatehouse_adapter_search::api::ROUTES)
            .map(|(m, p, a, r)| (m.to_string(), p.to_string(), a.to_string(), r.to_string()))
            .collect();
        described.sort();
        served.sort();
        assert_eq!(described, served);
        assert_references_resolve(&doc);
    }

    /// Every `$ref` of an OpenAPI document names one of its schemas.
    pub(crate) fn assert_references_resolve(doc: &serde_json::Value) {
        let text = doc.to_string();
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_default_routes_to_each_adapter_are_the_adapters_own() {
        let config = Config::parse(DEMO, "defaults").unwrap();
        let adapters = [
            ("documents", gatehouse_adapter_pg::api::ROUTES),
            ("blobs", gatehouse_adapter_blobs::api::ROUTES),
            ("search", gatehouse_adapter_search::api::ROUTES),
        ];
        for (upstream, routes) in adapters {
            let routed: Vec<(String, String, String, String)> = config
                .routes
                .iter()
                .filter(|r| r.upstream == upstream)
                .map(|r| {
                    (
                        r.method.clone(),
                        r.path.clone(),
                        r.action.clone(),
                        r.resource.clone(),
                    )
                })
                .collect();
            let served: Vec<(String, String, String, String)> = routes
                .iter()
                .map(|(m, p, a, r)| (m.to_string(), p.to_string(), a.to_string(), r.to_string()))
                .collect();
            assert_eq!(routed, served, "{upstream}");
        }
    }

    #[test]
    fn the_embedded_defaults_are_valid() {
        let config = Config::parse(DEMO, "embedded").unwrap();
        assert!(!config.routes.is_empty());
        assert!(config.identity.development, "the demo mints its own tokens");
    }

    #[test]
    fn the_printed_template_is_for_production() {
        let config = Config::parse(PRODUCTION_TEMPLATE, "template").unwrap();
        let identity = &config.identity;
        assert!(!identity.development && !identity.allow_hs256);
        assert!(identity.hs256_secret.is_none() && identity.jwks_file.is_some());
        assert!(config.forwarding.shared_secret.is_none());
        assert!(config.forwarding.signing_key.is_none());
        assert!(config.database.url.is_none() && config.database.owner_url.is_none());
        let blobs = config.adapters.blobs.as_ref().unwrap();
        assert!(blobs.master_key.is_none() && blobs.secret_key.is_none());
        assert!(config.demo.echo_upstream.is_none());
        assert_eq!(
            config.routes.len(),
            Config::parse(DEMO, "demo").unwrap().routes.len()
        );
        assert_eq!(config.audit.durability, Durability::Sync);
    }

    #[test]
    fn the_audit_is_durable_unless_chosen_otherwise() {
        let demo = Config::parse(DEMO, "demo").unwrap();
        assert_eq!(demo.audit.durability, Durability::Sync);
        let with = |value: &str| {
            Config::parse(&format!("{DEMO}\n[audit]\ndurability = {value}\n"), "test")
        };
        assert_eq!(
            with("\"async\"").unwrap().audit.durability,
            Durability::Async
        );
        assert!(with("\"eventually\"").is_err());
    }

    #[test]
    fn development_mode_is_refused_off_loopback() {
        for (from, to) in [
            ("listen = \"127.0.0.1:8080\"", "listen = \"0.0.0.0:8080\""),
            (
                "metrics_listen = \"127.0.0.1:9090\"",
                "metrics_listen = \"10.0.0.5:9090\"",
            ),
            ("listen = \"127.0.0.1:8082\"", "listen = \"[::]:8082\""),
        ] {
            let exposed = DEMO.replacen(from, to, 1);
            assert_ne!(exposed, DEMO, "{from}");
            let err = Config::parse(&exposed, "x.toml").unwrap_err().to_string();
            assert!(err.contains("loopback"), "{to}: {err}");
        }
        let ipv6 = DEMO.replacen("127.0.0.1:8082", "[::1]:8082", 1);
        assert!(
            Config::parse(&ipv6, "x.toml").is_ok(),
            "IPv6 loopback is loopback"
        );
        let plain = DEMO.replacen("development = true", "development = false", 1);
        let public = plain.replacen(
            "listen = \"127.0.0.1:8080\"",
            "listen = \"0.0.0.0:8080\"",
            1,
        );
        assert!(
            Config::parse(&public, "x.toml").is_ok(),
            "outside development mode"
        );
    }

    #[test]
    fn hs256_secrets_must_be_long_and_unpublished() {
        let with = |secret: &str| {
            let text = DEMO.replacen(
                "development = true",
                &format!("allow_hs256 = true\nhs256_secret = \"{secret}\""),
                1,
            );
            Config::parse(&text, "x.toml").map_err(|e| e.to_string())
        };
        assert!(with("short").unwrap_err().contains("at least 32 bytes"));
        assert!(
            with("gatehouse-dev-secret-change-me")
                .unwrap_err()
                .contains("published")
        );
        assert!(with("a-long-secret-that-nobody-has-seen-before").is_ok());
    }

    #[test]
    fn errors_name_the_line_and_unknown_upstreams_are_refused() {
        let broken = DEMO.replace("[server]", "[server]\nbogus = 1");
        let err = Config::parse(&broken, "x.toml").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:"), "{err}");
        assert!(err.contains("bogus"), "{err}");
        let dangling = DEMO.replacen("upstream = \"app\"", "upstream = \"nowhere\"", 1);
        let err = Config::parse(&dangling, "x.toml").unwrap_err().to_string();
        assert!(err.contains("unknown upstream \"nowhere\""), "{err}");
    }

    #[test]
    fn several_workers_need_a_fixed_port() {
        let with = |listen: &str, threads: u32| {
            let text = DEMO
                .replacen("threads = 2", &format!("threads = {threads}"), 1)
                .replacen(
                    "listen = \"127.0.0.1:8080\"",
                    &format!("listen = \"{listen}\""),
                    1,
                );
            Config::parse(&text, "x.toml").map_err(|e| e.to_string())
        };
        let err = with("127.0.0.1:0", 2).unwrap_err();
        assert!(err.contains("fixed port"), "{err}");
        assert!(with("127.0.0.1:0", 1).is_ok());
        assert!(with("127.0.0.1:8080", 2).is_ok());
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file() {
        let resolve_secret = |v: &str| Secret::resolve(v).map(|s| s.expose().to_string());
        assert_eq!(resolve_secret("literal").unwrap(), "literal");
        let err = resolve_secret("env:GATEHOUSE_TEST_SURELY_UNSET")
            .unwrap_err()
            .to_string();
        assert!(err.contains("GATEHOUSE_TEST_SURELY_UNSET"), "{err}");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "s3cret\n").unwrap();
        assert_eq!(
            resolve_secret(&format!("file:{}", file.path().display())).unwrap(),
            "s3cret"
        );
        // Resolved when the configuration is parsed, and never printed.
        let unset = toml::from_str::<DatabaseConfig>("url = \"env:GATEHOUSE_TEST_SURELY_UNSET\"");
        assert!(unset.is_err(), "an unresolvable reference fails the parse");
        let parsed: DatabaseConfig = toml::from_str("url = \"postgres://u:hunter2@h/db\"").unwrap();
        assert!(!format!("{parsed:?}").contains("hunter2"));
    }
}
