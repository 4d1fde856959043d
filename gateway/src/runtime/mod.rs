//! The gateway's wiring: building it from its configuration and running it under Pingora
//! ([`server`]), the database ([`database`]: the private cluster, migrations, the audit
//! writer), the entity store ([`entity_store`]), the in-process adapter services
//! ([`adapters`]), hot reload ([`reload`]) and the small HTTP services (the demo
//! upstream [`echo`], over [`tiny_http`]).

pub mod adapters;
pub mod database;
pub mod echo;
pub mod entity_store;
pub mod reload;
pub mod server;
pub mod tiny_http;
