//! Objects in an S3 bucket: streamed up in parts (multipart for anything over one part),
//! streamed down, every key under the tenant's prefix.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use gatehouse_core::TenantId;

/// Bytes per uploaded part (S3 wants at least 5 MiB for all but the last).
pub const PART: usize = 8 * 1024 * 1024;

/// Why the store failed. Its text never names the bucket or the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The S3 server cannot be reached or refused the call.
    #[error("object store unavailable")]
    Unavailable(String),
    /// No such object.
    #[error("object not found")]
    NotFound,
}

/// Where and how to reach the S3 store.
#[derive(Clone)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// The region to sign for.
    pub region: String,
    /// The bucket that holds every tenant's objects, each under its own prefix.
    pub bucket: String,
    /// The access key id.
    pub access_key: String,
    /// The secret key (never logged).
    pub secret_key: String,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// An object's key: the tenant's prefix, then the document and version. Built only from
/// a [`TenantId`] and ids the adapter checked, never from a client's file name.
pub fn object_key(tenant: &TenantId, document_id: &str, version: i32) -> String {
    format!(
        "tenants/{}/documents/{document_id}/v{version}",
        tenant.as_str()
    )
}

/// The bucket.
#[derive(Clone)]
pub struct BlobStore {
    client: Client,
    bucket: String,
}

impl BlobStore {
    /// A store for `settings` (path-style addressing, so that any S3 server works).
    pub fn new(settings: &S3Settings) -> Self {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .endpoint_url(&settings.endpoint)
            .credentials_provider(Credentials::new(
                &settings.access_key,
                &settings.secret_key,
                None,
                None,
                "gatehouse",
            ))
            .force_path_style(true)
            .build();
        Self {
            client: Client::from_conf(config),
            bucket: settings.bucket.clone(),
        }
    }

    /// Creates the bucket if it is not there.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn ensure_bucket(&self) -> Result<(), StoreError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Starts writing object `key`: feed it with [`Upload::write`], end with
    /// [`Upload::finish`] (or drop it after an error: [`Upload::abort`]).
    pub fn upload(&self, key: String) -> Upload {
        Upload {
            store: self.clone(),
            key,
            buffer: Vec::with_capacity(PART),
            upload_id: None,
            parts: Vec::new(),
        }
    }

    /// Object `key`, as a stream of bytes.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] or [`StoreError::Unavailable`].
    pub async fn download(&self, key: &str) -> Result<ByteStream, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => Ok(object.body),
            Err(e) => {
                let missing = e
                    .as_service_error()
                    .is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key);
                Err(if missing {
                    StoreError::NotFound
                } else {
                    unavailable(e)
                })
            }
        }
    }

    /// Deletes object `key` (nothing if it is not there).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// An object being written: one PUT when it fits in a part, a multipart upload otherwise.
/// Holds at most one part in memory.
pub struct Upload {
    store: BlobStore,
    key: String,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl Upload {
    /// Adds bytes; uploads a part whenever one is full.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        while !bytes.is_empty() {
            let take = (PART - self.buffer.len()).min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == PART {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self) -> Result<(), StoreError> {
        let client = &self.store.client;
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = client
                    .create_multipart_upload()
                    .bucket(&self.store.bucket)
                    .key(&self.key)
                    .send()
                    .await
                    .map_err(unavailable)?;
                let id = created
                    .upload_id()
                    .ok_or_else(|| StoreError::Unavailable("no upload id".into()))?
                    .to_string();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let body = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(PART),
        ));
        let part = client
            .upload_part()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(unavailable)?;
        self.parts.push(
            CompletedPart::builder()
                .set_e_tag(part.e_tag().map(str::to_string))
                .part_number(number)
                .build(),
        );
        Ok(())
    }

    /// Writes what is left and completes the object.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]; a multipart upload is then aborted.
    pub async fn finish(mut self) -> Result<(), StoreError> {
        if self.upload_id.is_none() {
            let body = Bytes::from(std::mem::take(&mut self.buffer));
            self.store
                .client
                .put_object()
                .bucket(&self.store.bucket)
                .key(&self.key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(unavailable)?;
            return Ok(());
        }
        if !self.buffer.is_empty()
            && let Err(e) = self.send_part().await
        {
            self.abort().await;
            return Err(e);
        }
        let upload_id = self.upload_id.clone().unwrap_or_default();
        let done = self
            .store
            .client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = done {
            self.abort().await;
            return Err(unavailable(e));
        }
        Ok(())
    }

    /// Gives up: a started multipart upload is aborted, so no part is left behind.
    pub async fn abort(self) {
        if let Some(upload_id) = &self.upload_id {
            let _ = self
                .store
                .client
                .abort_multipart_upload()
                .bucket(&self.store.bucket)
                .key(&self.key)
                .upload_id(upload_id)
                .send()
                .await;
        }
    }
}

fn unavailable(e: impl std::fmt::Debug) -> StoreError {
    tracing::warn!(target: "gatehouse::blobs", error = ?e, "object store call failed");
    StoreError::Unavailable("object store call failed".into())
}
