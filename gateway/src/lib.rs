//! The `gatehouse` server: a Pingora reverse proxy that decides every request with Cedar
//! before it reaches an upstream.
//!
//! A request goes through the phases of [`proxy::Gateway`], in order:
//! 1. **tenant** ([`tenant`]): from the host's subdomain or the credential's claim; both
//!    present and different is a 403;
//! 2. **principal** ([`identity`]): a verified JWT (user or agent acting for a user), a
//!    tenant API key, or an external share link ([`share_links`]);
//! 3. **route** ([`routes`]): method and path to a Cedar action, resource and upstream; no
//!    route, no passage;
//! 4. **decide**: the decision point ([`gatehouse_pdp`]); a deny is a 403 JSON error with
//!    the decision id, a decision that cannot be made a 503;
//! 5. **forward**: the allowed request goes upstream with a signed context header
//!    ([`gatehouse_core::forwarded`]) and the W3C `traceparent` ([`trace`]);
//! 6. **audit**: every decision becomes a record in the hash-chained audit log
//!    ([`gatehouse_audit`]), written in batches by [`database::AuditService`].
//!
//! The decision point also answers questions over HTTP ([`pdp_api`]: AuthZEN and
//! Gatehouse's own endpoints), for agent runtimes and apps that enforce for themselves.
//!
//! The data adapters ([`adapters`]) can run in the same process, behind the same phases.

pub mod adapters;
pub mod config;
pub mod database;
pub mod echo;
pub mod entities;
pub mod identity;
pub mod metrics;
pub mod pdp_api;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod share_links;
pub mod tenant;
pub mod tenants;
pub mod tiny_http;
pub mod trace;
