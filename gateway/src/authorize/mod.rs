//! Where every decision is made and audited.
//!
//! The edge deciding a route ([`crate::proxy`]), the decision API answering a question
//! ([`crate::decision_api`]) and an adapter's further decision ([`adapters`]: a move's
//! destination, a bulk item) all go through [`Authorizer::decide`]: the decision point
//! decides, a new decision id names the decision, its audit record is queued, and it is
//! counted by tenant and effect. One sequence, one record type ([`AuditRecord`]), in one
//! place.

pub mod adapters;

use std::sync::Arc;
use std::time::Instant;

use gatehouse_audit::{AuditRecord, AuditWriter, Receipt};
use gatehouse_core::TenantId;
use gatehouse_core::ids::new_decision_id;
use gatehouse_core::time::now_unix_micros;
use gatehouse_pdp::{AccessRequest, Decision, Pdp, ResourceFilter, ResourceQuery, StoreError};

use crate::edge::identity::Principal;
use crate::metrics;
use crate::runtime::entity_store::Store;

/// The decision point, the entities it decides with, and the audit log every decision
/// goes to. Cheap to clone: every part is shared.
#[derive(Clone)]
pub struct Authorizer {
    pdp: Arc<Pdp>,
    store: Store,
    audit: AuditWriter,
}

/// Where a decision was asked, for its audit record: beside the request itself, the
/// record says by which route or endpoint, in which trace, from which address, and who
/// asked when it was not the principal.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The route pattern, the decision API's endpoint, or the adapter.
    pub route: String,
    /// The request's W3C trace id.
    pub trace_id: String,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The caller, when it asked about another principal (the decision API).
    pub asked_by: Option<String>,
}

/// A decision, made, audited and counted.
#[derive(Debug, Clone)]
pub struct Decided {
    /// What was asked.
    pub request: AccessRequest,
    /// The answer.
    pub decision: Decision,
    /// The decision's id: its audit record's id, and the forwarded context's.
    pub id: String,
    /// The request's uids as text, formatted once.
    pub texts: UidTexts,
}

impl Authorizer {
    /// Decides with `pdp` over `store`, auditing to `audit`.
    pub fn new(pdp: Arc<Pdp>, store: Store, audit: AuditWriter) -> Self {
        Self { pdp, store, audit }
    }

    /// The decision point (and, through it, the serving bundle).
    pub fn pdp(&self) -> &Arc<Pdp> {
        &self.pdp
    }

    /// The entities decisions are made with.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A receipt for every record made so far: wait on it before an answer or an effect
    /// of a decision goes out (it is ready at once under `durability = "async"`).
    pub fn records_durable(&self) -> Receipt {
        self.audit.barrier()
    }

    /// Decides `request`, audits the decision as asked at `origin`, and counts it.
    pub async fn decide(&self, request: AccessRequest, origin: &Origin) -> Decided {
        let started = Instant::now();
        let decision = self.pdp.decide(&self.store, &request).await;
        metrics::observe_since(&metrics::phase::DECIDE, started);
        let started = Instant::now();
        self.count(&request.tenant, &decision);
        let id = new_decision_id();
        let texts = UidTexts::of(&request);
        self.audit
            .record(record(&request.tenant, &texts, &decision, &id, origin));
        metrics::observe_since(&metrics::phase::AUDIT_RECORD, started);
        Decided {
            request,
            decision,
            id,
            texts,
        }
    }

    /// Decides `request` without a record of its own: for items a call's own audited
    /// decision already covers (the hits of a search, the candidates of a list).
    pub async fn decide_covered(&self, request: &AccessRequest) -> Decision {
        self.pdp.decide(&self.store, request).await
    }

    /// Audits and counts a decision made with [`Self::decide_covered`] after all (an item
    /// a filter let through and the decision point denies); returns its id.
    pub fn audit(&self, request: &AccessRequest, decision: &Decision, origin: &Origin) -> String {
        self.count(&request.tenant, decision);
        let id = new_decision_id();
        let texts = UidTexts::of(request);
        self.audit
            .record(record(&request.tenant, &texts, decision, &id, origin));
        id
    }

    /// One more record of an allowed decision, for a further resource it covered (each
    /// entity of an entity push under the caller's one `pdp:entities` decision). Not
    /// counted again: it is the same decision.
    pub fn record_covered(&self, request: &AccessRequest, decision: &Decision, origin: &Origin) {
        let texts = UidTexts::of(request);
        let id = new_decision_id();
        self.audit
            .record(record(&request.tenant, &texts, decision, &id, origin));
    }

    /// Which resources of the query's type its principal may act on.
    ///
    /// # Errors
    /// The entity store's, when the principal's entities cannot be loaded.
    pub async fn resource_filter(
        &self,
        query: &ResourceQuery,
    ) -> Result<ResourceFilter, StoreError> {
        self.pdp.resource_filter(&self.store, query).await
    }

    /// Audits a request refused before any decision could be made, in `tenant`: a
    /// principal of one tenant knocking on another's door is on the record of both.
    pub fn audit_refusal(
        &self,
        tenant: &TenantId,
        principal: &Principal,
        code: &str,
        origin: &Origin,
    ) {
        let bundle = self.pdp.bundle().snapshot();
        self.audit.record(AuditRecord {
            // Each tenant's copy is its own record: ids are unique across the log.
            id: new_decision_id(),
            time_us: now_unix_micros(),
            trace_id: origin.trace_id.clone(),
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
            client_ip: origin.client_ip.clone(),
            route: origin.route.clone(),
            asked_by: None,
        });
    }

    /// Counts a decision by tenant and effect, with its latency.
    fn count(&self, tenant: &TenantId, decision: &Decision) {
        let tenant = tenant.as_str();
        metrics::DECISIONS
            .with_label_values(&[tenant, decision.effect.as_str()])
            .inc();
        metrics::DECISION_SECONDS
            .with_label_values(&[tenant])
            .observe(decision.elapsed.as_secs_f64());
    }
}

/// A request's uids as text: formatted once per decision, for the log line, the audit
/// record and the forwarded context.
#[derive(Debug, Clone)]
pub struct UidTexts {
    /// The principal.
    pub principal: String,
    /// The user an agent acts for, as its credential claimed it.
    pub acting_for: Option<String>,
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: String,
}

impl UidTexts {
    fn of(request: &AccessRequest) -> Self {
        Self {
            principal: request.principal.to_string(),
            acting_for: request.acting_for.as_ref().map(ToString::to_string),
            action: request.action.to_string(),
            resource: request.resource.to_string(),
        }
    }
}

/// The audit record of `decision` (id `id`) in `tenant` on the request named by `texts`.
fn record(
    tenant: &TenantId,
    texts: &UidTexts,
    decision: &Decision,
    id: &str,
    origin: &Origin,
) -> AuditRecord {
    AuditRecord {
        id: id.to_string(),
        time_us: now_unix_micros(),
        trace_id: origin.trace_id.clone(),
        tenant: tenant.clone(),
        principal: texts.principal.clone(),
        // The user an agent acts for, as the caller claimed it or the decision found it.
        acting_for: texts.acting_for.clone().or_else(|| {
            let delegation = decision.delegation.as_ref();
            delegation.map(|d| d.user.principal.clone())
        }),
        action: texts.action.clone(),
        resource: texts.resource.clone(),
        decision: decision.effect.as_str().into(),
        determining_policies: decision.determining_policies.clone(),
        errors: decision
            .errors
            .iter()
            .map(|e| format!("{}: {e}", e.code()))
            .collect(),
        bundle_version: decision.bundle.version.to_string(),
        bundle_hash: decision.bundle.hash.to_string(),
        latency_us: u64::try_from(decision.elapsed.as_micros()).unwrap_or(u64::MAX),
        client_ip: origin.client_ip.clone(),
        route: origin.route.clone(),
        asked_by: origin.asked_by.clone(),
    }
}
