//! The request path, as Pingora phases: every request is admitted (tenant → principal →
//! route → decision) in `request_filter` or answered there with a JSON error; only an
//! allowed request reaches `upstream_peer` and `upstream_request_filter`, which forward it
//! with the signed context.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use gatehouse_audit::{AuditRecord, AuditWriter};
use gatehouse_core::TenantId;
use gatehouse_core::forwarded::{CONTEXT_HEADER, ContextSigner, ForwardedContext};
use gatehouse_pdp::{AccessRequest, Decision, EntityStore, MemoryStore, Pdp, StoreError};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, Result};
use pingora::proxy::{ProxyHttp, Session};
use serde_json::{Value, json};

use crate::entities::PgEntityStore;
use crate::identity::{Authenticator, Principal};
use crate::metrics;
use crate::pdp_api::{self, PdpApi};
use crate::routes::{RouteError, Routes};
use crate::share_links;
use crate::tenant;
use crate::tenants::{Admission, Tenants};
use crate::trace::TraceContext;

/// Everything a request needs, shared by all requests.
pub struct Gateway {
    /// The decision point (and, through it, the current bundle).
    pub pdp: Arc<Pdp>,
    /// Where entities come from.
    pub store: Store,
    /// Verifies credentials.
    pub auth: Authenticator,
    /// The routes.
    pub routes: Routes,
    /// `<tenant>.<base_domain>` host names.
    pub base_domain: Option<String>,
    /// Signs the forwarded context.
    pub signer: ContextSigner,
    /// Queues audit records.
    pub audit: AuditWriter,
    /// The known tenants and their rate limits.
    pub tenants: Arc<Tenants>,
    /// The decision API ([`pdp_api`]).
    pub api: PdpApi,
}

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
        uids: &[cedar_policy::EntityUid],
    ) -> std::result::Result<Arc<cedar_policy::Entities>, StoreError> {
        match self {
            Self::Memory(store) => store.load(tenant, uids).await,
            Self::Postgres(store) => store.load(tenant, uids).await,
        }
    }
}

/// What one request has been through, for forwarding and the log line.
#[derive(Debug, Default)]
pub struct RequestState {
    started: Option<Instant>,
    trace: Option<TraceContext>,
    tenant: Option<TenantId>,
    principal: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    decision_id: Option<String>,
    decision: Option<&'static str>,
    code: Option<&'static str>,
    upstream: Option<SocketAddr>,
    forwarded: Option<String>,
    upstream_started: Option<Instant>,
}

/// A request answered by the gateway itself.
struct Refusal {
    status: u16,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// One worker thread's proxy: a handle on the shared [`Gateway`].
///
/// The server runs one single-threaded Pingora service per worker (see
/// [`add_proxy_workers`](crate::server::add_proxy_workers)) rather than one service with
/// several threads. Each service has its own upstream connection pool, so a connection
/// is always reused by the thread that released it. In a shared pool, an idle connection
/// is watched by a task on a random thread. When another thread takes it, the hand-over
/// races that task, and Pingora often drops the connection ("failed to acquire reusable
/// stream") and opens a new one. Under bench/gateway/run.sh with 2 threads, that
/// happened to about 1 request in 15, and the added p99 was twice what it is now.
#[derive(Clone)]
pub struct Worker(pub Arc<Gateway>);

impl std::ops::Deref for Worker {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.0
    }
}

#[async_trait]
impl ProxyHttp for Worker {
    type CTX = RequestState;

    fn new_ctx(&self) -> Self::CTX {
        RequestState {
            started: Some(Instant::now()),
            ..RequestState::default()
        }
    }

    /// Admits the request or answers it: health, tenant, principal, route, decision.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let trace = TraceContext::continue_or_start(header(session, "traceparent"));
        ctx.trace = Some(trace);
        if let Some((status, body)) = self.health(session.req_header().uri.path()).await {
            ctx.code = Some("health");
            respond(session, status, &body, None).await?;
            return Ok(true);
        }
        let path = session.req_header().uri.path();
        if path == pdp_api::WELL_KNOWN {
            ctx.code = Some("pdp_api");
            let body = pdp_api::metadata(&public_base(session));
            respond(session, 200, &body, None).await?;
            return Ok(true);
        }
        if pdp_api::is_api_path(path) {
            return match self.serve_api(session, ctx).await {
                Ok(()) => Ok(true),
                Err(refusal) => refuse(session, ctx, refusal).await,
            };
        }
        match self.admit(session, ctx).await {
            Ok(()) => Ok(false),
            Err(refusal) => refuse(session, ctx, refusal).await,
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        // INVARIANT: request_filter only lets a request through after setting its upstream.
        let upstream = ctx.upstream.ok_or_else(|| {
            pingora::Error::explain(
                pingora::ErrorType::InternalError,
                "request reached upstream_peer unadmitted",
            )
        })?;
        Ok(Box::new(HttpPeer::new(upstream, false, String::new())))
    }

    /// Replaces any client-sent context with the signed one, and passes the trace on.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        upstream_request.remove_header(CONTEXT_HEADER);
        // Cloned, not taken: Pingora calls this again when it retries on a fresh
        // connection (a reused one the upstream had closed), and the retry needs it too.
        if let Some(signed) = &ctx.forwarded {
            upstream_request.insert_header(CONTEXT_HEADER, signed.clone())?;
        }
        if let Some(trace) = &ctx.trace {
            upstream_request.insert_header("traceparent", trace.header())?;
        }
        ctx.upstream_started = Some(Instant::now());
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let (Some(started), Some(tenant)) = (ctx.upstream_started.take(), &ctx.tenant) {
            metrics::UPSTREAM_SECONDS
                .with_label_values(&[tenant.as_str()])
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn logging(
        &self,
        session: &mut Session,
        error: Option<&pingora::Error>,
        ctx: &mut Self::CTX,
    ) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let outcome = match (ctx.code, ctx.decision) {
            (Some(code), _) => code,
            (None, Some("allow")) => "allowed",
            (None, _) => "error",
        };
        let tenant_label = ctx.tenant.as_ref().map_or("-", TenantId::as_str);
        metrics::REQUESTS
            .with_label_values(&[tenant_label, outcome])
            .inc();
        let elapsed = ctx.started.map_or(0, |s| s.elapsed().as_micros());
        tracing::info!(
            target: "gatehouse::request",
            tenant = ctx.tenant.as_ref().map(TenantId::as_str),
            trace_id = ctx.trace.as_ref().map(|t| t.trace_id.as_str()),
            method = %session.req_header().method,
            path = session.req_header().uri.path(),
            principal = ctx.principal.as_deref(),
            action = ctx.action.as_deref(),
            resource = ctx.resource.as_deref(),
            decision = ctx.decision,
            decision_id = ctx.decision_id.as_deref(),
            code = ctx.code,
            status,
            elapsed_us = elapsed as u64,
            error = error.map(|e| e.to_string()),
        );
    }
}

impl Gateway {
    /// `/healthz`: the process is up. `/readyz`: a valid bundle is serving (always, once
    /// started) and the entity store answers; 503 otherwise.
    async fn health(&self, path: &str) -> Option<(u16, Value)> {
        match path {
            "/healthz" => Some((200, json!({ "status": "ok" }))),
            "/readyz" => {
                let bundle = self.pdp.bundle().snapshot();
                let id = bundle.id();
                let store = match &self.store {
                    Store::Memory(_) => true,
                    Store::Postgres(store) => store.ready().await,
                };
                let body = json!({
                    "ready": store,
                    "entity_store": if store { "up" } else { "down" },
                    "bundle": { "name": &*id.name, "version": &*id.version, "hash": &*id.hash },
                });
                Some((if store { 200 } else { 503 }, body))
            }
            _ => None,
        }
    }

    /// Who asks and in which tenant: the credential, the tenant (host and claim must
    /// agree) and the tenant's admission (known, not over its rate).
    async fn identify(
        &self,
        session: &Session,
        ctx: &mut RequestState,
    ) -> std::result::Result<(Principal, TenantId), Refusal> {
        let authorization = header(session, "authorization");
        let principal = match authorization.and_then(|h| h.strip_prefix(share_links::SCHEME)) {
            Some(link) => share_links::authenticate(&self.store, link).await,
            None => self
                .auth
                .authenticate(authorization, header(session, "x-api-key")),
        }
        .map_err(|e| Refusal::new(e.status(), e.code(), e.to_string()))?;
        ctx.principal = Some(principal.uid.to_string());
        let host = header(session, "host").or_else(|| session.req_header().uri.host());
        let refuse = |e: tenant::TenantError| Refusal::new(403, e.code(), e.to_string());
        let from_host = tenant::from_host(host, self.base_domain.as_deref()).map_err(refuse)?;
        let tenant = match tenant::resolve(from_host.clone(), principal.tenant.clone()) {
            Ok(tenant) => tenant,
            Err(e) => {
                // Someone of one tenant knocking on another's door: on the record of both.
                ctx.decision_id = Some(new_decision_id());
                for tenant in from_host.iter().chain(principal.tenant.iter()) {
                    self.audit_refusal(session, ctx, tenant, &principal, e.code());
                }
                return Err(refuse(e));
            }
        };
        ctx.tenant = Some(tenant.clone());
        match self.tenants.admit(&tenant) {
            Admission::Admit => Ok((principal, tenant)),
            Admission::Unknown => Err(Refusal::new(404, "unknown_tenant", "no such tenant")),
            Admission::RateLimited(seconds) => {
                let mut refusal = Refusal::new(
                    429,
                    "rate_limited",
                    "too many requests for this tenant's plan",
                );
                refusal.retry_after = Some(seconds);
                Err(refusal)
            }
        }
    }

    /// Admits a request to a route: identified, routed, decided, signed.
    async fn admit(
        &self,
        session: &Session,
        ctx: &mut RequestState,
    ) -> std::result::Result<(), Refusal> {
        let (principal, tenant) = self.identify(session, ctx).await?;
        let req = session.req_header();
        let matched = self
            .routes
            .find(&req.method, req.uri.path(), &tenant)
            .map_err(|e| match e {
                RouteError::NoRoute => Refusal::new(404, "no_route", e.to_string()),
                RouteError::BadId => Refusal::new(400, "bad_resource_id", e.to_string()),
            })?;
        let request = access_request(
            session,
            &tenant,
            &principal,
            matched.route.action.clone(),
            matched.resource,
        );
        let texts = UidTexts::of(&request);
        ctx.action = Some(texts.action.clone());
        ctx.resource = Some(texts.resource.clone());
        let decision = self.pdp.decide(&self.store, &request).await;
        let decision_id = new_decision_id();
        ctx.decision_id = Some(decision_id.clone());
        ctx.decision = Some(decision.effect.as_str());
        let record = decision_record(
            &request.tenant,
            texts.clone(),
            &decision,
            decision_id.clone(),
            trace_id(ctx),
            client_ip(session),
            &matched.route.pattern,
        );
        audit_and_count(&self.audit, &decision, record);
        if !decision.is_allowed() {
            return Err(refusal_for(&decision));
        }
        let forwarded = ForwardedContext {
            tenant,
            principal: texts.principal,
            acting_for: texts.acting_for,
            action: texts.action,
            resource: texts.resource,
            decision_id,
            trace_id: trace_id(ctx),
            mfa: principal.mfa,
        };
        let signed = self
            .signer
            .sign(&forwarded, SystemTime::now())
            .map_err(|_| {
                Refusal::new(
                    503,
                    "signing_failed",
                    "the gateway cannot sign the forwarded context",
                )
            })?;
        ctx.forwarded = Some(signed);
        ctx.upstream = Some(matched.route.upstream);
        Ok(())
    }
}

impl Gateway {
    /// Answers a call to the decision API ([`pdp_api`]) for an identified caller.
    async fn serve_api(
        &self,
        session: &mut Session,
        ctx: &mut RequestState,
    ) -> std::result::Result<(), Refusal> {
        let (principal, tenant) = self.identify(session, ctx).await?;
        if principal.uid.type_name().basename() == "ShareLink" {
            return Err(Refusal::new(
                403,
                "share_link_not_allowed",
                "a share link cannot use the decision API",
            ));
        }
        let body = read_body(session, pdp_api::MAX_BODY_BYTES).await?;
        let caller = pdp_api::Caller {
            tenant,
            principal,
            client_ip: client_ip(session),
            trace_id: trace_id(ctx),
        };
        let req = session.req_header();
        let (method, path) = (req.method.as_str().to_string(), req.uri.path().to_string());
        let reply = self.api.handle(&method, &path, &caller, &body).await;
        ctx.code = Some("pdp_api");
        ctx.action = Some(path);
        let request_id = header(session, "x-request-id").map(str::to_string);
        let written = respond_with(
            session,
            reply.status,
            &reply.body,
            None,
            request_id.as_deref(),
        )
        .await;
        if let Err(e) = written {
            // The connection is gone: there is no one left to answer.
            tracing::debug!(target: "gatehouse::pdp_api", error = %e, "the answer could not be written");
        }
        Ok(())
    }
}

impl Gateway {
    /// Audits a request refused before any decision could be made (e.g. a tenant mismatch).
    fn audit_refusal(
        &self,
        session: &Session,
        ctx: &RequestState,
        tenant: &TenantId,
        principal: &Principal,
        code: &str,
    ) {
        let bundle = self.pdp.bundle().snapshot();
        self.audit.record(AuditRecord {
            // Each tenant's copy is its own record: ids are unique across the log.
            id: new_decision_id(),
            time_us: now_us(),
            trace_id: trace_id(ctx),
            tenant: tenant.clone(),
            principal: principal.uid.to_string(),
            acting_for: principal.acting_for.as_ref().map(ToString::to_string),
            action: String::new(),
            resource: String::new(),
            decision: "deny".into(),
            determining_policies: Vec::new(),
            errors: vec![code.to_string()],
            bundle_version: bundle.id().version.to_string(),
            bundle_hash: bundle.id().hash.to_string(),
            latency_us: 0,
            client_ip: client_ip(session),
            route: session.req_header().uri.path().to_string(),
            asked_by: None,
        });
    }
}

/// A request's uids as text: formatted once per decision, for the log line, the audit
/// record and the forwarded context.
#[derive(Debug, Clone)]
pub(crate) struct UidTexts {
    pub(crate) principal: String,
    pub(crate) acting_for: Option<String>,
    pub(crate) action: String,
    pub(crate) resource: String,
}

impl UidTexts {
    pub(crate) fn of(request: &AccessRequest) -> Self {
        Self {
            principal: request.principal.to_string(),
            acting_for: request.acting_for.as_ref().map(ToString::to_string),
            action: request.action.to_string(),
            resource: request.resource.to_string(),
        }
    }
}

/// Audits a decision and counts it (by tenant and effect) with its latency: every
/// decision, the gateway's or an adapter's further one, goes through here.
pub(crate) fn audit_and_count(audit: &AuditWriter, decision: &Decision, record: AuditRecord) {
    let tenant = record.tenant.as_str();
    metrics::DECISIONS
        .with_label_values(&[tenant, decision.effect.as_str()])
        .inc();
    metrics::DECISION_SECONDS
        .with_label_values(&[tenant])
        .observe(decision.elapsed.as_secs_f64());
    audit.record(record);
}

/// The audit record of `decision` in `tenant` on the request named by `texts`.
pub(crate) fn decision_record(
    tenant: &TenantId,
    texts: UidTexts,
    decision: &Decision,
    id: String,
    trace_id: String,
    client_ip: Option<String>,
    route: &str,
) -> AuditRecord {
    AuditRecord {
        id,
        time_us: now_us(),
        trace_id,
        tenant: tenant.clone(),
        principal: texts.principal,
        // The user an agent acts for, as the caller claimed it or the decision found it.
        acting_for: texts.acting_for.or_else(|| {
            let delegation = decision.delegation.as_ref();
            delegation.map(|d| d.user.principal.clone())
        }),
        action: texts.action,
        resource: texts.resource,
        decision: decision.effect.as_str().into(),
        determining_policies: decision.determining_policies.clone(),
        errors: decision
            .errors
            .iter()
            .map(|e| format!("{}: {e}", e.code()))
            .collect(),
        bundle_version: decision.bundle.version.to_string(),
        bundle_hash: decision.bundle.hash.to_string(),
        latency_us: decision.elapsed.as_micros() as u64,
        client_ip,
        route: route.to_string(),
        asked_by: None,
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn trace_id(ctx: &RequestState) -> String {
    ctx.trace
        .as_ref()
        .map(|t| t.trace_id.clone())
        .unwrap_or_default()
}

fn client_ip(session: &Session) -> Option<String> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_string())
}

/// The request for the decision point. The context carries only what the gateway
/// established itself: MFA from the token, the client address.
fn access_request(
    session: &Session,
    tenant: &TenantId,
    principal: &Principal,
    action: cedar_policy::EntityUid,
    resource: cedar_policy::EntityUid,
) -> AccessRequest {
    let mut context = serde_json::Map::new();
    context.insert("mfa".into(), Value::Bool(principal.mfa));
    if let Some(ip) = client_ip(session) {
        context.insert("source_ip".into(), Value::String(ip));
    }
    AccessRequest {
        tenant: tenant.clone(),
        principal: principal.uid.clone(),
        action,
        resource,
        acting_for: principal.acting_for.clone(),
        context,
    }
}

/// A deny: 503 when the decision point could not decide (fail closed), 403 otherwise.
fn refusal_for(decision: &Decision) -> Refusal {
    if decision.is_unavailable() {
        return Refusal::new(
            503,
            "decision_unavailable",
            "the decision point cannot decide right now",
        );
    }
    let suspended = decision
        .determining_policies
        .iter()
        .any(|p| p == "tenant-suspended");
    let code = match decision.errors.first() {
        None if suspended => "tenant_suspended",
        None => "forbidden",
        Some(e) => e.code(),
    };
    Refusal::new(403, code, "the request is not allowed")
}

/// A time-ordered, unique decision id (UUIDv7 layout: 48 bits of milliseconds, then random).
pub(crate) fn new_decision_id() -> String {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let random: u128 = rand::random();
    let value = (u128::from(millis) << 80)
        | (0x7 << 76)
        | (random & 0x0fff_3fff_ffff_ffff_ffff)
        | (0x8 << 60);
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn header<'s>(session: &'s Session, name: &str) -> Option<&'s str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

/// Answers with `refusal` as a JSON error (with the decision and trace ids), echoing the
/// client's `X-Request-ID`; a 401 says the scheme it wants (`WWW-Authenticate`).
async fn refuse(session: &mut Session, ctx: &mut RequestState, refusal: Refusal) -> Result<bool> {
    ctx.code = Some(refusal.code);
    let body = json!({ "error": {
        "code": refusal.code,
        "message": refusal.message,
        "decision_id": ctx.decision_id,
        "trace_id": ctx.trace.as_ref().map(|t| t.trace_id.clone()),
    }});
    let request_id = header(session, "x-request-id").map(str::to_string);
    respond_with(
        session,
        refusal.status,
        &body,
        refusal.retry_after,
        request_id.as_deref(),
    )
    .await?;
    Ok(true)
}

/// The request body, refused over `limit` bytes.
async fn read_body(session: &mut Session, limit: usize) -> std::result::Result<Vec<u8>, Refusal> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(Refusal::new(
                        413,
                        "body_too_large",
                        format!("the body is over {limit} bytes"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => {
                return Err(Refusal::new(
                    400,
                    "bad_body",
                    "the request body could not be read",
                ));
            }
        }
    }
}

/// The scheme and host the client reached the gateway at.
fn public_base(session: &Session) -> String {
    let scheme = header(session, "x-forwarded-proto").unwrap_or("http");
    let host = header(session, "host").unwrap_or("localhost");
    format!("{scheme}://{host}")
}

async fn respond(
    session: &mut Session,
    status: u16,
    body: &Value,
    retry_after: Option<u64>,
) -> Result<()> {
    respond_with(session, status, body, retry_after, None).await
}

/// Writes a JSON answer; `request_id` echoes the client's `X-Request-ID` (AuthZEN).
async fn respond_with(
    session: &mut Session,
    status: u16,
    body: &Value,
    retry_after: Option<u64>,
    request_id: Option<&str>,
) -> Result<()> {
    let body = Bytes::from(body.to_string());
    let mut response = ResponseHeader::build(status, Some(6))?;
    response.insert_header("content-type", "application/json")?;
    if let Some(seconds) = retry_after {
        response.insert_header("retry-after", seconds.to_string())?;
    }
    if let Some(id) = request_id {
        response.insert_header("x-request-id", id)?;
    }
    if status == 401 {
        response.insert_header("www-authenticate", "Bearer")?;
    }
    response.set_content_length(body.len())?;
    session
        .write_response_header(Box::new(response), false)
        .await?;
    session.write_response_body(Some(body), true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_ids_are_uuid_v7_and_ordered() {
        let a = new_decision_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_decision_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7", "{a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert!(a < b);
    }
}
