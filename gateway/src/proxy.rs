//! The request path, as the phases of one Pingora [`ProxyHttp`] implementation, in the
//! order a request meets them:
//!
//! 1. `request_filter`: health and the decision API are answered here; every other
//!    request is admitted ([`Gateway::admit`]: tenant → principal → route → decision) or
//!    refused with a JSON error;
//! 2. `upstream_peer`: the route's upstream (only an admitted request gets here);
//! 3. `upstream_request_filter`: the signed context and the trace go with it;
//! 4. `response_filter`: the upstream's latency is observed;
//! 5. `logging`: one JSON line and the request counters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use gatehouse_audit::Receipt;
use gatehouse_core::TenantId;
use gatehouse_core::forwarded::{CONTEXT_HEADER, ContextSigner, ForwardedContext};
use gatehouse_core::ids::new_decision_id;
use gatehouse_pdp::AccessRequest;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, Result};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use serde_json::{Value, json};

use crate::authorize::{Authorizer, Origin};
use crate::decision_api::{self, DecisionApi};
use crate::edge::admission::{Admission, Tenants};
use crate::edge::identity::{Authenticator, Principal};
use crate::edge::routes::{RouteError, Routes};
use crate::edge::share_links;
use crate::edge::tenant;
use crate::edge::trace::TraceContext;
use crate::metrics;
use crate::refusal::{AUDIT_UNAVAILABLE, Refusal};
use crate::runtime::entity_store::Store;

/// The most of a refused request's path an audit record keeps.
const MAX_AUDITED_PATH: usize = 256;

/// At most the first `max` bytes of `text`, cut at a character boundary.
fn bounded(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The headers that carry a client's credentials (tokens, share links, API keys).
const CREDENTIAL_HEADERS: [&str; 2] = ["authorization", "x-api-key"];

/// Everything a request needs, shared by all requests.
pub struct Gateway {
    /// Decides and audits (and holds the decision point and the entities).
    pub authorizer: Authorizer,
    /// Verifies credentials.
    pub auth: Authenticator,
    /// The routes.
    pub routes: Routes,
    /// `<tenant>.<base_domain>` host names.
    pub base_domain: Option<String>,
    /// Signs the forwarded context.
    pub signer: ContextSigner,
    /// The known tenants and their rate limits.
    pub tenants: Arc<Tenants>,
    /// The decision API ([`decision_api`]).
    pub api: DecisionApi,
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
    forward_credentials: bool,
    forwarded: Option<String>,
    upstream_started: Option<Instant>,
    /// A read forwarded before its record was durable: its response waits on this.
    record_pending: Option<Receipt>,
}

/// One worker thread's proxy: a handle on the shared [`Gateway`].
///
/// The server runs one single-threaded Pingora service per worker (see
/// [`add_proxy_workers`](crate::runtime::server::add_proxy_workers)) rather than one service with
/// several threads. Each service has its own upstream connection pool, so a connection
/// is always reused by the thread that released it. In a shared pool, an idle connection
/// is watched by a task on a random thread. When another thread takes it, the hand-over
/// races that task, and Pingora often drops the connection ("failed to acquire reusable
/// stream") and opens a new one. Under bench/gateway/run.sh with 2 threads, that
/// happened to about 1 request in 15, and the added p99 was twice what it is now.
#[derive(Clone)]
pub struct ProxyWorker(pub Arc<Gateway>);

impl std::ops::Deref for ProxyWorker {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.0
    }
}

#[async_trait]
impl ProxyHttp for ProxyWorker {
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
        if path == decision_api::WELL_KNOWN {
            ctx.code = Some("pdp_api");
            let body = decision_api::metadata(&self.public_base(session));
            respond(session, 200, &body, None).await?;
            return Ok(true);
        }
        if decision_api::is_api_path(path) {
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

    /// Replaces any client-sent context with the signed one, keeps the client's
    /// credentials from upstreams not configured to receive them, and passes the trace on.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        upstream_request.remove_header(CONTEXT_HEADER);
        if !ctx.forward_credentials {
            for credential in CREDENTIAL_HEADERS {
                upstream_request.remove_header(credential);
            }
        }
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

    /// Holds a read's response until its record is durable (the upstream's time hid the
    /// spool's sync); 503 if it cannot be.
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
        if let Some(receipt) = ctx.record_pending.take()
            && durably(receipt).await.is_err()
        {
            ctx.code = Some(AUDIT_UNAVAILABLE);
            return Err(pingora::Error::explain(
                pingora::ErrorType::HTTPStatus(503),
                "the decision's audit record could not be made durable",
            ));
        }
        Ok(())
    }

    /// Answers a request that could not be proxied with a JSON error (502 when the
    /// upstream failed), unless the client is gone or an answer was already on its way.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let refusal = if ctx.code == Some(AUDIT_UNAVAILABLE) {
            Some(Refusal::audit_unavailable())
        } else {
            proxy_failure(e)
        };
        let error_code = refusal.as_ref().map_or(0, |r| r.status);
        if let Some(refusal) = refusal
            && session.response_written().is_none()
        {
            let _ = refuse(session, ctx, refusal).await;
        }
        FailToProxy {
            error_code,
            can_reuse_downstream: false,
        }
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
    /// started) and the entity store answers; 503 otherwise. Which bundle serves is for
    /// the metrics listener to say, not for anyone who can reach the proxy.
    async fn health(&self, path: &str) -> Option<(u16, Value)> {
        match path {
            "/healthz" => Some((200, json!({ "status": "ok" }))),
            "/readyz" => {
                let store = match self.authorizer.store() {
                    Store::Memory(_) => true,
                    Store::Postgres(store) => store.ready().await,
                };
                let body = json!({
                    "ready": store,
                    "entity_store": if store { "up" } else { "down" },
                });
                Some((if store { 200 } else { 503 }, body))
            }
            _ => None,
        }
    }

    /// Who asks and in which tenant ([`Self::identify_caller`]), unless the client's
    /// address was refused too often of late: each refusal here counts against it.
    async fn identify(
        &self,
        session: &Session,
        ctx: &mut RequestState,
    ) -> std::result::Result<(Principal, TenantId), Refusal> {
        let source = client_ip(session);
        if let Some(source) = source.as_deref()
            && self.tenants.refused_too_often(source)
        {
            return Err(Refusal::too_many(
                "too_many_refusals",
                "too many refused requests from this address",
                1,
            ));
        }
        let identified = self.identify_caller(session, ctx).await;
        if let (Err(refusal), Some(source)) = (&identified, source.as_deref())
            && matches!(refusal.status, 401 | 403 | 404)
        {
            self.tenants.count_refusal(source);
        }
        identified
    }

    /// Who asks and in which tenant: the credential, the tenant (host and claim must
    /// agree) and the tenant's admission (known, not over its rate).
    async fn identify_caller(
        &self,
        session: &Session,
        ctx: &mut RequestState,
    ) -> std::result::Result<(Principal, TenantId), Refusal> {
        let authorization = header(session, "authorization");
        let principal = match authorization.and_then(|h| h.strip_prefix(share_links::SCHEME)) {
            Some(link) => share_links::authenticate(self.authorizer.store(), link).await,
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
                // Someone of one tenant knocking on another's door: on the record of both,
                // if they exist, charged to the rate of the caller's own tenant (so that
                // nobody can flood another tenant's log), with a bounded path.
                ctx.decision_id = Some(new_decision_id());
                if let Some(own) = &principal.tenant
                    && let Admission::RateLimited(seconds) = self.tenants.admit(own)
                {
                    return Err(Refusal::rate_limited(seconds));
                }
                let origin = Origin {
                    route: bounded(session.req_header().uri.path(), MAX_AUDITED_PATH).to_string(),
                    trace_id: trace_id(ctx),
                    client_ip: client_ip(session),
                    asked_by: None,
                };
                let known = from_host.iter().chain(principal.tenant.iter());
                for tenant in known.filter(|t| self.tenants.is_known(t)) {
                    self.authorizer
                        .audit_refusal(tenant, &principal, e.code(), &origin);
                }
                durably(self.authorizer.records_durable())
                    .await
                    .map_err(|_| Refusal::audit_unavailable())?;
                return Err(refuse(e));
            }
        };
        let admission = self.tenants.admit(&tenant);
        if admission != Admission::Unknown {
            // Only tenants that exist name metrics series and log lines: a made-up host
            // must not grow the metrics without bound.
            ctx.tenant = Some(tenant.clone());
        }
        match admission {
            Admission::Admit => Ok((principal, tenant)),
            Admission::Unknown => Err(Refusal::new(404, "unknown_tenant", "no such tenant")),
            Admission::RateLimited(seconds) => Err(Refusal::rate_limited(seconds)),
        }
    }

    /// Admits a request to a route: identified, routed, decided, signed.
    async fn admit(
        &self,
        session: &Session,
        ctx: &mut RequestState,
    ) -> std::result::Result<(), Refusal> {
        let started = Instant::now();
        let (principal, tenant) = self.identify(session, ctx).await?;
        metrics::observe_since(&metrics::phase::IDENTIFY, started);
        let started = Instant::now();
        let req = session.req_header();
        let matched = self
            .routes
            .find(&req.method, req.uri.path(), &tenant)
            .map_err(|e| match e {
                RouteError::NoRoute => Refusal::new(404, "no_route", e.to_string()),
                RouteError::BadId => Refusal::new(400, "bad_resource_id", e.to_string()),
            })?;
        metrics::observe_since(&metrics::phase::ROUTE, started);
        let client_ip = client_ip(session);
        let request = AccessRequest::new(
            tenant,
            principal.uid,
            matched.route.action.clone(),
            matched.resource,
        )
        .acting_for(principal.acting_for)
        .established(principal.mfa, client_ip.as_deref());
        let origin = Origin {
            route: matched.route.pattern.clone(),
            trace_id: trace_id(ctx),
            client_ip,
            asked_by: None,
        };
        let decided = self.authorizer.decide(request, &origin).await;
        ctx.action = Some(decided.texts.action.clone());
        ctx.resource = Some(decided.texts.resource.clone());
        ctx.decision_id = Some(decided.id.clone());
        ctx.decision = Some(decided.decision.effect.as_str());
        let durable = self.authorizer.records_durable();
        let changes_data = !req.method.is_safe();
        if !decided.decision.is_allowed() || changes_data {
            // No answer and no effect before the record is durable.
            durably(durable)
                .await
                .map_err(|_| Refusal::audit_unavailable())?;
        } else {
            ctx.record_pending = Some(durable);
        }
        if !decided.decision.is_allowed() {
            return Err(Refusal::for_deny(&decided.decision));
        }
        let texts = decided.texts;
        let forwarded = ForwardedContext {
            tenant: decided.request.tenant,
            principal: texts.principal,
            acting_for: texts.acting_for,
            action: texts.action,
            resource: texts.resource,
            decision_id: decided.id,
            trace_id: origin.trace_id,
            mfa: principal.mfa,
            source_ip: origin.client_ip,
        };
        let started = Instant::now();
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
        metrics::observe_since(&metrics::phase::SIGN, started);
        ctx.forwarded = Some(signed);
        ctx.upstream = Some(matched.route.upstream);
        ctx.forward_credentials = matched.route.forward_credentials;
        Ok(())
    }
}

impl Gateway {
    /// Answers a call to the decision API ([`decision_api`]) for an identified caller.
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
        let body = read_body(session, decision_api::MAX_BODY_BYTES).await?;
        let caller = decision_api::Caller {
            tenant,
            principal,
            client_ip: client_ip(session),
            trace_id: trace_id(ctx),
        };
        let req = session.req_header();
        let (method, path) = (req.method.as_str().to_string(), req.uri.path().to_string());
        let mut reply = self.api.handle(&method, &path, &caller, &body).await;
        if self.authorizer.records_durable().wait().await.is_err() {
            let refusal = Refusal::audit_unavailable();
            reply = decision_api::Reply {
                status: refusal.status,
                body: refusal.body(),
            };
        }
        ctx.code = Some("pdp_api");
        ctx.action = Some(path);
        let request_id = request_id(session);
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
    let trace_id = ctx.trace.as_ref().map(|t| t.trace_id.as_str());
    let body = refusal.request_body(ctx.decision_id.as_deref(), trace_id);
    let request_id = request_id(session);
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

/// Waits on `receipt`, timed as the request's wait for its audit record.
async fn durably(receipt: Receipt) -> std::result::Result<(), gatehouse_audit::NotDurable> {
    let started = Instant::now();
    let durable = receipt.wait().await;
    metrics::observe_since(&metrics::phase::AUDIT_DURABLE, started);
    durable
}

/// The answer to a request that failed on its way to or from the upstream, by what
/// failed; `None` when the client is gone.
fn proxy_failure(e: &pingora::Error) -> Option<Refusal> {
    use pingora::{ErrorSource, ErrorType};
    Some(match e.esource() {
        ErrorSource::Upstream => Refusal::new(
            502,
            "upstream_unavailable",
            "the upstream could not be reached or did not answer properly",
        ),
        ErrorSource::Downstream => match e.etype() {
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                return None;
            }
            _ => Refusal::bad("bad_request", "the request could not be read"),
        },
        ErrorSource::Internal | ErrorSource::Unset => {
            Refusal::new(502, "proxy_failed", "the request could not be proxied")
        }
    })
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

impl Gateway {
    /// The scheme and host the client reached the gateway at, as far as they can be
    /// trusted: `http` or `https`, and a host of the configured domain (or the loopback
    /// name), never text a client made up to be echoed in a document others act on.
    fn public_base(&self, session: &Session) -> String {
        let scheme = match header(session, "x-forwarded-proto") {
            Some("https") => "https",
            _ => "http",
        };
        let host = header(session, "host")
            .filter(|h| is_host_of(h, self.base_domain.as_deref()))
            .unwrap_or("localhost");
        format!("{scheme}://{host}")
    }
}

/// Whether `host` (`name[:port]`) is a plain host name of `domain` (itself or below it),
/// or `localhost`.
fn is_host_of(host: &str, domain: Option<&str>) -> bool {
    let (name, port) = host.rsplit_once(':').unwrap_or((host, ""));
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let port_ok = port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit());
    if name.is_empty() || name.len() > 253 || !name.chars().all(plain) || !port_ok {
        return false;
    }
    let name = name.to_ascii_lowercase();
    name == "localhost" || domain.is_some_and(|d| name == d || name.ends_with(&format!(".{d}")))
}

/// The client's `X-Request-ID`, to echo (AuthZEN): at most 128 visible ASCII characters;
/// anything else is not repeated back.
fn request_id(session: &Session) -> Option<String> {
    header(session, "x-request-id")
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
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
    use super::is_host_of;

    #[test]
    fn only_plain_hosts_of_the_domain_are_taken_from_the_client() {
        let domain = Some("gatehouse.test");
        for good in [
            "acme.gatehouse.test",
            "gatehouse.test:8080",
            "localhost:8080",
            "ACME.gatehouse.test",
        ] {
            assert!(is_host_of(good, domain), "{good}");
        }
        for bad in [
            "evil.example",
            "javascript://evil.example",
            "evil.example/gatehouse.test",
            "gatehouse.test.evil.example",
            "acme.gatehouse.test:80x",
            "",
            "a b.gatehouse.test",
        ] {
            assert!(!is_host_of(bad, domain), "{bad}");
        }
        assert!(!is_host_of("acme.gatehouse.test", None));
    }
}
