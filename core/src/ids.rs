//! Identifiers Gatehouse mints.

/// A new decision id: a UUIDv7 (48 bits of Unix milliseconds, then random), so ids sort by
/// time and never repeat. The same id names the audit record and the forwarded context.
pub fn new_decision_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_ids_are_uuid_v7_and_ordered() {
        let a = new_decision_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_decision_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7", "{a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert!(a < b);
    }
}
