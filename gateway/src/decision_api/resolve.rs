//! One evaluation's subject, action, resource and context, as an access request against
//! the schema, in the caller's tenant; and the context of a question about oneself.

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use gatehouse_pdp::{AccessRequest, Bundle, uid};
use serde_json::{Map, Value};

use super::wire::{ActionIn, EntityIn};
use super::{ApiError, Caller};

/// The access request one evaluation asks for, in the caller's tenant.
pub(super) fn resolve(
    bundle: &Bundle,
    caller: &Caller,
    subject: &EntityIn,
    action: Option<&ActionIn>,
    resource: &EntityIn,
    context: Map<String, Value>,
) -> Result<AccessRequest, ApiError> {
    let principal = entity_uid(bundle, subject, "subject")?;
    let action = known_action(bundle, action)?;
    let resource = entity_uid(bundle, resource, "resource")?;
    let claimed = acting_for(subject)?;
    let request = AccessRequest::new(caller.tenant.clone(), principal, action, resource)
        .with_context(context);
    let mut request = if request.principal == caller.principal.uid {
        // What the caller's own credential says; a claim otherwise is checked by the
        // decision point against the agent's entity.
        let own = caller.principal.acting_for.clone();
        if claimed.is_some() && claimed != own {
            return Err(ApiError::bad(
                "delegation_mismatch",
                "subject.properties.acting_for differs from the caller's credential",
            ));
        }
        caller.as_own(request.acting_for(own))
    } else {
        request.acting_for(claimed)
    };
    request.context.remove("delegation");
    Ok(request)
}

impl Caller {
    /// The caller's own request for `action` on `resource`.
    pub(super) fn own_request(&self, action: EntityUid, resource: EntityUid) -> AccessRequest {
        let request = AccessRequest::new(
            self.tenant.clone(),
            self.principal.uid.clone(),
            action,
            resource,
        )
        .acting_for(self.principal.acting_for.clone());
        self.as_own(request)
    }

    /// A question about oneself is decided with what one's own credential established
    /// (MFA, the client address, the decision point's clock; no region), whatever the
    /// body claims.
    fn as_own(&self, mut request: AccessRequest) -> AccessRequest {
        request.context.remove("now");
        request.context.remove("region");
        request.established(self.principal.mfa, self.client_ip.as_deref())
    }
}

/// The schema's type for `entity.type`.
pub(super) fn entity_type(
    bundle: &Bundle,
    entity: &EntityIn,
    field: &str,
) -> Result<EntityTypeName, ApiError> {
    let kind = entity
        .kind
        .as_deref()
        .ok_or_else(|| ApiError::missing(&format!("{field}.type")))?;
    bundle.entity_type(kind).ok_or_else(|| {
        ApiError::bad(
            "unknown_entity_type",
            format!("{field}.type {kind:?} is not an entity type of the schema"),
        )
    })
}

pub(super) fn entity_uid(
    bundle: &Bundle,
    entity: &EntityIn,
    field: &str,
) -> Result<EntityUid, ApiError> {
    let kind = entity_type(bundle, entity, field)?;
    match entity.id.as_deref() {
        Some(id) if !id.is_empty() => Ok(EntityUid::from_type_name_and_id(kind, EntityId::new(id))),
        _ => Err(ApiError::missing(&format!("{field}.id"))),
    }
}

/// `subject.properties.acting_for`: a user id, or a uid such as `User::"acme-ed"`.
pub(super) fn acting_for(subject: &EntityIn) -> Result<Option<EntityUid>, ApiError> {
    let Some(value) = subject.properties.get("acting_for") else {
        return Ok(None);
    };
    let text = value.as_str().ok_or_else(|| {
        ApiError::bad(
            "bad_field",
            "subject.properties.acting_for must be a string",
        )
    })?;
    let uid = if text.contains("::") {
        text.parse().map_err(|_| {
            ApiError::bad(
                "bad_field",
                format!("acting_for {text:?} is not an entity uid"),
            )
        })?
    } else {
        uid::entity("User", text).map_err(|_| ApiError::bad("bad_field", "acting_for"))?
    };
    Ok(Some(uid))
}

pub(super) fn known_action(
    bundle: &Bundle,
    action: Option<&ActionIn>,
) -> Result<EntityUid, ApiError> {
    let name = action
        .and_then(|a| a.name.as_deref())
        .ok_or_else(|| ApiError::missing("action.name"))?;
    let id = match name.strip_prefix("Action::") {
        Some(quoted) => quoted.trim_matches('"'),
        None => name,
    };
    let action = uid::action(id);
    match bundle.action_entity(&action) {
        Some(_) => Ok(action),
        None => Err(ApiError::bad(
            "unknown_action",
            format!("the schema has no action {name:?}"),
        )),
    }
}
