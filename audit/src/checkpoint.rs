//! Signed checkpoints: the head of each tenant's chain, signed with a key the database
//! never sees and kept outside it. The hash chain shows any change made through the
//! application; a database superuser could still rewrite records and recompute every hash
//! after them. A checkpoint pins `(seq, hash)` at a moment: such a rewrite, or removing
//! the records after a checkpoint, no longer matches it.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _};
use gatehouse_core::TenantId;
use gatehouse_core::secret_file::create_secret_file;
use serde::{Deserialize, Serialize};

/// One tenant's chain head, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The tenant.
    pub tenant: TenantId,
    /// The sequence number of the chain's head.
    pub seq: i64,
    /// Its hash, hex.
    pub hash: String,
    /// When it was signed, UTC microseconds since 1970.
    pub time_us: i64,
    /// Ed25519 over [`Checkpoint::message`], base64url.
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes signed.
    pub fn message(&self) -> String {
        format!(
            "gatehouse-audit-checkpoint\n{}\n{}\n{}\n{}",
            self.tenant.as_str(),
            self.seq,
            self.hash,
            self.time_us
        )
    }

    /// Whether `key` signed this checkpoint as it reads.
    pub fn is_signed_by(&self, key: &VerifyingKey) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(&self.signature) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        key.verify(self.message().as_bytes(), &signature).is_ok()
    }
}

/// Signs checkpoints and appends them to a file (JSON lines, synced).
pub struct CheckpointSigner {
    key: SigningKey,
    file: PathBuf,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// A signer with `key`, writing to `file`.
    pub fn new(key: SigningKey, file: PathBuf) -> Self {
        Self { key, file }
    }

    /// A signer with the key in `key_file` (PKCS#8 PEM), created (mode 600, with its
    /// public key beside it in `<key_file>.pub`) when it does not exist yet.
    ///
    /// # Errors
    /// The I/O error, or a key file that is not an Ed25519 private key.
    pub fn load_or_create(key_file: &Path, file: PathBuf) -> std::io::Result<Self> {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        if let Ok(pem) = std::fs::read_to_string(key_file) {
            return Self::from_pem(&pem, file).map_err(std::io::Error::other);
        }
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let pem = key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(std::io::Error::other)?;
        create_secret_file(key_file, pem.as_bytes())?;
        let signer = Self::new(key, file);
        let mut public = key_file.as_os_str().to_owned();
        public.push(".pub");
        std::fs::write(PathBuf::from(public), signer.public_key_pem())?;
        Ok(signer)
    }

    /// A signer with the Ed25519 private key in `pem` (PKCS#8), writing to `file`.
    ///
    /// # Errors
    /// [`KeyError`] when the PEM is not an Ed25519 private key.
    pub fn from_pem(pem: &str, file: PathBuf) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError {
            kind: "private",
            reason: e.to_string(),
        })?;
        Ok(Self { key, file })
    }

    /// The public key (PEM) that verifies this signer's checkpoints.
    pub fn public_key_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap_or_default()
    }

    /// A checkpoint of `tenant`'s head `(seq, hash)` at `time_us`.
    pub fn sign(&self, tenant: &TenantId, seq: i64, hash: &[u8], time_us: i64) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            tenant: tenant.clone(),
            seq,
            hash: hex(hash),
            time_us,
            signature: String::new(),
        };
        let signature = self.key.sign(checkpoint.message().as_bytes());
        checkpoint.signature = URL_SAFE_NO_PAD.encode(signature.to_bytes());
        checkpoint
    }

    /// Appends `checkpoints` to the file and syncs it.
    ///
    /// # Errors
    /// The I/O error.
    pub fn append(&self, checkpoints: &[Checkpoint]) -> std::io::Result<()> {
        let mut lines = String::new();
        for checkpoint in checkpoints {
            lines.push_str(&serde_json::to_string(checkpoint).map_err(std::io::Error::other)?);
            lines.push('\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.file)?;
        file.write_all(lines.as_bytes())?;
        file.sync_data()
    }
}

/// A checkpoint key that is not an Ed25519 key in PEM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Ed25519 {kind} key in PEM: {reason}")]
pub struct KeyError {
    kind: &'static str,
    reason: String,
}

/// A public key from PEM, to verify checkpoints with.
///
/// # Errors
/// [`KeyError`] when it is not an Ed25519 public key.
pub fn verifying_key(pem: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| KeyError {
        kind: "public",
        reason: e.to_string(),
    })
}

/// The checkpoints in `path` (a missing file has none). Unreadable lines are errors: a
/// damaged checkpoint file is itself a finding.
///
/// # Errors
/// The I/O error, or the line that does not parse.
pub fn read_checkpoints(path: &Path) -> Result<Vec<Checkpoint>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
