//! The single table on SQLite: items as JSON text keyed by (pk, sk). Every
//! write appends its change-stream record in the same transaction.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use serde::Deserialize;

use super::faults::FaultTarget;
use super::store::EmbeddedStore;
use super::writer::Batch;
use crate::ports::{Capabilities, Condition, Item, Key, Table, TableError, TxOp};

/// DynamoDB's limits, kept so the embedded table refuses what AWS would.
const MAX_ITEM_BYTES: usize = 400 * 1024;
const MAX_PK_BYTES: usize = 2048;
const MAX_SK_BYTES: usize = 1024;
const MAX_TX_OPS: usize = 100;

impl From<rusqlite::Error> for TableError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                TableError::Transient(e.to_string())
            }
            _ => TableError::Backend(e.to_string()),
        }
    }
}

impl super::writer::OpError for TableError {
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            TableError::ConditionFailed { .. }
                | TableError::TransactionCancelled { .. }
                | TableError::InvalidItem(_)
        )
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

fn current(tx: &Connection, key: &Key) -> Result<Option<String>, TableError> {
    let mut st = tx.prepare_cached("SELECT body FROM items WHERE pk = ?1 AND sk = ?2")?;
    Ok(st.query_row((&key.pk, &key.sk), |r| r.get(0)).optional()?)
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

fn failed_item(body: Option<String>) -> Result<Option<Box<Item>>, TableError> {
    body.map(|b| decode(&b).map(Box::new)).transpose()
}

/// Applies one write and appends its stream record. A delete of an absent
/// item changes nothing and records nothing, as on DynamoDB.
fn apply(b: &mut Batch<'_>, w: &Write, old: Option<&str>) -> Result<(), TableError> {
    let tx = b.tx;
    let event = match (&w.body, old) {
        (Some(body), _) => {
            let mut st = tx.prepare_cached(
                "INSERT INTO items (pk, sk, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (pk, sk) DO UPDATE SET body = excluded.body",
            )?;
            st.execute((&w.key.pk, &w.key.sk, body))?;
            // A put of an identical item is still a MODIFY, as on DynamoDB.
            if old.is_some() {
                "MODIFY"
            } else {
                "INSERT"
            }
        }
        (None, Some(_)) => {
            let mut st = tx.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")?;
            st.execute((&w.key.pk, &w.key.sk))?;
            "REMOVE"
        }
        (None, None) => return Ok(()),
    };
    let shard = b.shard_of(&w.key.pk);
    let mut st = tx.prepare_cached(
        "INSERT INTO stream (shard, seq, event, pk, sk, new_image, old_image, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    st.execute((
        shard,
        b.seq.take(),
        event,
        &w.key.pk,
        &w.key.sk,
        w.body.as_deref(),
        old,
        b.at_ms,
    ))?;
    b.wake_shard(shard);
    Ok(())
}

/// One op of a transaction, validated.
struct Planned {
    write: Write,
    condition: Condition,
    /// `false` for a condition check that writes nothing.
    writes: bool,
}

/// A table write for the group commit.
enum JobKind {
    One(Write, Condition),
    Many(Vec<Planned>),
}

/// Runs one write inside the writer's batch transaction. A refusal (a
/// condition that does not hold) writes nothing.
fn run_job(b: &mut Batch<'_>, kind: &JobKind) -> Result<(), TableError> {
    match kind {
        JobKind::One(w, condition) => {
            let old = current(b.tx, &w.key)?;
            if !holds(condition, old.as_deref()) {
                return Err(TableError::ConditionFailed {
                    key: w.key.clone(),
                    current: failed_item(old)?,
                });
            }
            apply(b, w, old.as_deref())
        }
        JobKind::Many(planned) => {
            // Check every condition before writing anything.
            let mut olds = Vec::with_capacity(planned.len());
            let mut failures = Vec::with_capacity(planned.len());
            for p in planned {
                let old = current(b.tx, &p.write.key)?;
                failures.push(if holds(&p.condition, old.as_deref()) {
                    None
                } else {
                    Some(failed_item(old.clone())?)
                });
                olds.push(old);
            }
            if failures.iter().any(Option::is_some) {
                return Err(TableError::TransactionCancelled { failures });
            }
            for (p, old) in planned.iter().zip(&olds) {
                if p.writes {
                    apply(b, &p.write, old.as_deref())?;
                }
            }
            Ok(())
        }
    }
}

impl EmbeddedTable {
    /// Queues a write for the group commit and waits for its outcome.
    async fn submit(&self, kind: JobKind) -> Result<(), TableError> {
        self.maybe_fail()?;
        self.store.submit(move |b| run_job(b, &kind)).await
    }
}

#[async_trait]
impl Table for EmbeddedTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.maybe_fail()?;
        validate_key(key)?;
        let body = self.store.read(|conn| current(conn, key))?;
        body.map(|b| decode(&b)).transpose()
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
        self.store.read(|conn| {
            // Range scan from the prefix, stopping at the first key past it.
            let mut st = conn.prepare_cached(
                "SELECT sk, body FROM items WHERE pk = ?1 AND sk >= ?2 ORDER BY sk",
            )?;
            let mut rows = st.query((pk, prefix))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let sk: String = row.get(0)?;
                if !sk.starts_with(prefix) {
                    break;
                }
                out.push(decode(&row.get::<_, String>(1)?)?);
            }
            Ok(out)
        })
    }

    async fn scan(&self) -> Result<Vec<Item>, TableError> {
        let bodies = self.store.read(|conn| {
            let mut st = conn.prepare_cached("SELECT body FROM items ORDER BY pk, sk")?;
            let bodies = st
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>();
            bodies
        })?;
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
