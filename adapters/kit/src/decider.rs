//! Further decisions an adapter needs within one call: the gateway decided the call's own
//! action and resource; a move also touches its destination, a bulk call every item.

use async_trait::async_trait;

use gatehouse_core::filter::Filter;

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

    /// Which resources of `resource_type` the principal may take `action` on, as a filter
    /// for the adapter's own queries (see [`gatehouse_core::filter`]); `None` when the
    /// policies leave a condition no filter expresses, and the adapter must decide item by
    /// item with [`Decider::permitted`] instead.
    ///
    /// # Errors
    /// [`AdapterError::Unavailable`] when no filter can be made (fail closed).
    async fn filter(
        &self,
        call: &Call,
        action: &str,
        resource_type: &str,
    ) -> Result<Option<Filter>, AdapterError>;

    /// Whether this page should be checked item by item after filtering (production
    /// samples pages; tests check every one).
    fn sample_postcheck(&self) -> bool;

    /// What happened to a filter, for metrics and the audit log.
    async fn report(&self, call: &Call, event: FilterEvent);
}

/// What an adapter tells the decision point about a filter it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterEvent {
    /// The filter could not be used (the decision point or the adapter could not express
    /// it) and the adapter decided item by item instead.
    Fallback {
        /// The adapter.
        adapter: &'static str,
        /// Why.
        reason: String,
    },
    /// A post-check found an item the filter let through but the decision point denies:
    /// the item was withheld. Audited as a deny.
    Mismatch {
        /// The action.
        action: String,
        /// The resource type.
        resource_type: String,
        /// The item.
        id: String,
    },
}
