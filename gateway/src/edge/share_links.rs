//! External share links as credentials: `Authorization: ShareLink <tenant>.<id>.<secret>`.
//!
//! The documents adapter creates a link and shows its token once, keeping only the
//! token's SHA-256. Presenting it makes the caller the principal `ShareLink::"<id>"` of
//! the link's tenant; what that principal may do (read its one document, until it
//! expires) is for the policies to say, like everything else.

use gatehouse_core::TenantId;
use gatehouse_pdp::uid;
use sha2::{Digest, Sha256};

use crate::edge::identity::{AuthError, Principal};
use crate::runtime::entity_store::Store;

/// The `Authorization` scheme of share links.
pub const SCHEME: &str = "ShareLink ";

/// The principal of the share link `token`.
///
/// # Errors
/// [`AuthError::InvalidToken`] for a malformed, unknown or expired link;
/// [`AuthError::Unavailable`] when the entity store cannot be asked (never an allow).
pub async fn authenticate(store: &Store, token: &str) -> Result<Principal, AuthError> {
    let invalid = |why: &str| AuthError::InvalidToken(why.to_string());
    let mut parts = token.trim().splitn(3, '.');
    let (Some(tenant), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("not a share link"));
    };
    if id.is_empty() || secret.is_empty() {
        return Err(invalid("not a share link"));
    }
    let tenant = TenantId::parse(tenant).map_err(|_| invalid("not a share link"))?;
    let Store::Postgres(entities) = store else {
        return Err(invalid("share links need the PostgreSQL entity store"));
    };
    let unavailable = |e: sqlx::Error| {
        tracing::warn!(target: "gatehouse::identity", tenant = tenant.as_str(), error = %e, "share links unavailable");
        AuthError::Unavailable
    };
    let pool = entities.pool().await.map_err(|_| AuthError::Unavailable)?;
    let mut tx = gatehouse_schemas::tenant_tx(pool, &tenant)
        .await
        .map_err(unavailable)?;
    let unexpired: Option<bool> = sqlx::query_scalar(
        "SELECT expires_at > now() FROM share_links WHERE tenant_id = $1 AND id = $2 AND token_sha256 = $3",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(format!("{:x}", Sha256::digest(token.trim().as_bytes())))
    .fetch_optional(&mut *tx)
    .await
    .map_err(unavailable)?;
    match unexpired {
        None => Err(invalid("unknown share link")),
        Some(false) => Err(invalid("expired share link")),
        Some(true) => Ok(Principal {
            uid: uid::entity("ShareLink", id).map_err(|_| invalid("not a share link"))?,
            acting_for: None,
            tenant: Some(tenant),
            mfa: false,
        }),
    }
}
