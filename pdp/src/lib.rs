//! Gatehouse's policy decision point (PDP), as a library.
//!
//! The pieces, in the order a request meets them:
//!
//! - [`Bundle`]: the policies, the schema and the template links, loaded from a directory
//!   with a manifest (`bundle.toml`), strictly validated, and identified by a version and
//!   a content hash. An invalid bundle is refused with [`BundleError`], whose problems name
//!   the file, the line and the policy.
//! - [`CurrentBundle`]: the bundle that decides right now, swapped atomically on reload;
//!   a refused bundle leaves the previous one serving.
//! - [`AccessRequest`]: who (a user, an agent, a share link) wants to do what to which
//!   resource, in which tenant and context; its uids are built with [`uid`].
//! - [`EntityStore`]: where the principal, the resource and their ancestors come from;
//!   [`MemoryStore`] keeps them in memory.
//! - [`Pdp`]: decides. A request by an agent is decided twice, for the agent and for the
//!   user it acts for, and allowed only if both are. Anything missing or broken (an unknown
//!   principal, a policy that errors, an unreachable store) is a deny, never an allow.
//! - [`Decision`]: the answer, with the determining policies, the errors, the bundle that
//!   decided and how long it took.
//! - [`ResourceFilter`]: for lists and searches, which resources of a type a principal may
//!   act on, as a [`gatehouse_core::filter::Filter`] the adapters turn into queries.

mod bundle;
mod current;
mod decision;
mod engine;
mod entity_store;
mod request;
mod resource_filter;
mod slices;
pub mod uid;

pub use bundle::{Bundle, BundleError, BundleId, Manifest, PolicySource, Problem};
pub use current::CurrentBundle;
pub use decision::{Decision, DecisionError, DelegatedDecision, Effect, LegDecision};
pub use engine::Pdp;
pub use entity_store::{EntityStore, MemoryStore, StoreError, tenant_of};
pub use request::{AccessRequest, RequestError};
pub use resource_filter::{ResourceFilter, ResourceQuery};

/// The Cedar types that appear in this crate's API.
pub use cedar_policy::{Entity, EntityUid};
