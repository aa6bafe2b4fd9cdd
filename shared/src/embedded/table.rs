//! The single table: items as JSON text keyed by (pk, sk), in key order.
//! Every write appends its change-stream record under the same lock, and
//! the two are journaled together (the stream is an outbox).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::faults::FaultTarget;
use super::journal::Op;
use super::store::{Changes, EmbeddedStore, Unwritable};
use crate::ports::{Capabilities, Condition, Item, Key, Table, TableError, TxOp};

/// DynamoDB's limits, kept so the embedded table refuses what AWS would.
const MAX_ITEM_BYTES: usize = 400 * 1024;
const MAX_PK_BYTES: usize = 2048;
const MAX_SK_BYTES: usize = 1024;
const MAX_TX_OPS: usize = 100;

impl From<Unwritable> for TableError {
    fn from(e: Unwritable) -> Self {
        TableError::Backend(e.to_string())
    }
}

/// The table port over an [`EmbeddedStore`].
#[derive(Clone, Debug)]
pub struct EmbeddedTable {
    store: Arc<EmbeddedStore>,
}

impl EmbeddedStore {
    pub fn table(self: &Arc<Self>) -> EmbeddedTable {
        EmbeddedTable {
            store: Arc::clone(self),
        }
    }
}

impl EmbeddedTable {
    pub fn capabilities(&self) -> Capabilities {
        super::CAPABILITIES
    }

    fn maybe_fail(&self) -> Result<(), TableError> {
        if self.store.faults.roll(FaultTarget::Table) {
            return Err(TableError::Transient("injected fault".to_owned()));
        }
        Ok(())
    }
}

/// A write ready to apply: the key, the new body (None = delete).
struct Write {
    key: Key,
    body: Option<String>,
}

fn validate_key(key: &Key) -> Result<(), TableError> {
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err(TableError::InvalidItem(format!(
            "key {key:?}: pk and sk must be non-empty strings"
        )));
    }
    if key.pk.len() > MAX_PK_BYTES || key.sk.len() > MAX_SK_BYTES {
        return Err(TableError::InvalidItem(format!(
            "key {key:?}: pk is limited to {MAX_PK_BYTES} bytes and sk to {MAX_SK_BYTES}"
        )));
    }
    Ok(())
}

/// Checks an item and serialises it once.
fn encode(item: &Item) -> Result<(Key, String), TableError> {
    let key = Key::of(item).ok_or_else(|| {
        TableError::InvalidItem("item needs string attributes `pk` and `sk`".to_owned())
    })?;
    validate_key(&key)?;
    let body = serde_json::to_string(item).map_err(|e| TableError::InvalidItem(e.to_string()))?;
    if body.len() > MAX_ITEM_BYTES {
        return Err(TableError::InvalidItem(format!(
            "item {key:?} is {} bytes, over DynamoDB's 400 KB ({MAX_ITEM_BYTES}-byte) item limit",
            body.len()
        )));
    }
    Ok((key, body))
}

fn decode(body: &str) -> Result<Item, TableError> {
    serde_json::from_str(body)
        .map_err(|e| TableError::Backend(format!("stored item is not JSON: {e}")))
}

/// Whether `condition` holds on the item as stored (`body`).
fn holds(condition: &Condition, body: Option<&str>) -> bool {
    match condition {
        Condition::Always => true,
        Condition::Absent => body.is_none(),
        Condition::Present => body.is_some(),
        Condition::VersionIs(n) => body.is_some_and(|b| version_of(b) == Some(*n)),
    }
}

/// The numeric `version` attribute, parsed without building the whole item.
fn version_of(body: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Versioned {
        version: Option<serde_json::Number>,
    }
    let v: Versioned = serde_json::from_str(body).ok()?;
    let n = v.version?;
    // DynamoDB compares numbers by value: 3 and 3.0 are equal.
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
            .map(|f| f as u64)
    })
}

fn failed_item(body: Option<&Arc<str>>) -> Result<Option<Box<Item>>, TableError> {
    body.map(|b| decode(b).map(Box::new)).transpose()
}

/// Applies one write with its stream record. A delete of an absent item
/// changes nothing and records nothing, as on DynamoDB.
fn apply(c: &mut Changes<'_>, w: &Write, at_ms: i64, woken: &mut Vec<usize>) {
    if w.body.is_none() && !c.state.items.contains_key(&w.key) {
        return;
    }
    let seq = c.state.next_seq;
    c.apply(Op::Write {
        pk: &w.key.pk,
        sk: &w.key.sk,
        body: w.body.as_deref(),
        seq,
        at_ms,
    });
    let shard = c.state.shard_of(&w.key.pk);
    if !woken.contains(&shard) {
        woken.push(shard);
    }
}

/// One op of a transaction, validated.
struct Planned {
    write: Write,
    condition: Condition,
    /// `false` for a condition check that writes nothing.
    writes: bool,
}

/// A table write, checked and applied under the store's lock.
enum JobKind {
    One(Write, Condition),
    Many(Vec<Planned>),
}

/// Checks the conditions, then writes; a refusal writes nothing.
fn run_job(c: &mut Changes<'_>, kind: &JobKind, woken: &mut Vec<usize>) -> Result<(), TableError> {
    let at_ms = c.now_ms;
    match kind {
        JobKind::One(w, condition) => {
            let old = c.state.items.get(&w.key);
            if !holds(condition, old.map(|b| &**b)) {
                return Err(TableError::ConditionFailed {
                    key: w.key.clone(),
                    current: failed_item(old)?,
                });
            }
            apply(c, w, at_ms, woken);
        }
        JobKind::Many(planned) => {
            // Check every condition before writing anything.
            let mut failures = Vec::with_capacity(planned.len());
            for p in planned {
                let old = c.state.items.get(&p.write.key);
                failures.push(if holds(&p.condition, old.map(|b| &**b)) {
                    None
                } else {
                    Some(failed_item(old)?)
                });
            }
            if failures.iter().any(Option::is_some) {
                return Err(TableError::TransactionCancelled { failures });
            }
            for p in planned.iter().filter(|p| p.writes) {
                apply(c, &p.write, at_ms, woken);
            }
        }
    }
    Ok(())
}

impl EmbeddedTable {
    /// Applies a write and wakes the stream's readers. It is durable with
    /// the next commit (see [`EmbeddedStore::sync`]).
    async fn submit(&self, kind: JobKind) -> Result<(), TableError> {
        self.maybe_fail()?;
        let mut woken = Vec::new();
        self.store.change(|c| run_job(c, &kind, &mut woken))?;
        for shard in woken {
            self.store.stream_notify(shard).notify_waiters();
        }
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&super::state::State) -> T) -> T {
        f(&self.store.lock().state)
    }
}

#[async_trait]
impl Table for EmbeddedTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let body = self.get_text(key).await?;
        body.map(|b| decode(&b)).transpose()
    }

    async fn get_text(&self, key: &Key) -> Result<Option<Arc<str>>, TableError> {
        self.maybe_fail()?;
        validate_key(key)?;
        Ok(self.read(|s| s.items.get(key).cloned()))
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), TableError> {
        let (key, body) = encode(&item)?;
        let write = Write {
            key,
            body: Some(body),
        };
        self.submit(JobKind::One(write, condition)).await
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), TableError> {
        validate_key(key)?;
        let write = Write {
            key: key.clone(),
            body: None,
        };
        self.submit(JobKind::One(write, condition)).await
    }

    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), TableError> {
        if ops.is_empty() || ops.len() > MAX_TX_OPS {
            return Err(TableError::InvalidItem(format!(
                "a transaction has 1..={MAX_TX_OPS} operations, got {}",
                ops.len()
            )));
        }
        // Validate everything before touching the database.
        let mut seen = HashSet::with_capacity(ops.len());
        let mut planned = Vec::with_capacity(ops.len());
        for op in ops {
            let (key, body, condition, writes) = match op {
                TxOp::Put { item, condition } => {
                    let (key, body) = encode(&item)?;
                    (key, Some(body), condition, true)
                }
                TxOp::Delete { key, condition } => (key, None, condition, true),
                TxOp::Check { key, condition } => (key, None, condition, false),
            };
            validate_key(&key)?;
            if !seen.insert(key.clone()) {
                return Err(TableError::InvalidItem(format!(
                    "transaction touches {key:?} twice; DynamoDB allows one operation per item"
                )));
            }
            planned.push(Planned {
                write: Write { key, body },
                condition,
                writes,
            });
        }
        self.submit(JobKind::Many(planned)).await
    }

    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, TableError> {
        self.maybe_fail()?;
        let prefix = sk_prefix.unwrap_or("");
        let bodies: Vec<Arc<str>> =
            self.read(|s| s.items.query(pk, prefix).map(Arc::clone).collect());
        bodies.iter().map(|b| decode(b)).collect()
    }

    async fn scan(&self) -> Result<Vec<Item>, TableError> {
        let bodies: Vec<Arc<str>> = self.read(|s| s.items.sorted().cloned().collect());
        bodies.iter().map(|b| decode(b)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_compares_by_value() {
        assert_eq!(version_of(r#"{"pk":"a","version":3}"#), Some(3));
        assert_eq!(version_of(r#"{"pk":"a","version":3.0}"#), Some(3));
        assert_eq!(version_of(r#"{"pk":"a","version":3.5}"#), None);
        assert_eq!(
            version_of(r#"{"pk":"a","version":"3"}"#),
            None,
            "a string is not a number"
        );
        assert_eq!(version_of(r#"{"pk":"a"}"#), None);
        assert!(
            !holds(&Condition::VersionIs(0), Some(r#"{"pk":"a"}"#)),
            "no version is not version 0"
        );
    }
}
