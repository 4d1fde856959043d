//! Cedar entity uids as text, for the layers that carry them without Cedar (the forwarded
//! context, the adapters). The decision point builds typed uids
//! (`gatehouse_pdp::uid`); both print the same text.

/// `Type::"id"`, the id escaped as Cedar prints it.
pub fn uid_text(entity_type: &str, id: &str) -> String {
    format!("{entity_type}::\"{}\"", id.escape_debug())
}

/// The id of `uid` if it is an `entity_type::"id"` with nothing escaped in the id.
pub fn uid_id<'a>(uid: &'a str, entity_type: &str) -> Option<&'a str> {
    let id = uid
        .strip_prefix(entity_type)?
        .strip_prefix("::\"")?
        .strip_suffix('"')?;
    (!id.contains(['"', '\\'])).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_escaped_and_escaped_ids_are_not_taken_apart() {
        assert_eq!(uid_text("Document", "x\"y"), r#"Document::"x\"y""#);
        assert_eq!(uid_id(r#"User::"a-b""#, "User"), Some("a-b"));
        assert_eq!(uid_id(r#"User::"a\"b""#, "User"), None);
        assert_eq!(uid_id(r#"Agent::"a""#, "User"), None);
    }
}
