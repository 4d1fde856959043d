//! Cedar entity uids, built one way: from a type and an id (never by formatting text),
//! or parsed from Cedar's text with an error naming the field.

use std::str::FromStr;
use std::sync::LazyLock;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use gatehouse_core::TenantId;

use crate::RequestError;

// Parsing a type name runs Cedar's parser: the fixed ones are parsed once.
static ACTION: LazyLock<EntityTypeName> = LazyLock::new(|| fixed_type("Action"));
static TENANT: LazyLock<EntityTypeName> = LazyLock::new(|| fixed_type("Tenant"));

fn fixed_type(name: &str) -> EntityTypeName {
    // INVARIANT: only called with the plain identifiers above.
    name.parse().expect("a valid entity type name")
}

/// `Action::"id"`, e.g. `action("document:read")`.
pub fn action(id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ACTION.clone(), EntityId::new(id))
}

/// The `Tenant` entity of a tenant.
pub fn tenant(tenant: &TenantId) -> EntityUid {
    EntityUid::from_type_name_and_id(TENANT.clone(), EntityId::new(tenant.as_str()))
}

/// `entity_type::"id"`.
///
/// # Errors
/// [`RequestError::BadType`] when `entity_type` is not a Cedar type name.
pub fn entity(entity_type: &str, id: &str) -> Result<EntityUid, RequestError> {
    let type_name = EntityTypeName::from_str(entity_type).map_err(|_| RequestError::BadType {
        value: entity_type.to_string(),
    })?;
    Ok(EntityUid::from_type_name_and_id(
        type_name,
        EntityId::new(id),
    ))
}

/// Parses an entity uid such as `User::"alice"`.
///
/// # Errors
/// [`RequestError::BadUid`] naming `field`.
pub fn parse(field: &'static str, value: &str) -> Result<EntityUid, RequestError> {
    EntityUid::from_str(value).map_err(|_| RequestError::BadUid {
        field,
        value: value.to_string(),
    })
}

/// Parses an action given as `document:read` or `Action::"document:read"`.
///
/// # Errors
/// [`RequestError::BadUid`] for a uid that does not parse.
pub fn parse_action(value: &str) -> Result<EntityUid, RequestError> {
    if value.contains("::") {
        parse("action", value)
    } else {
        Ok(action(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_uids_print_as_cedar_and_as_core_writes_them() {
        let acme = TenantId::parse("acme").unwrap();
        assert_eq!(tenant(&acme).to_string(), r#"Tenant::"acme""#);
        assert_eq!(
            action("document:read").to_string(),
            r#"Action::"document:read""#
        );
        let odd = entity("Document", "x\"y").unwrap();
        assert_eq!(
            odd.to_string(),
            gatehouse_core::uid::uid_text("Document", "x\"y")
        );
        assert_eq!(
            parse_action("document:read").unwrap(),
            action("document:read")
        );
        assert_eq!(
            parse_action(r#"Action::"document:read""#).unwrap(),
            action("document:read")
        );
        assert!(entity("Not A Type", "x").is_err());
        assert!(parse("principal", "User::alice").is_err());
    }
}
