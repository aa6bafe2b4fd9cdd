//! The blob folder: files where a human expects them, nothing outside the
//! root, and no helper files in listings.

use bytes::Bytes;
use switchyard_shared::embedded::FolderBlobStore;
use switchyard_shared::ports::{BlobError, BlobStore};
use switchyard_shared::BlobKey;

fn key(s: &str) -> BlobKey {
    BlobKey::new(s).unwrap()
}

#[tokio::test]
async fn blobs_are_plain_files_and_helpers_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FolderBlobStore::new(dir.path().join("blobs")).unwrap();
    let k = key("thumbnails/i-1/128.jpg");
    blobs
        .put(&k, Bytes::from_static(b"jpeg bytes"), "image/jpeg")
        .await
        .unwrap();
    let path = blobs.path_of(&k).unwrap();
    assert_eq!(path, blobs.root().join("thumbnails/i-1/128.jpg"));
    assert_eq!(std::fs::read(&path).unwrap(), b"jpeg bytes");
    // the sidecar exists but is not a key
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "the blob and its sidecar, no temp files left: {names:?}"
    );
    assert_eq!(blobs.list("").await.unwrap(), std::slice::from_ref(&k));

    // A blob written before a restart is read back by a new store on the folder.
    let again = FolderBlobStore::new(dir.path().join("blobs")).unwrap();
    assert_eq!(again.get(&k).await.unwrap().content_type, "image/jpeg");

    // A file dropped in by hand has the default type.
    std::fs::write(blobs.root().join("manual.bin"), b"m").unwrap();
    assert_eq!(
        blobs.get(&key("manual.bin")).await.unwrap().content_type,
        "application/octet-stream"
    );
}

#[tokio::test]
async fn reserved_names_and_bad_prefixes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FolderBlobStore::new(dir.path()).unwrap();
    let r = blobs
        .put(&key("a/.sy-meta.x.json"), Bytes::from_static(b"x"), "t")
        .await;
    assert!(matches!(r, Err(BlobError::Backend(m)) if m.contains("reserves")));
    assert!(blobs.list("../").await.is_err());
    assert!(blobs.list("a/../../").await.is_err());
    // a key that is both a file and a folder cannot exist in a folder store
    blobs
        .put(&key("x"), Bytes::from_static(b"x"), "t")
        .await
        .unwrap();
    assert!(blobs
        .put(&key("x/y"), Bytes::from_static(b"y"), "t")
        .await
        .is_err());
    assert!(blobs.get(&key("x/y")).await.is_err());
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_cannot_lead_outside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blobs = FolderBlobStore::new(dir.path().join("blobs")).unwrap();
    std::os::unix::fs::symlink(outside.path(), blobs.root().join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), blobs.root().join("leak")).unwrap();

    for k in ["escape/secret", "leak"] {
        match blobs.get(&key(k)).await {
            Err(BlobError::Backend(m)) => assert!(m.contains("outside"), "{m}"),
            other => panic!("{k}: expected a refusal, got {other:?}"),
        }
        assert!(blobs.size(&key(k)).await.is_err());
    }
    let r = blobs
        .put(&key("escape/planted"), Bytes::from_static(b"x"), "t")
        .await;
    assert!(r.is_err(), "writing through a symlinked folder is refused");
    assert!(!outside.path().join("planted").exists());
    assert!(
        blobs.list("").await.unwrap().is_empty(),
        "symlinks are not listed"
    );
}
