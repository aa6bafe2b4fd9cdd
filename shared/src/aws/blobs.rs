//! The [`BlobStore`] port on S3.
//!
//! Uploads above [`MULTIPART_THRESHOLD`] go up as a multipart upload, part by
//! part: [`S3Blobs::put_file`] streams a file from disk without holding it in
//! memory, and [`BlobStore::put`] sends slices of the buffer it was given
//! (no copies). Keys arriving in S3 event notifications are URL-encoded
//! (`+` for a space); [`key_from_notification`] decodes and validates them.

use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use super::{describe, is_transient};
use crate::blob_key::{BlobKey, BlobKeyError};
use crate::ports::{Blob, BlobError, BlobStore};

/// Objects larger than this are uploaded in parts of this size (S3's
/// minimum part is 5 MiB; 8 MiB is what the AWS CLI uses).
pub const MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;

/// Decodes an object key from an S3 event notification (`+` is a space,
/// `%XX` a byte of UTF-8) and validates it as a [`BlobKey`].
pub fn key_from_notification(raw: &str) -> Result<BlobKey, BlobKeyError> {
    let plus_decoded = raw.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&plus_decoded).decode_utf8_lossy();
    BlobKey::new(decoded.into_owned())
}

#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
    part_size: u64,
}

/// Where a multipart upload takes each part's bytes from.
enum Source<'a> {
    Memory(&'a Bytes),
    File(&'a Path),
}

impl S3Blobs {
    pub fn new(client: &aws_sdk_s3::Client, bucket: &str) -> Self {
        S3Blobs {
            client: client.clone(),
            bucket: bucket.to_owned(),
            part_size: MULTIPART_THRESHOLD,
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn error<E, R>(
        &self,
        what: &str,
        key: &BlobKey,
        e: aws_sdk_s3::error::SdkError<E, R>,
    ) -> BlobError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let message = format!("{what} s3://{}/{key}: {}", self.bucket, describe(&e));
        if is_transient(&e) {
            BlobError::Transient(message)
        } else {
            BlobError::Backend(message)
        }
    }

    /// Uploads a file, streaming it from disk: in one request if small,
    /// otherwise as a multipart upload of [`MULTIPART_THRESHOLD`]-sized parts.
    pub async fn put_file(
        &self,
        key: &BlobKey,
        path: &Path,
        content_type: &str,
    ) -> Result<(), BlobError> {
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|e| BlobError::Backend(format!("read {}: {e}", path.display())))?
            .len();
        if len <= self.part_size {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| BlobError::Backend(format!("read {}: {e}", path.display())))?;
            return self.put_object(key, body, content_type).await;
        }
        self.multipart(key, Source::File(path), len, content_type)
            .await
    }

    async fn put_object(
        &self,
        key: &BlobKey,
        body: ByteStream,
        content_type: &str,
    ) -> Result<(), BlobError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| self.error("put", key, e))?;
        Ok(())
    }

    async fn multipart(
        &self,
        key: &BlobKey,
        source: Source<'_>,
        len: u64,
        content_type: &str,
    ) -> Result<(), BlobError> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| self.error("start upload of", key, e))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| {
                BlobError::Backend("S3 started a multipart upload without an id".into())
            })?
            .to_owned();
        let result = self.upload_parts(key, &source, len, &upload_id).await;
        let parts = match result {
            Ok(parts) => parts,
            Err(e) => {
                // Abort so S3 does not keep (and bill) the parts already sent.
                if let Err(abort) = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key.as_str())
                    .upload_id(&upload_id)
                    .send()
                    .await
                {
                    tracing::warn!(%key, error = %describe(&abort), "could not abort multipart upload");
                }
                return Err(e);
            }
        };
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error("complete upload of", key, e))?;
        Ok(())
    }

    async fn upload_parts(
        &self,
        key: &BlobKey,
        source: &Source<'_>,
        len: u64,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>, BlobError> {
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1;
        while offset < len {
            let size = self.part_size.min(len - offset);
            let body = match source {
                Source::Memory(bytes) => {
                    ByteStream::from(bytes.slice(offset as usize..(offset + size) as usize))
                }
                Source::File(path) => ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(size))
                    .build()
                    .await
                    .map_err(|e| BlobError::Backend(format!("read {}: {e}", path.display())))?,
            };
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(upload_id)
                .part_number(number)
                .body(body)
                .send()
                .await
                .map_err(|e| self.error("upload part of", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(out.e_tag)
                    .part_number(number)
                    .build(),
            );
            offset += size;
            number += 1;
        }
        Ok(parts)
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, key: &BlobKey, bytes: Bytes, content_type: &str) -> Result<(), BlobError> {
        let len = bytes.len() as u64;
        if len > self.part_size {
            return self
                .multipart(key, Source::Memory(&bytes), len, content_type)
                .await;
        }
        self.put_object(key, ByteStream::from(bytes), content_type)
            .await
    }

    async fn get(&self, key: &BlobKey) -> Result<Blob, BlobError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    BlobError::NotFound(key.clone())
                } else {
                    self.error("get", key, e)
                }
            })?;
        let content_type = out
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| {
                BlobError::Transient(format!("read body of s3://{}/{key}: {e}", self.bucket))
            })?
            .into_bytes();
        Ok(Blob {
            bytes,
            content_type,
        })
    }

    async fn size(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(out.content_length().map(|l| l.max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(self.error("head", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobKey>, BlobError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                BlobError::Backend(format!(
                    "list s3://{}/{prefix}: {}",
                    self.bucket,
                    describe(&e)
                ))
            })?;
            objects.extend(page.contents.unwrap_or_default());
        }
        let mut keys = objects
            .iter()
            .filter_map(|o| o.key())
            .map(|k| {
                BlobKey::new(k).map_err(|e| {
                    BlobError::Backend(format!("bucket holds an invalid key {k:?}: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_keys_are_url_decoded() {
        assert_eq!(
            key_from_notification("uploads/o-1/my+photo%281%29.jpg")
                .unwrap()
                .as_str(),
            "uploads/o-1/my photo(1).jpg"
        );
        assert_eq!(
            key_from_notification("uploads/%C3%A9t%C3%A9.png")
                .unwrap()
                .as_str(),
            "uploads/été.png"
        );
        assert_eq!(
            key_from_notification("a%2Bb").unwrap().as_str(),
            "a+b",
            "an encoded plus stays a plus"
        );
        assert!(
            key_from_notification("uploads/%2E%2E/x").is_err(),
            "decoding happens before validation"
        );
    }
}
