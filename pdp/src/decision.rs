//! What the decision point answers.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::bundle::BundleId;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The request may proceed.
    Allow,
    /// The request is refused.
    Deny,
}

impl Effect {
    /// `allow` or `deny`, as audit records and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// Why a decision could not be made normally. Every one of these makes the decision a deny.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum DecisionError {
    /// The entity store has no such principal.
    #[error("unknown principal {uid}")]
    UnknownPrincipal {
        /// The principal's uid.
        uid: String,
    },
    /// The entity store has no such resource.
    #[error("unknown resource {uid}")]
    UnknownResource {
        /// The resource's uid.
        uid: String,
    },
    /// The principal belongs to another tenant than the one the request was made in.
    #[error("principal {uid} does not belong to tenant {tenant}")]
    TenantMismatch {
        /// The principal's uid.
        uid: String,
        /// The request's tenant.
        tenant: String,
    },
    /// The agent does not act for anyone the decision point can find.
    #[error("agent {uid} acts for no known user")]
    NoDelegatingUser {
        /// The agent's uid.
        uid: String,
    },
    /// The agent's credential names another user than the one the agent acts for.
    #[error("agent {uid} does not act for {claimed}")]
    DelegationMismatch {
        /// The agent's uid.
        uid: String,
        /// The user the credential named.
        claimed: String,
    },
    /// The request does not fit the schema (wrong types, unknown action, bad context).
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
    },
    /// The entities loaded for the request are inconsistent.
    #[error("invalid entities: {message}")]
    InvalidEntities {
        /// What is wrong.
        message: String,
    },
    /// A policy could not be evaluated (e.g. it read an attribute that is missing).
    /// Cedar would skip such a policy; Gatehouse denies, because a skipped `forbid` would
    /// otherwise turn into an allow.
    #[error("policy {policy} failed to evaluate: {message}")]
    PolicyEvaluation {
        /// The policy id.
        policy: String,
        /// The evaluation error.
        message: String,
    },
    /// A compiled filter let this resource through, but the decision is a deny: the item
    /// was withheld (recorded by the adapter's post-check).
    #[error("the list filter let through a resource the policies deny")]
    FilterMismatch,
    /// The entity store could not be reached.
    #[error("entity store unavailable: {message}")]
    StoreUnavailable {
        /// What failed.
        message: String,
    },
}

impl DecisionError {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownPrincipal { .. } => "unknown_principal",
            Self::UnknownResource { .. } => "unknown_resource",
            Self::TenantMismatch { .. } => "tenant_mismatch",
            Self::NoDelegatingUser { .. } => "no_delegating_user",
            Self::DelegationMismatch { .. } => "delegation_mismatch",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::InvalidEntities { .. } => "invalid_entities",
            Self::PolicyEvaluation { .. } => "policy_evaluation",
            Self::FilterMismatch => "filter_mismatch",
            Self::StoreUnavailable { .. } => "store_unavailable",
        }
    }
}

/// The outcome for one principal: the agent's or its user's half of a delegated request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegDecision {
    /// The principal decided for.
    pub principal: String,
    /// Its effect.
    pub effect: Effect,
    /// The policies that determined it.
    pub determining_policies: Vec<String>,
    /// Errors (each one makes the leg a deny).
    pub errors: Vec<DecisionError>,
}

/// Both halves of a request made by an agent on behalf of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DelegatedDecision {
    /// The decision for the agent itself.
    pub agent: LegDecision,
    /// The decision for the user the agent acts for.
    pub user: LegDecision,
}

/// The decision point's answer to one [`crate::AccessRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Allow only if every policy evaluation succeeded and (for agents) both legs allow.
    pub effect: Effect,
    /// For an allow, the permits that allowed it (both legs' for an agent); for a deny, the
    /// forbids that denied it (empty when nothing permitted: the default deny).
    pub determining_policies: Vec<String>,
    /// Everything that went wrong; non-empty implies [`Effect::Deny`].
    pub errors: Vec<DecisionError>,
    /// The bundle's name, version and hash.
    #[serde(serialize_with = "serialize_bundle")]
    pub bundle: BundleId,
    /// When the decision was made (JSON: `decided_at_unix_us`, microseconds since 1970).
    #[serde(rename = "decided_at_unix_us", serialize_with = "serialize_time")]
    pub decided_at: SystemTime,
    /// How long the decision took, entity loading included (JSON: `elapsed_us`).
    #[serde(rename = "elapsed_us", serialize_with = "serialize_duration")]
    pub elapsed: Duration,
    /// For a request by an agent: the agent's and the user's decisions.
    pub delegation: Option<DelegatedDecision>,
}

impl Decision {
    /// True for [`Effect::Allow`].
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// True when no decision could be made because the entity store was unavailable (the
    /// deny then means "try again", not "not allowed": callers answer 503).
    pub fn is_unavailable(&self) -> bool {
        self.errors
            .iter()
            .any(|e| matches!(e, DecisionError::StoreUnavailable { .. }))
    }
}

fn serialize_bundle<S: serde::Serializer>(b: &BundleId, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Bundle", 3)?;
    st.serialize_field("name", &*b.name)?;
    st.serialize_field("version", &*b.version)?;
    st.serialize_field("hash", &*b.hash)?;
    st.end()
}

fn serialize_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(gatehouse_core::time::unix_micros(*t))
}

fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_micros())
}
