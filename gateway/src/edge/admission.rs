//! What the gateway knows of each tenant before deciding: that it exists, its plan, and
//! its request rate (one tenant's flood is refused before it costs anyone a decision);
//! and how often each client address was refused before any decision (so that guessing
//! credentials or knocking on other tenants' doors is throttled per source, charged to no
//! tenant).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use cedar_policy::{Entities, EvalResult};
use gatehouse_core::TenantId;
use pingora_limits::rate::Rate;

use crate::config::LimitsConfig;

/// The known tenants and their rate limits.
pub struct Tenants {
    plans: RwLock<HashMap<TenantId, String>>,
    limits: LimitsConfig,
    rate: Rate,
    /// Refusals before any decision, by client address.
    refusals: Rate,
}

/// What to do with a request of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go on.
    Admit,
    /// No such tenant.
    Unknown,
    /// Over its plan's rate: retry after this many seconds.
    RateLimited(u64),
}

impl Tenants {
    /// The tenants among `entities` (every `Tenant` entity, with its `plan`).
    pub fn from_entities(entities: &Entities, limits: LimitsConfig) -> Self {
        let plans = entities
            .iter()
            .filter(|e| e.uid().type_name().basename() == "Tenant")
            .filter_map(|e| {
                let tenant = TenantId::parse(e.uid().id().unescaped()).ok()?;
                let plan = match e.attr("plan") {
                    Some(Ok(EvalResult::String(plan))) => plan,
                    _ => String::new(),
                };
                Some((tenant, plan))
            })
            .collect();
        Self::new(plans, limits)
    }

    /// The tenants of a directory: tenant id to plan.
    pub fn new(plans: HashMap<TenantId, String>, limits: LimitsConfig) -> Self {
        Self {
            plans: RwLock::new(plans),
            limits,
            rate: Rate::new(Duration::from_secs(1)),
            refusals: Rate::new(Duration::from_secs(1)),
        }
    }

    /// Replaces the directory (after a change in the database).
    pub fn replace(&self, plans: HashMap<TenantId, String>) {
        if let Ok(mut current) = self.plans.write() {
            *current = plans;
        }
    }

    /// Whether `tenant` exists.
    pub fn is_known(&self, tenant: &TenantId) -> bool {
        self.plans
            .read()
            .is_ok_and(|plans| plans.contains_key(tenant))
    }

    /// Whether `source` (a client address) was refused more often than its limit, in
    /// this second or the last.
    pub fn refused_too_often(&self, source: &str) -> bool {
        let limit = self.limits.refusals_per_source_per_second;
        if limit == 0 {
            return false;
        }
        let now = self.refusals.observe(&source, 0);
        now > isize::try_from(limit).unwrap_or(isize::MAX)
            || self.refusals.rate(&source) > f64::from(limit)
    }

    /// Counts a refusal of `source` before any decision.
    pub fn count_refusal(&self, source: &str) {
        self.refusals.observe(&source, 1);
    }

    /// Counts the request against its tenant's rate and says whether it may proceed.
    pub fn admit(&self, tenant: &TenantId) -> Admission {
        let limit = self.plans.read().ok().and_then(|plans| {
            let plan = plans.get(tenant)?;
            let limits = &self.limits;
            Some(
                limits
                    .requests_per_second
                    .get(plan)
                    .copied()
                    .unwrap_or(limits.default_requests_per_second),
            )
        });
        let Some(limit) = limit else {
            return Admission::Unknown;
        };
        // Approximate (a count-min sketch): collisions can only over-count.
        if self.rate.observe(tenant, 1) > isize::try_from(limit).unwrap_or(isize::MAX) {
            Admission::RateLimited(1)
        } else {
            Admission::Admit
        }
    }
}
