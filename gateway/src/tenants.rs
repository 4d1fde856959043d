//! What the gateway knows of each tenant before deciding: that it exists, its plan, and
//! its request rate (one tenant's flood is refused before it costs anyone a decision).

use std::collections::HashMap;
use std::time::Duration;

use cedar_policy::{Entities, EvalResult};
use gatehouse_core::TenantId;
use pingora_limits::rate::Rate;

use crate::config::LimitsConfig;

/// The known tenants and their rate limits.
pub struct Tenants {
    plans: HashMap<TenantId, String>,
    limits: LimitsConfig,
    rate: Rate,
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
    pub fn new(entities: &Entities, limits: LimitsConfig) -> Self {
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
        Self {
            plans,
            limits,
            rate: Rate::new(Duration::from_secs(1)),
        }
    }

    /// Counts the request against its tenant's rate and says whether it may proceed.
    pub fn admit(&self, tenant: &TenantId) -> Admission {
        let Some(plan) = self.plans.get(tenant) else {
            return Admission::Unknown;
        };
        let limit = self
            .limits
            .requests_per_second
            .get(plan)
            .copied()
            .unwrap_or(self.limits.default_requests_per_second);
        // Approximate (a count-min sketch): collisions can only over-count.
        if self.rate.observe(tenant, 1) > isize::try_from(limit).unwrap_or(isize::MAX) {
            Admission::RateLimited(1)
        } else {
            Admission::Admit
        }
    }

    /// The tenant's plan, if the tenant exists.
    pub fn plan(&self, tenant: &TenantId) -> Option<&str> {
        self.plans.get(tenant).map(String::as_str)
    }
}
