//! Adapter services run inside the `gatehouse` process, each on its own address, each a
//! Pingora background service. They verify the same signed context the gateway forwards
//! to any upstream: being in-process grants them nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use gatehouse_adapter_kit::{AdapterError, Call, ContextGuard, Decider};
use gatehouse_adapter_pg::DocumentsApi;
use gatehouse_audit::AuditWriter;
use gatehouse_core::forwarded::ContextSigner;
use gatehouse_pdp::{AccessRequest, DecisionError, Pdp};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sqlx::postgres::PgPoolOptions;

use crate::metrics;
use crate::proxy::{Store, decision_record, new_decision_id};

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
        decider: Arc<PdpDecider>,
    ) -> anyhow::Result<Self> {
        let verifier = signer.verifier()?;
        let app_url = app_url.to_string();
        let make_router = move || {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(2))
                .connect_lazy(&app_url)?;
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

/// The gateway's decision point, for the further decisions of adapter calls (a move's
/// destination, each item of a bulk call): decided with the same policies, entities and
/// principal as the call, and audited like every decision.
pub struct PdpDecider {
    /// The decision point.
    pub pdp: Arc<Pdp>,
    /// The entities.
    pub store: Store,
    /// Where decisions are audited.
    pub audit: AuditWriter,
    /// The adapter, for the audit record's route.
    pub route: &'static str,
}

#[async_trait]
impl Decider for PdpDecider {
    async fn decide(
        &self,
        call: &Call,
        action: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<(), AdapterError> {
        let context = call.context();
        let uid = |text: &str| {
            text.parse::<EntityUid>()
                .map_err(|_| AdapterError::ContextInvalid)
        };
        let resource_type: EntityTypeName =
            resource_type.parse().map_err(|_| AdapterError::Internal)?;
        let mut request_context = serde_json::Map::new();
        request_context.insert("mfa".into(), serde_json::Value::Bool(context.mfa));
        let request = AccessRequest {
            tenant: context.tenant.clone(),
            principal: uid(&context.principal)?,
            action: EntityUid::from_type_name_and_id(
                "Action".parse().map_err(|_| AdapterError::Internal)?,
                EntityId::new(action),
            ),
            resource: EntityUid::from_type_name_and_id(resource_type, EntityId::new(id)),
            acting_for: context.acting_for.as_deref().map(uid).transpose()?,
            context: request_context,
        };
        let decision = self.pdp.decide(&self.store, &request).await;
        let decision_id = new_decision_id();
        self.audit.record(decision_record(
            &request,
            &decision,
            decision_id.clone(),
            context.trace_id.clone(),
            None,
            self.route,
        ));
        let effect = if decision.is_allowed() {
            "allow"
        } else {
            "deny"
        };
        metrics::DECISIONS
            .with_label_values(&[context.tenant.as_str(), effect])
            .inc();
        if decision.is_allowed() {
            return Ok(());
        }
        if decision
            .errors
            .iter()
            .any(|e| matches!(e, DecisionError::StoreUnavailable { .. }))
        {
            return Err(AdapterError::Unavailable);
        }
        Err(AdapterError::Forbidden(format!(
            "{action} on {} (decision {decision_id})",
            request.resource
        )))
    }
}
