//! The single table on SQLite: items as JSON text keyed by (pk, sk). Every
//! write appends its change-stream record in the same transaction.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction};
use serde::Deserialize;

use super::faults::FaultTarget;
use super::store::{now_ms, EmbeddedStore};
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

fn current(tx: &Transaction<'_>, key: &Key) -> Result<Option<String>, TableError> {
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
fn apply(
    store: &EmbeddedStore,
    tx: &Transaction<'_>,
    w: &Write,
    old: Option<&str>,
    at_ms: i64,
) -> Result<bool, TableError> {
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
        (None, None) => return Ok(false),
    };
    let mut st = tx.prepare_cached(
        "INSERT INTO stream (shard, event, pk, sk, new_image, old_image, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    st.execute((
        store.shard_of(&w.key.pk),
        event,
        &w.key.pk,
        &w.key.sk,
        w.body.as_deref(),
        old,
        at_ms,
    ))?;
    Ok(true)
}

impl EmbeddedTable {
    /// One conditional write (put or delete) in its own transaction.
    fn write_one(&self, w: Write, condition: &Condition) -> Result<(), TableError> {
        self.maybe_fail()?;
        let store = &*self.store;
        let recorded = store.write(|tx| {
            let old = current(tx, &w.key)?;
            if !holds(condition, old.as_deref()) {
                return Err(TableError::ConditionFailed {
                    key: w.key.clone(),
                    current: failed_item(old)?,
                });
            }
            apply(store, tx, &w, old.as_deref(), now_ms())
        })?;
        if recorded {
            store.stream_notify.notify_waiters();
        }
        Ok(())
    }
}

#[async_trait]
impl Table for EmbeddedTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.maybe_fail()?;
        validate_key(key)?;
        let conn = self.store.lock();
        let mut st = conn.prepare_cached("SELECT body FROM items WHERE pk = ?1 AND sk = ?2")?;
        let body: Option<String> = st.query_row((&key.pk, &key.sk), |r| r.get(0)).optional()?;
        body.map(|b| decode(&b)).transpose()
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), TableError> {
        let (key, body) = encode(&item)?;
        self.write_one(
            Write {
                key,
                body: Some(body),
            },
            &condition,
        )
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), TableError> {
        validate_key(key)?;
        self.write_one(
            Write {
                key: key.clone(),
                body: None,
            },
            &condition,
        )
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
        for op in &ops {
            let (w, condition, writes) = match op {
                TxOp::Put { item, condition } => {
                    let (key, body) = encode(item)?;
                    (
                        Write {
                            key,
                            body: Some(body),
                        },
                        condition,
                        true,
                    )
                }
                TxOp::Delete { key, condition } => (
                    Write {
                        key: key.clone(),
                        body: None,
                    },
                    condition,
                    true,
                ),
                TxOp::Check { key, condition } => (
                    Write {
                        key: key.clone(),
                        body: None,
                    },
                    condition,
                    false,
                ),
            };
            validate_key(&w.key)?;
            if !seen.insert(w.key.clone()) {
                return Err(TableError::InvalidItem(format!(
                    "transaction touches {:?} twice; DynamoDB allows one operation per item",
                    w.key
                )));
            }
            planned.push((w, condition, writes));
        }
        self.maybe_fail()?;
        let store = &*self.store;
        let recorded = store.write(|tx| {
            let mut olds = Vec::with_capacity(planned.len());
            let mut failures = Vec::with_capacity(planned.len());
            let mut any_failed = false;
            for (w, condition, _) in &planned {
                let old = current(tx, &w.key)?;
                if holds(condition, old.as_deref()) {
                    failures.push(None);
                } else {
                    any_failed = true;
                    failures.push(Some(failed_item(old.clone())?));
                }
                olds.push(old);
            }
            if any_failed {
                // Returning Err drops the transaction: nothing is written.
                return Err(TableError::TransactionCancelled { failures });
            }
            let at_ms = now_ms();
            let mut recorded = false;
            for ((w, _, writes), old) in planned.iter().zip(&olds) {
                if *writes {
                    recorded |= apply(store, tx, w, old.as_deref(), at_ms)?;
                }
            }
            Ok(recorded)
        })?;
        if recorded {
            store.stream_notify.notify_waiters();
        }
        Ok(())
    }

    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, TableError> {
        self.maybe_fail()?;
        let prefix = sk_prefix.unwrap_or("");
        let conn = self.store.lock();
        // Range scan from the prefix, stopping at the first key past it.
        let mut st = conn
            .prepare_cached("SELECT sk, body FROM items WHERE pk = ?1 AND sk >= ?2 ORDER BY sk")?;
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
    }

    async fn scan(&self) -> Result<Vec<Item>, TableError> {
        let conn = self.store.lock();
        let mut st = conn.prepare_cached("SELECT body FROM items ORDER BY pk, sk")?;
        let bodies = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
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
