//! Blobs in memory: for a store that is in memory itself (scenarios and
//! replays in tests), whose blobs need not outlive it. Nothing touches the
//! disk, so a replay that writes thousands of thumbnails creates no file
//! (on ext4 each new file's inode was most of such a replay's CPU).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use super::faults::{FaultTarget, Faults};
use crate::blob_key::BlobKey;
use crate::ports::{Blob, BlobError, BlobStore, Capabilities};

/// The blob port over a map in memory; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlobStore {
    blobs: Arc<Mutex<BTreeMap<BlobKey, Blob>>>,
    faults: Arc<Faults>,
}

impl MemoryBlobStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Shares a fault switch (usually the store's) so one plan drives both.
    pub fn with_faults(self, faults: Arc<Faults>) -> Self {
        MemoryBlobStore { faults, ..self }
    }

    pub fn capabilities(&self) -> Capabilities {
        super::CAPABILITIES
    }

    /// The map, after the fault switch had its say (as every folder operation has).
    fn open(&self) -> Result<MutexGuard<'_, BTreeMap<BlobKey, Blob>>, BlobError> {
        if self.faults.roll(FaultTarget::Blob) {
            return Err(BlobError::Transient("injected fault".to_owned()));
        }
        Ok(self.blobs.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(&self, key: &BlobKey, bytes: Bytes, content_type: &str) -> Result<(), BlobError> {
        let blob = Blob {
            bytes,
            content_type: content_type.to_owned(),
        };
        self.open()?.insert(key.clone(), blob);
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Blob, BlobError> {
        self.open()?
            .get(key)
            .cloned()
            .ok_or_else(|| BlobError::NotFound(key.clone()))
    }

    async fn size(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        Ok(self.open()?.get(key).map(|b| b.bytes.len() as u64))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobKey>, BlobError> {
        // Keys sort as strings, so those with the prefix are one run of the map.
        Ok(self
            .open()?
            .keys()
            .skip_while(|k| k.as_str() < prefix)
            .take_while(|k| k.as_str().starts_with(prefix))
            .cloned()
            .collect())
    }
}
