//! The blob port's conformance suite.

use bytes::Bytes;

use super::run_id;
use crate::blob_key::BlobKey;
use crate::ports::{BlobError, BlobStore, Capabilities};

const SUITE: &str = "blobs";

fn key(s: &str) -> BlobKey {
    BlobKey::new(s).unwrap_or_else(|e| panic!("{SUITE}: test key {s:?}: {e}"))
}

/// Round trips with content types, overwrite, sizes, missing keys, and
/// listing by prefix (sorted, prefix need not end at a `/`).
pub async fn blob_suite(blobs: &dyn BlobStore, _caps: Capabilities) {
    let run = run_id();
    let root = format!("conf-{run}");

    // every byte value survives
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let original = key(&format!("{root}/uploads/o-1/i-1.jpg"));
    blobs
        .put(&original, Bytes::from(binary.clone()), "image/jpeg")
        .await
        .expect("put");
    let got = blobs.get(&original).await.expect("get");
    assert_eq!(
        got.bytes.as_ref(),
        binary.as_slice(),
        "{SUITE}/round-trip: bytes"
    );
    assert_eq!(
        got.content_type, "image/jpeg",
        "{SUITE}/round-trip: content type"
    );
    assert_eq!(
        blobs.size(&original).await.unwrap(),
        Some(binary.len() as u64),
        "{SUITE}/size"
    );

    // overwrite replaces bytes and type
    blobs
        .put(&original, Bytes::from_static(b"RIFF....WEBP"), "image/webp")
        .await
        .expect("overwrite");
    let got = blobs.get(&original).await.unwrap();
    assert_eq!(
        (got.bytes.as_ref(), got.content_type.as_str()),
        (&b"RIFF....WEBP"[..], "image/webp"),
        "{SUITE}/overwrite"
    );
    assert_eq!(blobs.size(&original).await.unwrap(), Some(12));

    // an empty blob is a blob
    let empty = key(&format!("{root}/empty"));
    blobs.put(&empty, Bytes::new(), "text/plain").await.unwrap();
    assert_eq!(
        blobs.get(&empty).await.unwrap().bytes.len(),
        0,
        "{SUITE}/empty"
    );
    assert_eq!(
        blobs.size(&empty).await.unwrap(),
        Some(0),
        "{SUITE}/empty-size"
    );

    // missing keys
    let missing = key(&format!("{root}/nope/none.png"));
    match blobs.get(&missing).await {
        Err(BlobError::NotFound(k)) => assert_eq!(k, missing, "{SUITE}/missing: names the key"),
        other => panic!("{SUITE}/missing: expected NotFound, got {other:?}"),
    }
    assert_eq!(
        blobs.size(&missing).await.unwrap(),
        None,
        "{SUITE}/missing-size"
    );

    // listing
    for k in [
        "thumbs/i-1/512.webp",
        "thumbs/i-1/128.webp",
        "thumbs/i-10/128.jpg",
        "thumbs/i-2/128.jpg",
        "thumbsx",
    ] {
        blobs
            .put(
                &key(&format!("{root}/{k}")),
                Bytes::from_static(b"x"),
                "image/jpeg",
            )
            .await
            .unwrap();
    }
    let names = |keys: Vec<BlobKey>| {
        keys.into_iter()
            .map(|k| k.as_str()[root.len() + 1..].to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(blobs.list(&format!("{root}/thumbs/")).await.unwrap()),
        [
            "thumbs/i-1/128.webp",
            "thumbs/i-1/512.webp",
            "thumbs/i-10/128.jpg",
            "thumbs/i-2/128.jpg"
        ],
        "{SUITE}/list-folder: sorted, only under the prefix"
    );
    assert_eq!(
        names(blobs.list(&format!("{root}/thumbs/i-1")).await.unwrap()),
        [
            "thumbs/i-1/128.webp",
            "thumbs/i-1/512.webp",
            "thumbs/i-10/128.jpg"
        ],
        "{SUITE}/list-partial: a prefix need not end at a `/`"
    );
    assert_eq!(
        names(blobs.list(&format!("{root}/")).await.unwrap()),
        [
            "empty",
            "thumbs/i-1/128.webp",
            "thumbs/i-1/512.webp",
            "thumbs/i-10/128.jpg",
            "thumbs/i-2/128.jpg",
            "thumbsx",
            "uploads/o-1/i-1.jpg"
        ],
        "{SUITE}/list-all"
    );
    assert!(
        blobs
            .list(&format!("{root}/nothing-here/"))
            .await
            .unwrap()
            .is_empty(),
        "{SUITE}/list-empty"
    );
}
