//! Sealing on the way into the store and opening on the way out, both streamed: memory
//! holds at most one S3 part and one chunk, whatever the object's size.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use gatehouse_core::TenantId;
use sha2::{Digest, Sha256};

use crate::envelope::{EnvelopeError, HEADER, Header, Opener};
use crate::keys::{KeyError, KeyRing};
use crate::object_store::{BlobStore, StoreError};

/// Why a sealed object could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The tenant's key is destroyed or unavailable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored object is not what was sealed.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The upload is larger than allowed.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    /// The client's upload broke off.
    #[error("the upload failed: {0}")]
    Source(String),
    /// The plaintext's SHA-256 is not the one recorded when it was stored.
    #[error("checksum mismatch")]
    Checksum,
}

/// What was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The tenant key that sealed it.
    pub key_id: [u8; 16],
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
}

/// Seals what `source` yields with `tenant`'s current key and stores it as `object_key`,
/// refusing more than `max_bytes` (the upload is then aborted: nothing is left behind).
///
/// # Errors
/// [`BlobError`].
pub async fn put<S, E>(
    keys: &KeyRing,
    store: &BlobStore,
    tenant: &TenantId,
    object_key: &str,
    mut source: S,
    max_bytes: u64,
) -> Result<Stored, BlobError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let key = keys.current(tenant).await?;
    let (header, mut sealer) = key.seal(object_key);
    let mut upload = store.upload(object_key.to_string());
    let mut digest = Sha256::new();
    let mut size = 0u64;
    let mut sealed = header;
    let outcome: Result<(), BlobError> = async {
        while let Some(piece) = source.next().await {
            let piece = piece.map_err(|e| BlobError::Source(e.to_string()))?;
            size += piece.len() as u64;
            if size > max_bytes {
                return Err(BlobError::TooLarge(max_bytes));
            }
            digest.update(&piece);
            sealer.update(&piece, &mut sealed);
            upload.write(&sealed).await?;
            sealed.clear();
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        upload.abort().await;
        return Err(e);
    }
    sealer.finish(&mut sealed);
    upload.write(&sealed).await?;
    upload.finish().await?;
    Ok(Stored {
        key_id: key.id(),
        size,
        sha256: format!("{:x}", digest.finalize()),
    })
}

/// Object `object_key` of `tenant`, opened as it streams in. The stream ends with an
/// error instead of its last bytes if anything was altered or the plaintext's SHA-256 is
/// not `sha256`: a reader never gets unauthenticated bytes.
///
/// # Errors
/// [`BlobError`] when the object or its key cannot be had.
pub async fn get(
    keys: &KeyRing,
    store: &BlobStore,
    tenant: &TenantId,
    object_key: &str,
    sha256: &str,
) -> Result<impl Stream<Item = Result<Bytes, BlobError>> + use<>, BlobError> {
    let mut body = store.download(object_key).await?;
    let mut head = Vec::with_capacity(HEADER);
    let mut rest = Vec::new();
    while head.len() < HEADER {
        let Some(piece) = body.next().await else {
            return Err(EnvelopeError::NotSealed.into());
        };
        let piece = piece.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let take = (HEADER - head.len()).min(piece.len());
        head.extend_from_slice(&piece[..take]);
        rest.extend_from_slice(&piece[take..]);
    }
    let header = Header::parse(&head)?;
    let key = keys.get(tenant, header.key_id()).await?;
    let opener = key.open(object_key, &header)?;
    let state = Reading {
        body,
        opener: Some(opener),
        first: Some(rest),
        digest: Sha256::new(),
        expected: sha256.to_string(),
    };
    Ok(futures_util::stream::unfold(state, Reading::next).filter_map(|item| async move { item }))
}

struct Reading {
    body: aws_sdk_s3::primitives::ByteStream,
    opener: Option<Opener>,
    first: Option<Vec<u8>>,
    digest: Sha256,
    expected: String,
}

impl Reading {
    /// The next piece of plaintext (`None` inside when a piece opened nothing yet), or the
    /// end.
    async fn next(mut self) -> Option<(Option<Result<Bytes, BlobError>>, Self)> {
        let opener = self.opener.as_mut()?;
        let mut out = Vec::new();
        let piece = match self.first.take() {
            Some(first) => Some(Ok(Bytes::from(first))),
            None => self.body.next().await,
        };
        match piece {
            Some(Ok(bytes)) => {
                if let Err(e) = opener.update(&bytes, &mut out) {
                    self.opener = None;
                    return Some((Some(Err(e.into())), self));
                }
            }
            Some(Err(e)) => {
                self.opener = None;
                return Some((
                    Some(Err(StoreError::Unavailable(e.to_string()).into())),
                    self,
                ));
            }
            None => {
                let opener = self.opener.take()?;
                if let Err(e) = opener.finish(&mut out) {
                    return Some((Some(Err(e.into())), self));
                }
                self.digest.update(&out);
                let actual = format!("{:x}", std::mem::take(&mut self.digest).finalize());
                if actual != self.expected {
                    return Some((Some(Err(BlobError::Checksum)), self));
                }
                return Some((Some(Ok(Bytes::from(out))), self));
            }
        }
        self.digest.update(&out);
        let item = (!out.is_empty()).then(|| Ok(Bytes::from(out)));
        Some((item, self))
    }
}
