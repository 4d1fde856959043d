//! The audit record and its hash.

use gatehouse_core::TenantId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of a tenant's first record.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// One decision, as audited. Field order is the canonical order: the record's canonical
/// form is its JSON serialization, which is what the hash chain covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The decision id (a UUID).
    pub id: String,
    /// When it was decided, UTC microseconds since 1970 (a number, not a time zone's text).
    pub time_us: i64,
    /// The W3C trace id.
    pub trace_id: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The principal's Cedar uid.
    pub principal: String,
    /// For an agent: the user it acts for.
    pub acting_for: Option<String>,
    /// The Cedar action uid.
    pub action: String,
    /// The Cedar resource uid.
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// The policies that determined the decision.
    pub determining_policies: Vec<String>,
    /// Error codes and messages, when the decision could not be made normally.
    pub errors: Vec<String>,
    /// The bundle's version.
    pub bundle_version: String,
    /// The bundle's content hash.
    pub bundle_hash: String,
    /// Decision latency in microseconds.
    pub latency_us: u64,
    /// The client's IP address.
    pub client_ip: Option<String>,
    /// The route pattern (or the reason no route applied).
    pub route: String,
    /// Who asked, when that is not the principal: a caller of the decision API asking
    /// about someone else. Absent otherwise (and in records from before it existed, whose
    /// canonical form is therefore unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_by: Option<String>,
}

impl AuditRecord {
    /// The canonical bytes: the JSON serialization, fields in declaration order.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("an audit record always serializes")
    }
}

/// `sha256(prev_hash || canonical)`.
pub fn chain_hash(prev_hash: &[u8], canonical: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(id: &str) -> AuditRecord {
        AuditRecord {
            id: id.into(),
            time_us: 1_795_000_000_000_000,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            tenant: TenantId::parse("acme").unwrap(),
            principal: r#"User::"acme-vera""#.into(),
            acting_for: None,
            action: r#"Action::"document:read""#.into(),
            resource: r#"Document::"acme-plan""#.into(),
            decision: "allow".into(),
            determining_policies: vec!["role-viewer".into()],
            errors: vec![],
            bundle_version: "1.0.0".into(),
            bundle_hash: "sha256:00".into(),
            latency_us: 20,
            client_ip: Some("127.0.0.1".into()),
            route: "/documents/{id}".into(),
            asked_by: None,
        }
    }

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let a = record("01a209a6-9488-78ed-b0b8-25bd9fc4fdf7");
        let h = chain_hash(&GENESIS_HASH, &a.canonical());
        assert_eq!(
            h,
            chain_hash(&GENESIS_HASH, &a.clone().canonical()),
            "deterministic"
        );
        let mut b = a.clone();
        b.decision = "deny".into();
        assert_ne!(h, chain_hash(&GENESIS_HASH, &b.canonical()));
        assert_ne!(h, chain_hash(&h, &a.canonical()));
        let back: AuditRecord = serde_json::from_str(&a.canonical()).unwrap();
        assert_eq!(back, a);
        assert!(
            !a.canonical().contains("asked_by"),
            "absent, as in older records"
        );
        let mut asked = a.clone();
        asked.asked_by = Some(r#"User::"acme-ada""#.into());
        assert_ne!(h, chain_hash(&GENESIS_HASH, &asked.canonical()));
    }
}
