//! The decision itself.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Entities, Entity, EntityUid, Request, Response,
};
use gatehouse_core::filter::Filter;
use serde_json::{Map, Value, json};

use crate::bundle::Bundle;
use crate::current::CurrentBundle;
use crate::decision::{Decision, DecisionError, DelegatedDecision, Effect, LegDecision};
use crate::entity_store::{EntityStore, StoreError, entity_attr, tenant_attr};
use crate::request::AccessRequest;
use crate::resource_filter::{ResourceFilter, ResourceQuery, leg_filter};
use crate::slices::Shape;

/// The decision point: the current bundle and Cedar's authorizer.
#[derive(Debug)]
pub struct Pdp {
    bundle: Arc<CurrentBundle>,
    authorizer: Authorizer,
    contexts: ContextCache,
}

impl Pdp {
    /// A decision point serving whatever `bundle` holds at the time of each decision.
    pub fn new(bundle: Arc<CurrentBundle>) -> Self {
        Self {
            bundle,
            authorizer: Authorizer::new(),
            contexts: ContextCache::default(),
        }
    }

    /// The current bundle (to reload it, or to read its id).
    pub fn bundle(&self) -> &Arc<CurrentBundle> {
        &self.bundle
    }

    /// Decides `request` with the entities `store` has for the principal, the resource,
    /// the tenant and (for an agent) the user it acts for.
    ///
    /// Never fails: a store error, an unknown principal or resource, a tenant mismatch or
    /// a policy evaluation error is a [`Effect::Deny`] carrying the error.
    pub async fn decide<S: EntityStore>(&self, store: &S, request: &AccessRequest) -> Decision {
        let started = Instant::now();
        let bundle = self.bundle.snapshot();
        let uids = vec![
            request.principal.clone(),
            request.resource.clone(),
            crate::uid::tenant(&request.tenant),
        ];
        match load_with_delegating_user(store, request, uids).await {
            Ok(entities) => self.evaluate(&bundle, request, &entities, started),
            Err(e) => refused(&bundle, started, unavailable(e)),
        }
    }

    /// Which resources of a type the principal may act on, as a filter (see
    /// [`ResourceFilter`]): the policies evaluated with the resource unknown.
    ///
    /// A principal the store does not know, or one of another tenant, gets
    /// [`Filter::Never`], as it would get a deny for every resource.
    ///
    /// # Errors
    /// [`StoreError`] when the entity store cannot be read (fail closed: no filter).
    pub async fn resource_filter<S: EntityStore>(
        &self,
        store: &S,
        query: &ResourceQuery,
    ) -> Result<ResourceFilter, StoreError> {
        let bundle = self.bundle.snapshot();
        let request = query.as_access_request();
        let uids = vec![
            request.principal.clone(),
            crate::uid::tenant(&request.tenant),
        ];
        let entities = load_with_delegating_user(store, &request, uids).await?;
        Ok(self.filter_with_entities(&bundle, query, &request, &entities))
    }

    fn filter_with_entities(
        &self,
        bundle: &Bundle,
        query: &ResourceQuery,
        request: &AccessRequest,
        entities: &Entities,
    ) -> ResourceFilter {
        let Ok(user) = check_principals(request, entities) else {
            return ResourceFilter::Exact(Filter::Never);
        };
        let delegation = user.as_ref().map(|u| (&request.principal, u));
        let Ok(context) = self.contexts.get_or_build(bundle, request, delegation) else {
            return ResourceFilter::Exact(Filter::Never);
        };
        let legs = std::iter::once(&request.principal).chain(user.as_ref());
        let filters: Result<Vec<Filter>, _> = legs
            .map(|principal| leg_filter(bundle, principal, query, &context, entities))
            .collect();
        match filters {
            Ok(filters) => ResourceFilter::Exact(Filter::all(filters)),
            Err(reason) => ResourceFilter::Untranslatable { reason },
        }
    }

    /// Decides `request` with the given entities, which must hold the principal, the
    /// resource and everything the policies read (used by the policy test runner, whose
    /// fixtures hold whole tenants). Action entities among them are replaced by the
    /// bundle schema's.
    pub fn decide_with_entities(
        &self,
        request: &AccessRequest,
        mut entities: Vec<Entity>,
    ) -> Decision {
        let started = Instant::now();
        let bundle = self.bundle.snapshot();
        entities.retain(|e| e.uid().type_name().basename() != "Action");
        if let Some(action) = bundle.action_entity(&request.action) {
            entities.push(action.clone());
        }
        match Entities::from_entities(entities, None) {
            Ok(entities) => self.evaluate(&bundle, request, &entities, started),
            Err(e) => {
                let message = e.to_string();
                refused(&bundle, started, DecisionError::InvalidEntities { message })
            }
        }
    }

    fn evaluate(
        &self,
        bundle: &Bundle,
        request: &AccessRequest,
        entities: &Entities,
        started: Instant,
    ) -> Decision {
        let user = match check_principals(request, entities) {
            Ok(user) => user,
            Err(e) => return refused(bundle, started, e),
        };
        if let Err(e) = check_resource_and_action(bundle, request, entities) {
            return refused(bundle, started, e);
        }
        let delegation = user.as_ref().map(|u| (&request.principal, u));
        let context = match self.contexts.get_or_build(bundle, request, delegation) {
            Ok(context) => context,
            Err(e) => return refused(bundle, started, e),
        };
        let decide =
            |principal: &EntityUid| self.leg(bundle, principal, request, &context, entities);
        match user {
            None => {
                let leg = decide(&request.principal);
                finish(
                    bundle,
                    started,
                    leg.effect,
                    leg.determining_policies,
                    leg.errors,
                    None,
                )
            }
            Some(user) => {
                let agent = decide(&request.principal);
                let user = decide(&user);
                combine(bundle, started, agent, user)
            }
        }
    }

    /// One Cedar evaluation over the policies that can apply, failing closed on any error.
    fn leg(
        &self,
        bundle: &Bundle,
        principal: &EntityUid,
        request: &AccessRequest,
        context: &Context,
        entities: &Entities,
    ) -> LegDecision {
        let shape = Shape {
            principal: principal.type_name().clone(),
            action: request.action.clone(),
            resource: request.resource.type_name().clone(),
        };
        let (effect, determining_policies, errors) = match bundle.policies_for(&shape) {
            Some(policies) => {
                // The shape was checked against the schema by `policies_for` and the
                // context when it was cached, so the request needs no second validation.
                let cedar_request = Request::new(
                    principal.clone(),
                    request.action.clone(),
                    request.resource.clone(),
                    context.clone(),
                    None,
                );
                match cedar_request {
                    Ok(r) => judge(&self.authorizer.is_authorized(&r, policies, entities)),
                    Err(e) => invalid(e.to_string()),
                }
            }
            None => invalid(format!(
                "{} does not apply to a {} and a {}",
                request.action, shape.principal, shape.resource
            )),
        };
        LegDecision {
            principal: principal.to_string(),
            effect,
            determining_policies,
            errors,
        }
    }
}

fn invalid(message: String) -> (Effect, Vec<String>, Vec<DecisionError>) {
    (
        Effect::Deny,
        Vec::new(),
        vec![DecisionError::InvalidRequest { message }],
    )
}

/// The resource must exist, and the entity set's action hierarchy must be the bundle's
/// (a store built for another schema would silently break `action in ...` scopes).
fn check_resource_and_action(
    bundle: &Bundle,
    request: &AccessRequest,
    entities: &Entities,
) -> Result<(), DecisionError> {
    if entities.get(&request.resource).is_none() {
        let uid = request.resource.to_string();
        return Err(DecisionError::UnknownResource { uid });
    }
    let Some(groups) = bundle.action_groups(&request.action) else {
        let message = format!("unknown action {}", request.action);
        return Err(DecisionError::InvalidRequest { message });
    };
    let in_store = entities.ancestors(&request.action).map(|a| {
        let mut count = 0;
        a.inspect(|_| count += 1).all(|g| groups.contains(g)) && count == groups.len()
    });
    if in_store != Some(true) {
        let message = format!(
            "the entity store's action {} differs from the bundle's schema",
            request.action
        );
        return Err(DecisionError::InvalidEntities { message });
    }
    Ok(())
}

/// Contexts built and validated against the schema, by action and content.
///
/// Building a Cedar context from JSON costs more than the rest of a decision (a
/// `datetime` alone takes microseconds to parse), while a busy gateway sees the same few
/// contexts over and over (the clock has one-second resolution). A hit is a clone of an
/// already validated context. The cache is bounded: it is emptied when full.
#[derive(Debug, Default)]
struct ContextCache {
    entries: RwLock<HashMap<String, Context>>,
}

impl ContextCache {
    const CAPACITY: usize = 4096;

    fn get_or_build(
        &self,
        bundle: &Bundle,
        request: &AccessRequest,
        delegation: Option<(&EntityUid, &EntityUid)>,
    ) -> Result<Context, DecisionError> {
        let json = context_json(request, delegation);
        let key = format!(
            "{}|{}|{}",
            bundle.id().hash,
            request.action,
            Value::Object(json)
        );
        if let Some(hit) = self.entries.read().ok().and_then(|e| e.get(&key).cloned()) {
            return Ok(hit);
        }
        let json = context_json(request, delegation);
        let invalid = |message: String| DecisionError::InvalidRequest { message };
        let context = Context::from_json_value(
            Value::Object(json),
            Some((bundle.schema(), &request.action)),
        )
        .map_err(|e| invalid(format!("context: {e}")))?;
        // Validates the context's types against the action's context type (and the
        // request's shape); only a valid context is ever cached.
        Request::new(
            request.principal.clone(),
            request.action.clone(),
            request.resource.clone(),
            context.clone(),
            Some(bundle.schema()),
        )
        .map_err(|e| invalid(e.to_string()))?;
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
            entries.insert(key, context.clone());
        }
        Ok(context)
    }
}

/// Cedar's response, made fail-closed: any evaluation error turns an allow into a deny.
fn judge(response: &Response) -> (Effect, Vec<String>, Vec<DecisionError>) {
    let errors: Vec<DecisionError> = response
        .diagnostics()
        .errors()
        .map(|e| match e {
            AuthorizationError::PolicyEvaluationError(e) => DecisionError::PolicyEvaluation {
                policy: e.policy_id().to_string(),
                message: e.inner().to_string(),
            },
        })
        .collect();
    let allowed = response.decision() == cedar_policy::Decision::Allow && errors.is_empty();
    let effect = if allowed { Effect::Allow } else { Effect::Deny };
    let mut determining: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    if !allowed && response.decision() == cedar_policy::Decision::Allow {
        // The permits did not decide: the errors did.
        determining.clear();
    }
    determining.sort();
    (effect, determining, errors)
}

/// The principal must exist and belong to the request's tenant; an agent must act for a
/// user who does too. Returns that user for an agent.
fn check_principals(
    request: &AccessRequest,
    entities: &Entities,
) -> Result<Option<EntityUid>, DecisionError> {
    let tenant = crate::uid::tenant(&request.tenant);
    let principal =
        entities
            .get(&request.principal)
            .ok_or_else(|| DecisionError::UnknownPrincipal {
                uid: request.principal.to_string(),
            })?;
    let in_tenant = |entity: &Entity| tenant_attr(entity).as_ref() == Some(&tenant);
    let mismatch = |uid: &EntityUid| DecisionError::TenantMismatch {
        uid: uid.to_string(),
        tenant: request.tenant.to_string(),
    };
    if !in_tenant(principal) {
        return Err(mismatch(&request.principal));
    }
    if !is_agent(&request.principal) {
        return Ok(None);
    }
    let no_user = || DecisionError::NoDelegatingUser {
        uid: request.principal.to_string(),
    };
    let user_uid = entity_attr(principal, "acts_for").ok_or_else(no_user)?;
    if let Some(claimed) = &request.acting_for
        && *claimed != user_uid
    {
        return Err(DecisionError::DelegationMismatch {
            uid: request.principal.to_string(),
            claimed: claimed.to_string(),
        });
    }
    let user = entities.get(&user_uid).ok_or_else(no_user)?;
    if !in_tenant(user) {
        return Err(mismatch(&user_uid));
    }
    Ok(Some(user_uid))
}

/// The request's context with the decision point's defaults and delegation filled in.
fn context_json(
    request: &AccessRequest,
    delegation: Option<(&EntityUid, &EntityUid)>,
) -> Map<String, Value> {
    let mut context: Map<String, Value> = request.context.clone();
    context.entry("mfa").or_insert(Value::Bool(false));
    if !context.contains_key("now") {
        context.insert("now".into(), Value::String(rfc3339_utc(SystemTime::now())));
    }
    context.remove("delegation");
    if let Some((agent, user)) = delegation {
        let delegation = json!({ "agent": entity_json(agent), "user": entity_json(user) });
        context.insert("delegation".into(), delegation);
    }
    context
}

fn combine(bundle: &Bundle, started: Instant, agent: LegDecision, user: LegDecision) -> Decision {
    let allowed = agent.effect == Effect::Allow && user.effect == Effect::Allow;
    let legs = [&agent, &user];
    let deciding = legs
        .iter()
        .filter(|leg| allowed || leg.effect == Effect::Deny);
    let mut determining: Vec<String> = deciding
        .flat_map(|leg| leg.determining_policies.clone())
        .collect();
    determining.sort();
    determining.dedup();
    let errors = legs.iter().flat_map(|leg| leg.errors.clone()).collect();
    let effect = if allowed { Effect::Allow } else { Effect::Deny };
    let delegation = Some(DelegatedDecision { agent, user });
    finish(bundle, started, effect, determining, errors, delegation)
}

fn finish(
    bundle: &Bundle,
    started: Instant,
    effect: Effect,
    determining_policies: Vec<String>,
    errors: Vec<DecisionError>,
    delegation: Option<DelegatedDecision>,
) -> Decision {
    Decision {
        effect,
        determining_policies,
        errors,
        bundle: bundle.id().clone(),
        decided_at: SystemTime::now(),
        elapsed: started.elapsed(),
        delegation,
    }
}

fn refused(bundle: &Bundle, started: Instant, error: DecisionError) -> Decision {
    finish(bundle, started, Effect::Deny, Vec::new(), vec![error], None)
}

fn unavailable(e: StoreError) -> DecisionError {
    DecisionError::StoreUnavailable {
        message: e.to_string(),
    }
}

fn is_agent(uid: &EntityUid) -> bool {
    uid.type_name().basename() == "Agent"
}

fn delegating_user(entities: &Entities, principal: &EntityUid) -> Option<EntityUid> {
    if !is_agent(principal) {
        return None;
    }
    entities
        .get(principal)
        .and_then(|agent| entity_attr(agent, "acts_for"))
}

fn entity_json(uid: &EntityUid) -> Value {
    json!({ "__entity": { "type": uid.type_name().to_string(), "id": uid.id().unescaped() } })
}

/// Formats a time as RFC 3339 in UTC, to the second.
fn rfc3339_utc(t: SystemTime) -> String {
    let seconds = gatehouse_core::time::unix_seconds(t);
    gatehouse_core::time::format_rfc3339(i64::try_from(seconds).unwrap_or(i64::MAX))
}

/// Loads `uids` (with their ancestors) and, for an agent, the user it acts for.
async fn load_with_delegating_user<S: EntityStore>(
    store: &S,
    request: &AccessRequest,
    mut uids: Vec<EntityUid>,
) -> Result<Arc<Entities>, StoreError> {
    let entities = store.load(&request.tenant, &uids).await?;
    match delegating_user(&entities, &request.principal) {
        Some(user) if entities.get(&user).is_none() => {
            uids.push(user);
            store.load(&request.tenant, &uids).await
        }
        _ => Ok(entities),
    }
}
