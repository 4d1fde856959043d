//! The decision point's own HTTP API, served by the gateway beside the proxied routes, for
//! agent runtimes and apps that enforce decisions themselves
//! (`schemas/openapi/pdp-api.json`):
//!
//! - the OpenID AuthZEN Authorization API 1.0: `POST /access/v1/evaluation`,
//!   `/access/v1/evaluations` and `/access/v1/search/{subject,resource,action}`, with its
//!   metadata at `GET /.well-known/authzen-configuration`;
//! - Gatehouse's richer answers to the same questions: `POST /gatehouse/v1/authorize`
//!   (the decision, its policies, its id, and for a deny the reason in words),
//!   `/gatehouse/v1/authorize/batch` and `/gatehouse/v1/capabilities`;
//! - what decisions are made with: entities pushed by apps that keep their own data
//!   (`PUT` and `DELETE /gatehouse/v1/entities`, [`entities`]) and the capabilities granted
//!   to agents (`/gatehouse/v1/agents/{id}/grants`, [`grants`]).
//!
//! The caller is authenticated like any request (a token or a tenant API key) and the
//! tenant is the caller's. Anyone may ask about themselves; asking about another principal
//! needs `pdp:evaluate` on the tenant. Every decision answered is audited, one record per
//! check, with the endpoint as its route, through [`crate::authorize`].

mod answer;
mod authzen_search;
mod entity_push;
mod explain;
mod grants;
mod resolve;
mod wire;

use std::sync::Arc;

use cedar_policy::EntityUid;
use gatehouse_core::TenantId;
use gatehouse_pdp::{AccessRequest, Bundle, Decision, DecisionError, uid};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::authorize::{Authorizer, Origin};
use crate::edge::identity::Principal;
use crate::refusal::Refusal as ApiError;
use crate::runtime::entity_store::Store;

use answer::{authzen_json, gatehouse_json, item_error};
use authzen_search::Vary;
use explain::{Reason, reason};
use grants::GrantPath;
use resolve::resolve;
use wire::{EvaluationIn, EvaluationsIn};

/// AuthZEN's metadata document.
pub const WELL_KNOWN: &str = "/.well-known/authzen-configuration";
/// The most checks one batch may hold.
pub const MAX_EVALUATIONS: usize = 100;
/// The largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 1 << 20;

const AUTHZEN: &str = "/access/v1/";
const GATEHOUSE: &str = "/gatehouse/v1/";

/// Whether the API answers `path` (rather than a route).
pub fn is_api_path(path: &str) -> bool {
    path.starts_with(AUTHZEN) || path.starts_with(GATEHOUSE)
}

/// AuthZEN's metadata for a decision point reached at `base` (scheme and host).
pub fn metadata(base: &str) -> Value {
    json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}{AUTHZEN}evaluation"),
        "access_evaluations_endpoint": format!("{base}{AUTHZEN}evaluations"),
        "search_subject_endpoint": format!("{base}{AUTHZEN}search/subject"),
        "search_resource_endpoint": format!("{base}{AUTHZEN}search/resource"),
        "search_action_endpoint": format!("{base}{AUTHZEN}search/action"),
    })
}

/// The API: the decision point, its entities and the audit log.
pub struct DecisionApi {
    authorizer: Authorizer,
    /// Callers recently allowed to ask about others, by tenant, caller and bundle: the
    /// `pdp:evaluate` decision is made (and audited) at most once a second per caller,
    /// not once per call; every check it covers names the caller (`asked_by`).
    askers: moka::sync::Cache<(TenantId, String, Arc<str>), ()>,
}

impl DecisionApi {
    /// The API, deciding and auditing through `authorizer`.
    pub fn new(authorizer: Authorizer) -> Self {
        Self {
            authorizer,
            askers: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ASKER_TTL)
                .build(),
        }
    }
}

/// How long an allowed `pdp:evaluate` holds for a caller.
const ASKER_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Who calls, as the gateway's phases established it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's tenant: every question is asked in it.
    pub tenant: TenantId,
    /// The authenticated caller.
    pub principal: Principal,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The request's W3C trace id.
    pub trace_id: String,
}

impl Caller {
    /// Where a decision on `request` was asked: at `path`, by this caller (named as
    /// `asked_by` when it asked about someone else).
    fn origin(&self, path: &str, request: &AccessRequest) -> Origin {
        Origin {
            route: path.to_string(),
            trace_id: self.trace_id.clone(),
            client_ip: self.client_ip.clone(),
            asked_by: (request.principal != self.principal.uid)
                .then(|| self.principal.uid.to_string()),
        }
    }
}

/// An answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }
}

/// One decided check, ready to be rendered in either flavor.
struct Decided {
    request: AccessRequest,
    decision: Decision,
    id: String,
    reason: Option<Reason>,
}

/// An allowed permission decision, kept to record what it allowed.
struct Permit {
    request: AccessRequest,
    decision: Decision,
}

/// A batch's two answer styles.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// AuthZEN: `{"decision": bool, "context": {...}}`.
    AuthZen,
    /// Gatehouse: the whole decision.
    Gatehouse,
}

/// Whether the caller may ask about others, decided at most once per call.
type OthersPermission = Option<Result<(), ApiError>>;

impl DecisionApi {
    /// Answers one API call.
    pub async fn handle(&self, method: &str, path: &str, caller: &Caller, body: &[u8]) -> Reply {
        let answer = match (method, path) {
            ("POST", "/access/v1/evaluation") => match parse(body) {
                Ok(one) => self.answer_one(caller, path, one, Flavor::AuthZen).await,
                Err(e) => Err(e),
            },
            ("POST", "/access/v1/evaluations") => {
                self.evaluations(caller, path, body, Flavor::AuthZen).await
            }
            ("POST", "/access/v1/search/subject") => {
                self.search_entities(caller, body, Vary::Principal).await
            }
            ("POST", "/access/v1/search/resource") => {
                self.search_entities(caller, body, Vary::Resource).await
            }
            ("POST", "/access/v1/search/action") => self.search_actions(caller, path, body).await,
            ("POST", "/gatehouse/v1/authorize") => match parse(body) {
                Ok(one) => self.answer_one(caller, path, one, Flavor::Gatehouse).await,
                Err(e) => Err(e),
            },
            ("POST", "/gatehouse/v1/authorize/batch") => {
                self.evaluations(caller, path, body, Flavor::Gatehouse)
                    .await
            }
            ("POST", "/gatehouse/v1/capabilities") => self.capabilities(caller, path, body).await,
            ("PUT", "/gatehouse/v1/entities") => self.upsert_entities(caller, body).await,
            ("DELETE", "/gatehouse/v1/entities") => self.delete_entities(caller, body).await,
            (method, path) => match GrantPath::parse(path) {
                Some(grant_path) => self.grants(caller, method, grant_path, body).await,
                None => Err(no_such_route(path)),
            },
        };
        answer.unwrap_or_else(|e| Reply {
            status: e.status,
            body: e.body(),
        })
    }

    /// One check, answered in `flavor`; 503 when no decision could be made.
    async fn answer_one(
        &self,
        caller: &Caller,
        path: &str,
        evaluation: EvaluationIn,
        flavor: Flavor,
    ) -> Result<Reply, ApiError> {
        let decided = self.check(caller, path, evaluation, &mut None).await?;
        if decided.decision.is_unavailable() {
            return Err(ApiError::unavailable());
        }
        Ok(Reply::ok(match flavor {
            Flavor::AuthZen => authzen_json(&decided),
            Flavor::Gatehouse => gatehouse_json(&decided),
        }))
    }

    /// Up to [`MAX_EVALUATIONS`] checks, answered in order. A check that cannot be made
    /// (a bad field, no permission to ask) is a deny carrying its error; the others go on.
    async fn evaluations(
        &self,
        caller: &Caller,
        path: &str,
        body: &[u8],
        flavor: Flavor,
    ) -> Result<Reply, ApiError> {
        let batch: EvaluationsIn = parse(body)?;
        let semantic = Semantic::parse(batch.options.as_ref())?;
        let items = match batch.evaluations {
            Some(items) if !items.is_empty() => items,
            // AuthZEN: without evaluations, the defaults are one evaluation.
            _ if flavor == Flavor::AuthZen => {
                return self.answer_one(caller, path, batch.defaults, flavor).await;
            }
            _ => return Err(ApiError::missing("evaluations")),
        };
        if items.len() > MAX_EVALUATIONS {
            return Err(ApiError::new(
                413,
                "too_many_evaluations",
                format!(
                    "{} evaluations; at most {MAX_EVALUATIONS} per call",
                    items.len()
                ),
            ));
        }
        let mut permission: OthersPermission = None;
        let mut answers = Vec::with_capacity(items.len());
        for item in items {
            let answer = match self
                .check(caller, path, item.or(&batch.defaults), &mut permission)
                .await
            {
                Ok(decided) => {
                    let allowed = decided.decision.is_allowed();
                    let rendered = match flavor {
                        Flavor::AuthZen => authzen_json(&decided),
                        Flavor::Gatehouse => gatehouse_json(&decided),
                    };
                    (allowed, rendered)
                }
                Err(e) => (false, item_error(&e, flavor)),
            };
            let stop = semantic.stops_after(answer.0);
            answers.push(answer.1);
            if stop {
                break;
            }
        }
        let key = match flavor {
            Flavor::AuthZen => "evaluations",
            Flavor::Gatehouse => "results",
        };
        Ok(Reply::ok(json!({ key: answers })))
    }

    /// Resolves, permits, decides and audits one check.
    async fn check(
        &self,
        caller: &Caller,
        path: &str,
        evaluation: EvaluationIn,
        permission: &mut OthersPermission,
    ) -> Result<Decided, ApiError> {
        let bundle = self.authorizer.pdp().bundle().snapshot();
        let subject = evaluation
            .subject
            .ok_or_else(|| ApiError::missing("subject"))?;
        let resource = evaluation
            .resource
            .ok_or_else(|| ApiError::missing("resource"))?;
        let request = resolve(
            &bundle,
            caller,
            &subject,
            evaluation.action.as_ref(),
            &resource,
            evaluation.context.unwrap_or_default(),
        )?;
        self.may_ask(caller, &request.principal, permission).await?;
        Ok(self.decide(caller, path, &bundle, request).await)
    }

    /// Decides and audits `request`.
    async fn decide(
        &self,
        caller: &Caller,
        path: &str,
        bundle: &Bundle,
        request: AccessRequest,
    ) -> Decided {
        let origin = caller.origin(path, &request);
        let decided = self.authorizer.decide(request, &origin).await;
        let reason = reason(bundle, &decided.request, &decided.decision);
        Decided {
            request: decided.request,
            decision: decided.decision,
            id: decided.id,
            reason,
        }
    }

    /// Anyone may ask about themselves; asking about someone else needs `pdp:evaluate` on
    /// the tenant (decided and audited at most once per call, and once a second per
    /// caller while it is allowed).
    async fn may_ask(
        &self,
        caller: &Caller,
        subject: &EntityUid,
        permission: &mut OthersPermission,
    ) -> Result<(), ApiError> {
        if *subject == caller.principal.uid {
            return Ok(());
        }
        if let Some(known) = permission {
            return known.clone();
        }
        let bundle = self.authorizer.pdp().bundle().snapshot().id().hash.clone();
        let key = (
            caller.tenant.clone(),
            caller.principal.uid.to_string(),
            bundle,
        );
        if self.askers.contains_key(&key) {
            return Ok(());
        }
        let answer = self
            .permitted(caller, "pdp:evaluate", uid::tenant(&caller.tenant))
            .await
            .map(|_| ());
        if answer.is_ok() {
            self.askers.insert(key, ());
        }
        *permission = Some(answer.clone());
        answer
    }
}

impl DecisionApi {
    /// The application role's pool; 409 when entities come from a file.
    async fn writable_pool(&self) -> Result<&sqlx::PgPool, ApiError> {
        match self.authorizer.store() {
            Store::Postgres(store) => store.pool().await.map_err(|_| ApiError::unavailable()),
            Store::Memory(_) => Err(ApiError::new(
                409,
                "entities_read_only",
                "entities come from a file: nothing can be written through the API",
            )),
        }
    }

    /// Drops the tenant's cached entities now (the database's notification follows).
    fn changed(&self, caller: &Caller) {
        if let Store::Postgres(store) = self.authorizer.store() {
            store.invalidate(Some(&caller.tenant));
        }
    }

    /// Whether the caller may take `action` on `resource`: decided and audited like any
    /// request (the route names the action, as the API call is not a route).
    async fn permitted(
        &self,
        caller: &Caller,
        action: &str,
        resource: EntityUid,
    ) -> Result<Permit, ApiError> {
        let request = caller.own_request(uid::action(action), resource);
        // The route names the action: the API call itself is not a route.
        let origin = caller.origin(action, &request);
        let decided = self.authorizer.decide(request, &origin).await;
        let (request, decision, id) = (decided.request, decided.decision, decided.id);
        if decision.is_allowed() {
            return Ok(Permit { request, decision });
        }
        if decision.is_unavailable() {
            return Err(ApiError::unavailable());
        }
        let unknown = |e: &DecisionError| matches!(e, DecisionError::UnknownResource { .. });
        if decision.errors.iter().any(unknown) {
            return Err(ApiError::new(
                404,
                "unknown_resource",
                format!("the tenant has no {}", request.resource),
            ));
        }
        Err(ApiError::new(
            403,
            "not_permitted",
            format!(
                "this needs {action} on {} (decision {id})",
                request.resource
            ),
        ))
    }
}

/// Every method and path the API answers (`{…}`: a path segment), as its OpenAPI file
/// describes them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", WELL_KNOWN),
    ("POST", "/access/v1/evaluation"),
    ("POST", "/access/v1/evaluations"),
    ("POST", "/access/v1/search/subject"),
    ("POST", "/access/v1/search/resource"),
    ("POST", "/access/v1/search/action"),
    ("POST", "/gatehouse/v1/authorize"),
    ("POST", "/gatehouse/v1/authorize/batch"),
    ("POST", "/gatehouse/v1/capabilities"),
    ("PUT", "/gatehouse/v1/entities"),
    ("DELETE", "/gatehouse/v1/entities"),
    ("GET", "/gatehouse/v1/agents/{id}/grants"),
    ("POST", "/gatehouse/v1/agents/{id}/grants"),
    ("DELETE", "/gatehouse/v1/agents/{id}/grants/{capability}"),
];

/// 405 for a known path with another method, 404 for an unknown one.
fn no_such_route(path: &str) -> ApiError {
    let methods: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, p)| *p == path)
        .map(|(m, _)| *m)
        .collect();
    if methods.is_empty() {
        return ApiError::new(
            404,
            "no_such_endpoint",
            format!("the decision API has no {path}"),
        );
    }
    ApiError::new(
        405,
        "method_not_allowed",
        format!("{path} takes {}", methods.join(", ")),
    )
}

/// AuthZEN's `evaluations_semantic`.
#[derive(Clone, Copy)]
enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

impl Semantic {
    fn parse(options: Option<&wire::OptionsIn>) -> Result<Self, ApiError> {
        match options.and_then(|o| o.evaluations_semantic.as_deref()) {
            None | Some("execute_all") => Ok(Self::ExecuteAll),
            Some("deny_on_first_deny") => Ok(Self::DenyOnFirstDeny),
            Some("permit_on_first_permit") => Ok(Self::PermitOnFirstPermit),
            Some(other) => Err(ApiError::bad(
                "bad_option",
                format!("unknown evaluations_semantic {other:?}"),
            )),
        }
    }

    fn stops_after(self, allowed: bool) -> bool {
        match self {
            Self::ExecuteAll => false,
            Self::DenyOnFirstDeny => !allowed,
            Self::PermitOnFirstPermit => allowed,
        }
    }
}

/// A database error, logged, answered as 503 (never with its text).
fn database(e: sqlx::Error) -> ApiError {
    tracing::warn!(target: "gatehouse::pdp_api", error = %e, "database error");
    ApiError::unavailable()
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad(
            "bad_json",
            format!("the body is not the expected JSON: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_file_describes_exactly_the_apis_routes() {
        let doc: Value =
            serde_json::from_str(include_str!("../../../schemas/openapi/pdp-api.json")).unwrap();
        let mut described: Vec<(String, String)> = Vec::new();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for method in operations.as_object().unwrap().keys() {
                if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                    described.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        described.sort();
        served.sort();
        assert_eq!(described, served);
        crate::config::tests::assert_references_resolve(&doc);
    }

    #[test]
    fn grant_paths_split_into_agent_and_capability() {
        let path = GrantPath::parse("/gatehouse/v1/agents/bot-1/grants/edit").unwrap();
        assert_eq!((path.agent, path.capability), ("bot-1", Some("edit")));
        let path = GrantPath::parse("/gatehouse/v1/agents/bot-1/grants").unwrap();
        assert_eq!((path.agent, path.capability), ("bot-1", None));
        for bad in [
            "/gatehouse/v1/agents//grants",
            "/gatehouse/v1/agents/a/b/grants",
            "/gatehouse/v1/agents/bot-1/grants/",
            "/gatehouse/v1/agents/bot-1/grants/edit/more",
            "/gatehouse/v1/agents/bot-1/grantsx",
        ] {
            assert!(GrantPath::parse(bad).is_none(), "{bad}");
        }
    }
}
