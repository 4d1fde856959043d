//! Gatehouse's blob adapter: document contents encrypted per tenant before they reach any
//! S3 store.
//!
//! Three keys ([`envelope`]): a master key from configuration wraps one key per tenant;
//! each tenant key wraps a fresh data key per object; the data key encrypts the object in
//! 64 KiB chunks (AES-256-GCM, the STREAM construction), so objects of any size are
//! sealed and opened in constant memory, and a changed, dropped, reordered or appended
//! chunk, or a chunk of another object, is detected. The object's header names its tenant
//! key and carries its wrapped data key; the tenant and the object key are authenticated
//! too. Destroying a tenant's key makes every object of that tenant unreadable, backups
//! included (crypto-shredding), whatever the S3 server does.

pub mod api;
pub mod envelope;
pub mod keys;
pub mod local_s3;
pub mod object_store;
pub mod sealed;

pub use envelope::{EnvelopeError, Header, MasterKey, Opener, Sealer, TenantKey};
pub use keys::{KeyError, KeyRing};
pub use object_store::{BlobStore, S3Settings, StoreError, object_key};
pub use sealed::BlobError;
