//! Building the gateway from its configuration and running it under Pingora.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cedar_policy::Entities;
use gatehouse_core::forwarded::ContextSigner;
use gatehouse_pdp::{Bundle, CurrentBundle, MemoryStore, Pdp};
use pingora::listeners::TcpSocketOptions;
use pingora::proxy::{ProxyHttp, http_proxy_service_with_name};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;

use gatehouse_audit::{AuditWriter, SpoolOptions, Spooler};

use crate::authorize::Authorizer;
use crate::authorize::adapters::AdapterDecider;
use crate::config::{Config, ContextAlgorithm, EntitySource, ForwardingConfig};
use crate::decision_api::DecisionApi;
use crate::edge::admission::Tenants;
use crate::edge::identity::Authenticator;
use crate::edge::routes::Routes;
use crate::metrics::MetricsEndpoint;
use crate::proxy::{Gateway, ProxyWorker};
use crate::runtime::adapters::{AdapterService, BlobSetup};
use crate::runtime::database::{AuditService, Database, drain_spool_after_shutdown};
use crate::runtime::echo::EchoUpstream;
use crate::runtime::entity_store::{ChangeListener, PgEntityStore, Store};
use crate::runtime::reload::BundleReloader;

/// Builds the gateway's shared state: loads and validates the bundle and the entities,
/// compiles routes and keys. Nothing is served if any of it fails. With PostgreSQL as the
/// entity source, `database` must be prepared.
///
/// # Errors
/// What could not be loaded, with its file.
pub fn build(
    config: &Config,
    audit: AuditWriter,
    database: Option<&Database>,
) -> anyhow::Result<Gateway> {
    let bundle = Arc::new(CurrentBundle::new(Bundle::load(&config.policy.bundle)?));
    let (store, tenants) = match (config.entities.source, database) {
        (EntitySource::File, _) => {
            let file = config
                .entities
                .file
                .as_ref()
                .context("entities.file is required")?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading entities {}", file.display()))?;
            let snapshot = bundle.snapshot();
            let entities = Entities::from_json_str(&text, Some(snapshot.schema()))
                .with_context(|| format!("entities {} do not fit the schema", file.display()))?;
            let store = MemoryStore::new(&entities, snapshot.schema())?;
            (
                Store::Memory(Arc::new(store)),
                Tenants::from_entities(&entities, config.limits.clone()),
            )
        }
        (EntitySource::Postgres, Some(db)) => {
            let store = PgEntityStore::new(
                db.app_url.clone(),
                bundle.clone(),
                config.entities.cache_capacity,
            );
            let tenants = Tenants::new(db.directory.clone(), config.limits.clone());
            (Store::Postgres(Arc::new(store)), tenants)
        }
        (EntitySource::Postgres, None) => {
            anyhow::bail!("entities.source = \"postgres\" needs the database")
        }
    };
    let auth = Authenticator::new(
        &config.identity,
        &config.tenancy.tenant_claim,
        &config.api_keys,
    )?;
    let routes = Routes::compile(&config.routes, &config.upstreams)?;
    let signer = context_signer(&config.forwarding)?;
    let authorizer = Authorizer::new(Arc::new(Pdp::new(bundle)), store, audit);
    Ok(Gateway {
        api: DecisionApi::new(authorizer.clone()),
        authorizer,
        auth,
        routes,
        base_domain: config.tenancy.base_domain.clone(),
        signer,
        tenants: Arc::new(tenants),
    })
}

fn context_signer(config: &ForwardingConfig) -> anyhow::Result<ContextSigner> {
    let lifetime = Duration::from_secs(config.context_lifetime_seconds);
    Ok(
        match (config.algorithm, &config.signing_key, &config.shared_secret) {
            (ContextAlgorithm::EdDSA, Some(key), _) => {
                ContextSigner::from_pem(key.expose(), lifetime)?
            }
            (ContextAlgorithm::EdDSA, None, _) => ContextSigner::generate(lifetime)?,
            (ContextAlgorithm::HS256, _, Some(secret)) => {
                ContextSigner::from_secret(secret.expose().as_bytes(), lifetime)?
            }
            (ContextAlgorithm::HS256, _, None) => ContextSigner::generate_secret(lifetime),
        },
    )
}

/// Checks a configuration: its bundle, its entities (in PostgreSQL, migrating an empty
/// database) and everything [`build`] compiles; returns the bundle it would serve.
///
/// # Errors
/// What could not be loaded, with its file.
pub fn check(config: &Config) -> anyhow::Result<String> {
    let audit = AuditWriter::detached(config.audit.durability);
    let database = match config.entities.source {
        EntitySource::Postgres => Some(Database::prepare(&config.database, None)?),
        EntitySource::File => None,
    };
    let gateway = build(config, audit, database.as_ref())?;
    Ok(gateway
        .authorizer
        .pdp()
        .bundle()
        .snapshot()
        .id()
        .to_string())
}

/// Runs the gateway until SIGTERM (graceful) or SIGINT.
///
/// # Errors
/// When the gateway cannot be built.
pub fn run(config: Config) -> anyhow::Result<()> {
    let mut changes = None;
    let database = Database::prepare(&config.database, seed(&config)?.as_deref())?;
    if let Some(parent) = config.audit.spool.parent() {
        gatehouse_core::secret_file::create_private_dir(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let options = SpoolOptions {
        durability: config.audit.durability,
        memory_max: config.audit.memory_max,
        ..SpoolOptions::default()
    };
    let (audit, spooler, spooled) = Spooler::start(&config.audit.spool, options)
        .with_context(|| format!("the audit spool {}", config.audit.spool.display()))?;
    let audit_service = AuditService::new(spooled, &database.app_url, config.audit.clone())?;
    let gateway = build(&config, audit, Some(&database))?;
    if let Store::Postgres(store) = gateway.authorizer.store() {
        changes = Some(ChangeListener {
            store: store.clone(),
            tenants: gateway.tenants.clone(),
            url: database.app_url.clone(),
        });
    }
    if config.identity.development {
        let secret = config.identity.dev_secret_file.display().to_string();
        tracing::warn!(target: "gatehouse::server", secret, "DEVELOPMENT MODE: HS256 tokens signed with the secret in this file are accepted for any user of any tenant; every listener is on loopback. Never use this configuration in production (gatehouse --print-default-config prints a template).");
        eprintln!(
            "gatehouse: DEVELOPMENT MODE, loopback only: tokens signed with {secret} are accepted for anyone"
        );
    }
    tracing::info!(
        target: "gatehouse::server",
        listen = %config.server.listen,
        bundle = %gateway.authorizer.pdp().bundle().snapshot().id(),
        context_algorithm = gateway.signer.algorithm(),
        context_public_key = gateway.signer.public_key_pem(),
        "starting"
    );
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(1),
        // Proxy workers are single-threaded services (see `add_proxy_workers`), and so is
        // every background service.
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    if let Some(listener) = changes {
        server.add_service(background_service("entity changes", listener));
    }
    server.add_service(background_service("audit writer", audit_service));
    if config.policy.reload_interval_seconds > 0 {
        let reloader = BundleReloader {
            pdp: gateway.authorizer.pdp().clone(),
            dir: config.policy.bundle.clone(),
            every: Duration::from_secs(config.policy.reload_interval_seconds),
        };
        server.add_service(background_service("bundle reload", reloader));
    }
    if let Some(address) = &config.server.metrics_listen {
        let endpoint = MetricsEndpoint {
            address: address.clone(),
            pdp: gateway.authorizer.pdp().clone(),
        };
        server.add_service(background_service("metrics", endpoint));
    }
    if let Some(adapter) = &config.adapters.documents {
        let lifetime = Duration::from_secs(config.forwarding.context_lifetime_seconds);
        let decider = Arc::new(AdapterDecider::new(
            gateway.authorizer.clone(),
            "adapter:documents",
            config.adapters.postcheck_sample_rate,
        ));
        let documents = AdapterService::documents(
            &adapter.listen,
            &database.app_url,
            &gateway.signer,
            lifetime,
            decider,
        )?;
        server.add_service(background_service("documents adapter", documents));
    }
    let mut blob_setup = config
        .adapters
        .blobs
        .as_ref()
        .map(BlobSetup::from_config)
        .transpose()?;
    if let (Some(blobs), Some(setup)) = (&config.adapters.blobs, blob_setup.as_mut()) {
        let lifetime = Duration::from_secs(config.forwarding.context_lifetime_seconds);
        let adapter =
            AdapterService::blobs(blobs, setup, &database.app_url, &gateway.signer, lifetime)?;
        if let Some(local) = setup.local.take() {
            server.add_service(background_service("local S3", local));
        }
        server.add_service(background_service("blobs adapter", adapter));
    }
    if let Some(search) = &config.adapters.search {
        let lifetime = Duration::from_secs(config.forwarding.context_lifetime_seconds);
        let decider = Arc::new(AdapterDecider::new(
            gateway.authorizer.clone(),
            "adapter:search",
            config.adapters.postcheck_sample_rate,
        ));
        let adapter = AdapterService::search(
            search,
            blob_setup.as_ref(),
            &database.app_url,
            &gateway.signer,
            lifetime,
            decider,
        )?;
        server.add_service(background_service("search adapter", adapter));
    }
    if let Some(address) = &config.demo.echo_upstream {
        let echo = EchoUpstream {
            address: address.clone(),
            verifier: gateway.signer.verifier()?,
        };
        server.add_service(background_service("demo echo upstream", echo));
    }
    let worker = ProxyWorker(Arc::new(gateway));
    add_proxy_workers(
        &mut server,
        &worker,
        &config.server.listen,
        config.server.threads,
    );
    server.run(RunArgs::default());
    // Every service has stopped: spool what is still queued, write the spool, then stop
    // the private cluster (when there is one) by dropping it.
    spooler.stop();
    drain_spool_after_shutdown(&database.app_url, &config.audit);
    drop(database);
    Ok(())
}

/// Adds `app` as `threads` single-threaded proxy services ("workers"), each with its own
/// listening socket on `listen` (`SO_REUSEPORT`; the kernel spreads connections over
/// them) and so its own upstream connection pool. See [`ProxyWorker`] for why.
pub fn add_proxy_workers<SV>(server: &mut Server, app: &SV, listen: &str, threads: usize)
where
    SV: ProxyHttp + Clone + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    for n in 0..threads.max(1) {
        let name = format!("proxy worker {n}");
        let mut proxy = http_proxy_service_with_name(&server.configuration, app.clone(), &name);
        proxy.threads = Some(1);
        let mut options = TcpSocketOptions::default();
        options.so_reuseport = Some(true);
        proxy.add_tcp_with_settings(&worker_address(listen, n), options);
        server.add_service(proxy);
    }
}

/// `listen` spelled for worker `n`: the same address, with `n` zeros before the port.
///
/// Pingora keys listening sockets by their address text: under one text, every service
/// would get the socket the first one bound, and each would close it at shutdown (a
/// double close). A spelling of its own gets each worker a socket of its own.
fn worker_address(listen: &str, n: usize) -> String {
    match listen.rsplit_once(':') {
        Some((host, port)) => format!("{host}:{}{port}", "0".repeat(n)),
        None => listen.to_string(),
    }
}

/// The seed for an empty entity database: the entities file, with PostgreSQL as source.
fn seed(config: &Config) -> anyhow::Result<Option<String>> {
    match (config.entities.source, &config.entities.file) {
        (EntitySource::Postgres, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the seed {}", file.display()))?;
            Ok(Some(text))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::TenantId;
    use gatehouse_core::forwarded::{ContextVerifier, ForwardedContext};
    use std::time::SystemTime;

    #[test]
    fn each_worker_spells_the_same_address_its_own_way() {
        use std::net::ToSocketAddrs;
        for listen in ["127.0.0.1:8080", "[::1]:8080", "localhost:8080"] {
            let spellings: Vec<String> = (0..3).map(|n| worker_address(listen, n)).collect();
            assert_eq!(spellings[0], listen);
            assert!(spellings[1] != spellings[0] && spellings[2] != spellings[1]);
            let resolve = |a: &str| a.to_socket_addrs().unwrap().next().unwrap();
            for spelling in &spellings {
                assert_eq!(resolve(spelling), resolve(listen), "{spelling}");
            }
        }
    }

    fn forwarding(toml: &str) -> ForwardingConfig {
        toml::from_str(toml).unwrap()
    }

    fn context() -> ForwardedContext {
        ForwardedContext {
            tenant: TenantId::parse("acme").unwrap(),
            principal: r#"User::"acme-vera""#.into(),
            acting_for: None,
            action: r#"Action::"document:read""#.into(),
            resource: r#"Document::"acme-plan""#.into(),
            decision_id: "d-1".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            mfa: false,
            source_ip: None,
        }
    }

    #[test]
    fn the_configured_algorithm_and_secret_sign_the_context() {
        let secret = "a-secret-of-at-least-thirty-two-bytes";
        let config = forwarding(&format!(
            "algorithm = \"HS256\"\nshared_secret = \"{secret}\""
        ));
        let signer = context_signer(&config).unwrap();
        assert_eq!(signer.algorithm(), "HS256");
        let token = signer.sign(&context(), SystemTime::now()).unwrap();
        let verifier = ContextVerifier::from_secret(secret.as_bytes());
        assert_eq!(verifier.verify(&token).unwrap(), context());

        assert_eq!(
            context_signer(&forwarding("")).unwrap().algorithm(),
            "EdDSA"
        );
        let short = forwarding("algorithm = \"HS256\"\nshared_secret = \"short\"");
        assert!(context_signer(&short).is_err(), "a short secret is refused");
    }
}
