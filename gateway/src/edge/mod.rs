//! The steps of the request path before the decision, each in its own module, in the
//! order [`crate::proxy`] takes them: the trace ([`trace`]), the credential
//! ([`identity`], [`share_links`]), the tenant ([`tenant`]) and its admission (known, not
//! over its rate: [`admission`]), and the route ([`routes`]: method and path to a Cedar
//! action, resource and upstream).

pub mod admission;
pub mod identity;
pub mod routes;
pub mod share_links;
pub mod tenant;
pub mod trace;
