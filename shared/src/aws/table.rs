//! The [`Table`] port on DynamoDB: one table keyed by `pk` (hash) and `sk`
//! (range), conditional writes and transactions. A failed condition comes
//! back with the item as it was (`ReturnValuesOnConditionCheckFailure =
//! ALL_OLD`), so callers never need a second read.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};
use futures::TryStreamExt;

use super::{describe, is_transient};
use crate::ports::{Condition, Item, Key, Table, TableError, TxOp};

/// DynamoDB's limit on actions per `TransactWriteItems`.
const MAX_TRANSACTION_OPS: usize = 100;

type AttrMap = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: aws_sdk_dynamodb::Client,
    name: String,
}

/// A condition as DynamoDB expression parts.
struct Expr {
    text: &'static str,
    names: HashMap<String, String>,
    values: Option<AttrMap>,
}

fn expr(condition: &Condition) -> Option<Expr> {
    let names = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    match condition {
        Condition::Always => None,
        Condition::Absent => Some(Expr {
            text: "attribute_not_exists(#pk)",
            names: names(&[("#pk", "pk")]),
            values: None,
        }),
        Condition::Present => Some(Expr {
            text: "attribute_exists(#pk)",
            names: names(&[("#pk", "pk")]),
            values: None,
        }),
        Condition::VersionIs(v) => Some(Expr {
            text: "attribute_exists(#pk) AND #version = :version",
            names: names(&[("#pk", "pk"), ("#version", "version")]),
            values: Some(HashMap::from([(
                ":version".to_owned(),
                AttributeValue::N(v.to_string()),
            )])),
        }),
    }
}

/// Puts a condition's expression, names and values on a request builder.
trait SetCondition: Sized {
    fn set_condition(self, cond: Option<Expr>) -> Self;
}

macro_rules! set_condition_on {
    ($($builder:ty),*) => {$(
        impl SetCondition for $builder {
            fn set_condition(self, cond: Option<Expr>) -> Self {
                let (text, names, values) = match cond {
                    Some(c) => (Some(c.text.to_owned()), Some(c.names), c.values),
                    None => (None, None, None),
                };
                self.set_condition_expression(text)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
            }
        }
    )*};
}

set_condition_on!(
    aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder,
    aws_sdk_dynamodb::types::builders::PutBuilder,
    aws_sdk_dynamodb::types::builders::DeleteBuilder
);

fn key_attrs(key: &Key) -> AttrMap {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(key.pk.clone())),
        ("sk".to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

fn to_attrs(item: &Item) -> Result<(Key, AttrMap), TableError> {
    let key = Key::of(item).ok_or_else(|| {
        TableError::InvalidItem("an item needs string attributes `pk` and `sk`".into())
    })?;
    let attrs = serde_dynamo::to_item(item).map_err(|e| TableError::InvalidItem(e.to_string()))?;
    Ok((key, attrs))
}

fn from_attrs(attrs: AttrMap) -> Result<Item, TableError> {
    serde_dynamo::from_item(attrs)
        .map_err(|e| TableError::Backend(format!("item does not read back as JSON: {e}")))
}

fn boxed(attrs: Option<&AttrMap>) -> Result<Option<Box<Item>>, TableError> {
    attrs
        .filter(|a| !a.is_empty())
        .map(|a| from_attrs(a.clone()).map(Box::new))
        .transpose()
}

impl DynamoTable {
    /// The table named `name` (not checked until first use).
    pub fn new(client: &aws_sdk_dynamodb::Client, name: &str) -> Self {
        DynamoTable {
            client: client.clone(),
            name: name.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn error<E, R>(&self, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> TableError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        if is_transient(&e) {
            TableError::Transient(describe(&e))
        } else if e.code() == Some("ResourceNotFoundException") {
            TableError::Backend(format!(
                "table {:?} does not exist: {}",
                self.name,
                describe(&e)
            ))
        } else if e.code() == Some("ValidationException") {
            TableError::InvalidItem(describe(&e))
        } else {
            TableError::Backend(describe(&e))
        }
    }

    async fn collect_pages<S>(&self, pages: S) -> Result<Vec<Item>, TableError>
    where
        S: futures::Stream<Item = Result<AttrMap, TableError>>,
    {
        let mut items: Vec<Item> = pages
            .and_then(|a| async move { from_attrs(a) })
            .try_collect()
            .await?;
        items.sort_by_cached_key(Key::of);
        Ok(items)
    }
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key_attrs(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        out.item.map(from_attrs).transpose()
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), TableError> {
        let (key, attrs) = to_attrs(&item)?;
        let cond = expr(&condition);
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(attrs))
            .set_condition(cond)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    Err(TableError::ConditionFailed { key, current: boxed(c.item())? })
                }
                _ => Err(self.error(e)),
            },
        }
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), TableError> {
        let cond = expr(&condition);
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(key_attrs(key)))
            .set_condition(cond)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(c)) => {
                    Err(TableError::ConditionFailed { key: key.clone(), current: boxed(c.item())? })
                }
                _ => Err(self.error(e)),
            },
        }
    }

    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), TableError> {
        if ops.is_empty() {
            return Ok(());
        }
        if ops.len() > MAX_TRANSACTION_OPS {
            return Err(TableError::InvalidItem(format!(
                "a transaction takes at most {MAX_TRANSACTION_OPS} operations, got {}",
                ops.len()
            )));
        }
        let build = |e: aws_sdk_dynamodb::error::BuildError| TableError::InvalidItem(e.to_string());
        let old = ReturnValuesOnConditionCheckFailure::AllOld;
        let mut items = Vec::with_capacity(ops.len());
        for op in &ops {
            let item = match op {
                TxOp::Put { item, condition } => {
                    let (_, attrs) = to_attrs(item)?;
                    let cond = expr(condition);
                    let put = Put::builder()
                        .table_name(&self.name)
                        .set_item(Some(attrs))
                        .set_condition(cond)
                        .return_values_on_condition_check_failure(old.clone())
                        .build()
                        .map_err(build)?;
                    TransactWriteItem::builder().put(put).build()
                }
                TxOp::Delete { key, condition } => {
                    let cond = expr(condition);
                    let delete = Delete::builder()
                        .table_name(&self.name)
                        .set_key(Some(key_attrs(key)))
                        .set_condition(cond)
                        .return_values_on_condition_check_failure(old.clone())
                        .build()
                        .map_err(build)?;
                    TransactWriteItem::builder().delete(delete).build()
                }
                TxOp::Check { key, condition } => {
                    // A check needs an expression; `Always` is one that always holds.
                    let cond = expr(condition).unwrap_or(Expr {
                        text: "attribute_exists(#pk) OR attribute_not_exists(#pk)",
                        names: HashMap::from([("#pk".to_owned(), "pk".to_owned())]),
                        values: None,
                    });
                    let check = ConditionCheck::builder()
                        .table_name(&self.name)
                        .set_key(Some(key_attrs(key)))
                        .condition_expression(cond.text)
                        .set_expression_attribute_names(Some(cond.names))
                        .set_expression_attribute_values(cond.values)
                        .return_values_on_condition_check_failure(old.clone())
                        .build()
                        .map_err(build)?;
                    TransactWriteItem::builder().condition_check(check).build()
                }
            };
            items.push(item);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let Some(TransactWriteItemsError::TransactionCanceledException(c)) = err.as_service_error()
        else {
            return Err(self.error(err));
        };
        let reasons = c.cancellation_reasons();
        let is_condition = |code: Option<&str>| code == Some("ConditionalCheckFailed");
        if !reasons.iter().any(|r| is_condition(r.code())) {
            // Conflicts and throttles cancel a transaction without any condition failing.
            return Err(TableError::Transient(describe(&err)));
        }
        let mut failures = Vec::with_capacity(ops.len());
        for i in 0..ops.len() {
            let reason = reasons.get(i);
            failures.push(match reason {
                Some(r) if is_condition(r.code()) => Some(boxed(r.item())?),
                _ => None,
            });
        }
        Err(TableError::TransactionCancelled { failures })
    }

    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, TableError> {
        let mut values = HashMap::from([(":pk".to_owned(), AttributeValue::S(pk.to_owned()))]);
        let mut names = HashMap::from([("#pk".to_owned(), "pk".to_owned())]);
        let condition = match sk_prefix {
            Some(prefix) => {
                values.insert(":prefix".into(), AttributeValue::S(prefix.to_owned()));
                names.insert("#sk".into(), "sk".into());
                "#pk = :pk AND begins_with(#sk, :prefix)"
            }
            None => "#pk = :pk",
        };
        let pages = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        self.collect_pages(futures::stream::unfold(pages, |mut p| async move {
            let next = p.next().await?;
            Some((next.map_err(|e| self.error(e)), p))
        }))
        .await
    }

    async fn scan(&self) -> Result<Vec<Item>, TableError> {
        let pages = self
            .client
            .scan()
            .table_name(&self.name)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        self.collect_pages(futures::stream::unfold(pages, |mut p| async move {
            let next = p.next().await?;
            Some((next.map_err(|e| self.error(e)), p))
        }))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_round_trip_through_attribute_values() {
        let item: Item = serde_json::from_value(json!({
            "pk": "ORDER#1", "sk": "META", "version": 3, "total": 12.5, "tags": ["a"],
            "nested": {"x": null, "y": true}
        }))
        .unwrap();
        let (key, attrs) = to_attrs(&item).unwrap();
        assert_eq!(key, Key::new("ORDER#1", "META"));
        assert_eq!(attrs["version"], AttributeValue::N("3".into()));
        assert_eq!(from_attrs(attrs).unwrap(), item);
    }

    #[test]
    fn items_without_a_key_are_refused() {
        let item: Item = serde_json::from_value(json!({"pk": "x", "sk": 1})).unwrap();
        assert!(matches!(to_attrs(&item), Err(TableError::InvalidItem(m)) if m.contains("`sk`")));
    }
}
