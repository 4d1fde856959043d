//! The signed context the gateway forwards with every allowed request.
//!
//! It is a JWT (RFC 7519) signed with Ed25519 (`alg: EdDSA`), so that any adapter, in any
//! language, can verify it with a standard library and the gateway's public key, and none
//! can forge one. It says who was allowed to do what, in which tenant, by which decision,
//! and it expires within seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{EncodePublicKey, spki::der::pem::LineEnding};
use ed25519_dalek::{Signer as _, SigningKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::TenantId;

/// The request header that carries the signed context. The gateway removes any copy a
/// client sent before adding its own.
pub const CONTEXT_HEADER: &str = "x-gatehouse-context";

/// The protected header of every forwarded context.
const JWS_HEADER: &str = r#"{"typ":"JWT","alg":"EdDSA"}"#;

/// The issuer and audience of every forwarded context.
const ISSUER: &str = "gatehouse";
const AUDIENCE: &str = "gatehouse-adapters";

/// What the gateway decided, as forwarded to the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedContext {
    /// The tenant of the request.
    pub tenant: TenantId,
    /// The principal's Cedar uid, e.g. `User::"acme-vera"`.
    pub principal: String,
    /// For an agent: the uid of the user it acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// The Cedar action, e.g. `Action::"document:read"`.
    pub action: String,
    /// The Cedar resource uid.
    pub resource: String,
    /// The decision's id (also the audit record's id).
    pub decision_id: String,
    /// The W3C trace id of the request.
    pub trace_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    jti: String,
    iat: u64,
    exp: u64,
    ctx: ForwardedContext,
}

/// Why a forwarded context was refused.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Not a valid, unexpired context signed by the gateway's key.
    #[error("invalid forwarded context: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The signing key could not be read.
    #[error("invalid context signing key: {0}")]
    Key(String),
}

/// Signs forwarded contexts (the gateway's side).
///
/// It writes the JWS compact form itself with a key parsed once: signing through a
/// generic JWT library re-reads the PKCS#8 key and re-derives the public key on every
/// call, which doubled the cost of a signature on the gateway's hot path.
pub struct ContextSigner {
    key: SigningKey,
    public_pem: String,
    lifetime: Duration,
}

impl std::fmt::Debug for ContextSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextSigner")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

impl ContextSigner {
    /// A signer from an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    ///
    /// # Errors
    /// [`ContextError::Key`] when the PEM is not an Ed25519 private key.
    pub fn from_pem(pem: &str, lifetime: Duration) -> Result<Self, ContextError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| ContextError::Key(e.to_string()))?;
        Self::from_key(&key, lifetime)
    }

    /// A signer with a fresh random key (for a gateway whose adapters run in-process).
    ///
    /// # Errors
    /// [`ContextError::Key`] if the key cannot be encoded (not expected).
    pub fn generate(lifetime: Duration) -> Result<Self, ContextError> {
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        Self::from_key(&key, lifetime)
    }

    fn from_key(key: &SigningKey, lifetime: Duration) -> Result<Self, ContextError> {
        let public_pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| ContextError::Key(e.to_string()))?;
        Ok(Self {
            key: key.clone(),
            public_pem,
            lifetime,
        })
    }

    /// The public key, PEM-encoded, for adapters to verify with.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// A verifier for this signer's contexts.
    ///
    /// # Errors
    /// [`ContextError`] if the public key cannot be read back (not expected).
    pub fn verifier(&self) -> Result<ContextVerifier, ContextError> {
        ContextVerifier::from_public_pem(&self.public_pem)
    }

    /// Signs `context`, valid from `now` for the signer's lifetime.
    ///
    /// # Errors
    /// [`ContextError::Invalid`] if signing fails (not expected).
    pub fn sign(
        &self,
        context: &ForwardedContext,
        now: SystemTime,
    ) -> Result<String, ContextError> {
        let iat = unix(now);
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: context.principal.clone(),
            jti: context.decision_id.clone(),
            iat,
            exp: iat + self.lifetime.as_secs().max(1),
            ctx: context.clone(),
        };
        // The JWS compact serialization (RFC 7515): base64url(header).base64url(payload),
        // then base64url of the Ed25519 signature over those bytes.
        let payload = serde_json::to_vec(&claims).map_err(|e| ContextError::Key(e.to_string()))?;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(JWS_HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.key.sign(signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }
}

/// Verifies forwarded contexts (the adapters' side).
#[derive(Clone)]
pub struct ContextVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl ContextVerifier {
    /// A verifier from the gateway's Ed25519 public key in PEM.
    ///
    /// # Errors
    /// [`ContextError`] when the PEM is not an Ed25519 public key.
    pub fn from_public_pem(pem: &str) -> Result<Self, ContextError> {
        let key = DecodingKey::from_ed_pem(pem.as_bytes())?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self { key, validation })
    }

    /// The context in `token`, if the gateway signed it and it has not expired.
    ///
    /// # Errors
    /// [`ContextError::Invalid`] for a forged, altered, expired or malformed token.
    pub fn verify(&self, token: &str) -> Result<ForwardedContext, ContextError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)?;
        Ok(data.claims.ctx)
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> ForwardedContext {
        ForwardedContext {
            tenant: TenantId::parse("acme").unwrap(),
            principal: r#"User::"acme-vera""#.into(),
            acting_for: None,
            action: r#"Action::"document:read""#.into(),
            resource: r#"Document::"acme-plan""#.into(),
            decision_id: "d-1".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        }
    }

    #[test]
    fn a_signed_context_verifies_and_round_trips() {
        let signer = ContextSigner::generate(Duration::from_secs(30)).unwrap();
        let token = signer.sign(&context(), SystemTime::now()).unwrap();
        assert_eq!(
            signer.verifier().unwrap().verify(&token).unwrap(),
            context()
        );
    }

    #[test]
    fn another_key_an_altered_payload_or_an_old_token_is_refused() {
        let signer = ContextSigner::generate(Duration::from_secs(30)).unwrap();
        let other = ContextSigner::generate(Duration::from_secs(30)).unwrap();
        let token = signer.sign(&context(), SystemTime::now()).unwrap();
        assert!(other.verifier().unwrap().verify(&token).is_err());

        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = parts[1].replace('a', "b");
        assert!(signer.verifier().unwrap().verify(&parts.join(".")).is_err());

        let old = SystemTime::now() - Duration::from_secs(120);
        let expired = signer.sign(&context(), old).unwrap();
        assert!(signer.verifier().unwrap().verify(&expired).is_err());
    }
}
