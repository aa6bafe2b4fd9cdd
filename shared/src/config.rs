//! Configuration shared by the CLI, the runtime and the Lambda binaries.

use std::path::PathBuf;

/// Where state lives when no `--data-dir` is given.
pub const DEFAULT_DATA_DIR: &str = ".switchyard";

/// Which backend carries events and holds state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// In-process topics, buses and queues, journaled to one SQLite file (the default).
    #[default]
    Embedded,
    /// aws-sdk clients against AWS, or against an emulator at an endpoint.
    Aws,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "embedded" => Ok(BackendKind::Embedded),
            "aws" => Ok(BackendKind::Aws),
            other => Err(format!(
                "unknown backend {other:?} (expected `embedded` or `aws`)"
            )),
        }
    }
}

/// Files of an embedded data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("switchyard.db")
    }
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }
}
