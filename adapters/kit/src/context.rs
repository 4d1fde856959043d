//! Admitting a call: the gateway's signed context, checked by the adapter itself.

use std::time::Duration;

use axum::http::HeaderMap;
use gatehouse_core::TenantId;
use gatehouse_core::forwarded::{CONTEXT_HEADER, ContextVerifier, ForwardedContext};
use gatehouse_core::uid::{uid_id, uid_text};

use crate::AdapterError;

/// Contexts remembered against replay: far more than an adapter serves in one context
/// lifetime. Past it the oldest are forgotten (and are by then near expiry anyway).
const REMEMBERED_CONTEXTS: u64 = 1_000_000;

/// Checks the gateway's signed context on every call: signature, expiry, and that it was
/// never used before (each context is for exactly one forwarded request).
pub struct ContextGuard {
    verifier: ContextVerifier,
    seen: moka::sync::Cache<String, ()>,
}

impl ContextGuard {
    /// A guard for contexts verified by `verifier` and valid for at most `lifetime`.
    pub fn new(verifier: ContextVerifier, lifetime: Duration) -> Self {
        Self {
            verifier,
            seen: moka::sync::Cache::builder()
                .max_capacity(REMEMBERED_CONTEXTS)
                // Kept a little longer than a context lives, so it expires first.
                .time_to_live(lifetime + Duration::from_secs(5))
                .build(),
        }
    }

    /// The call described by the context in `headers`.
    ///
    /// # Errors
    /// [`AdapterError::ContextMissing`], [`AdapterError::ContextInvalid`] (forged,
    /// altered, expired) or [`AdapterError::ContextReplayed`].
    pub fn admit(&self, headers: &HeaderMap) -> Result<Call, AdapterError> {
        let token = headers
            .get(CONTEXT_HEADER)
            .ok_or(AdapterError::ContextMissing)?
            .to_str()
            .map_err(|_| AdapterError::ContextInvalid)?;
        let context = self.verifier.verify(token).map_err(|e| {
            tracing::warn!(target: "gatehouse::adapter", error = %e, "refused a gateway context");
            AdapterError::ContextInvalid
        })?;
        let first_use = self
            .seen
            .entry(context.decision_id.clone())
            .or_insert(())
            .is_fresh();
        if !first_use {
            tracing::warn!(target: "gatehouse::adapter", tenant = context.tenant.as_str(), decision_id = context.decision_id, "refused a replayed gateway context");
            return Err(AdapterError::ContextReplayed);
        }
        Ok(Call { context })
    }
}

/// An admitted call: what the gateway decided, for whom, in which tenant.
#[derive(Debug, Clone)]
pub struct Call {
    context: ForwardedContext,
}

impl Call {
    /// The tenant: the only one whose rows this call's queries may see.
    pub fn tenant(&self) -> &TenantId {
        &self.context.tenant
    }

    /// The whole context.
    pub fn context(&self) -> &ForwardedContext {
        &self.context
    }

    /// Checks that the gateway decided exactly `action` on `resource_type::"id"`: a context
    /// for reading one document cannot be used to delete another.
    ///
    /// # Errors
    /// [`AdapterError::ContextMismatch`].
    pub fn expect(&self, action: &str, resource_type: &str, id: &str) -> Result<(), AdapterError> {
        let action_matches = self.context.action == uid_text("Action", action);
        let resource_matches = self.context.resource == uid_text(resource_type, id);
        if action_matches && resource_matches {
            Ok(())
        } else {
            tracing::warn!(
                target: "gatehouse::adapter",
                tenant = self.tenant().as_str(),
                decided_action = self.context.action,
                decided_resource = self.context.resource,
                action,
                resource_type,
                "a gateway context used for another call"
            );
            Err(AdapterError::ContextMismatch)
        }
    }

    /// The user the call is made for: the principal, or for an agent the user it acts for.
    ///
    /// # Errors
    /// [`AdapterError::ContextInvalid`] when the context names no user.
    pub fn user_id(&self) -> Result<&str, AdapterError> {
        let user = self
            .context
            .acting_for
            .as_deref()
            .unwrap_or(&self.context.principal);
        uid_id(user, "User").ok_or(AdapterError::ContextInvalid)
    }

    /// The principal's uid, e.g. `User::"acme-vera"` or `Agent::"acme-helper"`.
    pub fn principal(&self) -> &str {
        &self.context.principal
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use axum::http::HeaderValue;
    use gatehouse_core::forwarded::ContextSigner;

    use super::*;

    fn context(decision_id: &str) -> ForwardedContext {
        ForwardedContext {
            tenant: TenantId::parse("acme").unwrap(),
            principal: uid_text("Agent", "acme-helper"),
            acting_for: Some(uid_text("User", "acme-vera")),
            action: uid_text("Action", "document:read"),
            resource: uid_text("Document", "acme-plan"),
            decision_id: decision_id.into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            mfa: false,
            source_ip: None,
        }
    }

    fn headers(signer: &ContextSigner, context: &ForwardedContext) -> HeaderMap {
        let token = signer.sign(context, SystemTime::now()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(CONTEXT_HEADER, HeaderValue::from_str(&token).unwrap());
        headers
    }

    #[test]
    fn a_context_is_admitted_once_and_only_for_its_own_call() {
        let signer = ContextSigner::generate_secret(Duration::from_secs(30));
        let guard = ContextGuard::new(signer.verifier().unwrap(), Duration::from_secs(30));
        let sent = headers(&signer, &context("d-1"));
        let call = guard.admit(&sent).unwrap();
        assert_eq!(call.user_id().unwrap(), "acme-vera", "an agent's user");
        call.expect("document:read", "Document", "acme-plan")
            .unwrap();
        let mismatch = [
            ("document:delete", "Document", "acme-plan"),
            ("document:read", "Document", "acme-other"),
            ("document:read", "Folder", "acme-plan"),
        ];
        for (action, kind, id) in mismatch {
            assert_eq!(
                call.expect(action, kind, id).unwrap_err().code(),
                "context_mismatch"
            );
        }
        assert_eq!(guard.admit(&sent).unwrap_err().code(), "context_replayed");
        assert!(guard.admit(&headers(&signer, &context("d-2"))).is_ok());
    }

    #[test]
    fn missing_forged_and_expired_contexts_are_refused() {
        let signer = ContextSigner::generate_secret(Duration::from_secs(30));
        let guard = ContextGuard::new(signer.verifier().unwrap(), Duration::from_secs(30));
        assert_eq!(
            guard.admit(&HeaderMap::new()).unwrap_err().code(),
            "context_missing"
        );
        let forger = ContextSigner::generate_secret(Duration::from_secs(30));
        let forged = headers(&forger, &context("d-3"));
        assert_eq!(guard.admit(&forged).unwrap_err().code(), "context_invalid");
        let old = signer
            .sign(&context("d-4"), SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        let mut expired = HeaderMap::new();
        expired.insert(CONTEXT_HEADER, HeaderValue::from_str(&old).unwrap());
        assert_eq!(guard.admit(&expired).unwrap_err().code(), "context_invalid");
    }
}
