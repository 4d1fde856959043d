//! Building the gateway from its configuration and running it under Pingora.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use async_trait::async_trait;
use cedar_policy::Entities;
use gatehouse_core::forwarded::ContextSigner;
use gatehouse_pdp::{Bundle, CurrentBundle, MemoryStore, Pdp};
use pingora::server::ShutdownWatch;
use pingora::server::configuration::ServerConf;
use pingora::services::background::{BackgroundService, background_service};

use gatehouse_audit::AuditWriter;

use crate::config::{Config, resolve_secret};
use crate::database::{AuditService, Database};
use crate::echo::EchoUpstream;
use crate::identity::Authenticator;
use crate::metrics::MetricsEndpoint;
use crate::proxy::Gateway;
use crate::routes::Routes;
use crate::tenants::Tenants;

/// Builds the gateway's shared state: loads and validates the bundle and the entities,
/// compiles routes and keys. Nothing is served if any of it fails.
///
/// # Errors
/// What could not be loaded, with its file.
pub fn build(config: &Config, audit: AuditWriter) -> anyhow::Result<Gateway> {
    let bundle = Bundle::load(&config.policy.bundle).map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = std::fs::read_to_string(&config.entities.file)
        .with_context(|| format!("reading entities {}", config.entities.file.display()))?;
    let entities = Entities::from_json_str(&text, Some(bundle.schema())).with_context(|| {
        format!(
            "entities {} do not fit the schema",
            config.entities.file.display()
        )
    })?;
    let store = MemoryStore::new(&entities, bundle.schema())?;
    let tenants = Tenants::new(&entities, config.limits.clone());
    let auth = Authenticator::new(
        &config.identity,
        &config.tenancy.tenant_claim,
        &config.api_keys,
    )?;
    let routes = Routes::compile(&config.routes, &config.upstreams).map_err(anyhow::Error::msg)?;
    let lifetime = Duration::from_secs(config.forwarding.context_lifetime_seconds);
    let signer = match &config.forwarding.signing_key {
        Some(reference) => ContextSigner::from_pem(&resolve_secret(reference)?, lifetime)?,
        None => ContextSigner::generate(lifetime)?,
    };
    Ok(Gateway {
        pdp: Arc::new(Pdp::new(Arc::new(CurrentBundle::new(bundle)))),
        store: Arc::new(store),
        auth,
        routes,
        base_domain: config.tenancy.base_domain.clone(),
        signer,
        audit,
        tenants,
    })
}

/// Runs the gateway until SIGTERM (graceful) or SIGINT; never returns.
///
/// # Errors
/// When the gateway cannot be built.
pub fn run(config: Config) -> anyhow::Result<()> {
    let (audit, queue) = AuditWriter::channel();
    let gateway = build(&config, audit)?;
    let database = Database::prepare(&config.database)?;
    tracing::info!(
        target: "gatehouse::server",
        listen = %config.server.listen,
        bundle = %gateway.pdp.bundle().snapshot().id(),
        context_public_key = gateway.signer.public_key_pem(),
        "starting"
    );
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let audit_service = AuditService::new(queue, database, config.audit.clone());
    server.add_service(background_service("audit writer", audit_service));
    if config.policy.reload_interval_seconds > 0 {
        let reloader = BundleReloader {
            pdp: gateway.pdp.clone(),
            dir: config.policy.bundle.clone(),
            every: Duration::from_secs(config.policy.reload_interval_seconds),
        };
        server.add_service(background_service("bundle reload", reloader));
    }
    if let Some(address) = &config.server.metrics_listen {
        let endpoint = MetricsEndpoint {
            address: address.clone(),
        };
        server.add_service(background_service("metrics", endpoint));
    }
    if let Some(address) = &config.demo.echo_upstream {
        let echo = EchoUpstream {
            address: address.clone(),
            verifier: gateway.signer.verifier()?,
        };
        server.add_service(background_service("demo echo upstream", echo));
    }
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, gateway);
    proxy.add_tcp(&config.server.listen);
    server.add_service(proxy);
    server.run_forever()
}

/// Reloads the bundle when its files change; a refused bundle leaves the current one.
struct BundleReloader {
    pdp: Arc<Pdp>,
    dir: PathBuf,
    every: Duration,
}

#[async_trait]
impl BackgroundService for BundleReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut seen = fingerprint(&self.dir);
        let mut tick = tokio::time::interval(self.every);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {}
            }
            let now = fingerprint(&self.dir);
            if now == seen {
                continue;
            }
            seen = now;
            match self.pdp.bundle().reload(&self.dir) {
                Ok(id) => tracing::info!(target: "gatehouse::bundle", bundle = %id, "reloaded"),
                Err(e) => {
                    tracing::error!(target: "gatehouse::bundle", error = %e, "refused a new bundle; the previous one keeps serving")
                }
            }
        }
    }
}

/// Names, sizes and modification times of the bundle's files and of the schema beside it.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    for folder in [dir.to_path_buf(), dir.join("../schemas")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(meta) = entry.metadata() {
                out.push((entry.path(), meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    out
}
