//! The further decisions of adapter calls ([`Decider`]): a move's destination, each item of
//! a bulk call, the filter of a list. Decided with the same policies, entities, principal,
//! delegation, MFA and client address as the call the gateway admitted, and audited like
//! every decision.

use async_trait::async_trait;
use gatehouse_adapter_kit::{AdapterError, Call, Decider, FilterEvent};
use gatehouse_core::filter::Filter;
use gatehouse_pdp::{AccessRequest, DecisionError, ResourceFilter, uid};

use super::{Authorizer, Origin};
use crate::metrics;

/// The gateway's decision point, for the adapters in its process.
pub struct AdapterDecider {
    authorizer: Authorizer,
    /// The adapter, for the audit record's route.
    route: &'static str,
    /// The share of filtered pages checked again item by item.
    postcheck_sample_rate: f64,
}

impl AdapterDecider {
    /// Decides for the adapter named `route` (e.g. `adapter:documents`), checking that
    /// share of filtered pages again item by item.
    pub fn new(authorizer: Authorizer, route: &'static str, postcheck_sample_rate: f64) -> Self {
        Self {
            authorizer,
            route,
            postcheck_sample_rate,
        }
    }

    /// The request for `action` on `resource_type::"id"` with the call's tenant,
    /// principal, delegation, MFA and client address.
    fn request(
        call: &Call,
        action: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<AccessRequest, AdapterError> {
        let context = call.context();
        let principal = uid::parse("principal", &context.principal)
            .map_err(|_| AdapterError::ContextInvalid)?;
        let acting_for = context
            .acting_for
            .as_deref()
            .map(|user| uid::parse("acting_for", user))
            .transpose()
            .map_err(|_| AdapterError::ContextInvalid)?;
        let resource = uid::entity(resource_type, id).map_err(|_| AdapterError::Internal)?;
        Ok(AccessRequest::new(
            context.tenant.clone(),
            principal,
            uid::action(action),
            resource,
        )
        .acting_for(acting_for)
        .established(context.mfa, context.source_ip.as_deref()))
    }

    fn origin(&self, call: &Call) -> Origin {
        Origin {
            route: self.route.to_string(),
            trace_id: call.context().trace_id.clone(),
            client_ip: None,
            asked_by: None,
        }
    }
}

#[async_trait]
impl Decider for AdapterDecider {
    async fn decide(
        &self,
        call: &Call,
        action: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<(), AdapterError> {
        let request = Self::request(call, action, resource_type, id)?;
        let decided = self.authorizer.decide(request, &self.origin(call)).await;
        // The adapter acts on (or answers with) this decision: its record first.
        if self.authorizer.records_durable().wait().await.is_err() {
            return Err(AdapterError::Unavailable);
        }
        if decided.decision.is_allowed() {
            return Ok(());
        }
        if decided.decision.is_unavailable() {
            return Err(AdapterError::Unavailable);
        }
        Err(AdapterError::Forbidden(format!(
            "{action} on {} (decision {})",
            decided.texts.resource, decided.id
        )))
    }

    async fn permitted(
        &self,
        call: &Call,
        action: &str,
        resource_type: &str,
        ids: &[String],
    ) -> Result<Vec<bool>, AdapterError> {
        let mut permitted = Vec::with_capacity(ids.len());
        for id in ids {
            let request = Self::request(call, action, resource_type, id)?;
            let decision = self.authorizer.decide_covered(&request).await;
            if decision.is_unavailable() {
                return Err(AdapterError::Unavailable);
            }
            permitted.push(decision.is_allowed());
        }
        Ok(permitted)
    }

    async fn filter(
        &self,
        call: &Call,
        action: &str,
        resource_type: &str,
    ) -> Result<Option<Filter>, AdapterError> {
        let request = Self::request(call, action, resource_type, "")?;
        match self.authorizer.resource_filter(&request.into()).await {
            Ok(ResourceFilter::Exact(filter)) => Ok(Some(filter)),
            Ok(ResourceFilter::Untranslatable { reason }) => {
                let adapter = self.route;
                self.report(call, FilterEvent::Fallback { adapter, reason })
                    .await;
                Ok(None)
            }
            Err(_) => Err(AdapterError::Unavailable),
        }
    }

    fn sample_postcheck(&self) -> bool {
        self.postcheck_sample_rate >= 1.0 || rand::random::<f64>() < self.postcheck_sample_rate
    }

    async fn report(&self, call: &Call, event: FilterEvent) {
        let tenant = call.tenant().as_str();
        match event {
            FilterEvent::Fallback { adapter, reason } => {
                metrics::FILTER_FALLBACKS
                    .with_label_values(&[tenant, adapter])
                    .inc();
                tracing::warn!(target: "gatehouse::filter", tenant, adapter, reason, "no filter for these policies: deciding item by item");
            }
            FilterEvent::Mismatch {
                action,
                resource_type,
                id,
            } => {
                metrics::FILTER_MISMATCHES
                    .with_label_values(&[tenant])
                    .inc();
                tracing::error!(target: "gatehouse::filter", tenant, action, resource_type, id, "a filtered item is denied by the policies: withheld");
                let Ok(request) = Self::request(call, &action, &resource_type, &id) else {
                    return;
                };
                let mut decision = self.authorizer.decide_covered(&request).await;
                decision.errors.push(DecisionError::FilterMismatch);
                self.authorizer
                    .audit(&request, &decision, &self.origin(call));
            }
        }
    }
}
