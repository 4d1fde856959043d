//! What is asked of the decision point.

use cedar_policy::EntityUid;
use gatehouse_core::TenantId;
use serde_json::{Map, Value};

use crate::uid;

/// One authorization question: may `principal` do `action` to `resource`, in `tenant`?
///
/// The tenant is not a hint: the principal must belong to it, or the answer is a deny.
#[derive(Debug, Clone)]
pub struct AccessRequest {
    /// The tenant the request was made in, fixed at the edge.
    pub tenant: TenantId,
    /// A `User`, an `Agent` (acting for a user) or a `ShareLink`.
    pub principal: EntityUid,
    /// The action, e.g. `Action::"document:read"`.
    pub action: EntityUid,
    /// The resource, e.g. `Document::"d-42"`.
    pub resource: EntityUid,
    /// For an agent: the user its credential says it acts for. When given, it must be the
    /// agent's `acts_for`, or the request is denied.
    pub acting_for: Option<EntityUid>,
    /// The request context as Cedar JSON (`mfa`, `now`, `source_ip`, `region`).
    /// `mfa` defaults to false and `now` to the decision point's clock; `delegation` is
    /// always set by the decision point itself.
    pub context: Map<String, Value>,
}

/// Why a request could not even be put to the policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// An entity type name that does not parse.
    #[error("not a Cedar entity type: {value:?}")]
    BadType {
        /// The text given.
        value: String,
    },
    /// An entity uid that does not parse, e.g. `User::alice` without quotes.
    #[error("{field}: not a Cedar entity uid: {value:?}")]
    BadUid {
        /// Which part of the request.
        field: &'static str,
        /// The text given.
        value: String,
    },
}

impl AccessRequest {
    /// May `principal` do `action` to `resource` in `tenant`: no delegation, an empty
    /// context (the decision point's defaults).
    pub fn new(
        tenant: TenantId,
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
    ) -> Self {
        Self {
            tenant,
            principal,
            action,
            resource,
            acting_for: None,
            context: Map::new(),
        }
    }

    /// For an agent's request: the user its credential says it acts for.
    pub fn acting_for(mut self, user: Option<EntityUid>) -> Self {
        self.acting_for = user;
        self
    }

    /// What the caller's own credential established, in place of anything the context
    /// said: whether the session passed MFA, and the client's address (removed when
    /// unknown, so a context cannot claim one).
    pub fn established(mut self, mfa: bool, source_ip: Option<&str>) -> Self {
        self.context.insert("mfa".into(), Value::Bool(mfa));
        match source_ip {
            Some(ip) => self
                .context
                .insert("source_ip".into(), Value::String(ip.into())),
            None => self.context.remove("source_ip"),
        };
        self
    }

    /// Builds a request from Cedar uid strings; `action` may be the bare action id
    /// (`document:read`) or the full uid (`Action::"document:read"`).
    ///
    /// # Errors
    /// [`RequestError::BadUid`] when a uid does not parse.
    pub fn parse(
        tenant: TenantId,
        principal: &str,
        action: &str,
        resource: &str,
    ) -> Result<Self, RequestError> {
        Ok(Self::new(
            tenant,
            uid::parse("principal", principal)?,
            uid::parse_action(action)?,
            uid::parse("resource", resource)?,
        ))
    }

    /// Sets the context (a JSON object).
    pub fn with_context(mut self, context: Map<String, Value>) -> Self {
        self.context = context;
        self
    }
}
