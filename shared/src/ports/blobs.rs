//! Blob storage (a folder locally, S3 on AWS). Keys are validated [`BlobKey`]s.

use async_trait::async_trait;
use bytes::Bytes;

use crate::blob_key::BlobKey;

#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub bytes: Bytes,
    pub content_type: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no blob at {0}")]
    NotFound(BlobKey),
    #[error("transient blob error (retry): {0}")]
    Transient(String),
    #[error("blob backend error: {0}")]
    Backend(String),
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &BlobKey, bytes: Bytes, content_type: &str) -> Result<(), BlobError>;
    async fn get(&self, key: &BlobKey) -> Result<Blob, BlobError>;
    /// Size in bytes, without fetching the body; `None` if absent.
    async fn size(&self, key: &BlobKey) -> Result<Option<u64>, BlobError>;
    async fn list(&self, prefix: &str) -> Result<Vec<BlobKey>, BlobError>;
}
