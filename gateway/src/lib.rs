//! The `gatehouse` server: a Pingora reverse proxy that decides every request with Cedar
//! before it reaches an upstream.
//!
//! Read it in the order a request meets it:
//!
//! - [`proxy`]: the request path, as the phases of one Pingora `ProxyHttp`
//!   implementation. Each phase calls into the module that owns its step:
//!   - `edge`: the steps before the decision: the **tenant** (from the host's subdomain
//!     or the credential's claim; both present and different is a 403), the
//!     **principal** (a verified JWT, a tenant API key or a share link), the tenant's
//!     **admission** (known, within its rate), the **route** (method and path to a Cedar
//!     action, resource and upstream; no route, no passage) and the **trace**;
//!   - `authorize`: **decide and audit**. Every decision Gatehouse makes, the edge's,
//!     the decision API's and the in-process adapters' further ones, goes through
//!     `authorize::Authorizer`: the decision point ([`gatehouse_pdp`]) decides, the
//!     decision gets an id and a record in the hash-chained audit log
//!     ([`gatehouse_audit`]), and it is counted;
//!   - **forward**: an allowed request goes upstream with a signed context
//!     ([`gatehouse_core::forwarded`]) and the W3C `traceparent`; a refused one gets the
//!     one JSON error envelope (`refusal`).
//! - `decision_api`: the decision point's own HTTP API (AuthZEN and Gatehouse's
//!   endpoints), for agent runtimes and apps that enforce for themselves.
//! - `runtime`: the wiring: building the gateway from its [`config`] and running it
//!   ([`run`]), the database, the entity store, the in-process adapter services, hot
//!   reload, the demo upstream; `metrics` holds the Prometheus counters.
//!
//! The public surface is what the `gatehouse` binary and the benches use.

mod authorize;
pub mod config;
mod decision_api;
mod edge;
mod metrics;
mod proxy;
mod refusal;
mod runtime;

pub use edge::identity::dev_token;
pub use runtime::adapters::EXTRACT_COMMAND;
pub use runtime::server::{add_proxy_workers, check, run};
