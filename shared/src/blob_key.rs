//! Blob keys, validated once at the edge so no adapter can be walked out of
//! its folder or bucket prefix.

use std::fmt;

use serde::{Deserialize, Serialize};

/// S3's own limit on key length, in bytes.
const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobKeyError {
    #[error("blob key is empty")]
    Empty,
    #[error("blob key is longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
    #[error("blob key {0:?} is absolute; keys are relative")]
    Absolute(String),
    #[error("blob key {0:?} has a `..` or `.` segment")]
    Traversal(String),
    #[error("blob key {0:?} has an empty segment")]
    EmptySegment(String),
    #[error("blob key has a NUL or control character")]
    ControlCharacter,
    #[error("blob key {0:?} uses a backslash; use `/`")]
    Backslash(String),
}

impl BlobKey {
    pub fn new(key: impl Into<String>) -> Result<Self, BlobKeyError> {
        let key = key.into();
        if key.is_empty() {
            return Err(BlobKeyError::Empty);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(BlobKeyError::TooLong);
        }
        if key.chars().any(char::is_control) {
            return Err(BlobKeyError::ControlCharacter);
        }
        if key.contains('\\') {
            return Err(BlobKeyError::Backslash(key));
        }
        if key.starts_with('/') || key.as_bytes().get(1) == Some(&b':') {
            return Err(BlobKeyError::Absolute(key));
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err(BlobKeyError::EmptySegment(key)),
                "." | ".." => return Err(BlobKeyError::Traversal(key)),
                _ => {}
            }
        }
        Ok(BlobKey(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BlobKey {
    type Error = BlobKeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        BlobKey::new(s)
    }
}

impl From<BlobKey> for String {
    fn from(k: BlobKey) -> String {
        k.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        assert!(BlobKey::new("uploads/o-1/i-1.jpg").is_ok());
        assert!(BlobKey::new("thumbnails/i-1/512.webp").is_ok());
        assert!(
            BlobKey::new("a..b/c").is_ok(),
            "`..` inside a name is not traversal"
        );
    }

    #[test]
    fn rejects_escapes() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a\0b",
            "C:/x",
            "a\\b",
            "a/",
        ] {
            assert!(BlobKey::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(BlobKey::new("k".repeat(1025)).is_err());
    }
}
