//! The bucket: video objects streamed in as S3 multipart uploads (memory bounded by one
//! part whatever the file's size), thumbnails, downloads for processing, presigned reads.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use platform::s3::{S3Client, s3_span};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

/// S3's smallest part but the last is 5 MiB; 8 MiB parts keep the part count low for
/// large files and one part is all an upload holds in memory.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Why a streamed upload did not complete. Every case aborts the multipart upload.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("the file is larger than {max} bytes")]
    TooLarge { max: u64 },
    /// The client's stream failed or ended early.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("the object store failed: {0}")]
    Storage(String),
}

/// A complete object.
#[derive(Debug, Clone)]
pub struct Stored {
    pub size_bytes: u64,
    pub sha256: Vec<u8>,
    pub parts: usize,
}

fn storage(e: impl std::fmt::Display) -> PutError {
    PutError::Storage(e.to_string())
}

fn sdk_error<E: std::error::Error + 'static>(e: aws_sdk_s3::error::SdkError<E>) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

#[derive(Clone)]
pub struct Objects {
    client: S3Client,
    bucket: String,
}

impl Objects {
    pub fn new(client: S3Client, bucket: String) -> Self {
        Self { client, bucket }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Streams `head` then `rest` into the object `key`, at most `max` bytes: one multipart
    /// upload, completed only when every byte arrived; aborted on any failure.
    pub async fn put_stream<S>(
        &self,
        key: &str,
        content_type: &str,
        head: Bytes,
        rest: S,
        max: u64,
    ) -> Result<Stored, PutError>
    where
        S: Stream<Item = Result<Bytes, String>> + Unpin,
    {
        let upload_id = self
            .start_multipart(key, Some(content_type))
            .await
            .map_err(PutError::Storage)?;
        match self.upload_parts(key, &upload_id, head, rest, max).await {
            Ok(stored) => Ok(stored),
            Err(e) => {
                if self.abort_multipart(key, &upload_id).await.is_err() {
                    // The store may be what failed: keep trying in the background for a
                    // minute rather than keep the client waiting for its error.
                    let objects = self.clone();
                    let key = key.to_owned();
                    tokio::spawn(
                        async move { objects.abort_eventually(&key, &upload_id).await }
                            .in_current_span(),
                    );
                }
                Err(e)
            }
        }
    }

    async fn abort_eventually(&self, key: &str, upload_id: &str) {
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if self.abort_multipart(key, upload_id).await.is_ok() {
                return;
            }
        }
        tracing::warn!(
            key,
            "multipart upload not aborted; the store's own expiry will free it"
        );
    }

    async fn upload_parts<S>(
        &self,
        key: &str,
        upload_id: &str,
        head: Bytes,
        mut rest: S,
        max: u64,
    ) -> Result<Stored, PutError>
    where
        S: Stream<Item = Result<Bytes, String>> + Unpin,
    {
        let mut digest = Sha256::new();
        let mut size: u64 = 0;
        let mut part = BytesMut::with_capacity(PART_SIZE);
        let mut parts = Vec::new();
        let mut next = Some(Ok(head));
        loop {
            let chunk = match next.take() {
                Some(chunk) => Some(chunk),
                None => rest.next().await,
            };
            let Some(chunk) = chunk else { break };
            let chunk = chunk.map_err(PutError::Interrupted)?;
            size += chunk.len() as u64;
            if size > max {
                return Err(PutError::TooLarge { max });
            }
            digest.update(&chunk);
            part.extend_from_slice(&chunk);
            if part.len() >= PART_SIZE {
                let body = part.split().freeze();
                parts.push(
                    self.upload_part(key, upload_id, parts.len() + 1, body)
                        .await?,
                );
            }
        }
        if !part.is_empty() || parts.is_empty() {
            let body = part.split().freeze();
            parts.push(
                self.upload_part(key, upload_id, parts.len() + 1, body)
                    .await?,
            );
        }
        let count = parts.len();
        self.complete_multipart(key, upload_id, parts)
            .await
            .map_err(PutError::Storage)?;
        Ok(Stored {
            size_bytes: size,
            sha256: digest.finalize().to_vec(),
            parts: count,
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: usize,
        body: Bytes,
    ) -> Result<(i32, String), PutError> {
        let number = i32::try_from(number).map_err(storage)?;
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .instrument(s3_span("UploadPart", &self.bucket))
            .await
            .map_err(|e| PutError::Storage(sdk_error(e)))?;
        Ok((number, uploaded.e_tag().unwrap_or_default().to_owned()))
    }

    /// Starts a multipart upload (ours, or one the client sends itself); its upload id.
    pub async fn start_multipart(
        &self,
        key: &str,
        content_type: Option<&str>,
    ) -> Result<String, String> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            .send()
            .instrument(s3_span("CreateMultipartUpload", &self.bucket))
            .await
            .map_err(sdk_error)?;
        created
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| "the store gave no upload id".to_owned())
    }

    /// A presigned PUT of part `number` of a multipart upload.
    pub async fn presigned_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        ttl: Duration,
    ) -> Result<String, String> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| e.to_string())?;
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .presigned(config)
            .await
            .map_err(sdk_error)?;
        Ok(request.uri().to_owned())
    }

    /// Completes a multipart upload with the parts the client reports.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, String)>,
    ) -> Result<(), String> {
        let parts = parts
            .into_iter()
            .map(|(number, etag)| {
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .instrument(s3_span("CompleteMultipartUpload", &self.bucket))
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// The parts stored so far of a multipart upload: (part number, ETag without quotes when
    /// the store tells it; s3s-fs does not), in order (at most the first 1000; an upload here
    /// has fewer).
    pub async fn stored_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<(i32, Option<String>)>, String> {
        let listed = self
            .client
            .list_parts()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .instrument(s3_span("ListParts", &self.bucket))
            .await
            .map_err(sdk_error)?;
        let mut parts: Vec<(i32, Option<String>)> = listed
            .parts()
            .iter()
            .filter_map(|p| {
                let etag = p.e_tag().map(|e| e.trim_matches('"').to_owned());
                Some((p.part_number()?, etag))
            })
            .collect();
        parts.sort_unstable_by_key(|(number, _)| *number);
        Ok(parts)
    }

    /// Aborts a multipart upload (its parts are freed).
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), String> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .instrument(s3_span("AbortMultipartUpload", &self.bucket))
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// The first `n` bytes of an object (fewer when it is shorter).
    pub async fn head_bytes(&self, key: &str, n: usize) -> Result<Bytes, String> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", n.saturating_sub(1)))
            .send()
            .instrument(s3_span("GetObject", &self.bucket))
            .await
            .map_err(sdk_error)?;
        object
            .body
            .collect()
            .await
            .map(|b| b.into_bytes())
            .map_err(|e| e.to_string())
    }

    /// Keys under `prefix` last changed before `before` (one page of at most 1000).
    pub async fn keys_older_than(
        &self,
        prefix: &str,
        before: DateTime<Utc>,
    ) -> Result<Vec<String>, String> {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .instrument(s3_span("ListObjectsV2", &self.bucket))
            .await
            .map_err(sdk_error)?;
        Ok(listed
            .contents()
            .iter()
            .filter(|o| {
                o.last_modified()
                    .is_some_and(|t| t.secs() < before.timestamp())
            })
            .filter_map(|o| o.key().map(str::to_owned))
            .collect())
    }

    /// A small object in one request (thumbnails).
    pub async fn put(&self, key: &str, content_type: &str, body: Vec<u8>) -> Result<(), String> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .instrument(s3_span("PutObject", &self.bucket))
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// Deletes `key`; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), String> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .instrument(s3_span("DeleteObject", &self.bucket))
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// An object's size and SHA-256, read as a stream (memory bounded by one chunk).
    pub async fn digest(&self, key: &str) -> Result<(u64, Vec<u8>), String> {
        self.read(key, None).await
    }

    /// Writes the object `key` to `path`, streaming; returns its size and SHA-256.
    pub async fn download(&self, key: &str, path: &Path) -> Result<(u64, Vec<u8>), String> {
        self.read(key, Some(path)).await
    }

    async fn read(&self, key: &str, to: Option<&Path>) -> Result<(u64, Vec<u8>), String> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .instrument(s3_span("GetObject", &self.bucket))
            .await
            .map_err(sdk_error)?;
        let mut body = object.body;
        let mut file = match to {
            Some(path) => Some(
                tokio::fs::File::create(path)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let mut digest = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| e.to_string())? {
            size += chunk.len() as u64;
            digest.update(&chunk);
            if let Some(file) = file.as_mut() {
                file.write_all(&chunk).await.map_err(|e| e.to_string())?;
            }
        }
        if let Some(file) = file.as_mut() {
            file.flush().await.map_err(|e| e.to_string())?;
        }
        Ok((size, digest.finalize().to_vec()))
    }

    /// A presigned GET of `key`, valid for `ttl` (ranges work: it is a plain GET).
    pub async fn presigned_get(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<(String, DateTime<Utc>), String> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| e.to_string())?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(sdk_error)?;
        let expires = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
        Ok((request.uri().to_owned(), expires))
    }
}
