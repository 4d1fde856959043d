//! Which tenant a request belongs to: from the host name or the credential, never from
//! the query, the body or a header the client chooses.

use gatehouse_core::TenantId;

/// Why no tenant could be fixed for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// Neither the host nor the credential names a tenant.
    #[error("the request names no tenant")]
    Missing,
    /// The host names one tenant and the credential another.
    #[error("the host's tenant and the credential's tenant differ")]
    Mismatch,
    /// The host's tenant label is not a valid tenant id.
    #[error("the host name does not name a valid tenant")]
    BadHost,
}

impl TenantError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "tenant_missing",
            Self::Mismatch => "tenant_mismatch",
            Self::BadHost => "tenant_invalid",
        }
    }
}

/// The tenant named by `host` (`<tenant>.<base_domain>[:port]`), if any.
///
/// # Errors
/// [`TenantError::BadHost`] when the label before the base domain is not a tenant id.
pub fn from_host(
    host: Option<&str>,
    base_domain: Option<&str>,
) -> Result<Option<TenantId>, TenantError> {
    let (Some(host), Some(base)) = (host, base_domain) else {
        return Ok(None);
    };
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let Some(label) = host.strip_suffix(base).and_then(|l| l.strip_suffix('.')) else {
        return Ok(None);
    };
    TenantId::parse(label)
        .map(Some)
        .map_err(|_| TenantError::BadHost)
}

/// The request's tenant: the host's and the credential's must agree when both exist.
///
/// # Errors
/// [`TenantError::Mismatch`] or [`TenantError::Missing`].
pub fn resolve(
    from_host: Option<TenantId>,
    from_credential: Option<TenantId>,
) -> Result<TenantId, TenantError> {
    match (from_host, from_credential) {
        (Some(h), Some(c)) if h != c => Err(TenantError::Mismatch),
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => Err(TenantError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn the_host_names_the_tenant_below_the_base_domain() {
        let base = Some("gatehouse.localhost");
        assert_eq!(
            from_host(Some("acme.gatehouse.localhost"), base),
            Ok(Some(t("acme")))
        );
        assert_eq!(
            from_host(Some("ACME.gatehouse.localhost:8080"), base),
            Ok(Some(t("acme")))
        );
        assert_eq!(from_host(Some("gatehouse.localhost"), base), Ok(None));
        assert_eq!(from_host(Some("acme.evil.example"), base), Ok(None));
        assert_eq!(
            from_host(Some("a.b.gatehouse.localhost"), base),
            Err(TenantError::BadHost)
        );
        assert_eq!(from_host(Some("acme.gatehouse.localhost"), None), Ok(None));
    }

    #[test]
    fn host_and_credential_must_agree() {
        assert_eq!(resolve(Some(t("acme")), Some(t("acme"))), Ok(t("acme")));
        assert_eq!(resolve(None, Some(t("acme"))), Ok(t("acme")));
        assert_eq!(resolve(Some(t("acme")), None), Ok(t("acme")));
        assert_eq!(
            resolve(Some(t("acme")), Some(t("globex"))),
            Err(TenantError::Mismatch)
        );
        assert_eq!(resolve(None, None), Err(TenantError::Missing));
    }
}
