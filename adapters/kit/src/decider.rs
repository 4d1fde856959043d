//! Further decisions an adapter needs within one call: the gateway decided the call's own
//! action and resource; a move also touches its destination, a bulk call every item.

use async_trait::async_trait;

use crate::{AdapterError, Call};

/// Decides (and audits) one more action for the principal of an admitted call, with the
/// same tenant, principal, delegation and MFA as the call itself.
#[async_trait]
pub trait Decider: Send + Sync {
    /// `Ok` when allowed.
    ///
    /// # Errors
    /// [`AdapterError::Forbidden`] for a deny; [`AdapterError::Unavailable`] when no
    /// decision can be made (fail closed).
    async fn decide(
        &self,
        call: &Call,
        action: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<(), AdapterError>;

    /// Which of `ids` the principal may take `action` on, in order: a filter over items the
    /// call's own (audited) decision already covers, such as the hits of a search, so each
    /// is decided but not audited on its own.
    ///
    /// # Errors
    /// [`AdapterError::Unavailable`] when no decision can be made (fail closed).
    async fn permitted(
        &self,
        call: &Call,
        action: &str,
        resource_type: &str,
        ids: &[String],
    ) -> Result<Vec<bool>, AdapterError>;
}
