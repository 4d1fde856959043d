//! Gatehouse's audit log.
//!
//! - [`AuditRecord`]: one decision, allow or deny, with everything needed to answer "who
//!   did or tried what, decided by which policies of which bundle".
//! - [`AuditStore`]: the PostgreSQL table (`schemas/sql/0001_audit.sql`, applied by
//!   `gatehouse_schemas::migrate`): append-only for
//!   the application role and guarded by triggers; each tenant's records form a hash chain
//!   (`hash = sha256(prev_hash || canonical record)`), so [`AuditStore::verify`] finds any
//!   record that was changed, removed or inserted afterwards. Queries by tenant,
//!   principal, action, resource, decision, policy and time.
//! - [`checkpoint`]: the head of each chain, signed with a key the database never sees and
//!   kept outside it, so that even a superuser's rewrite of the table is detected.
//! - [`Spooler`]: makes records durable in a local spool file, synced once for many
//!   requests (group commit), and tells requests when theirs are ([`Receipt`]).
//! - [`AuditWorker`]: writes the spool to the store from a background task, never holding
//!   up the spooler; while PostgreSQL is unreachable or stalled, the spool grows and is
//!   written, in order and exactly once, when it is back.

pub mod checkpoint;
mod database;
mod record;
mod spooler;
mod writer;

pub use database::{AuditError, AuditQuery, AuditStore, StoredRecord, VerifyReport};
pub use record::{AuditRecord, GENESIS_HASH, chain_hash};
pub use spooler::{
    AuditWriter, Durability, NotDurable, Receipt, SEGMENT_BYTES, SpoolOptions, Spooled, Spooler,
};
pub use writer::{AuditWorker, WriterConfig, drain_spool};
