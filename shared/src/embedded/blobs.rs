//! Blobs as files under a root folder.
//!
//! `<root>/<key>` holds the bytes, so a human can open a thumbnail by path.
//! The content type sits beside it in a hidden sidecar `.sy-meta.<name>.json`,
//! and writes go through a hidden temp file `.sy-tmp.<name>.<n>` that is
//! fsynced and renamed into place, so a reader never sees half a blob.
//! Segments starting with `.sy-` are therefore reserved.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::faults::{FaultTarget, Faults};
use crate::blob_key::BlobKey;
use crate::ports::{Blob, BlobError, BlobStore, Capabilities};

const RESERVED: &str = ".sy-";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

#[derive(Serialize, Deserialize)]
struct Meta {
    content_type: String,
}

/// The blob port over a folder.
#[derive(Debug, Clone)]
pub struct FolderBlobStore {
    inner: Arc<Inner>,
    faults: Arc<Faults>,
}

#[derive(Debug)]
struct Inner {
    /// Canonical, so containment checks compare like with like.
    root: PathBuf,
    temp_counter: AtomicU64,
    /// Whether writes are fsynced (see [`FolderBlobStore::without_fsync`]).
    durable: bool,
}

fn backend(path: &Path, e: impl std::fmt::Display) -> BlobError {
    BlobError::Backend(format!("{}: {e}", path.display()))
}

impl FolderBlobStore {
    /// Uses (creating if needed) `root` as the blob folder.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, BlobError> {
        let root = root.as_ref();
        fs::create_dir_all(root).map_err(|e| backend(root, e))?;
        Self::existing(root)
    }

    /// The same folder, written without fsync: for a store that is not
    /// durable itself (in memory), whose blobs need not survive a crash
    /// either. Writes stay atomic (a temporary file renamed into place).
    pub fn without_fsync(self) -> Self {
        FolderBlobStore {
            inner: Arc::new(Inner {
                root: self.inner.root.clone(),
                temp_counter: AtomicU64::new(0),
                durable: false,
            }),
            faults: self.faults,
        }
    }

    /// Uses `root`, which must exist, as the blob folder: for commands that
    /// only read a data dir, and so must not create anything in it.
    pub fn existing(root: impl AsRef<Path>) -> Result<Self, BlobError> {
        let root = root.as_ref();
        let root = root.canonicalize().map_err(|e| backend(root, e))?;
        Ok(FolderBlobStore {
            inner: Arc::new(Inner {
                root,
                temp_counter: AtomicU64::new(0),
                durable: true,
            }),
            faults: Arc::new(Faults::default()),
        })
    }

    /// Shares a fault switch (usually the store's) so one plan drives both.
    pub fn with_faults(self, faults: Arc<Faults>) -> Self {
        FolderBlobStore { faults, ..self }
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub fn capabilities(&self) -> Capabilities {
        super::CAPABILITIES
    }

    /// Where a key's bytes live (for printing paths); refuses reserved names.
    pub fn path_of(&self, key: &BlobKey) -> Result<PathBuf, BlobError> {
        if key.as_str().split('/').any(|s| s.starts_with(RESERVED)) {
            return Err(BlobError::Backend(format!(
                "blob key {key} uses a segment starting with {RESERVED:?}, which the folder store reserves"
            )));
        }
        Ok(self.inner.root.join(key.as_str()))
    }

    fn maybe_fail(&self) -> Result<(), BlobError> {
        if self.faults.roll(FaultTarget::Blob) {
            return Err(BlobError::Transient("injected fault".to_owned()));
        }
        Ok(())
    }

    /// Runs blocking file I/O off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, BlobError> + Send + 'static,
    ) -> Result<T, BlobError> {
        self.maybe_fail()?;
        let inner = Arc::clone(&self.inner);
        // Inline on a virtual-time replay's thread (see `run_blocking`).
        crate::ports::clock::run_blocking(move || f(&inner))
            .await
            .map_err(|e| BlobError::Backend(format!("blob task failed: {e}")))?
    }
}

impl Inner {
    /// Refuses a path that resolves (through symlinks) outside the root.
    fn contained(&self, path: &Path) -> Result<PathBuf, BlobError> {
        let real = path.canonicalize().map_err(|e| backend(path, e))?;
        if !real.starts_with(&self.root) {
            return Err(BlobError::Backend(format!(
                "{} resolves outside the blob folder {}; refused",
                path.display(),
                self.root.display()
            )));
        }
        Ok(real)
    }

    /// The existing file of a key, checked to be inside the root; `None` if absent.
    fn existing(&self, path: &Path) -> Result<Option<PathBuf>, BlobError> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotADirectory => Ok(None),
            Err(e) => Err(backend(path, e)),
            Ok(_) => {
                let real = self.contained(path)?;
                if real.is_dir() {
                    return Ok(None);
                }
                Ok(Some(real))
            }
        }
    }

    fn write_atomically(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!("{RESERVED}tmp.{name}.{}.{n}", std::process::id()));
        let target = dir.join(name);
        let result = (|| {
            let mut f = super::private_file(
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true),
            )
            .open(&temp)?;
            f.write_all(bytes)?;
            if self.durable {
                f.sync_all()?;
            }
            fs::rename(&temp, &target)
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&temp);
            backend(&target, e)
        })
    }
}

fn sidecar(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{RESERVED}meta.{name}.json"))
}

fn read_content_type(path: &Path) -> Result<String, BlobError> {
    match fs::read(sidecar(path)) {
        Ok(text) => serde_json::from_slice::<Meta>(&text)
            .map(|m| m.content_type)
            .map_err(|e| backend(&sidecar(path), e)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(DEFAULT_CONTENT_TYPE.to_owned()),
        Err(e) => Err(backend(&sidecar(path), e)),
    }
}

/// Keys of the files under `dir` (recursively), skipping reserved names and
/// symlinks (which could lead outside the root or loop).
fn walk(dir: &Path, rel: &str, prefix: &str, out: &mut Vec<BlobKey>) -> Result<(), BlobError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(backend(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| backend(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(RESERVED) {
            continue;
        }
        let key = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry.file_type().map_err(|e| backend(&entry.path(), e))?;
        if kind.is_dir() {
            // Only descend where keys could still match the prefix.
            if prefix.starts_with(&key) || key.starts_with(prefix) {
                walk(&entry.path(), &key, prefix, out)?;
            }
        } else if kind.is_file() && key.starts_with(prefix) {
            if let Ok(k) = BlobKey::new(key) {
                out.push(k);
            }
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FolderBlobStore {
    async fn put(&self, key: &BlobKey, bytes: Bytes, content_type: &str) -> Result<(), BlobError> {
        let path = self.path_of(key)?;
        let content_type = content_type.to_owned();
        self.blocking(move |inner| {
            let dir = path
                .parent()
                .expect("a key has at least one segment")
                .to_path_buf();
            let name = path
                .file_name()
                .expect("a key has a file name")
                .to_string_lossy()
                .into_owned();
            fs::create_dir_all(&dir).map_err(|e| backend(&dir, e))?;
            let dir = inner.contained(&dir)?;
            if fs::symlink_metadata(dir.join(&name)).is_ok() {
                inner.contained(&dir.join(&name))?;
            }
            let meta = serde_json::to_vec(&Meta { content_type }).map_err(|e| backend(&dir, e))?;
            // Sidecar first: a reader may briefly see the new type with the
            // old bytes, never a blob without a type.
            inner.write_atomically(&dir, &format!("{RESERVED}meta.{name}.json"), &meta)?;
            inner.write_atomically(&dir, &name, &bytes)?;
            if !inner.durable {
                return Ok(());
            }
            // Make the renames themselves durable.
            fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| backend(&dir, e))
        })
        .await
    }

    async fn get(&self, key: &BlobKey) -> Result<Blob, BlobError> {
        let path = self.path_of(key)?;
        let key = key.clone();
        self.blocking(move |inner| {
            let Some(real) = inner.existing(&path)? else {
                return Err(BlobError::NotFound(key));
            };
            let bytes = match fs::read(&real) {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::NotFound => return Err(BlobError::NotFound(key)),
                Err(e) => return Err(backend(&real, e)),
            };
            Ok(Blob {
                bytes: Bytes::from(bytes),
                content_type: read_content_type(&real)?,
            })
        })
        .await
    }

    async fn size(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        let path = self.path_of(key)?;
        self.blocking(move |inner| match inner.existing(&path)? {
            None => Ok(None),
            Some(real) => Ok(Some(
                fs::metadata(&real).map_err(|e| backend(&real, e))?.len(),
            )),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobKey>, BlobError> {
        // The folder part of the prefix must itself be a clean relative path.
        let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        if !dir_part.is_empty() {
            BlobKey::new(dir_part)
                .map_err(|e| BlobError::Backend(format!("invalid list prefix {prefix:?}: {e}")))?;
        }
        if prefix.chars().any(char::is_control) {
            return Err(BlobError::Backend(format!(
                "invalid list prefix {prefix:?}: control character"
            )));
        }
        let prefix = prefix.to_owned();
        self.blocking(move |inner| {
            let mut out = Vec::new();
            walk(&inner.root, "", &prefix, &mut out)?;
            out.sort();
            Ok(out)
        })
        .await
    }
}
