//! The single table: items keyed by `pk` + `sk`, conditional writes and
//! transactions, as DynamoDB offers them.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// An item: a JSON object holding at least string attributes `pk` and `sk`.
pub type Item = Map<String, Value>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
    /// Reads the key of an item; `None` if `pk` or `sk` is missing or not a string.
    pub fn of(item: &Item) -> Option<Key> {
        Some(Key::new(
            item.get("pk")?.as_str()?,
            item.get("sk")?.as_str()?,
        ))
    }
}

/// A write's precondition on the item as it is now.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Always,
    /// No item with this key exists.
    Absent,
    /// An item with this key exists.
    Present,
    /// The item exists and its numeric `version` attribute equals this.
    VersionIs(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum TxOp {
    Put { item: Item, condition: Condition },
    Delete { key: Key, condition: Condition },
    Check { key: Key, condition: Condition },
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The condition did not hold; `current` is the item as it is (DynamoDB's
    /// `ReturnValuesOnConditionCheckFailure`), so no second read is needed.
    #[error("condition failed on {key:?}")]
    ConditionFailed {
        key: Key,
        current: Option<Box<Item>>,
    },
    /// A transaction was cancelled; one entry per op, `Some` where its condition failed.
    #[error("transaction cancelled")]
    TransactionCancelled {
        failures: Vec<Option<Option<Box<Item>>>>,
    },
    #[error("invalid item: {0}")]
    InvalidItem(String),
    #[error("transient table error (retry): {0}")]
    Transient(String),
    #[error("table backend error: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Table: Send + Sync {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError>;

    /// [`get`](Self::get), the item as its JSON text: for a reader that
    /// deserializes its own type (see [`TableRecord::from_text`](crate::items::TableRecord::from_text)).
    /// The default serializes what `get` returns; an adapter that stores
    /// the text hands it over as it is.
    async fn get_text(&self, key: &Key) -> Result<Option<Arc<str>>, TableError> {
        let item = self.get(key).await?;
        Ok(item.map(|i| Arc::from(Value::Object(i).to_string())))
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), TableError>;

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), TableError>;

    /// All-or-nothing: every condition holds and every write lands, or nothing does.
    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), TableError>;

    /// Items of one partition, sorted by `sk`, optionally those whose `sk` starts with a prefix.
    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, TableError>;

    /// Every item, sorted by key (for state dumps and tests; not a hot path).
    async fn scan(&self) -> Result<Vec<Item>, TableError>;
}
