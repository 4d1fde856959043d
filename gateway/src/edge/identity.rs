//! Who is calling: bearer tokens (JWT) and tenant API keys.
//!
//! Tokens are verified against the identity provider's JWKS (RS256, ES256, EdDSA), with
//! issuer, audience, expiry and not-before checks. HS256 with a shared secret exists for
//! development only and must be switched on. A token's algorithm must be the one of the
//! key it names, so an RS256 public key can never be used as an HS256 secret, and
//! `alg: none` is not an algorithm here at all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cedar_policy::EntityUid;
use gatehouse_core::TenantId;
use gatehouse_core::forwarded::MIN_SECRET_BYTES;
use gatehouse_core::secret_file::create_secret_file;
use gatehouse_core::time::now_unix_seconds;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{ApiKeyConfig, ConfigError, IdentityConfig};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `User::"…"` or, for an agent token, `Agent::"…"`.
    pub uid: EntityUid,
    /// For an agent: the user it acts for (the token's `sub`).
    pub acting_for: Option<EntityUid>,
    /// The tenant the credential names, if any.
    pub tenant: Option<TenantId>,
    /// The session passed a second factor (`amr` contains `mfa`).
    pub mfa: bool,
}

/// Why a credential was refused. Shown to clients only as a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header and no API key.
    #[error("missing credentials")]
    Missing,
    /// Not a usable token: bad signature, wrong algorithm, expired, wrong audience, ….
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// An API key that is not known.
    #[error("invalid API key")]
    InvalidApiKey,
    /// The credential cannot be checked now (its store is down): never an allow.
    #[error("credentials cannot be checked right now")]
    Unavailable,
}

impl AuthError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_credentials",
            Self::InvalidToken(_) => "invalid_token",
            Self::InvalidApiKey => "invalid_api_key",
            Self::Unavailable => "identity_unavailable",
        }
    }

    /// The HTTP status: 401, or 503 when the credential could not be checked.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unavailable => 503,
            _ => 401,
        }
    }
}

/// The claims Gatehouse reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    amr: Vec<String>,
    #[serde(flatten)]
    rest: HashMap<String, serde_json::Value>,
}

/// Verifies credentials.
pub struct Authenticator {
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
    validation: Validation,
    tenant_claim: String,
    max_lifetime: u64,
    api_keys: HashMap<String, (TenantId, EntityUid)>,
    verified: moka::sync::Cache<Box<str>, Arc<Verified>>,
}

/// A token that passed verification: clients send the same token on every request, so
/// its signature is checked once and the token is then recognised by its exact text. Its
/// validity window is checked again on every use.
#[derive(Debug)]
struct Verified {
    principal: Principal,
    not_before: Option<u64>,
    expires: u64,
}

/// Verified tokens kept: enough for every active session of a large gateway, at well
/// under a kilobyte each.
const VERIFIED_TOKENS: u64 = 50_000;
/// A verified token is verified again at least this often (and never used past `exp`).
const VERIFIED_FOR: Duration = Duration::from_secs(300);

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the verifier from the identity configuration and the API keys.
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable JWKS, an unsupported key or a bad API key entry.
    pub fn new(
        config: &IdentityConfig,
        tenant_claim: &str,
        api_keys: &[ApiKeyConfig],
    ) -> Result<Self, ConfigError> {
        let mut keys = Vec::new();
        if let Some(path) = &config.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Invalid(format!("jwks_file {}: {e}", path.display())))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| ConfigError::Invalid(format!("jwks_file {}: {e}", path.display())))?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| ConfigError::Invalid(format!("jwks key: {e}")))?;
                let alg = key_algorithm(jwk)?;
                keys.push((jwk.common.key_id.clone(), alg, key));
            }
        }
        if let Some(secret) = hs256_secret(config)? {
            keys.push((
                None,
                Algorithm::HS256,
                DecodingKey::from_secret(secret.as_bytes()),
            ));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.leeway = config.leeway_seconds;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut by_hash = HashMap::new();
        for k in api_keys {
            let tenant =
                TenantId::parse(&k.tenant).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            let uid: EntityUid = k
                .principal
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("api_key principal: {e}")))?;
            by_hash.insert(k.sha256.to_ascii_lowercase(), (tenant, uid));
        }
        Ok(Self {
            keys,
            validation,
            tenant_claim: tenant_claim.to_string(),
            max_lifetime: config.max_token_lifetime_seconds,
            api_keys: by_hash,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                .time_to_live(VERIFIED_FOR)
                .build(),
        })
    }

    /// Authenticates a request from its `Authorization` and `X-Api-Key` headers.
    ///
    /// # Errors
    /// [`AuthError`] when no credential is given or the one given is not valid.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<Principal, AuthError> {
        if let Some(key) = api_key {
            return self.api_key(key);
        }
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or(AuthError::Missing)?;
        self.token(token.trim(), now_unix_seconds())
    }

    fn api_key(&self, key: &str) -> Result<Principal, AuthError> {
        let digest = format!("{:x}", Sha256::digest(key.as_bytes()));
        let (tenant, uid) = self.api_keys.get(&digest).ok_or(AuthError::InvalidApiKey)?;
        Ok(Principal {
            uid: uid.clone(),
            acting_for: None,
            tenant: Some(tenant.clone()),
            mfa: false,
        })
    }

    /// The principal of `token` at time `now` (Unix seconds): from the verified tokens
    /// while its window holds, else verified in full.
    fn token(&self, token: &str, now: u64) -> Result<Principal, AuthError> {
        if let Some(verified) = self.verified.get(token) {
            let leeway = self.validation.leeway;
            let started = verified.not_before.is_none_or(|nbf| nbf <= now + leeway);
            let ended = verified.expires.saturating_add(leeway) < now;
            return if started && !ended {
                Ok(verified.principal.clone())
            } else {
                Err(AuthError::InvalidToken(
                    "token expired or not yet valid".into(),
                ))
            };
        }
        let verified = self.verify(token, now)?;
        let principal = verified.principal.clone();
        self.verified.insert(token.into(), Arc::new(verified));
        Ok(principal)
    }

    fn verify(&self, token: &str, now: u64) -> Result<Verified, AuthError> {
        let invalid = |m: String| AuthError::InvalidToken(m);
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        let (_, alg, key) = self
            .keys
            .iter()
            .find(|(kid, alg, _)| *alg == header.alg && (kid.is_none() || *kid == header.kid))
            .ok_or_else(|| invalid(format!("no key for algorithm {:?}", header.alg)))?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![*alg];
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| invalid(e.to_string()))?
            .claims;
        // From when it says it was issued, or from now if that is later: a token cannot
        // stretch its validity by claiming to be issued in the future.
        let issued = claims.iat.map_or(now, |iat| iat.min(now));
        let lifetime = claims.exp.saturating_sub(issued);
        if lifetime > self.max_lifetime {
            return Err(invalid(format!(
                "the token is valid for {lifetime} s, longer than the {} s allowed",
                self.max_lifetime
            )));
        }
        let tenant = match claims.rest.get(&self.tenant_claim) {
            None if self.tenant_claim.is_empty() => None,
            None => {
                let claim = &self.tenant_claim;
                return Err(invalid(format!("the token has no `{claim}` claim")));
            }
            Some(serde_json::Value::String(t)) => {
                Some(TenantId::parse(t).map_err(|e| invalid(e.to_string()))?)
            }
            Some(_) => return Err(invalid("the tenant claim is not a string".into())),
        };
        let user = uid("User", &claims.sub);
        let (principal, acting_for) = match claims.agent {
            Some(agent) => (uid("Agent", &agent), Some(user)),
            None => (user, None),
        };
        Ok(Verified {
            principal: Principal {
                uid: principal,
                acting_for,
                tenant,
                mfa: claims.amr.iter().any(|m| m == "mfa"),
            },
            not_before: claims.nbf,
            expires: claims.exp,
        })
    }
}

/// A development token: HS256 with development mode's secret (or the configured one),
/// valid for an hour.
///
/// # Errors
/// [`ConfigError`] unless development mode or `allow_hs256` is on.
pub fn dev_token(
    config: &IdentityConfig,
    tenant_claim: &str,
    user: &str,
    tenant: &str,
    agent: Option<&str>,
    mfa: bool,
) -> Result<String, ConfigError> {
    let Some(secret) = hs256_secret(config)? else {
        return Err(ConfigError::Invalid(
            "dev tokens need identity.development = true (or allow_hs256)".into(),
        ));
    };
    let now = now_unix_seconds();
    let mut claims = serde_json::json!({
        "iss": config.issuer, "aud": config.audience, "sub": user,
        "iat": now, "exp": now + 3600,
    });
    if !tenant_claim.is_empty() {
        claims[tenant_claim] = tenant.into();
    }
    if let Some(agent) = agent {
        claims["agent"] = agent.into();
    }
    if mfa {
        claims["amr"] = serde_json::json!(["pwd", "mfa"]);
    }
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|e| ConfigError::Invalid(e.to_string()))
}

/// The secret HS256 tokens may be signed with: development mode's, or the configured one;
/// none when HS256 is off.
fn hs256_secret(config: &IdentityConfig) -> Result<Option<String>, ConfigError> {
    if config.development {
        return dev_secret(&config.dev_secret_file).map(Some);
    }
    if config.allow_hs256 {
        return Ok(config.hs256_secret.as_ref().map(|s| s.expose().to_string()));
    }
    Ok(None)
}

/// Development mode's secret: read from `path`, or made (32 random bytes) and written there,
/// mode 600, on first use. Random per data directory, so no two installations share one.
fn dev_secret(path: &std::path::Path) -> Result<String, ConfigError> {
    use base64::Engine as _;
    let unreadable =
        |e: std::io::Error| ConfigError::Invalid(format!("dev secret {}: {e}", path.display()));
    let usable = |text: String| {
        let secret = text.trim().to_string();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::Invalid(format!(
                "dev secret {}: shorter than {MIN_SECRET_BYTES} bytes (delete it to make a new one)",
                path.display()
            )));
        }
        Ok(secret)
    };
    if let Ok(text) = std::fs::read_to_string(path) {
        return usable(text);
    }
    let secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    match create_secret_file(path, secret.as_bytes()) {
        Ok(()) => Ok(secret),
        // Made meanwhile by another process (the gateway and `dev-token` at once).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            usable(std::fs::read_to_string(path).map_err(unreadable)?)
        }
        Err(e) => Err(unreadable(e)),
    }
}

/// The algorithm a JWK is for: its `alg`, or the one its key type implies.
fn key_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Algorithm, ConfigError> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm};
    let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::RS256), _) | (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
        (None, AlgorithmParameters::EllipticCurve(p)) if p.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        (Some(KeyAlgorithm::EdDSA), _) | (None, AlgorithmParameters::OctetKeyPair(_)) => {
            Algorithm::EdDSA
        }
        (other, _) => {
            return Err(ConfigError::Invalid(format!(
                "jwks key {:?}: unsupported algorithm {other:?} (RS256, ES256, EdDSA)",
                jwk.common.key_id
            )));
        }
    };
    Ok(alg)
}

fn uid(kind: &str, id: &str) -> EntityUid {
    // INVARIANT: only called with `User` and `Agent`.
    gatehouse_pdp::uid::entity(kind, id).expect("User and Agent are valid type names")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn authenticator() -> (Authenticator, IdentityConfig) {
        let config: IdentityConfig = toml::from_str(
            r#"
            issuer = "https://id.test"
            audience = "gatehouse"
            allow_hs256 = true
            hs256_secret = "unit-test-secret-of-thirty-two-bytes"
            leeway_seconds = 0
            "#,
        )
        .unwrap();
        (Authenticator::new(&config, "tenant", &[]).unwrap(), config)
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let (auth, config) = authenticator();
        let token = dev_token(&config, "tenant", "acme-vera", "acme", None, false).unwrap();
        let now = now_unix_seconds();
        let first = auth.token(&token, now).unwrap();
        assert_eq!(first.uid.to_string(), r#"User::"acme-vera""#);
        assert_eq!(auth.token(&token, now + 10).unwrap(), first, "remembered");
        // dev tokens live an hour: past that, the remembered token is refused too.
        let late = auth.token(&token, now + 3_601).unwrap_err();
        assert_eq!(late.code(), "invalid_token");
    }

    #[test]
    fn a_tampered_token_is_not_taken_for_a_remembered_one() {
        let (auth, config) = authenticator();
        let token = dev_token(&config, "tenant", "acme-vera", "acme", None, false).unwrap();
        auth.token(&token, now_unix_seconds()).unwrap();
        // Another signature on the same header and claims.
        let signature_at = token.rfind('.').unwrap() + 1;
        let flipped = if &token[signature_at..=signature_at] == "A" {
            "B"
        } else {
            "A"
        };
        let tampered = format!(
            "{}{flipped}{}",
            &token[..signature_at],
            &token[signature_at + 1..]
        );
        assert!(auth.token(&tampered, now_unix_seconds()).is_err());
    }

    fn signed(claims: &serde_json::Value, secret: &str) -> String {
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), claims, &key).unwrap()
    }

    #[test]
    fn development_mode_signs_with_a_random_secret_of_its_own_kept_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("state/dev-hs256.secret");
        let config: IdentityConfig = toml::from_str(&format!(
            "issuer = \"https://id.test\"\naudience = \"gatehouse\"\ndevelopment = true\ndev_secret_file = \"{}\"",
            secret_file.display()
        ))
        .unwrap();
        let auth = Authenticator::new(&config, "tenant", &[]).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&secret_file), 0o600);
        let private = if gatehouse_core::secret_file::is_root() {
            0o711
        } else {
            0o700
        };
        assert_eq!(mode(secret_file.parent().unwrap()), private);
        let token = dev_token(&config, "tenant", "acme-ada", "acme", None, false).unwrap();
        assert!(auth.token(&token, now_unix_seconds()).is_ok());
        // The secret that used to be the demo's is worth nothing now.
        let now = now_unix_seconds();
        let claims = json!({"iss": "https://id.test", "aud": "gatehouse", "sub": "acme-ada",
            "tenant": "acme", "iat": now, "exp": now + 600});
        let forged = signed(&claims, "gatehouse-dev-secret-change-me");
        assert_eq!(
            auth.token(&forged, now).unwrap_err().code(),
            "invalid_token"
        );
        // Another installation makes another secret.
        let other = IdentityConfig {
            dev_secret_file: dir.path().join("other.secret"),
            ..config.clone()
        };
        Authenticator::new(&other, "tenant", &[]).unwrap();
        assert_ne!(
            std::fs::read(&secret_file).unwrap(),
            std::fs::read(&other.dev_secret_file).unwrap()
        );
    }

    #[test]
    fn a_token_without_the_tenant_claim_or_living_too_long_is_refused() {
        let (auth, config) = authenticator();
        let secret = config.hs256_secret.as_ref().unwrap().expose();
        let now = now_unix_seconds();
        let base = json!({"iss": "https://id.test", "aud": "gatehouse", "sub": "acme-ada",
            "tenant": "acme", "iat": now, "exp": now + 600});
        assert!(auth.token(&signed(&base, secret), now).is_ok());
        let mut untenanted = base.clone();
        untenanted.as_object_mut().unwrap().remove("tenant");
        let refused = auth.token(&signed(&untenanted, secret), now).unwrap_err();
        assert!(
            refused.to_string().contains("no `tenant` claim"),
            "{refused}"
        );
        // With no tenant claim configured, the host alone names the tenant.
        let hostly = Authenticator::new(&config, "", &[]).unwrap();
        assert!(hostly.token(&signed(&untenanted, secret), now).is_ok());

        let mut forever = base.clone();
        forever["exp"] = json!(now + 30 * 365 * 24 * 3600);
        let refused = auth.token(&signed(&forever, secret), now).unwrap_err();
        assert!(refused.to_string().contains("longer than"), "{refused}");
        forever["iat"] = json!(now + 30 * 365 * 24 * 3600 - 60);
        assert!(
            auth.token(&signed(&forever, secret), now).is_err(),
            "nor by claiming to be issued in the future"
        );
        forever.as_object_mut().unwrap().remove("iat");
        assert!(
            auth.token(&signed(&forever, secret), now).is_err(),
            "without iat too"
        );
    }

    #[test]
    fn an_empty_or_short_dev_secret_is_refused_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("dev.secret");
        std::fs::write(&secret_file, "").unwrap();
        let config: IdentityConfig = toml::from_str(&format!(
            "issuer = \"i\"\naudience = \"a\"\ndevelopment = true\ndev_secret_file = \"{}\"",
            secret_file.display()
        ))
        .unwrap();
        let err = Authenticator::new(&config, "tenant", &[]).unwrap_err();
        assert!(err.to_string().contains("shorter than"), "{err}");
        assert!(dev_token(&config, "tenant", "u", "t", None, false).is_err());
    }
}
