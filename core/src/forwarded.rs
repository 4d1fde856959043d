//! The signed context the gateway forwards with every allowed request.
//!
//! It is a JWT (RFC 7519), so that any adapter, in any language, can verify it with a
//! standard library. It says who was allowed to do what, in which tenant, by which
//! decision, and it expires within seconds. Two algorithms:
//!
//! - `EdDSA` (Ed25519, the default): adapters verify with the gateway's public key and none
//!   can forge a context. About 20 µs of CPU per request.
//! - `HS256` (HMAC-SHA256 with a secret shared by the gateway and its adapters): about
//!   1 µs, for adapters in the gateway's process or on its trusted network; any holder of
//!   the secret can mint contexts, so it must not be given to upstreams one does not run.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{EncodePublicKey, spki::der::pem::LineEnding};
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac as _};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::TenantId;

/// The request header that carries the signed context. The gateway removes any copy a
/// client sent before adding its own.
pub const CONTEXT_HEADER: &str = "x-gatehouse-context";

/// The smallest HS256 secret accepted: as long as the hash (RFC 7518, section 3.2).
pub const MIN_SECRET_BYTES: usize = 32;

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
    /// The session passed a second factor (for the adapter's further decisions).
    #[serde(default)]
    pub mfa: bool,
    /// The client's address, as the gateway saw it (for the adapter's further decisions,
    /// which policies on `context.source_ip` decide the same way as the gateway's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
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
/// It writes the JWS compact form itself with a key prepared once: signing through a
/// generic JWT library re-reads the PKCS#8 key and re-derives the public key on every
/// call, which doubled the cost of a signature on the gateway's hot path.
pub struct ContextSigner {
    key: Key,
    lifetime: Duration,
}

enum Key {
    Ed25519 {
        key: SigningKey,
        public_pem: String,
    },
    /// The keyed state after absorbing the secret; cloned per signature.
    Hmac {
        mac: Hmac<sha2::Sha256>,
        secret: Vec<u8>,
    },
}

impl Key {
    /// The protected header of every context signed with this key, base64url-encoded.
    fn encoded_header(&self) -> &'static str {
        match self {
            // base64url of {"typ":"JWT","alg":"EdDSA"}
            Self::Ed25519 { .. } => "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9",
            // base64url of {"typ":"JWT","alg":"HS256"}
            Self::Hmac { .. } => "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9",
        }
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519 { key, .. } => key.sign(input).to_bytes().to_vec(),
            Self::Hmac { mac, .. } => {
                let mut mac = mac.clone();
                mac.update(input);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

impl std::fmt::Debug for ContextSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("ContextSigner");
        match &self.key {
            Key::Ed25519 { public_pem, .. } => {
                out.field("alg", &"EdDSA").field("public_pem", public_pem)
            }
            Key::Hmac { .. } => out.field("alg", &"HS256"),
        };
        out.finish_non_exhaustive()
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
        Self::from_key(key, lifetime)
    }

    /// An Ed25519 signer with a fresh random key (for a gateway whose adapters run
    /// in-process).
    ///
    /// # Errors
    /// [`ContextError::Key`] if the key cannot be encoded (not expected).
    pub fn generate(lifetime: Duration) -> Result<Self, ContextError> {
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        Self::from_key(key, lifetime)
    }

    /// An HS256 signer with a secret shared with the adapters (at least
    /// [`MIN_SECRET_BYTES`] bytes).
    ///
    /// # Errors
    /// [`ContextError::Key`] when the secret is too short.
    pub fn from_secret(secret: &[u8], lifetime: Duration) -> Result<Self, ContextError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ContextError::Key(format!(
                "an HS256 secret needs at least {MIN_SECRET_BYTES} bytes, got {}",
                secret.len()
            )));
        }
        let mac = Hmac::<sha2::Sha256>::new_from_slice(secret)
            .map_err(|e| ContextError::Key(e.to_string()))?;
        Ok(Self {
            key: Key::Hmac {
                mac,
                secret: secret.to_vec(),
            },
            lifetime,
        })
    }

    /// An HS256 signer with a fresh random secret (adapters in the gateway's process).
    pub fn generate_secret(lifetime: Duration) -> Self {
        Self::from_secret(&rand::random::<[u8; 32]>(), lifetime)
            .expect("32 random bytes are a valid secret")
    }

    fn from_key(key: SigningKey, lifetime: Duration) -> Result<Self, ContextError> {
        let public_pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| ContextError::Key(e.to_string()))?;
        Ok(Self {
            key: Key::Ed25519 { key, public_pem },
            lifetime,
        })
    }

    /// The JWS algorithm: `EdDSA` or `HS256`.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Ed25519 { .. } => "EdDSA",
            Key::Hmac { .. } => "HS256",
        }
    }

    /// The public key, PEM-encoded, for adapters to verify with (`EdDSA` only).
    pub fn public_key_pem(&self) -> Option<&str> {
        match &self.key {
            Key::Ed25519 { public_pem, .. } => Some(public_pem),
            Key::Hmac { .. } => None,
        }
    }

    /// A verifier for this signer's contexts.
    ///
    /// # Errors
    /// [`ContextError`] if the public key cannot be read back (not expected).
    pub fn verifier(&self) -> Result<ContextVerifier, ContextError> {
        match &self.key {
            Key::Ed25519 { public_pem, .. } => ContextVerifier::from_public_pem(public_pem),
            Key::Hmac { secret, .. } => Ok(ContextVerifier::from_secret(secret)),
        }
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
        let iat = crate::time::unix_seconds(now);
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
        // then base64url of the signature over those bytes.
        let payload = serde_json::to_vec(&claims).map_err(|e| ContextError::Key(e.to_string()))?;
        let mut token = String::with_capacity(96 + payload.len() * 4 / 3);
        token.push_str(self.key.encoded_header());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
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
        Ok(Self::new(key, Algorithm::EdDSA))
    }

    /// A verifier for HS256 contexts signed with `secret`.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self::new(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// Only `algorithm` is accepted: a token naming another is refused, so a public key
    /// can never be used as an HMAC secret.
    fn new(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self { key, validation }
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
            mfa: false,
            source_ip: None,
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
    fn an_hs256_context_verifies_only_with_its_secret() {
        let signer = ContextSigner::from_secret(&[7; 32], Duration::from_secs(30)).unwrap();
        assert_eq!(signer.algorithm(), "HS256");
        let token = signer.sign(&context(), SystemTime::now()).unwrap();
        assert_eq!(
            ContextVerifier::from_secret(&[7; 32])
                .verify(&token)
                .unwrap(),
            context()
        );
        assert!(
            ContextVerifier::from_secret(&[8; 32])
                .verify(&token)
                .is_err()
        );
        assert!(ContextSigner::from_secret(&[7; 31], Duration::from_secs(30)).is_err());
    }

    #[test]
    fn a_verifier_refuses_the_other_algorithm() {
        let ed = ContextSigner::generate(Duration::from_secs(30)).unwrap();
        let hs = ContextSigner::generate_secret(Duration::from_secs(30));
        let hs_token = hs.sign(&context(), SystemTime::now()).unwrap();
        let ed_token = ed.sign(&context(), SystemTime::now()).unwrap();
        assert!(ed.verifier().unwrap().verify(&hs_token).is_err());
        assert!(hs.verifier().unwrap().verify(&ed_token).is_err());
        // An HMAC keyed with the public key (the classic key confusion) is refused too.
        let public = ed.public_key_pem().unwrap().as_bytes();
        let forged = ContextSigner::from_secret(public, Duration::from_secs(30))
            .unwrap()
            .sign(&context(), SystemTime::now())
            .unwrap();
        assert!(ed.verifier().unwrap().verify(&forged).is_err());
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
