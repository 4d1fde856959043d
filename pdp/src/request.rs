//! What is asked of the decision point.

use std::str::FromStr;

use cedar_policy::EntityUid;
use gatehouse_core::TenantId;
use serde_json::{Map, Value};

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
        Ok(Self {
            tenant,
            principal: parse_uid("principal", principal)?,
            action: parse_action(action)?,
            resource: parse_uid("resource", resource)?,
            acting_for: None,
            context: Map::new(),
        })
    }

    /// Sets the context (a JSON object).
    pub fn with_context(mut self, context: Map<String, Value>) -> Self {
        self.context = context;
        self
    }
}

/// Parses an entity uid such as `User::"alice"`.
///
/// # Errors
/// [`RequestError::BadUid`] naming `field`.
pub(crate) fn parse_uid(field: &'static str, value: &str) -> Result<EntityUid, RequestError> {
    EntityUid::from_str(value).map_err(|_| RequestError::BadUid {
        field,
        value: value.to_string(),
    })
}

/// Parses an action given as `document:read` or `Action::"document:read"`.
pub(crate) fn parse_action(value: &str) -> Result<EntityUid, RequestError> {
    if value.contains("::") {
        parse_uid("action", value)
    } else {
        parse_uid("action", &format!("Action::{value:?}"))
    }
}
