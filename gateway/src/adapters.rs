//! Adapter services run inside the `gatehouse` process, each on its own address, each a
//! Pingora background service. They verify the same signed context the gateway forwards
//! to any upstream: being in-process grants them nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_adapter_kit::ContextGuard;
use gatehouse_adapter_pg::DocumentsApi;
use gatehouse_core::forwarded::ContextSigner;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sqlx::postgres::PgPoolOptions;

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
    ) -> anyhow::Result<Self> {
        let verifier = signer.verifier()?;
        let app_url = app_url.to_string();
        let make_router = move || {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(2))
                .connect_lazy(&app_url)?;
            let guard = ContextGuard::new(verifier.clone(), context_lifetime);
            let api = Arc::new(DocumentsApi::new(pool, guard));
            Ok(gatehouse_adapter_pg::router(api))
        };
        Ok(Self {
            name: "documents",
            address: address.to_string(),
            make_router: Box::new(make_router),
        })
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
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(target: "gatehouse::adapter", adapter = self.name, error = %e, "stopped");
        }
    }
}
